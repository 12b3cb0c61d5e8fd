/* The environment builder for `podenv exec` (see env.h for the rules).
 *
 * The order and the corner cases follow mirrord 3.250 rather than its
 * documentation: the agent's filter (`mirrord/agent/src/env.rs`) always
 * applies the built-in exclude list, even to names given in `include`;
 * the CLI (`cli/src/execution.rs::fetch_env_vars`, `cli/src/main.rs`)
 * applies env_file, then mapping, then override, lays the result over the
 * local environment and removes `unset` names; the layer then removes
 * them again case-insensitively (`layer/src/lib.rs`), which is what a
 * program finally sees, so podenv removes them case-insensitively once.
 * `feature.magic.aws` adds AWS_PROFILE to `unset` (`config/src/lib.rs`
 * apply_magic); config/ leaves that to this file.
 *
 * The dotenv parser is a port of dotenvy 0.15.7 (the version mirrord
 * locks), quirks included, so that a file gives the same variables in
 * both: it first joins physical lines into logical ones (a quote may span
 * lines; a '#' after whitespace starts a comment), then parses each.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/macro.h"
#include "launcher/env.h"

/* mirrord's built-in exclude list, verbatim (agent/src/env.rs): variables
 * that describe the local toolchain and must stay local. */
static const char *const default_excludes[] = {
	"BUNDLER_ORIG_BUNDLER_ORIG_MANPATH",
	"BUNDLER_ORIG_BUNDLER_VERSION",
	"BUNDLER_ORIG_BUNDLE_BIN_PATH",
	"BUNDLER_ORIG_BUNDLE_GEMFILE",
	"BUNDLER_ORIG_GEM_HOME",
	"BUNDLER_ORIG_MANPATH",
	"BUNDLER_ORIG_PATH",
	"BUNDLER_ORIG_RB_USER_INSTALL",
	"BUNDLER_ORIG_RUBYLIB",
	"BUNDLER_ORIG_RUBYOPT",
	"BUNDLER_VERSION",
	"BUNDLE_APP_CONFIG",
	"BUNDLE_BIN_PATH",
	"BUNDLE_FORCE_RUBY_PLATFORM",
	"BUNDLE_GEMFILE",
	"BUNDLE_GEM_PATH",
	"BUNDLE_PATH",
	"BUNDLE_WITHOUT",
	"CATALINA_HOME",
	"CLASSPATH",
	"DOTNET_EnableDiagnostics",
	"DOTNET_STARTUP_HOOKS",
	"GEM_HOME",
	"GEM_PATH",
	"GOPATH",
	"GOMODCACHE",
	"HOME",
	"HOMEPATH",
	"JAVA_EXE",
	"JAVA_HOME",
	"JAVA_TOOL_OPTIONS",
	"PATH",
	"PWD",
	"PYTHONPATH",
	"RUBYLIB",
	"RUBYOPT",
	"MIRRORD_LOG",
	"RUST_LOG",
	"_JAVA_OPTIONS",
};

/* --- arrays ------------------------------------------------------------------ */

/* A growing array; v[n] is NULL whenever v is not. */
struct envvec {
	char **v;
	size_t n;
	size_t cap;
};

static void vec_done(struct envvec *e)
{
	sandbox_env_free(e->v);
	*e = (struct envvec){0};
}

#define _cleanup_envvec_ _cleanup_(vec_done)

static void vec_reserve(struct envvec *e, size_t more)
{
	if (e->n + more + 1 <= e->cap)
		return;
	e->cap = MAX(e->cap * 2, e->n + more + 1);
	e->v = xrealloc(e->v, e->cap * sizeof(*e->v));
	e->v[e->n] = NULL;
}

/* Length of the name of "NAME=value", or 0 when there is no '=' or the
 * name is empty. */
static size_t entry_name_len(const char *s)
{
	const char *eq = strchr(s, '=');

	return eq ? (size_t)(eq - s) : 0;
}

