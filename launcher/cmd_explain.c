/* `podenv explain [CONFIG FLAGS] PATH|HOST[:PORT]|IP[:PORT]|URL...`: where
 * each file, name and connection would go in a session with this
 * configuration, and the rule that decides it.
 *
 * Pure configuration: no target, no agent. The decisions come from the
 * code the running session calls (vfs_route for files, net_flow_decide and
 * net_dns_decide for the network), and their text from the formatters the
 * --trace file uses, so explain and a session cannot disagree. What explain
 * cannot know without a session is said in the rule's text: which
 * addresses a name resolves to (a name entry "would match connections to
 * the addresses NAME resolves to").
 */
#define LOG_TARGET "podenv::explain"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/log.h"
#include "dns/dns.h"
#include "launcher/cli.h"
#include "launcher/net.h"
#include "launcher/sandbox.h"
#include "launcher/trace.h"
#include "vfs/vfs.h"

struct explain {
	const struct cfg *cfg;
	struct vfs_router *router;
	bool network; /* the app has a network namespace of its own */
};

static void explain_usage(FILE *f)
{
	fprintf(f,
		"Usage: podenv explain [OPTIONS] PATH|HOST[:PORT]|IP[:PORT]|URL...\n\n"
		"Says where each argument would go in a session with this configuration, and\n"
		"the rule that decides it, one line per decision:\n"
		"  file PATH: local|remote read-only|remote read-write|not found: RULE\n"
		"  dns NAME: remote|local: RULE\n"
		"  tcp|udp DEST: remote|local: RULE\n"
		"A PATH starts with / . or ~, or contains a /; it is taken as a read, and a\n"
		"second \"(write)\" line shows a write when that goes elsewhere. A bare HOST\n"
		"explains its DNS resolution; HOST:PORT and URLs (http://, https://,\n"
		"tcp://, udp://, ...) also the connection. Needs no target and no agent.\n\n"
		"Options (the configuration flags of `mirrord exec`):\n%s",
		cfg_source_flags_help());
}

/* --- files -------------------------------------------------------------------------- */

/* Makes path absolute (from cwd, ~ from $HOME) and removes ".", ".." and
 * repeated slashes, as the kernel hands paths to FUSE (symlinks are not
 * followed: each one is routed where the kernel meets it). */
