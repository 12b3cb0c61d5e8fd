/* The sandbox (sandbox.h).
 *
 * The launcher first moves into a private copy of the host's mount
 * namespace, so every mount it makes (the FUSE views, a tmpfs for their
 * mount points) dies with it, even on SIGKILL. It serves the FUSE mounts
 * on its loop while a child builds the app's root and then execs the app:
 * the child binds the host's /proc, /sys and /dev, binds natively every
 * subtree the mount plan proved local (the FUSE view is mounted back on
 * the plan's exceptions), puts the pod's raw root at /run/podenv/root, and
 * pivots into the routed FUSE view. The child has its own mount namespace
 * (pivot_root would otherwise move the launcher too) and UTS namespace.
 * A failure before exec travels to the parent over a CLOEXEC socket (EOF
 * means the exec happened), as in crun.
 */
#define LOG_TARGET "podenv::sandbox"
#include <fcntl.h>
#include <glob.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "common/buf.h"
#include "common/log.h"
#include "launcher/incoming.h"
#include "launcher/listen.h"
#include "launcher/net.h"
#include "launcher/sandbox.h"
#include "launcher/trace.h"
#include "launcher/unixsock.h"
#include "vfs/vfs.h"

#define PODENV_ROOT_DIR "/run/podenv/root"

static const int forwarded_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2,
					 SIGWINCH, SIGCONT };

struct sandbox {
	const struct sandbox_opts *o;
	struct session *s;
	char dir[64]; /* private directory: root/, pod/, view/ */
	char cwd[4096];
	struct vfs_router *router;
	struct vfs_plan *plan;
	struct vfs_mount *root_mount;
	struct vfs_mount *pod_mount;
	pid_t child;
	int errfd;
	struct loop_source *err_src;
	bool exited;
	int status;
	char child_error[ERR_MSG_MAX];
	bool lost;
	struct loop_source *kill_timer;
	bool network; /* the app gets its own network namespace */
	struct net *net;
	bool incoming_on; /* the app's listen() is reported (incoming.h) */
	bool unix_on;	  /* the app's connect() is watched (unixsock.h) */
	struct unixsock *unixsock;
	int netns_fd;	  /* child: its network namespace, for the launcher */
	struct incoming *incoming;
	char *resolv_conf;
	char *nsswitch;
};

/* --- the child ------------------------------------------------------------ */

/* Reports "what: strerror(errno)" to the parent and exits. */
static void __attribute__((noreturn, format(printf, 3, 4)))
child_fail(int errfd, int code, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX];
	int e = errno;
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	n = strlen(msg);
	if (e)
		snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(e));
	/* 'E' + text: an error (the parent also receives 'F' + fds). */
	memmove(msg + 1, msg, MIN(strlen(msg) + 1, sizeof(msg) - 1));
	msg[0] = 'E';
	msg[sizeof(msg) - 1] = '\0';
	if (write(errfd, msg, strlen(msg)) < 0) {
		/* the parent is gone: nothing to tell */
	}
	_exit(code);
}

static void bind_or_fail(int errfd, const char *src, const char *dst, bool rec)
{
	if (mount(src, dst, NULL, MS_BIND | (rec ? MS_REC : 0), NULL) < 0)
		child_fail(errfd, 125, "binding %s on %s", src, dst);
}

