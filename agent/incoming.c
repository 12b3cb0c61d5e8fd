/* Incoming traffic: mirror and steal (docs/PROTOCOL.md §4.4,
 * docs/ARCHITECTURE.md "Incoming").
 *
 * Subscribed ports are redirected (agent/redirect.c) to one listener of
 * the agent's, in the pod's network namespace; each accepted connection
 * learns its port from SO_ORIGINAL_DST and is served by what that port's
 * subscriptions were when it arrived:
 *
 * - steal, no filter: the connection itself becomes the INCOMING stream
 *   (stream.c relays it exactly like an outgoing one);
 * - steal with an HTTP filter: requests are split one at a time
 *   (agent/http.c); the matching ones go to the launcher on one INCOMING
 *   stream per connection, which carries exactly their bytes and the
 *   app's responses back (their framing says where each ends); the others
 *   go to the pod's original app on one pass-through connection. A request
 *   waits until the previous response is complete, so responses reach the
 *   client in order;
 * - mirror: the connection is relayed to the original app (pass-through)
 *   and a copy of the client's bytes goes to each mirroring session on an
 *   INCOMING stream per connection — all of them, or, with a filter, the
 *   matching requests. The real traffic never waits for the launcher: a
 *   copy that falls MIRROR_MAX behind is dropped (STREAM_CLOSE ENOBUFS).
 *
 * Bytes that cannot be split (not HTTP, HTTP/2's preface, malformed
 * requests) go to the original app unchanged, and so does everything
 * after them on that connection. Pass-through connections carry
 * AGENT_REDIRECT_MARK so the redirect lets them through.
 *
 * The agent's own INCOMING streams that are not a plain socket (mirror
 * copies, stolen requests) are "virtual streams" (struct inc_vs) kept in
 * this file's map; stream.c hands their frames here.
 */
#define LOG_TARGET "podenv::agent::incoming"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "agent/http.h"
#include "agent/incoming.h"
#include "agent/redirect.h"
#include "agent/stream.h"
#include "common/log.h"

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80 /* linux/netfilter_ipv4.h */
#endif
#define IP6T_SO_ORIGINAL_DST 80 /* linux/netfilter_ipv6/ip6_tables.h */

#define AGENT_STREAM_BIT (UINT64_C(1) << 63)
/* Bytes buffered per direction of a connection before we stop reading. */
#define CONN_HIGH (1u << 20)
#define MIRROR_MAX (4u << 20)
#define READ_SIZE (64u * 1024)

struct inc_sub {
	struct inc_sub *next;
	struct agent_session *s;
	uint64_t serial;
	uint8_t mode;
	struct agent_http_filter *filter; /* NULL: every connection */
};

struct inc_port {
	struct inc_port *next;
	uint16_t port;
	int steal_lock; /* agent_redirect_steal_lock(), or -1 */
	struct inc_sub *subs;
};

struct inc_conn;

/* An INCOMING stream whose agent side is in memory. */
struct inc_vs {
	struct agent_incoming *inc;
	struct agent_session *s;
	uint64_t id;
	uint8_t mode;
	uint64_t sub_serial;  /* mirror: the subscription it copies for */
	struct inc_conn *c;   /* NULL once the connection is gone */
	struct inc_vs *cnext; /* mirror: in c->mirrors */
	struct proto_credit credit;
	struct buf pending; /* to the launcher, waiting for credit */
	bool shut_queued, shut_sent;
	bool close_queued;
	bool cur; /* mirror: the current request is copied here */
	/* steal: the response */
	struct agent_http_parser *resp;
	uint32_t owed; /* response bytes taken, credit not yet returned */
};

struct inc_conn {
	struct agent_incoming *inc;
	struct inc_conn *prev, *next;
	uint16_t port;
	bool steal; /* filtered steal, else relay (mirror) */
	struct agent_session *steal_s;
	uint64_t steal_serial;
	int cfd, ufd;
	struct loop_source *csrc, *usrc;
	struct sockaddr_storage peer, orig;
	struct buf to_c, to_u, cin;
	bool u_connecting;
	bool c_eof, u_eof;   /* read EOF */
	bool c_shut, u_shut; /* shutdown(SHUT_WR) done */
	bool finish;	     /* close once to_c is out (a response ended the connection) */
	struct agent_http_parser *req; /* NULL: no request splitting */
	bool raw;		       /* splitting over: everything to/from the original app */
	/* steal: the request in flight */
	bool busy, to_steal, req_done, resp_done, head_req, tunnel;
	struct inc_vs *sv;
	struct agent_http_parser *uresp; /* the original app's responses */
	struct inc_vs *mirrors;
};

struct agent_incoming {
	struct loop *loop;
	struct agent_incoming_opts o;
	struct agent_redirect *rd;
	int lfd[2];
	struct loop_source *lsrc[2];
	struct loop_source *accept_timer; /* out of fds: accepting pauses */
	uint16_t lport;
	struct inc_port *ports;
	struct map vstreams; /* id -> struct inc_vs */
	uint64_t next_id;
	uint64_t next_serial;
	struct inc_conn *conns;
};

static void conn_update(struct inc_conn *c);
static void conn_free(struct inc_conn *c, bool reset);
static void conn_process(struct inc_conn *c);

static uint64_t new_stream_id(struct agent_incoming *inc)
{
	return AGENT_STREAM_BIT | ++inc->next_id;
}

static void proto_addr_of(const struct sockaddr_storage *ss, struct proto_addr *a, uint16_t *port)
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
		/* An IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d. */
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			a->family = PROTO_AF_INET;
			memcpy(a->bytes, in6->sin6_addr.s6_addr + 12, 4);
		} else {
			a->family = PROTO_AF_INET6;
			memcpy(a->bytes, &in6->sin6_addr, 16);
		}
		*port = ntohs(in6->sin6_port);
	}
}

