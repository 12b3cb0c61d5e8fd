/* The socket factory of the app's network namespace (nsock.h).
 *
 * Why a helper process: the launcher cannot always setns() into the app's
 * namespace and back (unprivileged, its own network namespace belongs to
 * the host's user namespace, where it has no CAP_SYS_ADMIN), and threads
 * are not an option in a launcher that forks and unshares. The helper is
 * forked without exec (it keeps the launcher's capabilities in its user
 * namespace, which owns the app's network namespace), enters the namespace
 * once and answers requests {domain, type, protocol, count} with `count`
 * fresh sockets in one SCM_RIGHTS message, or an errno and none. It dies
 * with the launcher (PR_SET_PDEATHSIG, and EOF on its socket).
 */
#define LOG_TARGET "podenv::incoming"
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "common/log.h"
#include "common/loop.h"
#include "common/macro.h"
#include "launcher/nsock.h"

#define BATCH 16
#define LOW 8 /* refill a cache in the background below this */

struct cache {
	int domain, type, protocol;
	int fds[BATCH];
	int n;
};

struct nsock {
	pid_t pid;
	int fd;		       /* our end of the socketpair (blocking) */
	struct cache cache[2]; /* TCP over IPv4, IPv6 */
	struct loop_source *src;
	struct cache *refilling; /* a background request is out for it */
	struct loop *loop;
	int netns_fd; /* our copy, for the helper */
	int failed;   /* the helper could not start: this errno, for good */
};

struct request {
	int domain, type, protocol, count;
};

static void __attribute__((noreturn)) helper_main(int sock, int netns_fd, pid_t parent)
{
	struct request rq;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(0);
	if (setns(netns_fd, CLONE_NEWNET) < 0) {
		int e = errno;
		if (write(sock, &e, sizeof(e)) < 0) {
			/* the launcher reads the failure from EOF too */
		}
		_exit(1);
	}
	close(netns_fd);
	int ok = 0;
	if (write(sock, &ok, sizeof(ok)) != sizeof(ok))
		_exit(1);
	while (read(sock, &rq, sizeof(rq)) == sizeof(rq)) {
		int fds[BATCH], n = 0, err = 0;
		rq.count = MAX(1, MIN(rq.count, BATCH));
		for (; n < rq.count; n++) {
			fds[n] = socket(rq.domain, rq.type | SOCK_NONBLOCK | SOCK_CLOEXEC,
					rq.protocol);
			if (fds[n] < 0) {
				err = errno;
				break;
			}
		}
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(sizeof(int) * BATCH)];
		} cm;
		struct iovec iov = {&err, sizeof(err)};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
		if (n > 0) {
			err = 0;
			mh.msg_control = cm.buf;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
			struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
			memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
		}
		if (sendmsg(sock, &mh, MSG_NOSIGNAL) < 0)
			_exit(1);
		for (int i = 0; i < n; i++)
			close(fds[i]);
	}
	_exit(0);
}

static int on_answer(struct loop_source *s, int fd, uint32_t events, void *userdata);

/* Forks the helper (on first use: a session whose app never listens
 * never pays for it). */
static int helper_start(struct nsock *n)
{
	int sv[2], status = 0;
	pid_t parent = getpid();

	if (n->failed)
		return n->failed;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int r = -errno;
		close(sv[0]);
		close(sv[1]);
		return r;
	}
	if (pid == 0) {
		close(sv[0]);
		/* Nothing of the launcher's but the two fds it needs. */
		int keep_lo = MIN(sv[1], n->netns_fd), keep_hi = MAX(sv[1], n->netns_fd);
		close_range(3, (unsigned)keep_lo - 1, 0);
		if (keep_hi > keep_lo + 1)
			close_range((unsigned)keep_lo + 1, (unsigned)keep_hi - 1, 0);
		close_range((unsigned)keep_hi + 1, ~0U, 0);
		helper_main(sv[1], n->netns_fd, parent);
	}
	close(sv[1]);
	if (read(sv[0], &status, sizeof(status)) != sizeof(status) || status != 0) {
		close(sv[0]);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		n->failed = status ? -status : -EIO;
		log_warn("cannot make sockets in the app's network namespace (entering it: %s): "
			 "incoming connections cannot be delivered",
			 strerror(-n->failed));
		return n->failed;
	}
	n->pid = pid;
	n->fd = sv[0];
	if (n->loop && loop_add_io(n->loop, n->fd, 0, on_answer, n, &n->src) < 0)
		n->src = NULL; /* no background refills: every batch waits */
	return 0;
}

