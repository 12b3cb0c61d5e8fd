/* `podenv exec`, `podenv shell` and `podenv mount`. */
#define LOG_TARGET "podenv"
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "launcher/cli.h"
#include "launcher/env.h"
#include "launcher/sandbox.h"
#include "launcher/trace.h"
#include "vfs/vfs.h"
#include "vnet/vnet.h"

extern char **environ;

static void exec_usage(FILE *f, const char *name)
{
	if (!strcmp(name, "shell"))
		fprintf(f, "Usage: podenv shell [OPTIONS]\n\n"
			   "Starts an interactive shell ($SHELL, else /bin/sh) in the pod's "
			   "environment.\n\n");
	else
		fprintf(f, "Usage: podenv exec [OPTIONS] [--] COMMAND [ARGS...]\n\n"
			   "Runs COMMAND with the pod's files, environment and hostname.\n\n");
	fprintf(f, "Options (the configuration flags of `mirrord exec`):\n%s"
		   "  --trace FILE   append each routing decision (files, connections, DNS) to\n"
		   "                 FILE as JSON lines (see `podenv explain`)\n",
		cfg_source_flags_help());
}

/* Takes `--trace FILE` (or --trace=FILE) out of the options before the
 * command, so the config flags parse as usual. A config flag's value is
 * skipped as the config parser would (cfg_source_flag_parse on a scratch
 * source), so "-t --trace" stays a target. Returns a new argv (the
 * strings borrowed; caller frees the array), its length in *ret_argc, and
 * the file in *trace (borrowed, or left as is); NULL with a message when
 * --trace has no value. */
static char **take_trace_flag(int argc, char **argv, int *ret_argc, const char **trace)
{
	char **av = xcalloc((size_t)argc + 1, sizeof(char *));
	struct cfg_source scratch = { 0 };
	struct err e;
	int i = 1, n = 0;

	av[n++] = argv[0];
	while (i < argc) {
		if (!strcmp(argv[i], "--trace")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "podenv: %s: --trace needs a FILE\n", argv[0]);
				free(av);
				cfg_source_done(&scratch);
				return NULL;
			}
			*trace = argv[i + 1];
			i += 2;
			continue;
		}
		if (!strncmp(argv[i], "--trace=", 8)) {
			*trace = argv[i] + 8;
			i++;
			continue;
		}
		int j = i;
		if (strcmp(argv[i], "--") != 0 && cfg_source_flag_parse(&scratch, argc, argv, &j, &e) > 0) {
			while (i < j)
				av[n++] = argv[i++];
			continue;
		}
		/* "--", the command, or something the real parse will report */
		while (i < argc)
			av[n++] = argv[i++];
	}
	cfg_source_done(&scratch);
	*ret_argc = n;
	return av;
}

/* Builds the app's environment: the pod's, filtered by feature.env, over
 * ours; plus PODENV_TARGET and PODENV_ROOT. */
static int build_env(struct session *s, char ***ret, struct err *e)
{
	int r = sandbox_env_build(s->cfg, s->remote_env, environ, ret, e);

	if (r < 0)
		return r;
	sandbox_env_set(ret, "PODENV_TARGET", s->target);
	sandbox_env_set(ret, "PODENV_ROOT", "/run/podenv/root");
	return 0;
}

static int run_sandboxed(struct session *s, char *const *argv, char **env, struct err *e)
{
	struct sandbox_opts so = {
		.session = s,
		.argv = argv,
		.env = env,
		.set_hostname = s->cfg->feature.hostname,
	};
	int status = 0, r;

	r = sandbox_run(&so, &status, e);
	if (r < 0)
		return r;
	if (s->lost)
		fprintf(stderr, "podenv: lost the agent: %s\n", s->lost_reason);
	return status;
}

/* Writes a bash rc file that sources the user's and marks the prompt. It
 * lives in the temp dir (routed local), not in our private directory,
 * which the app cannot see. Caller unlinks. */
static char *write_bashrc(const char *target)
{
	char *path = xasprintf("%s/podenv-bashrc-%d", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
			       (int)getpid());
	FILE *f = fopen(path, "w");

	if (!f) {
		free(path);
		return NULL;
	}
	fprintf(f, "[ -f ~/.bashrc ] && . ~/.bashrc\n"
		   "PS1=\"(podenv:%s) ${PS1:-\\\\u@\\\\h:\\\\w\\\\$ }\"\n",
		target);
	fclose(f);
	return path;
}

