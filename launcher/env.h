/* The environment of the program `podenv exec` runs: the local environment
 * with the pod's variables merged over it, following mirrord's
 * `feature.env` rules and order (research/mirrord.md §3, docs/CONFIG.md
 * "Environment"):
 *
 *   1. the pod's variables (GETENV), kept when the name matches some
 *      `include` pattern (none given: `*`) and neither an `exclude` pattern
 *      nor mirrord's built-in exclude list (PATH, HOME, PWD, JAVA_HOME, …);
 *   2. `env_file` (dotenv, parsed as mirrord's dotenvy 0.15.7 does) sets or
 *      replaces entries;
 *   3. `mapping` (regex on the *name* → the new *value*, literally);
 *   4. `override` sets or replaces entries;
 *   5. the result is laid over the local environment (pod values win),
 *      podenv adds PODENV_TARGET;
 *   6. every `unset` name (and AWS_PROFILE with `feature.magic.aws`) is
 *      removed, case-insensitively.
 *
 * Environment arrays here are NULL-terminated arrays of "NAME=value"
 * strings, each string and the array allocated with malloc; the caller of
 * the function that made one frees it with sandbox_env_free(). Pure logic:
 * nothing here reads the process environment or logs; the only I/O is
 * reading `env_file`. Any thread may call these on distinct arrays.
 */
#ifndef PODENV_LAUNCHER_ENV_H
#define PODENV_LAUNCHER_ENV_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "config/config.h"
#include "proto/proto.h"

/* Largest env_file read, in bytes (a dotenv file is small; this bounds a
 * mistaken path such as a FIFO that never ends). */
#define SANDBOX_ENV_FILE_MAX (4u << 20)

/* Builds the program's environment from cfg->feature.env (and
 * cfg->target for PODENV_TARGET, cfg->feature.magic.aws).
 *
 * remote_env: the pod's variables as GETENV returned them
 * (sandbox_env_parse()); NULL or empty when there are none (a targetless
 * session passes the agent's own environment, as mirrord does). Entries
 * without '=' or with an empty name are skipped; for a name given twice
 * the later entry wins. local_env: the launcher's environment (environ);
 * NULL means empty. Both borrowed.
 *
 * On success returns the number of entries and sets *ret (caller frees
 * with sandbox_env_free()). Local variables keep their order; new ones
 * follow in the order they were set. Errors: -EINVAL with reterr naming
 * the field (an override name that is empty or contains '=') or the
 * env_file line that does not parse; -ENOENT/-EACCES/-EFBIG/… when the
 * env_file cannot be read, reterr naming the path. */
int sandbox_env_build(const struct cfg *cfg, char *const *remote_env, char *const *local_env,
		      char ***ret, struct err *reterr);

/* Sets name=value in *env, replacing an existing entry in place or
 * appending one; value NULL removes every entry of that exact name.
 * *env may be NULL (an empty array is created) and must otherwise be an
 * array from this module, which may be reallocated. Returns 0, or -EINVAL
 * when name is empty or contains '='. */
int sandbox_env_set(char ***env, const char *name, const char *value);

/* The value of the first entry named exactly name, or NULL. Borrowed from
 * env (which may be NULL). */
const char *sandbox_env_get(char *const *env, const char *name);

/* Number of entries; env may be NULL. */
size_t sandbox_env_count(char *const *env);

/* Frees an array and its strings; NULL is fine. */
void sandbox_env_free(char **env);

/* Copies a GETENV response list ("NAME=value" strings, the target's
 * environ in order) into a new array, dropping entries without '=' or
 * with an empty name (as mirrord's agent does). Returns the number kept
 * and sets *ret (caller frees with sandbox_env_free()); -EPROTO with
 * reterr set when an item does not decode. The list is borrowed. */
int sandbox_env_parse(const struct proto_list *l, char ***ret, struct err *reterr);

/* Parses dotenv text as mirrord does (dotenvy 0.15.7): KEY=VALUE lines,
 * an optional `export ` prefix, `#` comments (whole lines, or after
 * whitespace), '…' (literal) and "…" (escapes \\ \" \' \$ \n and \space,
 * may span lines) quotes, unquoted values ending at whitespace, and $NAME /
 * ${NAME} substitution looked up first in lookup_env (the launcher's
 * environment, borrowed, may be NULL), then among earlier entries of the
 * file. Keys start with a letter or '_' and continue with letters, digits,
 * '_' or '.'.
 *
 * Returns the number of entries and sets *ret to them in file order,
 * duplicates kept (apply in order: the later one wins); caller frees with
 * sandbox_env_free(). -EINVAL with reterr = "<what>: line N: …" on the
 * first line that does not parse (the line's text is not echoed: values
 * may be secrets). */
int sandbox_env_file_parse(const char *text, size_t len, const char *what, char *const *lookup_env,
			   char ***ret, struct err *reterr);

/* Reads path (at most SANDBOX_ENV_FILE_MAX bytes; a pipe is fine) and
 * parses it with sandbox_env_file_parse(). Errors as above, or -errno
 * with reterr = "<path>: <reason>". */
int sandbox_env_file_load(const char *path, char *const *lookup_env, char ***ret,
			  struct err *reterr);

/* mirrord's name patterns (the wildmatch crate): '*' matches any run of
 * characters including none, '?' exactly one character (a UTF-8 sequence
 * counts as one), everything else itself, case-sensitively; the whole name
 * must match. */
bool sandbox_env_wildmatch(const char *pattern, const char *name);

/* Would a pod variable called name be taken under e (include/exclude and
 * the built-in exclude list)? */
bool sandbox_env_selected(const struct cfg_env *e, const char *name);

#endif
