/* The agent's server: the listener, sessions, and dispatch of requests.
 *
 * A session is one launcher on one stream socket. Its input goes through a
 * proto decoder; requests for files and queries are copied and handed to
 * the worker pool, answered in completion order; streams (outgoing TCP and
 * UDP) live on the loop (stream.c). All output of a session goes through
 * one buffer, `out`: responses and stream data share it, and when it is
 * fuller than OUT_STREAM_HIGH, streams stop reading their sockets (their
 * data waits in the kernel, counted against the peer's credit) so that file
 * responses are never queued behind more than that much bulk data. Above
 * OUT_HIGH the session stops reading requests: a launcher that does not
 * read its answers cannot make the agent buffer without bound.
 *
 * With TLS (--tls-cert), the two I/O points go through agent/tls.c instead
 * of recv/send; the rest of the session does not know the difference.
 */
#define LOG_TARGET "podenv::agent::session"
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "agent/dns.h"
#include "agent/incoming.h"
#include "agent/session.h"
#include "agent/stream.h"
#include "agent/tls.h"
#include "common/log.h"

#define OUT_HIGH (8u << 20)
#define HELLO_DEADLINE (10 * USEC_PER_SEC)
#define READ_CHUNK (256u * 1024)

struct agent_server {
	struct loop *loop;
	struct agent_server_opts o;
	uint8_t token[PROTO_TOKEN_SIZE];
	bool have_token;
	uint8_t token_sha256[SHA256_DIGEST_LENGTH];
	bool have_digest;
	struct agent_pool *pool;
	struct agent_session *sessions;
	unsigned nsessions;
	uint64_t next_session_id;
	struct loop_source *idle_timer;
	struct loop_source *listen_src;
	int listen_fd;
};

static void session_unref(struct agent_session *s);
static void session_update_events(struct agent_session *s);

/* --- handles --------------------------------------------------------------- */

static struct agent_handle *handle_new(uint64_t fh, int fd)
{
	struct agent_handle *h = xcalloc(1, sizeof(*h));

	h->fh = fh;
	h->fd = fd;
	h->refs = 1;
	pthread_mutex_init(&h->lock, NULL);
	return h;
}

static void handle_unref(struct agent_handle *h)
{
	if (!h || --h->refs > 0)
		return;
	close(h->fd);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/* --- output ---------------------------------------------------------------- */

/* Everything queued for the launcher, in bytes. */
static size_t out_len(const struct agent_session *s)
{
	return s->q_bytes + buf_len(&s->out);
}

/* Moves *b (its storage, not its bytes) to the end of the queue, after
 * everything queued so far; *b is empty afterwards. */
static void out_queue(struct agent_session *s, struct buf *b)
{
	struct agent_out_item *it;

	if (buf_len(b) == 0)
		return;
	it = xmalloc(sizeof(*it));
	it->b = *b;
	it->next = NULL;
	buf_init(b);
	if (s->q_tail)
		s->q_tail->next = it;
	else
		s->q_head = it;
	s->q_tail = it;
	s->q_bytes += buf_len(&it->b);
}

static void out_pop(struct agent_session *s)
{
	struct agent_out_item *it = s->q_head;

	s->q_head = it->next;
	if (!s->q_head)
		s->q_tail = NULL;
	buf_done(&it->b);
	free(it);
}

static void out_free(struct agent_session *s)
{
	while (s->q_head)
		out_pop(s);
	s->q_bytes = 0;
	buf_done(&s->out);
}

/* Consumes n sent bytes from the front: queued buffers first, then out.
 * Bytes leave strictly in order, so a partly sent frame is always
 * finished before anything else goes. */
static void out_consume(struct agent_session *s, size_t n)
{
	while (n > 0 && s->q_head) {
		size_t k = MIN(n, buf_len(&s->q_head->b));
		buf_consume(&s->q_head->b, k);
		s->q_bytes -= k;
		n -= k;
		if (buf_len(&s->q_head->b) == 0)
			out_pop(s);
	}
	buf_consume(&s->out, n);
}

/* Writes as much as the socket takes now. */
static int session_flush(struct agent_session *s)
{
	while (out_len(s) > 0) {
		ssize_t n;
		if (s->tls) {
			struct buf *b = s->q_head ? &s->q_head->b : &s->out;
			n = agent_tls_write(s->tls, buf_data(b), buf_len(b));
		} else {
			struct iovec iov[16];
			struct agent_out_item *it = s->q_head;
			int cnt = 0;
			for (; it && cnt < 16; it = it->next)
				iov[cnt++] = (struct iovec){ buf_data(&it->b), buf_len(&it->b) };
			/* out follows the queue: only once all of the queue is in. */
			if (!it && buf_len(&s->out) && cnt < 16)
				iov[cnt++] = (struct iovec){ buf_data(&s->out), buf_len(&s->out) };
			struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)cnt };
			if ((n = sendmsg(s->fd, &mh, MSG_NOSIGNAL)) < 0)
				n = -errno;
		}
		if (n < 0) {
			if (n == -EINTR)
				continue;
			if (n == -EAGAIN)
				break;
			return n;
		}
		out_consume(s, (size_t)n);
	}
	if (out_len(s) < OUT_STREAM_LOW)
		agent_streams_resume(s);
	return 0;
}

