/* feature.network.incoming (incoming.h).
 *
 * The app's listen() calls arrive from listen.c before they take effect.
 * For each listening socket the configuration decides (mirrord's rules,
 * research/mirrord.md §4.1-4.2): its local port L becomes the pod's port
 * R through port_mapping; ignore_ports / ports (on L) and ignore_localhost
 * (a socket bound to loopback) keep it local; with an http_filter the
 * filter applies on the ports of http_filter.ports (on R; [80, 8080] when
 * not given, as the reference says), and other ports are subscribed
 * unfiltered only when incoming.ports names them. A subscription is per
 * pod port and counts its local listeners: the first one sends SUBSCRIBE
 * and its listen() waits for the answer, so a client of the pod can never
 * reach the port before the app listens; the last one to go sends
 * UNSUBSCRIBE.
 *
 * Each INCOMING stream gets a socket in the app's namespace (nsock.c),
 * connected to the listener's address (loopback for a wildcard bind), and
 * vnet's delivery relays it. listen_ports listeners live on this host's
 * 127.0.0.1 while the app listens on their port.
 */
#define LOG_TARGET "podenv::incoming"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/map.h"
#include "launcher/incoming.h"
#include "launcher/listen.h"
#include "launcher/net.h"
#include "launcher/nsock.h"
#include "launcher/trace.h"
#include "vnet/vnet.h"

#define FILTER_DEPTH_MAX 8
#define FILTER_GROUP_MAX 64

enum sub_state { SUB_PENDING, SUB_ACTIVE };

struct lsn;

/* One subscription: a pod port. */
struct sub {
	struct incoming *in;
	uint16_t port;
	uint8_t mode; /* PROTO_MIRROR / PROTO_STEAL */
	char *filter;
	enum sub_state state;
	unsigned users;	   /* listeners delivering to it */
	uint64_t *waiting; /* listen() tokens waiting for the answer */
	size_t nwaiting;
	bool unsub_on_answer; /* every listener went while SUBSCRIBE was out */
	uint64_t req;	      /* the SUBSCRIBE in flight (SUB_PENDING) */
};

/* One listening socket of the app. */
struct lsn {
	struct listen_sock s;
	uint16_t remote; /* its pod port */
	struct sub *sub; /* NULL: not subscribed */
	int host_fd;	 /* listen_ports: our listener on this host, or -1 */
	struct loop_source *host_src;
	uint16_t host_port;
	struct incoming *in;
};

struct incoming {
	struct session *s;
	const struct cfg_incoming *cfg;
	struct nsock *ns;
	struct listen_watch *watch;
	struct vnet_deliver *deliver;
	struct map lsns; /* cookie -> struct lsn */
	struct map subs; /* pod port + 1 -> struct sub */
	void (*fatal)(void *userdata, const char *msg);
	void *userdata;
	bool warned_caps;
};

static const uint16_t default_filter_ports[] = {80, 8080};

bool incoming_wanted(const struct cfg *cfg)
{
	const struct cfg_incoming *c = &cfg->feature.network.incoming;

	return c->mode != CFG_INCOMING_OFF || c->listen_ports.n > 0;
}

/* --- the filter string (docs/PROTOCOL.md §4.4) --------------------------------------- */

static int format_node(struct buf *b, const struct cfg_http_filter *f, unsigned depth)
{
	const char *kw;

	switch (f->kind) {
	case CFG_HTTP_HEADER:
		kw = "header";
		break;
	case CFG_HTTP_PATH:
		kw = "path";
		break;
	case CFG_HTTP_METHOD:
		kw = "method";
		break;
	case CFG_HTTP_ALL_OF:
	case CFG_HTTP_ANY_OF:
		if (depth >= FILTER_DEPTH_MAX || f->nsub == 0 || f->nsub > FILTER_GROUP_MAX)
			return -EINVAL;
		buf_printf(b, "%s %zu\n", f->kind == CFG_HTTP_ALL_OF ? "all_of" : "any_of",
			   f->nsub);
		for (size_t i = 0; i < f->nsub; i++) {
			int r = format_node(b, &f->sub[i], depth + 1);
			if (r < 0)
				return r;
		}
		return 0;
	case CFG_HTTP_HEADER_JQ:
	case CFG_HTTP_BODY:
		return -EOPNOTSUPP;
	default:
		return -EINVAL;
	}
	if (!f->value || !*f->value || strchr(f->value, '\n'))
		return -EINVAL;
	buf_printf(b, "%s %s\n", kw, f->value);
	return 0;
}