static bool is_dir_nofollow(const char *p)
{
	struct stat st;

	return lstat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Builds the app's network namespace and hands its fds to the parent,
 * then waits until the parent relays them (so the app's first packet finds
 * the relay running). */
static void child_network(struct sandbox *sb, int errfd)
{
	int fds[NET_NFDS], n = 0, sendfds[NET_NFDS];
	char ok = 'F';
	struct err e;
	(void)sb;

	err_clear(&e);
	if (net_child_setup(fds, &e) < 0) {
		errno = 0;
		child_fail(errfd, 125, "%s", e.msg);
	}
	for (int i = 0; i < NET_NFDS; i++)
		sendfds[n++] = fds[i] >= 0 ? fds[i] : fds[NET_FD_TUN]; /* placeholders keep order */
	uint8_t present = 0;
	for (int i = 0; i < NET_NFDS; i++)
		if (fds[i] >= 0)
			present |= (uint8_t)(1u << i);
	char msg[2] = { ok, (char)present };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * NET_NFDS)];
	} cm;
	struct iovec iov = { msg, sizeof(msg) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
			     .msg_controllen = sizeof(cm.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * NET_NFDS);
	memcpy(CMSG_DATA(c), sendfds, sizeof(sendfds));
	if (sendmsg(errfd, &mh, MSG_NOSIGNAL) < 0)
		child_fail(errfd, 125, "handing the network to podenv");
	for (int i = 0; i < NET_NFDS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	char go = 0;
	if (read(errfd, &go, 1) != 1 || go != 'G')
		_exit(125); /* the parent reported why */
}

/* Last step before exec: the filter that reports the app's listen() to the
 * launcher ('S' + its fd and the namespace's), then wait until the
 * launcher watches it. Nothing after this may call listen(). */
static void child_listen_filter(struct sandbox *sb, int errfd)
{
	struct err e;
	int fds[2];

	err_clear(&e);
	fds[0] = listen_filter_install(sb->unix_on, &e);
	if (fds[0] < 0) {
		errno = 0;
		child_fail(errfd, 125, "%s", e.msg);
	}
	fds[1] = sb->netns_fd;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(fds))];
	} cm;
	char tag = 'S';
	struct iovec iov = { &tag, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
			     .msg_controllen = sizeof(cm.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(c), fds, sizeof(fds));
	if (sendmsg(errfd, &mh, MSG_NOSIGNAL) < 0)
		child_fail(errfd, 125, "handing the app's listen() watch to podenv");
	close(fds[0]);
	close(fds[1]);
	char go = 0;
	if (read(errfd, &go, 1) != 1 || go != 'G')
		_exit(125); /* the parent reported why */
}

/* After the listen() filter: the connect() filter of unix_streams ('U' +
 * its fd), then wait until the launcher watches it. */
