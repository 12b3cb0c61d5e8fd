/* The app's network: glue between the relay (vnet), the DNS server (dns)
 * and the configuration's filters (feature.network.outgoing and .dns,
 * mirrord's semantics: research/mirrord.md §4.3, §4.4).
 */
#define LOG_TARGET "podenv::net"
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <linux/netlink.h>
#include <sys/socket.h>

#include "common/log.h"
#include "common/map.h"
#include "dns/dns.h"
#include "launcher/net.h"
#include "launcher/trace.h"
#include "vnet/vnet.h"

/* One address a name resolved to (the outgoing filter matches names by
 * the addresses their answers gave). */
struct name_addr {
	struct vnet_addr addr;
	uint8_t family;
	char *name;
	struct name_addr *next; /* same hash */
};

struct net_names {
	struct map map; /* hash(family, addr) -> chain */
	size_t n;
	char **search; /* the pod's search domains */
};

struct net {
	struct session *s;
	int fds[NET_NFDS];
	struct vnet_relay *relay;
	struct vnet_loopback *loopback;
	struct dns_server *dns;
	struct net_names names;
};

/* --- the namespace side (child) --------------------------------------------------- */

static int bound_socket(int family, int type, const char *addr, uint16_t port, struct err *e)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	int fd, one = 1;

	if (family == AF_INET) {
		struct sockaddr_in *in = (void *)&ss;
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		inet_pton(AF_INET, addr, &in->sin_addr);
		sl = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (void *)&ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		inet_pton(AF_INET6, addr, &in6->sin6_addr);
		sl = sizeof(*in6);
	}
	fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set_errno(e, -errno, "socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	/* IP_FREEBIND: the IPv6 address may still be settling. */
	setsockopt(fd, family == AF_INET ? IPPROTO_IP : IPPROTO_IPV6,
		   family == AF_INET ? IP_FREEBIND : IPV6_FREEBIND, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 ||
	    (type == SOCK_STREAM && listen(fd, 4096) < 0)) {
		int r = err_set_errno(e, -errno, "binding %s port %u", addr, port);
		close(fd);
		return r;
	}
	return fd;
}

int net_child_setup(int fds[NET_NFDS], struct err *reterr)
{
	struct vnet_netns_cfg cfg = {
		.name = NET_TUN_NAME,
		.mtu = NET_TUN_MTU,
		.addr4 = NET_ADDR4,
		.plen4 = NET_PLEN4,
		.addr6 = NET_ADDR6,
		.plen6 = NET_PLEN6,
	};
	struct err ignored;
	int r;

	for (int i = 0; i < NET_NFDS; i++)
		fds[i] = -1;
	r = vnet_netns_setup(&cfg, &fds[NET_FD_TUN], reterr);
	if (r < 0 && cfg.addr6) {
		/* A kernel without IPv6: go on with IPv4 only. */
		cfg.addr6 = NULL;
		r = vnet_netns_setup(&cfg, &fds[NET_FD_TUN], reterr);
	}
	if (r < 0)
		return r;
	fds[NET_FD_LISTEN4] = r = bound_socket(AF_INET, SOCK_STREAM, NET_ADDR4, 0, reterr);
	if (r < 0)
		return r;
	if (cfg.addr6)
		fds[NET_FD_LISTEN6] = bound_socket(AF_INET6, SOCK_STREAM, NET_ADDR6, 0, &ignored);
	fds[NET_FD_DNS_UDP] = r = bound_socket(AF_INET, SOCK_DGRAM, NET_ADDR4, 53, reterr);
	if (r < 0)
		return r;
	fds[NET_FD_DNS_TCP] = r = bound_socket(AF_INET, SOCK_STREAM, NET_ADDR4, 53, reterr);
	if (r < 0)
		return r;
	/* Netlink sockets belong to the namespace they are made in: the
	 * launcher keeps these two to manage the app's loopback. */
	fds[NET_FD_RTNL] = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	fds[NET_FD_DIAG] = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fds[NET_FD_RTNL] < 0 || fds[NET_FD_DIAG] < 0)
		return err_set_errno(reterr, -errno, "opening netlink sockets in the app's network");
	return vnet_loopback_route_setup(fds[NET_FD_RTNL], reterr);
}

