/* struct buf: growable FIFO byte buffer. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/buf.h"

void buf_init(struct buf *b)
{
	*b = (struct buf){ 0 };
}

void buf_done(struct buf *b)
{
	free(b->data);
	buf_init(b);
}

void buf_reset(struct buf *b)
{
	b->start = b->end = 0;
}

void buf_truncate(struct buf *b, size_t len)
{
	if (len < buf_len(b))
		b->end = b->start + len;
}

void *buf_reserve(struct buf *b, size_t n)
{
	size_t len = buf_len(b), need;

	if (b->cap - b->end >= n)
		return b->data + b->end;
	/* Slide the readable bytes to the front before growing: queues that
	 * are drained as fast as they fill never grow at all. */
	if (b->start > 0) {
		memmove(b->data, b->data + b->start, len);
		b->start = 0;
		b->end = len;
		if (b->cap - b->end >= n)
			return b->data + b->end;
	}
	if (n > SIZE_MAX / 2 - len)
		abort(); /* a size this large is a bug, not data */
	need = len + n;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
	return b->data + b->end;
}

void buf_commit(struct buf *b, size_t n)
{
	b->end += MIN(n, b->cap - b->end);
}

void buf_append(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	memcpy(buf_reserve(b, n), p, n);
	b->end += n;
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	char *p = buf_reserve(b, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->end += (size_t)n;
}

void buf_consume(struct buf *b, size_t n)
{
	b->start += MIN(n, buf_len(b));
	if (b->start == b->end)
		b->start = b->end = 0;
}

char *buf_steal(struct buf *b, size_t *len)
{
	size_t n = buf_len(b);
	char *s;

	buf_reserve(b, 1);
	b->data[b->end] = '\0';
	if (b->start > 0)
		memmove(b->data, b->data + b->start, n + 1);
	s = (char *)b->data;
	if (len)
		*len = n;
	buf_init(b);
	return s;
}