static void child_unix_filter(int errfd)
{
	struct err e;
	int fd;

	err_clear(&e);
	fd = unixsock_filter_install(&e);
	if (fd < 0) {
		errno = 0;
		child_fail(errfd, 125, "%s", e.msg);
	}
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	char tag = 'U';
	struct iovec iov = { &tag, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
			     .msg_controllen = sizeof(cm.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	if (sendmsg(errfd, &mh, MSG_NOSIGNAL) < 0)
		child_fail(errfd, 125, "handing the app's connect() watch to podenv");
	close(fd);
	char go = 0;
	if (read(errfd, &go, 1) != 1 || go != 'G')
		_exit(125); /* the parent reported why */
}

static void child_main(struct sandbox *sb, int errfd)
{
	const struct sandbox_opts *o = sb->o;
	char newroot[128], view[128], p[4096], q[4096];
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (size_t i = 0; i < ARRAY_SIZE(forwarded_signals); i++)
		signal(forwarded_signals[i], SIG_DFL);
	/* The app cannot outlive the launcher: its root is served by it. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);

	if (unshare(CLONE_NEWNS | (o->set_hostname ? CLONE_NEWUTS : 0) |
		    (sb->network ? CLONE_NEWNET : 0)) < 0)
		child_fail(errfd, 125, "creating the app's namespaces");
	if (sb->network)
		child_network(sb, errfd);
	if (sb->incoming_on) {
		sb->netns_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
		if (sb->netns_fd < 0)
			child_fail(errfd, 125, "opening the app's network namespace");
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		child_fail(errfd, 125, "making mounts private");
	snprintf(newroot, sizeof(newroot), "%s/root", sb->dir);
	snprintf(view, sizeof(view), "%s/view", sb->dir);
	/* A second handle on the FUSE view, for the plan's exceptions: once a
	 * native subtree covers newroot/usr, newroot/usr/x is the host's. */
	bind_or_fail(errfd, newroot, view, false);

	/* Native where provable. */
	for (size_t i = 0; sb->plan && i < vfs_plan_count(sb->plan); i++) {
		const struct vfs_plan_entry *e = vfs_plan_get(sb->plan, i);
		size_t rl = strlen(e->root);
		/* Not the tree that holds our own mount point: it must stay the
		 * FUSE view, which shows /run/podenv. */
		bool ours = !strncmp(PODENV_ROOT_DIR, e->root, rl) && PODENV_ROOT_DIR[rl] == '/';
		bool ok = e->provable && !ours && is_dir_nofollow(e->root);
		for (size_t k = 0; ok && k < e->n_except; k++) {
			snprintf(p, sizeof(p), "%s/%s", e->root, e->except[k]);
			ok = is_dir_nofollow(p); /* the mount point must exist natively */
		}
		if (!ok)
			continue;
		snprintf(p, sizeof(p), "%s%s", newroot, e->root);
		bind_or_fail(errfd, e->root, p, true);
		/* Our own mounts came along with a recursive bind of /tmp:
		 * the app has no business with them. */
		if (!strncmp(sb->dir, e->root, rl) && sb->dir[rl] == '/') {
			snprintf(q, sizeof(q), "%s%s", newroot, sb->dir);
			umount2(q, MNT_DETACH);
		}
		for (size_t k = 0; k < e->n_except; k++) {
			snprintf(p, sizeof(p), "%s%s/%s", view, e->root, e->except[k]);
			snprintf(q, sizeof(q), "%s%s/%s", newroot, e->root, e->except[k]);
			bind_or_fail(errfd, p, q, false);
		}
		log_debug("native: %s (%zu exceptions)", e->root, e->n_except);
	}
	/* The kernel's own trees are always the host's. */
	static const char *const kernel_dirs[] = { "/proc", "/sys", "/dev" };
	for (size_t i = 0; i < ARRAY_SIZE(kernel_dirs); i++) {
		const struct vfs_plan_entry *e = sb->plan ? vfs_plan_find(sb->plan, kernel_dirs[i])
							  : NULL;
		if (e && e->provable && e->n_except == 0)
			continue; /* already bound */
		snprintf(p, sizeof(p), "%s%s", newroot, kernel_dirs[i]);
		bind_or_fail(errfd, kernel_dirs[i], p, true);
	}
	/* The pod's whole filesystem, unfiltered. */
	snprintf(p, sizeof(p), "%s/pod", sb->dir);
	snprintf(q, sizeof(q), "%s%s", newroot, PODENV_ROOT_DIR);
	bind_or_fail(errfd, p, q, true);

	if (chdir(newroot) < 0)
		child_fail(errfd, 125, "entering %s", newroot);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		child_fail(errfd, 125, "switching the root to the pod's filesystem");
	if (umount2(".", MNT_DETACH) < 0)
		child_fail(errfd, 125, "detaching the old root");
	if (chdir("/") < 0)
		child_fail(errfd, 125, "chdir /");
	if (o->set_hostname && sethostname(sb->s->hostname, strlen(sb->s->hostname)) < 0)
		child_fail(errfd, 125, "setting the hostname to %s", sb->s->hostname);
	/* Keep the working directory (routed local by default). */
	if (sb->cwd[0] && chdir(sb->cwd) < 0)
		child_fail(errfd, 125, "entering the working directory %s in the pod's view",
			   sb->cwd);
	if (sb->incoming_on)
		child_listen_filter(sb, errfd);
	if (sb->unix_on && !sb->incoming_on)
		child_unix_filter(errfd); /* else it shares the listen() filter */
	extern char **environ;
	environ = o->env;
	execvp(o->argv[0], o->argv);
	child_fail(errfd, errno == ENOENT ? 127 : 126, "cannot run %s", o->argv[0]);
}

/* --- the parent ------------------------------------------------------------ */

static int on_child_exit(struct loop_source *src, const siginfo_t *si, void *userdata)
{
	struct sandbox *sb = userdata;
	(void)src;

	sb->exited = true;
	sb->status = si->si_code == CLD_EXITED ? si->si_status : 128 + si->si_status;
	loop_exit(sb->s->loop, 0);
	return 0;
}

/* Messages from the child before its exec: 'F' + the network fds, or
 * 'E' + an error. EOF means the exec happened. */
static void on_incoming_fatal(void *userdata, const char *msg);

static int on_child_error(struct loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct sandbox *sb = userdata;
	char buf[ERR_MSG_MAX + 2];
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * NET_NFDS)];
	} cm;
	struct iovec iov = { buf, sizeof(buf) - 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
			     .msg_controllen = sizeof(cm.buf) };
	ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	(void)events;

	if (n > 0 && buf[0] == 'F') {
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		int fds[NET_NFDS], got[NET_NFDS];
		struct err e;
		if (!c || c->cmsg_type != SCM_RIGHTS || n < 2 ||
		    c->cmsg_len != CMSG_LEN(sizeof(int) * NET_NFDS)) {
			snprintf(sb->child_error, sizeof(sb->child_error),
				 "the sandbox sent no network");
			sb->status = 125;
			kill(sb->child, SIGKILL); /* it waits for our answer: do not leave it */
			return 0;
		}
		memcpy(got, CMSG_DATA(c), sizeof(got));
		for (int i = 0; i < NET_NFDS; i++) {
			fds[i] = ((uint8_t)buf[1] & (1u << i)) ? got[i] : -1;
			if (fds[i] < 0)
				close(got[i]);
		}
		err_clear(&e);
		if (net_start(sb->s, fds, &sb->net, &e) < 0) {
			snprintf(sb->child_error, sizeof(sb->child_error), "%s", e.msg);
			sb->status = 125;
			kill(sb->child, SIGKILL);
			return 0;
		}
		if (write(fd, "G", 1) != 1)
			kill(sb->child, SIGKILL);
		return 0;
	}
	if (n > 0 && buf[0] == 'U') {
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		int nfd;
		struct err e;
		if (!c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int))) {
			snprintf(sb->child_error, sizeof(sb->child_error),
				 "the sandbox sent no connect() watch");
			sb->status = 125;
			kill(sb->child, SIGKILL);
			return 0;
		}
		memcpy(&nfd, CMSG_DATA(c), sizeof(int));
		err_clear(&e);
		if (unixsock_start(sb->s, nfd, &sb->unixsock, &e) < 0) {
			snprintf(sb->child_error, sizeof(sb->child_error), "%s", e.msg);
			sb->status = 125;
			kill(sb->child, SIGKILL);
			return 0;
		}
		if (write(fd, "G", 1) != 1)
			kill(sb->child, SIGKILL);
		return 0;
	}
	if (n > 0 && buf[0] == 'S') {
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		int fds[2];
		struct err e;
		if (!c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(fds))) {
			snprintf(sb->child_error, sizeof(sb->child_error),
				 "the sandbox sent no listen() watch");
			sb->status = 125;
			kill(sb->child, SIGKILL);
			return 0;
		}
		memcpy(fds, CMSG_DATA(c), sizeof(fds));
		err_clear(&e);
		if (incoming_start(sb->s, fds[0], fds[1], on_incoming_fatal, sb, &sb->incoming,
				   &e) < 0) {
			snprintf(sb->child_error, sizeof(sb->child_error), "%s", e.msg);
			sb->status = 125;
			kill(sb->child, SIGKILL);
			return 0;
		}
		sb->s->incoming = sb->incoming;
		if (sb->unix_on) {
			/* connect() shares the listen() filter (listen_filter_install) */
			if (unixsock_start(sb->s, -1, &sb->unixsock, &e) < 0) {
				snprintf(sb->child_error, sizeof(sb->child_error), "%s", e.msg);
				sb->status = 125;
				kill(sb->child, SIGKILL);
				return 0;
			}
			listen_watch_set_other(incoming_watch(sb->incoming), unixsock_notified,
					       sb->unixsock);
		}
		if (write(fd, "G", 1) != 1)
			kill(sb->child, SIGKILL);
		return 0;
	}
	if (n > 0 && buf[0] == 'E') {
		buf[n] = '\0';
		snprintf(sb->child_error, sizeof(sb->child_error), "%s", buf + 1);
	}
	/* EOF or an error: nothing more to read. */
	loop_source_free(src);
	sb->err_src = NULL;
	return 0;
}

