/* Primitive encoding: little-endian integers, strings, blobs and the
 * fixed structs (attr, statfs, addr, time) appended to a struct buf, and
 * the bounds-checked reader that decodes them. Every message codec is
 * built from these, so every length check lives here. */
#include <errno.h>
#include <string.h>

#include "proto/proto_int.h"

void proto_put_u8(struct buf *b, uint8_t v)
{
	buf_append(b, &v, 1);
}

void proto_put_u16(struct buf *b, uint16_t v)
{
	uint8_t p[2];

	proto_le16_store(p, v);
	buf_append(b, p, sizeof(p));
}

void proto_put_u32(struct buf *b, uint32_t v)
{
	uint8_t p[4];

	proto_le32_store(p, v);
	buf_append(b, p, sizeof(p));
}

void proto_put_u64(struct buf *b, uint64_t v)
{
	uint8_t p[8];

	proto_le64_store(p, v);
	buf_append(b, p, sizeof(p));
}

void proto_put_str(struct buf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	/* Longer than any payload: the frame check (-EMSGSIZE) rejects it. */
	proto_put_u32(b, n > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)n);
	buf_append(b, s, n);
	proto_put_u8(b, 0);
}

void proto_put_blob(struct buf *b, const void *p, uint32_t len)
{
	proto_put_u32(b, len);
	buf_append(b, p, len);
}

void proto_put_time(struct buf *b, const struct proto_time *t)
{
	proto_put_u64(b, (uint64_t)t->sec);
	proto_put_u32(b, t->nsec);
}

void proto_put_attr(struct buf *b, const struct proto_attr *a)
{
	proto_put_u64(b, a->ino);
	proto_put_u32(b, a->mode);
	proto_put_u32(b, a->nlink);
	proto_put_u32(b, a->uid);
	proto_put_u32(b, a->gid);
	proto_put_u64(b, a->rdev);
	proto_put_u64(b, a->size);
	proto_put_u64(b, a->blocks);
	proto_put_u32(b, a->blksize);
	proto_put_time(b, &a->atime);
	proto_put_time(b, &a->mtime);
	proto_put_time(b, &a->ctime);
}

void proto_put_statfs(struct buf *b, const struct proto_statfs *s)
{
	proto_put_u64(b, s->blocks);
	proto_put_u64(b, s->bfree);
	proto_put_u64(b, s->bavail);
	proto_put_u64(b, s->files);
	proto_put_u64(b, s->ffree);
	proto_put_u32(b, s->bsize);
	proto_put_u32(b, s->frsize);
	proto_put_u32(b, s->namemax);
}

/* Callers validate the family first (proto_msg_encode returns -EINVAL);
 * an unknown one is written as NONE so the output still decodes. */
void proto_put_addr(struct buf *b, const struct proto_addr *a)
{
	switch (a->family) {
	case PROTO_AF_INET:
		proto_put_u8(b, PROTO_AF_INET);
		buf_append(b, a->bytes, 4);
		break;
	case PROTO_AF_INET6:
		proto_put_u8(b, PROTO_AF_INET6);
		buf_append(b, a->bytes, 16);
		break;
	default:
		proto_put_u8(b, PROTO_AF_NONE);
		break;
	}
}

void proto_reader_init(struct proto_reader *r, const void *p, size_t len)
{
	*r = (struct proto_reader){.p = p, .len = len};
}

const uint8_t *proto_get_raw(struct proto_reader *r, size_t n)
{
	const uint8_t *p;

	if (r->error || n > r->len - r->off) {
		proto_reader_fail(r);
		return NULL;
	}
	p = r->p + r->off;
	r->off += n;
	return p;
}

uint8_t proto_get_u8(struct proto_reader *r)
{
	const uint8_t *p = proto_get_raw(r, 1);

	return p ? p[0] : 0;
}

bool proto_get_bool(struct proto_reader *r)
{
	uint8_t v = proto_get_u8(r);

	if (v > 1)
		proto_reader_fail(r);
	return v == 1;
}

uint16_t proto_get_u16(struct proto_reader *r)
{
	const uint8_t *p = proto_get_raw(r, 2);

	return p ? proto_le16_load(p) : 0;
}

uint32_t proto_get_u32(struct proto_reader *r)
{
	const uint8_t *p = proto_get_raw(r, 4);

	return p ? proto_le32_load(p) : 0;
}

uint64_t proto_get_u64(struct proto_reader *r)
{
	const uint8_t *p = proto_get_raw(r, 8);

	return p ? proto_le64_load(p) : 0;
}

const char *proto_get_str(struct proto_reader *r)
{
	uint32_t n = proto_get_u32(r);
	const uint8_t *p;

	/* n + 1 cannot wrap in size_t; get_raw checks it against what is left. */
	p = proto_get_raw(r, (size_t)n + 1);
	if (!p)
		return "";
	if (p[n] != 0 || memchr(p, 0, n)) {
		proto_reader_fail(r);
		return "";
	}
	return (const char *)p;
}

struct proto_bytes proto_get_blob(struct proto_reader *r)
{
	uint32_t n = proto_get_u32(r);
	const uint8_t *p = proto_get_raw(r, n);

	if (!p)
		return (struct proto_bytes){0};
	return (struct proto_bytes){.data = p, .len = n};
}

struct proto_time proto_get_time(struct proto_reader *r)
{
	struct proto_time t;

	t.sec = (int64_t)proto_get_u64(r);
	t.nsec = proto_get_u32(r);
	return t;
}

void proto_get_attr(struct proto_reader *r, struct proto_attr *a)
{
	a->ino = proto_get_u64(r);
	a->mode = proto_get_u32(r);
	a->nlink = proto_get_u32(r);
	a->uid = proto_get_u32(r);
	a->gid = proto_get_u32(r);
	a->rdev = proto_get_u64(r);
	a->size = proto_get_u64(r);
	a->blocks = proto_get_u64(r);
	a->blksize = proto_get_u32(r);
	a->atime = proto_get_time(r);
	a->mtime = proto_get_time(r);
	a->ctime = proto_get_time(r);
}

void proto_get_statfs(struct proto_reader *r, struct proto_statfs *s)
{
	s->blocks = proto_get_u64(r);
	s->bfree = proto_get_u64(r);
	s->bavail = proto_get_u64(r);
	s->files = proto_get_u64(r);
	s->ffree = proto_get_u64(r);
	s->bsize = proto_get_u32(r);
	s->frsize = proto_get_u32(r);
	s->namemax = proto_get_u32(r);
}

void proto_get_addr(struct proto_reader *r, struct proto_addr *a)
{
	const uint8_t *p;

	*a = (struct proto_addr){.family = proto_get_u8(r)};
	switch (a->family) {
	case PROTO_AF_NONE:
		break;
	case PROTO_AF_INET:
		p = proto_get_raw(r, 4);
		if (p)
			memcpy(a->bytes, p, 4);
		break;
	case PROTO_AF_INET6:
		p = proto_get_raw(r, 16);
		if (p)
			memcpy(a->bytes, p, 16);
		break;
	default:
		proto_reader_fail(r);
		a->family = PROTO_AF_NONE;
		break;
	}
}

int proto_reader_done(const struct proto_reader *r)
{
	if (r->error || r->off != r->len)
		return -EPROTO;
	return 0;
}
