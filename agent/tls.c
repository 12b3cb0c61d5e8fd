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
#include "common/tls.h"

struct agent_tls_ctx {
	SSL_CTX *ctx;
};

struct agent_tls {
	SSL *ssl;
	struct tls_io io; /* the non-blocking I/O, shared with the launcher */
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
	t->io.ssl = ssl;
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

/* -EPROTO: the reason, from the OpenSSL error tls_io kept. */
static ssize_t io_result(struct agent_tls *t, ssize_t r)
{
	if (r == -EPROTO) {
		const char *why = t->io.err ? ERR_reason_error_string(t->io.err) : NULL;
		if (why)
			snprintf(t->reason, sizeof(t->reason), "%s", why);
		else if (t->io.err)
			ERR_error_string_n(t->io.err, t->reason, sizeof(t->reason));
		else
			snprintf(t->reason, sizeof(t->reason), "unknown TLS error");
	}
	return r;
}

ssize_t agent_tls_read(struct agent_tls *t, void *buf, size_t len)
{
	return io_result(t, tls_io_read(&t->io, buf, len));
}

ssize_t agent_tls_write(struct agent_tls *t, const void *buf, size_t len)
{
	return io_result(t, tls_io_write(&t->io, buf, len));
}

bool agent_tls_pending(const struct agent_tls *t)
{
	return tls_io_pending(&t->io);
}

uint32_t agent_tls_events(const struct agent_tls *t)
{
	return tls_io_events(&t->io);
}

bool agent_tls_established(const struct agent_tls *t)
{
	return tls_io_established(&t->io);
}

const char *agent_tls_reason(const struct agent_tls *t)
{
	return t->reason;
}