bool agent_session_congested(const struct agent_session *s)
{
	return out_len(s) >= OUT_STREAM_HIGH;
}

/* Queues m and tries to send it at once. Encoding errors are our bugs:
 * they end the session rather than desynchronise the peer. */
void agent_session_send(struct agent_session *s, const struct proto_msg *m)
{
	if (s->dead || s->broken)
		return;
	if (proto_msg_encode(&s->out, m) < 0) {
		log_error("session %" PRIu64 ": cannot encode %s", s->id,
			  proto_type_name(m->type));
		agent_session_close(s, PROTO_BYE_INTERNAL, "internal encoding error");
		return;
	}
	agent_session_kick(s);
}

static int on_close_later(struct loop_source *src, void *userdata)
{
	struct agent_session *s = userdata;

	s->close_later = NULL;
	loop_source_free(src);
	agent_session_close(s, 0, NULL);
	session_unref(s);
	return 0;
}

void agent_session_kick(struct agent_session *s)
{
	int r;

	if (s->dead || s->broken)
		return;
	r = session_flush(s);
	if (r < 0) {
		log_info("session %" PRIu64 ": connection lost: %s", s->id,
			 r == -EPROTO && s->tls ? agent_tls_reason(s->tls) : strerror(-r));
		/* Our caller may be a stream or a request in the middle of its
		 * work: close on the next loop iteration, not under its feet. */
		s->broken = true;
		s->refs++;
		loop_add_defer(s->srv->loop, on_close_later, s, &s->close_later);
		return;
	}
	session_update_events(s);
}

static bool session_reading(const struct agent_session *s)
{
	return !s->closing && out_len(s) < OUT_HIGH;
}

static void session_update_events(struct agent_session *s)
{
	uint32_t ev = 0;

	if (s->dead)
		return;
	if (session_reading(s))
		ev |= EPOLLIN;
	if (out_len(s) > 0)
		ev |= EPOLLOUT;
	if (s->tls) {
		uint32_t want = agent_tls_events(s->tls);
		/* A write that waits for the peer's handshake data must not
		 * poll for a writable socket (it always is: a busy loop). */
		if (want & EPOLLIN)
			ev = (ev & ~EPOLLOUT) | EPOLLIN;
		ev |= want & EPOLLOUT;
		/* Input left inside OpenSSL (reading paused while `out` was
		 * full) will not make the fd readable: a writable socket
		 * brings us back to on_session_io to drain it. */
		if ((ev & EPOLLIN) && agent_tls_pending(s->tls))
			ev |= EPOLLOUT;
	}
	loop_io_events_set(s->io, ev);
}

static void server_session_gone(struct agent_server *srv);

/* Ends the session: sends GOODBYE when a code is given and the peer is
 * authenticated, flushes what the socket takes, and closes. Requests still
 * on workers finish and are dropped. */
