/* Tests for vnet/packet.c: parsing (IPv4 options, IPv6 extension headers,
 * fragments, malformed input), rewriting with incremental checksums checked
 * against a naive from-scratch recomputation (pktref.h), echo replies and
 * the packet builders. */
#include <netinet/in.h>

#include "tests/unit/tap.h"
#include "tests/unit/vnet/pktref.h"
#include "vnet/vnet.h"

static uint64_t rng_state = 0x243f6a8885a308d3ULL;

static uint32_t rnd(void)
{
	/* xorshift64*: reproducible across runs */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dULL) >> 32);
}

static void rnd_bytes(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rnd();
}

struct spec {
	unsigned family;
	uint8_t proto;
	uint8_t src[16], dst[16];
	uint16_t sport, dport;
	uint32_t payload;
	uint32_t ipopt;	 /* IPv4 option bytes (multiple of 4) */
	uint32_t tcpopt; /* TCP option bytes (multiple of 4) */
	uint8_t tcp_flags;
	uint32_t seq, ack;
	uint8_t icmp_type;
};

/* Builds a valid packet from s with random payload bytes; returns its length. */
static uint32_t build(uint8_t *pkt, const struct spec *s)
{
	uint32_t l4hdr = s->proto == IPPROTO_TCP ? 20 + s->tcpopt : 8;
	uint32_t l4len = l4hdr + s->payload;
	uint32_t off = ref_ip(pkt, s->family, s->proto, s->src, s->dst, s->ipopt, l4len);
	uint8_t *l4 = pkt + off;

	memset(l4, 0, l4hdr);
	rnd_bytes(l4 + l4hdr, s->payload);
	switch (s->proto) {
	case IPPROTO_TCP:
		ref_put16(l4, s->sport);
		ref_put16(l4 + 2, s->dport);
		l4[4] = (uint8_t)(s->seq >> 24), l4[5] = (uint8_t)(s->seq >> 16);
		l4[6] = (uint8_t)(s->seq >> 8), l4[7] = (uint8_t)s->seq;
		l4[8] = (uint8_t)(s->ack >> 24), l4[9] = (uint8_t)(s->ack >> 16);
		l4[10] = (uint8_t)(s->ack >> 8), l4[11] = (uint8_t)s->ack;
		l4[12] = (uint8_t)((l4hdr / 4) << 4);
		l4[13] = s->tcp_flags;
		ref_put16(l4 + 14, 65535);
		for (uint32_t i = 0; i < s->tcpopt; i++)
			l4[20 + i] = 1;
		ref_l4_fill(pkt, s->family, s->proto, off, l4len, 16);
		break;
	case IPPROTO_UDP:
		ref_put16(l4, s->sport);
		ref_put16(l4 + 2, s->dport);
		ref_put16(l4 + 4, (uint16_t)l4len);
		ref_l4_fill(pkt, s->family, s->proto, off, l4len, 6);
		break;
	default: /* ICMP / ICMPv6 echo */
		l4[0] = s->icmp_type;
		ref_put16(l4 + 4, s->sport);
		ref_put16(l4 + 6, 7);
		ref_l4_fill(pkt, s->family, s->proto, off, l4len, 2);
		break;
	}
	return off + l4len;
}

static struct spec spec_v4(uint8_t proto)
{
	struct spec s = {.family = 4, .proto = proto, .sport = 40000, .dport = 80};

	memcpy(s.src, (uint8_t[]){10, 0, 0, 2}, 4);
	memcpy(s.dst, (uint8_t[]){93, 184, 216, 34}, 4);
	return s;
}

static struct spec spec_v6(uint8_t proto)
{
	struct spec s = {.family = 6, .proto = proto, .sport = 40000, .dport = 443};

	memcpy(s.src, (uint8_t[]){0xfd, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2},
	       16);
	memcpy(s.dst, (uint8_t[]){0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42},
	       16);
	return s;
}

static uint8_t l4_csum_off(uint8_t proto)
{
	return proto == IPPROTO_TCP ? 16 : proto == IPPROTO_UDP ? 6 : 2;
}

static uint32_t span_of(const struct vnet_packet *p)
{
	return p->proto == IPPROTO_UDP ? p->l4_len + p->payload_len : p->len - p->l4_off;
}

/* The checksums of p equal a from-scratch recomputation. */
static void check_csums_exact(const struct vnet_packet *p)
{
	static uint8_t copy[VNET_PACKET_MAX];
	uint32_t span = span_of(p);

	memcpy(copy, p->data, p->len);
	if (p->family == 4) {
		ref_ip4_fill(copy);
		CHECK_UINT(ref_get16(p->data + 10), ==, ref_get16(copy + 10));
	}
	ref_l4_fill(copy, p->family, p->proto, p->l4_off, span, l4_csum_off(p->proto));
	CHECK_UINT(ref_get16(p->data + p->l4_off + l4_csum_off(p->proto)), ==,
		   ref_get16(copy + p->l4_off + l4_csum_off(p->proto)));
	CHECK(vnet_packet_csum_ok(p));
}

static void rnd_addr(unsigned family, struct vnet_addr *a)
{
	memset(a, 0, sizeof(*a));
	rnd_bytes(a->b, family == 4 ? 4 : 16);
}

