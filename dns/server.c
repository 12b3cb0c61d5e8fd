/* The DNS server inside the app's network namespace.
 *
 * The app's /etc/resolv.conf names this server (with the pod's search
 * domains and options), and the relay hands it UDP queries sent to any
 * address on port 53 (apps with hard-coded resolvers). Each query is
 * answered by the pod (DNS_QUERY through the agent: the pod's resolv.conf
 * and nameservers) or, for names the DNS filter keeps local (or with
 * feature.network.dns disabled), by the host's resolvers through c-ares.
 * Positive answers are cached until their smallest TTL. Every answer is
 * shown to a hook, so resolved addresses reach the outgoing filter.
 */
#define LOG_TARGET "podenv::dns"
#include <ares.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/loop.h"
#include "common/map.h"
#include "dns/dns.h"
#include "proto/proto.h"

#define CACHE_MAX 4096
#define TCP_CONN_MAX 64
#define UDP_MAX 65535

struct cache_entry {
	char *key; /* "qtype/qclass/name" */
	uint8_t *answer;
	size_t len;
	usec_t expires;
	struct cache_entry *next; /* same hash */
};

struct dns_server {
	struct dns_server_cfg cfg;
	struct loop_source *udp_src;
	struct loop_source *tcp_src;
	struct map cache; /* key hash -> chain */
	size_t ncache;
	ares_channel local;
	bool local_ok;
	struct map local_socks; /* fd -> struct loop_source */
	struct loop_source *local_timer;
	unsigned ntcp;
};

/* One query being answered; `reply` delivers the bytes. */
struct query {
	struct dns_server *s;
	uint8_t *q;
	size_t len;
	size_t udp_limit; /* 0: no limit (TCP) */
	char key[300];
	dns_answer_fn reply;
	void *userdata;
};

/* --- cache ------------------------------------------------------------------ */

static uint64_t key_hash(const char *k)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *k; k++)
		h = (h ^ (unsigned char)*k) * 1099511628211ULL;
	return h ? h : 1;
}

static struct cache_entry *cache_find(struct dns_server *s, const char *key)
{
	for (struct cache_entry *e = map_get(&s->cache, key_hash(key)); e; e = e->next)
		if (!strcmp(e->key, key))
			return e;
	return NULL;
}

static void cache_clear(struct dns_server *s)
{
	uint64_t k;
	void *v;

	for (size_t pos = 0; map_next(&s->cache, &pos, &k, &v);) {
		for (struct cache_entry *e = v, *n; e; e = n) {
			n = e->next;
			free(e->key);
			free(e->answer);
			free(e);
		}
	}
	map_done(&s->cache);
	s->ncache = 0;
}

static void cache_put(struct dns_server *s, const char *key, const uint8_t *a, size_t n,
		      uint32_t ttl)
{
	struct cache_entry *e;

	if (ttl == 0)
		return;
	if (s->ncache >= CACHE_MAX)
		cache_clear(s); /* crude but bounded; answers come back quickly */
	e = cache_find(s, key);
	if (!e) {
		e = xcalloc(1, sizeof(*e));
		e->key = xstrdup(key);
		e->next = map_get(&s->cache, key_hash(key));
		map_put(&s->cache, key_hash(key), e);
		s->ncache++;
	}
	free(e->answer);
	e->answer = xmalloc(n);
	memcpy(e->answer, a, n);
	e->len = n;
	e->expires = now_usec() + (usec_t)ttl * USEC_PER_SEC;
}

/* --- answering ---------------------------------------------------------------- */

