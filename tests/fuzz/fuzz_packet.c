/* FUZZ_MODULE vnet */
/* Fuzz target for vnet/packet.c. The first byte steers, the rest is a packet
 * as read from the TUN. Whatever parses is:
 *  - checked for sane offsets;
 *  - rewritten (source and/or destination, address and/or port, chosen by
 *    the first byte and values hashed from the input), after which the IPv4
 *    header and transport residuals must be unchanged (a naive recomputation
 *    from tests/unit/vnet/pktref.h), and a checksum that was right must equal
 *    the from-scratch value exactly;
 *  - turned into an echo reply when it is an echo request (same checks);
 *  - answered with a RST, an ICMP unreachable and a UDP datagram, each of
 *    which must parse and carry right checksums.
 * The packet is copied into a buffer of its exact size so that AddressSanitizer
 * sees any read past it. */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/vnet/pktref.h"
#include "vnet/vnet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		fprintf(stderr, "fuzz_packet: " __VA_ARGS__);                                      \
		fputc('\n', stderr);                                                               \
		abort();                                                                           \
	} while (0)

static uint8_t out[VNET_PACKET_MAX + 64];

static uint32_t span_of(const struct vnet_packet *p)
{
	return p->proto == IPPROTO_UDP ? p->l4_len + p->payload_len : p->len - p->l4_off;
}

static int csum_off(const struct vnet_packet *p)
{
	if (!(p->flags & VNET_PACKET_L4))
		return -1;
	switch (p->proto) {
	case IPPROTO_TCP:
		return 16;
	case IPPROTO_UDP:
		return 6;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		return 2;
	}
	return -1;
}

struct residuals {
	uint16_t ip, l4;
};

static struct residuals residuals(const struct vnet_packet *p)
{
	struct residuals r = {0, 0};

	if (p->family == 4)
		r.ip = ref_ip4_residual(p->data);
	if (csum_off(p) >= 0)
		r.l4 = ref_l4_residual(p->data, p->family, p->proto, p->l4_off, span_of(p));
	return r;
}

/* After a change: residuals kept, a right checksum equal to the naive one. */
static void check_after(const struct vnet_packet *p, struct residuals before, bool no_csum_v4,
			bool v6_fill, const char *what)
{
	struct residuals after = residuals(p);
	int off = csum_off(p);

	if (p->family == 4 && after.ip != before.ip)
		FAIL("%s: IPv4 header residual %#x -> %#x", what, before.ip, after.ip);
	if (off < 0)
		return;
	if (no_csum_v4) {
		if (ref_get16(p->data + p->l4_off + 6) != 0)
			FAIL("%s: IPv4 UDP checksum 0 not kept", what);
		return;
	}
	if (v6_fill) {
		if (after.l4 != 0xffff)
			FAIL("%s: IPv6 UDP checksum not filled in", what);
	} else if (after.l4 != before.l4) {
		FAIL("%s: transport residual %#x -> %#x", what, before.l4, after.l4);
	}
	if (p->proto == IPPROTO_UDP && ref_get16(p->data + p->l4_off + 6) == 0)
		FAIL("%s: UDP checksum became 0", what);
	if (after.l4 == 0xffff && !(p->flags & VNET_PACKET_FRAGMENT)) {
		static uint8_t copy[VNET_PACKET_MAX];

		memcpy(copy, p->data, p->len);
		ref_l4_fill(copy, p->family, p->proto, p->l4_off, span_of(p), (unsigned)off);
		if (memcmp(copy + p->l4_off + off, p->data + p->l4_off + off, 2) != 0 &&
		    p->proto == IPPROTO_UDP)
			FAIL("%s: UDP checksum differs from the recomputation", what);
		/* TCP/ICMP: 0x0000 and 0xffff both verify; the recomputation
		 * never yields 0xffff, the update neither unless it came in. */
		if (memcmp(copy + p->l4_off + off, p->data + p->l4_off + off, 2) != 0 &&
		    ref_get16(p->data + p->l4_off + off) != 0xffff)
			FAIL("%s: checksum %#x differs from the recomputation %#x", what,
			     ref_get16(p->data + p->l4_off + off), ref_get16(copy + p->l4_off + off));
	}
	if (p->family == 4 && after.ip == 0xffff) {
		uint8_t hdr[60];
		size_t ihl = (size_t)(p->data[0] & 15) * 4;

		memcpy(hdr, p->data, ihl);
		ref_ip4_fill(hdr);
		if (memcmp(hdr + 10, p->data + 10, 2) != 0 && ref_get16(p->data + 10) != 0xffff)
			FAIL("%s: IPv4 header checksum differs from the recomputation", what);
	}
}

