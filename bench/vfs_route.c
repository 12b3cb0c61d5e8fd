/* Benchmark: vfs_route() throughput, with the decision cache missing
 * (every path new: the whole rule chain runs, PCRE2 JIT on ~60 patterns)
 * and hitting (a working set of paths asked about again and again, as
 * FUSE does with lookup/getattr/open). Also times vfs_router_new() and
 * vfs_plan_new().
 *
 *	bench/vfs_route.sh [BUILD_DIR] [N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vfs/vfs.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A mix like an app's: toolchain and libraries (local), the app's tree
 * and data (remote), /etc (both), home dotfiles. */
static const char *const shapes[] = {
	"/usr/lib/python3.11/site-packages/pkg%d/module.cpython-311.so",
	"/usr/share/zoneinfo/Region/City%d",
	"/app/src/handlers/handler_%d.go",
	"/app/config/env%d.yaml",
	"/etc/conf.d/file%d",
	"/etc/hosts",
	"/var/lib/app/state/%d.db",
	"/home/u/.cache/pip/%d",
	"/work/proj/build/obj%d.o",
	"/opt/tools/bin/tool%d",
};

static struct vfs_router *router(struct cfg **c, const char *json)
{
	static const char *const env[] = {NULL};
	struct cfg_source src = {.text = json,
				 .text_len = strlen(json),
				 .env = env,
				 .no_discover = true,
				 .path = "bench.json"};
	struct vfs_router_env renv = {.home = "/home/u",
				      .cwd = "/work/proj",
				      .tmpdir = "/tmp",
				      .program = "/usr/bin/python3"};
	struct vfs_router *r = NULL;
	struct err e = {0};

	if (cfg_load(&src, c, &e) < 0 || vfs_router_new(*c, &renv, &r, &e) < 0) {
		fprintf(stderr, "%s\n", e.msg);
		exit(1);
	}
	return r;
}

static void run(const char *name, const char *json, int n)
{
	char(*paths)[128] = malloc((size_t)n * sizeof(*paths));
	struct vfs_route_stats st;
	struct vfs_decision d;
	struct vfs_plan *plan;
	struct cfg *c;
	struct vfs_router *r;
	double t0, dt, t_new, t_plan;
	unsigned long sink = 0;
	const int working = 1000, rounds = 200;

	for (int i = 0; i < n; i++)
		snprintf(paths[i], sizeof(paths[i]), shapes[i % 10], i);

	t0 = now_s();
	r = router(&c, json);
	t_new = now_s() - t0;
	t0 = now_s();
	vfs_plan_new(r, &plan);
	t_plan = now_s() - t0;
	vfs_plan_free(plan);

	/* misses: n distinct paths, more than the cache holds */
	t0 = now_s();
	for (int i = 0; i < n; i++) {
		vfs_route(r, paths[i], i & 1 ? VFS_ROUTE_WRITE : 0, &d);
		sink += d.verdict;
	}
	dt = now_s() - t0;
	vfs_router_stats(r, &st);
	printf("%-10s miss: %8.0f ops/s  %6.2f us/op  (hits %llu of %llu)\n", name, n / dt,
	       dt / n * 1e6, st.hits, st.lookups);

	/* hits: a working set asked about again and again */
	for (int i = 0; i < working; i++)
		vfs_route(r, paths[i], 0, &d);
	t0 = now_s();
	for (int k = 0; k < rounds; k++)
		for (int i = 0; i < working; i++) {
			vfs_route(r, paths[i], 0, &d);
			sink += d.verdict;
		}
	dt = now_s() - t0;
	printf("%-10s hit:  %8.0f ops/s  %6.3f us/op\n", name, working * rounds / dt,
	       dt / (working * rounds) * 1e6);
	printf("%-10s vfs_router_new %.2f ms, vfs_plan_new %.2f ms (sink %lu)\n", name, t_new * 1e3,
	       t_plan * 1e3, sink % 2);
	vfs_router_free(r);
	cfg_free(c);
	free(paths);
}

int main(int argc, char **argv);

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 100000;

	if (n < 1000)
		n = 1000;
	run("defaults", "{}", n);
	run("user",
	    "{\"feature\": {\"fs\": {\"read_only\": [\"^/app/config\", \"\\\\.yaml$\"],"
	    " \"read_write\": [\"^/var/lib/app\"], \"local\": [\"^/opt/tools\"],"
	    " \"not_found\": [\"^/app/secret\"],"
	    " \"mapping\": {\"^/data/(.*)\": \"/srv/$1\"}}}}",
	    n);
	return 0;
}
