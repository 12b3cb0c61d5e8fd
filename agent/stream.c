/* Outgoing TCP and UDP streams (docs/PROTOCOL.md, "Streams").
 *
 * TCP: a non-blocking connect; the STREAM_OPEN response is sent when it
 * completes, so the launcher can hold the app's SYN until then and show a
 * refused connect as ECONNREFUSED. Data from the socket is read straight
 * into the session's output buffer as STREAM_DATA frames, never more than
 * the launcher's credit allows; data from the launcher is queued (bounded
 * by our credit) and written to the socket, credit being returned as the
 * socket takes it. A half-close travels as STREAM_SHUTDOWN both ways.
 * UDP: one connected socket per flow; one STREAM_DATA is one datagram.
 */
#define LOG_TARGET "podenv::agent::stream"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "agent/fs.h"
#include "agent/stream.h"
#include "common/log.h"

struct agent_stream {
	struct agent_session *s;
	uint64_t id;
	int fd;
	struct loop_source *io;
	uint8_t kind;
	bool connecting;
	bool blocked;	    /* on the blocked list, waiting for session output */
	bool eof_sent;	    /* the socket reached EOF and we sent SHUTDOWN */
	bool shut_pending;  /* the launcher sent SHUTDOWN: shutdown(WR) once drained */
	bool shut_done;
	struct proto_credit credit;
	struct buf to_socket;
	struct agent_stream *next_blocked;
	struct proto_msg open_req; /* id and type, for the deferred response */
};

void agent_format_sockaddr(char *out, size_t outsz, const struct sockaddr_storage *ss)
{
	char a[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;
		inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
		snprintf(out, outsz, "%s:%u", a, ntohs(in->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a));
		snprintf(out, outsz, "[%s]:%u", a, ntohs(in6->sin6_port));
	} else {
		snprintf(out, outsz, "unix");
	}
}

static socklen_t sockaddr_from_proto(struct sockaddr_storage *ss, const struct proto_addr *a,
				     uint16_t port)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == PROTO_AF_INET) {
		struct sockaddr_in *in = (void *)ss;
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		memcpy(&in->sin_addr, a->bytes, 4);
		return sizeof(*in);
	}
	if (a->family == PROTO_AF_INET6) {
		struct sockaddr_in6 *in6 = (void *)ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		memcpy(&in6->sin6_addr, a->bytes, 16);
		return sizeof(*in6);
	}
	return 0;
}

static void proto_from_sockaddr(const struct sockaddr_storage *ss, struct proto_addr *a,
				uint16_t *port)
{
	memset(a, 0, sizeof(*a));
	*port = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;
		a->family = PROTO_AF_INET;
		memcpy(a->bytes, &in->sin_addr, 4);
		*port = ntohs(in->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;
		a->family = PROTO_AF_INET6;
		memcpy(a->bytes, &in6->sin6_addr, 16);
		*port = ntohs(in6->sin6_port);
	}
}

static void stream_free(struct agent_stream *st)
{
	struct agent_session *s = st->s;

	if (st->blocked) {
		for (struct agent_stream **p = &s->blocked; *p; p = &(*p)->next_blocked)
			if (*p == st) {
				*p = st->next_blocked;
				break;
			}
	}
	map_remove(&s->streams, st->id);
	loop_source_free(st->io);
	if (st->fd >= 0)
		close(st->fd);
	buf_done(&st->to_socket);
	free(st);
}

/* Ends the stream and tells the launcher (error 0: orderly; else a reset
 * with that errno). */
static void stream_close(struct agent_stream *st, int error)
{
	struct proto_msg m = { .type = PROTO_STREAM_CLOSE, .id = st->id, .error = error };

	agent_session_send(st->s, &m);
	stream_free(st);
}

static void stream_update_events(struct agent_stream *st)
{
	uint32_t ev = 0;

	if (st->connecting)
		ev = EPOLLOUT;
	else {
		uint32_t need = st->kind == PROTO_STREAM_UDP ? PROTO_CHUNK_MAX : 1;
		if (!st->eof_sent && !st->blocked && st->credit.send >= need)
			ev |= EPOLLIN;
		if (buf_len(&st->to_socket) > 0)
			ev |= EPOLLOUT;
	}
	loop_io_events_set(st->io, ev);
}

