/* The routing engine: which side serves a path, and why.
 *
 * A router is built once per session from the parsed config and the
 * dynamic facts (HOME, working directory, temp dir, program). It holds
 * mirrord's default lists compiled case-insensitively, verbatim from
 * research/mirrord.md §2.2–2.4, and applies the decision order of §2.5
 * (see vfs.h). Every FUSE request routes a path, and most paths are asked
 * about many times (lookup, getattr, open…), so decisions are cached in a
 * bounded table keyed by (path, write).
 */
#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "vfs/vfs_int.h"

/* research §2.2, Linux, in file order. */
static const char *const default_local[] = {
	".\\.so$",
	".\\.sh$",
	".\\.rb$",
	".\\.d$",
	".\\.pyc$",
	".\\.py$",
	".\\.jar$",
	".\\.class$",
	".\\.js$",
	".\\.pth$",
	".\\.plist$",
	"venv\\.cfg$",
	"^/proc(/|$)",
	"^/sys(/|$)",
	"^/lib(/|$)",
	"^/etc(/|$)",
	"^/usr(/|$)",
	"^/home(/|$)",
	"^/bin(/|$)",
	"^/sbin(/|$)",
	"^/dev(/|$)",
	"^/opt(/|$)",
	"^/tmp(/|$)",
	"^/var/tmp(/|$)",
	"^/var/db/timezone/zoneinfo(/|$)",
	"^/snap(/|$)",
	"^/run(/|$)",
	"^/selinux(/|$)",
	"^/nix(/|$)",
	".+\\.asdf/.+",
	"^/home/iojs(/|$)",
	"^/home/runner(/|$)",
	"clr-.*-pipe-",
	"\\.pdb$",
	"\\.dll$",
	".*(^|/)jvm\\.cfg$",
	"/package\\.json$",
	"/\\.yarnrc$",
	"/\\.yarnrc.yml$",
	"/\\.yarnrc.json$",
	"/node_modules",
	".*/\\.tool-versions$",
	"^/Program Files",
	"^/$",
};

/* research §2.3. */
static const char *const default_remote[] = {
	"^/etc/resolv.conf$",
	"^/etc/hosts$",
	"^/etc/hostname$",
	"^/etc/ssl/certs(/|$)",
};

/* research §2.4: each becomes ^<escaped home>/<pattern>. */
static const char *const default_not_found[] = {
	"\\.config/gcloud",
	"\\.kube",
	"\\.azure",
};

/* research §6.2: skipped when skip_build_tools (mirrord's load.rs). */
static const char *const build_tools[] = {
	"as",	       "cc",	      "ld",	      "go",	    "air",     "asm",
	"cc1",	       "cgo",	      "dlv",	      "gcc",	    "git",     "link",
	"math",	       "cargo",	      "hpack",	      "rustc",	    "compile", "collect2",
	"cargo-watch", "debugserver", "jspawnhelper", "bazel-real", "clang",
};

#define VFS_CACHE_SLOTS 8192

/* Appends s with every ASCII character that is not a letter, a digit, `_`
 * or `/` backslash-escaped: PCRE2 reads `\` + a non-alphanumeric as that
 * character, and bytes >= 0x80 are literal outside UTF mode. */
static void regex_escape(struct buf *b, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9') || c == '_' || c == '/' || c >= 0x80;
		if (!plain)
			buf_append(b, "\\", 1);
		buf_append(b, &s[i], 1);
	}
}

/* Compiles the one-pattern list prefix + escape(s[0..len)) + suffix. */
static int dyn_init(struct cfg_patterns *p, const char *prefix, const char *s, size_t len,
		    const char *suffix, const char *what, struct err *reterr)
{
	struct buf b = {0};
	_cleanup_free_ char *src = NULL;
	const char *v[1];
	int r;

	buf_append(&b, prefix, strlen(prefix));
	regex_escape(&b, s, len);
	buf_append(&b, suffix, strlen(suffix));
	src = buf_steal(&b, NULL);
	buf_done(&b);
	v[0] = src;
	r = cfg_patterns_init(p, v, 1, true, what, reterr);
	return r;
}

