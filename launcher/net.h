/* The app's network (issue: vnet + dns): the relay, the DNS server, and
 * the outgoing / DNS filters that decide local or remote per flow and per
 * name. Private to launcher/; loop thread only.
 */
#ifndef PODENV_LAUNCHER_NET_H
#define PODENV_LAUNCHER_NET_H

#include <stdint.h>

#include "config/config.h"
#include "launcher/session.h"

/* The addresses of the app's TUN (research/vnet.md §1.2). */
#define NET_TUN_NAME "podenv0"
#define NET_TUN_MTU 65520
#define NET_ADDR4 "198.18.0.1"
#define NET_PEER4 "198.18.0.2"
#define NET_PLEN4 30
#define NET_ADDR6 "fd50:6f64:656e::1"
#define NET_PEER6 "fd50:6f64:656e::2"
#define NET_PLEN6 126

/* The fds the sandbox child creates inside the app's namespace. */
enum {
	NET_FD_TUN,
	NET_FD_LISTEN4,
	NET_FD_LISTEN6,
	NET_FD_DNS_UDP,
	NET_FD_DNS_TCP,
	NET_FD_RTNL, /* rtnetlink and sock_diag: the app's loopback (vnet/loopback.c) */
	NET_FD_DIAG,
	NET_NFDS
};

struct net;

/* Builds the namespace side, in the sandbox child (already in its new
 * network namespace): TUN, listeners, DNS sockets. fds[] get the new fds
 * (-1 for the IPv6 listener when IPv6 is unavailable). */
int net_child_setup(int fds[NET_NFDS], struct err *reterr);

/* Starts relaying and answering DNS for the app (parent). Takes ownership
 * of fds. */
int net_start(struct session *s, int fds[NET_NFDS], struct net **ret, struct err *reterr);
void net_free(struct net *n);

/* --- decisions (shared by the running session and `podenv explain`) ------------ */

/* Where a new flow goes. */
struct net_dest {
	int proto;	  /* IPPROTO_TCP or IPPROTO_UDP */
	int family;	  /* AF_INET, AF_INET6, or 0 when only a name is known (explain) */
	uint8_t addr[16]; /* network order */
	uint16_t port;	  /* 0: any port (explain; entries with a port do not match) */
	const char *name; /* explain: the destination as a name; NULL in a session */
};

enum net_rule {
	NET_RULE_OFF,	    /* outgoing.tcp / outgoing.udp / dns.enabled is false: local */
	NET_RULE_NO_FILTER, /* no filter: everything remote */
	NET_RULE_ENTRY,	    /* a filter entry matched */
	NET_RULE_NO_MATCH,  /* no entry matched: the side opposite to the filter's */
	NET_RULE_LOCALHOST, /* 127.0.0.0/8 with outgoing.ignore_localhost: this host's loopback */
};

struct net_decision {
	bool remote;
	bool dns;  /* about resolving a name (else about a connection) */
	int proto; /* connections: IPPROTO_TCP or IPPROTO_UDP */
	enum net_rule rule;
	enum cfg_filter_side side;
	int index;			   /* NET_RULE_ENTRY: the entry's index, else -1 */
	const struct cfg_net_entry *entry; /* NET_RULE_ENTRY: borrowed from the cfg */
	const char *dest_name;		   /* explain: the destination's name (borrowed) */
	/* NET_RULE_NO_MATCH for explain: entries that could not be checked
	 * (address entries for a name, name entries for an address). */
	size_t unchecked;
};

/* The address -> name table the DNS answers fill, and the pod's search
 * domains (opaque; the session's lives in struct net). */
struct net_names;

/* Decides a new flow by feature.network.outgoing (mirrord §4.3): the code
 * the relay's route callback runs. A flow to 127.0.0.0/8 reaches it only when
 * the app does not listen on that port (vnet/loopback.c): with
 * ignore_localhost it stays on this host, else the filters decide as for any
 * address (remote: the pod's loopback). names: the session's table, or NULL
 * (explain: name entries match d->name directly). o and names are borrowed;
 * *ret borrows from o. Any thread; no I/O. */
void net_flow_decide(const struct cfg_outgoing *o, const struct net_names *names,
		     const struct net_dest *d, struct net_decision *ret);

/* Decides whether name (normalised, no trailing dot) resolves locally or in
 * the pod, by feature.network.dns (mirrord §4.4): the code the DNS server's
 * callback runs. names: for the search domains, or NULL. */
void net_dns_decide(const struct cfg_dns *dns, const struct net_names *names, const char *name,
		    struct net_decision *ret);

/* "remote" or "local". Static. */
const char *net_verdict_name(const struct net_decision *d);

/* The rule that decided, e.g. `feature.network.outgoing.filter.local[3] ":53"`
 * or `feature.network.outgoing: no filter: everything remote`. Like
 * snprintf: returns the length it wanted. */
int net_decision_format(const struct net_decision *d, char *buf, size_t size);

/* The app's /etc/resolv.conf: our server, with the pod's search domains
 * and options. Caller frees. */
char *net_resolv_conf(const char *pod_resolv_conf);

#endif
