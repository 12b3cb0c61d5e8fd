/* Packets as the TUN hands them over: parse, rewrite, answer.
 *
 * The relay rewrites every TCP packet twice (app -> listener, listener ->
 * app; research/vnet.md §1.3) and only touches addresses and ports, so the
 * checksums are patched with RFC 1624's incremental update instead of being
 * recomputed: the cost is the same for a 40-byte ACK and a 64 KiB segment
 * (the TUN's MTU is 64 KiB-class). Full sums are computed only for packets
 * built here, which are small, and for the rare IPv6 UDP datagram that came
 * without its mandatory checksum.
 *
 * Everything read from the packet is bounds-checked against the datagram's
 * own length, which is itself checked against the bytes read.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "vnet/vnet_int.h"

#define IPV4_HDR 20
#define IPV6_HDR 40
#define TCP_HDR 20
#define UDP_HDR 8
#define ICMP_HDR 8
#define MAX_EXT_HEADERS 8
#define BUILD_TTL 64

void vnet_tuple_reverse(struct vnet_tuple *t)
{
	struct vnet_addr a = t->src;
	uint16_t port = t->sport;

	t->src = t->dst;
	t->dst = a;
	t->sport = t->dport;
	t->dport = port;
}

bool vnet_tuple_equal(const struct vnet_tuple *a, const struct vnet_tuple *b)
{
	return a->family == b->family && a->proto == b->proto && a->sport == b->sport &&
	       a->dport == b->dport && memcmp(&a->src, &b->src, sizeof(a->src)) == 0 &&
	       memcmp(&a->dst, &b->dst, sizeof(a->dst)) == 0;
}

static unsigned addr_len(const struct vnet_packet *p)
{
	return p->family == 4 ? 4 : 16;
}

static uint8_t *src_ptr(const struct vnet_packet *p)
{
	return p->data + (p->family == 4 ? 12 : 8);
}

static uint8_t *dst_ptr(const struct vnet_packet *p)
{
	return p->data + (p->family == 4 ? 16 : 24);
}

/* Bytes the transport checksum covers: the UDP length for UDP, else the rest
 * of the datagram. */
static uint32_t l4_span(const struct vnet_packet *p)
{
	if (p->proto == IPPROTO_UDP)
		return p->l4_len + p->payload_len;
	return p->len - p->l4_off;
}

/* Offset of the transport checksum field inside the transport header, or -1
 * when the transport has none covering a pseudo-header. */
static int l4_pseudo_csum_off(const struct vnet_packet *p)
{
	switch (p->proto) {
	case IPPROTO_TCP:
		return 16;
	case IPPROTO_UDP:
		return 6;
	case IPPROTO_ICMPV6:
		return p->family == 6 ? 2 : -1;
	default:
		return -1;
	}
}

static bool is_echo_type(const struct vnet_packet *p)
{
	if (p->proto == IPPROTO_ICMP && p->family == 4)
		return p->icmp_type == 8 || p->icmp_type == 0;
	if (p->proto == IPPROTO_ICMPV6 && p->family == 6)
		return p->icmp_type == 128 || p->icmp_type == 129;
	return false;
}

/* ---- parsing ---------------------------------------------------------------- */

