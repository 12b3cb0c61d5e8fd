/* The relay ("system stack", research/vnet.md §1): packets the app sends
 * come out of the TUN; TCP is handed to the namespace's own kernel stack by
 * rewriting each flow to (fake peer:NAT port -> TUN address:listener port)
 * and writing it back, so the kernel terminates the connection on our
 * listener and we relay bytes; its answers come out of the TUN again and
 * are rewritten back to (original destination -> app). UDP datagrams are
 * relayed per 5-tuple and answers built from scratch.
 *
 * A new TCP flow's SYN is held until its far side (a stream through the
 * agent, or a host socket for flows routed local) has connected: a refused
 * connect becomes a RST to the app, so it sees ECONNREFUSED, not a connect
 * followed by EOF.
 *
 * Backpressure both ways: the app socket is read only while the stream (or
 * host socket buffer) has room, and stream data is written to the app
 * socket with its credit returned only once the socket took it.
 */
#define LOG_TARGET "podenv::vnet"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "common/buf.h"
#include "common/log.h"
#include "proto/proto.h"
#include "vnet/vnet.h"

#define TUN_BATCH 64
#define UDP_IDLE (60 * USEC_PER_SEC)
#define TCP_DEAD_IDLE (30 * USEC_PER_SEC)
#define TCP_IDLE (2 * 3600 * USEC_PER_SEC)
#define APP_READ 65536
#define LOCAL_BUF_MAX (256u * 1024)

struct flow;

struct vnet_relay {
	struct vnet_relay_cfg cfg;
	struct vnet_nat *nat;
	struct loop_source *tun_src;
	struct loop_source *listen_src[2];
	struct loop_source *expiry;
	uint8_t pkt[VNET_PACKET_MAX];
	uint8_t out[VNET_PACKET_MAX];
	uint16_t listen_port[2]; /* [0] v4, [1] v6 */
	unsigned nflows;
	struct flow *dead; /* ended flows, freed by the expiry sweep */
};

enum flow_kind { FLOW_TCP_REMOTE, FLOW_TCP_LOCAL, FLOW_UDP_REMOTE, FLOW_UDP_LOCAL };

struct flow {
	struct vnet_relay *r;
	struct vnet_nat_entry *entry; /* NULL once removed */
	struct vnet_tuple t;	      /* the app's original tuple */
	enum flow_kind kind;
	bool far_ready;	   /* the far side connected */
	bool dead;	   /* relaying ended; the entry lingers for TIME_WAIT packets */
	usec_t dead_at;
	struct flow *next_dead;
	/* The held SYN, injected once the far side is ready. */
	uint8_t *syn;
	size_t syn_len;
	/* the app side (accepted socket), TCP */
	int app_fd;
	struct loop_source *app_src;
	struct buf to_app;  /* bytes from the far side not yet written to app_fd */
	bool app_eof;	    /* the app half-closed (we sent shutdown far) */
	bool far_eof;	    /* the far side half-closed */
	bool to_app_shut;   /* shutdown(app_fd, WR) done */
	/* far side: a stream through the agent, or a host socket */
	struct proto_stream *st;
	int far_fd;
	struct loop_source *far_src;
	struct buf to_far; /* local only: bytes for far_fd not yet written */
};

static bool is_v6(const struct vnet_tuple *t)
{
	return t->family == 6;
}

static void tun_write(struct vnet_relay *r, const uint8_t *p, size_t n)
{
	/* A full TUN queue drops the packet, as a congested link would. */
	if (write(r->cfg.tun_fd, p, n) < 0 && errno != EAGAIN)
		log_debug("tun write: %m");
}

/* --- flow lifetime ------------------------------------------------------------- */

static void flow_free(struct flow *f)
{
	loop_source_free(f->app_src);
	loop_source_free(f->far_src);
	if (f->app_fd >= 0)
		close(f->app_fd);
	if (f->far_fd >= 0)
		close(f->far_fd);
	if (f->st)
		proto_stream_close(f->st, 0);
	if (f->entry)
		vnet_nat_entry_set_userdata(f->entry, NULL);
	buf_done(&f->to_app);
	buf_done(&f->to_far);
	free(f->syn);
	f->r->nflows--;
	free(f);
}

