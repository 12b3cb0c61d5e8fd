/* Unit tests for common/map.c, including a randomized comparison against
 * a plain array. */
#include "common/map.h"
#include "tests/unit/tap.h"

TEST(map_put_get_remove)
{
	struct map m;
	int a = 1, b = 2;
	map_init(&m);
	CHECK(map_get(&m, 5) == NULL);
	CHECK(map_remove(&m, 5) == NULL);
	CHECK(map_put(&m, 5, &a) == NULL);
	CHECK(map_get(&m, 5) == &a);
	CHECK(map_put(&m, 5, &b) == &a);
	CHECK_UINT(map_len(&m), ==, 1);
	CHECK(map_remove(&m, 5) == &b);
	CHECK(map_get(&m, 5) == NULL);
	CHECK_UINT(map_len(&m), ==, 0);
	map_done(&m);
}

TEST(map_randomized_against_array)
{
	enum { N = 4096 };
	static void *ref[N];
	static int vals[N];
	struct map m;
	unsigned seed = 12345;
	map_init(&m);
	for (int step = 0; step < 200000; step++) {
		seed = seed * 1103515245 + 12345;
		unsigned k = (seed >> 8) % N;
		unsigned op = (seed >> 24) % 3;
		/* keys spread over the whole u64 range and sequential ones */
		uint64_t key = (k & 1) ? (uint64_t)k * UINT64_C(0x9e3779b97f4a7c15) : k;
		if (op == 0) {
			CHECK(map_put(&m, key, &vals[k]) == ref[k]);
			ref[k] = &vals[k];
		} else if (op == 1) {
			CHECK(map_remove(&m, key) == ref[k]);
			ref[k] = NULL;
		} else {
			CHECK(map_get(&m, key) == ref[k]);
		}
	}
	size_t n = 0;
	for (int k = 0; k < N; k++)
		n += ref[k] != NULL;
	CHECK_UINT(map_len(&m), ==, n);
	size_t pos = 0, seen = 0;
	uint64_t key;
	void *v;
	while (map_next(&m, &pos, &key, &v))
		seen++;
	CHECK_UINT(seen, ==, n);
	map_done(&m);
}

TAP_MAIN()