TEST(parse_ipv4_tcp)
{
	uint8_t pkt[2048];
	struct spec s = spec_v4(IPPROTO_TCP);
	struct vnet_packet p;
	struct vnet_tuple t;
	uint32_t n;

	s.tcp_flags = VNET_TCP_SYN;
	s.seq = 0x01020304;
	s.tcpopt = 12;
	s.payload = 100;
	n = build(pkt, &s);
	CHECK_INT(vnet_packet_parse(&p, pkt, n), ==, 0);
	CHECK_UINT(p.family, ==, 4);
	CHECK_UINT(p.proto, ==, IPPROTO_TCP);
	CHECK_UINT(p.len, ==, n);
	CHECK_UINT(p.l4_off, ==, 20);
	CHECK_UINT(p.l4_len, ==, 32);
	CHECK_UINT(p.payload_off, ==, 52);
	CHECK_UINT(p.payload_len, ==, 100);
	CHECK_UINT(p.tcp_flags, ==, VNET_TCP_SYN);
	CHECK_UINT(p.flags, ==, VNET_PACKET_L4);
	CHECK_UINT(vnet_packet_tcp_seq(&p), ==, 0x01020304);
	CHECK(vnet_packet_csum_ok(&p));
	vnet_packet_tuple(&p, &t);
	CHECK_UINT(t.family, ==, 4);
	CHECK_UINT(t.sport, ==, 40000);
	CHECK_UINT(t.dport, ==, 80);
	CHECK(memcmp(t.src.b, s.src, 4) == 0);
	CHECK(memcmp(t.dst.b, s.dst, 4) == 0);
	for (int i = 4; i < 16; i++)
		CHECK_UINT(t.src.b[i] | t.dst.b[i], ==, 0);
}

/* A textbook IPv4 header with a known checksum (0xb861), and a SYN laid out
 * as Linux sends one (MSS, SACK-permitted, timestamps, window scale). */
TEST(parse_known_packets)
{
	uint8_t hdr[] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
			 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
	uint8_t pkt[0x73] = {0};
	struct vnet_packet p;

	memcpy(pkt, hdr, sizeof(hdr));
	CHECK_UINT(ref_ip4_residual(pkt), ==, 0xffff);
	/* UDP header: length 0x5f, checksum 0 (none) */
	ref_put16(pkt + 20, 1234);
	ref_put16(pkt + 22, 53);
	ref_put16(pkt + 24, 0x73 - 20);
	CHECK_INT(vnet_packet_parse(&p, pkt, sizeof(pkt)), ==, 0);
	CHECK(p.flags & VNET_PACKET_NO_CSUM);
	CHECK(vnet_packet_csum_ok(&p));
	{
		uint8_t syn[] = {0x45, 0x00, 0x00, 0x3c, 0x5d, 0x2f, 0x40, 0x00, 0x40, 0x06, 0xc9,
				 0x88, 0x0a, 0x63, 0x00, 0x02, 0x0a, 0x63, 0x00, 0x01, 0xa4, 0x5e,
				 0x1f, 0x90, 0x6b, 0x8a, 0x71, 0x1a, 0x00, 0x00, 0x00, 0x00, 0xa0,
				 0x02, 0xfa, 0xf0, 0x00, 0x00, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02,
				 0x08, 0x0a, 0x9e, 0x3c, 0x3c, 0x5c, 0x00, 0x00, 0x00, 0x00, 0x01,
				 0x03, 0x03, 0x07};
		struct vnet_tuple t;

		ref_ip4_fill(syn);
		ref_l4_fill(syn, 4, IPPROTO_TCP, 20, 40, 16);
		CHECK_INT(vnet_packet_parse(&p, syn, sizeof(syn)), ==, 0);
		CHECK_UINT(p.l4_len, ==, 40);
		CHECK_UINT(p.payload_len, ==, 0);
		CHECK_UINT(p.tcp_flags, ==, VNET_TCP_SYN);
		CHECK(vnet_packet_csum_ok(&p));
		vnet_packet_tuple(&p, &t);
		CHECK_UINT(t.sport, ==, 0xa45e);
		CHECK_UINT(t.dport, ==, 8080);
	}
}

TEST(parse_ipv4_options_and_trailing_bytes)
{
	uint8_t pkt[2048];
	struct spec s = spec_v4(IPPROTO_UDP);
	struct vnet_packet p;
	uint32_t n;

	s.ipopt = 40; /* the maximum: IHL 15 */
	s.payload = 33;
	n = build(pkt, &s);
	/* The buffer holds more than the datagram: the rest is ignored. */
	CHECK_INT(vnet_packet_parse(&p, pkt, n + 100), ==, 0);
	CHECK_UINT(p.len, ==, n);
	CHECK_UINT(p.l4_off, ==, 60);
	CHECK_UINT(p.payload_len, ==, 33);
	CHECK(vnet_packet_csum_ok(&p));
}