void agent_session_close(struct agent_session *s, uint32_t code, const char *reason)
{
	if (s->dead)
		return;
	if (reason && s->authed) {
		struct proto_msg m = { .type = PROTO_GOODBYE };
		m.goodbye.code = code;
		m.goodbye.reason = reason;
		if (proto_msg_encode(&s->out, &m) == 0)
			session_flush(s);
	}
	if (reason)
		log_info("session %" PRIu64 " closed: %s", s->id, reason);
	s->dead = true;
	/* Redirects of this session go at once: the pod serves itself again. */
	agent_incoming_session_closed(s->srv->o.incoming, s);
	agent_streams_free_all(s);
	agent_dns_session_closed(s);
	loop_source_free(s->io);
	loop_source_free(s->hello_timer);
	s->hello_timer = NULL;
	s->io = NULL;
	agent_tls_free(s->tls);
	s->tls = NULL;
	close(s->fd);
	s->fd = -1;
	/* Handles: drop the table's references; workers hold their own. */
	uint64_t key;
	void *v;
	for (size_t pos = 0; map_next(&s->handles, &pos, &key, &v);)
		handle_unref(v);
	map_done(&s->handles);
	if (s->prev)
		s->prev->next = s->next;
	else
		s->srv->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->srv->nsessions--;
	if (s->close_later) {
		/* Closed before its deferred close ran (agent shutdown): that
		 * close and the reference it held go now, or the session leaks
		 * once the loop has stopped iterating. */
		loop_source_free(s->close_later);
		s->close_later = NULL;
		session_unref(s);
	}
	if (s->exit_when_done)
		loop_exit(s->srv->loop, code == PROTO_BYE_NORMAL || code == PROTO_BYE_SHUTDOWN ? 0 : 1);
	server_session_gone(s->srv);
	session_unref(s);
}

static void session_unref(struct agent_session *s)
{
	if (--s->refs > 0)
		return;
	proto_decoder_free(s->dec);
	out_free(s);
	map_done(&s->streams);
	free(s);
}

/* --- requests on the pool ------------------------------------------------ */

static void request_run(struct agent_job *job)
{
	agent_files_run(container_of(job, struct agent_request, job));
}

static void request_done(struct agent_job *job)
{
	struct agent_request *rq = container_of(job, struct agent_request, job);
	struct agent_session *s = rq->session;

	if (rq->new_fd >= 0) {
		if (s->dead)
			close(rq->new_fd);
		else
			map_put(&s->handles, rq->new_fh, handle_new(rq->new_fh, rq->new_fd));
	}
	if (!s->dead) {
		/* An idle session takes the reply buffer as it is (a 1 MiB READ
		 * is not copied again); otherwise it queues behind. */
		if (out_len(s) == 0) {
			struct buf empty = s->out;
			s->out = rq->reply;
			rq->reply = empty;
		} else if (buf_len(&rq->reply) >= 65536) {
			/* Behind what is queued, without copying it: the tail
			 * moves into the queue, then the answer. */
			out_queue(s, &s->out);
			out_queue(s, &rq->reply);
		} else {
			buf_append(&s->out, buf_data(&rq->reply), buf_len(&rq->reply));
		}
		agent_session_kick(s);
	}
	handle_unref(rq->handle);
	buf_done(&rq->reply);
	free(rq->payload);
	free(rq);
	session_unref(s);
}

static void reply_error(struct agent_session *s, const struct proto_msg *req, int err)
{
	struct proto_msg m;

	proto_msg_error(&m, req, err);
	agent_session_send(s, &m);
}

static bool uses_handle(uint16_t type)
{
	switch (type) {
	case PROTO_FSTAT:
	case PROTO_READ:
	case PROTO_WRITE:
	case PROTO_FTRUNCATE:
	case PROTO_READDIR:
	case PROTO_FSYNC:
		return true;
	default:
		return false;
	}
}

