/* TLS on the agent's accepted connections (tls.h), with OpenSSL 3 on
 * non-blocking sockets.
 *
 * Non-blocking OpenSSL has two corners the session must see: a read may
 * need the socket writable (handshake messages, TLS 1.3 session tickets)
 * and a write may need it readable, so each -EAGAIN records which event it
 * waits for (agent_tls_events); and read-ahead leaves whole records in
 * OpenSSL's buffer, which the kernel no longer reports as readable
 * (agent_tls_pending). A clean EOF without close_notify counts as EOF: the
 * protocol's own GOODBYE and framing already detect truncation.
 */
#define LOG_TARGET "podenv::agent::tls"
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "agent/tls.h"
#include "common/log.h"

struct agent_tls_ctx {
	SSL_CTX *ctx;
};

struct agent_tls {
	SSL *ssl;
	bool read_wants_write;
	bool write_wants_read;
	char reason[256];
};

/* The OpenSSL error queue as one readable phrase (first error's reason),
 * and empties the queue. */
static void ssl_reason(char *out, size_t outsz)
{
	unsigned long e = ERR_get_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	if (r)
		snprintf(out, outsz, "%s", r);
	else if (e)
		ERR_error_string_n(e, out, outsz);
	else
		snprintf(out, outsz, "unknown TLS error");
	ERR_clear_error();
}

int agent_tls_ctx_new(const char *cert_file, const char *key_file, struct agent_tls_ctx **ret,
		      struct err *reterr)
{
	struct agent_tls_ctx *c;
	char why[256];
	SSL_CTX *ctx;

	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		ssl_reason(why, sizeof(why));
		return err_set(reterr, -ENOMEM, "TLS: %s", why);
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION |
					 SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* Partial writes and a moving buffer: the session's output buffer
	 * grows and is consumed between retries (tls.h). */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		ssl_reason(why, sizeof(why));
		SSL_CTX_free(ctx);
		return err_set(reterr, -EINVAL, "--tls-cert %s: %s", cert_file, why);
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		ssl_reason(why, sizeof(why));
		SSL_CTX_free(ctx);
		return err_set(reterr, -EINVAL, "--tls-key %s: %s", key_file, why);
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ssl_reason(why, sizeof(why));
		SSL_CTX_free(ctx);
		return err_set(reterr, -EINVAL, "--tls-key %s does not belong to --tls-cert %s: %s",
			       key_file, cert_file, why);
	}
	c = xcalloc(1, sizeof(*c));
	c->ctx = ctx;
	*ret = c;
	return 0;
}

void agent_tls_ctx_free(struct agent_tls_ctx *c)
{
	if (!c)
		return;
	SSL_CTX_free(c->ctx);
	free(c);
}

int agent_tls_new(struct agent_tls_ctx *c, int fd, struct agent_tls **ret)
{
	struct agent_tls *t;
	SSL *ssl;

	ERR_clear_error();
	ssl = SSL_new(c->ctx);
	if (!ssl || SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		ERR_clear_error();
		return -ENOMEM;
	}
	SSL_set_accept_state(ssl);
	t = xcalloc(1, sizeof(*t));
	t->ssl = ssl;
	*ret = t;
	return 0;
}

void agent_tls_free(struct agent_tls *t)
{
	if (!t)
		return;
	if (SSL_is_init_finished(t->ssl))
		SSL_shutdown(t->ssl);
	ERR_clear_error();
	SSL_free(t->ssl);
	free(t);
}

/* Maps the result of SSL_read/SSL_write (r <= 0) to the tls.h contract;
 * *wants_other is set when the call waits for the other direction. */
static ssize_t tls_result(struct agent_tls *t, int r, bool reading, bool *wants_other)
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
		ssl_reason(t->reason, sizeof(t->reason));
		return -EPROTO;
	}
}

ssize_t agent_tls_read(struct agent_tls *t, void *buf, size_t len)
{
	int r;

	ERR_clear_error();
	errno = 0; /* SSL_ERROR_SYSCALL with errno 0 means EOF */
	t->read_wants_write = false;
	r = SSL_read(t->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
	return r > 0 ? r : tls_result(t, r, true, &t->read_wants_write);
}

ssize_t agent_tls_write(struct agent_tls *t, const void *buf, size_t len)
{
	int r;

	ERR_clear_error();
	errno = 0;
	t->write_wants_read = false;
	r = SSL_write(t->ssl, buf, len > (1u << 30) ? (1 << 30) : (int)len);
	if (r > 0)
		return r;
	r = (int)tls_result(t, r, false, &t->write_wants_read);
	return r == 0 ? -EPIPE : r; /* a write that moved nothing would be retried forever */
}

bool agent_tls_pending(const struct agent_tls *t)
{
	return SSL_has_pending(t->ssl);
}

uint32_t agent_tls_events(const struct agent_tls *t)
{
	return (t->read_wants_write ? EPOLLOUT : 0) | (t->write_wants_read ? EPOLLIN : 0);
}

bool agent_tls_established(const struct agent_tls *t)
{
	return SSL_is_init_finished(t->ssl);
}

const char *agent_tls_reason(const struct agent_tls *t)
{
	return t->reason;
}
