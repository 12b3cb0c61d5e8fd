/* vnet internals, included only by the sources in vnet/: big-endian loads
 * and stores on unaligned bytes, and the Internet checksum (RFC 1071) with
 * its incremental update (RFC 1624). */
#ifndef PODENV_VNET_VNET_INT_H
#define PODENV_VNET_VNET_INT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vnet/vnet.h"

static inline uint16_t vnet_be16_load(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t vnet_be32_load(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void vnet_be16_store(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void vnet_be32_store(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Folds a one's complement accumulator to 16 bits. A non-zero sum never
 * folds to 0 (it gives 0xffff, "negative zero"), which is what keeps a
 * computed checksum out of 0xffff and lets UDP use 0 for "none". */
static inline uint16_t vnet_csum_fold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* Adds len bytes at p to sum as big-endian 16-bit words; an odd last byte
 * is padded with zero (RFC 1071). Several calls chain as long as every
 * chunk but the last has an even length. */
static inline uint64_t vnet_csum_add(uint64_t sum, const uint8_t *p, size_t len)
{
	/* 32-bit words: 2^16 = 1 modulo 0xffff, so summing 32-bit big-endian
	 * words and folding gives the same result as 16-bit words. */
	while (len >= 4) {
		sum += vnet_be32_load(p);
		p += 4;
		len -= 4;
	}
	if (len >= 2) {
		sum += vnet_be16_load(p);
		p += 2;
		len -= 2;
	}
	if (len)
		sum += (uint64_t)p[0] << 8;
	return sum;
}

/* RFC 1624 eqn. 3: the checksum field at csum changes from covering the n
 * bytes at old (n even) to covering the n bytes at new: HC' = ~(~HC + ~m + m').
 * Call before the data itself is overwritten, or with copies. */
static inline void vnet_csum_replace(uint8_t *csum, const uint8_t *old, const uint8_t *new,
				     size_t n)
{
	uint64_t sum = (uint16_t)~vnet_be16_load(csum);

	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint16_t)~vnet_be16_load(old + i) + (uint64_t)vnet_be16_load(new + i);
	vnet_be16_store(csum, (uint16_t)~vnet_csum_fold(sum));
}

static inline void vnet_csum_replace16(uint8_t *csum, uint16_t old, uint16_t new)
{
	uint8_t o[2], n[2];

	vnet_be16_store(o, old);
	vnet_be16_store(n, new);
	vnet_csum_replace(csum, o, n, 2);
}

#endif
