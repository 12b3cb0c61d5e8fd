/* The agent's target: a process found by PID or by container id, pinned by
 * a pidfd, whose root directory and namespaces are opened once.
 */
#define LOG_TARGET "podenv::agent::target"
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include "agent/agent.h"
#include "common/buf.h"
#include "common/log.h"

static int open_in_proc(pid_t pid, const char *what, int flags, struct err *reterr)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
	fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		return err_set_errno(reterr, -errno, "open %s", path);
	return fd;
}

int agent_target_open_pid(pid_t pid, struct agent_target **ret, struct err *reterr)
{
	struct agent_target *t;
	int r;

	if (pid <= 0)
		return err_set(reterr, -EINVAL, "invalid target PID %d", (int)pid);
	t = xcalloc(1, sizeof(*t));
	t->pid = pid;
	t->pidfd = t->root_fd = t->net_fd = t->uts_fd = -1;

	t->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (t->pidfd < 0) {
		r = err_set_errno(reterr, -errno, "target process %d", (int)pid);
		goto fail;
	}
	r = t->root_fd = open_in_proc(pid, "root", O_PATH | O_DIRECTORY, reterr);
	if (r < 0)
		goto fail;
	r = t->net_fd = open_in_proc(pid, "ns/net", O_RDONLY, reterr);
	if (r < 0)
		goto fail;
	r = t->uts_fd = open_in_proc(pid, "ns/uts", O_RDONLY, reterr);
	if (r < 0)
		goto fail;
	/* The fds were opened by path: if the PID died and was reused
	 * between pidfd_open and now, they belong to someone else. A pidfd
	 * that still polls "alive" after the opens proves they do not. */
	if (syscall(SYS_pidfd_send_signal, t->pidfd, 0, NULL, 0) < 0) {
		r = err_set_errno(reterr, -errno, "target process %d went away", (int)pid);
		goto fail;
	}
	*ret = t;
	return 0;
fail:
	agent_target_free(t);
	return r;
}

void agent_target_free(struct agent_target *t)
{
	if (!t)
		return;
	closep(&t->pidfd);
	closep(&t->root_fd);
	closep(&t->net_fd);
	closep(&t->uts_fd);
	free(t);
}

void agent_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

/* Reads a whole fd into a NUL-terminated buffer of at most max bytes. */
static int read_all(int fd, size_t max, char **ret, size_t *ret_len)
{
	struct buf b;
	ssize_t n;

	buf_init(&b);
	for (;;) {
		void *p = buf_reserve(&b, 65536);
		n = read(fd, p, 65536);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int r = -errno;
			buf_done(&b);
			return r;
		}
		if (n == 0)
			break;
		buf_commit(&b, (size_t)n);
		if (buf_len(&b) > max) {
			buf_done(&b);
			return -EFBIG;
		}
	}
	*ret = buf_steal(&b, ret_len);
	return 0;
}

int agent_target_environ(const struct agent_target *t, char ***ret, struct err *reterr)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *data = NULL;
	size_t len, n = 0;
	char **v;
	int r;

	fd = open_in_proc(t->pid, "environ", O_RDONLY, reterr);
	if (fd < 0)
		return fd;
	r = read_all(fd, 16 << 20, &data, &len);
	if (r < 0)
		return err_set_errno(reterr, r, "read /proc/%d/environ", (int)t->pid);
	for (size_t i = 0; i < len; i++)
		if (data[i] == '\0')
			n++;
	v = xcalloc(n + 2, sizeof(*v));
	n = 0;
	for (size_t i = 0; i < len;) {
		size_t l = strnlen(data + i, len - i);
		if (memchr(data + i, '=', l) && data[i] != '=')
			v[n++] = xstrndup(data + i, l);
		i += l + 1;
	}
	*ret = v;
	return (int)n;
}

bool agent_target_shares_ns(int ns_fd, const char *self_ns)
{
	struct stat a, b;

	return fstat(ns_fd, &a) == 0 && stat(self_ns, &b) == 0 && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
}

int agent_target_hostname(const struct agent_target *t, char *out, size_t outsz,
			  struct err *reterr)
{
	struct utsname u;
	int sv[2], status;
	ssize_t n;
	pid_t child;