static void send_incoming(struct agent_session *s, uint64_t id, uint16_t port, uint8_t mode,
			  const struct sockaddr_storage *peer, const struct sockaddr_storage *orig)
{
	struct proto_msg m = {.type = PROTO_INCOMING, .id = id};

	m.incoming.port = port;
	m.incoming.mode = mode;
	proto_addr_of(peer, &m.incoming.remote, &m.incoming.remote_port);
	proto_addr_of(orig, &m.incoming.local, &m.incoming.local_port);
	agent_session_send(s, &m);
}

/* --- virtual streams ------------------------------------------------------------ */

static struct inc_vs *vs_new(struct inc_conn *c, struct agent_session *s, uint8_t mode)
{
	struct agent_incoming *inc = c->inc;
	struct inc_vs *vs = xcalloc(1, sizeof(*vs));

	vs->inc = inc;
	vs->s = s;
	vs->id = new_stream_id(inc);
	vs->mode = mode;
	vs->c = c;
	buf_init(&vs->pending);
	proto_credit_init(&vs->credit, s->peer_window, PROTO_WINDOW_DEFAULT);
	map_put(&inc->vstreams, vs->id, vs);
	send_incoming(s, vs->id, c->port, mode, &c->peer, &c->orig);
	return vs;
}

static void vs_free(struct inc_vs *vs)
{
	struct inc_conn *c = vs->c;

	if (c) {
		for (struct inc_vs **p = &c->mirrors; *p; p = &(*p)->cnext)
			if (*p == vs) {
				*p = vs->cnext;
				break;
			}
		if (c->sv == vs)
			c->sv = NULL;
	}
	map_remove(&vs->inc->vstreams, vs->id);
	agent_http_parser_free(vs->resp);
	buf_done(&vs->pending);
	free(vs);
}

/* Ends vs now, telling the launcher (error 0: orderly, else a reset). */
static void vs_close(struct inc_vs *vs, int error)
{
	struct proto_msg m = {.type = PROTO_STREAM_CLOSE, .id = vs->id, .error = error};

	agent_session_send(vs->s, &m);
	vs_free(vs);
}

/* Sends what credit allows; then a queued SHUTDOWN / CLOSE. Returns true
 * if vs was freed. */
static bool vs_flush(struct inc_vs *vs)
{
	while (buf_len(&vs->pending) > 0) {
		uint32_t n = proto_credit_sendable(&vs->credit, buf_len(&vs->pending));
		if (n == 0)
			return false;
		struct proto_msg m = {.type = PROTO_STREAM_DATA, .id = vs->id};
		m.data.data = buf_data(&vs->pending);
		m.data.len = n;
		agent_session_send(vs->s, &m);
		proto_credit_sent(&vs->credit, n);
		buf_consume(&vs->pending, n);
	}
	if (vs->shut_queued && !vs->shut_sent) {
		struct proto_msg m = {.type = PROTO_STREAM_SHUTDOWN, .id = vs->id};
		vs->shut_sent = true;
		agent_session_send(vs->s, &m);
	}
	if (vs->close_queued) {
		vs_close(vs, 0);
		return true;
	}
	return false;
}

/* Queues bytes for the launcher. A mirror copy that falls too far behind
 * is dropped rather than slowing down the real connection. */
static void vs_write(struct inc_vs *vs, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (vs->mode == PROTO_MIRROR && buf_len(&vs->pending) + n > MIRROR_MAX) {
		log_warn("port %u: the launcher is %u MiB behind on a mirrored connection: copy "
			 "dropped",
			 vs->c ? vs->c->port : 0, MIRROR_MAX >> 20);
		vs_close(vs, ENOBUFS);
		return;
	}
	buf_append(&vs->pending, p, n);
	vs_flush(vs);
}

/* The end of what vs carries: SHUTDOWN, then CLOSE once sent (mirror);
 * the connection no longer knows vs. */
static void vs_detach(struct inc_vs *vs, bool close)
{
	vs->shut_queued = true;
	vs->close_queued = close;
	if (vs->c) {
		struct inc_conn *c = vs->c;
		for (struct inc_vs **p = &c->mirrors; *p; p = &(*p)->cnext)
			if (*p == vs) {
				*p = vs->cnext;
				break;
			}
		if (c->sv == vs)
			c->sv = NULL;
		vs->c = NULL;
	}
	vs_flush(vs);
}

/* --- subscriptions ------------------------------------------------------------- */

static struct inc_port *port_find(struct agent_incoming *inc, uint16_t port)
{
	for (struct inc_port *p = inc->ports; p; p = p->next)
		if (p->port == port)
			return p;
	return NULL;
}

static struct inc_sub *port_steal_sub(const struct inc_port *p)
{
	for (struct inc_sub *u = p ? p->subs : NULL; u; u = u->next)
		if (u->mode == PROTO_STEAL)
			return u;
	return NULL;
}

static int rules_update(struct agent_incoming *inc, struct err *e)
{
	uint16_t ports[1024];
	size_t n = 0;

	for (struct inc_port *p = inc->ports; p && n < 1024; p = p->next)
		ports[n++] = p->port;
	return agent_redirect_set(inc->rd, ports, n, e);
}

static int on_accept(struct loop_source *src, int fd, uint32_t events, void *userdata);

