/* The app's listening sockets (listen.h).
 *
 * The filter is a hand-written classic BPF program loaded with the raw
 * seccomp(2) syscall: no libseccomp (Debian 12's 2.5.4 does not know
 * SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV). That flag (Linux 5.19) matters
 * for Go programs: the runtime preempts threads with SIGURG every few ms,
 * and without it a signal arriving while the launcher handles the
 * notification interrupts the listen(), which the kernel restarts and
 * notifies again, possibly forever; with it, once the launcher has taken
 * the notification only a fatal signal ends the wait. Older kernels get
 * the filter without the flag.
 *
 * A notification names a thread and an fd number; the socket itself is
 * copied with pidfd_getfd(2), looked at (family, type, bound address,
 * SO_COOKIE) and closed at once: holding it would keep the app's socket
 * alive after the app closed it. The notification is then checked to be
 * still valid (SECCOMP_IOCTL_NOTIF_ID_VALID), so a recycled thread id
 * cannot mislead us. A socket listening without a bound port is bound to
 * port 0 here first, which is what listen() would do (inet_autobind), so
 * its port is known before it listens.
 *
 * Close detection is sock_diag (NETLINK_INET_DIAG in the app's namespace,
 * a socket from nsock): seeing every close() would need a notification on
 * every close(2) of the app, a hot call, and would still miss sockets kept
 * open by a forked child. A LISTEN-only dump walks just the listening
 * hash, so it is cheap to run every second.
 */
#define LOG_TARGET "podenv::incoming"
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/map.h"
#include "launcher/listen.h"
#include "launcher/seccomp.h"
#include "vnet/vnet.h"

#define CHECK_EVERY (1 * USEC_PER_SEC)

/* --- the filter (sandbox child) ------------------------------------------------ */

int listen_filter_install(bool with_connect, struct err *reterr)
{
	const int nrs[] = {__NR_listen, __NR_connect};

	return seccomp_notify_install(nrs, with_connect ? 2 : 1,
				      "reports the app's listen() (or set "
				      "feature.network.incoming to \"off\")",
				      reterr);
}

/* --- the watch (launcher) --------------------------------------------------------- */

struct known {
	struct listen_sock s;
	bool seen;    /* in the current sock_diag dump */
	bool waiting; /* its listen() waits for the owner: not listening yet */
};

struct listen_watch {
	struct loop *loop;
	int notify_fd;
	int diag_fd;
	struct nsock *ns;
	struct loop_source *notify_src;
	struct loop_source *timer;
	const struct listen_watch_ops *ops;
	void *userdata;
	void (*other)(void *userdata, int notify_fd, const struct seccomp_notif *req);
	void *other_userdata;
	struct map known;   /* cookie -> struct known */
	struct map pending; /* notification id -> struct known, waiting for the owner */
	uint32_t seq;
};

static void answer(struct listen_watch *w, uint64_t id, int err)
{
	struct seccomp_notif_resp resp = {.id = id};

	if (err)
		resp.error = -err;
	else
		resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
	/* ENOENT: the thread is gone (killed while waiting): nothing to do. */
	if (ioctl(w->notify_fd, SECCOMP_IOCTL_NOTIF_SEND, &resp) < 0 && errno != ENOENT)
		log_debug("answering a listen() notification: %m");
}

void listen_watch_answer(struct listen_watch *w, uint64_t token, int err)
{
	struct known *k = map_remove(&w->pending, token);

	if (!k)
		return;
	k->waiting = false;
	answer(w, token, err);
}

/* Reads what the app's socket is. 1: a TCP socket of ours to report
 * (*ls filled), 0: something else (let it be), < 0: an error. */
