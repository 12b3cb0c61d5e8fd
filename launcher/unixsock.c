/* Outgoing unix stream sockets made in the pod (unixsock.h). */
#define LOG_TARGET "podenv::net"
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "launcher/seccomp.h"
#include "launcher/trace.h"
#include "launcher/unixsock.h"
#include "proto/proto.h"
#include "vnet/vnet.h"

#ifndef SECCOMP_ADDFD_FLAG_SETFD
#define SECCOMP_ADDFD_FLAG_SETFD (1UL << 0)
#endif

/* One connect() waiting for the pod's answer. */
struct pending {
	struct unixsock *u;
	struct pending *prev, *next;
	uint64_t id;	  /* the notification */
	int notify_fd;	  /* where it came from (borrowed) */
	int app_fd;	  /* the fd number in the app */
	int pidfd;	  /* the app's process */
	int ours;	  /* our end of the socketpair (owned by the relay once opened) */
	int theirs;	  /* the end the app gets */
	bool cloexec;	  /* the app's fd had FD_CLOEXEC */
	char path[112];
};

struct unixsock {
	struct session *s;
	int notify_fd; /* ours, or -1: fed by the listen() watch */
	struct loop_source *notify_src;
	struct vnet_deliver *deliver;
	struct pending *pending;
	struct seccomp_notif_sizes sizes;
};

int unixsock_filter_install(struct err *reterr)
{
	const int nrs[] = { __NR_connect };

	return seccomp_notify_install(nrs, ARRAY_SIZE(nrs),
				      "sends the app's unix socket connects to the pod "
				      "(feature.network.outgoing.unix_streams)",
				      reterr);
}

static void respond(int notify_fd, uint64_t id, int err, bool cont)
{
	struct seccomp_notif_resp resp = { .id = id };

	if (cont)
		resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
	else
		resp.error = -err;
	/* ENOENT: the thread is gone (killed while waiting): nothing to do. */
	if (ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_SEND, &resp) < 0 && errno != ENOENT)
		log_debug("answering a connect() notification: %m");
}

static void pending_free(struct pending *p)
{
	struct unixsock *u = p->u;

	if (p->prev)
		p->prev->next = p->next;
	else
		u->pending = p->next;
	if (p->next)
		p->next->prev = p->prev;
	if (p->pidfd >= 0)
		close(p->pidfd);
	if (p->theirs >= 0)
		close(p->theirs);
	free(p);
}

/* The app's file status and descriptor flags for its fd (fdinfo's octal
 * "flags:" holds both O_NONBLOCK and O_CLOEXEC). */
static int app_fd_flags(pid_t pid, int fd)
{
	char path[64], line[128];
	unsigned flags = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)pid, fd);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "flags: %o", &flags) == 1)
			break;
	fclose(f);
	return (int)flags;
}

/* The pod answered the open: hand the app its end, or fail its connect(). */
static void on_opened(void *userdata, int err)
{
	struct pending *p = userdata;

	if (err) {
		log_debug("unix socket %s in the pod: %s", p->path, strerror(err));
		respond(p->notify_fd, p->id, err, false);
		pending_free(p);
		return;
	}
	struct seccomp_notif_addfd add = {
		.id = p->id,
		.flags = SECCOMP_ADDFD_FLAG_SETFD,
		.srcfd = (uint32_t)p->theirs,
		.newfd = (uint32_t)p->app_fd,
		.newfd_flags = p->cloexec ? O_CLOEXEC : 0,
	};
	if (ioctl(p->notify_fd, SECCOMP_IOCTL_NOTIF_ADDFD, &add) < 0) {
		/* The call is gone (the thread was killed): our end sees EOF
		 * once `theirs` closes, and the relay ends. */
		log_debug("replacing the app's socket: %m");
		pending_free(p);
		return;
	}
	respond(p->notify_fd, p->id, 0, false);
	pending_free(p);
}

/* The connect() target if it is a unix socket path or abstract name the
 * patterns match: 1 (path set), 0 (not ours), < 0 (could not read). */
static int read_target(struct unixsock *u, const struct seccomp_notif *req, char *path,
		       size_t size)
{
	struct sockaddr_un sun;
	uint64_t len = req->data.args[2];
	struct iovec local = { &sun, 0 }, remote = { (void *)(uintptr_t)req->data.args[1], 0 };
	size_t n;

	if (len <= offsetof(struct sockaddr_un, sun_path) || len > sizeof(sun))
		return 0;
	local.iov_len = remote.iov_len = (size_t)len;
	if (process_vm_readv(req->pid, &local, 1, &remote, 1, 0) != (ssize_t)len)
		return -errno;
	if (sun.sun_family != AF_UNIX)
		return 0;
	n = (size_t)len - offsetof(struct sockaddr_un, sun_path);
	if (sun.sun_path[0] == '\0') {
		/* abstract: "@" + the name, which must hold no NUL to match */
		if (n < 2 || memchr(sun.sun_path + 1, '\0', n - 1) || n >= size)
			return 0;
		path[0] = '@';
		memcpy(path + 1, sun.sun_path + 1, n - 1);
		path[n] = '\0';
	} else {
		n = strnlen(sun.sun_path, n);
		if (n >= size || sun.sun_path[0] != '/')
			return 0; /* relative paths stay local: the pod has no cwd of ours */
		memcpy(path, sun.sun_path, n);
		path[n] = '\0';
	}
	return cfg_patterns_match(&u->s->cfg->feature.network.outgoing.unix_streams, path,
				  strlen(path)) >= 0;
}