/* Sends answer a (for q) back, with q's id, truncated for UDP if needed. */
static void deliver(struct query *q, const uint8_t *a, size_t n)
{
	_cleanup_free_ uint8_t *copy = xmalloc(n ? n : 1);

	memcpy(copy, a, n);
	if (n >= 2 && q->len >= 2)
		memcpy(copy, q->q, 2); /* the asker's id */
	if (q->udp_limit && n > q->udp_limit) {
		/* Too big for UDP: header and question only, TC set; the
		 * client asks again over TCP. */
		struct dns_msg m;
		if (dns_msg_parse(q->q, q->len, &m) == 0) {
			struct buf out;
			buf_init(&out);
			if (dns_response_error(&m, 0, &out) >= 0 && buf_len(&out) >= 4) {
				uint8_t *h = buf_data(&out);
				h[2] |= 0x02; /* TC */
				q->reply(q->userdata, h, buf_len(&out));
			}
			buf_done(&out);
			dns_msg_done(&m);
			return;
		}
	}
	q->reply(q->userdata, copy, n);
}

static void query_free(struct query *q)
{
	free(q->q);
	free(q);
}

static void answer_error(struct query *q, uint16_t rcode)
{
	struct dns_msg m;
	struct buf out;

	if (dns_msg_parse(q->q, q->len, &m) < 0)
		return;
	buf_init(&out);
	if (dns_response_error(&m, rcode, &out) >= 0)
		q->reply(q->userdata, buf_data(&out), buf_len(&out));
	buf_done(&out);
	dns_msg_done(&m);
}

static void answered(struct query *q, const uint8_t *a, size_t n)
{
	struct dns_server *s = q->s;
	struct dns_msg m;
	uint32_t ttl;

	if (dns_msg_parse(a, n, &m) == 0) {
		if (m.hdr.rcode == 0 && dns_msg_min_ttl(&m, &ttl) == 0 && m.ancount > 0)
			cache_put(s, q->key, a, n, ttl);
		if (s->cfg.resolved)
			s->cfg.resolved(s->cfg.userdata, &m);
		dns_msg_done(&m);
	}
	deliver(q, a, n);
}

static void on_remote_answer(void *userdata, const struct proto_msg *msg)
{
	struct query *q = userdata;

	if (msg->status) {
		log_debug("remote DNS: %s", strerror(msg->status));
		answer_error(q, 2 /* SERVFAIL */);
	} else {
		answered(q, msg->rep.data.data, msg->rep.data.len);
	}
	query_free(q);
}

static void on_local_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct query *q = arg;
	(void)timeouts;

	if (status != ARES_SUCCESS || alen <= 0) {
		if (status != ARES_EDESTRUCTION)
			answer_error(q, 2);
	} else {
		answered(q, abuf, (size_t)alen);
	}
	query_free(q);
}

int dns_server_query(struct dns_server *s, const uint8_t *bytes, size_t len, size_t udp_limit,
		     dns_answer_fn reply, void *userdata)
{
	struct dns_msg m;
	struct query *q;
	char name[DNS_NAME_STRLEN];

	if (dns_msg_parse(bytes, len, &m) < 0 || m.hdr.qr || m.qdcount != 1) {
		dns_msg_done(&m);
		return -EBADMSG; /* not a query we can answer: as a server would, drop it */
	}
	q = xcalloc(1, sizeof(*q));
	q->s = s;
	q->q = xmalloc(len);
	memcpy(q->q, bytes, len);
	q->len = len;
	q->udp_limit = udp_limit ? dns_msg_udp_limit(&m, udp_limit) : 0;
	q->reply = reply;
	q->userdata = userdata;
	if (dns_name_normalize(m.qd[0].name, name, sizeof(name)) < 0)
		snprintf(name, sizeof(name), "%s", m.qd[0].name);
	snprintf(q->key, sizeof(q->key), "%u/%u/%s", m.qd[0].type, m.qd[0].class, name);
	bool local = s->cfg.resolve_local && s->cfg.resolve_local(s->cfg.userdata, name);
	dns_msg_done(&m);

	struct cache_entry *e = cache_find(s, q->key);
	if (e && e->expires > now_usec()) {
		deliver(q, e->answer, e->len);
		query_free(q);
		return 0;
	}
	if (local) {
		if (!s->local_ok) {
			answer_error(q, 2);
			query_free(q);
			return 0;
		}
		ares_send(s->local, q->q, (int)q->len, on_local_answer, q);
		return 0;
	}
	struct proto_msg msg = { .type = PROTO_DNS_QUERY };
	msg.req.data.data = q->q;
	msg.req.data.len = (uint32_t)q->len;
	if (proto_client_request(s->cfg.client, &msg, on_remote_answer, q) < 0) {
		answer_error(q, 2);
		query_free(q);
	}
	return 0;
}