static bool valid_name(const char *name)
{
	return name[0] && !strchr(name, '=');
}

static ssize_t vec_find(char *const *v, size_t n, const char *name, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strncmp(v[i], name, len) == 0 && v[i][len] == '=')
			return (ssize_t)i;
	return -1;
}

/* Takes ownership of entry ("NAME=value", name of len bytes): replaces the
 * entry of that name in place, or appends. */
static void vec_put(struct envvec *e, char *entry, size_t len)
{
	ssize_t i = vec_find(e->v, e->n, entry, len);

	if (i >= 0) {
		free(e->v[i]);
		e->v[i] = entry;
		return;
	}
	vec_reserve(e, 1);
	e->v[e->n++] = entry;
	e->v[e->n] = NULL;
}

static void vec_set(struct envvec *e, const char *name, const char *value)
{
	vec_put(e, xasprintf("%s=%s", name, value), strlen(name));
}

/* Copies the well-formed entries of a NULL-terminated list, later
 * duplicates replacing earlier ones. */
static void vec_merge(struct envvec *e, char *const *list)
{
	for (size_t i = 0; list && list[i]; i++) {
		size_t len = entry_name_len(list[i]);

		if (len)
			vec_put(e, xstrdup(list[i]), len);
	}
}

void sandbox_env_free(char **env)
{
	if (!env)
		return;
	for (size_t i = 0; env[i]; i++)
		free(env[i]);
	free(env);
}

size_t sandbox_env_count(char *const *env)
{
	size_t n = 0;

	while (env && env[n])
		n++;
	return n;
}

const char *sandbox_env_get(char *const *env, const char *name)
{
	size_t len = strlen(name);
	ssize_t i = vec_find(env, sandbox_env_count(env), name, len);

	return i >= 0 ? env[i] + len + 1 : NULL;
}

int sandbox_env_set(char ***env, const char *name, const char *value)
{
	size_t n = sandbox_env_count(*env), len = strlen(name);
	char **v = *env;

	if (!valid_name(name))
		return -EINVAL;
	if (!value) {
		size_t k = 0;

		for (size_t i = 0; i < n; i++) {
			if (strncmp(v[i], name, len) == 0 && v[i][len] == '=')
				free(v[i]);
			else
				v[k++] = v[i];
		}
		if (v)
			v[k] = NULL;
		return 0;
	}
	struct envvec e = {.v = v, .n = n, .cap = v ? n + 1 : 0};
	vec_set(&e, name, value);
	*env = e.v;
	return 0;
}

int sandbox_env_parse(const struct proto_list *l, char ***ret, struct err *reterr)
{
	_cleanup_envvec_ struct envvec e = {0};
	struct proto_iter it;
	const char *s;
	size_t i = 0;
	int r;

	vec_reserve(&e, l->count);
	proto_iter_init(&it, l);
	for (; (r = proto_iter_str(&it, &s)) > 0; i++)
		if (entry_name_len(s)) {
			vec_reserve(&e, 1);
			e.v[e.n++] = xstrdup(s);
			e.v[e.n] = NULL;
		}
	if (r < 0)
		return err_set(reterr, r, "GETENV: item %zu does not decode", i);
	*ret = TAKE_PTR(e.v);
	return (int)e.n;
}

/* --- filtering ------------------------------------------------------------------- */

/* Bytes in the UTF-8 sequence at s (1 for a stray byte); s[0] != 0. */
static size_t utf8_len(const char *s)
{
	size_t n = 1;

	while ((s[n] & 0xc0) == 0x80)
		n++;
	return n;
}

