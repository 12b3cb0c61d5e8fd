/* Unit tests for common/log.c: filter parsing, matching, text and JSON output. */
#define LOG_TARGET "podenv::vfs"
#include <fcntl.h>

#include "common/log.h"
#include "tests/unit/tap.h"

/* Runs the logging calls with output captured in a pipe; returns the text. */
static char *capture_start(int *pipefd)
{
	REQUIRE(pipe2(pipefd, O_NONBLOCK) == 0);
	log_fd_set(pipefd[1]);
	return NULL;
}

static char *capture_end(int *pipefd)
{
	static char out[8192];
	ssize_t n = read(pipefd[0], out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	close(pipefd[0]);
	close(pipefd[1]);
	log_fd_set(2);
	return out;
}

TEST(log_default_is_info)
{
	CHECK_OK(log_filter_set(NULL, NULL));
	CHECK(log_enabled("podenv", LOG_INFO));
	CHECK(log_enabled("podenv::vfs", LOG_ERROR));
	CHECK(!log_enabled("podenv", LOG_DEBUG));
}

TEST(log_filter_rust_log_style)
{
	struct err e;
	CHECK_OK(log_filter_set("podenv=debug,warn", &e));
	CHECK(log_enabled("podenv::vfs", LOG_DEBUG));
	CHECK(!log_enabled("podenv::vfs", LOG_TRACE));
	CHECK(!log_enabled("other", LOG_INFO));
	CHECK(log_enabled("other", LOG_WARN));
}

TEST(log_filter_most_specific_wins)
{
	CHECK_OK(log_filter_set("podenv::vfs=trace,podenv=error", NULL));
	CHECK(log_enabled("podenv::vfs", LOG_TRACE));
	CHECK(log_enabled("podenv::vfs::route", LOG_TRACE));
	CHECK(!log_enabled("podenv::vnet", LOG_WARN));
	/* order does not matter */
	CHECK_OK(log_filter_set("podenv=error,podenv::vfs=trace", NULL));
	CHECK(log_enabled("podenv::vfs", LOG_TRACE));
	CHECK(!log_enabled("podenv::vnet", LOG_WARN));
}

TEST(log_filter_matches_on_path_boundaries)
{
	CHECK_OK(log_filter_set("podenv::vfs=trace,error", NULL));
	CHECK(!log_enabled("podenv::vfsx", LOG_INFO));
	CHECK(!log_enabled("podenv", LOG_INFO));
}

TEST(log_filter_mirrord_targets_mean_podenv)
{
	CHECK_OK(log_filter_set("mirrord=trace,warn", NULL));
	CHECK(log_enabled("podenv::agent", LOG_TRACE));
	CHECK_OK(log_filter_set("mirrord_agent=debug,off", NULL));
	CHECK(log_enabled("podenv", LOG_DEBUG));
}

TEST(log_filter_bare_target_is_trace_and_case_insensitive_levels)
{
	CHECK_OK(log_filter_set("podenv::dns, WARN", NULL));
	CHECK(log_enabled("podenv::dns", LOG_TRACE));
	CHECK(!log_enabled("podenv::vfs", LOG_INFO));
	CHECK(log_enabled("podenv::vfs", LOG_WARN));
}

TEST(log_filter_errors_keep_previous_filter)
{
	struct err e;
	CHECK_OK(log_filter_set("debug", NULL));
	CHECK_INT(log_filter_set("podenv=loud", &e), ==, -EINVAL);
	CHECK_CONTAINS(e.msg, "unknown level 'loud'");
	CHECK_INT(log_filter_set("pod env=info", &e), ==, -EINVAL);
	CHECK_CONTAINS(e.msg, "bad target");
	CHECK(log_enabled("x", LOG_DEBUG)); /* unchanged */
}

TEST(log_off_silences)
{
	CHECK_OK(log_filter_set("off", NULL));
	CHECK(!log_enabled("podenv", LOG_ERROR));
}

TEST(log_text_line_format)
{
	int p[2];
	CHECK_OK(log_filter_set("info", NULL));
	log_json_set(false);
	capture_start(p);
	log_info("mounted %s", "/mnt");
	log_debug("hidden");
	char *out = capture_end(p);
	CHECK_CONTAINS(out, " INFO podenv::vfs: mounted /mnt\n");
	CHECK(!strstr(out, "hidden"));
	CHECK(out[4] == '-' && out[10] == 'T'); /* ISO 8601 timestamp first */
}

TEST(log_json_line_format_escapes)
{
	int p[2];
	CHECK_OK(log_filter_set("info", NULL));
	log_json_set(true);
	capture_start(p);
	log_warn("quote \" and\nnewline");
	char *out = capture_end(p);
	log_json_set(false);
	CHECK_CONTAINS(out, "\"level\":\"WARN\"");
	CHECK_CONTAINS(out, "\"target\":\"podenv::vfs\"");
	CHECK_CONTAINS(out, "\"fields\":{\"message\":\"quote \\\" and\\nnewline\"}}\n");
	CHECK(out[0] == '{');
}

TEST(log_errno_returns_error_and_appends_reason)
{
	int p[2];
	CHECK_OK(log_filter_set("info", NULL));
	capture_start(p);
	int r = log_errno(LOG_ERROR, -ENOENT, "open %s", "/x");
	char *out = capture_end(p);
	CHECK_INT(r, ==, -ENOENT);
	CHECK_CONTAINS(out, "open /x: No such file or directory");
}

TAP_MAIN()
