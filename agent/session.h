/* The agent's server side: sessions (one per connected launcher), their
 * open file handles, requests in flight on the worker pool, and streams.
 * Private to agent/.
 *
 * Threading: everything here belongs to the loop thread except
 * agent_files_run(), which a worker runs on a struct agent_request that
 * nobody else touches until its done() callback.
 */
#ifndef PODENV_AGENT_SESSION_H
#define PODENV_AGENT_SESSION_H

#include <pthread.h>
#include <sys/stat.h>

#include "agent/agent.h"
#include "agent/pool.h"
#include "common/buf.h"
#include "common/loop.h"
#include "common/map.h"
#include "proto/proto.h"

struct agent_server;
struct agent_session;
struct agent_tls_ctx;

/* An open file or directory of one session. Reference-counted: requests
 * in flight hold a reference, so RELEASE never closes an fd a worker is
 * still using (and the fd number is never reused under it). */
struct agent_handle {
	uint64_t fh;
	int fd;
	unsigned refs;
	pthread_mutex_t lock; /* serialises position-dependent ops (readdir, OFF_CUR) */
};

/* One request handed to the worker pool. */
struct agent_request {
	struct agent_job job;
	struct agent_session *session; /* holds a session reference */
	struct agent_target *target;   /* borrowed from the server */
	int root_fd;
	struct agent_handle *handle;   /* referenced, or NULL */
	uint64_t new_fh;	       /* for OPEN*: the id the handle will get */
	int new_fd;		       /* set by the worker on a successful open */
	uint8_t *payload;	       /* our copy of the frame payload */
	struct proto_msg msg;	       /* decoded from payload */
	struct buf reply;	       /* the encoded response frame */
};

/* Runs one file or query request (worker thread). */
void agent_files_run(struct agent_request *rq);
void agent_attr_from_stat(struct proto_attr *a, const struct stat *st);

struct agent_server_opts {
	struct agent_target *target; /* borrowed */
	const char *hostname;	     /* the target's, read before threads started */
	const uint8_t *token;	     /* PROTO_TOKEN_SIZE bytes, or NULL (stdio: trusted) */
	/* Or only the token's SHA-256 (32 bytes; a Kubernetes Job carries
	 * the digest, so reading the Job does not give the token away). */
	const uint8_t *token_sha256;
	usec_t communication_timeout; /* exit when no client for this long; 0 = never */
	unsigned workers;
	struct agent_tls_ctx *tls;	/* borrowed; NULL: plain. Accepted sessions only */
	struct agent_incoming *incoming; /* borrowed; NULL: no MIRROR/STEAL */
};

/* Creates the server on loop l. Sessions come from agent_server_add_fd()
 * (stdio, or an accepted connection). */
int agent_server_new(struct loop *l, const struct agent_server_opts *o,
		     struct agent_server **ret);
void agent_server_free(struct agent_server *srv);

/* Takes ownership of a connected, non-blocking stream fd and starts a
 * session on it. `exit_when_done`: the agent exits when this session ends
 * (stdio mode). */
int agent_server_add_fd(struct agent_server *srv, int fd, bool exit_when_done);

/* Starts accepting on a listening socket (borrowed; the caller closes it
 * after agent_server_free). */
int agent_server_listen(struct agent_server *srv, int listen_fd);

/* Asks every session to say goodbye (SIGTERM). */
void agent_server_shutdown(struct agent_server *srv, const char *reason);

#endif