static int absolute_path(const char *arg, char *out, size_t size)
{
	char buf[2 * VFS_PATH_MAX], cwd[VFS_PATH_MAX];
	const char *home = getenv("HOME");
	size_t n = 0;

	if (arg[0] == '~' && (arg[1] == '/' || !arg[1]) && home && *home)
		snprintf(buf, sizeof(buf), "%s/%s", home, arg + 1);
	else if (arg[0] == '/')
		snprintf(buf, sizeof(buf), "%s", arg);
	else if (getcwd(cwd, sizeof(cwd)))
		snprintf(buf, sizeof(buf), "%s/%s", cwd, arg);
	else
		return -errno;
	for (char *save = NULL, *c = strtok_r(buf, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (!strcmp(c, "."))
			continue;
		if (!strcmp(c, "..")) {
			while (n > 0 && out[n - 1] != '/')
				n--;
			if (n > 0)
				n--;
			continue;
		}
		if (n + 1 + strlen(c) + 1 > size)
			return -ENAMETOOLONG;
		out[n++] = '/';
		memcpy(out + n, c, strlen(c));
		n += strlen(c);
	}
	if (n == 0)
		out[n++] = '/';
	out[n] = '\0';
	return 0;
}

static int explain_file(struct explain *x, const char *arg)
{
	char path[VFS_PATH_MAX], rule[2][2 * VFS_PATH_MAX + 512];
	struct vfs_decision d[2];
	int r;

	r = absolute_path(arg, path, sizeof(path));
	for (int i = 0; i < 2 && r >= 0; i++) {
		r = vfs_route(x->router, path, i ? VFS_ROUTE_WRITE : 0, &d[i]);
		if (r >= 0)
			trace_file_rule(&d[i], rule[i], sizeof(rule[i]));
	}
	if (r < 0) {
		fprintf(stderr, "podenv: explain: %s: %s\n", arg, strerror(-r));
		return r;
	}
	printf("file %s: %s: %s\n", path, vfs_verdict_name(d[0].verdict), rule[0]);
	if (d[1].verdict != d[0].verdict || strcmp(rule[0], rule[1]) != 0)
		printf("file %s (write): %s: %s\n", path, vfs_verdict_name(d[1].verdict), rule[1]);
	return 0;
}

/* --- the network --------------------------------------------------------------------- */

static const struct {
	const char *scheme;
	uint16_t port;
} scheme_ports[] = {
	{"http", 80},	 {"https", 443},     {"ws", 80},	   {"wss", 443},
	{"ftp", 21},	 {"ssh", 22},	     {"smtp", 25},	   {"ldap", 389},
	{"ldaps", 636},	 {"postgres", 5432}, {"postgresql", 5432}, {"mysql", 3306},
	{"redis", 6379}, {"rediss", 6379},   {"mongodb", 27017},   {"amqp", 5672},
	{"amqps", 5671}, {"nats", 4222},     {"kafka", 9092},	   {"memcached", 11211},
	{"grpc", 443},	 {"dns", 53},
};

struct target {
	char host[DNS_NAME_STRLEN];
	uint16_t port; /* 0: none given */
	int proto;     /* IPPROTO_TCP or IPPROTO_UDP */
};

static int parse_port(const char *s, uint16_t *ret)
{
	char *end;
	unsigned long v;

	if (!*s)
		return -EINVAL;
	v = strtoul(s, &end, 10);
	if (*end || v == 0 || v > 65535)
		return -EINVAL;
	*ret = (uint16_t)v;
	return 0;
}

/* HOST, HOST:PORT, [V6]:PORT, a bare IPv6 address, or SCHEME://[USER@]HOST[:PORT][/...]. */
static int parse_target(const char *arg, struct target *t, const char **why)
{
	_cleanup_free_ char *copy = xstrdup(arg);
	char *s = copy, *sep = strstr(copy, "://"), *host, *port = NULL;
	const char *scheme = NULL;

	*t = (struct target){.proto = IPPROTO_TCP};
	if (sep) {
		*sep = '\0';
		scheme = copy;
		s = sep + 3;
		s[strcspn(s, "/?#")] = '\0';
		char *at = strrchr(s, '@');
		if (at)
			s = at + 1;
		if (!strcasecmp(scheme, "udp"))
			t->proto = IPPROTO_UDP;
	}
	if (*s == '[') {
		char *close = strchr(s, ']');
		if (!close || (close[1] && close[1] != ':'))
			return *why = "a bracketed IPv6 address needs its ]", -EINVAL;
		*close = '\0';
		host = s + 1;
		if (close[1] == ':')
			port = close + 2;
	} else if (strchr(s, ':') && strchr(s, ':') == strrchr(s, ':')) {
		host = s;
		port = strchr(s, ':');
		*port++ = '\0';
	} else {
		host = s; /* a name, an IPv4 address, or a bare IPv6 address */
	}
	if (!*host)
		return *why = "no host", -EINVAL;
	if (port && parse_port(port, &t->port) < 0)
		return *why = "the port must be a number from 1 to 65535", -EINVAL;
	if (!port && scheme) {
		for (size_t i = 0; i < ARRAY_SIZE(scheme_ports); i++)
			if (!strcasecmp(scheme, scheme_ports[i].scheme))
				t->port = scheme_ports[i].port;
		if (!t->port)
			return *why = "give a port: this scheme has no default port", -EINVAL;
	}
	if (snprintf(t->host, sizeof(t->host), "%s", host) >= (int)sizeof(t->host))
		return *why = "name too long", -EINVAL;
	return 0;
}

static void print_net(const char *kind, const char *what, const struct net_decision *d,
		      const char *note)
{
	char rule[1024];

	net_decision_format(d, rule, sizeof(rule));
	printf("%s %s: %s: %s%s\n", kind, what, net_verdict_name(d), rule, note ? note : "");
}

static bool has_port_entries(const struct cfg_net_filter *f)
{
	for (size_t i = 0; i < f->n; i++)
		if (f->v[i].port)
			return true;
	return false;
}

static void explain_flow(struct explain *x, const struct net_dest *dest)
{
	const struct cfg_outgoing *o = &x->cfg->feature.network.outgoing;
	const char *kind = dest->proto == IPPROTO_UDP ? "udp" : "tcp";
	char what[DNS_NAME_STRLEN + 16];
	struct net_decision d;

	trace_dest_format(dest, what, sizeof(what));
	if (dest->family == AF_INET6 && IN6_IS_ADDR_LOOPBACK((const struct in6_addr *)dest->addr)) {
		printf("%s %s: local: the app's loopback (IPv6 ::1 never leaves the app's "
		       "network)\n",
		       kind, what);
		return;
	}
	if (dest->family == AF_INET && dest->addr[0] == 127) {
		/* The session's order: the app's own listener first (the
		 * relay asks sock_diag), then net_flow_decide. */
		net_flow_decide(o, NULL, dest, &d);
		print_net(kind, what, &d,
			  d.remote ? " (the pod's loopback), unless the app listens on this port: "
				     "then the app's own loopback"
				   : ", unless the app listens on this port: then the app's own "
				     "loopback");
		return;
	}
	if (x->network && dest->proto == IPPROTO_UDP && dest->port == 53) {
		printf("%s %s: dns: UDP to port 53 goes to podenv's DNS server, whatever the "
		       "address (each name then follows feature.network.dns)\n",
		       kind, what);
		return;
	}
	net_flow_decide(o, NULL, dest, &d);
	print_net(kind, what, &d,
		  !dest->port && d.rule == NET_RULE_NO_MATCH && has_port_entries(&o->filter)
			  ? " (any port: entries with a port were not considered; give a port)"
			  : NULL);
}

static int explain_target(struct explain *x, const char *arg)
{
	struct net_dest dest = {0};
	struct target t;
	char name[DNS_NAME_STRLEN];
	const char *why = NULL;

	if (parse_target(arg, &t, &why) < 0) {
		fprintf(stderr, "podenv: explain: %s: %s\n", arg, why);
		return -EINVAL;
	}
	dest.proto = t.proto;
	dest.port = t.port;
	if (inet_pton(AF_INET, t.host, dest.addr) == 1) {
		dest.family = AF_INET;
	} else if (inet_pton(AF_INET6, t.host, dest.addr) == 1) {
		dest.family = AF_INET6;
	} else {
		struct net_decision d;
		if (dns_name_normalize(t.host, name, sizeof(name)) < 0) {
			fprintf(stderr,
				"podenv: explain: %s: not a path, an address or a host name\n",
				arg);
			return -EINVAL;
		}
		net_dns_decide(&x->cfg->feature.network.dns, NULL, name, &d);
		print_net("dns", name, &d, NULL);
		if (!t.port)
			return 0;
		dest.name = name;
	}
	explain_flow(x, &dest);
	return 0;
}

static bool is_path(const char *arg)
{
	return arg[0] == '/' || arg[0] == '.' || arg[0] == '~' ||
	       (strchr(arg, '/') && !strstr(arg, "://"));
}

int cli_explain_main(int argc, char **argv)
{
	struct explain x = {0};
	struct cfg *cfg = NULL;
	char cwd[VFS_PATH_MAX];
	struct err e;
	int idx = 1, r, status = 0;

	err_clear(&e);
	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		explain_usage(stdout);
		return 0;
	}
	r = session_load_config(argc, argv, &idx, false, &cfg, &e);
	if (r < 0) {
		fprintf(stderr, "podenv: %s\n", e.msg);
		return 2;
	}
	if (idx >= argc) {
		fprintf(stderr, "podenv: explain: nothing to explain (podenv explain [OPTIONS] "
				"PATH|HOST[:PORT]|URL...)\n");
		cfg_free(cfg);
		return 2;
	}
	struct vfs_router_env renv;
	sandbox_router_env(cfg, getcwd(cwd, sizeof(cwd)), NULL, &renv);
	/* A session without a target runs only against connect_tcp (and is then
	 * targetless); without either, explain a session with a target. */
	if (cfg->target.kind == CFG_TARGET_NONE && !cfg->connect_tcp)
		renv.targetless = false;
	r = vfs_router_new(cfg, &renv, &x.router, &e);
	if (r < 0) {
		fprintf(stderr, "podenv: explain: %s\n", e.msg);
		cfg_free(cfg);
		return 1;
	}
	x.cfg = cfg;
	/* As sandbox_run decides whether the app gets a network of its own. */
	const struct cfg_network *nw = &cfg->feature.network;
	x.network = nw->outgoing.tcp || nw->outgoing.udp || nw->dns.enabled;
	for (int i = idx; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			continue;
		r = is_path(argv[i]) ? explain_file(&x, argv[i]) : explain_target(&x, argv[i]);
		if (r < 0)
			status = 2;
	}
	fflush(stdout);
	vfs_router_free(x.router);
	cfg_free(cfg);
	return status;
}
