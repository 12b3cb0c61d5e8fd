/* Knowing what the app listens on, before its listen() returns
 * (docs/ARCHITECTURE.md, "Incoming").
 *
 * The sandbox child installs a seccomp filter that turns every listen(2)
 * of the app (and of everything it starts) into a user notification; the
 * launcher reads the socket's address through pidfd_getfd(2), tells its
 * owner, and lets the call proceed only when the owner says so (after the
 * agent answered the subscription). A socket that is gone is noticed by
 * sock_diag: every second while the app has listeners, when asked
 * (listen_watch_check) and before each new listener is reported.
 * Private to launcher/; loop thread only.
 */
#ifndef PODENV_LAUNCHER_LISTEN_H
#define PODENV_LAUNCHER_LISTEN_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/loop.h"
#include "launcher/nsock.h"

/* In the sandbox child, right before exec: installs the filter and
 * returns its notification fd (caller passes it to the launcher and closes
 * it), or a negative errno with reterr set. Sets no_new_privs only when
 * the child lacks CAP_SYS_ADMIN in its user namespace. with_connect: the
 * same filter also reports connect() (unixsock.h) — a process may have
 * only one filter with a listener, so the two share it. */
int listen_filter_install(bool with_connect, struct err *reterr);

/* A TCP socket the app listens on. */
struct listen_sock {
	uint64_t cookie;  /* SO_COOKIE: the socket's identity */
	int family;	  /* AF_INET or AF_INET6 */
	uint8_t addr[16]; /* bound address, network order (IPv4 in the first 4) */
	uint16_t port;	  /* bound port */
};

struct listen_watch_ops {
	/* The app calls listen() on s (borrowed for the call). The call waits
	 * until the owner answers with listen_watch_answer(w, token, …). */
	void (*listening)(void *userdata, const struct listen_sock *s, uint64_t token);
	/* s, reported before, is no longer listening (closed, or its last
	 * holder exited). */
	void (*closed)(void *userdata, const struct listen_sock *s);
};

struct listen_watch;

/* Watches the notification fd notify_fd (takes ownership); ns (borrowed,
 * must outlive the watch) gives the sock_diag socket of the app's
 * namespace. Caller frees with listen_watch_free(), which lets every
 * waiting listen() proceed. */
int listen_watch_new(struct loop *loop, int notify_fd, struct nsock *ns,
		     const struct listen_watch_ops *ops, void *userdata, struct listen_watch **ret,
		     struct err *reterr);
void listen_watch_free(struct listen_watch *w);

/* Lets the listen() of `token` proceed (err 0), or fails it with err (a
 * positive errno). Unknown or finished tokens are ignored. */
void listen_watch_answer(struct listen_watch *w, uint64_t token, int err);

struct seccomp_notif;
/* Notifications of the filter's other syscalls (connect(), see
 * listen_filter_install) go to fn, which must answer each on notify_fd. */
void listen_watch_set_other(struct listen_watch *w,
			    void (*fn)(void *userdata, int notify_fd,
				       const struct seccomp_notif *req),
			    void *userdata);

/* Checks now which reported sockets are gone (closed() for each). */
void listen_watch_check(struct listen_watch *w);
/* The same, from the loop a few milliseconds from now. */
void listen_watch_check_soon(struct listen_watch *w);

/* True when some socket of the app's namespace listens on TCP port `port`
 * (proto IPPROTO_TCP) or is bound to UDP port `port` (IPPROTO_UDP), any
 * address, asked of the kernel now (sock_diag). */
bool listen_watch_has_port(struct listen_watch *w, int proto, uint16_t port);

#endif