bool sandbox_env_wildmatch(const char *pattern, const char *name)
{
	const char *p = pattern, *s = name;
	const char *star = NULL, *resume = NULL;

	/* Greedy with one backtrack point: on a mismatch, the last '*'
	 * absorbs one more character. Linear in practice, never exponential. */
	while (*s) {
		if (*p == '*') {
			star = ++p;
			resume = s;
		} else if (*p == '?') {
			p++;
			s += utf8_len(s);
		} else if (*p && *p == *s) {
			p++;
			s++;
		} else if (star) {
			p = star;
			resume += utf8_len(resume);
			s = resume;
		} else {
			return false;
		}
	}
	while (*p == '*')
		p++;
	return *p == '\0';
}

static bool any_match(const struct cfg_strv *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (sandbox_env_wildmatch(l->v[i], name))
			return true;
	return false;
}

bool sandbox_env_selected(const struct cfg_env *e, const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(default_excludes); i++)
		if (strcmp(default_excludes[i], name) == 0)
			return false;
	if (any_match(&e->exclude, name))
		return false;
	return e->include.n == 0 || any_match(&e->include, name);
}

/* --- dotenv (dotenvy 0.15.7) ------------------------------------------------------- */

struct dotenv {
	const char *what;
	char *const *lookup; /* the launcher's environment */
	struct envvec out;   /* entries so far, file order, duplicates kept */
	unsigned line;	     /* first physical line of the logical line */
	struct err *err;
};

static void dotenv_done(struct dotenv *d)
{
	vec_done(&d->out);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Rust's char::is_alphanumeric, approximated: any non-ASCII byte counts,
 * so a name in another script is taken whole. */
static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (unsigned char)c >= 0x80;
}

static int dotenv_error(struct dotenv *d, size_t col, const char *why)
{
	return err_set(d->err, -EINVAL, "%s: line %u: %s (at byte %zu)", d->what, d->line, why,
		       col + 1);
}

/* $NAME: the launcher's environment first, then the file's earlier
 * entries (the latest of that name). An empty name gives nothing. */
static void substitute(struct dotenv *d, struct buf *name, struct buf *out)
{
	size_t len = buf_len(name);
	const char *n = (const char *)buf_data(name);
	ssize_t i;

	if (len == 0)
		return;
	i = vec_find(d->lookup, sandbox_env_count(d->lookup), n, len);
	if (i >= 0) {
		const char *v = d->lookup[i] + len + 1;
		buf_append(out, v, strlen(v));
	} else {
		for (size_t k = d->out.n; k-- > 0;)
			if (strncmp(d->out.v[k], n, len) == 0 && d->out.v[k][len] == '=') {
				const char *v = d->out.v[k] + len + 1;
				buf_append(out, v, strlen(v));
				break;
			}
	}
	buf_reset(name);
}

enum subst { SUB_NONE, SUB_BLOCK, SUB_BRACED };