static int inspect(int fd, struct listen_sock *ls)
{
	int domain = 0, type = 0, protocol = 0;
	socklen_t l = sizeof(int);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	uint64_t cookie = 0;

	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l) < 0)
		return 0; /* not a socket: listen() will say ENOTSOCK */
	l = sizeof(int);
	getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l);
	l = sizeof(int);
	getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &l);
	if ((domain != AF_INET && domain != AF_INET6) || type != SOCK_STREAM ||
	    (protocol != IPPROTO_TCP && protocol != 0))
		return 0;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	uint16_t port = domain == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
					  : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	if (port == 0) {
		/* listen() would bind it to a free port (inet_autobind): do it
		 * now, so the port is known before the socket listens. */
		struct sockaddr_storage any = {.ss_family = (sa_family_t)domain};
		if (bind(fd, (struct sockaddr *)&any,
			 domain == AF_INET ? sizeof(struct sockaddr_in)
					   : sizeof(struct sockaddr_in6)) < 0 &&
		    errno != EINVAL)
			return -errno;
		sl = sizeof(ss);
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
			return -errno;
		port = domain == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
					 : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	l = sizeof(cookie);
	if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &l) < 0)
		return -errno;
	memset(ls, 0, sizeof(*ls));
	ls->cookie = cookie;
	ls->family = domain;
	ls->port = port;
	if (domain == AF_INET)
		memcpy(ls->addr, &((struct sockaddr_in *)&ss)->sin_addr, 4);
	else
		memcpy(ls->addr, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
	return 1;
}

static void arm_timer(struct listen_watch *w)
{
	loop_timer_set(w->timer, map_len(&w->known) ? now_usec() + CHECK_EVERY : USEC_INFINITY);
}

static int on_notify(struct loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct listen_watch *w = userdata;
	struct seccomp_notif req;
	struct listen_sock ls;
	(void)src;

	if (events & (EPOLLHUP | EPOLLERR)) {
		/* Every process under the filter is gone. */
		loop_source_free(w->notify_src);
		w->notify_src = NULL;
		return 0;
	}
	memset(&req, 0, sizeof(req));
	if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0)
		return 0; /* ENOENT: the caller went away meanwhile */
	if (seccomp_syscall_nr(req.data.nr) != __NR_listen) {
		if (w->other)
			w->other(w->other_userdata, fd, &req);
		else
			answer(w, req.id, 0);
		return 0;
	}
	_cleanup_close_ int pidfd = seccomp_pidfd_of_thread((pid_t)req.pid);
	_cleanup_close_ int sock = -1;
	if (pidfd >= 0)
		sock = (int)syscall(SYS_pidfd_getfd, pidfd, (int)req.data.args[0], 0);
	if (ioctl(fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &req.id) < 0)
		return 0; /* the thread is gone: its fd numbers mean nothing now */
	int r = sock >= 0 ? inspect(sock, &ls) : -errno;
	if (r < 0)
		log_debug("listen() of thread %u: cannot inspect fd %llu: %s", req.pid,
			  (unsigned long long)req.data.args[0], strerror(-r));
	if (r <= 0 || map_get(&w->known, ls.cookie)) {
		/* Not TCP, or listen() again on a listening socket (a new
		 * backlog): nothing new to tell. */
		answer(w, req.id, 0);
		return 0;
	}
	listen_watch_check(w); /* sockets closed since: reported first */
	struct known *k = xcalloc(1, sizeof(*k));
	k->s = ls;
	k->waiting = true;
	map_put(&w->known, ls.cookie, k);
	map_put(&w->pending, req.id, k);
	arm_timer(w);
	w->ops->listening(w->userdata, &ls, req.id);
	return 0;
}

/* --- sock_diag -------------------------------------------------------------------- */

/* Dumps sockets of (family, proto) in the given states, calling fn for
 * each. Returns 0 or a negative errno (then the dump is incomplete). */
static int diag_dump(struct listen_watch *w, int family, int proto, uint32_t states,
		     vnet_diag_fn fn, void *ud)
{
	if (w->diag_fd < 0) {
		struct timeval tv = {.tv_sec = 2};
		int fd = nsock_socket(w->ns, AF_NETLINK, SOCK_DGRAM, NETLINK_SOCK_DIAG);
		if (fd < 0)
			return fd;
		/* Dumps are synchronous and short; the timeout only guards a
		 * kernel that never answers. */
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		w->diag_fd = fd;
	}
	return vnet_diag_dump(w->diag_fd, &w->seq, family, proto, states, 0, fn, ud);
}

