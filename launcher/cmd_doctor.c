/* `podenv doctor [CONFIG FLAGS]`: checks what this machine needs, one line
 * per check with ✓ or ✗ and, for ✗, the fix. Exits 1 when something
 * required is missing (FUSE, openat2, the agent, a recent enough kernel;
 * TUN unless the configuration turns the app's network off; working user
 * namespaces when not root; the target when one is given).
 *
 * The access checks are the ones `podenv exec` runs before starting
 * (vfs_fuse_check, vnet_tun_check), so doctor and exec agree.
 */
#define LOG_TARGET "podenv::doctor"
#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/loop.h"
#include "launcher/cli.h"
#include "launcher/k8s_target.h"
#include "launcher/session.h"
#include "vfs/vfs.h"
#include "vnet/vnet.h"

/* The oldest kernel podenv runs on: epoll_pwait2 (the loop) is 5.11. */
#define KERNEL_MIN_MAJOR 5
#define KERNEL_MIN_MINOR 11

struct doctor {
	int failed;   /* required checks that failed */
	int optional; /* optional checks that failed */
};

/* One line: "✓ LABEL: DETAIL" or "✗ LABEL: DETAIL — fix: FIX". */
static void report(struct doctor *d, bool ok, bool required, const char *label, const char *detail,
		   const char *fix)
{
	if (ok) {
		printf("\u2713 %s: %s\n", label, detail);
		return;
	}
	printf("\u2717 %s: %s%s \u2014 fix: %s\n", label, detail, required ? "" : " (optional)",
	       fix);
	if (required)
		d->failed++;
	else
		d->optional++;
}

static bool file_contains_word(const char *path, const char *word)
{
	FILE *f = fopen(path, "re");
	char line[512];
	bool found = false;

	while (f && !found && fgets(line, sizeof(line), f))
		for (char *save = NULL, *w = strtok_r(line, " \t\n", &save); w && !found;
		     w = strtok_r(NULL, " \t\n", &save))
			found = !strcmp(w, word);
	if (f)
		fclose(f);
	return found;
}

static bool is_char_device(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISCHR(st.st_mode);
}

static void check_kernel(struct doctor *d)
{
	struct utsname u;
	unsigned major = 0, minor = 0;
	char detail[160];

	uname(&u);
	sscanf(u.release, "%u.%u", &major, &minor);
	bool ok = major > KERNEL_MIN_MAJOR ||
		  (major == KERNEL_MIN_MAJOR && minor >= KERNEL_MIN_MINOR);
	snprintf(detail, sizeof(detail), "Linux %s (%d.%d or later needed)", u.release,
		 KERNEL_MIN_MAJOR, KERNEL_MIN_MINOR);
	report(d, ok, true, "kernel", detail, "run podenv on a newer kernel");
}

static void check_fuse(struct doctor *d)
{
	bool dev = is_char_device("/dev/fuse");
	bool fs = file_contains_word("/proc/filesystems", "fuse");
	char detail[256];
	struct err e;

	snprintf(detail, sizeof(detail), "%s, %s", dev ? "/dev/fuse is there" : "no /dev/fuse",
		 fs ? "\"fuse\" in /proc/filesystems" : "no \"fuse\" in /proc/filesystems");
	report(d, dev && fs, true, "FUSE", detail,
	       "load the fuse module (modprobe fuse) or use a kernel built with CONFIG_FUSE_FS");
	if (!dev)
		return;
	int r = vfs_fuse_check(&e);
	snprintf(detail, sizeof(detail), "%s by uid %u",
		 r < 0 ? "not readable and writable" : "readable and writable", (unsigned)getuid());
	report(d, r >= 0, true, "/dev/fuse access", detail,
	       "give this user read-write access to /dev/fuse (e.g. chmod 0666 /dev/fuse, as most "
	       "distributions ship it), or run podenv as root");
}

/* The first executable name in $PATH, or NULL. Caller frees. */
static char *find_in_path(const char *name)
{
	const char *path = getenv("PATH");
	_cleanup_free_ char *copy = xstrdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");

	for (char *save = NULL, *dir = strtok_r(copy, ":", &save); dir;
	     dir = strtok_r(NULL, ":", &save)) {
		char *cand = xasprintf("%s/%s", *dir ? dir : ".", name);
		if (access(cand, X_OK) == 0)
			return cand;
		free(cand);
	}
	return NULL;
}

static void check_fusermount(struct doctor *d)
{
	_cleanup_free_ char *p = find_in_path("fusermount3");

	report(d, p != NULL, false, "fusermount3", p ? p : "not found in $PATH",
	       "install fuse3 (podenv mounts on its own; fusermount3 -u unmounts `podenv mount`)");
}