int cli_exec_main(int argc, char **argv)
{
	bool shell = !strcmp(argv[0], "shell");
	struct cfg *cfg = NULL;
	struct session *s = NULL;
	struct trace *trace = NULL;
	const char *trace_path = NULL;
	char **env = NULL;
	_cleanup_free_ char *rcfile = NULL;
	_cleanup_free_ char **av = NULL;
	struct err e;
	int idx = 1, r;

	err_clear(&e);
	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		exec_usage(stdout, argv[0]);
		return 0;
	}
	av = take_trace_flag(argc, argv, &argc, &trace_path);
	if (!av)
		return 2;
	argv = av;
	r = session_load_config(argc, argv, &idx, !shell, &cfg, &e);
	if (r < 0) {
		fprintf(stderr, "podenv: %s\n", e.msg);
		return 2;
	}
	if (!shell && idx >= argc) {
		fprintf(stderr, "podenv: exec: no command given (podenv exec [OPTIONS] -- COMMAND)\n");
		cfg_free(cfg);
		return 2;
	}
	if (shell && idx < argc) {
		fprintf(stderr, "podenv: shell: unexpected argument '%s'\n", argv[idx]);
		cfg_free(cfg);
		return 2;
	}
	r = trace_path ? trace_open(trace_path, &trace, &e) : 0;
	if (r < 0) {
		fprintf(stderr, "podenv: %s\n", e.msg);
		cfg_free(cfg);
		return 2;
	}
	r = vfs_fuse_check(&e);
	const struct cfg_network *nw = &cfg->feature.network;
	if (r >= 0 && (nw->outgoing.tcp || nw->outgoing.udp || nw->dns.enabled))
		r = vnet_tun_check(&e);
	if (r >= 0)
		r = session_open(cfg, &s, &e);
	if (r < 0) {
		fprintf(stderr, "podenv: %s\n", e.msg);
		cfg_free(cfg);
		trace_free(trace);
		return 1;
	}
	s->trace = trace;
	r = session_fetch_context(s, &e);
	if (r >= 0)
		r = build_env(s, &env, &e);
	if (r < 0) {
		fprintf(stderr, "podenv: %s\n", e.msg);
		session_free(s);
		trace_free(trace);
		return 1;
	}
	if (shell) {
		const char *sh = getenv("SHELL");
		char *sargv[4] = { NULL };
		if (!sh || !*sh)
			sh = "/bin/sh";
		sargv[0] = (char *)sh;
		if (strstr(sh, "bash") && (rcfile = write_bashrc(s->target))) {
			sargv[1] = "--rcfile";
			sargv[2] = rcfile;
		} else {
			char *ps1 = xasprintf("(podenv:%s) $ ", s->target);
			sandbox_env_set(&env, "PS1", ps1);
			free(ps1);
		}
		fprintf(stderr, "podenv: shell in %s (hostname %s); the pod's files are at %s\n",
			s->target, s->hostname, "/run/podenv/root");
		r = run_sandboxed(s, sargv, env, &e);
		if (rcfile)
			unlink(rcfile);
	} else {
		r = run_sandboxed(s, argv + idx, env, &e);
	}
	if (r < 0)
		fprintf(stderr, "podenv: %s\n", e.msg);
	sandbox_env_free(env);
	session_free(s);
	trace_free(trace);
	return r < 0 ? 1 : r;
}

/* --- podenv mount ---------------------------------------------------------- */

struct mount_state {
	struct session *s;
	struct vfs_mount *m;
	int status;
};

static int on_mount_signal(struct loop_source *src, const struct signalfd_siginfo *si,
			   void *userdata)
{
	struct mount_state *ms = userdata;

	log_info("%s: unmounting", strsignal((int)si->ssi_signo));
	loop_exit(loop_source_loop(src), 0);
	ms->status = 0;
	return 0;
}

static int on_mount_check(struct loop_source *src, usec_t now, void *userdata)
{
	struct mount_state *ms = userdata;

	if (vfs_mount_gone(ms->m)) {
		log_info("unmounted");
		loop_exit(ms->s->loop, 0);
		return 0;
	}
	loop_timer_set(src, now + 200 * USEC_PER_MSEC);
	return 0;
}