	/* Already in that namespace (a process of this machine, or an agent
	 * without privileges, which could not enter it anyway): ask directly. */
	if (agent_target_shares_ns(t->uts_fd, "/proc/self/ns/uts")) {
		if (uname(&u) < 0)
			return err_set_errno(reterr, -errno, "uname");
		snprintf(out, outsz, "%s", u.nodename);
		return 0;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return err_set_errno(reterr, -errno, "socketpair");
	child = fork();
	if (child < 0) {
		close(sv[0]);
		close(sv[1]);
		return err_set_errno(reterr, -errno, "fork");
	}
	if (child == 0) {
		close(sv[0]);
		if (setns(t->uts_fd, CLONE_NEWUTS) < 0 || uname(&u) < 0)
			_exit(1);
		n = write(sv[1], u.nodename, strlen(u.nodename));
		_exit(n < 0 ? 1 : 0);
	}
	close(sv[1]);
	n = read(sv[0], out, outsz - 1);
	close(sv[0]);
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	if (n <= 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return err_set(reterr, -EPERM, "cannot enter the UTS namespace of process %d",
			       (int)t->pid);
	out[n] = '\0';
	return 0;
}

int agent_target_read_file(const struct agent_target *t, const char *path, size_t max,
			   char **ret, size_t *ret_len)
{
	struct open_how how = {
		.flags = O_RDONLY | O_CLOEXEC,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	_cleanup_close_ int fd = -1;

	while (*path == '/')
		path++;
	fd = (int)syscall(SYS_openat2, t->root_fd, *path ? path : ".", &how, sizeof(how));
	if (fd < 0)
		return -errno;
	return read_all(fd, max, ret, ret_len);
}

/* Does /proc/PID/cgroup name container `id`? Runtimes put the full 64-hex
 * id in the cgroup path (".../cri-containerd-<id>.scope", ".../docker/<id>"),
 * so the id, or a prefix of it, must start on a non-hex boundary. */
static bool cgroup_has_id(const char *text, const char *id)
{
	for (const char *p = strstr(text, id); p; p = strstr(p + 1, id))
		if (p == text || !isxdigit((unsigned char)p[-1]))
			return true;
	return false;
}

static void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

static unsigned long long proc_start_time(pid_t pid)
{
	char path[64], data[1024];
	unsigned long long start = ~0ULL;
	_cleanup_close_ int fd = -1;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return start;
	n = read(fd, data, sizeof(data) - 1);
	if (n <= 0)
		return start;
	data[n] = '\0';
	/* Field 22 (starttime) counts from after the ")" that ends comm,
	 * which may itself contain spaces and parentheses. */
	char *p = strrchr(data, ')');
	if (!p)
		return start;
	p++;
	for (int field = 2; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	if (p)
		start = strtoull(p + 1, NULL, 10);
	return start;
}

int agent_target_find_container(const char *id, pid_t *ret_pid, struct err *reterr)
{
	_cleanup_(closedirp) DIR *d = NULL;
	unsigned long long best_start = ~0ULL;
	pid_t best = 0;
	struct dirent *de;
	size_t idlen = strlen(id);

	/* Accept "containerd://<id>" as Kubernetes reports containerID. */
	const char *sep = strstr(id, "://");
	if (sep)
		id = sep + 3, idlen = strlen(id);
	if (idlen < 12 || idlen > 128)
		return err_set(reterr, -EINVAL, "container id '%s': expected 12 to 64 hex digits", id);
	for (size_t i = 0; i < idlen; i++)
		if (!isxdigit((unsigned char)id[i]))
			return err_set(reterr, -EINVAL, "container id '%s': not hexadecimal", id);

	d = opendir("/proc");
	if (!d)
		return err_set_errno(reterr, -errno, "open /proc");
	while ((de = readdir(d))) {
		char path[64], text[4096];
		_cleanup_close_ int fd = -1;
		ssize_t n;
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (*end || pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/cgroup", pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue; /* gone, or not ours to read */
		n = read(fd, text, sizeof(text) - 1);
		if (n <= 0)
			continue;
		text[n] = '\0';
		if (!cgroup_has_id(text, id))
			continue;
		unsigned long long start = proc_start_time((pid_t)pid);
		if (!best || start < best_start) {
			best = (pid_t)pid;
			best_start = start;
		}
	}
	if (!best)
		return err_set(reterr, -ESRCH, "no process of container %s on this node", id);
	*ret_pid = best;
	return 0;
}