static void check_tun(struct doctor *d, bool required)
{
	bool dev = is_char_device("/dev/net/tun");
	const char *why = required ? "" : " (the configuration turns the app's network off)";
	char detail[256];
	struct err e;

	snprintf(detail, sizeof(detail), "%s%s", dev ? "/dev/net/tun is there" : "no /dev/net/tun",
		 why);
	report(d, dev, required, "TUN", detail,
	       "load the tun module (modprobe tun), or turn the network off (--no-outgoing and "
	       "\"dns\": false)");
	if (!dev)
		return;
	int r = vnet_tun_check(&e);
	snprintf(detail, sizeof(detail), "%s by uid %u%s",
		 r < 0 ? "not readable and writable" : "readable and writable", (unsigned)getuid(),
		 why);
	report(d, r >= 0, required, "/dev/net/tun access", detail,
	       "give this user read-write access to /dev/net/tun (chmod 0666 /dev/net/tun), run "
	       "podenv as root, or turn the network off");
}

static void check_userns(struct doctor *d)
{
	FILE *f = fopen("/proc/sys/user/max_user_namespaces", "re");
	long max = -1;
	int status = -1;
	char detail[200];
	pid_t pid;

	if (f) {
		if (fscanf(f, "%ld", &max) != 1)
			max = -1;
		fclose(f);
	}
	/* The real test: a child creates one (the launcher does the same when
	 * not root). A child, so this process stays where it is. */
	fflush(NULL);
	pid = fork();
	if (pid == 0)
		_exit(unshare(CLONE_NEWUSER) == 0 ? 0 : 1);
	if (pid > 0)
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	bool works = pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
	snprintf(detail, sizeof(detail), "max_user_namespaces %ld, creating one as uid %u %s%s",
		 max, (unsigned)getuid(), works ? "works" : "fails",
		 geteuid() == 0 ? " (root does not need them)" : "");
	report(d, works && max > 0, geteuid() != 0, "user namespaces", detail,
	       "allow unprivileged user namespaces (sysctl user.max_user_namespaces=15000; on "
	       "Debian/Ubuntu also kernel.unprivileged_userns_clone=1 or the AppArmor userns "
	       "restriction off), or run podenv as root");
}

static void check_seccomp(struct doctor *d)
{
	bool ok = file_contains_word("/proc/sys/kernel/seccomp/actions_avail", "user_notif");

	report(d, ok, false, "seccomp user notification",
	       ok ? "user_notif in /proc/sys/kernel/seccomp/actions_avail"
		  : "no user_notif in /proc/sys/kernel/seccomp/actions_avail",
	       "use a kernel with CONFIG_SECCOMP_FILTER, 5.0 or later (this build does not use it "
	       "yet)");
}

static void check_openat2(struct doctor *d)
{
	struct open_how how = {
		.flags = O_PATH | O_CLOEXEC | O_DIRECTORY,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	long fd = syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof(how));
	char detail[160];

	if (fd >= 0)
		close((int)fd);
	snprintf(detail, sizeof(detail), "%s",
		 fd >= 0 ? "works (RESOLVE_IN_ROOT)" : strerror(errno));
	report(d, fd >= 0, true, "openat2", detail,
	       "the agent confines paths with openat2: use Linux 5.6 or later, and no seccomp "
	       "profile that blocks it");
}

/* Runs `agent --version`; its first output line in out. 0, or -errno. */
static int agent_version(const char *agent, char *out, size_t size)
{
	int p[2], status = 0;
	pid_t pid;
	ssize_t n = 0;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -errno;
	}
	if (pid == 0) {
		dup2(p[1], 1);
		execlp(agent, agent, "--version", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	/* Read to EOF, at most 5 s. */
	usec_t deadline = now_usec() + 5 * USEC_PER_SEC;
	bool eof = false;
	while (!eof && (size_t)n < size - 1) {
		usec_t now = now_usec();
		struct pollfd pfd = {.fd = p[0], .events = POLLIN};
		if (now >= deadline || poll(&pfd, 1, (int)((deadline - now) / 1000) + 1) <= 0)
			break;
		ssize_t k = read(p[0], out + n, size - 1 - (size_t)n);
		if (k <= 0)
			eof = k == 0 || errno != EINTR;
		else
			n += k;
	}
	close(p[0]);
	out[n] = '\0';
	out[strcspn(out, "\n")] = '\0';
	if (!eof)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!eof)
		return -ETIMEDOUT;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !*out)
		return WIFEXITED(status) && WEXITSTATUS(status) == 127 ? -ENOENT : -EIO;
	return 0;
}

static void check_agent(struct doctor *d)
{
	const char *agent = cli_agent_path();
	char version[256], detail[4096 + 300];
	int r;

	/* --version may take a moment on a cold cache; the wait is bounded. */
	r = agent_version(agent, version, sizeof(version));
	if (r == 0)
		snprintf(detail, sizeof(detail), "%s (%s)", agent, version);
	else
		snprintf(detail, sizeof(detail), "%s: %s", agent,
			 r == -ENOENT ? "not found or not executable" : strerror(-r));
	report(d, r == 0, true, "podenv-agent", detail,
	       "install podenv-agent next to podenv or in $PATH, or set PODENV_AGENT to it");
}

