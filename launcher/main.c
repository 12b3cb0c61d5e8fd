/* podenv: run a local program in the environment of a Kubernetes pod.
 *
 * This file is the command dispatcher: global options, `help`, `--version`,
 * then one function per subcommand.
 */
#define LOG_TARGET "podenv"
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "launcher/cli.h"
#include "proto/proto.h"

struct cli_command {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *summary;
};

static const struct cli_command commands[] = {
	{ "exec", cli_exec_main, "run a command in the pod's environment" },
	{ "shell", cli_exec_main, "start an interactive shell in the pod's environment" },
	{ "mount", cli_mount_main, "mount the pod's root filesystem at a directory" },
	{ "ls", cli_ls_main, "list the Kubernetes targets of a namespace" },
	{ "explain", cli_explain_main, "say where files, names and connections go, and which rule decides" },
	{ "doctor", cli_doctor_main, "check that this machine has what podenv needs" },
	{ "config", cli_config_main, "check a configuration file, or print its JSON schema" },
	{ "debug", cli_debug_main, "diagnostics: `podenv debug agent` talks to an agent" },
	{ "help", NULL, "show help for podenv or one of its commands" },
};

static void usage(FILE *f)
{
	fputs("Usage: podenv [-v|-q] COMMAND [ARGS...]\n"
	      "\n"
	      "Run a local program in the environment of a Kubernetes pod: its files,\n"
	      "environment, hostname, DNS and network. Reads mirrord configuration files.\n"
	      "\n"
	      "Commands:\n",
	      f);
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fputs("\n"
	      "Options:\n"
	      "  -v, --verbose   more log output (repeat for more)\n"
	      "  -q, --quiet     errors only\n"
	      "  -h, --help      show this help\n"
	      "  -V, --version   show the version\n",
	      f);
}

int main(int argc, char **argv)
{
	int verbosity = LOG_INFO;
	int i;

	/* 1 MiB I/O buffers come and go all the time: keep them in the heap
	 * instead of a fresh mmap (256 page faults and zeroing) each time. */
	mallopt(M_MMAP_THRESHOLD, 8 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	log_filter_set(getenv("RUST_LOG"), NULL);
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
			printf("podenv %s (protocol %d)\n", PODENV_VERSION, PROTO_VERSION);
			return 0;
		} else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			verbosity = MIN(verbosity + 1, LOG_TRACE);
		} else if (!strcmp(a, "-vv")) {
			verbosity = LOG_TRACE;
		} else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
			verbosity = LOG_ERROR;
		} else {
			fprintf(stderr, "podenv: unknown option %s (see podenv --help)\n", a);
			return 2;
		}
	}
	if (verbosity != LOG_INFO)
		log_default_level_set(verbosity);
	if (i == argc) {
		usage(stderr);
		return 2;
	}
	const char *name = argv[i];
	if (!strcmp(name, "help")) {
		/* `podenv help CMD` is `podenv CMD --help`. */
		for (size_t c = 0; i + 1 < argc && c < ARRAY_SIZE(commands); c++)
			if (commands[c].main && !strcmp(argv[i + 1], commands[c].name)) {
				char *hargv[] = { argv[i + 1], "--help", NULL };
				return commands[c].main(2, hargv);
			}
		if (i + 1 < argc) {
			fprintf(stderr, "podenv: help: unknown command '%s'\n", argv[i + 1]);
			return 2;
		}
		usage(stdout);
		return 0;
	}
	for (size_t c = 0; c < ARRAY_SIZE(commands); c++)
		if (commands[c].main && !strcmp(name, commands[c].name))
			return commands[c].main(argc - i, argv + i);
	fprintf(stderr, "podenv: unknown command '%s' (see podenv --help)\n", name);
	return 2;
}