/* --- names --------------------------------------------------------------------------- */

static uint64_t addr_hash(uint8_t family, const struct vnet_addr *a)
{
	uint64_t h = 1469598103934665603ULL ^ family;

	for (size_t i = 0; i < sizeof(a->b); i++)
		h = (h ^ a->b[i]) * 1099511628211ULL;
	return h ? h : 1;
}

static void names_add(struct net_names *nm, uint8_t family, const void *addr, const char *name)
{
	struct vnet_addr a = { 0 };
	uint64_t h;

	memcpy(a.b, addr, family == 4 ? 4 : 16);
	h = addr_hash(family, &a);
	for (struct name_addr *e = map_get(&nm->map, h); e; e = e->next)
		if (e->family == family && !memcmp(&e->addr, &a, sizeof(a)) &&
		    !strcasecmp(e->name, name))
			return;
	if (nm->n > 65536)
		return; /* bounded: the oldest answers stay */
	struct name_addr *e = xcalloc(1, sizeof(*e));
	e->addr = a;
	e->family = family;
	e->name = xstrdup(name);
	e->next = map_get(&nm->map, h);
	map_put(&nm->map, h, e);
	nm->n++;
}

/* Every name an answer gave for each address: the question's name and
 * the CNAME chain. */
static void on_resolved(void *userdata, const struct dns_msg *m)
{
	struct net *n = userdata;

	if (m->qdcount != 1)
		return;
	for (uint16_t i = 0; i < m->ancount; i++) {
		const struct dns_rr *rr = &m->an[i];
		if (rr->kind == DNS_RDATA_A)
			names_add(&n->names, 4, rr->u.a, m->qd[0].name);
		else if (rr->kind == DNS_RDATA_AAAA)
			names_add(&n->names, 6, rr->u.aaaa, m->qd[0].name);
	}
}

/* Does name (an FQDN the resolver asked) mean entry name `want`: the same,
 * or want expanded by one of the pod's search domains (the app asked for
 * "api", its resolver asked for "api.default.svc.cluster.local"). */
static bool name_matches(const struct net_names *nm, const char *name, const char *want)
{
	size_t wl = strlen(want), nl = strlen(name);

	while (nl && name[nl - 1] == '.')
		nl--;
	if (nl == wl && !strncasecmp(name, want, wl))
		return true;
	if (nl <= wl + 1 || strncasecmp(name, want, wl) != 0 || name[wl] != '.')
		return false;
	for (char **d = nm ? nm->search : NULL; d && *d; d++)
		if (strlen(*d) == nl - wl - 1 && !strncasecmp(name + wl + 1, *d, nl - wl - 1))
			return true;
	return false;
}

/* Does the destination carry name `want`: in a session, did a DNS answer
 * give its address for that name; in explain, is it that name. */
static bool dest_has_name(const struct net_names *nm, const struct net_dest *d, const char *want)
{
	struct vnet_addr a = { 0 };
	uint8_t family = d->family == AF_INET ? 4 : 6;

	if (d->name)
		return name_matches(nm, d->name, want);
	if (!nm || !d->family)
		return false;
	memcpy(a.b, d->addr, family == 4 ? 4 : 16);
	for (struct name_addr *e = map_get(&nm->map, addr_hash(family, &a)); e; e = e->next)
		if (e->family == family && !memcmp(&e->addr, &a, sizeof(a)) &&
		    name_matches(nm, e->name, want))
			return true;
	return false;
}

/* --- decisions ----------------------------------------------------------------------- */