/* Relaying is over; the NAT entry stays a while so the kernels' closing
 * packets still find their way, then the expiry sweep frees the flow.
 * Never frees: callers may still hold f. */
static void flow_end(struct flow *f, int reset_errno)
{
	if (f->dead)
		return;
	f->dead = true;
	f->dead_at = now_usec();
	f->next_dead = f->r->dead;
	f->r->dead = f;
	if (reset_errno && f->app_fd >= 0) {
		struct linger lg = { 1, 0 };
		setsockopt(f->app_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	loop_source_free(f->app_src);
	f->app_src = NULL;
	if (f->app_fd >= 0)
		close(f->app_fd);
	f->app_fd = -1;
	loop_source_free(f->far_src);
	f->far_src = NULL;
	if (f->far_fd >= 0)
		close(f->far_fd);
	f->far_fd = -1;
	if (f->st) {
		proto_stream_close(f->st, reset_errno);
		f->st = NULL;
	}
	buf_done(&f->to_app);
	buf_done(&f->to_far);
}

static void on_expired(const struct vnet_tuple *t, uint16_t port, void *entry_userdata,
		       void *userdata)
{
	struct flow *f = entry_userdata;
	(void)t;
	(void)port;
	(void)userdata;

	if (!f)
		return;
	f->entry = NULL;
	flow_end(f, ECONNRESET); /* no-op when already ended; the sweep frees it */
}

/* --- injecting packets toward the app -------------------------------------------- */

/* Tells the app its connect failed the way the far side's did: refused →
 * RST (ECONNREFUSED), unreachable → ICMP unreachable (EHOSTUNREACH /
 * ENETUNREACH), timed out → nothing (the app's own connect times out, as
 * it would in the pod). */
static void reject_syn(struct flow *f, int err)
{
	struct vnet_packet p;
	int n;

	if (!f->syn || vnet_packet_parse(&p, f->syn, f->syn_len) < 0)
		return;
	switch (err) {
	case ETIMEDOUT:
		return;
	case EHOSTUNREACH:
	case EHOSTDOWN:
		n = vnet_packet_build_unreach(f->r->out, sizeof(f->r->out), &p, VNET_UNREACH_HOST);
		break;
	case ENETUNREACH:
	case ENETDOWN:
		n = vnet_packet_build_unreach(f->r->out, sizeof(f->r->out), &p, VNET_UNREACH_NET);
		break;
	default:
		n = vnet_packet_build_rst(f->r->out, sizeof(f->r->out), &p);
		break;
	}
	if (n > 0)
		tun_write(f->r, f->r->out, (size_t)n);
}

/* Rewrites an app packet of flow f toward our listener and writes it. */
static void forward_to_listener(struct vnet_relay *r, struct vnet_packet *p,
				const struct vnet_tuple *t, uint16_t nat_port)
{
	int v6 = is_v6(t);

	if (vnet_packet_set_src(p, v6 ? &r->cfg.peer6 : &r->cfg.peer4, nat_port) < 0 ||
	    vnet_packet_set_dst(p, v6 ? &r->cfg.addr6 : &r->cfg.addr4, r->listen_port[v6]) < 0)
		return;
	tun_write(r, p->data, p->len);
}

static void inject_syn(struct flow *f)
{
	struct vnet_packet p;

	if (!f->syn || !f->entry || vnet_packet_parse(&p, f->syn, f->syn_len) < 0)
		return;
	forward_to_listener(f->r, &p, &f->t, vnet_nat_entry_port(f->entry));
	free(f->syn);
	f->syn = NULL;
}

/* --- TCP: bytes between the app socket and the far side ----------------------------- */

static void app_update_events(struct flow *f);

static size_t far_space(struct flow *f)
{
	if (f->kind == FLOW_TCP_REMOTE)
		return f->st ? proto_stream_write_space(f->st) : 0;
	return buf_len(&f->to_far) >= LOCAL_BUF_MAX ? 0 : LOCAL_BUF_MAX - buf_len(&f->to_far);
}

static void far_flush(struct flow *f);

static void app_read(struct flow *f)
{
	uint8_t buf[APP_READ];

	while (!f->dead && !f->app_eof) {
		size_t space = far_space(f);
		if (space == 0)
			break; /* resumed by the far side's writable/flush */
		ssize_t n = recv(f->app_fd, buf, MIN(space, sizeof(buf)), 0);
		if (n > 0) {
			if (f->kind == FLOW_TCP_REMOTE)
				proto_stream_write(f->st, buf, (size_t)n);
			else
				buf_append(&f->to_far, buf, (size_t)n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n < 0) {
			flow_end(f, errno);
			return;
		}
		f->app_eof = true;
		if (f->kind == FLOW_TCP_REMOTE)
			proto_stream_shutdown(f->st);
	}
	if (f->kind == FLOW_TCP_LOCAL)
		far_flush(f);
}

/* Far side data waiting for the app: write what the socket takes. */
static void app_flush(struct flow *f)
{
	size_t taken = 0;

	while (buf_len(&f->to_app) > 0) {
		ssize_t n = send(f->app_fd, buf_data(&f->to_app), buf_len(&f->to_app), MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			flow_end(f, errno);
			return;
		}
		buf_consume(&f->to_app, (size_t)n);
		taken += (size_t)n;
	}
	if (taken && f->kind == FLOW_TCP_REMOTE && f->st)
		proto_stream_consumed(f->st, taken);
	if (taken && f->kind == FLOW_TCP_LOCAL && f->far_src)
		loop_io_events_set(f->far_src, EPOLLIN | (buf_len(&f->to_far) ? EPOLLOUT : 0));
	if (buf_len(&f->to_app) == 0 && f->far_eof && !f->to_app_shut) {
		shutdown(f->app_fd, SHUT_WR);
		f->to_app_shut = true;
	}
	if (f->to_app_shut && f->app_eof && buf_len(&f->to_far) == 0)
		flow_end(f, 0);
}

static void app_update_events(struct flow *f)
{
	uint32_t ev = 0;

	if (f->dead || !f->app_src)
		return;
	if (!f->app_eof && far_space(f) > 0)
		ev |= EPOLLIN;
	if (buf_len(&f->to_app) > 0)
		ev |= EPOLLOUT;
	loop_io_events_set(f->app_src, ev);
}

static int on_app_io(struct loop_source *s, int fd, uint32_t events, void *userdata)
{
	struct flow *f = userdata;
	(void)s;
	(void)fd;

	if (events & EPOLLOUT)
		app_flush(f);
	if (!f->dead && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		app_read(f);
	if (!f->dead)
		app_update_events(f);
	return 0;
}

/* stream callbacks (remote TCP) */

static void st_opened(void *userdata, int err, const struct proto_addr *a, uint16_t port)
{
	struct flow *f = userdata;
	(void)a;
	(void)port;

	if (err) {
		f->st = NULL; /* freed by the client after this call */
		log_debug("connect %s: %s", f->kind == FLOW_TCP_REMOTE ? "remote" : "local",
			  strerror(err));
		reject_syn(f, err);
		if (f->entry) {
			vnet_nat_remove(f->r->nat, f->entry);
			f->entry = NULL;
		}
		f->dead = true;
		flow_free(f);
		return;
	}
	f->far_ready = true;
	inject_syn(f);
}

static void st_data(void *userdata, const uint8_t *p, size_t n)
{
	struct flow *f = userdata;

	if (f->dead)
		return;
	buf_append(&f->to_app, p, n);
	if (f->app_fd >= 0) {
		app_flush(f);
		if (!f->dead)
			app_update_events(f);
	}
}

static void st_shutdown(void *userdata)
{
	struct flow *f = userdata;

	f->far_eof = true;
	if (f->app_fd >= 0 && !f->dead) {
		app_flush(f);
		if (!f->dead)
			app_update_events(f);
	}
}

static void st_closed(void *userdata, int err)
{
	struct flow *f = userdata;

	f->st = NULL;
	if (err) {
		flow_end(f, err);
		return;
	}
	f->far_eof = true;
	if (f->app_fd >= 0 && !f->dead) {
		app_flush(f);
		if (!f->dead && buf_len(&f->to_app) == 0)
			flow_end(f, 0);
	} else if (f->app_fd < 0) {
		flow_end(f, 0);
	}
}

static void st_writable(void *userdata)
{
	struct flow *f = userdata;

	if (!f->dead && f->app_fd >= 0) {
		app_read(f);
		if (!f->dead)
			app_update_events(f);
	}
}

static const struct proto_stream_ops tcp_stream_ops = {
	.opened = st_opened,
	.data = st_data,
	.shutdown = st_shutdown,
	.closed = st_closed,
	.writable = st_writable,
};

/* local TCP: a host socket */

static void far_flush(struct flow *f)
{
	while (buf_len(&f->to_far) > 0 && f->far_fd >= 0 && f->far_ready) {
		ssize_t n = send(f->far_fd, buf_data(&f->to_far), buf_len(&f->to_far), MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			flow_end(f, errno);
			return;
		}
		buf_consume(&f->to_far, (size_t)n);
	}
	if (f->far_fd >= 0 && f->far_ready && f->app_eof && buf_len(&f->to_far) == 0)
		shutdown(f->far_fd, SHUT_WR);
	if (f->far_src)
		loop_io_events_set(f->far_src,
				   (buf_len(&f->to_app) < LOCAL_BUF_MAX && !f->far_eof ? EPOLLIN : 0) |
					   (buf_len(&f->to_far) ? EPOLLOUT : 0));
	/* Both directions done (the far side closed first, the usual HTTP
	 * order, and now the app has too): the flow is over. */
	if (f->to_app_shut && f->app_eof && buf_len(&f->to_far) == 0)
		flow_end(f, 0);
}

static int on_far_io(struct loop_source *s, int fd, uint32_t events, void *userdata)
{
	struct flow *f = userdata;
	uint8_t buf[APP_READ];
	(void)s;

	if (!f->far_ready) {
		int err = 0;
		socklen_t l = sizeof(err);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err) {
			reject_syn(f, err);
			if (f->entry) {
				vnet_nat_remove(f->r->nat, f->entry);
				f->entry = NULL;
			}
			f->dead = true;
			flow_free(f);
			return 0;
		}
		f->far_ready = true;
		inject_syn(f);
		loop_io_events_set(f->far_src, EPOLLIN);
		return 0;
	}
	if (events & EPOLLOUT)
		far_flush(f);
	while (!f->dead && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) &&
	       buf_len(&f->to_app) < LOCAL_BUF_MAX && !f->far_eof) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n > 0) {
			buf_append(&f->to_app, buf, (size_t)n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n < 0) {
			flow_end(f, errno);
			return 0;
		}
		f->far_eof = true;
	}
	if (!f->dead && f->app_fd >= 0) {
		app_flush(f);
		if (!f->dead) {
			app_update_events(f);
			far_flush(f);
		}
	}
	return 0;
}

static socklen_t sockaddr_of(struct sockaddr_storage *ss, int family, const struct vnet_addr *a,
			     uint16_t port)
{
	memset(ss, 0, sizeof(*ss));
	if (family == 4) {
		struct sockaddr_in *in = (void *)ss;
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		memcpy(&in->sin_addr, a->b, 4);
		return sizeof(*in);
	}
	struct sockaddr_in6 *in6 = (void *)ss;
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(port);
	memcpy(&in6->sin6_addr, a->b, 16);
	return sizeof(*in6);
}

static int local_connect(struct flow *f, int type)
{
	struct sockaddr_storage ss;
	socklen_t sl = sockaddr_of(&ss, f->t.family, &f->t.dst, f->t.dport);
	int fd = socket(ss.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS) {
		int r = -errno;
		close(fd);
		return r;
	}
	if (type == SOCK_STREAM) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	f->far_fd = fd;
	return 0;
}

static struct proto_addr proto_addr_of(const struct vnet_tuple *t)
{
	struct proto_addr a = { .family = t->family == 4 ? PROTO_AF_INET : PROTO_AF_INET6 };

	memcpy(a.bytes, t->dst.b, t->family == 4 ? 4 : 16);
	return a;
}

/* A new TCP flow: its SYN is held until the far side is connected. */
static void tcp_new_flow(struct vnet_relay *r, struct vnet_packet *p, const struct vnet_tuple *t)
{
	struct vnet_nat_entry *e = NULL;
	struct flow *f;
	int verdict, rr;

	verdict = r->cfg.route ? r->cfg.route(r->cfg.userdata, t) : VNET_ROUTE_REMOTE;
	if (verdict == VNET_ROUTE_REJECT) {
		int n = vnet_packet_build_rst(r->out, sizeof(r->out), p);
		if (n > 0)
			tun_write(r, r->out, (size_t)n);
		return;
	}
	rr = vnet_nat_add(r->nat, t, now_usec(), &e);
	if (rr < 0) {
		if (rr != -EEXIST)
			log_warn("no room for a new connection (%s)", strerror(-rr));
		return; /* a retransmitted SYN of a pending flow, or full */
	}
	f = xcalloc(1, sizeof(*f));
	f->r = r;
	f->entry = e;
	f->t = *t;
	f->app_fd = f->far_fd = -1;
	f->kind = verdict == VNET_ROUTE_LOCAL ? FLOW_TCP_LOCAL : FLOW_TCP_REMOTE;
	f->syn = xmalloc(p->len);
	memcpy(f->syn, p->data, p->len);
	f->syn_len = p->len;
	buf_init(&f->to_app);
	buf_init(&f->to_far);
	vnet_nat_entry_set_userdata(e, f);
	r->nflows++;
	if (f->kind == FLOW_TCP_REMOTE) {
		struct proto_addr a = proto_addr_of(t);
		rr = proto_stream_open(r->cfg.client, PROTO_STREAM_TCP, &a, t->dport,
				       &tcp_stream_ops, f, &f->st);
	} else {
		rr = local_connect(f, SOCK_STREAM);
		if (rr == 0)
			rr = loop_add_io(r->cfg.loop, f->far_fd, EPOLLOUT, on_far_io, f, &f->far_src);
	}
	if (rr < 0) {
		reject_syn(f, -rr);
		vnet_nat_remove(r->nat, f->entry);
		f->entry = NULL;
		f->st = NULL;
		f->dead = true;
		flow_free(f);
	}
}

/* --- UDP ------------------------------------------------------------------------ */

static void udp_to_app(struct flow *f, const uint8_t *p, size_t n)
{
	struct vnet_tuple back = f->t;
	int len;

	vnet_tuple_reverse(&back);
	len = vnet_packet_build_udp(f->r->out, sizeof(f->r->out), &back, p, n);
	if (len > 0)
		tun_write(f->r, f->r->out, (size_t)len);
	if (f->entry)
		vnet_nat_touch(f->r->nat, f->entry, now_usec());
}

static void udp_st_opened(void *userdata, int err, const struct proto_addr *a, uint16_t port)
{
	struct flow *f = userdata;
	(void)a;
	(void)port;

	if (err) {
		f->st = NULL;
		flow_end(f, 0);
		return;
	}
	f->far_ready = true;
}

static void udp_st_data(void *userdata, const uint8_t *p, size_t n)
{
	struct flow *f = userdata;

	udp_to_app(f, p, n);
	if (f->st)
		proto_stream_consumed(f->st, n);
}

static void udp_st_closed(void *userdata, int err)
{
	struct flow *f = userdata;
	(void)err;

	f->st = NULL;
	flow_end(f, 0);
}

static const struct proto_stream_ops udp_stream_ops = {
	.opened = udp_st_opened,
	.data = udp_st_data,
	.closed = udp_st_closed,
};

static int on_udp_local(struct loop_source *s, int fd, uint32_t events, void *userdata)
{
	struct flow *f = userdata;
	uint8_t buf[65536];
	(void)s;
	(void)events;

	for (int i = 0; i < 16; i++) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0)
			break;
		udp_to_app(f, buf, (size_t)n);
	}
	return 0;
}