int incoming_filter_format(const struct cfg_http_filter *f, char **ret)
{
	struct buf b;
	int r;

	if (f->kind == CFG_HTTP_NONE) {
		*ret = xstrdup("");
		return 0;
	}
	buf_init(&b);
	r = format_node(&b, f, 0);
	if (r < 0) {
		buf_done(&b);
		return r;
	}
	*ret = buf_steal(&b, NULL);
	return 0;
}

/* --- decisions -------------------------------------------------------------------- */

static bool ports_has(const struct cfg_ports *p, uint16_t port)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->v[i] == port)
			return true;
	return false;
}

static bool is_loopback(const struct listen_sock *s)
{
	static const uint8_t lo6[16] = {[15] = 1};
	static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff};

	if (s->family == AF_INET)
		return s->addr[0] == 127;
	return !memcmp(s->addr, lo6, 16) || (!memcmp(s->addr, mapped, 12) && s->addr[12] == 127);
}

void incoming_decide(const struct cfg_incoming *c, const struct listen_sock *s, uint16_t *remote,
		     char **filter, const char **why)
{
	uint16_t l = s->port;

	*filter = NULL;
	*remote = l;
	*why = NULL;
	for (size_t i = 0; i < c->port_mapping.n; i++)
		if (c->port_mapping.v[i].local == l)
			*remote = c->port_mapping.v[i].remote;
	if (c->mode == CFG_INCOMING_OFF) {
		*why = "feature.network.incoming is off";
		return;
	}
	if (c->ignore_localhost && is_loopback(s)) {
		*why = "bound to loopback, and feature.network.incoming.ignore_localhost is true";
		return;
	}
	if (ports_has(&c->ignore_ports, l)) {
		*why = "in feature.network.incoming.ignore_ports";
		return;
	}
	bool listed = c->ports.set && ports_has(&c->ports, l);
	if (c->http_filter.kind != CFG_HTTP_NONE) {
		const struct cfg_ports *fp = &c->http_filter.ports;
		bool filtered = false;
		if (fp->set)
			filtered = ports_has(fp, *remote);
		else
			for (size_t i = 0; i < ARRAY_SIZE(default_filter_ports); i++)
				filtered |= default_filter_ports[i] == *remote;
		if (filtered) {
			int r = incoming_filter_format(&c->http_filter, filter);
			if (r < 0) {
				*filter = NULL;
				*why = r == -EOPNOTSUPP
					       ? "the http_filter uses header_filter_jq or "
						 "body_filter, which podenv's agent cannot run"
					       : "the http_filter cannot be sent to the agent";
			}
			return;
		}
		if (!listed) {
			*why = "not in feature.network.incoming.http_filter.ports (default [80, "
			       "8080]) "
			       "nor in feature.network.incoming.ports";
			return;
		}
		*filter = xstrdup("");
		return;
	}
	if (c->ports.set && !listed) {
		*why = "not in feature.network.incoming.ports";
		return;
	}
	*filter = xstrdup("");
}

/* --- subscriptions ---------------------------------------------------------------- */

static void sub_free(struct sub *sub)
{
	map_remove(&sub->in->subs, (uint64_t)sub->port + 1);
	free(sub->waiting);
	free(sub->filter);
	free(sub);
}