/* parse_value(): the value part of a logical line, [p, end). */
static int dotenv_value(struct dotenv *d, const char *p, const char *end, char **ret)
{
	_cleanup_(buf_done) struct buf out = {0}, name = {0};
	bool strong = false, weak = false, escaped = false, expecting_end = false;
	enum subst mode = SUB_NONE;
	const char *start = p;
	_cleanup_free_ char *value = NULL;
	size_t len;

	for (; p < end; p++) {
		char c = *p;

		if (expecting_end) {
			/* `k=v #comment` is fine, `k=v w` is not. */
			if (c == ' ' || c == '\t')
				continue;
			if (c == '#')
				break;
			return dotenv_error(d, (size_t)(p - start),
					    "unquoted value with whitespace in it");
		} else if (escaped) {
			switch (c) {
			case '\\':
			case '\'':
			case '"':
			case '$':
			case ' ':
				buf_append(&out, &c, 1);
				break;
			case 'n':
				buf_append(&out, "\n", 1);
				break;
			default:
				return dotenv_error(d, (size_t)(p - start), "unknown escape");
			}
			escaped = false;
		} else if (strong) {
			if (c == '\'')
				strong = false;
			else
				buf_append(&out, &c, 1);
		} else if (mode != SUB_NONE) {
			if (is_alnum(c)) {
				buf_append(&name, &c, 1);
			} else if (mode == SUB_BLOCK) {
				if (c == '{' && buf_len(&name) == 0) {
					mode = SUB_BRACED;
				} else {
					/* dotenvy copies the character that ends the name
					 * as it is, even a quote. */
					substitute(d, &name, &out);
					if (c == '$') {
						mode = SUB_BLOCK;
					} else {
						mode = SUB_NONE;
						buf_append(&out, &c, 1);
					}
				}
			} else if (c == '}') {
				mode = SUB_NONE;
				substitute(d, &name, &out);
			} else {
				buf_append(&name, &c, 1);
			}
		} else if (c == '$') {
			mode = SUB_BLOCK;
		} else if (weak) {
			if (c == '"')
				weak = false;
			else if (c == '\\')
				escaped = true;
			else
				buf_append(&out, &c, 1);
		} else if (c == '\'') {
			strong = true;
		} else if (c == '"') {
			weak = true;
		} else if (c == '\\') {
			escaped = true;
		} else if (c == ' ' || c == '\t') {
			expecting_end = true;
		} else {
			buf_append(&out, &c, 1);
		}
	}
	if (mode == SUB_BRACED)
		return dotenv_error(d, (size_t)(end - start), "unterminated ${");
	if (strong || weak)
		return dotenv_error(d, (size_t)(end - start), "unterminated quote");
	substitute(d, &name, &out);
	value = buf_steal(&out, &len);
	if (strlen(value) != len)
		return dotenv_error(d, 0, "NUL byte in the value");
	*ret = TAKE_PTR(value);
	return 0;
}

static size_t dotenv_key(const char *p, const char *end)
{
	size_t n = 0;

	if (p == end || !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_'))
		return 0;
	while (p + n < end && ((p[n] >= 'a' && p[n] <= 'z') || (p[n] >= 'A' && p[n] <= 'Z') ||
			       (p[n] >= '0' && p[n] <= '9') || p[n] == '_' || p[n] == '.'))
		n++;
	return n;
}

/* parse_line(): one logical line [p, end). */
static int dotenv_line(struct dotenv *d, const char *p, const char *end)
{
	const char *start = p, *key;
	_cleanup_free_ char *value = NULL;
	size_t klen;
	int r;

	while (end > p && is_space(end[-1]))
		end--;
	while (p < end && is_space(*p))
		p++;
	if (p == end || *p == '#')
		return 0;

	key = p;
	klen = dotenv_key(p, end);
	if (!klen)
		return dotenv_error(d, (size_t)(p - start), "expected a name");
	p += klen;
	while (p < end && is_space(*p))
		p++;
	if (klen == 6 && memcmp(key, "export", 6) == 0 && (p == end || *p != '=')) {
		/* `export NAME=value`; `export=value` sets "export". */
		key = p;
		klen = dotenv_key(p, end);
		if (!klen)
			return dotenv_error(d, (size_t)(p - start), "expected a name");
		p += klen;
		while (p < end && is_space(*p))
			p++;
	}
	if (p == end || *p != '=')
		return dotenv_error(d, (size_t)(p - start), "expected '='");
	p++;
	while (p < end && is_space(*p))
		p++;
	if (p == end || *p == '#') {
		value = xstrdup("");
	} else {
		r = dotenv_value(d, p, end, &value);
		if (r < 0)
			return r;
	}
	vec_reserve(&d->out, 1);
	d->out.v[d->out.n++] = xasprintf("%.*s=%s", (int)klen, key, value);
	d->out.v[d->out.n] = NULL;
	return 0;
}

enum qstate { Q_COMPLETE, Q_ESCAPE, Q_STRONG, Q_STRONG_ESC, Q_WEAK, Q_WEAK_ESC, Q_COMMENT, Q_WS };

/* The state after c outside quotes: an escape or a quote opens. */
static enum qstate qstate_after(char c)
{
	switch (c) {
	case '\\':
		return Q_ESCAPE;
	case '"':
		return Q_WEAK;
	case '\'':
		return Q_STRONG;
	default:
		return Q_COMPLETE;
	}
}

/* eval_end_state(): runs the line-joining state machine over one physical
 * line; returns the offset of a comment's '#' when it ends in Q_COMMENT. */
static size_t qstate_run(enum qstate *st, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = p[i];

		switch (*st) {
		case Q_WS:
			if (c == '#') {
				*st = Q_COMMENT;
				return i;
			}
			*st = qstate_after(c);
			break;
		case Q_ESCAPE:
			*st = Q_COMPLETE;
			break;
		case Q_COMPLETE:
			if (c == ' ' || c == '\t' || c == '\v' || c == '\f')
				*st = Q_WS;
			else
				*st = qstate_after(c);
			break;
		case Q_WEAK:
			*st = c == '\\' ? Q_WEAK_ESC : c == '"' ? Q_COMPLETE : Q_WEAK;
			break;
		case Q_WEAK_ESC:
			*st = Q_WEAK;
			break;
		case Q_STRONG:
			*st = c == '\\' ? Q_STRONG_ESC : c == '\'' ? Q_COMPLETE : Q_STRONG;
			break;
		case Q_STRONG_ESC:
			*st = Q_STRONG;
			break;
		case Q_COMMENT:
			break;
		}
	}
	return n;
}