static void on_mount_lost(struct session *s)
{
	struct mount_state *ms = s->userdata;

	log_error("lost the agent: %s; unmounting", s->lost_reason);
	ms->status = 1;
	loop_exit(s->loop, 1);
}

int cli_mount_main(int argc, char **argv)
{
	struct mount_state ms = { .status = 0 };
	struct cfg *cfg = NULL;
	struct err e;
	bool daemon_mode = false;
	const char *dir = NULL;
	char **targs;
	int idx = 1, r, n = 0;

	err_clear(&e);
	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		printf("Usage: podenv mount [OPTIONS] [--daemon] TARGET DIR\n\n"
		       "Mounts the pod's root filesystem at DIR (read-only unless the fs mode is\n"
		       "write). Stays in the foreground until Ctrl-C, SIGTERM, fusermount3 -u DIR,\n"
		       "or a lost link; --daemon returns once mounted.\n\nOptions:\n%s",
		       cfg_source_flags_help());
		return 0;
	}
	/* TARGET is a positional here; hand it to the config as -t. */
	targs = xcalloc((size_t)argc + 3, sizeof(char *));
	targs[n++] = argv[0];
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--daemon")) {
			daemon_mode = true;
			continue;
		}
		targs[n++] = argv[i];
	}
	/* the last two non-option words are TARGET and DIR */
	if (n < 3 || targs[n - 1][0] == '-' || targs[n - 2][0] == '-') {
		fprintf(stderr, "podenv: mount: expected TARGET DIR (see podenv mount --help)\n");
		free(targs);
		return 2;
	}
	dir = targs[n - 1];
	char *target = targs[n - 2];
	targs[n - 2] = "-t";
	targs[n - 1] = target;
	r = session_load_config(n, targs, &idx, false, &cfg, &e);
	free(targs);
	if (r < 0) {
		fprintf(stderr, "podenv: %s\n", e.msg);
		return 2;
	}
	struct stat st;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "podenv: mount: %s: %s\n", dir,
			errno ? strerror(errno) : "not a directory");
		cfg_free(cfg);
		return 2;
	}
	r = vfs_fuse_check(&e);
	if (r >= 0)
		r = session_open(cfg, &ms.s, &e);
	if (r < 0) {
		fprintf(stderr, "podenv: %s\n", e.msg);
		cfg_free(cfg);
		return 1;
	}
	struct vfs_mount_opts mo = {
		.loop = ms.s->loop,
		.client = ms.s->client,
		.mountpoint = dir,
		.read_only = ms.s->cfg->feature.fs.mode != CFG_FS_WRITE,
		.allow_other = geteuid() == 0,
	};
	r = vfs_mount_new(&mo, &ms.m, &e);
	if (r < 0) {
		fprintf(stderr, "podenv: %s\n", e.msg);
		session_free(ms.s);
		return 1;
	}
	fprintf(stderr, "podenv: %s mounted at %s%s\n", ms.s->target, dir,
		mo.read_only ? " (read-only)" : "");
	if (daemon_mode) {
		/* Detach: the parent returns once the mount is there. The
		 * child keeps serving; stdio goes to /dev/null. */
		pid_t pid = fork();
		if (pid < 0) {
			fprintf(stderr, "podenv: fork: %s\n", strerror(errno));
		} else if (pid > 0) {
			_exit(0);
		} else {
			setsid();
			int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
			if (fd >= 0) {
				dup2(fd, 0);
				dup2(fd, 1);
				dup2(fd, 2);
				close(fd);
			}
		}
	}
	ms.s->on_lost = on_mount_lost;
	ms.s->userdata = &ms;
	loop_add_signal(ms.s->loop, SIGINT, on_mount_signal, &ms, NULL);
	loop_add_signal(ms.s->loop, SIGTERM, on_mount_signal, &ms, NULL);
	loop_add_signal(ms.s->loop, SIGHUP, on_mount_signal, &ms, NULL);
	loop_add_timer(ms.s->loop, now_usec(), on_mount_check, &ms, NULL);
	loop_run(ms.s->loop);
	link_abort(ms.s->link); /* pending requests answer while the mount exists */
	vfs_mount_free(ms.m);
	session_free(ms.s);
	return ms.status;
}
