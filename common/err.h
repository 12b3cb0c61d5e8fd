/* The error convention (STYLE.md, after crun): functions return >= 0 on
 * success and -errno on failure. Where a person must read the reason, the
 * caller also passes a `struct err` it owns; the callee fills it with a code
 * and a message, and each caller on the way up may prefix context:
 *
 *	r = cfg_load(path, &cfg, reterr);
 *	if (r < 0)
 *		return err_prefix(reterr, "loading %s", path);
 *
 * No allocation: the message lives in a fixed buffer and is truncated if
 * too long. Every function here accepts a NULL `struct err *` and then only
 * returns the code.
 */
#ifndef PODENV_COMMON_ERR_H
#define PODENV_COMMON_ERR_H

#include <stdbool.h>

#include "common/macro.h"

#define ERR_MSG_MAX 1024

struct err {
	int code;		   /* negative errno, 0 when unset */
	char msg[ERR_MSG_MAX];	   /* NUL-terminated, "" when unset */
};

/* Reset to "no error". */
void err_clear(struct err *e);

/* Set code (a negative errno) and message; returns code. */
int err_set(struct err *e, int code, const char *fmt, ...) PRINTF_FMT(3, 4);

/* Like err_set, appending ": <strerror(-code)>" to the message. */
int err_set_errno(struct err *e, int code, const char *fmt, ...) PRINTF_FMT(3, 4);

/* Prefix context to the message already set ("context: message"); returns
 * e->code, or -EIO if nothing was set (a bug, but never a success). */
int err_prefix(struct err *e, const char *fmt, ...) PRINTF_FMT(2, 3);

static inline bool err_isset(const struct err *e)
{
	return e && e->code != 0;
}

#endif
