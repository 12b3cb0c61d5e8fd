/* Sockets in the app's network namespace, for a launcher that may not
 * enter it (docs/ARCHITECTURE.md, "Incoming"). A socket belongs to the
 * namespace of the process that created it, whatever process uses it
 * later; so a small helper process, forked from the launcher and moved into
 * the app's namespace, creates sockets on request and passes them back
 * over SCM_RIGHTS. Private to launcher/; loop thread only.
 */
#ifndef PODENV_LAUNCHER_NSOCK_H
#define PODENV_LAUNCHER_NSOCK_H

#include "common/err.h"
#include "common/loop.h"

struct nsock;

/* A factory for the network namespace netns_fd (borrowed: a copy is
 * kept). The helper is forked at the first nsock_socket() call (so call
 * that while the process has no threads, as the launcher always is);
 * loop (may be NULL) runs background refills of the caches. Caller frees
 * with nsock_free(). */
int nsock_new(struct loop *loop, int netns_fd, struct nsock **ret, struct err *reterr);
/* Stops and reaps the helper, closes cached sockets. Accepts NULL. */
void nsock_free(struct nsock *n);

/* A new socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol) made
 * in the app's namespace: the fd (caller closes) or a negative errno (the
 * helper could not enter the namespace: logged once, the same errno from
 * then on).
 * TCP sockets are fetched 16 at a time and cached, refilled in the
 * background, so most calls cost no round trip to the helper. */
int nsock_socket(struct nsock *n, int domain, int type, int protocol);

#endif