/* --- UDP and TCP sockets --------------------------------------------------------- */

struct udp_reply {
	struct dns_server *s;
	struct sockaddr_storage to;
	socklen_t tolen;
};

static void udp_send(void *userdata, const uint8_t *a, size_t n)
{
	struct udp_reply *u = userdata;

	if (sendto(u->s->cfg.udp_fd, a, n, MSG_NOSIGNAL, (struct sockaddr *)&u->to, u->tolen) < 0)
		log_debug("dns sendto: %m");
	free(u);
}

/* The reply function must run once; a dropped query frees its context via
 * a reply of length 0 never happening, so keep contexts owned by the query:
 * udp_send frees it. Queries dropped at parse never allocate one. */
static int on_udp(struct loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct dns_server *s = userdata;
	uint8_t buf[UDP_MAX];
	(void)src;
	(void)events;

	for (int i = 0; i < 32; i++) {
		struct udp_reply *u = xcalloc(1, sizeof(*u));
		u->s = s;
		u->tolen = sizeof(u->to);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&u->to, &u->tolen);
		if (n <= 0) {
			free(u);
			break;
		}
		if (dns_server_query(s, buf, (size_t)n, 512, udp_send, u) < 0)
			free(u); /* dropped: no reply will come */
	}
	return 0;
}

struct tcp_conn {
	struct dns_server *s;
	int fd;
	struct loop_source *src;
	struct buf in;
	unsigned pending;
	bool closing;
};

static void tcp_close(struct tcp_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	loop_source_free(c->src);
	c->src = NULL;
	close(c->fd);
	c->fd = -1;
	c->s->ntcp--;
	if (!c->pending) {
		buf_done(&c->in);
		free(c);
	}
}

static void tcp_send(void *userdata, const uint8_t *a, size_t n)
{
	struct tcp_conn *c = userdata;
	uint8_t hdr[2] = { (uint8_t)(n >> 8), (uint8_t)n };

	c->pending--;
	if (!c->closing) {
		/* Answers are small; a client that does not read them gets cut. */
		struct iovec iov[2] = { { hdr, 2 }, { (void *)a, n } };
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
		if (sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)(n + 2))
			tcp_close(c);
	} else if (!c->pending) {
		buf_done(&c->in);
		free(c);
	}
}

static int on_tcp_conn(struct loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct tcp_conn *c = userdata;
	(void)src;
	(void)events;

	void *p = buf_reserve(&c->in, 65536);
	ssize_t n = recv(fd, p, 65536, 0);
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			tcp_close(c);
		return 0;
	}
	buf_commit(&c->in, (size_t)n);
	/* Answers may come at once (cache) and a failed send closes the
	 * connection: hold a reference of our own across the loop. */
	c->pending++;
	while (!c->closing && buf_len(&c->in) >= 2) {
		const uint8_t *d = buf_data(&c->in);
		size_t len = (size_t)d[0] << 8 | d[1];
		if (buf_len(&c->in) < 2 + len)
			break;
		c->pending++;
		if (dns_server_query(c->s, d + 2, len, 0, tcp_send, c) < 0) {
			/* Not a query: a TCP DNS peer that sends garbage is done. */
			c->pending--;
			tcp_close(c);
			break;
		}
		buf_consume(&c->in, 2 + len);
	}
	if (--c->pending == 0 && c->closing) {
		buf_done(&c->in);
		free(c);
	}
	return 0;
}

static int on_tcp_accept(struct loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct dns_server *s = userdata;
	(void)src;
	(void)events;

	for (;;) {
		int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c < 0)
			return 0;
		if (s->ntcp >= TCP_CONN_MAX) {
			close(c);
			continue;
		}
		struct tcp_conn *tc = xcalloc(1, sizeof(*tc));
		tc->s = s;
		tc->fd = c;
		buf_init(&tc->in);
		if (loop_add_io(s->cfg.loop, c, EPOLLIN, on_tcp_conn, tc, &tc->src) < 0) {
			close(c);
			free(tc);
			continue;
		}
		s->ntcp++;
	}
}

