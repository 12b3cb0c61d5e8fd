/* The app's loopback (mirrord's outgoing `ignore_localhost`, research/
 * mirrord.md §4.3): a connection to 127.0.0.0/8 stays on the app's own
 * loopback only when the app listens on that port; otherwise it goes to the
 * pod's loopback (its sidecars), or, with ignore_localhost, to this host's.
 *
 * In the app's namespace, policy routing sends 127.0.0.0/8 to the TUN
 * (route_localnet lets the rewritten answers in), and one pair of rules per
 * port the app listens on keeps that port on lo:
 *
 *     10   to 127/8 ipproto P dport Q lookup local       (clients of the app)
 *     10   from 127/8 to 127/8 ipproto P sport Q lookup local (its answers)
 *     50   to 127/8 lookup main                          (main: default via TUN)
 *     100  lookup local                                  (moved from 0)
 *
 * The relay learns that the app listens when the first packet to such a
 * port comes out of the TUN: sock_diag answers exactly (the app's listen()
 * or bind() has returned before its client could connect), the rules go in,
 * and that first packet is written back into the TUN, where the kernel
 * delivers it to the app's socket like any packet for 127.0.0.1.
 * Exceptions whose socket is gone are swept every few seconds.
 *
 * IPv6 ::1 cannot take this path (the kernel drops ::1 arriving on any
 * device but lo, RFC 4291 §2.5.3), so ::1 stays the app's own loopback.
 */
#define LOG_TARGET "podenv::vnet"
#include <arpa/inet.h>
#include <errno.h>
#include <linux/fib_rules.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "vnet/vnet.h"

#define SWEEP_EVERY (3 * USEC_PER_SEC)
#define MAX_EXCEPTIONS 256

enum {
	PREF_EXCEPTION = 10,
	PREF_LOOPBACK_TUN = 50,
	PREF_LOCAL = 100,
};

struct exception {
	uint8_t proto;
	uint16_t port;
};

struct vnet_loopback {
	struct loop *loop;
	int rtnl_fd;
	int diag_fd;
	struct loop_source *sweep;
	uint32_t seq;
	size_t n;
	struct exception v[MAX_EXCEPTIONS];
};

/* --- rtnetlink: policy rules ------------------------------------------------------------- */

struct rule_spec {
	uint32_t pref;
	uint8_t table;
	uint8_t dst_len; /* 0: any destination, else 127.0.0.0/dst_len */
	uint8_t src_len;
	uint8_t proto; /* 0: any */
	uint16_t sport, dport;
};

static void put_attr(struct nlmsghdr *h, uint16_t type, const void *data, size_t len)
{
	struct nlattr *a = (void *)((uint8_t *)h + NLMSG_ALIGN(h->nlmsg_len));

	a->nla_type = type;
	a->nla_len = (uint16_t)(NLA_HDRLEN + len);
	memcpy((uint8_t *)a + NLA_HDRLEN, data, len);
	h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + NLA_ALIGN(a->nla_len);
}

/* Sends one request on a netlink socket and waits for its ack. */
static int nl_request(int fd, uint32_t *seq, struct nlmsghdr *h)
{
	uint8_t ans[4096];

	h->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	h->nlmsg_seq = ++*seq;
	if (send(fd, h, h->nlmsg_len, 0) < 0)
		return -errno;
	for (;;) {
		ssize_t n = recv(fd, ans, sizeof(ans), 0);
		if (n < 0)
			return errno == EINTR ? -EINTR : -errno;
		for (struct nlmsghdr *a = (void *)ans; NLMSG_OK(a, (size_t)n);
		     a = NLMSG_NEXT(a, n)) {
			if (a->nlmsg_seq != *seq || a->nlmsg_type != NLMSG_ERROR)
				continue;
			return ((struct nlmsgerr *)NLMSG_DATA(a))->error;
		}
	}
}

