/* FUZZ_MODULE vfs */
/* Fuzz target for the path router and the mount plan. The first byte
 * picks what the rest is:
 *   even: newline-separated paths routed by a fixed config that uses every
 *         rule class (mapping with groups, all four user lists);
 *   odd:  a JSON config, a NUL byte, then newline-separated paths: the
 *         config's own patterns drive the router and the plan.
 * Each path is routed with flags from the first byte, twice (the second
 * answer comes from the cache and must be the same), explained, and
 * checked as a plan root. No input may crash, leak or disagree with
 * itself. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vfs/vfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fixed_config[] =
	"{\"feature\": {\"fs\": {\"mode\": \"read\","
	" \"read_write\": [\"^/app/rw(/|$)\", \"\\\\.log$\"],"
	" \"read_only\": [\"^/etc/os-release$\", \"^/usr/share/app/\"],"
	" \"local\": [\"^/app/local\", \"^/etc/hosts$\"],"
	" \"not_found\": [\"^/app/secret\", \"(?i)token\"],"
	" \"mapping\": {\"^/home/(?<user>[^/]+)/dev/(?<app>[^/]+)\": \"/srv/${user}-$app\","
	" \"^/data/(.*)\": \"/usr/share/$1\", \"^/x(.*)\": \"$1$1$1\"}}},"
	" \"skip_processes\": [\"helper\"]}";

static void route_all(const struct vfs_router *r, const char *paths, size_t len, unsigned flags)
{
	char *copy = malloc(len + 1);
	char *save = NULL, *line;

	if (!copy)
		abort();
	memcpy(copy, paths, len);
	copy[len] = '\0';
	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct vfs_decision d, again;
		struct vfs_plan_entry e;
		char text[256];
		int k = vfs_route(r, line, flags, &d);

		if (k == 0) {
			(void)vfs_decision_format(&d, text, sizeof(text));
			if (vfs_route(r, line, flags, &again) != 0 || again.verdict != d.verdict ||
			    again.rule != d.rule || strcmp(again.path, d.path) != 0)
				abort(); /* the cache must give the same answer */
		}
		if (vfs_plan_check(r, line, &e) == 0)
			vfs_plan_entry_done(&e);
		(void)vfs_router_skips_process(r, line);
	}
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const env[] = {"MIRRORD_KEY=fuzz0", NULL};
	struct vfs_router_env renv = {
		.home = "/home/u",
		.cwd = "/work/proj",
		.tmpdir = "/tmp",
		.program = "/usr/bin/python3",
	};
	struct cfg_source src = {.env = env, .no_discover = true, .cwd = "/", .path = "f.json"};
	const char *paths = (const char *)data + 1;
	size_t plen = size ? size - 1 : 0;
	struct vfs_router *r = NULL;
	struct vfs_plan *plan = NULL;
	struct cfg *c = NULL;
	struct err e = {0};
	unsigned flags;

	if (size < 1 || size > 65536)
		return 0;
	flags = (data[0] >> 1) & (VFS_ROUTE_WRITE | VFS_ROUTE_EXEC);
	renv.targetless = data[0] & 0x80;
	if (data[0] & 1) {
		const char *nul = memchr(paths, '\0', plen);
		size_t clen = nul ? (size_t)(nul - paths) : plen;

		src.text = paths;
		src.text_len = clen;
		paths += nul ? clen + 1 : plen;
		plen -= nul ? clen + 1 : plen;
		/* bit 6: a working directory of `/` (no dynamic entry) */
		if (data[0] & 0x40)
			renv.cwd = "/";
	} else {
		src.text = fixed_config;
		src.text_len = strlen(fixed_config);
	}
	if (cfg_load(&src, &c, &e) < 0)
		return 0;
	if (vfs_router_new(c, &renv, &r, &e) < 0)
		abort(); /* escaped dynamic entries always compile */
	route_all(r, paths, plen, flags);
	if (data[0] & 1) {
		if (vfs_plan_new(r, &plan) != 0)
			abort();
		vfs_plan_free(plan);
	}
	vfs_router_free(r);
	cfg_free(c);
	return 0;
}