static void udp_packet(struct vnet_relay *r, struct vnet_packet *p, const struct vnet_tuple *t)
{
	struct vnet_nat_entry *e = vnet_nat_lookup(r->nat, t);
	struct flow *f;
	int verdict;

	if (!e && vnet_addr_is_loopback4(t) &&
	    vnet_loopback_is_local(r->cfg.loopback, IPPROTO_UDP, t->dport)) {
		tun_write(r, p->data, p->len); /* the app's own UDP socket (loopback.c) */
		return;
	}
	if (t->dport == 53 && r->cfg.dns_query) {
		/* Any resolver address: our DNS answers (hard-coded resolvers). */
		r->cfg.dns_query(r->cfg.userdata, t, p->data + p->payload_off, p->payload_len);
		return;
	}
	if (!e) {
		verdict = r->cfg.route ? r->cfg.route(r->cfg.userdata, t) : VNET_ROUTE_REMOTE;
		if (verdict == VNET_ROUTE_REJECT) {
			int n = vnet_packet_build_unreach(r->out, sizeof(r->out), p, VNET_UNREACH_PORT);
			if (n > 0)
				tun_write(r, r->out, (size_t)n);
			return;
		}
		if (vnet_nat_add(r->nat, t, now_usec(), &e) < 0)
			return;
		f = xcalloc(1, sizeof(*f));
		f->r = r;
		f->entry = e;
		f->t = *t;
		f->app_fd = f->far_fd = -1;
		buf_init(&f->to_app);
		buf_init(&f->to_far);
		vnet_nat_entry_set_userdata(e, f);
		r->nflows++;
		int rr;
		if (verdict == VNET_ROUTE_LOCAL) {
			f->kind = FLOW_UDP_LOCAL;
			rr = local_connect(f, SOCK_DGRAM);
			if (rr == 0)
				rr = loop_add_io(r->cfg.loop, f->far_fd, EPOLLIN, on_udp_local, f,
						 &f->far_src);
			f->far_ready = rr == 0;
		} else {
			struct proto_addr a = proto_addr_of(t);
			f->kind = FLOW_UDP_REMOTE;
			rr = proto_stream_open(r->cfg.client, PROTO_STREAM_UDP, &a, t->dport,
					       &udp_stream_ops, f, &f->st);
		}
		if (rr < 0) {
			vnet_nat_remove(r->nat, e);
			f->entry = NULL;
			f->st = NULL;
			f->dead = true;
			flow_free(f);
			return;
		}
	}
	f = vnet_nat_entry_userdata(e);
	if (!f || f->dead) {
		/* The flow ended (its stream closed) but the app sends again:
		 * start over with a new flow. */
		vnet_nat_remove(r->nat, e);
		if (f)
			f->entry = NULL;
		udp_packet(r, p, t);
		return;
	}
	vnet_nat_touch(r->nat, e, now_usec());
	if (f->kind == FLOW_UDP_LOCAL) {
		if (send(f->far_fd, p->data + p->payload_off, p->payload_len, MSG_NOSIGNAL) < 0)
			log_debug("udp send: %m");
	} else if (f->st) {
		/* Queued until the open is answered; dropped when the queue is
		 * full, as UDP may be. */
		proto_stream_write(f->st, p->data + p->payload_off, p->payload_len);
	}
}