static bool unset(const char *s)
{
	return !s || !*s;
}

/* Length of s without trailing slashes ("/" → 0). */
static size_t trim_len(const char *s)
{
	size_t n = strlen(s);

	while (n > 0 && s[n - 1] == '/')
		n--;
	return n;
}

static int router_build_lists(struct vfs_router *r, const struct vfs_router_env *env,
			      struct err *reterr)
{
	const char *tmp = unset(env->tmpdir) ? "/tmp" : env->tmpdir;
	int k;

	k = cfg_patterns_init(&r->def_local, default_local, ARRAY_SIZE(default_local), true,
			      "default local list", reterr);
	if (k < 0)
		return k;
	k = cfg_patterns_init(&r->def_remote, default_remote, ARRAY_SIZE(default_remote), true,
			      "default remote list", reterr);
	if (k < 0)
		return k;

	if (!unset(env->home)) {
		size_t hl = trim_len(env->home);
		const char *src[ARRAY_SIZE(default_not_found)];
		struct buf b = {0};
		char *all[ARRAY_SIZE(default_not_found)];

		for (size_t i = 0; i < ARRAY_SIZE(default_not_found); i++) {
			buf_append(&b, "^", 1);
			regex_escape(&b, env->home, hl);
			buf_append(&b, "/", 1);
			buf_append(&b, default_not_found[i], strlen(default_not_found[i]));
			all[i] = buf_steal(&b, NULL);
			src[i] = all[i];
		}
		buf_done(&b);
		k = cfg_patterns_init(&r->def_not_found, src, ARRAY_SIZE(src), true,
				      "default not-found list", reterr);
		for (size_t i = 0; i < ARRAY_SIZE(all); i++)
			free(all[i]);
		if (k < 0)
			return k;
	}

	/* The dynamic entries mirrord appends to the local list at start. */
	k = dyn_init(&r->dyn[VFS_DYN_TMP], "^", tmp, strlen(tmp), "", "temp dir", reterr);
	if (k < 0)
		return k;
	/* A cwd of `/` is skipped: it would make everything local (many
	 * images use `/` as WORKDIR). */
	if (!unset(env->cwd) && trim_len(env->cwd) > 0) {
		k = dyn_init(&r->dyn[VFS_DYN_CWD], "^", env->cwd, trim_len(env->cwd), "(/|$)",
			     "working directory", reterr);
		if (k < 0)
			return k;
	}
	if (!unset(env->program)) {
		k = dyn_init(&r->dyn[VFS_DYN_PROGRAM], "", env->program, strlen(env->program), "$",
			     "program", reterr);
		if (k < 0)
			return k;
	}
	if (!unset(env->home)) {
		k = dyn_init(&r->dyn[VFS_DYN_HOME_HIDDEN], "^", env->home, trim_len(env->home),
			     "/\\.", "home", reterr);
		if (k < 0)
			return k;
	}
	return 0;
}

static void strv_add(struct cfg_strv *v, const char *s)
{
	v->v = xrealloc(v->v, (v->n + 2) * sizeof(*v->v));
	v->v[v->n++] = xstrdup(s);
	v->v[v->n] = NULL;
}

int vfs_router_new(const struct cfg *cfg, const struct vfs_router_env *env, struct vfs_router **ret,
		   struct err *reterr)
{
	static const struct vfs_router_env no_env = {0};
	struct vfs_router *r;
	int k;

	if (!env)
		env = &no_env;
	r = xcalloc(1, sizeof(*r));
	r->cfg = cfg;
	r->fs = &cfg->feature.fs;
	r->mode = r->fs->mode;
	/* mirrord's setup.rs: targetless forces localwithoverrides, unless
	 * the user asked for local. */
	if (env->targetless && r->mode != CFG_FS_LOCAL)
		r->mode = CFG_FS_LOCALWITHOVERRIDES;

