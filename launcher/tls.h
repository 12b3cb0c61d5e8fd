/* TLS for the launcher's link to an agent that listens with --tls-cert
 * (OpenSSL 3), private to launcher/link.c.
 *
 * The client side of one connection on a non-blocking socket. The
 * handshake runs inside the first link_tls_read()/link_tls_write() calls,
 * driven by the link's fd events, and the agent's certificate is checked
 * during it (link.h, struct link_tls_opts), so nothing (not the token) is
 * written before the agent proved who it is. Loop thread only.
 *
 * I/O contract (both calls): > 0 bytes moved; 0 the agent closed (reads;
 * a write returns -EPIPE then); -EAGAIN
 * try again once link_tls_events() is satisfied (it may ask for EPOLLOUT to
 * read or EPOLLIN to write); -EPROTO a TLS failure with a readable
 * one-line reason in link_tls_reason(); another -errno from the socket.
 * Callers drain while link_tls_pending(): input inside OpenSSL does not
 * make the fd readable again.
 */
#ifndef PODENV_LAUNCHER_TLS_H
#define PODENV_LAUNCHER_TLS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "launcher/link.h"

#define LINK_TLS_FINGERPRINT_SIZE 32 /* SHA-256 */

struct link_tls;

/* Parses a SHA-256 fingerprint: 64 hex digits, optionally in pairs separated
 * by ':' (as `openssl x509 -fingerprint -sha256` prints it). -EINVAL if
 * malformed. */
int link_tls_fingerprint_parse(const char *text, uint8_t out[LINK_TLS_FINGERPRINT_SIZE]);

/* Starts the client side on fd (borrowed: the caller closes it after
 * link_tls_free). host: the agent's IP as connected to, which a certificate
 * checked against o->ca_file must name. o must give ca_file, fingerprint
 * or both; it is copied. Errors (unreadable CA file, bad fingerprint) are
 * in reterr. Caller frees with link_tls_free (accepts NULL). */
int link_tls_new(int fd, const char *host, const struct link_tls_opts *o, struct link_tls **ret,
		 struct err *reterr);
void link_tls_free(struct link_tls *t);

ssize_t link_tls_read(struct link_tls *t, void *buf, size_t len);
/* After -EAGAIN, retry with the same leading bytes and a length at least as
 * large (the buffer may move). */
ssize_t link_tls_write(struct link_tls *t, const void *buf, size_t len);

bool link_tls_pending(const struct link_tls *t);
/* Events the last -EAGAIN waits for beyond EPOLLIN-for-read and
 * EPOLLOUT-for-write; 0 when none. */
uint32_t link_tls_events(const struct link_tls *t);
bool link_tls_established(const struct link_tls *t);
/* The reason of the last -EPROTO (a full sentence, "" if none). Borrowed. */
const char *link_tls_reason(const struct link_tls *t);

#endif
