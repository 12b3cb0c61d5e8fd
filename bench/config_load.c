/* Benchmark: load the reference's complete example (read the file, render,
 * parse, validate, compile every pattern with JIT, resolve env) N times and
 * report the per-load time. Also times the first load in the process,
 * which pays PCRE2's and json-c's one-time set-up. For a .json file, the
 * baseline: json-c's parse of the same file alone, N times.
 *
 *	bench/config_load.sh [BUILD_DIR] [N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "config/config.h"

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv);

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "tests/unit/config/data/complete.json";
	int n = argc > 2 ? atoi(argv[2]) : 2000;
	static const char *const env[] = {NULL};
	struct cfg_source src = {.path = path, .env = env};
	double *t = calloc((size_t)n, sizeof(*t)), first, sum = 0;

	if (!t || n < 1)
		return 1;
	for (int i = -1; i < n; i++) {
		struct err e = {0};
		struct cfg *c = NULL;
		double t0 = now_us();
		if (cfg_load(&src, &c, &e) < 0) {
			fprintf(stderr, "%s\n", e.msg);
			return 1;
		}
		double dt = now_us() - t0;
		cfg_free(c);
		if (i < 0)
			first = dt;
		else
			t[i] = dt;
	}
	for (int i = 0; i < n; i++)
		sum += t[i];
	qsort(t, (size_t)n, sizeof(*t), cmp);
	printf("config_load %s: n=%d first=%.0f us mean=%.0f us median=%.0f us p99=%.0f us "
	       "max=%.0f us\n",
	       path, n, first, sum / n, t[n / 2], t[(int)(n * 0.99)], t[n - 1]);
	if (strlen(path) > 5 && !strcmp(path + strlen(path) - 5, ".json")) {
		for (int i = 0; i < n; i++) {
			double t0 = now_us();
			json_object *j = json_object_from_file(path);
			t[i] = now_us() - t0;
			if (!j)
				return 1;
			json_object_put(j);
		}
		qsort(t, (size_t)n, sizeof(*t), cmp);
		printf("json_parse file=%s n=%d median=%.1f us\n", path, n, t[n / 2]);
	}
	free(t);
	return 0;
}