static void mark_seen(const struct inet_diag_msg *m, size_t len, void *ud)
{
	struct listen_watch *w = ud;
	uint64_t cookie = (uint64_t)m->id.idiag_cookie[0] | ((uint64_t)m->id.idiag_cookie[1] << 32);
	struct known *k = map_get(&w->known, cookie);
	(void)len;

	if (k)
		k->seen = true;
}

void listen_watch_check(struct listen_watch *w)
{
	uint64_t key;
	void *v;

	if (!map_len(&w->known))
		return;
	for (size_t pos = 0; map_next(&w->known, &pos, &key, &v);)
		((struct known *)v)->seen = false;
	if (diag_dump(w, AF_INET, IPPROTO_TCP, 1u << TCP_LISTEN, mark_seen, w) < 0 ||
	    diag_dump(w, AF_INET6, IPPROTO_TCP, 1u << TCP_LISTEN, mark_seen, w) < 0) {
		log_debug("sock_diag: %m; keeping every listener");
		return;
	}
	for (size_t pos = 0; map_next(&w->known, &pos, &key, &v);) {
		struct known *k = v;
		/* A socket reported but not listening yet (its listen() still
		 * waits for us) is not gone. */
		if (k->seen || k->waiting)
			continue;
		map_remove(&w->known, key);
		pos = 0;
		w->ops->closed(w->userdata, &k->s);
		free(k);
	}
	arm_timer(w);
}

void listen_watch_check_soon(struct listen_watch *w)
{
	loop_timer_set(w->timer, now_usec() + 20 * USEC_PER_MSEC);
}

static int on_timer(struct loop_source *s, usec_t now, void *userdata)
{
	struct listen_watch *w = userdata;
	(void)s;
	(void)now;

	listen_watch_check(w);
	arm_timer(w);
	return 0;
}

struct port_query {
	uint16_t port;
	bool found;
};

static void match_port(const struct inet_diag_msg *m, size_t len, void *ud)
{
	struct port_query *q = ud;
	(void)len;

	if (ntohs(m->id.idiag_sport) == q->port)
		q->found = true;
}

bool listen_watch_has_port(struct listen_watch *w, int proto, uint16_t port)
{
	struct port_query q = {.port = port};
	uint32_t states = proto == IPPROTO_TCP ? 1u << TCP_LISTEN : ~0u;

	diag_dump(w, AF_INET, proto, states, match_port, &q);
	if (!q.found)
		diag_dump(w, AF_INET6, proto, states, match_port, &q);
	return q.found;
}

int listen_watch_new(struct loop *loop, int notify_fd, struct nsock *ns,
		     const struct listen_watch_ops *ops, void *userdata, struct listen_watch **ret,
		     struct err *reterr)
{
	struct listen_watch *w = xcalloc(1, sizeof(*w));
	int r;

	w->loop = loop;
	w->notify_fd = notify_fd;
	w->ops = ops;
	w->userdata = userdata;
	w->ns = ns;
	w->diag_fd = -1; /* made at the first dump: not every app listens */
	r = loop_add_io(loop, notify_fd, EPOLLIN, on_notify, w, &w->notify_src);
	if (r >= 0)
		r = loop_add_timer(loop, USEC_INFINITY, on_timer, w, &w->timer);
	if (r < 0) {
		err_set_errno(reterr, r, "watching the app's listen()");
		goto fail;
	}
	*ret = w;
	return 0;
fail:
	listen_watch_free(w);
	return r;
}

void listen_watch_free(struct listen_watch *w)
{
	uint64_t key;
	void *v;

	if (!w)
		return;
	for (size_t pos = 0; map_next(&w->pending, &pos, &key, &v);)
		answer(w, key, 0);
	map_done(&w->pending);
	for (size_t pos = 0; map_next(&w->known, &pos, &key, &v);)
		free(v);
	map_done(&w->known);
	loop_source_free(w->notify_src);
	loop_source_free(w->timer);
	if (w->notify_fd >= 0)
		close(w->notify_fd);
	if (w->diag_fd >= 0)
		close(w->diag_fd);
	free(w);
}

void listen_watch_set_other(struct listen_watch *w,
			    void (*fn)(void *userdata, int notify_fd,
				       const struct seccomp_notif *req),
			    void *userdata)
{
	w->other = fn;
	w->other_userdata = userdata;
}