static int listen_on(int family, uint16_t port, uint16_t *ret_port)
{
	struct sockaddr_storage ss = {.ss_family = (sa_family_t)family};
	socklen_t sl = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	int fd, one = 1, r;

	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 1024) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if (ret_port) {
		sl = sizeof(ss);
		getsockname(fd, (struct sockaddr *)&ss, &sl);
		*ret_port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
						    : ((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	return fd;
}

/* The listeners (one port for both families, so one rule serves both) and
 * the redirect, at the first SUBSCRIBE. */
static int setup(struct agent_incoming *inc, struct err *e)
{
	int r;

	if (inc->rd)
		return 0;
	for (int tries = 0; tries < 16; tries++) {
		uint16_t port = 0;
		r = listen_on(AF_INET, 0, &port);
		if (r < 0)
			return err_set_errno(e, r, "incoming listener");
		inc->lfd[0] = r;
		r = listen_on(AF_INET6, port, NULL);
		if (r == -EADDRINUSE) {
			closep(&inc->lfd[0]);
			continue;
		}
		inc->lfd[1] = r < 0 ? -1 : r; /* no IPv6 here: IPv4 only */
		inc->lport = port;
		break;
	}
	if (inc->lfd[0] < 0)
		return err_set(e, -EADDRINUSE, "no port free for the incoming listener");
	r = agent_redirect_new(inc->o.nft, inc->lport, inc->lfd[1] >= 0, &inc->rd, e);
	if (r < 0)
		goto fail;
	for (int i = 0; i < 2; i++)
		if (inc->lfd[i] >= 0 && loop_add_io(inc->loop, inc->lfd[i], EPOLLIN, on_accept, inc,
						    &inc->lsrc[i]) < 0) {
			r = err_set(e, -ENOMEM, "incoming listener");
			goto fail;
		}
	log_debug("incoming listener on port %u", inc->lport);
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		loop_source_free(inc->lsrc[i]);
		inc->lsrc[i] = NULL;
		closep(&inc->lfd[i]);
	}
	agent_redirect_free(inc->rd);
	inc->rd = NULL;
	return r;
}

static void reply(struct agent_session *s, const struct proto_msg *req, int err)
{
	struct proto_msg m = {.type = req->type, .flags = PROTO_F_RESPONSE, .id = req->id};

	if (err)
		proto_msg_error(&m, req, err);
	agent_session_send(s, &m);
}

static void sub_free(struct inc_sub *u)
{
	agent_http_filter_free(u->filter);
	free(u);
}

/* Removes port p from the table (no subscription left). */
static void port_drop(struct agent_incoming *inc, struct inc_port *p)
{
	for (struct inc_port **pp = &inc->ports; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	closep(&p->steal_lock);
	free(p);
}

static void port_sub_removed(struct agent_incoming *inc, struct inc_port *p)
{
	struct err e;

	if (!port_steal_sub(p))
		closep(&p->steal_lock);
	if (p->subs)
		return;
	port_drop(inc, p);
	err_clear(&e);
	if (rules_update(inc, &e) < 0)
		log_warn("removing the redirect of a port: %s", e.msg);
}

static void subscribe(struct agent_incoming *inc, struct agent_session *s,
		      const struct proto_msg *m)
{
	uint16_t port = m->req.port;
	uint8_t mode = m->req.kind;
	const char *f = m->req.filter;
	struct agent_http_filter *filter = NULL;
	struct inc_port *p;
	bool new_port = false;
	struct err e;
	int r;

	err_clear(&e);
	if (port == 0) {
		reply(s, m, EINVAL);
		return;
	}
	r = agent_http_filter_parse(f, strlen(f), &filter, &e);
	if (r < 0) {
		log_warn("session %" PRIu64 ": SUBSCRIBE port %u: %s", s->id, port, e.msg);
		reply(s, m, EINVAL);
		return;
	}
	p = port_find(inc, port);
	for (struct inc_sub *u = p ? p->subs : NULL; u; u = u->next) {
		const char *why = NULL;
		if (u->s == s)
			why = "already subscribed in this session";
		else if (mode == PROTO_STEAL || u->mode == PROTO_STEAL)
			why = "stolen by another session of this agent";
		if (why) {
			log_warn("session %" PRIu64 ": SUBSCRIBE port %u: %s", s->id, port, why);
			agent_http_filter_free(filter);
			reply(s, m, EADDRINUSE);
			return;
		}
	}
	r = setup(inc, &e);
	if (r < 0) {
		log_warn("session %" PRIu64 ": cannot redirect port %u: %s", s->id, port, e.msg);
		agent_http_filter_free(filter);
		reply(s, m, -r);
		return;
	}
	if (!p) {
		p = xcalloc(1, sizeof(*p));
		p->port = port;
		p->steal_lock = -1;
		new_port = true;
	}
	if (mode == PROTO_STEAL) {
		r = agent_redirect_steal_lock(port);
		if (r < 0) {
			if (r == -EADDRINUSE)
				log_warn("session %" PRIu64
					 ": port %u is already stolen by another "
					 "podenv agent in this pod (one steal per port without an "
					 "operator; mirror can be shared)",
					 s->id, port);
			else
				log_warn("session %" PRIu64 ": port %u: steal lock: %s", s->id,
					 port, strerror(-r));
			if (new_port)
				free(p);
			agent_http_filter_free(filter);
			reply(s, m, -r);
			return;
		}
		p->steal_lock = r;
	}
	if (new_port) {
		p->next = inc->ports;
		inc->ports = p;
		r = rules_update(inc, &e);
		if (r < 0) {
			log_warn("session %" PRIu64 ": cannot redirect port %u: %s", s->id, port,
				 e.msg);
			port_drop(inc, p);
			agent_http_filter_free(filter);
			reply(s, m, -r);
			return;
		}
		if (inc->o.flush) {
			r = agent_redirect_flush(port);
			if (r > 0)
				log_info("port %u: reset %d established connection%s so they come "
					 "through the redirect",
					 port, r, r == 1 ? "" : "s");
			else if (r < 0)
				log_warn("port %u: flushing connections: %s", port, strerror(-r));
		}
	}
	struct inc_sub *u = xcalloc(1, sizeof(*u));
	u->s = s;
	u->mode = mode;
	u->filter = filter;
	u->serial = ++inc->next_serial;
	u->next = p->subs;
	p->subs = u;
	log_info("session %" PRIu64 ": %s port %u%s", s->id,
		 mode == PROTO_STEAL ? "stealing" : "mirroring", port,
		 filter ? " (HTTP filter)" : "");
	reply(s, m, 0);
}

static void unsubscribe(struct agent_incoming *inc, struct agent_session *s,
			const struct proto_msg *m)
{
	struct inc_port *p = port_find(inc, m->req.port);

	for (struct inc_sub **pu = p ? &p->subs : NULL; pu && *pu; pu = &(*pu)->next) {
		struct inc_sub *u = *pu;
		if (u->s != s)
			continue;
		*pu = u->next;
		sub_free(u);
		port_sub_removed(inc, p);
		log_info("session %" PRIu64 ": port %u unsubscribed", s->id, m->req.port);
		reply(s, m, 0);
		return;
	}
	reply(s, m, ENOENT);
}

void agent_incoming_request(struct agent_incoming *inc, struct agent_session *s,
			    const struct proto_msg *m)
{
	if (m->type == PROTO_SUBSCRIBE)
		subscribe(inc, s, m);
	else
		unsubscribe(inc, s, m);
}

/* --- connections: I/O ----------------------------------------------------------- */

static bool sub_alive(struct agent_incoming *inc, uint16_t port, struct agent_session *s,
		      uint64_t serial)
{
	struct inc_port *p = port_find(inc, port);

	for (struct inc_sub *u = p ? p->subs : NULL; u; u = u->next)
		if (u->s == s && u->serial == serial)
			return true;
	return false;
}

/* Writes as much of b as fd takes; -errno on a failed socket. */
static int write_out(int fd, struct buf *b, size_t *taken)
{
	*taken = 0;
	while (buf_len(b) > 0) {
		ssize_t n = send(fd, buf_data(b), buf_len(b), MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			return -errno;
		}
		buf_consume(b, (size_t)n);
		*taken += (size_t)n;
	}
	return 0;
}

/* Credit for response bytes the client has taken. */
static void sv_return_credit(struct inc_conn *c)
{
	struct inc_vs *vs = c->sv;

	if (!vs || vs->owed == 0 || buf_len(&c->to_c) >= CONN_HIGH)
		return;
	uint32_t inc = proto_credit_consumed(&vs->credit, vs->owed);
	vs->owed = 0;
	if (inc) {
		struct proto_msg w = {.type = PROTO_STREAM_WINDOW, .id = vs->id, .window = inc};
		agent_session_send(vs->s, &w);
	}
}

static int up_connect(struct inc_conn *c)
{
	socklen_t sl = c->orig.ss_family == AF_INET ? sizeof(struct sockaddr_in)
						    : sizeof(struct sockaddr_in6);
	uint32_t mark = agent_redirect_mark(c->inc->rd);
	int one = 1, fd, r;

	fd = socket(c->orig.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&c->orig, sl) < 0 && errno != EINPROGRESS) {
		r = -errno;
		close(fd);
		return r;
	}
	c->ufd = fd;
	c->u_connecting = true;
	return 0;
}

static int on_conn_io(struct loop_source *src, int fd, uint32_t events, void *userdata);

static int up_start(struct inc_conn *c)
{
	int r;

	if (c->ufd >= 0)
		return 0;
	r = up_connect(c);
	if (r < 0)
		return r;
	r = loop_add_io(c->inc->loop, c->ufd, EPOLLOUT, on_conn_io, c, &c->usrc);
	if (r < 0) {
		closep(&c->ufd);
		return r;
	}
	return 0;
}

/* Mirror copies of bytes the client sent: every unfiltered copy, and the
 * filtered ones the current request matched. */
static void mirror_copy(struct inc_conn *c, const void *p, size_t n, bool all)
{
	for (struct inc_vs *vs = c->mirrors, *next; vs; vs = next) {
		next = vs->cnext;
		if (all || vs->cur)
			vs_write(vs, p, n);
	}
}

/* The mirror stream of subscription u on this connection, made at its
 * first matching request. */
static struct inc_vs *mirror_for(struct inc_conn *c, const struct inc_sub *u)
{
	for (struct inc_vs *vs = c->mirrors; vs; vs = vs->cnext)
		if (vs->sub_serial == u->serial)
			return vs;
	struct inc_vs *vs = vs_new(c, u->s, PROTO_MIRROR);
	vs->sub_serial = u->serial;
	vs->cnext = c->mirrors;
	c->mirrors = vs;
	return vs;
}

/* Relay (mirror): client bytes go to the original app whole; the request
 * parser only decides which filtered copies they go to. */
static void relay_client_bytes(struct inc_conn *c, const uint8_t *d, size_t len)
{
	struct inc_port *p = port_find(c->inc, c->port);

	buf_append(&c->to_u, d, len);
	/* Unfiltered copies (created at accept) take everything. */
	for (struct inc_vs *vs = c->mirrors, *next; vs; vs = next) {
		next = vs->cnext;
		if (vs->sub_serial == 0)
			vs_write(vs, d, len);
	}
	while (c->req && !c->raw && len > 0) {
		size_t used = 0;
		int ev = agent_http_parser_feed(c->req, d, len, &used);
		switch (ev) {
		case AGENT_HTTP_HEAD: {
			const struct agent_http_head *h = agent_http_parser_head(c->req);
			for (struct inc_vs *vs = c->mirrors; vs; vs = vs->cnext)
				vs->cur = false;
			for (struct inc_sub *u = p ? p->subs : NULL; u; u = u->next)
				if (u->mode == PROTO_MIRROR && u->filter &&
				    agent_http_filter_match(u->filter, h))
					mirror_for(c, u)->cur = true;
			mirror_copy(c, h->raw, h->raw_len, false);
			break;
		}
		case AGENT_HTTP_BODY:
		case AGENT_HTTP_END:
			mirror_copy(c, d, used, false);
			break;
		case AGENT_HTTP_NEED_MORE:
			break;
		case AGENT_HTTP_TUNNEL:
			/* The rest belongs to the request that was just copied. */
			mirror_copy(c, d, len, false);
			c->raw = true;
			return;
		default:
			/* Not splittable: no more filtered copies. */
			c->raw = true;
			return;
		}
		d += used;
		len -= used;
		if (ev == AGENT_HTTP_NEED_MORE)
			break;
	}
}

/* --- steal with a filter -------------------------------------------------------- */

/* The request in flight is complete both ways: the next may start. */
static void steal_request_done(struct inc_conn *c)
{
	struct inc_vs *vs = c->sv;

	if (!c->busy || !c->req_done || !c->resp_done)
		return;
	c->busy = false;
	/* The stream stays open for the connection's next matching request,
	 * as the app's connection stays open for a kept-alive client. */
	if (vs && c->to_steal)
		sv_return_credit(c);
}

/* A request head: where it goes. */
static int steal_head(struct inc_conn *c, const struct agent_http_head *h)
{
	bool match = false;

	if (sub_alive(c->inc, c->port, c->steal_s, c->steal_serial)) {
		struct inc_port *p = port_find(c->inc, c->port);
		struct inc_sub *u = port_steal_sub(p);
		match = u && u->filter && agent_http_filter_match(u->filter, h);
	}
	c->busy = true;
	c->to_steal = match;
	c->req_done = c->resp_done = false;
	c->head_req = h->method_len == 4 && memcmp(h->method, "HEAD", 4) == 0;
	if (match) {
		/* One stream per client connection, opened at its first
		 * matching request (again if the app closed the last one). */
		if (!c->sv) {
			c->sv = vs_new(c, c->steal_s, PROTO_STEAL);
			c->sv->resp = agent_http_parser_new_response();
		}
		agent_http_parser_expect(c->sv->resp, c->head_req);
		vs_write(c->sv, h->raw, h->raw_len);
		return 0;
	}
	int r = up_start(c);
	if (r < 0)
		return r;
	agent_http_parser_expect(c->uresp, c->head_req);
	buf_append(&c->to_u, h->raw, h->raw_len);
	return 0;
}

static void steal_forward(struct inc_conn *c, const void *d, size_t n)
{
	if (c->to_steal) {
		if (c->sv)
			vs_write(c->sv, d, n);
	} else {
		buf_append(&c->to_u, d, n);
	}
}

/* Client bytes in c->cin, as far as the request in flight allows.
 * Returns -errno to reset the connection. */
static int steal_process(struct inc_conn *c)
{
	/* Also with no input left: a request without body ENDs on the step
	 * after its HEAD, with nothing consumed. */
	for (;;) {
		const uint8_t *d = buf_data(&c->cin);
		size_t len = buf_len(&c->cin), used = 0;

		if (c->tunnel) {
			steal_forward(c, d, len);
			buf_consume(&c->cin, len);
			return 0;
		}
		if (c->raw) {
			if (len == 0 || (c->busy && c->to_steal))
				return 0; /* after the stolen response */
			int r = up_start(c);
			if (r < 0)
				return r;
			buf_append(&c->to_u, d, len);
			buf_consume(&c->cin, len);
			return 0;
		}
		if (c->busy && c->req_done)
			return 0; /* wait for the response */
		if (c->sv && buf_len(&c->sv->pending) >= CONN_HIGH)
			return 0;
		int ev = agent_http_parser_feed(c->req, d, len, &used);
		switch (ev) {
		case AGENT_HTTP_HEAD: {
			int r = steal_head(c, agent_http_parser_head(c->req));
			if (r < 0)
				return r;
			break;
		}
		case AGENT_HTTP_BODY:
			steal_forward(c, d, used);
			break;
		case AGENT_HTTP_END:
			steal_forward(c, d, used);
			c->req_done = true;
			steal_request_done(c);
			break;
		case AGENT_HTTP_NEED_MORE:
			break;
		case AGENT_HTTP_TUNNEL:
			c->tunnel = true;
			c->req_done = true;
			break;
		default: {
			/* Not splittable: the held bytes and the rest go to the
			 * original app, once a stolen request in flight is done. */
			size_t hl;
			const void *held = agent_http_parser_held(c->req, &hl);
			log_debug("port %u: passing a connection through: %s", c->port,
				  agent_http_parser_why(c->req));
			if (c->busy && c->to_steal && !c->req_done)
				return -EPROTO; /* malformed body of a stolen request */
			/* A request of the original app's that turned out
			 * malformed in its body: the app sees the rest as is. */
			if (c->busy && !c->req_done)
				c->busy = false;
			struct buf rest;
			buf_init(&rest);
			buf_append(&rest, held, hl);
			buf_append(&rest, d + used, len - used);
			buf_reset(&c->cin);
			buf_append(&c->cin, buf_data(&rest), buf_len(&rest));
			buf_done(&rest);
			c->raw = true;
			continue;
		}
		}
		buf_consume(&c->cin, used);
		if (ev == AGENT_HTTP_NEED_MORE)
			return 0;
	}
}

/* Response bytes (from the original app or a stolen request's stream)
 * run through parser rp to find where the response in flight ends. */
static void steal_response_bytes(struct inc_conn *c, struct agent_http_parser *rp, const uint8_t *d,
				 size_t len)
{
	/* Also with no input left: a response without body ENDs on the step
	 * after its HEAD. */
	while (c->busy && !c->resp_done && !c->tunnel) {
		size_t used = 0;
		int ev = agent_http_parser_feed(rp, d, len, &used);
		const struct agent_http_head *h;

		switch (ev) {
		case AGENT_HTTP_END:
			h = agent_http_parser_head(rp);
			if (h && h->status >= 200) {
				c->resp_done = true;
				if (h->conn_close)
					c->finish = true;
			}
			break;
		case AGENT_HTTP_TUNNEL:
			c->tunnel = true; /* 101 Switching Protocols */
			break;
		case AGENT_HTTP_HEAD:
		case AGENT_HTTP_BODY:
		case AGENT_HTTP_NEED_MORE:
			break;
		default:
			/* A response we cannot frame: pass the rest through and
			 * end the connection with its end. */
			c->tunnel = true;
			c->finish = true;
			break;
		}
		d += used;
		len -= used;
		if (ev == AGENT_HTTP_NEED_MORE)
			break;
	}
}

/* --- connections: events --------------------------------------------------------- */

static void conn_update(struct inc_conn *c)
{
	uint32_t ce = 0, ue = 0;
	bool read_client;

	if (c->steal)
		read_client = buf_len(&c->cin) < CONN_HIGH && buf_len(&c->to_u) < CONN_HIGH &&
			      !(c->sv && buf_len(&c->sv->pending) >= CONN_HIGH);
	else
		read_client = buf_len(&c->to_u) < CONN_HIGH;
	if (!c->c_eof && read_client && !c->finish)
		ce |= EPOLLIN;
	if (buf_len(&c->to_c) > 0)
		ce |= EPOLLOUT;
	if (c->csrc)
		loop_io_events_set(c->csrc, ce);
	if (c->usrc) {
		if (c->u_connecting) {
			ue = EPOLLOUT;
		} else {
			if (!c->u_eof && buf_len(&c->to_c) < CONN_HIGH)
				ue |= EPOLLIN;
			if (buf_len(&c->to_u) > 0)
				ue |= EPOLLOUT;
		}
		loop_io_events_set(c->usrc, ue);
	}
}

/* Closes what is done; frees the connection when nothing is left.
 * Returns true if c was freed. */
static bool conn_check_end(struct inc_conn *c)
{
	/* A socket done both ways (EOF read, our side shut, nothing left to
	 * write) reports EPOLLHUP on every wait, requested or not: stop
	 * watching it, or the loop spins while the other side drains. */
	if (c->ufd >= 0 && c->u_eof && c->u_shut && buf_len(&c->to_u) == 0) {
		loop_source_free(c->usrc);
		c->usrc = NULL;
		closep(&c->ufd);
	}
	if (c->csrc && c->c_eof && c->c_shut && buf_len(&c->to_c) == 0) {
		loop_source_free(c->csrc);
		c->csrc = NULL;
	}
	bool up_ready = c->ufd >= 0 && !c->u_connecting;

	/* Client → app: the client's EOF follows its last byte. */
	if (c->c_eof && up_ready && !c->u_shut && buf_len(&c->to_u) == 0 && buf_len(&c->cin) == 0 &&
	    !(c->steal && c->busy && c->to_steal)) {
		shutdown(c->ufd, SHUT_WR);
		c->u_shut = true;
	}
	if (c->steal) {
		/* A response ended the connection, or the client left and
		 * nothing is in flight any more. */
		bool done = c->finish || (c->c_eof && !c->busy && buf_len(&c->cin) == 0 &&
					  (c->ufd < 0 || c->u_eof));
		if (done && buf_len(&c->to_c) == 0) {
			conn_free(c, false);
			return true;
		}
		return false;
	}
	/* App → client. */
	if (c->u_eof && !c->c_shut && buf_len(&c->to_c) == 0) {
		shutdown(c->cfd, SHUT_WR);
		c->c_shut = true;
	}
	if (c->c_shut && c->u_shut) {
		conn_free(c, false);
		return true;
	}
	return false;
}

/* After any event: route what the client sent, write what is queued
 * both ways at once (not one epoll round later), end what is done. */
static void conn_process(struct inc_conn *c)
{
	size_t taken;

	if (c->steal && steal_process(c) < 0) {
		conn_free(c, true);
		return;
	}
	if (c->ufd >= 0 && !c->u_connecting && write_out(c->ufd, &c->to_u, &taken) < 0) {
		conn_free(c, true);
		return;
	}
	if (write_out(c->cfd, &c->to_c, &taken) < 0) {
		conn_free(c, true);
		return;
	}
	if (taken)
		sv_return_credit(c);
	if (conn_check_end(c))
		return;
	conn_update(c);
}

static int on_conn_io(struct loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct inc_conn *c = userdata;
	uint8_t tmp[READ_SIZE];
	size_t taken;
	(void)src;

	if (fd == c->ufd && c->u_connecting) {
		int err = 0;
		socklen_t el = sizeof(err);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err) {
			log_debug("port %u: original app: %s", c->port, strerror(err));
			conn_free(c, true);
			return 0;
		}
		c->u_connecting = false;
		events |= EPOLLOUT;
	}
	int out = fd == c->cfd ? c->cfd : c->ufd;
	struct buf *ob = fd == c->cfd ? &c->to_c : &c->to_u;
	if ((events & EPOLLOUT) && write_out(out, ob, &taken) < 0) {
		conn_free(c, true);
		return 0;
	}
	if (fd == c->cfd && taken)
		sv_return_credit(c);
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		bool client = fd == c->cfd;
		ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			conn_free(c, true);
			return 0;
		}
		if (n == 0) {
			if (client) {
				c->c_eof = true;
				for (struct inc_vs *vs = c->mirrors; vs; vs = vs->cnext) {
					vs->shut_queued = true;
					vs_flush(vs);
				}
				if (c->steal && c->sv && c->tunnel) {
					c->sv->shut_queued = true;
					vs_flush(c->sv);
				}
			} else {
				c->u_eof = true;
				if (c->steal && c->busy && !c->to_steal && !c->resp_done) {
					/* A body delimited by the close. */
					c->resp_done = true;
					c->finish = true;
					steal_request_done(c);
				} else if (c->steal && c->busy && c->to_steal) {
					/* The app closed its idle connection while a
					 * request was stolen: a later one reconnects. */
					loop_source_free(c->usrc);
					c->usrc = NULL;
					closep(&c->ufd);
					c->u_eof = c->u_shut = false;
					agent_http_parser_free(c->uresp);
					c->uresp = agent_http_parser_new_response();
					conn_process(c);
					return 0;
				} else if (c->steal) {
					c->finish = true;
				}
			}
		} else if (n > 0) {
			if (client) {
				if (c->steal)
					buf_append(&c->cin, tmp, (size_t)n);
				else
					relay_client_bytes(c, tmp, (size_t)n);
			} else {
				buf_append(&c->to_c, tmp, (size_t)n);
				if (c->steal && c->busy && !c->to_steal && !c->raw) {
					steal_response_bytes(c, c->uresp, tmp, (size_t)n);
					steal_request_done(c);
				}
			}
		}
	}
	conn_process(c);
	return 0;
}

