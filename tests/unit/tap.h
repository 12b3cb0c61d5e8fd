/* A tiny TAP harness for unit tests (one binary per test file).
 *
 *	TEST(buf_append_grows) { ... CHECK_INT(buf_len(&b), ==, 3); ... }
 *	TAP_MAIN()
 *
 * Each TEST runs in a forked child, so a crash or failed CHECK fails only
 * that test; the parent prints "ok N name" / "not ok N name" and a
 * "# N passed, N failed, N skipped" line. A test skips itself with SKIP("why").
 * Checks print both values on failure. tests/run.py reads the TAP output.
 * Environment: TAP_FILTER=substring runs only matching tests.
 */
#ifndef PODENV_TESTS_TAP_H
#define PODENV_TESTS_TAP_H

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct tap_test {
	const char *name;
	void (*fn)(void);
	struct tap_test *next;
};

static struct tap_test *tap_tests, **tap_tail = &tap_tests;
static int tap_failed_checks;

#define TAP_SKIP_CODE 77

#define TEST(name)                                                                                 \
	static void test_##name(void);                                                             \
	static struct tap_test tap_##name = { #name, test_##name, NULL };                          \
	__attribute__((constructor)) static void tap_register_##name(void)                         \
	{                                                                                          \
		*tap_tail = &tap_##name;                                                           \
		tap_tail = &tap_##name.next;                                                       \
	}                                                                                          \
	static void test_##name(void)

#define TAP_FAIL(...)                                                                              \
	do {                                                                                       \
		fprintf(stderr, "#   %s:%d: ", __FILE__, __LINE__);                                    \
		fprintf(stderr, __VA_ARGS__);                                                      \
		fputc('\n', stderr);                                                               \
		tap_failed_checks++;                                                               \
	} while (0)

/* CHECK continues after a failure; REQUIRE stops the test. */
#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			TAP_FAIL("check failed: %s", #cond);                                       \
	} while (0)
#define REQUIRE(cond)                                                                              \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			TAP_FAIL("requirement failed: %s", #cond);                                 \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

#define CHECK_INT(a, op, b)                                                                        \
	do {                                                                                       \
		intmax_t _a = (intmax_t)(a), _b = (intmax_t)(b);                                   \
		if (!(_a op _b))                                                                   \
			TAP_FAIL("%s %s %s: %jd vs %jd", #a, #op, #b, _a, _b);                     \
	} while (0)
#define CHECK_UINT(a, op, b)                                                                       \
	do {                                                                                       \
		uintmax_t _a = (uintmax_t)(a), _b = (uintmax_t)(b);                                \
		if (!(_a op _b))                                                                   \
			TAP_FAIL("%s %s %s: %ju vs %ju", #a, #op, #b, _a, _b);                     \
	} while (0)
#define CHECK_STR(a, b)                                                                            \
	do {                                                                                       \
		const char *_a = (a), *_b = (b);                                                   \
		if (!_a || !_b || strcmp(_a, _b) != 0)                                             \
			TAP_FAIL("%s == %s: \"%s\" vs \"%s\"", #a, #b, _a ? _a : "(null)",          \
				 _b ? _b : "(null)");                                              \
	} while (0)
/* Passes when needle occurs in haystack. */
#define CHECK_CONTAINS(hay, needle)                                                                \
	do {                                                                                       \
		const char *_h = (hay), *_n = (needle);                                            \
		if (!_h || !_n || !strstr(_h, _n))                                                 \
			TAP_FAIL("%s contains %s: \"%s\" lacks \"%s\"", #hay, #needle,              \
				 _h ? _h : "(null)", _n ? _n : "(null)");                          \
	} while (0)
#define CHECK_OK(expr)                                                                             \
	do {                                                                                       \
		intmax_t _r = (intmax_t)(expr);                                                    \
		if (_r < 0)                                                                        \
			TAP_FAIL("%s failed: %jd (%s)", #expr, _r, strerror((int)-_r));            \
	} while (0)

#define SKIP(...)                                                                                  \
	do {                                                                                       \
		printf("# skip: ");                                                                \
		printf(__VA_ARGS__);                                                               \
		printf("\n");                                                                      \
		fflush(stdout);                                                                    \
		exit(TAP_SKIP_CODE);                                                               \
	} while (0)

static inline int tap_main(void)
{
	const char *filter = getenv("TAP_FILTER");
	int n = 0, passed = 0, failed = 0, skipped = 0;

	for (struct tap_test *t = tap_tests; t; t = t->next)
		if (!filter || strstr(t->name, filter))
			n++;
	printf("1..%d\n", n);
	fflush(stdout);
	n = 0;
	for (struct tap_test *t = tap_tests; t; t = t->next) {
		int status;
		pid_t pid;

		if (filter && !strstr(t->name, filter))
			continue;
		n++;
		pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			alarm(60); /* a hung test fails instead of hanging the suite */
			t->fn();
			fflush(NULL);
			exit(tap_failed_checks ? 1 : 0); /* exit, not _exit: LeakSanitizer runs at exit */
		}
		while (waitpid(pid, &status, 0) < 0)
			;
		if (WIFEXITED(status) && WEXITSTATUS(status) == TAP_SKIP_CODE) {
			printf("ok %d %s # SKIP\n", n, t->name);
			skipped++;
		} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			printf("ok %d %s\n", n, t->name);
			passed++;
		} else {
			if (WIFSIGNALED(status))
				printf("# %s: killed by signal %d (%s)\n", t->name, WTERMSIG(status),
				       strsignal(WTERMSIG(status)));
			printf("not ok %d %s\n", n, t->name);
			failed++;
		}
		fflush(stdout);
	}
	printf("# %d passed, %d failed, %d skipped\n", passed, failed, skipped);
	return failed ? 1 : 0;
}

#define TAP_MAIN()                                                                                 \
	int main(void)                                                                             \
	{                                                                                          \
		return tap_main();                                                                 \
	}

#endif