TEST(parse_ipv6_extension_headers)
{
	uint8_t pkt[2048];
	struct spec s = spec_v6(IPPROTO_UDP);
	struct vnet_packet p;
	struct vnet_tuple t;
	uint32_t off, ext = 8 + 16 + 24 + 8, l4len = 8 + 20;
	uint8_t *e;

	/* hop-by-hop (8) -> destination options (16) -> routing, segments
	 * left 0 (24) -> atomic fragment (8) -> UDP */
	off = ref_ip(pkt, 6, 0, s.src, s.dst, ext, l4len);
	e = pkt + 40;
	memset(e, 0, ext);
	e[0] = 60, e[1] = 0;
	e[8] = 43, e[9] = 1;
	e[24] = 44, e[25] = 2, e[26] = 0, e[27] = 0;
	e[48] = IPPROTO_UDP;
	ref_put16(pkt + off, 5353);
	ref_put16(pkt + off + 2, 53);
	ref_put16(pkt + off + 4, (uint16_t)l4len);
	ref_l4_fill(pkt, 6, IPPROTO_UDP, off, l4len, 6);
	CHECK_INT(vnet_packet_parse(&p, pkt, off + l4len), ==, 0);
	CHECK_UINT(p.proto, ==, IPPROTO_UDP);
	CHECK_UINT(p.l4_off, ==, 40 + ext);
	CHECK_UINT(p.flags, ==, VNET_PACKET_L4); /* atomic fragment: not a fragment */
	CHECK(vnet_packet_csum_ok(&p));
	vnet_packet_tuple(&p, &t);
	CHECK_UINT(t.sport, ==, 5353);
	CHECK_UINT(t.dport, ==, 53);

	/* AH counts 4-byte units: length 1 -> 12 bytes. */
	off = ref_ip(pkt, 6, 51, s.src, s.dst, 12, 8);
	memset(pkt + 40, 0, 12);
	pkt[40] = IPPROTO_UDP, pkt[41] = 1;
	ref_put16(pkt + off + 4, 8);
	ref_l4_fill(pkt, 6, IPPROTO_UDP, off, 8, 6);
	CHECK_INT(vnet_packet_parse(&p, pkt, off + 8), ==, 0);
	CHECK_UINT(p.l4_off, ==, 52);
	CHECK(p.flags & VNET_PACKET_L4);

	/* Routing header with segments left: flagged, never rewritten. */
	off = ref_ip(pkt, 6, 43, s.src, s.dst, 24, 8);
	memset(pkt + 40, 0, 24);
	pkt[40] = IPPROTO_UDP, pkt[41] = 2, pkt[43] = 1;
	ref_put16(pkt + off + 4, 8);
	CHECK_INT(vnet_packet_parse(&p, pkt, off + 8), ==, 0);
	CHECK(p.flags & VNET_PACKET_ROUTED);
	CHECK_INT(vnet_packet_set_src(&p, NULL, 1), ==, -EOPNOTSUPP);

	/* No next header (59): parses, no transport. */
	ref_ip(pkt, 6, 59, s.src, s.dst, 0, 0);
	CHECK_INT(vnet_packet_parse(&p, pkt, 40), ==, 0);
	CHECK_UINT(p.proto, ==, 59);
	CHECK(!(p.flags & VNET_PACKET_L4));
}

TEST(parse_fragments)
{
	uint8_t pkt[2048];
	struct spec s = spec_v4(IPPROTO_UDP);
	struct vnet_packet p;
	uint32_t n, off;

	s.payload = 64;
	n = build(pkt, &s);
	/* First fragment: MF, offset 0 -> transport header parsed. */
	ref_put16(pkt + 6, 0x2000);
	ref_put16(pkt + 24, 1000); /* UDP length of the whole datagram */
	ref_ip4_fill(pkt);
	CHECK_INT(vnet_packet_parse(&p, pkt, n), ==, 0);
	CHECK_UINT(p.flags, ==, VNET_PACKET_FRAGMENT | VNET_PACKET_L4);
	CHECK_UINT(p.payload_len, ==, 64);
	/* Later fragment: offset 8 -> no transport header. */
	ref_put16(pkt + 6, 0x0001);
	ref_ip4_fill(pkt);
	CHECK_INT(vnet_packet_parse(&p, pkt, n), ==, 0);
	CHECK_UINT(p.flags, ==, VNET_PACKET_FRAGMENT | VNET_PACKET_TAIL_FRAGMENT);
	CHECK(vnet_packet_csum_ok(&p));
	/* Its address can change (IP checksum only), its port cannot be here. */
	{
		struct vnet_addr a = {{192, 0, 2, 1}};

		CHECK_INT(vnet_packet_set_dst(&p, &a, 9), ==, 0);
		CHECK_UINT(ref_ip4_residual(pkt), ==, 0xffff);
		CHECK_UINT(ref_get16(pkt + 22), ==, s.dport);
	}

	/* IPv6 fragment header: first, then later. */
	s = spec_v6(IPPROTO_TCP);
	off = ref_ip(pkt, 6, 44, s.src, s.dst, 8, 40);
	memset(pkt + 40, 0, 8 + 40);
	pkt[40] = IPPROTO_TCP;
	ref_put16(pkt + 42, 0x0001); /* offset 0, M */
	pkt[off + 12] = 5 << 4;
	CHECK_INT(vnet_packet_parse(&p, pkt, off + 40), ==, 0);
	CHECK_UINT(p.flags, ==, VNET_PACKET_FRAGMENT | VNET_PACKET_L4);
	ref_put16(pkt + 42, 0x0008); /* offset 1 */
	CHECK_INT(vnet_packet_parse(&p, pkt, off + 40), ==, 0);
	CHECK_UINT(p.flags, ==, VNET_PACKET_FRAGMENT | VNET_PACKET_TAIL_FRAGMENT);
	CHECK_UINT(p.proto, ==, IPPROTO_TCP);
	CHECK_UINT(p.l4_off, ==, 48);
}