static int rule_change(int fd, uint32_t *seq, bool add, const struct rule_spec *s)
{
	union {
		struct nlmsghdr h;
		uint8_t b[256];
	} m = { 0 };
	struct fib_rule_hdr *frh = NLMSG_DATA(&m.h);
	uint8_t loopnet[4] = { 127, 0, 0, 0 };
	uint32_t pref = s->pref, table = s->table;

	m.h.nlmsg_len = NLMSG_LENGTH(sizeof(*frh));
	m.h.nlmsg_type = add ? RTM_NEWRULE : RTM_DELRULE;
	m.h.nlmsg_flags = add ? NLM_F_CREATE | NLM_F_EXCL : 0;
	frh->family = AF_INET;
	frh->action = FR_ACT_TO_TBL;
	frh->table = s->table;
	frh->dst_len = s->dst_len;
	frh->src_len = s->src_len;
	put_attr(&m.h, FRA_PRIORITY, &pref, sizeof(pref));
	put_attr(&m.h, FRA_TABLE, &table, sizeof(table));
	if (s->dst_len)
		put_attr(&m.h, FRA_DST, loopnet, sizeof(loopnet));
	if (s->src_len)
		put_attr(&m.h, FRA_SRC, loopnet, sizeof(loopnet));
	if (s->proto)
		put_attr(&m.h, FRA_IP_PROTO, &s->proto, 1);
	if (s->sport) {
		struct fib_rule_port_range r = { s->sport, s->sport };
		put_attr(&m.h, FRA_SPORT_RANGE, &r, sizeof(r));
	}
	if (s->dport) {
		struct fib_rule_port_range r = { s->dport, s->dport };
		put_attr(&m.h, FRA_DPORT_RANGE, &r, sizeof(r));
	}
	return nl_request(fd, seq, &m.h);
}

int vnet_loopback_route_setup(int rtnl_fd, struct err *reterr)
{
	uint32_t seq = 0;
	const struct rule_spec local_moved = { .pref = PREF_LOCAL, .table = RT_TABLE_LOCAL };
	const struct rule_spec local_first = { .pref = 0, .table = RT_TABLE_LOCAL };
	const struct rule_spec to_tun = { .pref = PREF_LOOPBACK_TUN,
					  .table = RT_TABLE_MAIN,
					  .dst_len = 8 };
	int r;

	/* The local table must be consulted after the 127/8 rule, so its
	 * rule moves from priority 0 (added first: never a moment without). */
	r = rule_change(rtnl_fd, &seq, true, &local_moved);
	if (r < 0)
		return err_set_errno(reterr, r, "adding the local routing rule at priority %d",
				     PREF_LOCAL);
	r = rule_change(rtnl_fd, &seq, false, &local_first);
	if (r < 0)
		return err_set_errno(reterr, r, "moving the local routing rule");
	r = rule_change(rtnl_fd, &seq, true, &to_tun);
	if (r < 0)
		return err_set_errno(reterr, r, "routing 127.0.0.0/8 through the TUN");
	return 0;
}

static int exception_change(struct vnet_loopback *lb, bool add, uint8_t proto, uint16_t port)
{
	const struct rule_spec to = { .pref = PREF_EXCEPTION, .table = RT_TABLE_LOCAL,
				      .dst_len = 8, .proto = proto, .dport = port };
	const struct rule_spec from = { .pref = PREF_EXCEPTION, .table = RT_TABLE_LOCAL,
					.dst_len = 8, .src_len = 8, .proto = proto,
					.sport = port };
	int r1 = rule_change(lb->rtnl_fd, &lb->seq, add, &to);
	int r2 = rule_change(lb->rtnl_fd, &lb->seq, add, &from);

	if (add && (r1 == -EEXIST))
		r1 = 0;
	if (add && (r2 == -EEXIST))
		r2 = 0;
	return r1 < 0 ? r1 : r2;
}

/* --- sock_diag: does the app listen on this port? ---------------------------------------- */

static bool is_loopback_or_any(uint8_t family, const uint32_t src[4], bool v6only)
{
	const uint8_t *b = (const uint8_t *)src;
	static const uint8_t zero[16], mapped_prefix[12] = { [10] = 0xff, [11] = 0xff };

	if (family == AF_INET)
		return src[0] == 0 || b[0] == 127;
	if (!memcmp(b, zero, 16))
		return !v6only; /* [::] takes IPv4 too unless IPV6_V6ONLY */
	return !memcmp(b, mapped_prefix, 12) && (b[12] == 127 || !memcmp(b + 12, zero, 4));
}

struct port_query {
	bool found;
};

static void match_loopback(const struct inet_diag_msg *m, size_t len, void *userdata)
{
	struct port_query *q = userdata;
	int alen = (int)(len - sizeof(*m));
	bool v6only = false;

	for (const struct rtattr *a = (const void *)(m + 1); RTA_OK(a, alen); a = RTA_NEXT(a, alen))
		if (a->rta_type == INET_DIAG_SKV6ONLY)
			v6only = *(const uint8_t *)RTA_DATA(a);
	if (is_loopback_or_any(m->idiag_family, m->id.idiag_src, v6only))
		q->found = true;
}

