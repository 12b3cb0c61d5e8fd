/* feature.network.outgoing.unix_streams: the app's connect() to a unix
 * stream socket whose path (or "@" + abstract name) matches one of the
 * patterns is made in the pod instead (mirrord research §4.3 step 4).
 *
 * A seccomp filter turns the app's connect() into a user notification.
 * For a matching unix path, the launcher opens a stream to that socket in
 * the pod (STREAM_OPEN_UNIX) and, once the agent has connected, replaces
 * the app's socket with one end of a socketpair (SECCOMP_IOCTL_NOTIF_ADDFD
 * with SETFD, O_NONBLOCK and FD_CLOEXEC kept) and answers connect() with 0;
 * a failed connect in the pod is the app's error (ENOENT, ECONNREFUSED).
 * The other end is relayed to the stream (vnet_deliver). Every other
 * connect() continues untouched. Private to launcher/; loop thread only.
 */
#ifndef PODENV_LAUNCHER_UNIXSOCK_H
#define PODENV_LAUNCHER_UNIXSOCK_H

#include "common/err.h"
#include "launcher/session.h"

/* In the sandbox child, right before exec: installs the connect() filter
 * and returns its notification fd, or a negative errno with reterr. */
int unixsock_filter_install(struct err *reterr);

struct unixsock;

struct seccomp_notif;

/* Watches notify_fd (takes ownership) for the session s (borrowed); with
 * notify_fd -1 the notifications come from the listen() watch that shares
 * the filter (unixsock_notified). */
int unixsock_start(struct session *s, int notify_fd, struct unixsock **ret, struct err *reterr);
/* One connect() notification read from notify_fd (borrowed); answers it. */
void unixsock_notified(void *u, int notify_fd, const struct seccomp_notif *req);
/* Lets every waiting connect() fail with ECONNABORTED and resets the
 * relayed connections. Accepts NULL. */
void unixsock_free(struct unixsock *u);

#endif