static void stream_block(struct agent_stream *st)
{
	if (st->blocked)
		return;
	st->blocked = true;
	st->next_blocked = st->s->blocked;
	st->s->blocked = st;
}

void agent_streams_resume(struct agent_session *s)
{
	struct agent_stream *list = s->blocked;

	s->blocked = NULL;
	while (list) {
		struct agent_stream *st = list;
		list = st->next_blocked;
		st->blocked = false;
		st->next_blocked = NULL;
		stream_update_events(st);
	}
}

/* Socket → launcher, within credit and while the session has room. */
static int stream_read(struct agent_stream *st)
{
	struct agent_session *s = st->s;

	for (int rounds = 0; rounds < 4; rounds++) {
		if (agent_session_congested(s)) {
			stream_block(st);
			break;
		}
		uint32_t want = proto_credit_sendable(&st->credit, PROTO_CHUNK_MAX);
		/* A datagram goes whole or not at all: read one only with room
		 * for the largest, or recv() would cut it short silently. */
		if (st->kind == PROTO_STREAM_UDP && want < PROTO_CHUNK_MAX)
			want = 0;
		if (want == 0)
			break; /* wait for a STREAM_WINDOW */
		size_t start = proto_frame_begin(&s->out, PROTO_STREAM_DATA, 0, st->id);
		void *p = buf_reserve(&s->out, want);
		ssize_t n = recv(st->fd, p, want, 0);
		if (n <= 0) {
			/* Drop the empty frame we began. */
			buf_truncate(&s->out, start);
			if (n == 0) {
				if (st->kind == PROTO_STREAM_UDP)
					break; /* an empty datagram: nothing to relay */
				struct proto_msg m = { .type = PROTO_STREAM_SHUTDOWN, .id = st->id };
				st->eof_sent = true;
				agent_session_send(s, &m);
				if (st->shut_done)
					stream_close(st, 0);
				return 1;
			}
			if (errno == EAGAIN || errno == EINTR)
				break;
			int err = errno;
			log_debug("stream %" PRIu64 ": recv: %s", st->id, strerror(err));
			stream_close(st, err);
			return 1;
		}
		buf_commit(&s->out, (size_t)n);
		proto_frame_end(&s->out, start);
		proto_credit_sent(&st->credit, (uint32_t)n);
		if (st->kind == PROTO_STREAM_TCP && (size_t)n < want)
			break; /* drained the socket */
	}
	agent_session_kick(s);
	return 0;
}

/* Launcher → socket. Returns 1 if the stream was freed. */
static int stream_write(struct agent_stream *st)
{
	struct agent_session *s = st->s;
	size_t taken = 0;

	while (buf_len(&st->to_socket) > 0) {
		ssize_t n = send(st->fd, buf_data(&st->to_socket), buf_len(&st->to_socket),
				 MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			stream_close(st, errno);
			return 1;
		}
		buf_consume(&st->to_socket, (size_t)n);
		taken += (size_t)n;
	}
	if (taken) {
		uint32_t inc = proto_credit_consumed(&st->credit, (uint32_t)taken);
		if (inc) {
			struct proto_msg m = { .type = PROTO_STREAM_WINDOW, .id = st->id,
					       .window = inc };
			agent_session_send(s, &m);
		}
	}
	if (buf_len(&st->to_socket) == 0 && st->shut_pending && !st->shut_done) {
		shutdown(st->fd, SHUT_WR);
		st->shut_done = true;
		if (st->eof_sent) {
			stream_close(st, 0);
			return 1;
		}
	}
	return 0;
}

