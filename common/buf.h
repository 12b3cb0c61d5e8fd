/* A growable byte buffer that is also a FIFO: data is appended at the end
 * and consumed from the front, so one type serves both for building a
 * message and for queueing bytes to a socket.
 *
 * Invariant: start <= end <= cap; the readable bytes are data[start, end).
 * Consumed space is reclaimed lazily (on the next append that would grow).
 * Growth aborts on allocation failure (common/macro.h). A zeroed struct is
 * a valid empty buffer. Not thread-safe.
 */
#ifndef PODENV_COMMON_BUF_H
#define PODENV_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"

struct buf {
	uint8_t *data;
	size_t start;
	size_t end;
	size_t cap;
};

void buf_init(struct buf *b);
/* Frees the storage; the buffer is empty and reusable afterwards. */
void buf_done(struct buf *b);

static inline size_t buf_len(const struct buf *b)
{
	return b->end - b->start;
}
/* Readable bytes; valid until the next call that modifies b. */
static inline uint8_t *buf_data(const struct buf *b)
{
	return b->data ? b->data + b->start : NULL;
}

/* Returns a pointer to at least n writable bytes after the end; fill them,
 * then buf_commit() how many were written. */
void *buf_reserve(struct buf *b, size_t n);
void buf_commit(struct buf *b, size_t n);

void buf_append(struct buf *b, const void *p, size_t n);
void buf_printf(struct buf *b, const char *fmt, ...) PRINTF_FMT(2, 3);
/* Drops n bytes (at most buf_len) from the front. */
void buf_consume(struct buf *b, size_t n);
void buf_reset(struct buf *b);
/* Keeps only the first len readable bytes (len <= buf_len). */
void buf_truncate(struct buf *b, size_t len);

/* Hands the readable bytes to the caller as a NUL-terminated string (the
 * NUL is not counted in *len); the buffer is empty afterwards. Caller frees. */
char *buf_steal(struct buf *b, size_t *len);

#endif