static void check_built(int len, const char *what)
{
	struct vnet_packet b;

	if (len < 0)
		return;
	if (vnet_packet_parse(&b, out, (size_t)len) != 0)
		FAIL("%s: built packet does not parse", what);
	if ((uint32_t)len != b.len)
		FAIL("%s: built length %d vs %u", what, len, b.len);
	if (!vnet_packet_csum_ok(&b))
		FAIL("%s: built packet has a bad checksum", what);
}

static void sanity(const struct vnet_packet *p, size_t size)
{
	if (p->len > size || p->l4_off > p->len)
		FAIL("offsets: len %u size %zu l4_off %u", p->len, size, p->l4_off);
	if ((p->flags & VNET_PACKET_L4) &&
	    (p->payload_off != p->l4_off + p->l4_len || p->payload_off + p->payload_len > p->len))
		FAIL("transport offsets");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vnet_packet p;
	struct vnet_tuple t;
	struct residuals before;
	struct vnet_addr a1, a2;
	uint64_t h = 0xcbf29ce484222325ULL;
	uint8_t ctl, *pkt;
	bool no_csum_v4, v6_fill;
	int r;

	if (size < 1)
		return 0;
	ctl = data[0];
	data++;
	size--;
	pkt = malloc(size ? size : 1);
	if (!pkt)
		abort();
	memcpy(pkt, data, size);
	if (vnet_packet_parse(&p, pkt, size) != 0)
		goto out;
	sanity(&p, size);
	vnet_packet_tuple(&p, &t);
	(void)vnet_packet_csum_ok(&p);
	(void)vnet_packet_tcp_seq(&p);
	(void)vnet_packet_tcp_ack(&p);

	/* Builders, on the packet as it came. */
	check_built(vnet_packet_build_rst(out, sizeof(out), &p), "rst");
	check_built(vnet_packet_build_unreach(out, sizeof(out), &p, (enum vnet_unreach)(ctl & 3)),
		    "unreach");
	if (p.flags & VNET_PACKET_L4) {
		struct vnet_tuple u = t;

		u.proto = IPPROTO_UDP;
		vnet_tuple_reverse(&u);
		check_built(vnet_packet_build_udp(out, sizeof(out), &u, pkt + p.payload_off,
						  p.payload_len),
			    "udp");
	}

	/* Rewrite. */
	for (size_t i = 0; i < size; i++)
		h = (h ^ pkt[i]) * 0x100000001b3ULL;
	memset(&a1, 0, sizeof(a1));
	memset(&a2, 0, sizeof(a2));
	for (unsigned i = 0; i < (p.family == 4 ? 4u : 16u); i++) {
		a1.b[i] = (uint8_t)(h >> (8 * (i % 8)));
		a2.b[i] = (uint8_t)(h >> (8 * ((i + 3) % 8))) ^ 0x5a;
	}
	before = residuals(&p);
	no_csum_v4 = p.family == 4 && p.proto == IPPROTO_UDP && (p.flags & VNET_PACKET_NO_CSUM);
	v6_fill = p.family == 6 && p.proto == IPPROTO_UDP && (p.flags & VNET_PACKET_NO_CSUM) &&
		  (p.flags & VNET_PACKET_L4);
	r = vnet_packet_set_src(&p, ctl & 1 ? &a1 : NULL, ctl & 2 ? (uint16_t)h : t.sport);
	if (r == 0)
		r = vnet_packet_set_dst(&p, ctl & 4 ? &a2 : NULL,
					ctl & 8 ? (uint16_t)(h >> 16) : t.dport);
	if (r == 0) {
		struct vnet_tuple t2;

		check_after(&p, before, no_csum_v4, v6_fill, "rewrite");
		vnet_packet_tuple(&p, &t2);
		if ((ctl & 1) && memcmp(&t2.src, &a1, sizeof(a1)) != 0)
			FAIL("source address not set");
		if ((ctl & 8) && (p.flags & VNET_PACKET_L4) &&
		    (p.proto == IPPROTO_TCP || p.proto == IPPROTO_UDP) &&
		    t2.dport != (uint16_t)(h >> 16))
			FAIL("destination port not set");
	} else if (r != -EOPNOTSUPP) {
		FAIL("rewrite: %d", r);
	}

	/* Echo reply, re-parsed from the (maybe rewritten) bytes. */
	if (vnet_packet_parse(&p, pkt, size) == 0) {
		before = residuals(&p);
		if (vnet_packet_echo_reply(&p) == 0)
			check_after(&p, before, false, false, "echo reply");
	}
out:
	free(pkt);
	return 0;
}