static void conn_free(struct inc_conn *c, bool reset)
{
	struct agent_incoming *inc = c->inc;

	if (reset) {
		struct linger lg = {1, 0};
		setsockopt(c->cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	while (c->mirrors)
		vs_detach(c->mirrors, true);
	if (c->sv) {
		struct inc_vs *vs = c->sv;
		c->sv = NULL;
		vs->c = NULL;
		vs_close(vs, reset ? ECONNRESET : 0);
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		inc->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	loop_source_free(c->csrc);
	loop_source_free(c->usrc);
	close(c->cfd);
	if (c->ufd >= 0)
		close(c->ufd);
	buf_done(&c->to_c);
	buf_done(&c->to_u);
	buf_done(&c->cin);
	agent_http_parser_free(c->req);
	agent_http_parser_free(c->uresp);
	free(c);
}

/* A redirected connection: serve it per its port's subscriptions. */
static void conn_start(struct agent_incoming *inc, int cfd, const struct sockaddr_storage *peer,
		       const struct sockaddr_storage *orig, uint16_t port)
{
	struct inc_port *p = port_find(inc, port);
	struct inc_sub *st = port_steal_sub(p);
	struct inc_conn *c;
	int one = 1, r;

	setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (st && !st->filter) {
		struct proto_msg m = {.type = PROTO_INCOMING, .id = new_stream_id(inc)};
		m.incoming.port = port;
		m.incoming.mode = PROTO_STEAL;
		proto_addr_of(peer, &m.incoming.remote, &m.incoming.remote_port);
		proto_addr_of(orig, &m.incoming.local, &m.incoming.local_port);
		agent_stream_adopt(st->s, cfd, &m);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->inc = inc;
	c->port = port;
	c->cfd = cfd;
	c->ufd = -1;
	c->peer = *peer;
	c->orig = *orig;
	buf_init(&c->to_c);
	buf_init(&c->to_u);
	buf_init(&c->cin);
	c->next = inc->conns;
	if (inc->conns)
		inc->conns->prev = c;
	inc->conns = c;
	if (loop_add_io(inc->loop, cfd, 0, on_conn_io, c, &c->csrc) < 0) {
		conn_free(c, true);
		return;
	}
	if (st) {
		c->steal = true;
		c->steal_s = st->s;
		c->steal_serial = st->serial;
		c->req = agent_http_parser_new();
		c->uresp = agent_http_parser_new_response();
	} else {
		bool filtered = false;
		for (struct inc_sub *u = p ? p->subs : NULL; u; u = u->next) {
			if (u->filter) {
				filtered = true;
				continue;
			}
			struct inc_vs *vs = vs_new(c, u->s, PROTO_MIRROR);
			vs->cnext = c->mirrors;
			c->mirrors = vs;
		}
		if (filtered)
			c->req = agent_http_parser_new();
		r = up_start(c);
		if (r < 0) {
			log_debug("port %u: original app: %s", port, strerror(-r));
			conn_free(c, true);
			return;
		}
	}
	conn_update(c);
}

static int original_dst(int fd, int family, struct sockaddr_storage *ss)
{
	socklen_t sl = sizeof(*ss);

	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET)
		return getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, ss, &sl) < 0 ? -errno : 0;
	return getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, ss, &sl) < 0 ? -errno : 0;
}

static int on_accept_resume(struct loop_source *src, usec_t now, void *userdata)
{
	struct agent_incoming *inc = userdata;
	(void)src;
	(void)now;

	for (int i = 0; i < 2; i++)
		if (inc->lsrc[i])
			loop_io_events_set(inc->lsrc[i], EPOLLIN);
	return 0;
}

static int on_accept(struct loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct agent_incoming *inc = userdata;
	int family = inc->lsrc[1] == src ? AF_INET6 : AF_INET;
	(void)events;

	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage peer, orig;
		socklen_t pl = sizeof(peer);
		int c = accept4(fd, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
				return 0;
			/* Out of fds or memory: the listener would stay readable
			 * and spin the loop; pause it (the kernel holds the
			 * backlog) and say so once per pause. */
			log_warn("incoming accept: %m; pausing new connections for 100 ms");
			for (int k = 0; k < 2; k++)
				if (inc->lsrc[k])
					loop_io_events_set(inc->lsrc[k], 0);
			loop_timer_set(inc->accept_timer, now_usec() + 100 * USEC_PER_MSEC);
			return 0;
		}
		uint16_t port = 0;
		struct proto_addr a;
		if (original_dst(c, family, &orig) == 0)
			proto_addr_of(&orig, &a, &port);
		/* Not redirected (someone connected to the listener itself):
		 * relaying it would connect to ourselves. */
		if (port == 0 || port == inc->lport) {
			close(c);
			continue;
		}
		conn_start(inc, c, &peer, &orig, port);
	}
	return 0;
}

