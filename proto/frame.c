/* Framing: the 16-byte header (u32 payload length, u16 type, u16 flags,
 * u64 id, little-endian), in-place frame building, and the incremental
 * decoder that turns a byte stream cut anywhere into whole frames.
 *
 * The decoder validates a header as soon as its 16 bytes are in, so an
 * oversized length is refused before any of its payload is buffered (a
 * peer cannot make us hold more than one maximal frame). */
#include <errno.h>

#include "proto/proto_int.h"

#define PROTO_F_KNOWN PROTO_F_RESPONSE

void proto_header_format(uint8_t hdr[PROTO_HEADER_SIZE], uint16_t type, uint16_t flags, uint64_t id,
			 uint32_t len)
{
	proto_le32_store(hdr, len);
	proto_le16_store(hdr + 4, type);
	proto_le16_store(hdr + 6, flags);
	proto_le64_store(hdr + 8, id);
}

int proto_header_parse(const uint8_t hdr[PROTO_HEADER_SIZE], uint32_t max_payload,
		       struct proto_frame *f)
{
	*f = (struct proto_frame){
		.len = proto_le32_load(hdr),
		.type = proto_le16_load(hdr + 4),
		.flags = proto_le16_load(hdr + 6),
		.id = proto_le64_load(hdr + 8),
	};
	if (f->len > max_payload)
		return -EMSGSIZE;
	if (f->flags & ~PROTO_F_KNOWN)
		return -EPROTO;
	return 0;
}

size_t proto_frame_begin(struct buf *b, uint16_t type, uint16_t flags, uint64_t id)
{
	size_t start = buf_len(b);

	proto_header_format(buf_reserve(b, PROTO_HEADER_SIZE), type, flags, id, 0);
	buf_commit(b, PROTO_HEADER_SIZE);
	return start;
}

int proto_frame_end(struct buf *b, size_t start)
{
	size_t len = buf_len(b) - start - PROTO_HEADER_SIZE;

	if (len > PROTO_PAYLOAD_MAX) {
		b->end = b->start + start; /* drop the partial frame */
		return -EMSGSIZE;
	}
	proto_le32_store(buf_data(b) + start, (uint32_t)len);
	return 0;
}

struct proto_decoder {
	struct buf in;
	size_t returned; /* bytes of the frame handed out last, dropped on the next call */
	uint32_t max_payload;
	int error;
};

int proto_decoder_new(uint32_t max_payload, struct proto_decoder **ret)
{
	struct proto_decoder *d = xcalloc(1, sizeof(*d));

	buf_init(&d->in);
	d->max_payload = MIN(max_payload, PROTO_PAYLOAD_MAX);
	*ret = d;
	return 0;
}

void proto_decoder_free(struct proto_decoder *d)
{
	if (!d)
		return;
	buf_done(&d->in);
	free(d);
}

void proto_decoder_max_set(struct proto_decoder *d, uint32_t max_payload)
{
	d->max_payload = MIN(max_payload, PROTO_PAYLOAD_MAX);
}

/* The frame returned last stays in the buffer until the caller comes back,
 * so its payload pointer stays valid while it is being handled. */
static void decoder_release(struct proto_decoder *d)
{
	buf_consume(&d->in, d->returned);
	d->returned = 0;
}

void proto_decoder_feed(struct proto_decoder *d, const void *p, size_t n)
{
	decoder_release(d);
	buf_append(&d->in, p, n);
}

void *proto_decoder_reserve(struct proto_decoder *d, size_t n)
{
	decoder_release(d);
	return buf_reserve(&d->in, n);
}

void proto_decoder_commit(struct proto_decoder *d, size_t n)
{
	buf_commit(&d->in, n);
}

int proto_decoder_next(struct proto_decoder *d, struct proto_frame *f)
{
	size_t avail;
	int r;

	decoder_release(d);
	if (d->error)
		return d->error;
	avail = buf_len(&d->in);
	if (avail < PROTO_HEADER_SIZE)
		return 0;
	r = proto_header_parse(buf_data(&d->in), d->max_payload, f);
	if (r < 0)
		return (d->error = r);
	if (avail - PROTO_HEADER_SIZE < f->len)
		return 0;
	f->payload = buf_data(&d->in) + PROTO_HEADER_SIZE;
	d->returned = PROTO_HEADER_SIZE + (size_t)f->len;
	return 1;
}

size_t proto_decoder_pending(const struct proto_decoder *d)
{
	return buf_len(&d->in) - d->returned;
}