static void release_waiting(struct sub *sub)
{
	for (size_t i = 0; i < sub->nwaiting; i++)
		listen_watch_answer(sub->in->watch, sub->waiting[i], 0);
	sub->nwaiting = 0;
}

static void detach_all(struct incoming *in, struct sub *sub)
{
	uint64_t key;
	void *v;

	for (size_t pos = 0; map_next(&in->lsns, &pos, &key, &v);) {
		struct lsn *l = v;
		if (l->sub == sub)
			l->sub = NULL;
	}
}

static void unsubscribe(struct sub *sub)
{
	struct proto_msg m = {.type = PROTO_UNSUBSCRIBE};

	m.req.port = sub->port;
	if (proto_client_request(sub->in->s->client, &m, NULL, NULL) > 0)
		log_info("pod port %u: unsubscribed (the app stopped listening)", sub->port);
}

static const char *mode_name(uint8_t mode)
{
	return mode == PROTO_STEAL ? "stealing" : "mirroring";
}

static void on_subscribed(void *userdata, const struct proto_msg *m)
{
	struct sub *sub = userdata;
	struct incoming *in = sub->in;

	sub->req = 0;
	release_waiting(sub);
	if (m->status == 0) {
		sub->state = SUB_ACTIVE;
		if (sub->unsub_on_answer) {
			unsubscribe(sub);
			sub_free(sub);
			return;
		}
		log_info("pod port %u: %s %s", sub->port, mode_name(sub->mode),
			 *sub->filter ? "the requests matching the http_filter"
				      : "every connection");
		return;
	}
	int st = (int)m->status;
	char msg[512];
	if (sub->mode == PROTO_STEAL && (st == EADDRINUSE || st == EBUSY)) {
		/* mirrord without its operator: one stealer per port, the
		 * second session fails (on_concurrent_steal needs the operator). */
		snprintf(msg, sizeof(msg),
			 "pod port %u is already stolen by another podenv session; stopping (one "
			 "session may steal a port; mirror can be shared, or use "
			 "feature.network.incoming.port_mapping / ignore_ports)",
			 sub->port);
		detach_all(in, sub);
		sub_free(sub);
		if (in->fatal)
			in->fatal(in->userdata, msg);
		else
			log_error("%s", msg);
		return;
	}
	if (st == ENOSYS || st == EOPNOTSUPP || st == ECONNABORTED)
		log_info("pod port %u: not %s: the agent does not serve it (%s)", sub->port,
			 mode_name(sub->mode), strerror(st));
	else
		log_warn("pod port %u: not %s: %s", sub->port, mode_name(sub->mode), strerror(st));
	detach_all(in, sub);
	sub_free(sub);
}

/* Attaches listener l to the subscription of its pod port, subscribing
 * first if needed. Returns true when the listen() must wait for the agent. */
static bool subscribe(struct incoming *in, struct lsn *l, char *filter, uint64_t token)
{
	uint8_t mode = in->cfg->mode == CFG_INCOMING_STEAL ? PROTO_STEAL : PROTO_MIRROR;
	uint64_t cap = mode == PROTO_STEAL ? PROTO_CAP_STEAL : PROTO_CAP_MIRROR;
	struct sub *sub = map_get(&in->subs, (uint64_t)l->remote + 1);

	if (sub) {
		/* Another socket on the same pod port (IPv4 and IPv6, or a
		 * restarted server): it shares the subscription. */
		free(filter);
		sub->users++;
		sub->unsub_on_answer = false;
		l->sub = sub;
		if (sub->state == SUB_PENDING) {
			sub->waiting =
				xrealloc(sub->waiting, (sub->nwaiting + 1) * sizeof(uint64_t));
			sub->waiting[sub->nwaiting++] = token;
			return true;
		}
		return false;
	}
	if (!(proto_client_caps(in->s->client) & cap)) {
		if (!in->warned_caps)
			log_info("the agent does not offer %s: the pod's traffic is not delivered",
				 mode == PROTO_STEAL ? "steal" : "mirror");
		in->warned_caps = true;
		free(filter);
		return false;
	}
	sub = xcalloc(1, sizeof(*sub));
	sub->in = in;
	sub->port = l->remote;
	sub->mode = mode;
	sub->filter = filter;
	sub->users = 1;
	struct proto_msg m = {.type = PROTO_SUBSCRIBE};
	m.req.port = sub->port;
	m.req.kind = mode;
	m.req.filter = sub->filter;
	int64_t id = proto_client_request(in->s->client, &m, on_subscribed, sub);
	if (id < 0) {
		free(sub->filter);
		free(sub);
		return false;
	}
	sub->req = (uint64_t)id;
	map_put(&in->subs, (uint64_t)sub->port + 1, sub);
	l->sub = sub;
	sub->waiting = xmalloc(sizeof(uint64_t));
	sub->waiting[0] = token;
	sub->nwaiting = 1;
	return true;
}

