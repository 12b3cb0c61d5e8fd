/* The client side of TLS to an agent (tls.h), with OpenSSL 3 on the link's
 * non-blocking socket.
 *
 * Verification replaces OpenSSL's chain check with our own callback
 * (SSL_CTX_set_cert_verify_callback), so one place decides: with a CA
 * file, X509_verify_cert() against it plus the agent's IP in the
 * certificate; with a pinned fingerprint, the SHA-256 of the agent's own
 * certificate, which is what a self-signed per-agent certificate needs (no
 * chain to check). A failure aborts the handshake and leaves a sentence
 * for the user in t->reason.
 *
 * The socket BIO is ours: OpenSSL's writes with write(2), and a launcher
 * must not ignore SIGPIPE (the command it runs would inherit that), so our
 * BIO sends with MSG_NOSIGNAL. As on the agent, an EOF without
 * close_notify counts as EOF: the protocol's GOODBYE detects truncation.
 */
#define LOG_TARGET "podenv::link::tls"
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "common/tls.h"
#include "launcher/tls.h"

struct link_tls {
	SSL_CTX *ctx;
	SSL *ssl;
	BIO_METHOD *bio_method;
	int fd;
	bool eof; /* recv() returned 0 (BIO_CTRL_EOF) */
	char ca_file[512];
	bool pinned;
	uint8_t fingerprint[LINK_TLS_FINGERPRINT_SIZE];
	bool verify_failed;
	struct tls_io io; /* the non-blocking I/O, shared with the agent */
	char reason[ERR_MSG_MAX];
};

int link_tls_fingerprint_parse(const char *text, uint8_t out[LINK_TLS_FINGERPRINT_SIZE])
{
	size_t n = 0;

	for (const char *p = text; *p;) {
		int hi, lo;
		if (n == LINK_TLS_FINGERPRINT_SIZE)
			return -EINVAL;
		hi = OPENSSL_hexchar2int((unsigned char)p[0]);
		lo = OPENSSL_hexchar2int((unsigned char)p[1]); /* p[0] is not NUL */
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[n++] = (uint8_t)(hi << 4 | lo);
		p += 2;
		if (*p == ':' && p[1])
			p++;
	}
	return n == LINK_TLS_FINGERPRINT_SIZE ? 0 : -EINVAL;
}

/* out holds 2 * n + 1 bytes. */
static void hex_format(char *out, const uint8_t *b, size_t n)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

/* --- a socket BIO that never raises SIGPIPE ---------------------------------- */

static int bio_sock_write(BIO *b, const char *data, int len)
{
	struct link_tls *t = BIO_get_data(b);
	ssize_t n = send(t->fd, data, (size_t)len, MSG_NOSIGNAL);

	BIO_clear_retry_flags(b);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		BIO_set_retry_write(b);
	return (int)n;
}

static int bio_sock_read(BIO *b, char *data, int len)
{
	struct link_tls *t = BIO_get_data(b);
	ssize_t n = recv(t->fd, data, (size_t)len, 0);

	BIO_clear_retry_flags(b);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		BIO_set_retry_read(b);
	if (n == 0)
		t->eof = true;
	return (int)n;
}

static long bio_sock_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct link_tls *t = BIO_get_data(b);
	(void)num;
	(void)ptr;

	/* Writes go straight to the socket: nothing to flush. The record
	 * layer asks for EOF to tell a closed peer from an error. Everything
	 * else (kTLS, peeking at buffers) is not supported. */
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_EOF:
		return t->eof;
	default:
		return 0;
	}
}

/* --- verification ------------------------------------------------------------ */

static int verify_cert(X509_STORE_CTX *sctx, void *arg)
{
	struct link_tls *t = arg;
	X509 *cert = X509_STORE_CTX_get0_cert(sctx);
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;

	if (!cert) {
		t->verify_failed = true;
		snprintf(t->reason, sizeof(t->reason), "the agent sent no TLS certificate");
		return 0;
	}
	if (t->ca_file[0] && X509_verify_cert(sctx) != 1) {
		t->verify_failed = true;
		snprintf(t->reason, sizeof(t->reason),
			 "the agent's TLS certificate is not trusted by %s: %s", t->ca_file,
			 X509_verify_cert_error_string(X509_STORE_CTX_get_error(sctx)));
		return 0;
	}
	if (t->pinned) {
		if (X509_digest(cert, EVP_sha256(), md, &mdlen) != 1 ||
		    mdlen != LINK_TLS_FINGERPRINT_SIZE ||
		    CRYPTO_memcmp(md, t->fingerprint, LINK_TLS_FINGERPRINT_SIZE) != 0) {
			char want[2 * LINK_TLS_FINGERPRINT_SIZE + 1],
				got[2 * EVP_MAX_MD_SIZE + 1] = "";
			hex_format(want, t->fingerprint, LINK_TLS_FINGERPRINT_SIZE);
			hex_format(got, md, mdlen);
			t->verify_failed = true;
			X509_STORE_CTX_set_error(sctx, X509_V_ERR_CERT_REJECTED);
			snprintf(
				t->reason, sizeof(t->reason),
				"the agent's TLS certificate does not match the pinned fingerprint "
				"(expected sha256 %s, the agent presented %s)",
				want, got);
			return 0;
		}
	}
	return 1;
}

