/* Logging: a parsed RUST_LOG-style filter, and text or JSON output.
 *
 * The filter is a small array of (target, level) directives; the longest
 * target that is a `::`-boundary prefix of the message's target decides,
 * else the default level. A cached maximum lets log_enabled() answer the
 * common "trace is off everywhere" case with one comparison.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <time.h>

#include "common/buf.h"
#include "common/log.h"

#define LOG_DIRECTIVES_MAX 32
#define LOG_TARGET_MAX 64

struct log_directive {
	char target[LOG_TARGET_MAX];
	enum log_level level;
};

struct log_filter {
	enum log_level default_level;
	enum log_level max_level;
	size_t n;
	struct log_directive d[LOG_DIRECTIVES_MAX];
};

static struct log_filter filter = { .default_level = LOG_INFO, .max_level = LOG_INFO };
static bool json;
static int out_fd = 2;

static const char *const level_names[] = {
	[LOG_OFF] = "off",     [LOG_ERROR] = "error", [LOG_WARN] = "warn",
	[LOG_INFO] = "info",   [LOG_DEBUG] = "debug", [LOG_TRACE] = "trace",
};
static const char *const level_upper[] = {
	[LOG_OFF] = "OFF",   [LOG_ERROR] = "ERROR", [LOG_WARN] = "WARN",
	[LOG_INFO] = "INFO", [LOG_DEBUG] = "DEBUG", [LOG_TRACE] = "TRACE",
};

int log_level_parse(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(level_names); i++)
		if (strcasecmp(name, level_names[i]) == 0)
			return (int)i;
	return -EINVAL;
}

static void filter_recompute_max(struct log_filter *f)
{
	f->max_level = f->default_level;
	for (size_t i = 0; i < f->n; i++)
		f->max_level = MAX(f->max_level, f->d[i].level);
}

/* Copies [s, s+len) without surrounding blanks into out; returns its length. */
static size_t trim_copy(char *out, size_t outsz, const char *s, size_t len)
{
	while (len && isspace((unsigned char)*s))
		s++, len--;
	while (len && isspace((unsigned char)s[len - 1]))
		len--;
	if (len >= outsz)
		return SIZE_MAX;
	memcpy(out, s, len);
	out[len] = '\0';
	return len;
}

static int directive_parse(struct log_filter *f, const char *s, size_t len, struct err *reterr)
{
	char text[LOG_TARGET_MAX + 16], target[LOG_TARGET_MAX];
	const char *eq;
	int level;

	if (trim_copy(text, sizeof(text), s, len) == SIZE_MAX)
		return err_set(reterr, -EINVAL, "log filter directive '%.*s' is too long", (int)len,
			       s);
	if (text[0] == '\0')
		return 0; /* "a,,b" and a trailing comma are harmless */

	eq = strchr(text, '=');
	if (!eq) {
		/* A bare word is either a level (the default) or a target
		 * enabled at trace, as env_logger reads it. */
		level = log_level_parse(text);
		if (level >= 0) {
			f->default_level = level;
			return 0;
		}
		snprintf(target, sizeof(target), "%s", text);
		level = LOG_TRACE;
	} else {
		if (trim_copy(target, sizeof(target), text, (size_t)(eq - text)) == SIZE_MAX)
			return err_set(reterr, -EINVAL, "log filter target in '%s' is too long",
				       text);
		level = log_level_parse(eq + 1);
		if (level < 0)
			return err_set(reterr, -EINVAL,
				       "log filter '%s': unknown level '%s' (expected off, error, "
				       "warn, info, debug or trace)",
				       text, eq + 1);
		if (target[0] == '\0') {
			f->default_level = level;
			return 0;
		}
	}
	for (const char *c = target; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '_' && *c != ':' && *c != '-')
			return err_set(reterr, -EINVAL, "log filter '%s': bad target '%s'", text,
				       target);
	/* mirrord's crate names map onto ours: "mirrord" and "mirrord_agent"
	 * both mean podenv as a whole. */
	if (strncmp(target, "mirrord", 7) == 0 &&
	    (target[7] == '\0' || target[7] == ':' || target[7] == '_')) {
		char rest[LOG_TARGET_MAX];
		const char *tail = target + 7;
		while (*tail && *tail != ':')
			tail++;
		snprintf(rest, sizeof(rest), "podenv%s", tail);
		memcpy(target, rest, sizeof(target));
	}
	if (f->n == LOG_DIRECTIVES_MAX)
		return err_set(reterr, -E2BIG, "log filter has more than %d directives",
			       LOG_DIRECTIVES_MAX);
	memcpy(f->d[f->n].target, target, sizeof(target));
	f->d[f->n].level = level;
	f->n++;
	return 0;
}

