/* Reference code for the vnet tests and the packet fuzzer: a deliberately
 * naive Internet checksum (16-bit words, byte by byte, RFC 1071) that shares
 * nothing with vnet/, and hand-rolled packet builders for test inputs.
 *
 * "Residual" = the folded sum of the covered bytes with the checksum in
 * place: 0xffff when the checksum is right. A rewrite must keep it
 * unchanged (a right checksum stays right, a wrong one stays wrong by the
 * same amount).
 */
#ifndef PODENV_TESTS_VNET_PKTREF_H
#define PODENV_TESTS_VNET_PKTREF_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t ref_fold(uint64_t s)
{
	while (s > 0xffff)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

static inline uint64_t ref_add(uint64_t s, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i += 2)
		s += (uint64_t)p[i] << 8 | (i + 1 < n ? p[i + 1] : 0);
	return s;
}

static inline uint64_t ref_pseudo(const uint8_t *pkt, unsigned family, uint8_t proto,
				  uint32_t span)
{
	uint64_t s = 0;

	if (family == 4)
		s = ref_add(s, pkt + 12, 8);
	else
		s = ref_add(s, pkt + 8, 32);
	return s + proto + (span >> 16) + (span & 0xffff);
}

/* IPv4 header residual over ihl bytes. */
static inline uint16_t ref_ip4_residual(const uint8_t *pkt)
{
	return ref_fold(ref_add(0, pkt, (size_t)(pkt[0] & 15) * 4));
}

/* Transport residual over span bytes at l4_off (with pseudo-header unless
 * ICMPv4). */
static inline uint16_t ref_l4_residual(const uint8_t *pkt, unsigned family, uint8_t proto,
				       uint32_t l4_off, uint32_t span)
{
	uint64_t s = proto == IPPROTO_ICMP ? 0 : ref_pseudo(pkt, family, proto, span);

	return ref_fold(ref_add(s, pkt + l4_off, span));
}

/* Computes and stores the checksum at pkt + l4_off + csum_off from scratch
 * (UDP: 0 becomes 0xffff). */
static inline void ref_l4_fill(uint8_t *pkt, unsigned family, uint8_t proto, uint32_t l4_off,
			       uint32_t span, unsigned csum_off)
{
	uint16_t c;

	pkt[l4_off + csum_off] = pkt[l4_off + csum_off + 1] = 0;
	c = (uint16_t)~ref_fold(proto == IPPROTO_ICMP ? ref_add(0, pkt + l4_off, span)
						      : ref_add(ref_pseudo(pkt, family, proto, span),
								pkt + l4_off, span));
	if (c == 0 && proto == IPPROTO_UDP)
		c = 0xffff;
	pkt[l4_off + csum_off] = (uint8_t)(c >> 8);
	pkt[l4_off + csum_off + 1] = (uint8_t)c;
}

static inline void ref_ip4_fill(uint8_t *pkt)
{
	uint16_t c;

	pkt[10] = pkt[11] = 0;
	c = (uint16_t)~ref_fold(ref_add(0, pkt, (size_t)(pkt[0] & 15) * 4));
	pkt[10] = (uint8_t)(c >> 8);
	pkt[11] = (uint8_t)c;
}

static inline void ref_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline uint16_t ref_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* Writes an IP header: IPv4 with optlen bytes of NOP options (a multiple of
 * 4); IPv6 with next header `proto` and optlen bytes of extension headers
 * that the caller lays out after byte 40. Returns the offset after them. */
static inline uint32_t ref_ip(uint8_t *pkt, unsigned family, uint8_t proto, const uint8_t *src,
			      const uint8_t *dst, uint32_t optlen, uint32_t l4len)
{
	if (family == 4) {
		uint32_t ihl = 20 + optlen;

		memset(pkt, 0, 20);
		pkt[0] = (uint8_t)(0x40 | ihl / 4);
		ref_put16(pkt + 2, (uint16_t)(ihl + l4len));
		ref_put16(pkt + 4, 0x1234);
		ref_put16(pkt + 6, 0x4000);
		pkt[8] = 64;
		pkt[9] = proto;
		memcpy(pkt + 12, src, 4);
		memcpy(pkt + 16, dst, 4);
		for (uint32_t i = 0; i < optlen; i++)
			pkt[20 + i] = 1; /* NOP options */
		ref_ip4_fill(pkt);
		return ihl;
	}
	memset(pkt, 0, 8);
	pkt[0] = 0x60;
	ref_put16(pkt + 4, (uint16_t)(optlen + l4len));
	pkt[6] = proto;
	pkt[7] = 64;
	memcpy(pkt + 8, src, 16);
	memcpy(pkt + 24, dst, 16);
	return 40 + optlen;
}

#endif