/* --- frames for virtual streams ------------------------------------------------- */

void agent_incoming_input(struct agent_incoming *inc, struct agent_session *s,
			  const struct proto_msg *m)
{
	struct inc_vs *vs = inc ? map_get(&inc->vstreams, m->id) : NULL;
	struct inc_conn *c;

	if (!vs || vs->s != s)
		return; /* closed already */
	c = vs->c;
	switch (m->type) {
	case PROTO_STREAM_DATA:
		if (proto_credit_on_data(&vs->credit, m->data.len) < 0) {
			agent_session_close(s, PROTO_BYE_PROTOCOL,
					    "stream data beyond the granted window");
			return;
		}
		if (vs->mode == PROTO_MIRROR || !c) {
			/* Mirror: the app's answers are not wanted; credit back. */
			uint32_t w = proto_credit_consumed(&vs->credit, m->data.len);
			if (w) {
				struct proto_msg wm = {
					.type = PROTO_STREAM_WINDOW, .id = vs->id, .window = w};
				agent_session_send(s, &wm);
			}
			return;
		}
		if (!(c->busy && c->to_steal) && !c->tunnel) {
			/* Nothing asked: bytes between responses would land
			 * among the original app's answers. Dropped. */
			uint32_t w = proto_credit_consumed(&vs->credit, m->data.len);
			if (w) {
				struct proto_msg wm = {
					.type = PROTO_STREAM_WINDOW, .id = vs->id, .window = w};
				agent_session_send(s, &wm);
			}
			return;
		}
		buf_append(&c->to_c, m->data.data, m->data.len);
		vs->owed += m->data.len;
		if (!c->resp_done && !c->tunnel)
			steal_response_bytes(c, vs->resp, m->data.data, m->data.len);
		steal_request_done(c);
		conn_process(c); /* writes to the client, returns the credit */
		return;
	case PROTO_STREAM_WINDOW:
		if (proto_credit_on_window(&vs->credit, m->window) < 0) {
			agent_session_close(s, PROTO_BYE_PROTOCOL, "stream window overflow");
			return;
		}
		if (vs_flush(vs))
			return;
		if (c)
			conn_process(c);
		return;
	case PROTO_STREAM_SHUTDOWN:
	case PROTO_STREAM_CLOSE:
		if (vs->mode != PROTO_STEAL || !c) {
			if (m->type == PROTO_STREAM_CLOSE)
				vs_free(vs);
			return;
		}
		if (!(c->busy && c->to_steal) && !c->tunnel) {
			/* The app closed its connection between requests: the
			 * next matching request gets a new stream. */
			c->sv = NULL;
			vs->c = NULL;
			if (m->type == PROTO_STREAM_CLOSE)
				vs_free(vs);
			else
				vs_close(vs, 0);
			conn_process(c);
			return;
		}
		if (m->type == PROTO_STREAM_CLOSE) {
			c->sv = NULL;
			vs->c = NULL;
			vs_free(vs);
			if (m->error) {
				conn_free(c, true);
				return;
			}
		}
		/* The app closed during a response: one delimited by its end
		 * is complete, anything else cut short; either way the
		 * client's connection ends after it. */
		c->resp_done = true;
		c->finish = true;
		steal_request_done(c);
		conn_process(c);
		return;
	}
}