static int on_signal(struct loop_source *src, const struct signalfd_siginfo *si, void *userdata)
{
	struct sandbox *sb = userdata;
	(void)src;

	/* Signals the terminal sends (^C, ^\, window size) reach the app
	 * directly: it is in our process group. Forward only the others. */
	if (si->ssi_code == SI_KERNEL)
		return 0;
	if (sb->child > 0 && !sb->exited)
		kill(sb->child, (int)si->ssi_signo);
	return 0;
}

static int on_kill_timer(struct loop_source *src, usec_t now, void *userdata)
{
	struct sandbox *sb = userdata;
	(void)src;
	(void)now;

	if (!sb->exited)
		kill(sb->child, SIGKILL);
	return 0;
}

/* Ends the app (SIGTERM, SIGKILL 3 s later); podenv then exits non-zero. */
static void stop_app(struct sandbox *sb)
{
	sb->lost = true;
	if (sb->child > 0 && !sb->exited && !sb->kill_timer) {
		kill(sb->child, SIGTERM);
		loop_add_timer(sb->s->loop, now_usec() + 3 * USEC_PER_SEC, on_kill_timer, sb,
			       &sb->kill_timer);
	}
}

static void on_lost(struct session *s)
{
	struct sandbox *sb = s->userdata;

	log_error("lost the agent: %s; stopping %s", s->lost_reason, sb->o->argv[0]);
	stop_app(sb);
}

