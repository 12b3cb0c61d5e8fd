/* FUZZ_MODULE config */
/* Fuzz target for the whole loader: template rendering, JSON or YAML
 * parsing, the table walk, filters, regexes, canonical output. The first
 * byte picks the format (even: JSON, odd: YAML); no input may crash or
 * leak. A fixed environment keeps runs reproducible. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const env[] = {"TARGET=pod/fuzz", "MIRRORD_KEY=fuzz0", NULL};
	struct cfg_source src = {.env = env, .no_discover = true, .cwd = "/"};
	struct err e = {0};
	struct cfg *c = NULL;

	if (size < 1 || size > 65536)
		return 0;
	src.path = data[0] & 1 ? "fuzz.yaml" : "fuzz.json";
	src.text = (const char *)data + 1;
	src.text_len = size - 1;
	if (cfg_load(&src, &c, &e) == 0) {
		char *s = cfg_format_json(c);
		char *m = NULL;
		if (cfg_mapping_apply(&c->feature.fs.mapping, "/home/u/dev/x", &m) > 0)
			free(m);
		(void)cfg_patterns_match(&c->feature.fs.read_only, "/etc/hosts", 10);
		(void)cfg_patterns_may_match_prefix(&c->feature.fs.local, "/usr", 4);
		free(s);
		cfg_free(c);
	}
	return 0;
}
