/* The launcher's link to the agent: one connected socket carrying one
 * proto session (proto_client), on the launcher's event loop.
 *
 * A link is made by spawning a local agent over a socketpair (pid/PID
 * targets) or by connecting to an agent that listens (connect_tcp). It
 * handles the handshake, the heartbeat (PING every 10 s; no frame for 30 s
 * ends the link) and the agent process's exit. There is no reconnect: a
 * lost link calls ops->lost() once with a readable reason, and every
 * request and stream still open fails (ECONNABORTED).
 */
#ifndef PODENV_LAUNCHER_LINK_H
#define PODENV_LAUNCHER_LINK_H

#include <sys/types.h>

#include "common/err.h"
#include "common/loop.h"
#include "proto/proto.h"

struct link;

struct link_ops {
	void (*lost)(void *userdata, const char *reason);
};

/* Starts `agent_path --pid PID --stdio` with a socketpair as its stdin and
 * begins the handshake. extra_args (NULL-terminated, may be NULL) are
 * appended to the agent's command line (e.g. log options). */
int link_spawn_local(struct loop *l, const char *agent_path, pid_t target,
		     const char *const *extra_args, const struct link_ops *ops, void *userdata,
		     struct link **ret, struct err *reterr);

/* TLS to an agent that listens with --tls-cert (docs/PROTOCOL.md,
 * "Transport security"). Give one or both; with both, both must hold.
 * ca_file: PEM CA certificates the agent's certificate must chain to; the
 *   certificate must also name the agent's IP in its subjectAltName.
 * fingerprint: the SHA-256 of the agent's certificate, 64 hex digits (':'
 *   between pairs allowed): pins a self-signed per-agent certificate.
 * Strings are borrowed for the duration of link_connect_tcp. */
struct link_tls_opts {
	const char *ca_file;
	const char *fingerprint;
};

/* Connects to an agent at "IP:PORT" ([V6]:PORT) and begins the handshake
 * with token; over TLS when tls is not NULL (the token is sent only after
 * the agent's certificate checked out). A certificate that does not check
 * out ends the link with a one-line reason (link_wait_ready). */
int link_connect_tcp(struct loop *l, const char *addr, const uint8_t token[PROTO_TOKEN_SIZE],
		     const struct link_tls_opts *tls, const struct link_ops *ops, void *userdata,
		     struct link **ret, struct err *reterr);

/* Runs the session over a Kubernetes port-forward to an agent
 * (launcher/k8s_ws.h), which the link takes over in every case (freed with
 * it), and begins the handshake with token. */
struct k8s_ws;
int link_connect_kube(struct loop *l, struct k8s_ws *ws, const uint8_t token[PROTO_TOKEN_SIZE],
		      const struct link_ops *ops, void *userdata, struct link **ret,
		      struct err *reterr);

/* Runs the loop until the handshake is done (0), the link is lost, or
 * timeout passes; the reason is in reterr. */
int link_wait_ready(struct link *k, usec_t timeout, struct err *reterr);

/* The session, for requests and streams. Borrowed; valid until link_free. */
struct proto_client *link_client(struct link *k);

/* Fails every request and stream still waiting on the agent, without a
 * lost() report: call while their owners (FUSE mounts, the DNS server)
 * still exist, before freeing them. */
void link_abort(struct link *k);

/* Says goodbye, flushes what the socket takes, closes, and waits briefly
 * for a spawned agent to exit (then kills it). Accepts NULL. */
void link_free(struct link *k);

#endif