static void connect_done(struct agent_stream *st)
{
	struct proto_msg rep = { .type = PROTO_STREAM_OPEN, .flags = PROTO_F_RESPONSE,
				 .id = st->id };
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int err = 0;
	socklen_t el = sizeof(err);

	if (getsockopt(st->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
		err = errno;
	st->connecting = false;
	if (err) {
		proto_msg_error(&rep, &st->open_req, err);
		agent_session_send(st->s, &rep);
		stream_free(st);
		return;
	}
	if (getsockname(st->fd, (struct sockaddr *)&ss, &sl) == 0)
		proto_from_sockaddr(&ss, &rep.rep.addr, &rep.rep.port);
	agent_session_send(st->s, &rep);
	stream_update_events(st);
}

static int on_stream_io(struct loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct agent_stream *st = userdata;
	(void)src;
	(void)fd;

	if (st->connecting) {
		connect_done(st);
		return 0;
	}
	if ((events & EPOLLOUT) && stream_write(st))
		return 0;
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && stream_read(st))
		return 0;
	stream_update_events(st);
	return 0;
}

void agent_stream_open(struct agent_session *s, const struct proto_msg *m)
{
	const struct proto_req *q = &m->req;
	struct sockaddr_storage ss;
	socklen_t sl = sockaddr_from_proto(&ss, &q->addr, q->port);
	struct proto_msg rep;
	struct agent_stream *st;
	int type = q->kind == PROTO_STREAM_UDP ? SOCK_DGRAM : SOCK_STREAM;
	int fd, r;

	if (sl == 0 || map_get(&s->streams, m->id)) {
		proto_msg_error(&rep, m, sl == 0 ? EAFNOSUPPORT : EEXIST);
		agent_session_send(s, &rep);
		return;
	}
	fd = socket(ss.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		proto_msg_error(&rep, m, errno);
		agent_session_send(s, &rep);
		return;
	}
	if (type == SOCK_STREAM) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	st = xcalloc(1, sizeof(*st));
	st->s = s;
	st->id = m->id;
	st->fd = fd;
	st->kind = q->kind;
	st->open_req = (struct proto_msg){ .type = m->type, .id = m->id };
	buf_init(&st->to_socket);
	proto_credit_init(&st->credit, s->peer_window, PROTO_WINDOW_DEFAULT);
	r = connect(fd, (struct sockaddr *)&ss, sl);
	if (r < 0 && errno != EINPROGRESS) {
		proto_msg_error(&rep, m, errno);
		agent_session_send(s, &rep);
		close(fd);
		buf_done(&st->to_socket);
		free(st);
		return;
	}
	st->connecting = r < 0;
	map_put(&s->streams, st->id, st);
	if (loop_add_io(loop_source_loop(s->io), fd, st->connecting ? EPOLLOUT : 0, on_stream_io,
			st, &st->io) < 0) {
		st->io = NULL;
		proto_msg_error(&rep, m, ENOMEM);
		agent_session_send(s, &rep);
		stream_free(st);
		return;
	}
	if (!st->connecting)
		connect_done(st);
}

void agent_stream_open_unix(struct agent_session *s, const struct proto_msg *m, int root_fd)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	const char *path = m->req.path;
	struct proto_msg rep;
	struct agent_stream *st;
	_cleanup_close_ int pathfd = -1;
	socklen_t sl;
	int fd, err = 0;

	if (map_get(&s->streams, m->id)) {
		err = EEXIST;
	} else if (path[0] == '@') {
		size_t n = strlen(path + 1);
		if (n + 1 > sizeof(sun.sun_path))
			err = ENAMETOOLONG;
		memcpy(sun.sun_path + 1, path + 1, err ? 0 : n);
		sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	} else {
		/* Resolved inside the target's root, never outside it; connect()
		 * then follows the fd's magic link to the socket inode. */
		pathfd = agent_fs_open(root_fd, path, O_PATH, 0);
		if (pathfd < 0)
			err = -pathfd;
		snprintf(sun.sun_path, sizeof(sun.sun_path), "/proc/self/fd/%d", pathfd);
		sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(sun.sun_path) + 1);
	}
	fd = err ? -1 : socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (!err && fd < 0)
		err = errno;
	/* A unix connect completes at once (EAGAIN: the listener's backlog is
	 * full, as a non-blocking client would see it). */
	if (!err && connect(fd, (struct sockaddr *)&sun, sl) < 0) {
		err = errno;
		close(fd);
	}
	if (err) {
		proto_msg_error(&rep, m, err);
		agent_session_send(s, &rep);
		return;
	}
	st = xcalloc(1, sizeof(*st));
	st->s = s;
	st->id = m->id;
	st->fd = fd;
	st->kind = PROTO_STREAM_TCP; /* a byte stream with half-close, like TCP */
	st->open_req = (struct proto_msg){ .type = m->type, .id = m->id };
	buf_init(&st->to_socket);
	proto_credit_init(&st->credit, s->peer_window, PROTO_WINDOW_DEFAULT);
	map_put(&s->streams, st->id, st);
	if (loop_add_io(loop_source_loop(s->io), fd, 0, on_stream_io, st, &st->io) < 0) {
		st->io = NULL;
		proto_msg_error(&rep, m, ENOMEM);
		agent_session_send(s, &rep);
		stream_free(st);
		return;
	}
	connect_done(st);
}