TEST(parse_rejects_truncation)
{
	const uint8_t protos[] = {IPPROTO_TCP, IPPROTO_UDP, 0};
	uint8_t pkt[2048];
	struct vnet_packet p;

	for (unsigned fam = 4; fam <= 6; fam += 2) {
		for (unsigned i = 0; i < 3; i++) {
			uint8_t proto = protos[i] ? protos[i]
					: fam == 4  ? IPPROTO_ICMP
						    : IPPROTO_ICMPV6;
			struct spec s = fam == 4 ? spec_v4(proto) : spec_v6(proto);
			uint32_t n;

			s.icmp_type = fam == 4 ? 8 : 128;
			s.payload = 5;
			n = build(pkt, &s);
			CHECK_INT(vnet_packet_parse(&p, pkt, n), ==, 0);
			for (uint32_t len = 0; len < n; len++)
				if (vnet_packet_parse(&p, pkt, len) >= 0)
					TAP_FAIL("family %u proto %u: %u of %u bytes parsed", fam,
						 proto, len, n);
		}
	}
}

TEST(parse_rejects_bad_headers)
{
	uint8_t pkt[2048];
	struct spec s = spec_v4(IPPROTO_TCP);
	struct vnet_packet p;
	uint32_t n;

	n = build(pkt, &s);
	CHECK_INT(vnet_packet_parse(&p, pkt, n), ==, 0);
	pkt[0] = 0x44; /* IHL 4 */
	CHECK_INT(vnet_packet_parse(&p, pkt, n), ==, -EBADMSG);
	pkt[0] = 0x4f; /* IHL 15 > total length 40 */
	CHECK_INT(vnet_packet_parse(&p, pkt, n), ==, -EBADMSG);
	pkt[0] = 0x45;
	ref_put16(pkt + 2, 19); /* total < IHL */
	CHECK_INT(vnet_packet_parse(&p, pkt, n), ==, -EBADMSG);
	ref_put16(pkt + 2, (uint16_t)(n + 1)); /* total > bytes read */
	CHECK_INT(vnet_packet_parse(&p, pkt, n), ==, -EBADMSG);
	ref_put16(pkt + 2, (uint16_t)n);
	pkt[6] |= 0x80; /* reserved flag */
	CHECK_INT(vnet_packet_parse(&p, pkt, n), ==, -EBADMSG);
	pkt[6] &= 0x7f;
	pkt[32] = 4 << 4; /* TCP data offset 4 */
	CHECK_INT(vnet_packet_parse(&p, pkt, n), ==, -EBADMSG);
	pkt[32] = 6 << 4; /* 24 > 20 bytes present */
	CHECK_INT(vnet_packet_parse(&p, pkt, n), ==, -EBADMSG);
	pkt[32] = 5 << 4;
	CHECK_INT(vnet_packet_parse(&p, pkt, n), ==, 0);
	pkt[0] = 0x55; /* version 5 */
	CHECK_INT(vnet_packet_parse(&p, pkt, n), ==, -EPROTONOSUPPORT);
	CHECK_INT(vnet_packet_parse(&p, pkt, 0), ==, -EBADMSG);

	s = spec_v4(IPPROTO_UDP);
	n = build(pkt, &s);
	ref_put16(pkt + 24, 7); /* UDP length < 8 */
	CHECK_INT(vnet_packet_parse(&p, pkt, n), ==, -EBADMSG);
	ref_put16(pkt + 24, (uint16_t)(n - 19)); /* beyond the datagram */
	CHECK_INT(vnet_packet_parse(&p, pkt, n), ==, -EBADMSG);
	ref_put16(pkt + 24, 8); /* shorter: the rest is padding */
	CHECK_INT(vnet_packet_parse(&p, pkt, n), ==, 0);
	CHECK_UINT(p.payload_len, ==, 0);
}

TEST(parse_rejects_bad_ipv6_chains)
{
	uint8_t pkt[2048];
	struct spec s = spec_v6(IPPROTO_UDP);
	struct vnet_packet p;
	uint32_t off;

	/* Nine destination-options headers: more than the walk allows. */
	off = ref_ip(pkt, 6, 60, s.src, s.dst, 9 * 8, 8);
	memset(pkt + 40, 0, 9 * 8 + 8);
	for (int i = 0; i < 9; i++)
		pkt[40 + 8 * i] = i == 8 ? IPPROTO_UDP : 60;
	ref_put16(pkt + off + 4, 8);
	CHECK_INT(vnet_packet_parse(&p, pkt, off + 8), ==, -EBADMSG);
	/* Eight are fine (the ninth's bytes become the UDP datagram). */
	pkt[40 + 8 * 7] = IPPROTO_UDP;
	ref_put16(pkt + 40 + 64 + 4, 16);
	CHECK_INT(vnet_packet_parse(&p, pkt, off + 8), ==, 0);
	CHECK_UINT(p.l4_off, ==, 40 + 64);

	/* Hop-by-hop after another header. */
	off = ref_ip(pkt, 6, 60, s.src, s.dst, 16, 8);
	memset(pkt + 40, 0, 24);
	pkt[40] = 0;
	pkt[48] = IPPROTO_UDP;
	ref_put16(pkt + off + 4, 8);
	CHECK_INT(vnet_packet_parse(&p, pkt, off + 8), ==, -EBADMSG);

	/* A header length running past the datagram. */
	off = ref_ip(pkt, 6, 60, s.src, s.dst, 8, 8);
	memset(pkt + 40, 0, 16);
	pkt[40] = IPPROTO_UDP, pkt[41] = 200;
	CHECK_INT(vnet_packet_parse(&p, pkt, off + 8), ==, -EBADMSG);

	/* Payload length beyond the bytes read; jumbogram. */
	ref_ip(pkt, 6, IPPROTO_UDP, s.src, s.dst, 0, 8);
	CHECK_INT(vnet_packet_parse(&p, pkt, 47), ==, -EBADMSG);
	ref_ip(pkt, 6, 0, s.src, s.dst, 0, 0);
	CHECK_INT(vnet_packet_parse(&p, pkt, 40), ==, -EPROTONOSUPPORT);
}

