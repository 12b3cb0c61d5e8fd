/* `podenv config check|schema`: the user-facing end of the config module.
 * Loads exactly as `podenv exec` would (same discovery, env and flags), so
 * `check` shows what a session would run with. */
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "launcher/cli.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: podenv config check [-f FILE] [FLAGS]\n"
		"       podenv config schema\n"
		"\n"
		"check   load and validate the configuration (-f FILE, else MIRRORD_CONFIG_FILE,\n"
		"        else .mirrord/mirrord.json), apply environment variables and FLAGS,\n"
		"        and print the fully resolved configuration as JSON.\n"
		"schema  print the JSON Schema of the configuration format.\n"
		"\n"
		"FLAGS:\n%s",
		cfg_source_flags_help());
}

static int config_check(int argc, char **argv)
{
	struct cfg_source src = {0};
	struct err err = {0};
	struct cfg *cfg = NULL;
	char *json;
	int r, status = 0;

	for (int i = 1; i < argc;) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			cfg_source_done(&src);
			return 0;
		}
		r = cfg_source_flag_parse(&src, argc, argv, &i, &err);
		if (r < 0) {
			fprintf(stderr, "podenv: config: %s\n", err.msg);
			cfg_source_done(&src);
			return 2;
		}
		if (r == 0) {
			fprintf(stderr,
				"podenv: config: unknown argument \"%s\" (see podenv config check "
				"--help)\n",
				argv[i]);
			cfg_source_done(&src);
			return 2;
		}
	}
	r = cfg_load(&src, &cfg, &err);
	cfg_source_done(&src);
	if (r < 0) {
		fprintf(stderr, "podenv: config: %s\n", err.msg);
		return 2;
	}
	if (cfg->source_path)
		fprintf(stderr, "podenv: config: loaded %s\n", cfg->source_path);
	else
		fprintf(stderr, "podenv: config: no configuration file, using defaults\n");
	for (size_t i = 0; i < cfg->warnings.n; i++)
		fprintf(stderr, "podenv: config: warning: %s\n", cfg->warnings.v[i]);
	json = cfg_format_json(cfg);
	if (fputs(json, stdout) == EOF || fflush(stdout) == EOF)
		status = 1;
	free(json);
	cfg_free(cfg);
	return status;
}

int cli_config_main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "check"))
		return config_check(argc - 1, argv + 1);
	if (!strcmp(argv[1], "schema")) {
		char *s = cfg_schema_json();
		int status = fputs(s, stdout) == EOF || fflush(stdout) == EOF ? 1 : 0;
		free(s);
		return status;
	}
	fprintf(stderr, "podenv: config: unknown subcommand \"%s\" (check or schema)\n", argv[1]);
	return 2;
}