int sandbox_env_file_parse(const char *text, size_t len, const char *what, char *const *lookup_env,
			   char ***ret, struct err *reterr)
{
	_cleanup_(dotenv_done) struct dotenv d = {
		.what = what, .lookup = lookup_env, .line = 1, .err = reterr};
	size_t pos = 0;
	unsigned lineno = 1;
	int r;

	while (pos < len) {
		size_t start = pos, stop;
		enum qstate st = Q_COMPLETE;

		d.line = lineno;
		for (;;) {
			const char *nl;
			size_t chunk = pos, n;

			if (pos == len) {
				/* EOF inside a quote, an escape, or (a dotenvy quirk)
				 * right after one trailing blank. */
				return dotenv_error(&d, pos - start,
						    "unterminated line at the end");
			}
			nl = memchr(text + pos, '\n', len - pos);
			pos = nl ? (size_t)(nl - text) + 1 : len;
			if (nl)
				lineno++;
			/* A line that starts with '#' is skipped whole, before
			 * the state machine sees any quote in it. */
			{
				size_t k = start;
				while (k < pos && is_space(text[k]))
					k++;
				if (k < pos && text[k] == '#') {
					stop = start;
					break;
				}
			}
			n = qstate_run(&st, text + chunk, pos - chunk);
			if (st == Q_COMMENT) {
				stop = chunk + n;
				break;
			}
			if (st == Q_COMPLETE) {
				stop = pos;
				if (stop > start && text[stop - 1] == '\n')
					stop--;
				if (stop > start && text[stop - 1] == '\r')
					stop--;
				break;
			}
		}
		r = dotenv_line(&d, text + start, text + stop);
		if (r < 0)
			return r;
	}
	if (!d.out.v)
		vec_reserve(&d.out, 0);
	*ret = TAKE_PTR(d.out.v);
	return (int)d.out.n;
}

int sandbox_env_file_load(const char *path, char *const *lookup_env, char ***ret,
			  struct err *reterr)
{
	_cleanup_close_ int fd = -1;
	_cleanup_(buf_done) struct buf b = {0};

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return err_set_errno(reterr, -errno, "%s", path);
	for (;;) {
		void *p = buf_reserve(&b, 65536);
		ssize_t n = read(fd, p, 65536);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_set_errno(reterr, -errno, "%s", path);
		if (n == 0)
			break;
		buf_commit(&b, (size_t)n);
		if (buf_len(&b) > SANDBOX_ENV_FILE_MAX)
			return err_set(reterr, -EFBIG, "%s: larger than %u bytes", path,
				       SANDBOX_ENV_FILE_MAX);
	}
	return sandbox_env_file_parse((const char *)buf_data(&b), buf_len(&b), path, lookup_env,
				      ret, reterr);
}