void unixsock_notified(void *userdata, int notify_fd, const struct seccomp_notif *req)
{
	struct unixsock *u = userdata;
	char path[sizeof(((struct pending *)0)->path)];
	int r, type = 0, pidfd, fd, flags, pair[2];
	socklen_t tl = sizeof(type);
	struct pending *p;

	r = read_target(u, req, path, sizeof(path));
	if (r <= 0 || seccomp_syscall_nr(req->data.nr) != __NR_connect ||
	    ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &req->id) < 0) {
		respond(notify_fd, req->id, 0, true);
		return;
	}
	/* Only stream sockets: datagram and seqpacket ones stay local. */
	pidfd = seccomp_pidfd_of_thread(req->pid);
	fd = pidfd < 0 ? -1 : (int)syscall(SYS_pidfd_getfd, pidfd, (int)req->data.args[0], 0);
	if (fd >= 0)
		getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl);
	if (fd >= 0)
		close(fd);
	flags = app_fd_flags(req->pid, (int)req->data.args[0]);
	if (type != SOCK_STREAM || flags < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair) < 0) {
		if (pidfd >= 0)
			close(pidfd);
		respond(notify_fd, req->id, 0, true);
		return;
	}
	/* The app's end keeps its blocking mode. */
	if (!(flags & O_NONBLOCK))
		fcntl(pair[1], F_SETFL, fcntl(pair[1], F_GETFL) & ~O_NONBLOCK);
	p = xcalloc(1, sizeof(*p));
	p->u = u;
	p->id = req->id;
	p->notify_fd = notify_fd;
	p->app_fd = (int)req->data.args[0];
	p->pidfd = pidfd;
	p->ours = pair[0];
	p->theirs = pair[1];
	p->cloexec = flags & O_CLOEXEC;
	snprintf(p->path, sizeof(p->path), "%s", path);
	p->next = u->pending;
	if (p->next)
		p->next->prev = p;
	u->pending = p;
	log_debug("unix socket %s: connecting in the pod", path);
	if (u->s->trace) {
		const struct cfg_patterns *pat = &u->s->cfg->feature.network.outgoing.unix_streams;
		int i = cfg_patterns_match(pat, path, strlen(path));
		trace_unix(u->s->trace, path, i, pat->src[i]);
	}
	r = vnet_deliver_open_unix(u->deliver, u->s->client, path, pair[0], on_opened, p);
	if (r < 0) {
		log_debug("unix socket %s: cannot open a stream: %s (agent capabilities %#llx)", path,
			  strerror(-r), (unsigned long long)proto_client_caps(u->s->client));
		close(pair[0]);
		respond(notify_fd, req->id, -r == EOPNOTSUPP ? ECONNREFUSED : -r, false);
		pending_free(p);
	}
}

static int on_notify(struct loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct unixsock *u = userdata;
	_cleanup_free_ struct seccomp_notif *req = xcalloc(1, u->sizes.seccomp_notif);
	(void)src;
	(void)events;

	if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, req) < 0) {
		if (errno != ENOENT && errno != EINTR)
			log_debug("receiving a connect() notification: %m");
		return 0;
	}
	unixsock_notified(u, fd, req);
	return 0;
}

int unixsock_start(struct session *s, int notify_fd, struct unixsock **ret, struct err *reterr)
{
	struct unixsock *u = xcalloc(1, sizeof(*u));
	int r;

	u->s = s;
	u->notify_fd = notify_fd;
	if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &u->sizes) < 0) {
		r = err_set_errno(reterr, -errno, "asking the kernel for seccomp notification sizes");
		goto fail;
	}
	if (u->sizes.seccomp_notif < sizeof(struct seccomp_notif))
		u->sizes.seccomp_notif = sizeof(struct seccomp_notif);
	r = vnet_deliver_new(s->loop, NULL, NULL, &u->deliver);
	if (r < 0) {
		err_set_errno(reterr, r, "starting the unix socket relay");
		goto fail;
	}
	r = notify_fd < 0 ? 0 : loop_add_io(s->loop, notify_fd, EPOLLIN, on_notify, u, &u->notify_src);
	if (r < 0) {
		err_set_errno(reterr, r, "watching the app's connect()");
		goto fail;
	}
	*ret = u;
	return 0;
fail:
	unixsock_free(u);
	return r;
}

void unixsock_free(struct unixsock *u)
{
	if (!u)
		return;
	loop_source_free(u->notify_src);
	/* The relay first: its open callbacks answer and free what waits. */
	vnet_deliver_free(u->deliver);
	while (u->pending) {
		respond(u->pending->notify_fd, u->pending->id, ECONNABORTED, false);
		pending_free(u->pending);
	}
	if (u->notify_fd >= 0)
		close(u->notify_fd);
	free(u);
}
