/* Non-blocking TLS I/O over an OpenSSL SSL object, shared by the agent
 * (agent/tls.c, the server side of --listen --tls-cert) and the launcher
 * (launcher/tls.c, the link's client side). Each side owns its SSL_CTX,
 * its SSL and its error messages; this is the read/write contract both
 * give their callers:
 *
 *   read/write: > 0 bytes moved; read 0 = EOF (close_notify or a bare
 *   close); -EAGAIN = call again when tls_io_events() (plus EPOLLIN for
 *   reads, EPOLLOUT for writes) says so; -EPROTO = a TLS error, whose
 *   OpenSSL error code is in `err` (the queue is emptied); other
 *   negative errno = the socket's error. A write never returns 0.
 */
#ifndef PODENV_COMMON_TLS_H
#define PODENV_COMMON_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct tls_io {
	SSL *ssl;		/* borrowed */
	bool read_wants_write;	/* the last read waits for the socket to be writable */
	bool write_wants_read;	/* the last write waits for it to be readable */
	unsigned long err;	/* after -EPROTO: the first OpenSSL error, or 0 */
};

ssize_t tls_io_read(struct tls_io *t, void *buf, size_t len);
ssize_t tls_io_write(struct tls_io *t, const void *buf, size_t len);
/* Decrypted bytes wait inside OpenSSL: read again without waiting. */
bool tls_io_pending(const struct tls_io *t);
/* EPOLLOUT / EPOLLIN the next call needs besides its own direction. */
uint32_t tls_io_events(const struct tls_io *t);
bool tls_io_established(const struct tls_io *t);

#endif