/* Many random rewrites of valid packets: the incremental checksums equal
 * the naive recomputation exactly. */
static void random_rewrites(unsigned family, uint8_t proto, int rounds)
{
	static uint8_t pkt[VNET_PACKET_MAX];

	for (int i = 0; i < rounds; i++) {
		struct spec s = family == 4 ? spec_v4(proto) : spec_v6(proto);
		struct vnet_addr a1, a2;
		struct vnet_packet p;
		struct vnet_tuple t;
		uint16_t p1 = (uint16_t)rnd(), p2 = (uint16_t)rnd();
		uint32_t n;

		rnd_bytes(s.src, family == 4 ? 4 : 16);
		rnd_bytes(s.dst, family == 4 ? 4 : 16);
		s.sport = (uint16_t)rnd();
		s.dport = (uint16_t)rnd();
		s.payload = i % 50 == 0 ? rnd() % 60000 : rnd() % 1500;
		s.ipopt = family == 4 ? (rnd() % 11) * 4 : 0;
		s.tcpopt = (rnd() % 11) * 4;
		s.tcp_flags = (uint8_t)rnd();
		n = build(pkt, &s);
		REQUIRE(vnet_packet_parse(&p, pkt, n) == 0);
		check_csums_exact(&p);
		rnd_addr(family, &a1);
		rnd_addr(family, &a2);
		switch (rnd() % 4) {
		case 0: /* both ends, as the relay does */
			CHECK_INT(vnet_packet_set_src(&p, &a1, p1), ==, 0);
			CHECK_INT(vnet_packet_set_dst(&p, &a2, p2), ==, 0);
			break;
		case 1: /* only the ports */
			CHECK_INT(vnet_packet_set_src(&p, NULL, p1), ==, 0);
			CHECK_INT(vnet_packet_set_dst(&p, NULL, p2), ==, 0);
			a1 = (struct vnet_addr){{0}}, memcpy(a1.b, s.src, family == 4 ? 4 : 16);
			a2 = (struct vnet_addr){{0}}, memcpy(a2.b, s.dst, family == 4 ? 4 : 16);
			break;
		case 2: /* only the addresses */
			CHECK_INT(vnet_packet_set_src(&p, &a1, s.sport), ==, 0);
			CHECK_INT(vnet_packet_set_dst(&p, &a2, s.dport), ==, 0);
			p1 = s.sport, p2 = s.dport;
			break;
		default: /* swap: the reply direction */
			memcpy(&a1, &a2, sizeof(a1));
			memset(&a2, 0, sizeof(a2));
			memcpy(a2.b, s.src, family == 4 ? 4 : 16);
			CHECK_INT(vnet_packet_set_src(&p, &a1, p1), ==, 0);
			CHECK_INT(vnet_packet_set_dst(&p, &a2, p2), ==, 0);
			break;
		}
		check_csums_exact(&p);
		vnet_packet_tuple(&p, &t);
		CHECK(memcmp(&t.src, &a1, sizeof(a1)) == 0);
		CHECK(memcmp(&t.dst, &a2, sizeof(a2)) == 0);
		CHECK_UINT(t.sport, ==, p1);
		CHECK_UINT(t.dport, ==, p2);
		if (tap_failed_checks) {
			TAP_FAIL("round %d, payload %u", i, s.payload);
			return;
		}
	}
}

TEST(rewrite_random_v4_tcp)
{
	random_rewrites(4, IPPROTO_TCP, 3000);
}

TEST(rewrite_random_v6_tcp)
{
	random_rewrites(6, IPPROTO_TCP, 3000);
}

TEST(rewrite_random_v4_udp)
{
	random_rewrites(4, IPPROTO_UDP, 3000);
}

TEST(rewrite_random_v6_udp)
{
	random_rewrites(6, IPPROTO_UDP, 3000);
}