static void sub_drop_user(struct incoming *in, struct sub *sub)
{
	(void)in;
	if (--sub->users > 0)
		return;
	if (sub->state == SUB_PENDING) {
		sub->unsub_on_answer = true;
		return;
	}
	unsubscribe(sub);
	sub_free(sub);
}

/* --- delivery ---------------------------------------------------------------------- */

/* A socket in the app's namespace, connecting to listener l. Returns the
 * fd or a negative errno. */
static int connect_app(struct incoming *in, const struct lsn *l)
{
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	static const uint8_t any6[16] = {0};
	int fd = nsock_socket(in->ns, l->s.family, SOCK_STREAM, 0);

	if (fd < 0)
		return fd;
	if (l->s.family == AF_INET) {
		struct sockaddr_in *a = (void *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons(l->s.port);
		memcpy(&a->sin_addr, l->s.addr, 4);
		/* A wildcard listener is reached on the TUN's own address, not
		 * 127.0.0.1: the app's 127.0.0.0/8 is routed to the pod unless
		 * the app listens on the port (vnet/loopback.c), so a listener
		 * that just closed would send us round to the pod's port and
		 * back through its redirect. */
		if (a->sin_addr.s_addr == htonl(INADDR_ANY))
			inet_pton(AF_INET, NET_ADDR4, &a->sin_addr);
		else if (is_loopback(&l->s) &&
			 !listen_watch_has_port(in->watch, IPPROTO_TCP, l->s.port)) {
			close(fd);
			return -ECONNREFUSED; /* same reason: never toward the pod */
		}
		sl = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (void *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(l->s.port);
		memcpy(&a->sin6_addr, l->s.addr, 16);
		if (!memcmp(l->s.addr, any6, 16))
			a->sin6_addr = in6addr_loopback;
		sl = sizeof(*a);
	}
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

static struct lsn *listener_for(struct incoming *in, const struct sub *sub, int family)
{
	uint64_t key;
	void *v;
	struct lsn *any = NULL;

	for (size_t pos = 0; map_next(&in->lsns, &pos, &key, &v);) {
		struct lsn *l = v;
		if (l->sub != sub)
			continue;
		if (l->s.family == family)
			return l;
		any = l;
	}
	return any;
}

static void on_incoming(void *userdata, uint64_t id, const struct proto_incoming *inc)
{
	struct incoming *in = userdata;
	struct sub *sub = map_get(&in->subs, (uint64_t)inc->port + 1);
	struct lsn *l;
	int fd, r;

	if (!sub)
		return; /* not ours (any more): refused */
	l = listener_for(in, sub, inc->remote.family == PROTO_AF_INET6 ? AF_INET6 : AF_INET);
	if (!l)
		return;
	fd = connect_app(in, l);
	if (fd < 0) {
		log_debug("pod port %u: no socket for the app: %s", inc->port, strerror(-fd));
		return;
	}
	r = vnet_deliver_stream(in->deliver, in->s->client, id, inc->mode == PROTO_MIRROR, fd);
	if (r < 0) {
		close(fd);
		return;
	}
	if (log_enabled(LOG_TARGET, LOG_DEBUG)) {
		/* The app sees the connection come from its own address: say
		 * whose it is. */
		char a[INET6_ADDRSTRLEN] = "?";
		inet_ntop(inc->remote.family == PROTO_AF_INET6 ? AF_INET6 : AF_INET,
			  inc->remote.bytes, a, sizeof(a));
		log_debug("pod port %u: %s connection from %s port %u, to the app's port %u",
			  inc->port, inc->mode == PROTO_MIRROR ? "mirrored" : "stolen", a,
			  inc->remote_port, l->s.port);
	}
}

static void on_refused(void *userdata)
{
	struct incoming *in = userdata;

	/* The app's listener may be gone: find out soon, after the refused
	 * stream's reset has left (an UNSUBSCRIBE ahead of it, in the same
	 * write, is seen to keep the agent from resetting the client). */
	listen_watch_check_soon(in->watch);
}

static int on_host_accept(struct loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct lsn *l = userdata;
	(void)src;
	(void)events;

	for (int i = 0; i < 64; i++) {
		int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c < 0)
			break;
		int a = connect_app(l->in, l);
		if (a < 0 || vnet_deliver_socket(l->in->deliver, c, a) < 0) {
			struct linger lg = {1, 0};
			setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			close(c);
			if (a >= 0)
				close(a);
		}
	}
	return 0;
}

/* listen_ports: [[L, H]] exposes the app's port L on this host's
 * 127.0.0.1:H while the app listens on it. */
static void host_listen(struct incoming *in, struct lsn *l)
{
	const struct cfg_port_pairs *lp = &in->cfg->listen_ports;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1, fd;

	for (size_t i = 0; i < lp->n; i++)
		if (lp->v[i].local == l->s.port)
			a.sin_port = htons(lp->v[i].remote);
	if (!a.sin_port)
		return;
	/* One host listener per port, even when the app listens on it twice. */
	uint64_t key;
	void *v;
	for (size_t pos = 0; map_next(&in->lsns, &pos, &key, &v);)
		if (((struct lsn *)v)->host_fd >= 0 && ((struct lsn *)v)->s.port == l->s.port)
			return;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1024) < 0) {
		log_warn("feature.network.incoming.listen_ports: cannot listen on 127.0.0.1:%u for "
			 "the app's port %u: %m",
			 ntohs(a.sin_port), l->s.port);
		close(fd);
		return;
	}
	if (loop_add_io(in->s->loop, fd, EPOLLIN, on_host_accept, l, &l->host_src) < 0) {
		close(fd);
		return;
	}
	l->host_fd = fd;
	l->host_port = ntohs(a.sin_port);
	log_info("the app's port %u is reachable at 127.0.0.1:%u", l->s.port, l->host_port);
}