	k = router_build_lists(r, env, reterr);
	if (k < 0) {
		vfs_router_free(r);
		return err_prefix(reterr, "vfs: building the file rules");
	}

	for (size_t i = 0; i < cfg->skip_processes.n; i++)
		strv_add(&r->skip, cfg->skip_processes.v[i]);
	strv_add(&r->skip, "JetBrains.Debugger.Worker"); /* always skipped */
	if (cfg->skip_build_tools) {
		for (size_t i = 0; i < ARRAY_SIZE(build_tools); i++)
			strv_add(&r->skip, build_tools[i]);
		for (size_t i = 0; i < cfg->skip_extra_build_tools.n; i++)
			strv_add(&r->skip, cfg->skip_extra_build_tools.v[i]);
	}

	r->cache = xcalloc(1, sizeof(*r->cache));
	pthread_mutex_init(&r->cache->lock, NULL);
	r->cache->cap = VFS_CACHE_SLOTS;
	r->cache->slots = xcalloc(r->cache->cap, sizeof(*r->cache->slots));
	*ret = r;
	return 0;
}

static void slot_clear(struct vfs_cache_slot *s)
{
	free(s->key);
	free(s->mapped);
	memset(s, 0, sizeof(*s));
}

void vfs_router_free(struct vfs_router *r)
{
	if (!r)
		return;
	cfg_patterns_done(&r->def_local);
	cfg_patterns_done(&r->def_remote);
	cfg_patterns_done(&r->def_not_found);
	for (size_t i = 0; i < VFS_DYN_COUNT; i++)
		cfg_patterns_done(&r->dyn[i]);
	for (size_t i = 0; i < r->skip.n; i++)
		free(r->skip.v[i]);
	free(r->skip.v);
	if (r->cache) {
		for (size_t i = 0; i < r->cache->cap; i++)
			slot_clear(&r->cache->slots[i]);
		free(r->cache->slots);
		pthread_mutex_destroy(&r->cache->lock);
		free(r->cache);
	}
	free(r);
}

enum cfg_fs_mode vfs_router_mode(const struct vfs_router *r)
{
	return r->mode;
}

bool vfs_router_skips_process(const struct vfs_router *r, const char *exe_name)
{
	const char *base;

	if (!exe_name)
		return false;
	base = strrchr(exe_name, '/');
	base = base ? base + 1 : exe_name;
	if (!*base)
		return false;
	for (size_t i = 0; i < r->skip.n; i++)
		if (strcmp(r->skip.v[i], base) == 0)
			return true;
	return false;
}

/* --- deciding ------------------------------------------------------------ */

static void set_rule(struct vfs_decision *out, enum vfs_verdict v, enum vfs_rule rule,
		     const struct cfg_patterns *p, int index)
{
	out->verdict = v;
	out->rule = rule;
	out->index = p ? index : -1;
	out->pattern = p ? p->src[index] : NULL;
}