/* 1 when a socket of the app's in `family` is bound to port (listening, for
 * TCP; unconnected, for UDP) on an address that takes 127.0.0.1. */
static int diag_find(struct vnet_loopback *lb, uint8_t family, uint8_t proto, uint16_t port)
{
	struct port_query q = { false };
	uint32_t states = proto == IPPROTO_TCP ? 1u << 10 /* LISTEN */ : 1u << 7 /* unconnected */;
	int r = vnet_diag_dump(lb->diag_fd, &lb->seq, family, proto, states, port, match_loopback, &q);

	return r < 0 ? r : q.found;
}

static bool app_listens(struct vnet_loopback *lb, uint8_t proto, uint16_t port)
{
	int r = diag_find(lb, AF_INET, proto, port);

	if (r == 0)
		r = diag_find(lb, AF_INET6, proto, port);
	if (r < 0)
		log_debug("sock_diag for port %u: %s", port, strerror(-r));
	return r > 0;
}

/* --- exceptions ---------------------------------------------------------------------------- */

static struct exception *find_exception(struct vnet_loopback *lb, uint8_t proto, uint16_t port)
{
	for (size_t i = 0; i < lb->n; i++)
		if (lb->v[i].proto == proto && lb->v[i].port == port)
			return &lb->v[i];
	return NULL;
}

static int on_sweep(struct loop_source *s, usec_t now, void *userdata)
{
	struct vnet_loopback *lb = userdata;

	for (size_t i = 0; i < lb->n;) {
		struct exception *e = &lb->v[i];
		if (app_listens(lb, e->proto, e->port)) {
			i++;
			continue;
		}
		log_debug("the app no longer listens on %s port %u: loopback goes out again",
			  e->proto == IPPROTO_TCP ? "TCP" : "UDP", e->port);
		exception_change(lb, false, e->proto, e->port);
		*e = lb->v[--lb->n];
	}
	loop_timer_set(s, lb->n ? now + SWEEP_EVERY : USEC_INFINITY);
	return 0;
}

bool vnet_loopback_known_local(const struct vnet_loopback *lb, uint8_t proto, uint16_t port)
{
	return lb && find_exception((struct vnet_loopback *)lb, proto, port);
}

bool vnet_loopback_is_local(struct vnet_loopback *lb, uint8_t proto, uint16_t port)
{
	int r;

	if (!lb)
		return false;
	if (find_exception(lb, proto, port))
		return true;
	if (!app_listens(lb, proto, port))
		return false;
	if (lb->n == MAX_EXCEPTIONS) {
		log_warn("the app listens on more than %d loopback ports: port %u is not kept local",
			 MAX_EXCEPTIONS, port);
		return false;
	}
	r = exception_change(lb, true, proto, port);
	if (r < 0) {
		log_warn("cannot keep %s port %u on the app's loopback: %s",
			 proto == IPPROTO_TCP ? "TCP" : "UDP", port, strerror(-r));
		return false;
	}
	log_debug("the app listens on %s port %u: loopback connections to it stay local",
		  proto == IPPROTO_TCP ? "TCP" : "UDP", port);
	lb->v[lb->n++] = (struct exception){ proto, port };
	if (lb->n == 1)
		loop_timer_set(lb->sweep, now_usec() + SWEEP_EVERY);
	return true;
}

int vnet_loopback_new(struct loop *loop, int rtnl_fd, int diag_fd, struct vnet_loopback **ret,
		      struct err *reterr)
{
	struct vnet_loopback *lb = xcalloc(1, sizeof(*lb));
	int r;

	lb->loop = loop;
	lb->rtnl_fd = rtnl_fd;
	lb->diag_fd = diag_fd;
	r = loop_add_timer(loop, USEC_INFINITY, on_sweep, lb, &lb->sweep);
	if (r < 0) {
		free(lb);
		return err_set_errno(reterr, r, "arming the loopback sweep");
	}
	*ret = lb;
	return 0;
}

void vnet_loopback_free(struct vnet_loopback *lb)
{
	if (!lb)
		return;
	loop_source_free(lb->sweep);
	free(lb);
}

bool vnet_addr_is_loopback4(const struct vnet_tuple *t)
{
	return t->family == 4 && t->dst.b[0] == 127;
}