/* --- c-ares on the loop (local resolution) ---------------------------------------- */

static void local_arm_timer(struct dns_server *s)
{
	struct timeval tv, *tvp = ares_timeout(s->local, NULL, &tv);

	loop_timer_set(s->local_timer,
		       tvp ? now_usec() + (usec_t)tv.tv_sec * USEC_PER_SEC + (usec_t)tv.tv_usec
			   : USEC_INFINITY);
}

static int on_local_timer(struct loop_source *src, usec_t now, void *userdata)
{
	struct dns_server *s = userdata;
	(void)src;
	(void)now;

	ares_process_fd(s->local, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	local_arm_timer(s);
	return 0;
}

static int on_local_sock(struct loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct dns_server *s = userdata;
	(void)src;

	ares_process_fd(s->local, events & (EPOLLIN | EPOLLERR | EPOLLHUP) ? fd : ARES_SOCKET_BAD,
			events & EPOLLOUT ? fd : ARES_SOCKET_BAD);
	local_arm_timer(s);
	return 0;
}

static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns_server *s = data;
	struct loop_source *src = map_get(&s->local_socks, (uint64_t)fd);
	uint32_t ev = (readable ? EPOLLIN : 0) | (writable ? EPOLLOUT : 0);

	if (!ev) {
		if (src) {
			map_remove(&s->local_socks, (uint64_t)fd);
			loop_source_free(src);
		}
		return;
	}
	if (src)
		loop_io_events_set(src, ev);
	else if (loop_add_io(s->cfg.loop, fd, ev, on_local_sock, s, &src) == 0)
		map_put(&s->local_socks, (uint64_t)fd, src);
	local_arm_timer(s);
}

int dns_server_new(const struct dns_server_cfg *cfg, struct dns_server **ret, struct err *reterr)
{
	struct dns_server *s = xcalloc(1, sizeof(*s));
	struct ares_options o = { 0 };
	int r;

	s->cfg = *cfg;
	loop_add_timer(cfg->loop, USEC_INFINITY, on_local_timer, s, &s->local_timer);
	/* The host's resolvers, as the launcher sees them (its resolv.conf). */
	if (ares_library_init(ARES_LIB_INIT_ALL) == ARES_SUCCESS) {
		o.sock_state_cb = on_sock_state;
		o.sock_state_cb_data = s;
		s->local_ok = ares_init_options(&s->local, &o, ARES_OPT_SOCK_STATE_CB) ==
			      ARES_SUCCESS;
	}
	if (!s->local_ok)
		log_warn("no local DNS resolver (c-ares could not start): names routed local "
			 "will not resolve");
	r = 0;
	if (cfg->udp_fd >= 0)
		r = loop_add_io(cfg->loop, cfg->udp_fd, EPOLLIN, on_udp, s, &s->udp_src);
	if (r >= 0 && cfg->tcp_fd >= 0)
		r = loop_add_io(cfg->loop, cfg->tcp_fd, EPOLLIN, on_tcp_accept, s, &s->tcp_src);
	if (r < 0) {
		dns_server_free(s);
		return err_set_errno(reterr, r, "DNS server");
	}
	*ret = s;
	return 0;
}

void dns_server_free(struct dns_server *s)
{
	uint64_t k;
	void *v;

	if (!s)
		return;
	loop_source_free(s->udp_src);
	loop_source_free(s->tcp_src);
	if (s->local_ok)
		ares_destroy(s->local); /* answers pending queries with ARES_EDESTRUCTION */
	for (size_t pos = 0; map_next(&s->local_socks, &pos, &k, &v);)
		loop_source_free(v);
	map_done(&s->local_socks);
	loop_source_free(s->local_timer);
	cache_clear(s);
	free(s);
}
