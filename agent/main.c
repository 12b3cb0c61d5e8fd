/* podenv-agent: the remote half of podenv. It runs where the target process
 * runs, pins that process (by PID or container id) and serves its files,
 * environment, hostname, DNS and connections to launchers.
 *
 * This file parses the command line and dispatches: `--inspect` prints what
 * the agent sees of its target (a diagnostic for operators and the demo).
 */
#define LOG_TARGET "podenv::agent"
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "agent/agent.h"
#include "common/log.h"

#define AGENT_VERSION "0.1.0"

struct agent_opts {
	pid_t pid;
	const char *container_id;
	const char *log_level;
	bool json_log;
	bool inspect;
};

static void usage(FILE *f)
{
	fputs("Usage: podenv-agent (--pid PID | --container-id ID) [options]\n"
	      "\n"
	      "Serves a target process's files, environment, hostname, DNS and\n"
	      "connections to podenv launchers.\n"
	      "\n"
	      "Target:\n"
	      "  -p, --pid PID            the target process on this machine\n"
	      "  -c, --container-id ID    find the target by container id (/proc/*/cgroup)\n"
	      "Actions:\n"
	      "      --inspect            print what the agent sees of the target and exit\n"
	      "Logging:\n"
	      "  -l, --log-level FILTER   RUST_LOG-style filter, e.g. \"podenv=debug,warn\"\n"
	      "                           (default: $RUST_LOG, else info)\n"
	      "      --json-log           log JSON lines\n"
	      "  -h, --help               show this help\n"
	      "  -V, --version            show the version\n",
	      f);
}

static int parse_args(int argc, char **argv, struct agent_opts *o, struct err *reterr)
{
	enum { OPT_INSPECT = 256, OPT_JSON_LOG };
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "container-id", required_argument, NULL, 'c' },
		{ "inspect", no_argument, NULL, OPT_INSPECT },
		{ "log-level", required_argument, NULL, 'l' },
		{ "json-log", no_argument, NULL, OPT_JSON_LOG },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	int c;
	char *end;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":p:c:l:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			errno = 0;
			long v = strtol(optarg, &end, 10);
			if (errno || *end || v <= 0 || v > INT32_MAX)
				return err_set(reterr, -EINVAL, "--pid: '%s' is not a process id",
					       optarg);
			o->pid = (pid_t)v;
			break;
		case 'c':
			o->container_id = optarg;
			break;
		case 'l':
			o->log_level = optarg;
			break;
		case OPT_JSON_LOG:
			o->json_log = true;
			break;
		case OPT_INSPECT:
			o->inspect = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("podenv-agent %s\n", AGENT_VERSION);
			exit(0);
		case ':':
			return err_set(reterr, -EINVAL, "option %s needs a value", argv[optind - 1]);
		default:
			return err_set(reterr, -EINVAL, "unknown option %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return err_set(reterr, -EINVAL, "unexpected argument '%s'", argv[optind]);
	if (!o->pid == !o->container_id)
		return err_set(reterr, -EINVAL, "give exactly one of --pid and --container-id");
	if (!o->inspect)
		return err_set(reterr, -EINVAL, "nothing to do: give --inspect");
	return 0;
}

static int inspect(const struct agent_target *t)
{
	char host[256];
	char **env = NULL;
	_cleanup_free_ char *os = NULL;
	struct err e;
	int r;

	printf("target: pid %d\n", (int)t->pid);
	r = agent_target_hostname(t, host, sizeof(host), &e);
	printf("hostname: %s\n", r < 0 ? e.msg : host);
	r = agent_target_read_file(t, "/etc/os-release", 65536, &os, NULL);
	if (r < 0) {
		printf("os-release: %s\n", strerror(-r));
	} else {
		const char *pretty = strstr(os, "PRETTY_NAME=");
		printf("os-release: %.*s\n", pretty ? (int)strcspn(pretty + 12, "\n") : 0,
		       pretty ? pretty + 12 : "");
	}
	r = agent_target_environ(t, &env, &e);
	if (r < 0) {
		printf("environment: %s\n", e.msg);
		return r;
	}
	printf("environment:\n");
	for (char **p = env; *p; p++)
		printf("  %s\n", *p);
	agent_strv_free(env);
	return 0;
}

int main(int argc, char **argv)
{
	struct agent_opts o = { 0 };
	struct agent_target *t = NULL;
	struct err e;
	int r;

	err_clear(&e);
	r = parse_args(argc, argv, &o, &e);
	if (r < 0) {
		fprintf(stderr, "podenv-agent: %s (see --help)\n", e.msg);
		return 2;
	}
	r = log_filter_set(o.log_level ? o.log_level : getenv("RUST_LOG"), &e);
	if (r < 0) {
		fprintf(stderr, "podenv-agent: %s\n", e.msg);
		return 2;
	}
	log_json_set(o.json_log);

	if (o.container_id) {
		r = agent_target_find_container(o.container_id, &o.pid, &e);
		if (r < 0)
			goto fail;
		log_debug("container %s is process %d", o.container_id, (int)o.pid);
	}
	r = agent_target_open_pid(o.pid, &t, &e);
	if (r < 0)
		goto fail;
	r = inspect(t);
	agent_target_free(t);
	return r < 0 ? 1 : 0;
fail:
	log_error("%s", e.msg);
	return 1;
}