void vnet_relay_udp_reply(struct vnet_relay *r, const struct vnet_tuple *t, const void *payload,
			  size_t len)
{
	struct vnet_tuple back = *t;
	int n;

	vnet_tuple_reverse(&back);
	n = vnet_packet_build_udp(r->out, sizeof(r->out), &back, payload, len);
	if (n > 0)
		tun_write(r, r->out, (size_t)n);
}

/* --- the TUN ------------------------------------------------------------------------ */

static bool addr_eq(const struct vnet_addr *a, const struct vnet_addr *b)
{
	return !memcmp(a, b, sizeof(*a));
}

static void tcp_packet(struct vnet_relay *r, struct vnet_packet *p, struct vnet_tuple *t)
{
	int v6 = is_v6(t);
	const struct vnet_addr *self = v6 ? &r->cfg.addr6 : &r->cfg.addr4;
	const struct vnet_addr *peer = v6 ? &r->cfg.peer6 : &r->cfg.peer4;
	struct vnet_nat_entry *e;

	/* Our listener answering the fake peer: back to the app as the real
	 * destination. */
	if (addr_eq(&t->src, self) && t->sport == r->listen_port[v6] && addr_eq(&t->dst, peer)) {
		e = vnet_nat_lookup_port(r->nat, IPPROTO_TCP, t->dport);
		if (!e)
			return;
		const struct vnet_tuple *o = vnet_nat_entry_tuple(e);
		if (vnet_packet_set_src(p, &o->dst, o->dport) < 0 ||
		    vnet_packet_set_dst(p, &o->src, o->sport) < 0)
			return;
		tun_write(r, p->data, p->len);
		if (p->tcp_flags & VNET_TCP_RST) {
			struct flow *f = vnet_nat_entry_userdata(e);
			vnet_nat_remove(r->nat, e);
			if (f) {
				f->entry = NULL;
				flow_end(f, ECONNRESET);
			}
		}
		return;
	}
	e = vnet_nat_lookup(r->nat, t);
	if (!e && vnet_addr_is_loopback4(t) && r->cfg.loopback) {
		/* To a port the app listens on: back into the TUN, the kernel
		 * delivers it to the app's socket (loopback.c). */
		bool syn = (p->tcp_flags & (VNET_TCP_SYN | VNET_TCP_ACK)) == VNET_TCP_SYN;
		if (syn ? vnet_loopback_is_local(r->cfg.loopback, IPPROTO_TCP, t->dport)
			: vnet_loopback_known_local(r->cfg.loopback, IPPROTO_TCP, t->dport)) {
			tun_write(r, p->data, p->len);
			return;
		}
	}
	if (!e) {
		if ((p->tcp_flags & (VNET_TCP_SYN | VNET_TCP_ACK | VNET_TCP_RST)) == VNET_TCP_SYN) {
			tcp_new_flow(r, p, t);
		} else if (!(p->tcp_flags & VNET_TCP_RST)) {
			/* A flow we do not know (expired, or from before us). */
			int n = vnet_packet_build_rst(r->out, sizeof(r->out), p);
			if (n > 0)
				tun_write(r, r->out, (size_t)n);
		}
		return;
	}
	struct flow *f = vnet_nat_entry_userdata(e);
	if ((p->tcp_flags & (VNET_TCP_SYN | VNET_TCP_ACK | VNET_TCP_RST)) == VNET_TCP_SYN &&
	    (!f || f->dead)) {
		/* The app reused its port for a new connection to the same
		 * destination while the old flow's entry lingers: a new flow,
		 * with a fresh NAT port (the old one may be in TIME_WAIT on our
		 * listener, which would take the SYN for the old connection). */
		vnet_nat_remove(r->nat, e);
		if (f)
			f->entry = NULL;
		tcp_new_flow(r, p, t);
		return;
	}
	if (f && !f->far_ready)
		return; /* retransmitted SYN while the far side connects */
	vnet_nat_touch(r->nat, e, now_usec());
	forward_to_listener(r, p, t, vnet_nat_entry_port(e));
}