/* Steps 1–9 of research §2.5 on out->path (already mapped). */
static void decide(const struct vfs_router *r, bool write, struct vfs_decision *out)
{
	static const enum vfs_rule dyn_rule[VFS_DYN_COUNT] = {
		[VFS_DYN_TMP] = VFS_RULE_TMP,
		[VFS_DYN_CWD] = VFS_RULE_CWD,
		[VFS_DYN_PROGRAM] = VFS_RULE_PROGRAM,
		[VFS_DYN_HOME_HIDDEN] = VFS_RULE_HOME_HIDDEN,
	};
	const struct cfg_fs *fs = r->fs;
	const char *s = out->path;
	size_t len = strlen(s);
	int i;

	if (r->mode == CFG_FS_LOCAL)
		return set_rule(out, VFS_LOCAL, VFS_RULE_MODE_LOCAL, NULL, -1);
	if ((i = cfg_patterns_match(&fs->not_found, s, len)) >= 0)
		return set_rule(out, VFS_NOT_FOUND, VFS_RULE_NOT_FOUND, &fs->not_found, i);
	if ((i = cfg_patterns_match(&fs->read_write, s, len)) >= 0)
		return set_rule(out, VFS_REMOTE_RW, VFS_RULE_READ_WRITE, &fs->read_write, i);
	/* read_only: a write-open is done on the local file (mirrord's
	 * "ReadOnly" bypass), not refused. */
	if ((i = cfg_patterns_match(&fs->read_only, s, len)) >= 0)
		return set_rule(out, write ? VFS_LOCAL : VFS_REMOTE_RO, VFS_RULE_READ_ONLY,
				&fs->read_only, i);
	if ((i = cfg_patterns_match(&fs->local, s, len)) >= 0)
		return set_rule(out, VFS_LOCAL, VFS_RULE_LOCAL, &fs->local, i);
	if ((i = cfg_patterns_match(&r->def_not_found, s, len)) >= 0)
		return set_rule(out, VFS_NOT_FOUND, VFS_RULE_DEFAULT_NOT_FOUND, &r->def_not_found,
				i);
	if (!write && (i = cfg_patterns_match(&r->def_remote, s, len)) >= 0)
		return set_rule(out, VFS_REMOTE_RO, VFS_RULE_DEFAULT_REMOTE, &r->def_remote, i);
	if ((i = cfg_patterns_match(&r->def_local, s, len)) >= 0)
		return set_rule(out, VFS_LOCAL, VFS_RULE_DEFAULT_LOCAL, &r->def_local, i);
	for (size_t d = 0; d < VFS_DYN_COUNT; d++)
		if ((i = cfg_patterns_match(&r->dyn[d], s, len)) >= 0)
			return set_rule(out, VFS_LOCAL, dyn_rule[d], &r->dyn[d], i);
	switch (r->mode) {
	case CFG_FS_WRITE:
		return set_rule(out, VFS_REMOTE_RW, VFS_RULE_MODE, NULL, -1);
	case CFG_FS_READ:
		return set_rule(out, write ? VFS_LOCAL : VFS_REMOTE_RO, VFS_RULE_MODE, NULL, -1);
	case CFG_FS_LOCALWITHOVERRIDES:
	case CFG_FS_LOCAL:
	default:
		return set_rule(out, VFS_LOCAL, VFS_RULE_MODE, NULL, -1);
	}
}

/* fs.mapping: the first entry whose pattern matches rewrites out->path. */
static int apply_mapping(const struct vfs_router *r, const char *path, size_t len,
			 struct vfs_decision *out)
{
	const struct cfg_mapping *m = &r->fs->mapping;
	_cleanup_free_ char *mapped = NULL;
	size_t n;

	for (size_t i = 0; i < m->n; i++) {
		if (!cfg_regex_match(m->re[i], path, len))
			continue;
		/* cfg_mapping_apply picks the same first matching entry. */
		if (cfg_mapping_apply(m, path, &mapped) <= 0)
			return 0;
		n = strlen(mapped);
		if (n >= VFS_PATH_MAX)
			return -ENAMETOOLONG;
		memcpy(out->path, mapped, n + 1);
		out->map_pattern = m->pattern[i];
		out->map_replace = m->replace[i];
		return 1;
	}
	return 0;
}

static uint64_t path_hash(const char *s, size_t len, unsigned flags)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ flags; /* FNV-1a */

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	return h ^ (h >> 29);
}

static bool cache_get(struct vfs_cache *c, uint64_t h, const char *path, size_t len, unsigned flags,
		      struct vfs_decision *out)
{
	struct vfs_cache_slot *s;
	bool hit = false;

