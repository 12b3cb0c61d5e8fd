/* The app's network (issue: vnet + dns): the relay, the DNS server, and
 * the outgoing / DNS filters that decide local or remote per flow and per
 * name. Private to launcher/; loop thread only.
 */
#ifndef PODENV_LAUNCHER_NET_H
#define PODENV_LAUNCHER_NET_H

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
enum { NET_FD_TUN, NET_FD_LISTEN4, NET_FD_LISTEN6, NET_FD_DNS_UDP, NET_FD_DNS_TCP, NET_NFDS };

struct net;

/* Builds the namespace side, in the sandbox child (already in its new
 * network namespace): TUN, listeners, DNS sockets. fds[] get the new fds
 * (-1 for the IPv6 listener when IPv6 is unavailable). */
int net_child_setup(int fds[NET_NFDS], struct err *reterr);

/* Starts relaying and answering DNS for the app (parent). Takes ownership
 * of fds. */
int net_start(struct session *s, int fds[NET_NFDS], struct net **ret, struct err *reterr);
void net_free(struct net *n);

/* The app's /etc/resolv.conf: our server, with the pod's search domains
 * and options. Caller frees. */
char *net_resolv_conf(const char *pod_resolv_conf);

#endif