/* 1: matches, 0: does not, -1: cannot tell without resolving (explain). */
static int entry_matches(const struct net_names *nm, const struct cfg_net_entry *e,
			 const struct net_dest *d)
{
	enum cfg_proto proto = d->proto == IPPROTO_TCP ? CFG_PROTO_TCP : CFG_PROTO_UDP;

	if (e->kind == CFG_ADDR_NAME) {
		if (e->proto != CFG_PROTO_ANY && e->proto != proto)
			return 0;
		if (e->port && e->port != d->port)
			return 0;
		if (!d->name && !nm && d->family)
			return -1; /* explain, an address: only DNS answers could tell */
		return dest_has_name(nm, d, e->name);
	}
	if (!d->family) {
		/* explain, a name: an address entry matches by what it resolves to */
		if (e->kind == CFG_ADDR_ANY)
			return cfg_net_entry_match(e, proto, AF_INET, d->addr, d->port);
		return (e->proto == CFG_PROTO_ANY || e->proto == proto) &&
				       (!e->port || e->port == d->port)
			       ? -1
			       : 0;
	}
	return cfg_net_entry_match(e, proto, d->family, d->addr, d->port);
}

static void filter_decide(const struct cfg_net_filter *f, const struct net_names *nm,
			  const struct net_dest *d, const char *dns_name, struct net_decision *ret)
{
	ret->side = f->side;
	if (f->side == CFG_FILTER_NONE) {
		ret->rule = NET_RULE_NO_FILTER;
		ret->remote = true;
		return;
	}
	for (size_t i = 0; i < f->n; i++) {
		const struct cfg_net_entry *e = &f->v[i];
		int m;
		if (dns_name) /* the DNS filter: only its name entries decide */
			m = e->kind == CFG_ADDR_NAME && name_matches(nm, dns_name, e->name);
		else
			m = entry_matches(nm, e, d);
		if (m < 0)
			ret->unchecked++;
		if (m > 0) {
			ret->rule = NET_RULE_ENTRY;
			ret->index = (int)i;
			ret->entry = e;
			ret->remote = f->side == CFG_FILTER_REMOTE;
			return;
		}
	}
	ret->rule = NET_RULE_NO_MATCH;
	ret->remote = f->side == CFG_FILTER_LOCAL;
}

void net_flow_decide(const struct cfg_outgoing *o, const struct net_names *names,
		     const struct net_dest *d, struct net_decision *ret)
{
	*ret = (struct net_decision){ .proto = d->proto, .index = -1, .dest_name = d->name };
	if (o->ignore_localhost && d->family == AF_INET && d->addr[0] == 127) {
		ret->rule = NET_RULE_LOCALHOST;
		return;
	}
	if ((d->proto == IPPROTO_TCP && !o->tcp) || (d->proto == IPPROTO_UDP && !o->udp)) {
		ret->rule = NET_RULE_OFF;
		return;
	}
	filter_decide(&o->filter, names, d, NULL, ret);
}

void net_dns_decide(const struct cfg_dns *dns, const struct net_names *names, const char *name,
		    struct net_decision *ret)
{
	*ret = (struct net_decision){ .dns = true, .index = -1, .dest_name = name };
	if (!dns->enabled) {
		ret->rule = NET_RULE_OFF;
		return;
	}
	filter_decide(&dns->filter, names, NULL, name, ret);
}

const char *net_verdict_name(const struct net_decision *d)
{
	return d->remote ? "remote" : "local";
}