static void host_close(struct lsn *l)
{
	loop_source_free(l->host_src);
	l->host_src = NULL;
	if (l->host_fd >= 0)
		close(l->host_fd);
	l->host_fd = -1;
}

/* --- the app's listeners ------------------------------------------------------------ */

static void on_listening(void *userdata, const struct listen_sock *s, uint64_t token)
{
	struct incoming *in = userdata;
	struct lsn *l = xcalloc(1, sizeof(*l));
	const char *why;
	char *filter;
	bool wait = false;

	l->s = *s;
	l->in = in;
	l->host_fd = -1;
	map_put(&in->lsns, s->cookie, l);
	incoming_decide(in->cfg, s, &l->remote, &filter, &why);
	if (in->s->trace)
		trace_listen(in->s->trace, s->port, l->remote,
			     in->cfg->mode == CFG_INCOMING_STEAL ? "steal" : "mirror", filter, why);
	if (filter)
		wait = subscribe(in, l, filter, token);
	else if (in->cfg->mode != CFG_INCOMING_OFF)
		log_info("the app listens on port %u: not subscribed: %s", s->port, why);
	host_listen(in, l);
	if (!wait)
		listen_watch_answer(in->watch, token, 0);
}

static void on_closed(void *userdata, const struct listen_sock *s)
{
	struct incoming *in = userdata;
	struct lsn *l = map_remove(&in->lsns, s->cookie);

	if (!l)
		return;
	host_close(l);
	if (l->sub)
		sub_drop_user(in, l->sub);
	/* Another socket on the same port takes over listen_ports. */
	uint64_t key;
	void *v;
	for (size_t pos = 0; map_next(&in->lsns, &pos, &key, &v);)
		if (((struct lsn *)v)->s.port == s->port && ((struct lsn *)v)->host_fd < 0) {
			host_listen(in, v);
			break;
		}
	free(l);
}