static int parse_l4(struct vnet_packet *p)
{
	const uint8_t *l4 = p->data + p->l4_off;
	uint32_t rem = p->len - p->l4_off;

	switch (p->proto) {
	case IPPROTO_TCP: {
		uint32_t doff;

		if (rem < TCP_HDR)
			return -EBADMSG;
		doff = (uint32_t)(l4[12] >> 4) * 4;
		/* A first fragment must hold the whole TCP header (RFC 1858,
		 * RFC 7112): tiny fragments are an attack, not traffic. */
		if (doff < TCP_HDR || doff > rem)
			return -EBADMSG;
		p->l4_len = doff;
		p->tcp_flags = l4[13];
		p->payload_len = rem - doff;
		break;
	}
	case IPPROTO_UDP: {
		uint32_t ulen;

		if (rem < UDP_HDR)
			return -EBADMSG;
		ulen = vnet_be16_load(l4 + 4);
		if (p->flags & VNET_PACKET_FRAGMENT) {
			/* The UDP length covers the reassembled datagram. */
			if (ulen < UDP_HDR)
				return -EBADMSG;
			p->payload_len = rem - UDP_HDR;
		} else {
			/* Shorter than the datagram is padding (Linux trims it);
			 * 0 would be an IPv6 jumbogram, which we do not take. */
			if (ulen < UDP_HDR || ulen > rem)
				return -EBADMSG;
			p->payload_len = ulen - UDP_HDR;
		}
		p->l4_len = UDP_HDR;
		if (vnet_be16_load(l4 + 6) == 0)
			p->flags |= VNET_PACKET_NO_CSUM;
		break;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		/* ICMPv4 inside IPv6 (or the reverse) is not a thing: unknown. */
		if ((p->proto == IPPROTO_ICMP) != (p->family == 4))
			return 0;
		if (rem < ICMP_HDR)
			return -EBADMSG;
		p->l4_len = ICMP_HDR;
		p->icmp_type = l4[0];
		p->payload_len = rem - ICMP_HDR;
		break;
	default:
		return 0;
	}
	p->payload_off = p->l4_off + p->l4_len;
	p->flags |= VNET_PACKET_L4;
	return 0;
}

static int parse_v4(struct vnet_packet *p, size_t len)
{
	const uint8_t *d = p->data;
	uint32_t ihl, total;
	uint16_t frag;

	if (len < IPV4_HDR)
		return -EBADMSG;
	ihl = (uint32_t)(d[0] & 0x0f) * 4;
	total = vnet_be16_load(d + 2);
	if (ihl < IPV4_HDR || total < ihl || total > len)
		return -EBADMSG;
	p->family = 4;
	p->len = total;
	p->proto = d[9];
	p->l4_off = ihl;
	frag = vnet_be16_load(d + 6);
	if (frag & 0x8000) /* the reserved ("evil") bit */
		return -EBADMSG;
	if (frag & 0x3fff) { /* MF or an offset */
		p->flags |= VNET_PACKET_FRAGMENT;
		if (frag & 0x1fff) {
			p->flags |= VNET_PACKET_TAIL_FRAGMENT;
			return 0;
		}
	}
	return parse_l4(p);
}

static int parse_v6(struct vnet_packet *p, size_t len)
{
	const uint8_t *d = p->data;
	uint32_t plen, off = IPV6_HDR;
	uint8_t nh;

	if (len < IPV6_HDR)
		return -EBADMSG;
	plen = vnet_be16_load(d + 4);
	nh = d[6];
	/* Payload length 0 with a hop-by-hop header is a jumbogram (RFC 2675). */
	if (plen == 0 && nh == 0)
		return -EPROTONOSUPPORT;
	if (IPV6_HDR + plen > len)
		return -EBADMSG;
	p->family = 6;
	p->len = IPV6_HDR + plen;

	/* Walk the extension headers (RFC 8200 §4). Each one advances by at
	 * least 8 bytes and the count is capped, so a chain cannot loop. */
	for (unsigned n = 0;; n++) {
		uint32_t hlen;

		if (nh != 0 && nh != 43 && nh != 44 && nh != 51 && nh != 60)
			break; /* a transport, "no next header" (59), ESP or unknown */
		if (n >= MAX_EXT_HEADERS)
			return -EBADMSG;
		if (nh == 0 && off != IPV6_HDR) /* hop-by-hop must come first */
			return -EBADMSG;
		if (off + 8 > p->len)
			return -EBADMSG;
		if (nh == 44) {
			uint16_t fo = vnet_be16_load(d + off + 2);

			hlen = 8;
			/* An atomic fragment (offset 0, no M) is a whole datagram. */
			if (fo & 0xfff9) {
				p->flags |= VNET_PACKET_FRAGMENT;
				if (fo & 0xfff8) {
					p->flags |= VNET_PACKET_TAIL_FRAGMENT;
					p->proto = d[off];
					p->l4_off = off + hlen;
					return 0;
				}
			}
		} else if (nh == 51) {
			hlen = ((uint32_t)d[off + 1] + 2) * 4; /* AH counts 4-byte units */
		} else {
			hlen = ((uint32_t)d[off + 1] + 1) * 8;
			if (nh == 43 && d[off + 3] != 0) /* segments left */
				p->flags |= VNET_PACKET_ROUTED;
		}
		if (off + hlen > p->len)
			return -EBADMSG;
		nh = d[off];
		off += hlen;
	}
	p->proto = nh;
	p->l4_off = off;
	return parse_l4(p);
}

int vnet_packet_parse(struct vnet_packet *p, uint8_t *data, size_t len)
{
	memset(p, 0, sizeof(*p));
	p->data = data;
	if (len < 1)
		return -EBADMSG;
	switch (data[0] >> 4) {
	case 4:
		return parse_v4(p, len);
	case 6:
		return parse_v6(p, len);
	default:
		return -EPROTONOSUPPORT;
	}
}

void vnet_packet_tuple(const struct vnet_packet *p, struct vnet_tuple *t)
{
	const uint8_t *l4 = p->data + p->l4_off;

	memset(t, 0, sizeof(*t));
	t->family = p->family;
	t->proto = p->proto;
	memcpy(t->src.b, src_ptr(p), addr_len(p));
	memcpy(t->dst.b, dst_ptr(p), addr_len(p));
	if (!(p->flags & VNET_PACKET_L4))
		return;
	if (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP) {
		t->sport = vnet_be16_load(l4);
		t->dport = vnet_be16_load(l4 + 2);
	} else if (is_echo_type(p)) {
		t->sport = t->dport = vnet_be16_load(l4 + 4);
	}
}

uint32_t vnet_packet_tcp_seq(const struct vnet_packet *p)
{
	if (p->proto != IPPROTO_TCP || !(p->flags & VNET_PACKET_L4))
		return 0;
	return vnet_be32_load(p->data + p->l4_off + 4);
}

uint32_t vnet_packet_tcp_ack(const struct vnet_packet *p)
{
	if (p->proto != IPPROTO_TCP || !(p->flags & VNET_PACKET_L4))
		return 0;
	return vnet_be32_load(p->data + p->l4_off + 8);
}

/* ---- checksums -------------------------------------------------------------- */

/* The pseudo-header's sum (RFC 768/793 for IPv4, RFC 8200 §8.1 for IPv6):
 * both addresses, the protocol and the transport length. The same sum
 * serves both families because the IPv6 32-bit length of a non-jumbogram
 * has a zero upper half. */
static uint64_t pseudo_sum(unsigned family, const uint8_t *src, const uint8_t *dst,
			   uint8_t proto, uint32_t l4len)
{
	unsigned alen = family == 4 ? 4 : 16;
	uint64_t sum = 0;

	sum = vnet_csum_add(sum, src, alen);
	sum = vnet_csum_add(sum, dst, alen);
	return sum + proto + (l4len >> 16) + (l4len & 0xffff);
}

/* The transport checksum of p computed from scratch. */
static uint16_t l4_csum_full(const struct vnet_packet *p, bool pseudo)
{
	uint32_t span = l4_span(p);
	uint64_t sum = 0;

	if (pseudo)
		sum = pseudo_sum(p->family, src_ptr(p), dst_ptr(p), p->proto, span);
	return (uint16_t)~vnet_csum_fold(vnet_csum_add(sum, p->data + p->l4_off, span));
}

bool vnet_packet_csum_ok(const struct vnet_packet *p)
{
	int off;

	if (p->family == 4 && vnet_csum_fold(vnet_csum_add(0, p->data, p->l4_off)) != 0xffff)
		return false;
	if ((p->flags & VNET_PACKET_FRAGMENT) || !(p->flags & VNET_PACKET_L4))
		return true;
	if (p->proto == IPPROTO_ICMP)
		return vnet_csum_fold(vnet_csum_add(0, p->data + p->l4_off, l4_span(p))) == 0xffff;
	off = l4_pseudo_csum_off(p);
	if (off < 0)
		return true;
	if (p->flags & VNET_PACKET_NO_CSUM)
		return p->family == 4;
	/* Summing the data with its checksum in place gives "negative zero". */
	return l4_csum_full(p, true) == 0;
}

/* ---- rewriting -------------------------------------------------------------- */

static int set_endpoint(struct vnet_packet *p, bool src, const struct vnet_addr *addr,
			uint16_t port)
{
	bool ports = p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP;
	uint8_t *a = src ? src_ptr(p) : dst_ptr(p);
	uint8_t *l4 = p->data + p->l4_off;
	uint8_t *l4csum = NULL;
	bool v6_udp_fill = false;
	int off;

	if (p->flags & VNET_PACKET_ROUTED)
		return -EOPNOTSUPP;
	if (p->flags & VNET_PACKET_TAIL_FRAGMENT) {
		/* Address changes of a later fragment touch no transport
		 * checksum (it is in the first fragment); its port is not here. */
		ports = false;
	} else if (p->flags & VNET_PACKET_L4) {
		off = l4_pseudo_csum_off(p);
		if (off >= 0)
			l4csum = l4 + off;
		if (p->proto == IPPROTO_UDP && (p->flags & VNET_PACKET_NO_CSUM)) {
			if (p->family == 6 && (p->flags & VNET_PACKET_FRAGMENT))
				return -EOPNOTSUPP;
			/* IPv4: 0 means "no checksum" and stays so. IPv6: a
			 * checksum is mandatory (RFC 8200 §8.1); compute it. */
			v6_udp_fill = p->family == 6;
			l4csum = NULL;
		}
	} else {
		ports = false;
	}

	if (addr && memcmp(a, addr->b, addr_len(p)) != 0) {
		if (p->family == 4)
			vnet_csum_replace(p->data + 10, a, addr->b, 4);
		if (l4csum)
			vnet_csum_replace(l4csum, a, addr->b, addr_len(p));
		memcpy(a, addr->b, addr_len(p));
	}
	if (ports) {
		uint8_t *pp = l4 + (src ? 0 : 2);
		uint16_t old = vnet_be16_load(pp);

		if (old != port) {
			if (l4csum)
				vnet_csum_replace16(l4csum, old, port);
			vnet_be16_store(pp, port);
		}
	}
	if (v6_udp_fill) {
		vnet_be16_store(l4 + 6, 0);
		vnet_be16_store(l4 + 6, l4_csum_full(p, true));
		p->flags &= ~VNET_PACKET_NO_CSUM;
	}
	/* A UDP checksum that comes out as 0 is sent as 0xffff (RFC 768): 0
	 * would mean "none". Both are zero in one's complement. */
	if (l4csum && p->proto == IPPROTO_UDP && vnet_be16_load(l4csum) == 0)
		vnet_be16_store(l4csum, 0xffff);
	return 0;
}

int vnet_packet_set_src(struct vnet_packet *p, const struct vnet_addr *addr, uint16_t port)
{
	return set_endpoint(p, true, addr, port);
}

int vnet_packet_set_dst(struct vnet_packet *p, const struct vnet_addr *addr, uint16_t port)
{
	return set_endpoint(p, false, addr, port);
}

static bool addr_is_multicast(unsigned family, const uint8_t *a)
{
	if (family == 4)
		return (a[0] & 0xf0) == 0xe0 || (a[0] == 0xff && a[1] == 0xff && a[2] == 0xff &&
						  a[3] == 0xff);
	return a[0] == 0xff;
}

static bool addr_is_unspecified(unsigned family, const uint8_t *a)
{
	static const uint8_t zero[16];

	return memcmp(a, zero, family == 4 ? 4 : 16) == 0;
}

int vnet_packet_echo_reply(struct vnet_packet *p)
{
	uint8_t *l4 = p->data + p->l4_off;
	uint8_t tmp[16];
	unsigned alen = addr_len(p);
	uint8_t reply;

	if (!(p->flags & VNET_PACKET_L4) || (p->flags & VNET_PACKET_FRAGMENT) ||
	    p->flags & VNET_PACKET_ROUTED)
		return -EINVAL;
	if (p->family == 4 && p->proto == IPPROTO_ICMP && p->icmp_type == 8)
		reply = 0;
	else if (p->family == 6 && p->proto == IPPROTO_ICMPV6 && p->icmp_type == 128)
		reply = 129;
	else
		return -EINVAL;
	/* The reply's source would be the request's destination. */
	if (addr_is_multicast(p->family, dst_ptr(p)) || addr_is_unspecified(p->family, src_ptr(p)))
		return -EINVAL;

	/* Swapping the addresses leaves every sum unchanged (addition
	 * commutes); the type and the TTL/hop limit are the changes. */
	memcpy(tmp, src_ptr(p), alen);
	memcpy(src_ptr(p), dst_ptr(p), alen);
	memcpy(dst_ptr(p), tmp, alen);
	vnet_csum_replace16(l4 + 2, (uint16_t)(l4[0] << 8 | l4[1]), (uint16_t)(reply << 8 | l4[1]));
	l4[0] = reply;
	p->icmp_type = reply;
	if (p->family == 4) {
		vnet_csum_replace16(p->data + 10, (uint16_t)(p->data[8] << 8 | p->data[9]),
				    (uint16_t)(BUILD_TTL << 8 | p->data[9]));
		p->data[8] = BUILD_TTL;
	} else {
		p->data[7] = BUILD_TTL;
	}
	return 0;
}

/* ---- building --------------------------------------------------------------- */

/* Writes an IP header for a payload of l4len bytes; returns its length. The
 * caller has checked the room. */
static uint32_t put_ip(uint8_t *buf, unsigned family, uint8_t proto, const uint8_t *src,
		       const uint8_t *dst, uint32_t l4len)
{
	if (family == 4) {
		memset(buf, 0, IPV4_HDR);
		buf[0] = 0x45;
		vnet_be16_store(buf + 2, (uint16_t)(IPV4_HDR + l4len));
		vnet_be16_store(buf + 6, 0x4000); /* DF */
		buf[8] = BUILD_TTL;
		buf[9] = proto;
		memcpy(buf + 12, src, 4);
		memcpy(buf + 16, dst, 4);
		vnet_be16_store(buf + 10, (uint16_t)~vnet_csum_fold(vnet_csum_add(0, buf, IPV4_HDR)));
		return IPV4_HDR;
	}
	memset(buf, 0, IPV6_HDR);
	buf[0] = 0x60;
	vnet_be16_store(buf + 4, (uint16_t)l4len);
	buf[6] = proto;
	buf[7] = BUILD_TTL;
	memcpy(buf + 8, src, 16);
	memcpy(buf + 24, dst, 16);
	return IPV6_HDR;
}

/* Fills the transport checksum at buf + hlen + csum_off over l4len bytes. */
static void put_l4_csum(uint8_t *buf, unsigned family, uint32_t hlen, uint8_t proto,
			uint32_t l4len, unsigned csum_off, bool pseudo)
{
	uint64_t sum = 0;
	uint16_t c;

	if (pseudo)
		sum = pseudo_sum(family, buf + (family == 4 ? 12 : 8), buf + (family == 4 ? 16 : 24),
				 proto, l4len);
	c = (uint16_t)~vnet_csum_fold(vnet_csum_add(sum, buf + hlen, l4len));
	if (c == 0 && proto == IPPROTO_UDP)
		c = 0xffff;
	vnet_be16_store(buf + hlen + csum_off, c);
}

int vnet_packet_build_rst(uint8_t *buf, size_t cap, const struct vnet_packet *orig)
{
	const uint8_t *ol4 = orig->data + orig->l4_off;
	uint32_t hlen = orig->family == 4 ? IPV4_HDR : IPV6_HDR;
	uint8_t *tcp;

	if (orig->proto != IPPROTO_TCP || !(orig->flags & VNET_PACKET_L4) ||
	    (orig->flags & VNET_PACKET_FRAGMENT) || (orig->tcp_flags & VNET_TCP_RST))
		return -EINVAL;
	if (cap < hlen + TCP_HDR)
		return -ENOBUFS;
	put_ip(buf, orig->family, IPPROTO_TCP, dst_ptr(orig), src_ptr(orig), TCP_HDR);
	tcp = buf + hlen;
	memset(tcp, 0, TCP_HDR);
	memcpy(tcp, ol4 + 2, 2);
	memcpy(tcp + 2, ol4, 2);
	if (orig->tcp_flags & VNET_TCP_ACK) {
		memcpy(tcp + 4, ol4 + 8, 4);
		tcp[13] = VNET_TCP_RST;
	} else {
		/* SYN and FIN each occupy one sequence number. */
		uint32_t seglen = orig->payload_len + !!(orig->tcp_flags & VNET_TCP_SYN) +
				  !!(orig->tcp_flags & VNET_TCP_FIN);

		vnet_be32_store(tcp + 8, vnet_be32_load(ol4 + 4) + seglen);
		tcp[13] = VNET_TCP_RST | VNET_TCP_ACK;
	}
	tcp[12] = 5 << 4;
	put_l4_csum(buf, orig->family, hlen, IPPROTO_TCP, TCP_HDR, 16, true);
	return (int)(hlen + TCP_HDR);
}

int vnet_packet_build_unreach(uint8_t *buf, size_t cap, const struct vnet_packet *orig,
			      enum vnet_unreach why)
{
	static const uint8_t codes4[] = {0, 1, 3, 13}, codes6[] = {0, 3, 4, 1};
	unsigned family = orig->family;
	uint32_t hlen = family == 4 ? IPV4_HDR : IPV6_HDR;
	uint32_t limit = family == 4 ? 576 : 1280;
	uint32_t quote, l4len;
	uint8_t *icmp;

	if ((unsigned)why >= sizeof(codes4) || (family != 4 && family != 6))
		return -EINVAL;
	if (orig->flags & VNET_PACKET_TAIL_FRAGMENT)
		return -EINVAL;
	/* Never an error about an error (RFC 1122 §3.2.2, RFC 4443 §2.4(e)). */
	if (orig->proto == (family == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6)) {
		if (!(orig->flags & VNET_PACKET_L4))
			return -EINVAL;
		if (family == 4 && orig->icmp_type != 0 && orig->icmp_type != 8)
			return -EINVAL;
		if (family == 6 && orig->icmp_type < 128)
			return -EINVAL;
	}
	if (addr_is_multicast(family, dst_ptr(orig)) || addr_is_multicast(family, src_ptr(orig)) ||
	    addr_is_unspecified(family, src_ptr(orig)))
		return -EINVAL;

	quote = orig->len;
	if (quote > limit - hlen - ICMP_HDR)
		quote = limit - hlen - ICMP_HDR;
	l4len = ICMP_HDR + quote;
	if (cap < hlen + l4len)
		return -ENOBUFS;
	put_ip(buf, family, family == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6, dst_ptr(orig),
	       src_ptr(orig), l4len);
	icmp = buf + hlen;
	memset(icmp, 0, ICMP_HDR);
	icmp[0] = family == 4 ? 3 : 1;
	icmp[1] = family == 4 ? codes4[why] : codes6[why];
	memcpy(icmp + ICMP_HDR, orig->data, quote);
	put_l4_csum(buf, family, hlen, family == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6, l4len, 2,
		    family == 6);
	return (int)(hlen + l4len);
}

int vnet_packet_build_udp(uint8_t *buf, size_t cap, const struct vnet_tuple *t,
			  const void *payload, size_t len)
{
	uint32_t hlen, l4len;
	uint8_t *udp;

	if (t->proto != IPPROTO_UDP || (t->family != 4 && t->family != 6))
		return -EINVAL;
	hlen = t->family == 4 ? IPV4_HDR : IPV6_HDR;
	/* IPv4: the total length is 16 bits; IPv6 and UDP: the payload length. */
	if (len > 0xffff - UDP_HDR - (t->family == 4 ? IPV4_HDR : 0))
		return -EMSGSIZE;
	l4len = UDP_HDR + (uint32_t)len;
	if (cap < hlen + l4len)
		return -ENOBUFS;
	put_ip(buf, t->family, IPPROTO_UDP, t->src.b, t->dst.b, l4len);
	udp = buf + hlen;
	vnet_be16_store(udp, t->sport);
	vnet_be16_store(udp + 2, t->dport);
	vnet_be16_store(udp + 4, (uint16_t)l4len);
	vnet_be16_store(udp + 6, 0);
	if (len)
		memcpy(udp + UDP_HDR, payload, len);
	put_l4_csum(buf, t->family, hlen, IPPROTO_UDP, l4len, 6, true);
	return (int)(hlen + l4len);
}