static void submit_request(struct agent_session *s, const struct proto_frame *f,
			   const struct proto_msg *m)
{
	struct agent_server *srv = s->srv;
	struct agent_request *rq = xcalloc(1, sizeof(*rq));

	if (uses_handle(m->type)) {
		rq->handle = map_get(&s->handles, m->req.fh);
		if (!rq->handle) {
			free(rq);
			reply_error(s, m, EBADF);
			return;
		}
		rq->handle->refs++;
	}
	if (m->type == PROTO_OPEN || m->type == PROTO_OPEN_READ || m->type == PROTO_OPENDIR)
		rq->new_fh = ++s->next_fh;
	rq->new_fd = -1;
	rq->session = s;
	s->refs++;
	rq->target = srv->o.target;
	rq->root_fd = srv->o.target->root_fd;
	/* The decoded message borrows from the decoder's buffer, which the
	 * next frame overwrites: the worker decodes its own copy. */
	rq->payload = xmalloc(f->len ? f->len : 1);
	memcpy(rq->payload, f->payload, f->len);
	struct proto_frame copy = *f;
	copy.payload = rq->payload;
	if (proto_msg_decode(&copy, &rq->msg) < 0)
		abort(); /* decoded once already: cannot fail */
	buf_init(&rq->reply);
	rq->job.run = request_run;
	rq->job.done = request_done;
	agent_pool_submit(srv->pool, &rq->job);
}

static void handle_release(struct agent_session *s, const struct proto_msg *m)
{
	struct agent_handle *h = map_remove(&s->handles, m->req.fh);
	struct proto_msg rep = { .type = m->type, .flags = PROTO_F_RESPONSE, .id = m->id };

	if (!h) {
		reply_error(s, m, EBADF);
		return;
	}
	handle_unref(h);
	agent_session_send(s, &rep);
}

static void dispatch(struct agent_session *s, const struct proto_frame *f,
		     const struct proto_msg *m)
{
	struct proto_msg rep = { .type = m->type, .flags = PROTO_F_RESPONSE, .id = m->id };

	switch (m->type) {
	case PROTO_PING:
		rep = (struct proto_msg){ .type = PROTO_PONG, .counter = m->counter };
		agent_session_send(s, &rep);
		return;
	case PROTO_PONG:
		return;
	case PROTO_GOODBYE:
		log_info("session %" PRIu64 ": client said goodbye (%u): %s", s->id,
			 m->goodbye.code, m->goodbye.reason);
		agent_session_close(s, PROTO_BYE_NORMAL, NULL);
		return;
	case PROTO_HOSTNAME:
		rep.rep.str = s->srv->o.hostname;
		agent_session_send(s, &rep);
		return;
	case PROTO_RELEASE:
		handle_release(s, m);
		return;
	case PROTO_STREAM_OPEN:
		agent_stream_open(s, m);
		return;
	case PROTO_STREAM_OPEN_UNIX:
		agent_stream_open_unix(s, m, s->srv->o.target->root_fd);
		return;
	case PROTO_STREAM_DATA:
	case PROTO_STREAM_WINDOW:
	case PROTO_STREAM_SHUTDOWN:
	case PROTO_STREAM_CLOSE:
		agent_stream_input(s, m);
		return;
	case PROTO_DNS_RESOLVE:
	case PROTO_DNS_QUERY:
		agent_dns_request(s, m);
		return;
	case PROTO_SUBSCRIBE:
	case PROTO_UNSUBSCRIBE:
		if (!s->srv->o.incoming ||
		    (m->type == PROTO_SUBSCRIBE &&
		     !(s->caps & (m->req.kind == PROTO_STEAL ? PROTO_CAP_STEAL : PROTO_CAP_MIRROR))))
			reply_error(s, m, EOPNOTSUPP);
		else
			agent_incoming_request(s->srv->o.incoming, s, m);
		return;
	default:
		break;
	}
	if ((m->type >> 8) == 0x01 || m->type == PROTO_GETENV || m->type == PROTO_RESOLVCONF) {
		submit_request(s, f, m);
		return;
	}
	reply_error(s, m, ENOSYS);
}