void agent_stream_adopt(struct agent_session *s, int fd, const struct proto_msg *incoming)
{
	struct agent_stream *st = xcalloc(1, sizeof(*st));

	st->s = s;
	st->id = incoming->id;
	st->fd = fd;
	st->kind = PROTO_STREAM_TCP;
	buf_init(&st->to_socket);
	proto_credit_init(&st->credit, s->peer_window, PROTO_WINDOW_DEFAULT);
	map_put(&s->streams, st->id, st);
	/* INCOMING precedes every frame of its stream. */
	agent_session_send(s, incoming);
	if (loop_add_io(loop_source_loop(s->io), fd, 0, on_stream_io, st, &st->io) < 0) {
		st->io = NULL;
		stream_close(st, ENOMEM);
		return;
	}
	stream_update_events(st);
}

void agent_stream_input(struct agent_session *s, const struct proto_msg *m)
{
	struct agent_stream *st = map_get(&s->streams, m->id);

	if (!st && (m->id >> 63)) {
		agent_session_incoming_input(s, m); /* a mirror copy or a stolen request */
		return;
	}
	if (!st || st->connecting)
		return; /* closed already, or data before the open answer: drop */
	switch (m->type) {
	case PROTO_STREAM_DATA:
		if (proto_credit_on_data(&st->credit, m->data.len) < 0) {
			agent_session_close(s, PROTO_BYE_PROTOCOL, "stream data beyond the granted window");
			return;
		}
		if (st->kind == PROTO_STREAM_UDP) {
			/* A datagram goes whole or not at all; credit returns at once. */
			if (send(st->fd, m->data.data, m->data.len, MSG_NOSIGNAL) < 0 && errno != EAGAIN)
				log_debug("stream %" PRIu64 ": send: %m", st->id);
			uint32_t inc = proto_credit_consumed(&st->credit, m->data.len);
			if (inc) {
				struct proto_msg w = { .type = PROTO_STREAM_WINDOW, .id = st->id,
						       .window = inc };
				agent_session_send(s, &w);
			}
			return;
		}
		buf_append(&st->to_socket, m->data.data, m->data.len);
		if (stream_write(st))
			return;
		break;
	case PROTO_STREAM_WINDOW:
		if (proto_credit_on_window(&st->credit, m->window) < 0) {
			agent_session_close(s, PROTO_BYE_PROTOCOL, "stream window overflow");
			return;
		}
		break;
	case PROTO_STREAM_SHUTDOWN:
		st->shut_pending = true;
		if (stream_write(st))
			return;
		break;
	case PROTO_STREAM_CLOSE:
		if (m->error) {
			/* A reset: make the peer see RST, not FIN. */
			struct linger lg = { 1, 0 };
			setsockopt(st->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		stream_free(st);
		return;
	}
	stream_update_events(st);
}

void agent_streams_free_all(struct agent_session *s)
{
	uint64_t key;
	void *v;

	s->blocked = NULL;
	for (size_t pos = 0; map_next(&s->streams, &pos, &key, &v);) {
		struct agent_stream *st = v;
		st->blocked = false;
		loop_source_free(st->io);
		if (st->fd >= 0)
			close(st->fd);
		buf_done(&st->to_socket);
		free(st);
	}
	map_done(&s->streams);
}