int net_decision_format(const struct net_decision *d, char *buf, size_t size)
{
	const char *field = d->dns ? "feature.network.dns" : "feature.network.outgoing";
	const char *side = d->side == CFG_FILTER_LOCAL ? "local" : "remote";
	const struct cfg_net_entry *e = d->entry;
	_cleanup_free_ char *s = NULL;
	struct buf b;

	buf_init(&b);
	switch (d->rule) {
	case NET_RULE_OFF:
		buf_printf(&b, "%s.%s: false", field,
			   d->dns ? "enabled" : d->proto == IPPROTO_TCP ? "tcp" : "udp");
		break;
	case NET_RULE_LOCALHOST:
		buf_printf(&b, "%s.ignore_localhost: true (this host's loopback)", field);
		break;
	case NET_RULE_NO_FILTER:
		buf_printf(&b, "%s: no filter: everything remote", field);
		break;
	case NET_RULE_ENTRY:
		buf_printf(&b, "%s.filter.%s[%d] \"%s\"", field, side, d->index, e->text);
		if (e->kind == CFG_ADDR_NAME && !d->dns)
			buf_printf(&b,
				   d->dest_name ? " (would match connections to the addresses %s "
						  "resolves to)"
						: " (an address the app's DNS answers gave for %s)",
				   e->name);
		break;
	case NET_RULE_NO_MATCH:
		buf_printf(&b, "%s.filter.%s: no entry matches", field, side);
		if (d->unchecked)
			buf_printf(&b,
				   d->dest_name
					   ? " (%zu address entr%s would be checked against the "
					     "addresses %s resolves to)"
					   : " (%zu name entr%s would match if a name the app resolved "
					     "gave this address%s)",
				   d->unchecked, d->unchecked == 1 ? "y" : "ies",
				   d->dest_name ? d->dest_name : "");
		break;
	}
	s = buf_steal(&b, NULL);
	return snprintf(buf, size, "%s", s);
}

/* The relay's route callback. */
static int route(void *userdata, const struct vnet_tuple *t)
{
	struct net *n = userdata;
	struct net_dest d = { .proto = t->proto, .port = t->dport };
	struct net_decision dec;

	d.family = t->family == 4 ? AF_INET : AF_INET6;
	memcpy(d.addr, t->dst.b, t->family == 4 ? 4 : 16);
	net_flow_decide(&n->s->cfg->feature.network.outgoing, &n->names, &d, &dec);
	if (n->s->trace)
		trace_flow(n->s->trace, &d, &dec);
	return dec.remote ? VNET_ROUTE_REMOTE : VNET_ROUTE_LOCAL;
}

/* The DNS server's callback. */
static bool resolve_local(void *userdata, const char *name)
{
	struct net *n = userdata;
	struct net_decision dec;

	net_dns_decide(&n->s->cfg->feature.network.dns, &n->names, name, &dec);
	if (n->s->trace)
		trace_dns(n->s->trace, name, &dec);
	return !dec.remote;
}

struct udp_answer {
	struct net *n;
	struct vnet_tuple t;
};

static void on_intercepted_answer(void *userdata, const uint8_t *a, size_t len)
{
	struct udp_answer *u = userdata;

	if (u->n->relay)
		vnet_relay_udp_reply(u->n->relay, &u->t, a, len);
	free(u);
}

static void on_dns_query(void *userdata, const struct vnet_tuple *t, const uint8_t *q, size_t len)
{
	struct net *n = userdata;
	struct udp_answer *u = xcalloc(1, sizeof(*u));

	u->n = n;
	u->t = *t;
	if (dns_server_query(n->dns, q, len, 512, on_intercepted_answer, u) < 0)
		free(u); /* not a query: dropped, no answer will come */
}

/* --- set-up ------------------------------------------------------------------------------ */

static void parse_addr(const char *text, int af, struct vnet_addr *a)
{
	memset(a, 0, sizeof(*a));
	inet_pton(af, text, a->b);
}

static char **search_domains(const char *resolv)
{
	char **v = xcalloc(8, sizeof(char *));
	size_t n = 0;

	for (const char *line = resolv; line && *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		if (len > 7 && (!strncmp(line, "search ", 7) || !strncmp(line, "domain ", 7))) {
			_cleanup_free_ char *copy = xstrndup(line + 7, len - 7);
			char *save = NULL;
			for (char *w = strtok_r(copy, " \t", &save); w && n < 7;
			     w = strtok_r(NULL, " \t", &save))
				v[n++] = xstrdup(w);
		}
		line = end ? end + 1 : NULL;
	}
	return v;
}