/* The first frame: a HELLO with the right magic, version and token. */
static int handshake(struct agent_session *s, const struct proto_frame *f)
{
	struct agent_server *srv = s->srv;
	struct proto_msg first, reply;
	struct proto_server_params p = {
		.token = srv->token,
		.caps = PROTO_CAP_FILES | PROTO_CAP_QUERY | PROTO_CAP_DNS | PROTO_CAP_TCP |
			PROTO_CAP_UDP | PROTO_CAP_UNIX,
		.session_id = s->id,
		.window = PROTO_WINDOW_DEFAULT,
		.name = "podenv-agent " PODENV_AGENT_VERSION,
	};
	bool decoded = proto_msg_decode(f, &first) == 0;
	int r;

	if (srv->o.incoming)
		p.caps |= PROTO_CAP_MIRROR | PROTO_CAP_STEAL;

	/* A stdio session comes from the launcher that started us over a
	 * socketpair nobody else holds: the channel is the authentication. */
	if (!srv->have_token && !srv->have_digest && decoded && first.type == PROTO_HELLO)
		p.token = first.hello.token;
	/* Digest only: a HELLO whose token hashes to it is compared with
	 * itself; any other with a token that differs from it in the first
	 * byte, so the handshake refuses it the usual way. */
	uint8_t unknown[PROTO_TOKEN_SIZE];
	if (srv->have_digest) {
		uint8_t d[SHA256_DIGEST_LENGTH];
		memset(unknown, 0, sizeof(unknown));
		p.token = unknown;
		if (decoded && first.type == PROTO_HELLO) {
			SHA256(first.hello.token, PROTO_TOKEN_SIZE, d);
			if (!CRYPTO_memcmp(d, srv->token_sha256, sizeof(d)))
				p.token = first.hello.token;
			else
				unknown[0] = (uint8_t)~first.hello.token[0];
		}
	}
	r = proto_handshake_server(decoded ? &first : NULL, &p, &reply);
	if (reply.type)
		proto_msg_encode(&s->out, &reply);
	session_flush(s);
	if (r < 0) {
		log_warn("session %" PRIu64 " from %s refused: %s", s->id, s->peer,
			 r == -EACCES		 ? "wrong token"
			 : r == -EPROTONOSUPPORT ? "no common protocol version"
						 : "not a podenv client");
		return r;
	}
	s->authed = true;
	loop_source_free(s->hello_timer);
	s->hello_timer = NULL;
	s->peer_window = first.hello.window;
	s->caps = reply.welcome.caps;
	proto_decoder_max_set(s->dec, PROTO_PAYLOAD_MAX);
	log_info("session %" PRIu64 " from %s: %s", s->id, s->peer, first.hello.name);
	return 0;
}

static void process_frames(struct agent_session *s)
{
	struct proto_frame f;
	struct proto_msg m;
	char reason[128];
	int r = 0;

	while (!s->dead && (r = proto_decoder_next(s->dec, &f)) > 0) {
		if (!s->authed) {
			if (handshake(s, &f) < 0) {
				agent_session_close(s, 0, NULL);
				return;
			}
			continue;
		}
		r = proto_msg_decode(&f, &m);
		if (r == -EOPNOTSUPP && proto_type_is_request(f.type) &&
		    !(f.flags & PROTO_F_RESPONSE)) {
			/* A newer client's request: answer, do not fail. */
			m = (struct proto_msg){ .type = f.type, .id = f.id };
			reply_error(s, &m, ENOSYS);
			continue;
		}
		if (r == 0)
			r = proto_msg_check(&m, false);
		if (r < 0) {
			snprintf(reason, sizeof(reason), "malformed %s frame (type 0x%04x): %s",
				 proto_type_name(f.type) ? proto_type_name(f.type) : "unknown",
				 f.type, strerror(-r));
			agent_session_close(s, PROTO_BYE_PROTOCOL, reason);
			return;
		}
		dispatch(s, &f, &m);
	}
	if (!s->dead && r < 0) {
		snprintf(reason, sizeof(reason), "bad frame: %s",
			 r == -EMSGSIZE ? "larger than the maximum size" : "malformed header");
		agent_session_close(s, PROTO_BYE_PROTOCOL, reason);
	}
}

/* Reads what TLS has: chunks of up to READ_CHUNK plaintext, processed as
 * they fill, until OpenSSL needs the socket again, holds nothing more, or
 * the session stops reading. */