static int on_tun(struct loop_source *s, int fd, uint32_t events, void *userdata)
{
	struct vnet_relay *r = userdata;
	struct vnet_packet p;
	struct vnet_tuple t;
	(void)s;
	(void)events;

	for (int i = 0; i < TUN_BATCH; i++) {
		ssize_t n = read(fd, r->pkt, sizeof(r->pkt));
		if (n <= 0)
			break;
		if (vnet_packet_parse(&p, r->pkt, (size_t)n) < 0 || !(p.flags & VNET_PACKET_L4))
			continue;
		vnet_packet_tuple(&p, &t);
		if (p.proto == IPPROTO_TCP)
			tcp_packet(r, &p, &t);
		else if (p.proto == IPPROTO_UDP && !(p.flags & VNET_PACKET_FRAGMENT))
			udp_packet(r, &p, &t);
		/* ICMP and the rest: no answer (a ping to a remote address
		 * times out, as it would from a pod without ICMP). */
	}
	return 0;
}

/* --- the listener: the kernel hands us each connection ------------------------------- */

static int on_accept(struct loop_source *s, int fd, uint32_t events, void *userdata)
{
	struct vnet_relay *r = userdata;
	(void)s;
	(void)events;

	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int c = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		uint16_t port;

		if (c < 0)
			return 0;
		port = ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
					       : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		struct vnet_nat_entry *e = vnet_nat_lookup_port(r->nat, IPPROTO_TCP, port);
		struct flow *f = e ? vnet_nat_entry_userdata(e) : NULL;
		if (!f || f->app_fd >= 0 || f->dead) {
			close(c);
			continue;
		}
		int one = 1;
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		f->app_fd = c;
		if (loop_add_io(r->cfg.loop, c, EPOLLIN, on_app_io, f, &f->app_src) < 0) {
			flow_end(f, ECONNRESET);
			continue;
		}
		/* Data may have arrived from the far side already. */
		app_flush(f);
		if (!f->dead)
			app_update_events(f);
	}
}