/* --- lifetime ---------------------------------------------------------------------- */

void agent_incoming_session_closed(struct agent_incoming *inc, struct agent_session *s)
{
	uint64_t key;
	void *v;

	if (!inc)
		return;
	/* Connections with a request of this session's in flight are reset;
	 * the others go on without it (the streams are freed below). */
	for (struct inc_conn *c = inc->conns, *next; c; c = next) {
		next = c->next;
		if (c->sv && c->sv->s == s && ((c->busy && c->to_steal) || c->tunnel))
			conn_free(c, true);
	}
	for (size_t pos = 0; map_next(&inc->vstreams, &pos, &key, &v);) {
		struct inc_vs *vs = v;
		if (vs->s == s) {
			vs_free(vs);
			pos = 0; /* the map changed under us */
		}
	}
	for (struct inc_port *p = inc->ports, *pnext; p; p = pnext) {
		pnext = p->next;
		bool removed = false;
		for (struct inc_sub **pu = &p->subs; *pu;) {
			struct inc_sub *u = *pu;
			if (u->s == s) {
				*pu = u->next;
				sub_free(u);
				removed = true;
			} else {
				pu = &u->next;
			}
		}
		if (removed)
			port_sub_removed(inc, p);
	}
}

struct agent_incoming *agent_incoming_new(struct loop *l, const struct agent_incoming_opts *o)
{
	struct agent_incoming *inc = xcalloc(1, sizeof(*inc));

	inc->loop = l;
	inc->o = *o;
	inc->lfd[0] = inc->lfd[1] = -1;
	map_init(&inc->vstreams);
	loop_add_timer(l, USEC_INFINITY, on_accept_resume, inc, &inc->accept_timer);
	return inc;
}

void agent_incoming_free(struct agent_incoming *inc)
{
	uint64_t key;
	void *v;

	if (!inc)
		return;
	while (inc->conns)
		conn_free(inc->conns, true);
	for (size_t pos = 0; map_next(&inc->vstreams, &pos, &key, &v);) {
		vs_free(v);
		pos = 0;
	}
	map_done(&inc->vstreams);
	while (inc->ports) {
		struct inc_port *p = inc->ports;
		while (p->subs) {
			struct inc_sub *u = p->subs;
			p->subs = u->next;
			sub_free(u);
		}
		port_drop(inc, p);
	}
	for (int i = 0; i < 2; i++) {
		loop_source_free(inc->lsrc[i]);
		closep(&inc->lfd[i]);
	}
	loop_source_free(inc->accept_timer);
	agent_redirect_free(inc->rd);
	free(inc);
}