static void session_read_tls(struct agent_session *s)
{
	ssize_t n = 0;
	size_t got;

	do {
		uint8_t *p = proto_decoder_reserve(s->dec, READ_CHUNK);
		got = 0;
		while (got < READ_CHUNK &&
		       (n = agent_tls_read(s->tls, p + got, READ_CHUNK - got)) > 0)
			got += (size_t)n;
		if (got > 0) {
			proto_decoder_commit(s->dec, got);
			process_frames(s);
			if (s->dead)
				return;
		}
		if (got == READ_CHUNK)
			continue;
		if (n == -EAGAIN || n == -EINTR)
			return;
		if (n == 0)
			log_info("session %" PRIu64 ": launcher disconnected", s->id);
		else if (n == -EPROTO && !agent_tls_established(s->tls))
			log_warn("session %" PRIu64 " from %s: TLS handshake failed: %s", s->id,
				 s->peer, agent_tls_reason(s->tls));
		else
			log_info("session %" PRIu64 ": read failed: %s", s->id,
				 n == -EPROTO ? agent_tls_reason(s->tls) : strerror((int)-n));
		agent_session_close(s, PROTO_BYE_NORMAL, NULL);
		return;
	} while (session_reading(s) && agent_tls_pending(s->tls));
}

static int on_hello_timeout(struct loop_source *src, usec_t now, void *userdata)
{
	struct agent_session *s = userdata;
	(void)now;

	if (s->hello_timer == src && !s->authed) {
		s->hello_timer = NULL;
		loop_source_free(src);
		log_info("session %" PRIu64 " from %s: no HELLO within 10 s, closing", s->id,
			 s->peer);
		agent_session_close(s, 0, NULL);
	}
	return 0;
}

static int on_session_io(struct loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct agent_session *s = userdata;
	(void)src;

	s->refs++; /* the session may close while we dispatch */
	if (s->tls) {
		/* A read also runs on EPOLLOUT when it waits for the socket to
		 * take handshake data, or to drain input buffered in OpenSSL. */
		if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) ||
		    ((events & EPOLLOUT) && ((agent_tls_events(s->tls) & EPOLLOUT) ||
					     (session_reading(s) && agent_tls_pending(s->tls)))))
			session_read_tls(s);
		if (!s->dead && (events & EPOLLIN) && (agent_tls_events(s->tls) & EPOLLIN))
			events |= EPOLLOUT; /* a write waited for input */
	} else if (events & EPOLLIN) {
		void *p = proto_decoder_reserve(s->dec, READ_CHUNK);
		ssize_t n = recv(fd, p, READ_CHUNK, 0);
		if (n > 0) {
			proto_decoder_commit(s->dec, (size_t)n);
			process_frames(s);
		} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			if (n == 0)
				log_info("session %" PRIu64 ": launcher disconnected", s->id);
			else
				log_info("session %" PRIu64 ": read failed: %m", s->id);
			agent_session_close(s, PROTO_BYE_NORMAL, NULL);
		}
	} else if (events & (EPOLLERR | EPOLLHUP)) {
		agent_session_close(s, PROTO_BYE_NORMAL, NULL);
	}
	if (!s->dead && (events & EPOLLOUT))
		agent_session_kick(s);
	else if (!s->dead)
		session_update_events(s);
	session_unref(s);
	return 0;
}

void agent_session_incoming_input(struct agent_session *s, const struct proto_msg *m)
{
	agent_incoming_input(s->srv->o.incoming, s, m);
}

/* --- server ---------------------------------------------------------------- */

static int on_idle_timeout(struct loop_source *src, usec_t now, void *userdata)
{
	struct agent_server *srv = userdata;
	(void)src;
	(void)now;

	if (srv->nsessions == 0) {
		log_info("no client for %llu s (agent.communication_timeout): exiting",
			 (unsigned long long)(srv->o.communication_timeout / USEC_PER_SEC));
		loop_exit(srv->loop, 0);
	}
	return 0;
}

static void server_session_gone(struct agent_server *srv)
{
	if (srv->nsessions == 0 && srv->o.communication_timeout)
		loop_timer_set(srv->idle_timer, now_usec() + srv->o.communication_timeout);
}