int nsock_new(struct loop *loop, int netns_fd, struct nsock **ret, struct err *reterr)
{
	int fd = fcntl(netns_fd, F_DUPFD_CLOEXEC, 3);

	if (fd < 0)
		return err_set_errno(reterr, -errno, "the app's network namespace");
	struct nsock *n = xcalloc(1, sizeof(*n));
	n->loop = loop;
	n->netns_fd = fd;
	n->fd = -1;
	n->cache[0] = (struct cache){AF_INET, SOCK_STREAM, 0, {0}, 0};
	n->cache[1] = (struct cache){AF_INET6, SOCK_STREAM, 0, {0}, 0};
	*ret = n;
	return 0;
}

void nsock_free(struct nsock *n)
{
	if (!n)
		return;
	loop_source_free(n->src);
	for (size_t i = 0; i < ARRAY_SIZE(n->cache); i++)
		for (int k = 0; k < n->cache[i].n; k++)
			close(n->cache[i].fds[k]);
	if (n->fd >= 0)
		close(n->fd); /* EOF: the helper exits */
	if (n->pid > 0) {
		kill(n->pid, SIGKILL);
		waitpid(n->pid, NULL, 0);
	}
	close(n->netns_fd);
	free(n);
}

static int send_request(struct nsock *n, int domain, int type, int protocol, int count)
{
	struct request rq = {domain, type, protocol, count};

	return write(n->fd, &rq, sizeof(rq)) == sizeof(rq) ? 0 : -EPIPE;
}

/* One answer: up to BATCH sockets into fds. Returns how many, or a
 * negative errno. */
static int recv_answer(struct nsock *n, int *fds)
{
	int err = 0;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * BATCH)];
	} cm;
	struct iovec iov = {&err, sizeof(err)};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = cm.buf,
			    .msg_controllen = sizeof(cm.buf)};
	ssize_t r;

	do
		r = recvmsg(n->fd, &mh, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r != sizeof(err))
		return -EPIPE;
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	if (!c || c->cmsg_type != SCM_RIGHTS)
		return err ? -err : -EIO;
	int got = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
	memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)MIN(got, BATCH));
	return MIN(got, BATCH);
}

/* The background refill's answer: into its cache. */
static void take_refill(struct nsock *n)
{
	struct cache *c = n->refilling;
	int fds[BATCH];
	int got = recv_answer(n, fds);

	n->refilling = NULL;
	for (int i = 0; i < got; i++) {
		if (c->n < BATCH)
			c->fds[c->n++] = fds[i];
		else
			close(fds[i]);
	}
}

static int on_answer(struct loop_source *s, int fd, uint32_t events, void *userdata)
{
	struct nsock *n = userdata;
	(void)s;
	(void)fd;
	(void)events;

	if (n->refilling)
		take_refill(n);
	loop_io_events_set(n->src, 0);
	return 0;
}

int nsock_socket(struct nsock *n, int domain, int type, int protocol)
{
	int fds[BATCH], got;

	if (n->fd < 0) {
		int r = helper_start(n);
		if (r < 0)
			return r;
	}

	for (size_t i = 0; i < ARRAY_SIZE(n->cache); i++) {
		struct cache *c = &n->cache[i];
		if (c->domain != domain || c->type != type || c->protocol != protocol)
			continue;
		if (c->n == 0 && n->refilling)
			take_refill(n); /* an answer is on its way: wait for it */
		if (c->n == 0) {
			if (send_request(n, domain, type, protocol, BATCH) < 0)
				return -EPIPE;
			got = recv_answer(n, c->fds);
			if (got < 0)
				return got;
			c->n = got;
		}
		int fd = c->fds[--c->n];
		/* Keep ahead of the next connections without making them wait
		 * for the helper (which may wait for a CPU under load). */
		if (c->n < LOW && !n->refilling && n->src &&
		    send_request(n, domain, type, protocol, BATCH) == 0) {
			n->refilling = c;
			loop_io_events_set(n->src, EPOLLIN);
		}
		return fd;
	}
	if (n->refilling)
		take_refill(n); /* answers come in order */
	if (send_request(n, domain, type, protocol, 1) < 0)
		return -EPIPE;
	got = recv_answer(n, fds);
	return got < 0 ? got : fds[0];
}
