/* Non-blocking TLS I/O (tls.h). */
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <sys/epoll.h>

#include "common/tls.h"

/* Maps the result of SSL_read/SSL_write (r <= 0) to the tls.h contract;
 * *wants_other is set when the call waits for the other direction. */
static ssize_t result(struct tls_io *t, int r, bool reading, bool *wants_other)
{
	int saved = errno;

	switch (SSL_get_error(t->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		*wants_other = !reading;
		return -EAGAIN;
	case SSL_ERROR_WANT_WRITE:
		*wants_other = reading;
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		if (saved == 0)
			return 0;
		return saved == EAGAIN ? -EAGAIN : -saved;
	default:
		t->err = ERR_get_error();
		ERR_clear_error();
		return -EPROTO;
	}
}

ssize_t tls_io_read(struct tls_io *t, void *buf, size_t len)
{
	int r;

	ERR_clear_error();
	errno = 0; /* SSL_ERROR_SYSCALL with errno 0 means EOF */
	t->read_wants_write = false;
	r = SSL_read(t->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
	return r > 0 ? r : result(t, r, true, &t->read_wants_write);
}

ssize_t tls_io_write(struct tls_io *t, const void *buf, size_t len)
{
	int r;

	ERR_clear_error();
	errno = 0;
	t->write_wants_read = false;
	r = SSL_write(t->ssl, buf, len > (1u << 30) ? (1 << 30) : (int)len);
	if (r > 0)
		return r;
	r = (int)result(t, r, false, &t->write_wants_read);
	return r == 0 ? -EPIPE : r; /* a write that moved nothing would be retried forever */
}

bool tls_io_pending(const struct tls_io *t)
{
	return SSL_has_pending(t->ssl);
}

uint32_t tls_io_events(const struct tls_io *t)
{
	return (t->read_wants_write ? EPOLLOUT : 0) | (t->write_wants_read ? EPOLLIN : 0);
}

bool tls_io_established(const struct tls_io *t)
{
	return SSL_is_init_finished(t->ssl);
}