/* --- the builder ------------------------------------------------------------------ */

static bool unset_match(const struct cfg *cfg, const char *entry, size_t len)
{
	const struct cfg_strv *u = &cfg->feature.env.unset;

	for (size_t i = 0; i < u->n; i++)
		if (strlen(u->v[i]) == len && strncasecmp(u->v[i], entry, len) == 0)
			return true;
	return cfg->feature.magic.aws && len == 11 && strncasecmp(entry, "AWS_PROFILE", 11) == 0;
}

int sandbox_env_build(const struct cfg *cfg, char *const *remote_env, char *const *local_env,
		      char ***ret, struct err *reterr)
{
	const struct cfg_env *ce = &cfg->feature.env;
	_cleanup_envvec_ struct envvec pod = {0}, env = {0};
	_cleanup_free_ char *target = NULL;
	int r;

	for (size_t i = 0; i < ce->override.n; i++)
		if (!valid_name(ce->override.keys[i]))
			return err_set(reterr, -EINVAL,
				       "feature.env.override: \"%s\" is not a variable name",
				       ce->override.keys[i]);

	/* 1. the pod's variables that pass the filter */
	for (size_t i = 0; remote_env && remote_env[i]; i++) {
		size_t len = entry_name_len(remote_env[i]);
		_cleanup_free_ char *name = NULL;

		if (!len)
			continue;
		name = xstrndup(remote_env[i], len);
		if (sandbox_env_selected(ce, name))
			vec_put(&pod, xstrdup(remote_env[i]), len);
	}

	/* 2. env_file entries replace the pod's */
	if (ce->env_file) {
		char **file = NULL;

		r = sandbox_env_file_load(ce->env_file, local_env, &file, reterr);
		if (r < 0)
			return err_prefix(reterr, "feature.env.env_file");
		vec_merge(&pod, file);
		sandbox_env_free(file);
	}

	/* 3. mapping: the first pattern (in file order; mirrord's is a hash
	 * map, so its choice among several is unspecified) that matches
	 * somewhere in the name replaces the value with its text, as is. */
	for (size_t i = 0; i < pod.n; i++) {
		size_t len = entry_name_len(pod.v[i]);

		for (size_t m = 0; m < ce->mapping.n; m++)
			if (cfg_regex_match(ce->mapping.re[m], pod.v[i], len)) {
				char *e = xasprintf("%.*s=%s", (int)len, pod.v[i],
						    ce->mapping.replace[m]);
				free(pod.v[i]);
				pod.v[i] = e;
				break;
			}
	}

	/* 4. override, always set */
	for (size_t i = 0; i < ce->override.n; i++)
		vec_set(&pod, ce->override.keys[i], ce->override.values[i]);

	/* 5. over the local environment; the pod wins */
	vec_merge(&env, local_env);
	vec_merge(&env, pod.v);
	target = cfg_target_format(&cfg->target);
	vec_set(&env, "PODENV_TARGET", target);

	/* 6. unset, case-insensitively, last: it also removes what override set */
	{
		size_t k = 0;

		for (size_t i = 0; i < env.n; i++) {
			if (unset_match(cfg, env.v[i], entry_name_len(env.v[i])))
				free(env.v[i]);
			else
				env.v[k++] = env.v[i];
		}
		env.n = k;
		if (env.v)
			env.v[k] = NULL;
	}

	if (!env.v)
		vec_reserve(&env, 0);
	*ret = TAKE_PTR(env.v);
	return (int)env.n;
}