TEST(rewrite_udp_zero_checksum)
{
	uint8_t pkt[2048];
	struct spec s = spec_v4(IPPROTO_UDP);
	struct vnet_addr a = {{198, 18, 0, 2}};
	struct vnet_packet p;
	uint32_t n;

	/* IPv4: 0 means "none" and stays 0. */
	s.payload = 21;
	n = build(pkt, &s);
	ref_put16(pkt + 26, 0);
	REQUIRE(vnet_packet_parse(&p, pkt, n) == 0);
	CHECK(p.flags & VNET_PACKET_NO_CSUM);
	CHECK_INT(vnet_packet_set_src(&p, &a, 10000), ==, 0);
	CHECK_UINT(ref_get16(pkt + 26), ==, 0);
	CHECK_UINT(ref_ip4_residual(pkt), ==, 0xffff);
	CHECK(vnet_packet_csum_ok(&p));

	/* IPv6: mandatory, so the rewrite computes it. */
	s = spec_v6(IPPROTO_UDP);
	s.payload = 21;
	n = build(pkt, &s);
	ref_put16(pkt + 46, 0);
	REQUIRE(vnet_packet_parse(&p, pkt, n) == 0);
	CHECK(!vnet_packet_csum_ok(&p));
	memset(&a, 0, sizeof(a));
	a.b[0] = 0xfd, a.b[15] = 2;
	CHECK_INT(vnet_packet_set_src(&p, &a, 10000), ==, 0);
	CHECK_UINT(ref_get16(pkt + 46), !=, 0);
	check_csums_exact(&p);

	/* A UDP checksum that comes out 0 is sent as 0xffff: find a port that
	 * makes the sum come out 0 and rewrite to it. */
	s = spec_v4(IPPROTO_UDP);
	s.payload = 0;
	n = build(pkt, &s);
	REQUIRE(vnet_packet_parse(&p, pkt, n) == 0);
	{
		uint16_t c = ref_get16(pkt + 26), port = s.sport;
		/* csum' = ~(~c + ~port + port'): 0 when ~c + ~port + port' = 0xffff */
		uint32_t want = (uint32_t)(0xffff - (uint16_t)~c) + (uint16_t)port;

		port = ref_fold(want) == 0xffff ? 0 : ref_fold(want);
		CHECK_INT(vnet_packet_set_src(&p, NULL, port), ==, 0);
		CHECK_UINT(ref_get16(pkt + 26), ==, 0xffff);
		CHECK(vnet_packet_csum_ok(&p));
	}
}

TEST(rewrite_keeps_wrong_checksum_wrong)
{
	uint8_t pkt[2048];
	struct spec s = spec_v4(IPPROTO_TCP);
	struct vnet_addr a = {{198, 18, 0, 2}};
	struct vnet_packet p;
	uint16_t ip_res, l4_res;
	uint32_t n;

	s.payload = 77;
	n = build(pkt, &s);
	pkt[10] ^= 0x5a;
	pkt[36] ^= 0x33;
	REQUIRE(vnet_packet_parse(&p, pkt, n) == 0);
	CHECK(!vnet_packet_csum_ok(&p));
	ip_res = ref_ip4_residual(pkt);
	l4_res = ref_l4_residual(pkt, 4, IPPROTO_TCP, 20, n - 20);
	CHECK_INT(vnet_packet_set_src(&p, &a, 1), ==, 0);
	CHECK_INT(vnet_packet_set_dst(&p, &a, 2), ==, 0);
	CHECK_UINT(ref_ip4_residual(pkt), ==, ip_res);
	CHECK_UINT(ref_l4_residual(pkt, 4, IPPROTO_TCP, 20, n - 20), ==, l4_res);
}

TEST(echo_reply)
{
	uint8_t pkt[2048], orig[2048];
	struct vnet_packet p;
	uint32_t n;

	for (unsigned fam = 4; fam <= 6; fam += 2) {
		uint8_t proto = fam == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6;
		struct spec s = fam == 4 ? spec_v4(proto) : spec_v6(proto);
		unsigned alen = fam == 4 ? 4 : 16, so = fam == 4 ? 12 : 8, dof = fam == 4 ? 16 : 24;
		struct vnet_tuple t;

		s.icmp_type = fam == 4 ? 8 : 128;
		s.sport = 0x1234; /* identifier */
		s.payload = 56;
		n = build(pkt, &s);
		memcpy(orig, pkt, n);
		REQUIRE(vnet_packet_parse(&p, pkt, n) == 0);
		vnet_packet_tuple(&p, &t);
		CHECK_UINT(t.sport, ==, 0x1234);
		CHECK_UINT(t.dport, ==, 0x1234);
		CHECK_INT(vnet_packet_echo_reply(&p), ==, 0);
		CHECK(memcmp(pkt + so, orig + dof, alen) == 0);
		CHECK(memcmp(pkt + dof, orig + so, alen) == 0);
		CHECK_UINT(pkt[p.l4_off], ==, fam == 4 ? 0 : 129);
		CHECK(memcmp(pkt + p.l4_off + 4, orig + p.l4_off + 4, n - p.l4_off - 4) == 0);
		CHECK(vnet_packet_csum_ok(&p));
		check_csums_exact(&p);
		/* Reparse: a reply, not a request. */
		REQUIRE(vnet_packet_parse(&p, pkt, n) == 0);
		CHECK_UINT(p.icmp_type, ==, fam == 4 ? 0 : 129);
		CHECK_INT(vnet_packet_echo_reply(&p), ==, -EINVAL);
	}
	/* Not ICMP; echo to multicast. */
	{
		struct spec s = spec_v4(IPPROTO_UDP);

		n = build(pkt, &s);
		REQUIRE(vnet_packet_parse(&p, pkt, n) == 0);
		CHECK_INT(vnet_packet_echo_reply(&p), ==, -EINVAL);
		s = spec_v4(IPPROTO_ICMP);
		s.icmp_type = 8;
		s.dst[0] = 224;
		n = build(pkt, &s);
		REQUIRE(vnet_packet_parse(&p, pkt, n) == 0);
		CHECK_INT(vnet_packet_echo_reply(&p), ==, -EINVAL);
	}
}

