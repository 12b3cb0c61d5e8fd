/* feature.network.incoming: the pod's traffic mirrored or stolen to the
 * app's listening sockets, and listen_ports exposing them on this host
 * (docs/ARCHITECTURE.md, "Incoming"). Private to launcher/; loop thread.
 */
#ifndef PODENV_LAUNCHER_INCOMING_H
#define PODENV_LAUNCHER_INCOMING_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "launcher/listen.h"
#include "launcher/session.h"

/* Does cfg need the app's listen() reported (a mode other than off, or
 * listen_ports)? Then the sandbox installs the filter and gives the app a
 * network namespace of its own. */
bool incoming_wanted(const struct cfg *cfg);

struct incoming;

/* Starts serving: notify_fd is the seccomp notification fd of the app's
 * listen() calls, netns_fd the app's network namespace (both taken).
 * fatal (may be NULL) is called with a message when the session must end
 * (a port already stolen by another session, on_concurrent_steal abort).
 * Caller frees with incoming_free(). */
int incoming_start(struct session *s, int notify_fd, int netns_fd,
		   void (*fatal)(void *userdata, const char *msg), void *userdata,
		   struct incoming **ret, struct err *reterr);
/* Unsubscribes nothing (the agent drops a session's subscriptions with
 * it), resets delivered connections, lets waiting listen() calls go on.
 * Accepts NULL. */
void incoming_free(struct incoming *in);

/* The watch of the app's listen() (its filter may report other syscalls:
 * listen_watch_set_other). Borrowed. */
struct listen_watch *incoming_watch(struct incoming *in);

/* True when the app (any process in its network namespace) listens on TCP
 * port `port` (proto IPPROTO_TCP) or has a UDP socket bound to it
 * (IPPROTO_UDP), asked of the kernel now. in may be NULL (false). */
bool incoming_app_listening(struct incoming *in, int proto, uint16_t port);

/* Appends the agent options of cfg's incoming settings (agent.nftables,
 * agent.flush_connections) to the NULL-terminated args (size slots in
 * all, borrowed strings), keeping it NULL-terminated. */
void incoming_agent_args(const struct cfg *cfg, const char **args, size_t size);

/* What the app listening on s subscribes at the agent (the rules in
 * incoming.c's opening comment): *remote gets the pod's port; *filter the
 * SUBSCRIBE filter ("" for every connection; caller frees), or NULL when
 * nothing is subscribed, with *why (static text) saying which setting
 * decided. No I/O. */
void incoming_decide(const struct cfg_incoming *c, const struct listen_sock *s, uint16_t *remote,
		     char **filter, const char **why);

/* The SUBSCRIBE filter string (docs/PROTOCOL.md §4.4) for f: "" for no
 * filter. Returns 0 and *ret (caller frees), -EOPNOTSUPP for filters the
 * agent cannot run (header_filter_jq, body_filter), -EINVAL otherwise. */
int incoming_filter_format(const struct cfg_http_filter *f, char **ret);

#endif
