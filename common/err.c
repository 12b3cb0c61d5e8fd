/* struct err: a code plus a human message, built without allocation so it
 * is safe in a forked child and on out-of-memory paths. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"

void err_clear(struct err *e)
{
	if (!e)
		return;
	e->code = 0;
	e->msg[0] = '\0';
}

static void __attribute__((format(printf, 3, 0)))
set_va(struct err *e, int code, const char *fmt, va_list ap)
{
	e->code = code;
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
}

int err_set(struct err *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return code;
	va_start(ap, fmt);
	set_va(e, code, fmt, ap);
	va_end(ap);
	return code;
}

int err_set_errno(struct err *e, int code, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	if (!e)
		return code;
	va_start(ap, fmt);
	set_va(e, code, fmt, ap);
	va_end(ap);
	n = strlen(e->msg);
	snprintf(e->msg + n, sizeof(e->msg) - n, ": %s", strerror(code < 0 ? -code : code));
	return code;
}

int err_prefix(struct err *e, const char *fmt, ...)
{
	char prefix[ERR_MSG_MAX], old[ERR_MSG_MAX];
	va_list ap;

	if (!e)
		return -EIO;
	if (e->code == 0)
		e->code = -EIO;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof(old));
	if (old[0])
		snprintf(e->msg, sizeof(e->msg), "%s: %s", prefix, old);
	else
		snprintf(e->msg, sizeof(e->msg), "%s", prefix);
	return e->code;
}