/* A Kubernetes target: the API server answers and the target resolves to
 * a running container (no agent is started). */
static void check_kube_target(struct doctor *d, const struct cfg *cfg, const char *label)
{
	struct k8s_api *api = NULL;
	struct k8s_target t;
	char detail[ERR_MSG_MAX + 256];
	struct err e;
	int r;

	r = k8s_api_open(cfg, &api, &e);
	if (r >= 0)
		r = k8s_target_resolve(api, &cfg->target, &t, &e);
	if (r < 0) {
		report(d, false, true, label, e.msg,
		       "check the kubeconfig and the target (`podenv ls` lists the targets)");
	} else {
		if (t.pod)
			snprintf(detail, sizeof(detail), "pod %s/%s, container %s (%s) on node %s",
				 t.namespace, t.pod, t.container, t.container_id, t.node);
		else
			snprintf(detail, sizeof(detail), "targetless, namespace %s", t.namespace);
		report(d, true, true, label, detail, "");
		k8s_target_done(&t);
	}
	k8s_api_free(api);
}

static void check_target(struct doctor *d, const struct cfg *cfg)
{
	_cleanup_free_ char *name = cfg_target_format(&cfg->target);
	char label[256], detail[512], p[64];

	snprintf(label, sizeof(label), "target %s", name);
	if (cfg->target.kind != CFG_TARGET_PID) {
		check_kube_target(d, cfg, label);
		return;
	}
	int pid = (int)cfg->target.pid;
	snprintf(p, sizeof(p), "/proc/%d", pid);
	if (access(p, F_OK) < 0) {
		snprintf(detail, sizeof(detail), "no process %d", pid);
		report(d, false, true, label, detail, "give the PID of a running process");
		return;
	}
	/* What the agent opens: the root (for every file) and the environment. */
	snprintf(p, sizeof(p), "/proc/%d/root", pid);
	_cleanup_close_ int root = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int root_err = root < 0 ? errno : 0;
	snprintf(p, sizeof(p), "/proc/%d/environ", pid);
	_cleanup_close_ int env = open(p, O_RDONLY | O_CLOEXEC);
	char c;
	int env_err = env < 0 ? errno : read(env, &c, 1) < 0 ? errno : 0;
	if (!root_err && !env_err)
		snprintf(detail, sizeof(detail), "/proc/%d/root and /proc/%d/environ readable", pid,
			 pid);
	else
		snprintf(detail, sizeof(detail), "/proc/%d/%s: %s", pid,
			 root_err ? "root" : "environ", strerror(root_err ? root_err : env_err));
	report(d, !root_err && !env_err, true, label, detail,
	       "run podenv as the process's user, or as root");
}

int cli_doctor_main(int argc, char **argv)
{
	struct doctor d = {0};
	struct cfg *cfg = NULL;
	struct err e;
	int idx = 1;

	err_clear(&e);
	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		printf("Usage: podenv doctor [OPTIONS]\n\n"
		       "Checks what podenv needs on this machine (kernel, FUSE, TUN, user\n"
		       "namespaces, seccomp, openat2, the agent, and the target when one is "
		       "given),\n"
		       "one line per check with its fix. Exits 1 when something required is "
		       "missing.\n\n"
		       "Options (the configuration flags of `mirrord exec`):\n%s",
		       cfg_source_flags_help());
		return 0;
	}
	if (session_load_config(argc, argv, &idx, false, &cfg, &e) < 0) {
		report(&d, false, true, "configuration", e.msg,
		       "fix the configuration file or flags");
		cfg = NULL;
	} else if (idx < argc) {
		fprintf(stderr, "podenv: doctor: unexpected argument '%s'\n", argv[idx]);
		cfg_free(cfg);
		return 2;
	}
	const struct cfg_network *nw = cfg ? &cfg->feature.network : NULL;
	check_kernel(&d);
	check_fuse(&d);
	check_fusermount(&d);
	check_tun(&d, !nw || nw->outgoing.tcp || nw->outgoing.udp || nw->dns.enabled);
	check_userns(&d);
	check_seccomp(&d);
	check_openat2(&d);
	check_agent(&d);
	if (cfg && cfg->target.kind != CFG_TARGET_NONE)
		check_target(&d, cfg);
	if (d.failed)
		printf("podenv doctor: %d required check%s failed\n", d.failed,
		       d.failed == 1 ? "" : "s");
	else
		printf("podenv doctor: everything podenv needs is here%s\n",
		       d.optional ? " (some optional checks failed)" : "");
	cfg_free(cfg);
	return d.failed ? 1 : 0;
}
