/* TLS for the agent's --listen sessions (OpenSSL 3), private to agent/.
 *
 * One agent_tls_ctx holds the certificate and key; each accepted connection
 * gets an agent_tls on its non-blocking socket. The handshake runs inside
 * the first agent_tls_read()/agent_tls_write() calls, driven by the
 * session's fd events. Loop thread only.
 *
 * I/O contract (both calls): > 0 bytes moved; 0 the peer closed (reads;
 * a write returns -EPIPE then); -EAGAIN
 * try again once agent_tls_events() is satisfied (it may ask for EPOLLOUT
 * to read or EPOLLIN to write); -EPROTO a TLS failure, reason in
 * agent_tls_reason(); another -errno from the socket. Plaintext already
 * inside OpenSSL does not make the fd readable again: callers drain while
 * agent_tls_pending().
 */
#ifndef PODENV_AGENT_TLS_H
#define PODENV_AGENT_TLS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

struct agent_tls_ctx;
struct agent_tls;

/* Loads a PEM certificate (chain) and its private key; TLS 1.2 or newer.
 * Caller frees with agent_tls_ctx_free (accepts NULL). */
int agent_tls_ctx_new(const char *cert_file, const char *key_file, struct agent_tls_ctx **ret,
		      struct err *reterr);
void agent_tls_ctx_free(struct agent_tls_ctx *c);

/* Server side of a TLS connection on fd (borrowed: the caller closes it
 * after agent_tls_free). c must outlive it. */
int agent_tls_new(struct agent_tls_ctx *c, int fd, struct agent_tls **ret);
/* Sends close_notify if the handshake finished (best effort, never
 * blocks) and frees. Accepts NULL. */
void agent_tls_free(struct agent_tls *t);

ssize_t agent_tls_read(struct agent_tls *t, void *buf, size_t len);
/* After -EAGAIN, retry with the same leading bytes and a length at least as
 * large (the buffer may move). */
ssize_t agent_tls_write(struct agent_tls *t, const void *buf, size_t len);

/* True when OpenSSL holds input not yet returned by agent_tls_read(). */
bool agent_tls_pending(const struct agent_tls *t);
/* The epoll events the last -EAGAIN is waiting for beyond the caller's own
 * (EPOLLOUT for a read that must write, EPOLLIN for a write that must
 * read); 0 when none. */
uint32_t agent_tls_events(const struct agent_tls *t);
bool agent_tls_established(const struct agent_tls *t);
/* The reason of the last -EPROTO ("" if none). Borrowed. */
const char *agent_tls_reason(const struct agent_tls *t);

#endif