static void on_incoming_fatal(void *userdata, const char *msg)
{
	struct sandbox *sb = userdata;

	log_error("%s", msg);
	stop_app(sb);
}

/* Finds argv0 in PATH (of env) for the router's "running program" entry. */
static char *resolve_program(const char *argv0, char *const *env)
{
	const char *path = NULL;

	if (strchr(argv0, '/'))
		return realpath(argv0, NULL);
	for (char *const *e = env; e && *e; e++)
		if (!strncmp(*e, "PATH=", 5))
			path = *e + 5;
	if (!path)
		path = "/usr/bin:/bin";
	_cleanup_free_ char *copy = xstrdup(path);
	char *save = NULL;
	for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		char cand[4096];
		snprintf(cand, sizeof(cand), "%s/%s", *d ? d : ".", argv0);
		if (access(cand, X_OK) == 0)
			return realpath(cand, NULL);
	}
	return NULL;
}

/* The host's nsswitch.conf with its hosts line made "files dns". */
static char *app_nsswitch(void)
{
	struct buf b;
	bool had_hosts = false;
	FILE *f = fopen("/etc/nsswitch.conf", "re");
	char line[1024];

	buf_init(&b);
	while (f && fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "hosts:", 6)) {
			buf_printf(&b, "hosts: files dns\n");
			had_hosts = true;
		} else {
			buf_append(&b, line, strlen(line));
		}
	}
	if (f)
		fclose(f);
	if (!had_hosts)
		buf_printf(&b, "hosts: files dns\n");
	return buf_steal(&b, NULL);
}

static int write_file(const char *path, const char *text)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	return write(fd, text, strlen(text)) == (ssize_t)strlen(text) ? 0 : -errno;
}

static int enter_user_namespace(struct err *reterr)
{
	char map[64];
	uid_t uid = geteuid();
	gid_t gid = getegid();
	int r;

	if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
		return err_set_errno(reterr, -errno,
				     "creating a user namespace (podenv runs unprivileged through one; "
				     "check /proc/sys/user/max_user_namespaces, or run as root)");
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)uid, (unsigned)uid);
	r = write_file("/proc/self/uid_map", map);
	if (r == 0)
		r = write_file("/proc/self/setgroups", "deny\n");
	if (r == 0) {
		snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)gid, (unsigned)gid);
		r = write_file("/proc/self/gid_map", map);
	}
	if (r < 0)
		return err_set_errno(reterr, r, "mapping our user and group in the user namespace");
	return 0;
}

void sandbox_router_env(const struct cfg *cfg, const char *cwd, const char *program,
			struct vfs_router_env *ret)
{
	*ret = (struct vfs_router_env){
		.home = getenv("HOME"),
		.cwd = cwd,
		.tmpdir = getenv("TMPDIR"),
		.program = program,
		.targetless = cfg->target.kind == CFG_TARGET_NONE,
	};
}