	pthread_mutex_lock(&c->lock);
	c->lookups++;
	s = &c->slots[h & (c->cap - 1)];
	if (s->key && s->hash == h && s->flags == flags && strncmp(s->key, path, len + 1) == 0) {
		out->verdict = s->verdict;
		out->rule = s->rule;
		out->index = s->index;
		out->pattern = s->pattern;
		out->map_pattern = s->map_pattern;
		out->map_replace = s->map_replace;
		if (s->mapped)
			memcpy(out->path, s->mapped, strlen(s->mapped) + 1);
		else
			memcpy(out->path, path, len + 1);
		c->hits++;
		hit = true;
	}
	pthread_mutex_unlock(&c->lock);
	return hit;
}

static void cache_put(struct vfs_cache *c, uint64_t h, const char *path, size_t len, unsigned flags,
		      const struct vfs_decision *d)
{
	/* Allocate outside the lock. */
	char *key = xstrndup(path, len);
	char *mapped = d->map_pattern ? xstrdup(d->path) : NULL;
	struct vfs_cache_slot *s, old;

	pthread_mutex_lock(&c->lock);
	s = &c->slots[h & (c->cap - 1)];
	old = *s;
	if (!old.key)
		c->len++;
	*s = (struct vfs_cache_slot){
		.key = key,
		.hash = h,
		.flags = flags,
		.verdict = d->verdict,
		.rule = d->rule,
		.index = d->index,
		.pattern = d->pattern,
		.map_pattern = d->map_pattern,
		.map_replace = d->map_replace,
		.mapped = mapped,
	};
	pthread_mutex_unlock(&c->lock);
	free(old.key);
	free(old.mapped);
}

int vfs_route(const struct vfs_router *r, const char *path, unsigned flags,
	      struct vfs_decision *out)
{
	size_t len;
	uint64_t h;
	int k;

	if (!path || path[0] != '/')
		return -EINVAL;
	len = strlen(path);
	if (len >= VFS_PATH_MAX)
		return -ENAMETOOLONG;

	out->mode = r->mode;
	out->write = flags & VFS_ROUTE_WRITE;
	out->map_pattern = NULL;
	out->map_replace = NULL;
	out->cached = false;

	/* Step 0: the kernel opens what it executes; mirrord never sees
	 * those opens, so neither mapping nor rules apply. */
	if (flags & VFS_ROUTE_EXEC) {
		memcpy(out->path, path, len + 1);
		set_rule(out, VFS_LOCAL, VFS_RULE_EXEC, NULL, -1);
		return 0;
	}

	flags &= VFS_ROUTE_WRITE; /* the only flag the rules read */
	h = path_hash(path, len, flags);
	if (cache_get(r->cache, h, path, len, flags, out)) {
		out->cached = true;
		return 0;
	}

	/* mode local: mirrord does not even install its fs hooks, so no
	 * mapping either. */
	k = r->mode == CFG_FS_LOCAL ? 0 : apply_mapping(r, path, len, out);
	if (k < 0)
		return k;
	if (k == 0)
		memcpy(out->path, path, len + 1);
	decide(r, flags & VFS_ROUTE_WRITE, out);
	cache_put(r->cache, h, path, len, flags, out);
	return 0;
}

void vfs_router_stats(const struct vfs_router *r, struct vfs_route_stats *ret)
{
	pthread_mutex_lock(&r->cache->lock);
	ret->lookups = r->cache->lookups;
	ret->hits = r->cache->hits;
	ret->entries = r->cache->len;
	ret->capacity = r->cache->cap;
	pthread_mutex_unlock(&r->cache->lock);
}

/* --- explaining ------------------------------------------------------------ */

const char *vfs_verdict_name(enum vfs_verdict v)
{
	switch (v) {
	case VFS_LOCAL:
		return "local";
	case VFS_REMOTE_RO:
		return "remote read-only";
	case VFS_REMOTE_RW:
		return "remote read-write";
	case VFS_NOT_FOUND:
		return "not found";
	}
	return "?";
}

