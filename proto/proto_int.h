/* proto internals, included only by the sources in proto/. */
#ifndef PODENV_PROTO_PROTO_INT_H
#define PODENV_PROTO_PROTO_INT_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "proto/proto.h"

/* Encoded sizes of the fixed-size structs. */
#define PROTO_ATTR_SIZE 88   /* 8+4*4+8*3+4+3*(8+4) */
#define PROTO_STATFS_SIZE 52 /* 5*8 + 3*4 */

/* Little-endian loads and stores on unaligned bytes. */
static inline void proto_le16_store(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void proto_le32_store(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void proto_le64_store(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t proto_le16_load(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t proto_le32_load(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t proto_le64_load(const uint8_t *p)
{
	return (uint64_t)proto_le32_load(p) | (uint64_t)proto_le32_load(p + 4) << 32;
}

/* Marks the reader failed (sticky). */
static inline void proto_reader_fail(struct proto_reader *r)
{
	r->error = -EPROTO;
}

/* proto_get_u8 that must be 0 or 1. */
bool proto_get_bool(struct proto_reader *r);
struct proto_time proto_get_time(struct proto_reader *r);
void proto_put_time(struct buf *b, const struct proto_time *t);
void proto_put_statfs(struct buf *b, const struct proto_statfs *s);
void proto_get_statfs(struct proto_reader *r, struct proto_statfs *s);
/* A list: u32 count then the items, each validated by `item`. */
struct proto_list proto_get_list(struct proto_reader *r, uint16_t type);
void proto_put_list(struct buf *b, const struct proto_list *l);

#endif