/* --- expiry ------------------------------------------------------------------------ */

/* Frees ended flows whose closing packets have had their time (all of
 * them when `all`). */
static void sweep_dead(struct vnet_relay *r, usec_t now, bool all)
{
	struct flow **pp = &r->dead;

	while (*pp) {
		struct flow *f = *pp;
		bool udp = f->kind == FLOW_UDP_REMOTE || f->kind == FLOW_UDP_LOCAL;
		if (!all && !udp && now - f->dead_at < TCP_DEAD_IDLE) {
			pp = &f->next_dead;
			continue;
		}
		*pp = f->next_dead;
		if (f->entry)
			vnet_nat_remove(r->nat, f->entry);
		f->entry = NULL;
		flow_free(f);
	}
}

static int on_expiry(struct loop_source *s, usec_t now, void *userdata)
{
	struct vnet_relay *r = userdata;

	sweep_dead(r, now, false);
	vnet_nat_expire(r->nat, IPPROTO_UDP, now > UDP_IDLE ? now - UDP_IDLE : 0, on_expired, r);
	/* TCP: entries whose relaying ended linger TCP_DEAD_IDLE for the
	 * closing handshake; live ones only after a long silence. */
	vnet_nat_expire(r->nat, IPPROTO_TCP, now > TCP_IDLE ? now - TCP_IDLE : 0, on_expired, r);
	loop_timer_set(s, now + 5 * USEC_PER_SEC);
	return 0;
}