const char *vfs_rule_name(enum vfs_rule rule)
{
	switch (rule) {
	case VFS_RULE_EXEC:
		return "open for execution";
	case VFS_RULE_MODE_LOCAL:
		return "mode local";
	case VFS_RULE_NOT_FOUND:
		return "feature.fs.not_found";
	case VFS_RULE_READ_WRITE:
		return "feature.fs.read_write";
	case VFS_RULE_READ_ONLY:
		return "feature.fs.read_only";
	case VFS_RULE_LOCAL:
		return "feature.fs.local";
	case VFS_RULE_DEFAULT_NOT_FOUND:
		return "default not-found list";
	case VFS_RULE_DEFAULT_REMOTE:
		return "default remote list";
	case VFS_RULE_DEFAULT_LOCAL:
		return "default local list";
	case VFS_RULE_CWD:
		return "working directory";
	case VFS_RULE_TMP:
		return "temp dir";
	case VFS_RULE_PROGRAM:
		return "running program";
	case VFS_RULE_HOME_HIDDEN:
		return "hidden entry under $HOME";
	case VFS_RULE_MODE:
		return "mode";
	}
	return "?";
}

/* research §2.5 step numbers; 0 is podenv's exec rule. */
static int rule_step(enum vfs_rule rule)
{
	static const int step[] = {
		[VFS_RULE_EXEC] = 0,
		[VFS_RULE_MODE_LOCAL] = 1,
		[VFS_RULE_NOT_FOUND] = 2,
		[VFS_RULE_READ_WRITE] = 3,
		[VFS_RULE_READ_ONLY] = 4,
		[VFS_RULE_LOCAL] = 5,
		[VFS_RULE_DEFAULT_NOT_FOUND] = 6,
		[VFS_RULE_DEFAULT_REMOTE] = 7,
		[VFS_RULE_DEFAULT_LOCAL] = 8,
		[VFS_RULE_CWD] = 8,
		[VFS_RULE_TMP] = 8,
		[VFS_RULE_PROGRAM] = 8,
		[VFS_RULE_HOME_HIDDEN] = 8,
		[VFS_RULE_MODE] = 9,
	};
	return (unsigned)rule < ARRAY_SIZE(step) ? step[rule] : -1;
}

static bool rule_is_list(enum vfs_rule rule)
{
	return rule >= VFS_RULE_NOT_FOUND && rule <= VFS_RULE_DEFAULT_LOCAL;
}

int vfs_decision_format(const struct vfs_decision *d, char *buf, size_t size)
{
	struct buf b = {0};
	_cleanup_free_ char *s = NULL;
	char tmp[64];
	size_t n;

#define ADD(str) buf_append(&b, (str), strlen(str))
	ADD(vfs_verdict_name(d->verdict));
	ADD(": ");
	if (d->rule == VFS_RULE_MODE) {
		ADD("mode ");
		ADD(cfg_fs_mode_name(d->mode));
	} else {
		ADD(vfs_rule_name(d->rule));
	}
	if (d->pattern) {
		if (rule_is_list(d->rule)) {
			snprintf(tmp, sizeof(tmp), "[%d]", d->index);
			ADD(tmp);
		}
		ADD(" \"");
		ADD(d->pattern);
		ADD("\"");
	}
	snprintf(tmp, sizeof(tmp), " (step %d", rule_step(d->rule));
	ADD(tmp);
	if (d->write && d->verdict == VFS_LOCAL &&
	    (d->rule == VFS_RULE_READ_ONLY || (d->rule == VFS_RULE_MODE && d->mode == CFG_FS_READ)))
		ADD(", open for writing goes local");
	ADD(")");
	if (d->map_pattern) {
		ADD(" on ");
		ADD(d->path);
		ADD(", mapped by feature.fs.mapping \"");
		ADD(d->map_pattern);
		ADD("\" -> \"");
		ADD(d->map_replace);
		ADD("\"");
	}
#undef ADD
	s = buf_steal(&b, &n);
	buf_done(&b);
	if (size > 0) {
		size_t c = MIN(n, size - 1);
		memcpy(buf, s, c);
		buf[c] = '\0';
	}
	return (int)n;
}
