/* Logging with levels, RUST_LOG-style filters and an optional JSON format.
 *
 * Filter strings are what mirrord's `agent.log_level` accepts:
 * comma-separated directives, each `LEVEL` (the default for every target)
 * or `TARGET=LEVEL`. A target is a `::`-separated path ("podenv::vfs"); a
 * directive applies to its target and everything below it, and the most
 * specific directive wins, as in env_logger. The target prefix `mirrord`
 * is read as `podenv`, so existing mirrord configs keep their meaning.
 * Levels: off, error, warn, info, debug, trace.
 *
 * Each source file names its target before including this header:
 *	#define LOG_TARGET "podenv::vfs"
 *
 * Output goes to stderr (or log_set_fd()), one line per message: text
 * "2026-11-28T23:25:43.123456Z  INFO podenv::vfs: message", or a JSON
 * object shaped like tracing-subscriber's (timestamp, level, target,
 * fields.message) when JSON is on. Logging is for one thread; the agent's
 * workers report to the loop rather than logging.
 */
#ifndef PODENV_COMMON_LOG_H
#define PODENV_COMMON_LOG_H

#include <inttypes.h>
#include <stdbool.h>

#include "common/err.h"

#ifndef LOG_TARGET
#define LOG_TARGET "podenv"
#endif

enum log_level {
	LOG_OFF = 0,
	LOG_ERROR,
	LOG_WARN,
	LOG_INFO,
	LOG_DEBUG,
	LOG_TRACE,
};

/* Parse a filter string and make it the active filter. On error the active
 * filter is unchanged and reterr names the bad directive. NULL or "" means
 * the default, "info". */
int log_filter_set(const char *spec, struct err *reterr);

/* Raise or lower the default level (for -v/-q) without touching per-target
 * directives. */
void log_default_level_set(enum log_level level);

/* Parse "warn", "DEBUG"…; returns the level or -EINVAL. */
int log_level_parse(const char *name);

void log_json_set(bool on);
/* Borrowed fd; the caller keeps it open while logging. */
void log_fd_set(int fd);

bool log_enabled(const char *target, enum log_level level);

void log_msg(const char *target, enum log_level level, const char *fmt, ...) PRINTF_FMT(3, 4);

/* Logs "message: strerror(-err)" and returns err (a negative errno), so that
 * `return log_errno(LOG_WARN, r, "…");` reads naturally. */
int log_msg_errno(const char *target, enum log_level level, int err, const char *fmt, ...)
	PRINTF_FMT(4, 5);

#define log_full(level, ...)                                                                       \
	do {                                                                                       \
		if (log_enabled(LOG_TARGET, level))                                                \
			log_msg(LOG_TARGET, level, __VA_ARGS__);                                   \
	} while (0)

#define log_error(...) log_full(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_full(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_trace(...) log_full(LOG_TRACE, __VA_ARGS__)
#define log_errno(level, err, ...) log_msg_errno(LOG_TARGET, level, err, __VA_ARGS__)

#endif