static uint16_t local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return 0;
	return ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
				       : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

int vnet_relay_new(const struct vnet_relay_cfg *cfg, struct vnet_relay **ret, struct err *reterr)
{
	struct vnet_relay *r = xcalloc(1, sizeof(*r));
	int rr;

	r->cfg = *cfg;
	rr = vnet_nat_new(10000, 65000, 1u << 16, &r->nat);
	if (rr < 0) {
		free(r);
		return err_set_errno(reterr, rr, "NAT table");
	}
	r->listen_port[0] = local_port(cfg->listen4_fd);
	r->listen_port[1] = local_port(cfg->listen6_fd);
	rr = loop_add_io(cfg->loop, cfg->tun_fd, EPOLLIN, on_tun, r, &r->tun_src);
	if (rr >= 0 && cfg->listen4_fd >= 0)
		rr = loop_add_io(cfg->loop, cfg->listen4_fd, EPOLLIN, on_accept, r,
				 &r->listen_src[0]);
	if (rr >= 0 && cfg->listen6_fd >= 0)
		rr = loop_add_io(cfg->loop, cfg->listen6_fd, EPOLLIN, on_accept, r,
				 &r->listen_src[1]);
	if (rr < 0) {
		vnet_relay_free(r);
		return err_set_errno(reterr, rr, "watching the TUN");
	}
	loop_add_timer(cfg->loop, now_usec() + 5 * USEC_PER_SEC, on_expiry, r, &r->expiry);
	*ret = r;
	return 0;
}

static void free_entry(const struct vnet_tuple *t, uint16_t port, void *entry_userdata,
		       void *userdata)
{
	on_expired(t, port, entry_userdata, userdata);
}

void vnet_relay_free(struct vnet_relay *r)
{
	if (!r)
		return;
	loop_source_free(r->tun_src);
	loop_source_free(r->listen_src[0]);
	loop_source_free(r->listen_src[1]);
	loop_source_free(r->expiry);
	vnet_nat_expire(r->nat, IPPROTO_TCP, USEC_INFINITY, free_entry, r);
	vnet_nat_expire(r->nat, IPPROTO_UDP, USEC_INFINITY, free_entry, r);
	sweep_dead(r, USEC_INFINITY, true);
	vnet_nat_free(r->nat);
	free(r);
}
