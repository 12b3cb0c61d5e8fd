/* `podenv ls`: the targets of a namespace, as `mirrord ls` lists them. */
#define LOG_TARGET "podenv"
#include <stdio.h>
#include <string.h>

#include "launcher/cli.h"
#include "launcher/k8s_target.h"
#include "launcher/session.h"

int cli_ls_main(int argc, char **argv)
{
	struct cfg *cfg = NULL;
	struct k8s_api *api = NULL;
	bool json = false;
	char **av = xcalloc((size_t)argc + 1, sizeof(char *));
	int n = 0, idx = 1, r;
	struct err e;

	err_clear(&e);
	av[n++] = argv[0];
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("Usage: podenv ls [-n NAMESPACE] [-o json] [OPTIONS]\n\n"
			       "Lists the targets of a namespace (default: the kube context's): "
			       "pod/NAME/container/C\nfor each running container, then "
			       "deployment/NAME for each deployment with a\nready pod.\n\n"
			       "Options:\n"
			       "  -o json        one JSON array instead of one target per line\n%s",
			       cfg_source_flags_help());
			free(av);
			return 0;
		}
		if (!strcmp(argv[i], "-o") && i + 1 < argc && !strcmp(argv[i + 1], "json")) {
			json = true;
			i++;
			continue;
		}
		if (!strcmp(argv[i], "-o") || !strncmp(argv[i], "-o=", 3)) {
			fprintf(stderr, "podenv: ls: -o takes \"json\"\n");
			free(av);
			return 2;
		}
		av[n++] = argv[i];
	}
	r = session_load_config(n, av, &idx, false, &cfg, &e);
	if (r >= 0 && idx < n)
		r = err_set(&e, -EINVAL, "ls: unexpected argument '%s'", av[idx]);
	free(av);
	if (r < 0) {
		fprintf(stderr, "podenv: %s\n", e.msg);
		cfg_free(cfg);
		return 2;
	}
	r = k8s_api_open(cfg, &api, &e);
	if (r >= 0) {
		const char *ns = cfg->target.namespace && *cfg->target.namespace
					 ? cfg->target.namespace
					 : k8s_api_namespace(api);
		r = k8s_targets_list(api, ns, json, stdout, &e);
	}
	if (r < 0)
		fprintf(stderr, "podenv: ls: %s\n", e.msg);
	k8s_api_free(api);
	cfg_free(cfg);
	return r < 0 ? 1 : 0;
}