int agent_server_add_fd(struct agent_server *srv, int fd, bool exit_when_done)
{
	struct agent_session *s = xcalloc(1, sizeof(*s));
	int r;

	s->srv = srv;
	s->fd = fd;
	s->id = ++srv->next_session_id;
	s->refs = 1;
	s->exit_when_done = exit_when_done;
	buf_init(&s->out);
	map_init(&s->handles);
	map_init(&s->streams);
	snprintf(s->peer, sizeof(s->peer), "%s", exit_when_done ? "stdio" : "?");
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (!exit_when_done && getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
		agent_format_sockaddr(s->peer, sizeof(s->peer), &ss);
	r = proto_decoder_new(PROTO_HELLO_MAX, &s->dec);
	if (r < 0)
		goto fail;
	if (srv->o.tls && !exit_when_done) {
		r = agent_tls_new(srv->o.tls, fd, &s->tls);
		if (r < 0)
			goto fail;
	}
	r = loop_add_io(srv->loop, fd, EPOLLIN, on_session_io, s, &s->io);
	if (r < 0)
		goto fail;
	/* docs/PROTOCOL.md §3.1: a connection that has not completed its
	 * HELLO within 10 s is closed, so a stalled peer cannot hold a
	 * session (and keep communication_timeout from firing). */
	loop_add_timer(srv->loop, now_usec() + HELLO_DEADLINE, on_hello_timeout, s, &s->hello_timer);
	s->next = srv->sessions;
	if (srv->sessions)
		srv->sessions->prev = s;
	srv->sessions = s;
	srv->nsessions++;
	loop_timer_set(srv->idle_timer, USEC_INFINITY);
	return 0;
fail:
	agent_tls_free(s->tls);
	close(fd);
	proto_decoder_free(s->dec);
	map_done(&s->handles);
	map_done(&s->streams);
	free(s);
	return r;
}

static int on_accept(struct loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct agent_server *srv = userdata;
	(void)src;
	(void)events;

	for (;;) {
		int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warn("accept: %m");
			return 0;
		}
		int one = 1, sz = 4 << 20;
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		/* Room for several 1 MiB answers: fewer partial sends. */
		setsockopt(c, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		int r = agent_server_add_fd(srv, c, false);
		if (r < 0)
			log_warn("cannot start a session: %s", strerror(-r));
	}
}

int agent_server_listen(struct agent_server *srv, int listen_fd)
{
	srv->listen_fd = listen_fd;
	return loop_add_io(srv->loop, listen_fd, EPOLLIN, on_accept, srv, &srv->listen_src);
}

int agent_server_new(struct loop *l, const struct agent_server_opts *o,
		     struct agent_server **ret)
{
	struct agent_server *srv = xcalloc(1, sizeof(*srv));
	int r;

	srv->loop = l;
	srv->o = *o;
	srv->listen_fd = -1;
	if (o->token) {
		memcpy(srv->token, o->token, PROTO_TOKEN_SIZE);
		srv->have_token = true;
	} else if (o->token_sha256) {
		memcpy(srv->token_sha256, o->token_sha256, sizeof(srv->token_sha256));
		srv->have_digest = true;
	}
	r = agent_pool_new(l, o->workers ? o->workers : 4, &srv->pool);
	if (r < 0) {
		free(srv);
		return r;
	}
	loop_add_timer(l, o->communication_timeout ? now_usec() + o->communication_timeout
						    : USEC_INFINITY,
		       on_idle_timeout, srv, &srv->idle_timer);
	*ret = srv;
	return 0;
}

void agent_server_shutdown(struct agent_server *srv, const char *reason)
{
	while (srv->sessions)
		agent_session_close(srv->sessions, PROTO_BYE_SHUTDOWN, reason);
}

void agent_server_free(struct agent_server *srv)
{
	if (!srv)
		return;
	agent_server_shutdown(srv, "agent shutting down");
	/* Finishes the requests in flight; their sessions are dead, so the
	 * results are dropped and the last session references released. */
	agent_pool_free(srv->pool);
	loop_source_free(srv->idle_timer);
	loop_source_free(srv->listen_src);
	free(srv);
}