TEST(build_rst)
{
	uint8_t pkt[2048], out[128];
	struct vnet_packet p, r;
	struct vnet_tuple t, tr;
	int len;

	for (unsigned fam = 4; fam <= 6; fam += 2) {
		struct spec s = fam == 4 ? spec_v4(IPPROTO_TCP) : spec_v6(IPPROTO_TCP);
		uint32_t n;

		/* A SYN: RST|ACK acknowledging seq + 1. */
		s.tcp_flags = VNET_TCP_SYN;
		s.seq = 0xfffffffe;
		n = build(pkt, &s);
		REQUIRE(vnet_packet_parse(&p, pkt, n) == 0);
		len = vnet_packet_build_rst(out, sizeof(out), &p);
		CHECK_INT(len, ==, (fam == 4 ? 20 : 40) + 20);
		REQUIRE(vnet_packet_parse(&r, out, (size_t)len) == 0);
		CHECK(vnet_packet_csum_ok(&r));
		check_csums_exact(&r);
		CHECK_UINT(r.tcp_flags, ==, VNET_TCP_RST | VNET_TCP_ACK);
		CHECK_UINT(vnet_packet_tcp_seq(&r), ==, 0);
		CHECK_UINT(vnet_packet_tcp_ack(&r), ==, 0xffffffff);
		vnet_packet_tuple(&p, &t);
		vnet_packet_tuple(&r, &tr);
		vnet_tuple_reverse(&tr);
		CHECK(vnet_tuple_equal(&t, &tr));

		/* Data with ACK: RST with seq = their ack. */
		s.tcp_flags = VNET_TCP_ACK | VNET_TCP_PSH | VNET_TCP_FIN;
		s.seq = 1000;
		s.ack = 0xabcdef01;
		s.payload = 10;
		n = build(pkt, &s);
		REQUIRE(vnet_packet_parse(&p, pkt, n) == 0);
		len = vnet_packet_build_rst(out, sizeof(out), &p);
		REQUIRE(len > 0 && vnet_packet_parse(&r, out, (size_t)len) == 0);
		CHECK_UINT(r.tcp_flags, ==, VNET_TCP_RST);
		CHECK_UINT(vnet_packet_tcp_seq(&r), ==, 0xabcdef01);
		CHECK(vnet_packet_csum_ok(&r));

		/* Without ACK, data and FIN count: ack = seq + 10 + 1. */
		s.tcp_flags = VNET_TCP_FIN;
		n = build(pkt, &s);
		REQUIRE(vnet_packet_parse(&p, pkt, n) == 0);
		len = vnet_packet_build_rst(out, sizeof(out), &p);
		REQUIRE(len > 0 && vnet_packet_parse(&r, out, (size_t)len) == 0);
		CHECK_UINT(vnet_packet_tcp_ack(&r), ==, 1011);

		/* Never a RST for a RST; room checked. */
		s.tcp_flags = VNET_TCP_RST;
		n = build(pkt, &s);
		REQUIRE(vnet_packet_parse(&p, pkt, n) == 0);
		CHECK_INT(vnet_packet_build_rst(out, sizeof(out), &p), ==, -EINVAL);
		s.tcp_flags = VNET_TCP_SYN;
		n = build(pkt, &s);
		REQUIRE(vnet_packet_parse(&p, pkt, n) == 0);
		CHECK_INT(vnet_packet_build_rst(out, fam == 4 ? 39 : 59, &p), ==, -ENOBUFS);
	}
	{
		struct spec s = spec_v4(IPPROTO_UDP);
		uint32_t n = build(pkt, &s);

		REQUIRE(vnet_packet_parse(&p, pkt, n) == 0);
		CHECK_INT(vnet_packet_build_rst(out, sizeof(out), &p), ==, -EINVAL);
	}
}