/* --- connection ------------------------------------------------------------- */

static int ssl_error(struct err *reterr, int code, const char *what)
{
	unsigned long e = ERR_get_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	return err_set(reterr, code, "%s: %s", what, r ? r : "TLS error");
}

int link_tls_new(int fd, const char *host, const struct link_tls_opts *o, struct link_tls **ret,
		 struct err *reterr)
{
	struct link_tls *t;
	BIO *bio;
	int r;

	if (!o->ca_file && !o->fingerprint)
		return err_set(reterr, -EINVAL,
			       "TLS to the agent needs a CA file or a certificate fingerprint");
	t = xcalloc(1, sizeof(*t));
	t->fd = fd;
	if (o->fingerprint) {
		if (link_tls_fingerprint_parse(o->fingerprint, t->fingerprint) < 0) {
			r = err_set(
				reterr, -EINVAL,
				"TLS fingerprint '%s': expected the certificate's SHA-256 as 64 "
				"hex digits (':' between pairs allowed)",
				o->fingerprint);
			goto fail;
		}
		t->pinned = true;
	}
	ERR_clear_error();
	t->ctx = SSL_CTX_new(TLS_client_method());
	if (!t->ctx) {
		r = ssl_error(reterr, -ENOMEM, "TLS");
		goto fail;
	}
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(t->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(t->ctx,
			 SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_read_ahead(t->ctx, 1);
	SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_cert_verify_callback(t->ctx, verify_cert, t);
	if (o->ca_file) {
		snprintf(t->ca_file, sizeof(t->ca_file), "%s", o->ca_file);
		if (SSL_CTX_load_verify_locations(t->ctx, o->ca_file, NULL) != 1) {
			r = ssl_error(reterr, -EINVAL, o->ca_file);
			err_prefix(reterr, "TLS CA file");
			goto fail;
		}
	}
	t->ssl = SSL_new(t->ctx);
	if (!t->ssl) {
		r = ssl_error(reterr, -ENOMEM, "TLS");
		goto fail;
	}
	/* With a CA, the certificate must be the one issued for this agent:
	 * its subjectAltName names the IP we connected to. */
	if (o->ca_file && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host) != 1) {
		r = ssl_error(reterr, -EINVAL, host);
		err_prefix(reterr, "TLS: the agent's address");
		goto fail;
	}
	t->bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "podenv link");
	if (!t->bio_method || !BIO_meth_set_write(t->bio_method, bio_sock_write) ||
	    !BIO_meth_set_read(t->bio_method, bio_sock_read) ||
	    !BIO_meth_set_ctrl(t->bio_method, bio_sock_ctrl) || !(bio = BIO_new(t->bio_method))) {
		r = ssl_error(reterr, -ENOMEM, "TLS");
		goto fail;
	}
	BIO_set_data(bio, t);
	BIO_set_init(bio, 1);
	SSL_set_bio(t->ssl, bio, bio); /* the SSL owns it now */
	SSL_set_connect_state(t->ssl);
	t->io.ssl = t->ssl;
	*ret = t;
	return 0;
fail:
	link_tls_free(t);
	return r;
}

void link_tls_free(struct link_tls *t)
{
	if (!t)
		return;
	if (t->ssl && SSL_is_init_finished(t->ssl))
		SSL_shutdown(t->ssl);
	SSL_free(t->ssl);
	SSL_CTX_free(t->ctx);
	BIO_meth_free(t->bio_method);
	ERR_clear_error();
	free(t);
}

/* -EPROTO: the reason, from the OpenSSL error tls_io kept (verify_cert()
 * has already said why when the agent's certificate was refused). */
static ssize_t io_result(struct link_tls *t, ssize_t r)
{
	unsigned long e = t->io.err;
	const char *why = e ? ERR_reason_error_string(e) : NULL;

	if (r != -EPROTO || t->verify_failed)
		return r;
	if (!SSL_is_init_finished(t->ssl))
		snprintf(t->reason, sizeof(t->reason), "TLS handshake with the agent failed: %s%s",
			 why ? why : "TLS error",
			 e && ERR_GET_REASON(e) == SSL_R_WRONG_VERSION_NUMBER
				 ? " (is the agent listening without TLS?)"
				 : "");
	else
		snprintf(t->reason, sizeof(t->reason), "TLS error on the link: %s",
			 why ? why : "unknown");
	return r;
}

ssize_t link_tls_read(struct link_tls *t, void *buf, size_t len)
{
	return io_result(t, tls_io_read(&t->io, buf, len));
}

ssize_t link_tls_write(struct link_tls *t, const void *buf, size_t len)
{
	return io_result(t, tls_io_write(&t->io, buf, len));
}

bool link_tls_pending(const struct link_tls *t)
{
	return tls_io_pending(&t->io);
}

uint32_t link_tls_events(const struct link_tls *t)
{
	return tls_io_events(&t->io);
}

bool link_tls_established(const struct link_tls *t)
{
	return tls_io_established(&t->io);
}

const char *link_tls_reason(const struct link_tls *t)
{
	return t->reason;
}
