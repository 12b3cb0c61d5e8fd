/* dns internals, included only by the sources in dns/. */
#ifndef PODENV_DNS_DNS_INT_H
#define PODENV_DNS_DNS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "dns/dns.h"

/* Big-endian (network order) loads and stores on unaligned bytes. */
static inline uint16_t dns_be16_load(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t dns_be32_load(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void dns_be16_store(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void dns_be32_store(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

/* Reads the possibly compressed name at *off of the n-byte message p into
 * wire (uncompressed, DNS_NAME_MAX bytes) and sets *wlen. The part of the
 * name written in place must end before end (<= n: a record's rdata end);
 * pointers may reach anywhere before the name. Each pointer must point
 * after the header and strictly before the place the current piece of the
 * name started, so the positions read strictly decrease from jump to jump
 * and no loop is possible. *off moves past the name as written in place.
 * Returns 0 or -EBADMSG. */
int dns_wire_name_read(const uint8_t *p, size_t n, size_t *off, size_t end,
		       uint8_t wire[DNS_NAME_MAX], size_t *wlen);

/* Writes the text form of a wire name (valid, as dns_wire_name_read or
 * dns_name_to_wire make them) to out, which has DNS_NAME_STRLEN bytes.
 * Returns the text's length. */
size_t dns_wire_name_text(const uint8_t *wire, char out[DNS_NAME_STRLEN]);

#endif