TEST(build_unreach)
{
	static uint8_t pkt[VNET_PACKET_MAX], out[2048];
	struct vnet_packet p, r;
	int len;

	for (unsigned fam = 4; fam <= 6; fam += 2) {
		struct spec s = fam == 4 ? spec_v4(IPPROTO_UDP) : spec_v6(IPPROTO_UDP);
		uint32_t hlen = fam == 4 ? 20 : 40, limit = fam == 4 ? 576 : 1280;
		struct vnet_tuple t, tr;
		uint32_t n;

		s.payload = 30;
		n = build(pkt, &s);
		REQUIRE(vnet_packet_parse(&p, pkt, n) == 0);
		len = vnet_packet_build_unreach(out, sizeof(out), &p, VNET_UNREACH_PORT);
		CHECK_INT(len, ==, hlen + 8 + n);
		REQUIRE(len > 0 && vnet_packet_parse(&r, out, (size_t)len) == 0);
		CHECK(vnet_packet_csum_ok(&r));
		check_csums_exact(&r);
		CHECK_UINT(r.icmp_type, ==, fam == 4 ? 3 : 1);
		CHECK_UINT(out[hlen + 1], ==, fam == 4 ? 3 : 4);
		CHECK(memcmp(out + hlen + 8, pkt, n) == 0);
		vnet_packet_tuple(&p, &t);
		vnet_packet_tuple(&r, &tr);
		CHECK(memcmp(&t.src, &tr.dst, sizeof(t.src)) == 0);
		CHECK(memcmp(&t.dst, &tr.src, sizeof(t.src)) == 0);

		/* Big datagrams are quoted up to the minimum MTU. */
		s.payload = 60000;
		n = build(pkt, &s);
		REQUIRE(vnet_packet_parse(&p, pkt, n) == 0);
		len = vnet_packet_build_unreach(out, sizeof(out), &p, VNET_UNREACH_ADMIN);
		CHECK_INT(len, ==, limit);
		REQUIRE(len > 0 && vnet_packet_parse(&r, out, (size_t)len) == 0);
		CHECK(vnet_packet_csum_ok(&r));
		CHECK_UINT(out[hlen + 1], ==, fam == 4 ? 13 : 1);
		CHECK_INT(vnet_packet_build_unreach(out, limit - 1, &p, VNET_UNREACH_ADMIN), ==,
			  -ENOBUFS);

		/* No error about an ICMP error, nor to/from multicast. */
		s = fam == 4 ? spec_v4(IPPROTO_ICMP) : spec_v6(IPPROTO_ICMPV6);
		s.icmp_type = fam == 4 ? 3 : 1;
		n = build(pkt, &s);
		REQUIRE(vnet_packet_parse(&p, pkt, n) == 0);
		CHECK_INT(vnet_packet_build_unreach(out, sizeof(out), &p, VNET_UNREACH_HOST), ==,
			  -EINVAL);
		s.icmp_type = fam == 4 ? 8 : 128; /* but about an echo request, yes */
		n = build(pkt, &s);
		REQUIRE(vnet_packet_parse(&p, pkt, n) == 0);
		CHECK_INT(vnet_packet_build_unreach(out, sizeof(out), &p, VNET_UNREACH_HOST), >, 0);
		s = fam == 4 ? spec_v4(IPPROTO_UDP) : spec_v6(IPPROTO_UDP);
		s.dst[0] = fam == 4 ? 239 : 0xff;
		n = build(pkt, &s);
		REQUIRE(vnet_packet_parse(&p, pkt, n) == 0);
		CHECK_INT(vnet_packet_build_unreach(out, sizeof(out), &p, VNET_UNREACH_PORT), ==,
			  -EINVAL);
	}
}

TEST(build_udp)
{
	static uint8_t out[VNET_PACKET_MAX + 16], payload[70000];
	struct vnet_packet p;
	struct vnet_tuple t = {.family = 4, .proto = IPPROTO_UDP, .sport = 53, .dport = 40000},
			  got;
	int len;

	t.src.b[0] = 10, t.src.b[3] = 53;
	t.dst.b[0] = 10, t.dst.b[3] = 2;
	rnd_bytes(payload, sizeof(payload));
	for (size_t plen = 0; plen < 3000; plen += 1 + rnd() % 97) {
		for (unsigned fam = 4; fam <= 6; fam += 2) {
			t.family = (uint8_t)fam;
			if (fam == 6)
				t.src.b[15] = 1, t.dst.b[15] = 2;
			else
				t.src.b[15] = t.dst.b[15] = 0;
			len = vnet_packet_build_udp(out, sizeof(out), &t, payload, plen);
			CHECK_INT(len, ==, (fam == 4 ? 28 : 48) + plen);
			REQUIRE(len > 0 && vnet_packet_parse(&p, out, (size_t)len) == 0);
			check_csums_exact(&p);
			vnet_packet_tuple(&p, &got);
			CHECK(vnet_tuple_equal(&got, &t));
			CHECK_UINT(p.payload_len, ==, plen);
			CHECK(memcmp(out + p.payload_off, payload, plen) == 0);
		}
	}
	t.family = 4;
	memset(t.src.b + 4, 0, 12);
	memset(t.dst.b + 4, 0, 12);
	CHECK_INT(vnet_packet_build_udp(out, sizeof(out), &t, payload, 65507), ==, 65535);
	CHECK_INT(vnet_packet_build_udp(out, sizeof(out), &t, payload, 65508), ==, -EMSGSIZE);
	t.family = 6;
	CHECK_INT(vnet_packet_build_udp(out, sizeof(out), &t, payload, 65527), ==, 65575);
	CHECK_INT(vnet_packet_build_udp(out, sizeof(out), &t, payload, 65528), ==, -EMSGSIZE);
	CHECK_INT(vnet_packet_build_udp(out, 100, &t, payload, 100), ==, -ENOBUFS);
	t.proto = IPPROTO_TCP;
	CHECK_INT(vnet_packet_build_udp(out, sizeof(out), &t, payload, 1), ==, -EINVAL);
}

TEST(random_bytes_never_crash)
{
	static uint8_t buf[4096];
	struct vnet_packet p;
	int parsed = 0;

	for (int i = 0; i < 200000; i++) {
		size_t len = rnd() % 200;

		rnd_bytes(buf, len);
		if (len)
			buf[0] = (uint8_t)((rnd() & 1 ? 0x40 : 0x60) | (buf[0] & 15));
		if (len > 4 && buf[0] >> 4 == 4)
			ref_put16(buf + 2, (uint16_t)(rnd() % (len + 4)));
		if (len > 6 && buf[0] >> 4 == 6)
			ref_put16(buf + 4, (uint16_t)(rnd() % (len + 4)));
		if (vnet_packet_parse(&p, buf, len) == 0) {
			parsed++;
			CHECK_UINT(p.len, <=, len);
			CHECK_UINT(p.l4_off, <=, p.len);
			if (p.flags & VNET_PACKET_L4)
				CHECK_UINT(p.payload_off + p.payload_len, <=, p.len);
		}
	}
	printf("# %d of 200000 random inputs parsed\n", parsed);
	CHECK_INT(parsed, >, 0);
}

TAP_MAIN()
