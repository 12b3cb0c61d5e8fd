/* Outgoing streams of a session: TCP connections and UDP flows made from
 * the target's network namespace on the launcher's behalf. Private to
 * agent/; loop thread only.
 */
#ifndef PODENV_AGENT_STREAM_H
#define PODENV_AGENT_STREAM_H

#include <sys/socket.h>

#include "agent/session.h"

/* Session output levels at which streams stop and resume reading their
 * sockets (see session.c). */
#define OUT_STREAM_HIGH (512u * 1024)
#define OUT_STREAM_LOW (128u * 1024)

struct agent_out_item {
	struct buf b;
	struct agent_out_item *next;
};

struct agent_session {
	struct agent_server *srv;
	uint64_t id;
	int fd;
	struct loop_source *io;
	struct loop_source *hello_timer; /* closes a session that never says HELLO */
	struct agent_tls *tls; /* NULL: plain TCP or stdio */
	struct proto_decoder *dec;
	struct buf out; /* the tail: small frames are encoded here */
	/* Whole buffers that go out before `out` (a 1 MiB READ answer is
	 * queued as it is rather than copied behind other output); FIFO. */
	struct agent_out_item *q_head, *q_tail;
	size_t q_bytes;
	bool authed;
	bool closing;
	bool dead;
	bool exit_when_done;
	/* The connection failed while sending: closed from a deferred call, so
	 * the stream or request code that was sending is never left holding a
	 * freed stream. */
	bool broken;
	struct loop_source *close_later;
	unsigned refs;
	struct map handles; /* fh -> struct agent_handle */
	uint64_t next_fh;
	struct map streams; /* stream id -> struct agent_stream */
	uint32_t peer_window;
	uint64_t caps; /* granted in WELCOME */
	struct agent_stream *blocked; /* streams waiting for `out` to drain */
	char peer[64];
	struct agent_session *prev, *next;
};

void agent_session_send(struct agent_session *s, const struct proto_msg *m);
/* Flushes and re-evaluates epoll interest after `out` changed. */
void agent_session_kick(struct agent_session *s);
bool agent_session_congested(const struct agent_session *s);
void agent_session_close(struct agent_session *s, uint32_t code, const char *reason);

/* STREAM_OPEN: connect (TCP, answered when the connect completes) or open a
 * connected UDP socket (answered at once). */
void agent_stream_open(struct agent_session *s, const struct proto_msg *m);
/* STREAM_OPEN_UNIX: connects to the unix stream socket at the request's path,
 * resolved in root_fd (the target's root, openat2 RESOLVE_IN_ROOT, then
 * connect() through /proc/self/fd/N), or to an abstract socket ("@name") in
 * the pod's network namespace; answered at once. Then relayed like TCP. */
void agent_stream_open_unix(struct agent_session *s, const struct proto_msg *m, int root_fd);
/* STREAM_DATA / WINDOW / SHUTDOWN / CLOSE for one of the session's streams;
 * frames for unknown ids are ignored (the stream may have just closed). */
void agent_stream_input(struct agent_session *s, const struct proto_msg *m);
/* Takes ownership of fd, a connected TCP socket that reached a stolen
 * port: sends `incoming` (an INCOMING frame with a new agent stream id)
 * and relays the socket on that stream like an outgoing connection. */
void agent_stream_adopt(struct agent_session *s, int fd, const struct proto_msg *incoming);
/* Frames for agent stream ids that are not sockets here (incoming.c). */
void agent_session_incoming_input(struct agent_session *s, const struct proto_msg *m);
/* Resume streams paused while the session's output was full. */
void agent_streams_resume(struct agent_session *s);
void agent_streams_free_all(struct agent_session *s);

/* "1.2.3.4:80" / "[::1]:80". */
void agent_format_sockaddr(char *out, size_t outsz, const struct sockaddr_storage *ss);

#endif