static const struct listen_watch_ops watch_ops = {
	.listening = on_listening,
	.closed = on_closed,
};

int incoming_start(struct session *s, int notify_fd, int netns_fd,
		   void (*fatal)(void *userdata, const char *msg), void *userdata,
		   struct incoming **ret, struct err *reterr)
{
	struct incoming *in = xcalloc(1, sizeof(*in));
	int r;

	in->s = s;
	in->cfg = &s->cfg->feature.network.incoming;
	in->fatal = fatal;
	in->userdata = userdata;
	r = nsock_new(s->loop, netns_fd, &in->ns, reterr);
	close(netns_fd);
	if (r < 0) {
		close(notify_fd);
		goto fail;
	}
	r = vnet_deliver_new(s->loop, on_refused, in, &in->deliver);
	if (r < 0) {
		close(notify_fd);
		err_set_errno(reterr, r, "incoming delivery");
		goto fail;
	}
	r = listen_watch_new(s->loop, notify_fd, in->ns, &watch_ops, in, &in->watch, reterr);
	if (r < 0)
		goto fail;
	proto_client_set_incoming(s->client, on_incoming, in);
	*ret = in;
	return 0;
fail:
	incoming_free(in);
	return r;
}

void incoming_free(struct incoming *in)
{
	uint64_t key;
	void *v;

	if (!in)
		return;
	if (in->s && in->s->client)
		proto_client_set_incoming(in->s->client, NULL, NULL);
	vnet_deliver_free(in->deliver);
	for (size_t pos = 0; map_next(&in->subs, &pos, &key, &v);) {
		struct sub *sub = v;
		if (sub->req)
			proto_client_cancel(in->s->client, sub->req);
		release_waiting(sub);
		free(sub->waiting);
		free(sub->filter);
		free(sub);
	}
	map_done(&in->subs);
	for (size_t pos = 0; map_next(&in->lsns, &pos, &key, &v);) {
		host_close(v);
		free(v);
	}
	map_done(&in->lsns);
	listen_watch_free(in->watch);
	nsock_free(in->ns);
	free(in);
}

void incoming_agent_args(const struct cfg *cfg, const char **args, size_t size)
{
	size_t n = 0;

	while (n < size && args[n])
		n++;
	/* agent.nftables: true picks nft; unset or false, iptables (which
	 * Debian's iptables sends to nf_tables or legacy by alternatives). */
	if (cfg->agent.nftables == CFG_TRUE && n + 1 < size)
		args[n++] = "--nftables";
	if (cfg->agent.flush_connections && n + 1 < size)
		args[n++] = "--flush-connections";
	if (n < size)
		args[n] = NULL;
}

bool incoming_app_listening(struct incoming *in, int proto, uint16_t port)
{
	return in && in->watch && listen_watch_has_port(in->watch, proto, port);
}

struct listen_watch *incoming_watch(struct incoming *in)
{
	return in->watch;
}