static int mount_views(struct sandbox *sb, struct err *reterr)
{
	struct session *s = sb->s;
	char p[128];
	int r;

	if (geteuid() != 0) {
		/* Unprivileged: a user namespace of our own gives the mount
		 * privileges, with our ids mapped to themselves (files keep their
		 * owners; the kernel shows unmapped ones as nobody). */
		r = enter_user_namespace(reterr);
		if (r < 0)
			return r;
	} else if (unshare(CLONE_NEWNS) < 0) {
		return err_set_errno(reterr, -errno, "creating a private mount namespace");
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return err_set_errno(reterr, -errno, "making mounts private");
	snprintf(sb->dir, sizeof(sb->dir), "/tmp/podenv-XXXXXX");
	if (!mkdtemp(sb->dir))
		return err_set_errno(reterr, -errno, "creating %s", sb->dir);
	/* Everything below lives in a tmpfs of our private namespace: after a
	 * crash only the empty directory remains on the host. */
	if (mount("podenv", sb->dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700,size=64k") < 0)
		return err_set_errno(reterr, -errno, "mounting a tmpfs on %s", sb->dir);
	for (const char *const *d = (const char *const[]){ "root", "pod", "view", NULL }; *d; d++) {
		snprintf(p, sizeof(p), "%s/%s", sb->dir, *d);
		if (mkdir(p, 0700) < 0)
			return err_set_errno(reterr, -errno, "creating %s", p);
	}

	_cleanup_free_ char *program = resolve_program(sb->o->argv[0], sb->o->env);
	struct vfs_router_env renv;
	sandbox_router_env(s->cfg, getcwd(sb->cwd, sizeof(sb->cwd)), program, &renv);
	r = vfs_router_new(s->cfg, &renv, &sb->router, reterr);
	if (r < 0)
		return r;
	vfs_plan_new(sb->router, &sb->plan);

	static const char *const synthetic[] = { "/run/podenv", PODENV_ROOT_DIR, NULL };
	/* The ELF interpreters the kernel loads for dynamic programs: always
	 * the host's, as under mirrord. */
	const char *anchors[16] = { sb->cwd };
	size_t na = 1;
	if (program)
		anchors[na++] = program;
	glob_t g = { 0 };
	if (glob("/lib64/ld-*.so*", 0, NULL, &g) == 0 || glob("/lib/ld-*.so*", GLOB_APPEND, NULL, &g) == 0)
		for (size_t i = 0; i < g.gl_pathc && na < ARRAY_SIZE(anchors) - 1; i++)
			anchors[na++] = g.gl_pathv[i];
	anchors[na] = NULL;
	/* With its own network, the app resolves through podenv's DNS server
	 * (resolv.conf), and glibc asks nothing but files and DNS (a host's
	 * systemd-resolved module would go around the server). */
	struct vfs_file_override overrides[3] = { { 0 } };
	if (sb->network) {
		sb->resolv_conf = net_resolv_conf(s->resolv_conf);
		sb->nsswitch = app_nsswitch();
		overrides[0] = (struct vfs_file_override){ "/etc/resolv.conf", sb->resolv_conf };
		overrides[1] = (struct vfs_file_override){ "/etc/nsswitch.conf", sb->nsswitch };
	}
	struct vfs_mount_opts mo = {
		.loop = s->loop,
		.client = s->client,
		.router = sb->router,
		.private_prefix = sb->dir,
		.synthetic_dirs = synthetic,
		.local_anchors = anchors,
		.overrides = overrides,
		.allow_other = geteuid() == 0,
		.trace = s->trace ? trace_file : NULL,
		.trace_userdata = s->trace,
	};
	snprintf(p, sizeof(p), "%s/root", sb->dir);
	mo.mountpoint = p;
	r = vfs_mount_new(&mo, &sb->root_mount, reterr);
	globfree(&g);
	if (r < 0)
		return r;
	snprintf(p, sizeof(p), "%s/pod", sb->dir);
	mo.router = NULL;
	mo.synthetic_dirs = NULL;
	mo.local_anchors = NULL; /* (pointed into g, freed above) */
	mo.overrides = NULL;
	mo.trace = NULL;
	mo.read_only = vfs_router_mode(sb->router) != CFG_FS_WRITE;
	return vfs_mount_new(&mo, &sb->pod_mount, reterr);
}

int sandbox_run(const struct sandbox_opts *o, int *status, struct err *reterr)
{
	struct sandbox sb = { .o = o, .s = o->session, .errfd = -1, .netns_fd = -1 };
	const struct cfg_network *nw = &o->session->cfg->feature.network;

	/* Outgoing TCP or UDP, or DNS, from the pod, or incoming traffic
	 * (its listeners are watched and reached in its namespace): the app
	 * needs its own network namespace. With all of them off it keeps the
	 * host's. */
	sb.incoming_on = incoming_wanted(o->session->cfg);
	sb.unix_on = nw->outgoing.unix_streams.n > 0;
	sb.network = nw->outgoing.tcp || nw->outgoing.udp || nw->dns.enabled || sb.incoming_on;
	struct loop_source *sigs[ARRAY_SIZE(forwarded_signals)] = { 0 };
	struct loop_source *child_src = NULL;
	int sv[2] = { -1, -1 };
	int r;

	r = mount_views(&sb, reterr);
	if (r < 0)
		goto out;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		r = err_set_errno(reterr, -errno, "socketpair");
		goto out;
	}
	for (size_t i = 0; i < ARRAY_SIZE(forwarded_signals); i++)
		loop_add_signal(sb.s->loop, forwarded_signals[i], on_signal, &sb, &sigs[i]);
	sb.s->on_lost = on_lost;
	sb.s->userdata = &sb;
	fflush(NULL);
	sb.child = fork();
	if (sb.child < 0) {
		r = err_set_errno(reterr, -errno, "fork");
		goto out;
	}
	if (sb.child == 0) {
		close(sv[0]);
		child_main(&sb, sv[1]);
		_exit(125);
	}
	close(sv[1]);
	sv[1] = -1;
	loop_add_io(sb.s->loop, sv[0], EPOLLIN, on_child_error, &sb, &sb.err_src);
	r = loop_add_child(sb.s->loop, sb.child, on_child_exit, &sb, &child_src);
	if (r < 0) {
		kill(sb.child, SIGKILL);
		waitpid(sb.child, NULL, 0);
		err_set_errno(reterr, r, "watching the app");
		goto out;
	}
	r = loop_run(sb.s->loop);
	if (r < 0) {
		err_set_errno(reterr, r, "event loop");
		goto out;
	}
	/* A message and no exec: the sandbox failed, not the app. */
	if (sb.err_src)
		on_child_error(sb.err_src, sv[0], EPOLLIN, &sb);
	if (sb.child_error[0]) {
		*status = sb.status;
		if (sb.status == 126 || sb.status == 127) {
			/* The sandbox was fine; the command could not run, which a
			 * shell reports the same way. */
			log_error("%s", sb.child_error);
			r = 0;
			goto out;
		}
		r = err_set(reterr, -EIO, "%s", sb.child_error);
		goto out;
	}
	*status = sb.status;
	if (sb.lost && *status == 0)
		*status = 1;
	r = 0;
out:
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		loop_source_free(sigs[i]);
	loop_source_free(child_src);
	loop_source_free(sb.err_src);
	loop_source_free(sb.kill_timer);
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	sb.s->on_lost = NULL;
	sb.s->incoming = NULL;
	unixsock_free(sb.unixsock); /* it may answer on the listen() watch's fd */
	incoming_free(sb.incoming);
	/* Requests still waiting on the agent answer their owners (FUSE,
	 * the DNS server) now, while those exist. */
	link_abort(sb.s->link);
	net_free(sb.net);
	vfs_mount_free(sb.pod_mount);
	vfs_mount_free(sb.root_mount);
	vfs_plan_free(sb.plan);
	vfs_router_free(sb.router);
	free(sb.resolv_conf);
	free(sb.nsswitch);
	if (sb.dir[0] && strcmp(sb.dir, "/tmp/podenv-XXXXXX") != 0) {
		umount2(sb.dir, MNT_DETACH);
		rmdir(sb.dir);
	}
	return r;
}