char *net_resolv_conf(const char *pod)
{
	struct buf b;

	buf_init(&b);
	buf_printf(&b, "# podenv: the pod's resolver settings, with podenv's DNS server\n"
		       "nameserver %s\n",
		   NET_ADDR4);
	for (const char *line = pod; line && *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		if ((len > 7 && !strncmp(line, "search ", 7)) ||
		    (len > 7 && !strncmp(line, "domain ", 7)) ||
		    (len > 8 && !strncmp(line, "options ", 8)))
			buf_printf(&b, "%.*s\n", (int)len, line);
		line = end ? end + 1 : NULL;
	}
	return buf_steal(&b, NULL);
}

int net_start(struct session *s, int fds[NET_NFDS], struct net **ret, struct err *reterr)
{
	struct net *n = xcalloc(1, sizeof(*n));
	int r;

	n->s = s;
	memcpy(n->fds, fds, sizeof(n->fds));
	n->names.search = search_domains(s->resolv_conf);
	struct dns_server_cfg dc = {
		.loop = s->loop,
		.client = s->client,
		.udp_fd = fds[NET_FD_DNS_UDP],
		.tcp_fd = fds[NET_FD_DNS_TCP],
		.resolve_local = resolve_local,
		.resolved = on_resolved,
		.userdata = n,
	};
	r = dns_server_new(&dc, &n->dns, reterr);
	if (r < 0)
		goto fail;
	struct vnet_relay_cfg rc = {
		.loop = s->loop,
		.client = s->client,
		.tun_fd = fds[NET_FD_TUN],
		.listen4_fd = fds[NET_FD_LISTEN4],
		.listen6_fd = fds[NET_FD_LISTEN6],
		.route = route,
		.dns_query = on_dns_query,
		.userdata = n,
	};
	parse_addr(NET_ADDR4, AF_INET, &rc.addr4);
	parse_addr(NET_PEER4, AF_INET, &rc.peer4);
	parse_addr(NET_ADDR6, AF_INET6, &rc.addr6);
	parse_addr(NET_PEER6, AF_INET6, &rc.peer6);
	r = vnet_loopback_new(s->loop, fds[NET_FD_RTNL], fds[NET_FD_DIAG], &n->loopback, reterr);
	if (r < 0)
		goto fail;
	rc.loopback = n->loopback;
	r = vnet_relay_new(&rc, &n->relay, reterr);
	if (r < 0)
		goto fail;
	*ret = n;
	return 0;
fail:
	net_free(n);
	return r;
}

void net_free(struct net *n)
{
	uint64_t k;
	void *v;

	if (!n)
		return;
	vnet_relay_free(n->relay);
	n->relay = NULL;
	vnet_loopback_free(n->loopback);
	dns_server_free(n->dns);
	/* The last close of a TUN fd tears the device down and waits for RCU
	 * grace periods (~20 ms): leave that to a short-lived child, so the
	 * user's command does not wait for it. */
	if (n->fds[NET_FD_TUN] >= 0) {
		pid_t pid = fork();
		if (pid == 0) {
			/* Keep only the TUN fd; the parent's copy goes first. */
			close_range(3, (unsigned)n->fds[NET_FD_TUN] - 1, 0);
			close_range((unsigned)n->fds[NET_FD_TUN] + 1, ~0U, 0);
			_exit(0);
		}
	}
	for (int i = 0; i < NET_NFDS; i++)
		if (n->fds[i] >= 0)
			close(n->fds[i]);
	for (size_t pos = 0; map_next(&n->names.map, &pos, &k, &v);)
		for (struct name_addr *e = v, *nx; e; e = nx) {
			nx = e->next;
			free(e->name);
			free(e);
		}
	map_done(&n->names.map);
	for (char **d = n->names.search; d && *d; d++)
		free(*d);
	free(n->names.search);
	free(n);
}