int log_filter_set(const char *spec, struct err *reterr)
{
	struct log_filter f = { .default_level = LOG_INFO };
	const char *p, *comma;
	int r;

	if (spec) {
		for (p = spec;; p = comma + 1) {
			comma = strchr(p, ',');
			r = directive_parse(&f, p, comma ? (size_t)(comma - p) : strlen(p), reterr);
			if (r < 0)
				return r;
			if (!comma)
				break;
		}
	}
	filter_recompute_max(&f);
	filter = f;
	return 0;
}

void log_default_level_set(enum log_level level)
{
	filter.default_level = level;
	filter_recompute_max(&filter);
}

void log_json_set(bool on)
{
	json = on;
}

void log_fd_set(int fd)
{
	out_fd = fd;
}

/* True when `prefix` is `target` or a `::`-boundary prefix of it. */
static bool target_has_prefix(const char *target, const char *prefix, size_t plen)
{
	if (strncmp(target, prefix, plen) != 0)
		return false;
	return target[plen] == '\0' || (target[plen] == ':' && target[plen + 1] == ':');
}

bool log_enabled(const char *target, enum log_level level)
{
	size_t best_len = 0;
	enum log_level limit = filter.default_level;
	bool found = false;

	if (level > filter.max_level || level == LOG_OFF)
		return false;
	for (size_t i = 0; i < filter.n; i++) {
		size_t len = strlen(filter.d[i].target);
		if ((!found || len > best_len) && target_has_prefix(target, filter.d[i].target, len)) {
			best_len = len;
			limit = filter.d[i].level;
			found = true;
		}
	}
	return level <= limit;
}

static void json_escape(struct buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			buf_printf(b, "\\%c", c);
		else if (c == '\n')
			buf_append(b, "\\n", 2);
		else if (c == '\t')
			buf_append(b, "\\t", 2);
		else if (c < 0x20)
			buf_printf(b, "\\u%04x", c);
		else
			buf_append(b, s, 1);
	}
}

static void log_emit(const char *target, enum log_level level, const char *msg)
{
	struct timespec ts;
	struct tm tm;
	char stamp[40];
	struct buf b;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

	buf_init(&b);
	if (json) {
		buf_printf(&b, "{\"timestamp\":\"%s.%06ldZ\",\"level\":\"%s\",\"target\":\"", stamp,
			   ts.tv_nsec / 1000, level_upper[level]);
		json_escape(&b, target);
		buf_append(&b, "\",\"fields\":{\"message\":\"", 23);
		json_escape(&b, msg);
		buf_append(&b, "\"}}\n", 4);
	} else {
		buf_printf(&b, "%s.%06ldZ %5s %s: %s\n", stamp, ts.tv_nsec / 1000, level_upper[level],
			   target, msg);
	}
	/* One write per line so lines from several processes do not interleave. */
	if (write(out_fd, buf_data(&b), buf_len(&b)) < 0) {
		/* Nowhere left to report it. */
	}
	buf_done(&b);
}

void log_msg(const char *target, enum log_level level, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_emit(target, level, msg);
	errno = saved;
}

int log_msg_errno(const char *target, enum log_level level, int err, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	size_t n;

	if (!log_enabled(target, level))
		return err;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	n = strlen(msg);
	snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(err < 0 ? -err : err));
	log_emit(target, level, msg);
	return err;
}
