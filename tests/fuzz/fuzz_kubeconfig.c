/* FUZZ_MODULE launcher */
/* Fuzz target for kubeconfig reading (launcher/k8s_config.c): YAML or JSON
 * through libyaml onto json-c, the merge tables, context/cluster/user
 * resolution, base64, proxy-url and exec-section checks. The input is one
 * in-memory kubeconfig; if its first line is "#context NAME", NAME is used
 * as kube_context. Exec plugins are never run (only k8s_config_refresh
 * runs them). The environment is fixed and has no usable HOME, PATH or
 * service account, so nothing outside the input is found by default. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "launcher/k8s_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *const env[] = {"HOME=/nonexistent", "PATH=/nonexistent", NULL};
	struct k8s_config_source src = {
		.kubeconfig = "/fuzz/config", .env = env, .serviceaccount_dir = "/nonexistent"};
	const char *text = (const char *)data;
	char context[64] = "";
	struct k8s_config *c = NULL;
	struct err e = {0};

	if (size > 65536)
		return 0;
	if (size > 9 && memcmp(text, "#context ", 9) == 0) {
		const char *nl = memchr(text, '\n', size);
		size_t n = (nl ? (size_t)(nl - text) : size) - 9;
		if (n < sizeof(context)) {
			memcpy(context, text + 9, n);
			context[n] = '\0';
			src.context = context;
		}
	}
	src.text = text;
	src.text_len = size;
	if (k8s_config_load(&src, &c, &e) == 0) {
		/* Touch what a caller reads. */
		if (!c->server || !c->namespace)
			abort();
		k8s_config_invalidate(c);
		k8s_config_free(c);
	} else if (!e.msg[0]) {
		abort(); /* every error has a message */
	}
	return 0;
}
