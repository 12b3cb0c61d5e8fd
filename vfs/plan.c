/* The mount plan: which top-level directories are routed local in full,
 * so the launcher can bind-mount them natively instead of serving every
 * lookup through FUSE (DESIGN.md, "native where provable").
 *
 * A root R is provable when, for every path P equal to R or below it and
 * every flag combination, vfs_route(P) is local — except below the listed
 * exception directories. Walking the decision order:
 *  - every pattern that can send a path elsewhere (fs.mapping, not_found,
 *    read_write, read_only, and unless the user's local list covers R, the
 *    default not-found and remote lists) must not match R and must not
 *    match anything starting with "R/" (PCRE2 partial matching), or its
 *    reach must be read off its text as "R/<name>/…" (<name> becomes an
 *    exception);
 *  - some local rule must match R and every string starting with "R/"
 *    (a complete match under PCRE2_PARTIAL_HARD), or the mode must fall
 *    back to local (localwithoverrides).
 * Anything the text reading cannot prove makes R unprovable.
 */
#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "vfs/vfs_int.h"

/* The top-level directories podenv plans for (FHS, merged-/usr links,
 * snap and nix). */
static const char *const plan_roots[] = {
	"/bin",	   "/boot",  "/dev", "/etc", "/home", "/lib",  "/lib32", "/lib64",
	"/libx32", "/media", "/mnt", "/nix", "/opt",  "/proc", "/root",	 "/run",
	"/sbin",   "/snap",  "/srv", "/sys", "/tmp",  "/usr",  "/var",
};

struct vfs_plan {
	size_t n;
	struct vfs_plan_entry *v;
};

/* Reads the literal text a pattern starts with after `^`, if every string
 * it matches must start with it (caselessly). Refuses (returns false) on
 * anything that could break that: no leading `^`, a top-level `|`, inline
 * options such as (?x) or (?m), \Q…\E quoting, an unclosed class. Stops at
 * the first metacharacter; drops a literal that a quantifier follows. */
static bool literal_prefix(const char *src, char *lit, size_t size)
{
	size_t n = 0, depth = 0;
	const char *p;

	if (src[0] != '^')
		return false;
	/* Whole-pattern scan for what could hide an alternative. */
	for (p = src; *p; p++) {
		if (*p == '\\') {
			if (p[1] == 'Q' || p[1] == 'E')
				return false;
			if (!p[1])
				return false;
			p++;
		} else if (*p == '[') {
			p++;
			if (*p == '^')
				p++;
			if (*p == ']')
				p++;
			while (*p && *p != ']') {
				if (*p == '\\' && p[1])
					p++;
				p++;
			}
			if (!*p)
				return false;
		} else if (*p == '(') {
			if (p[1] == '?' && !strchr(":=!<P'", p[2]))
				return false; /* inline options, or something unknown */
			if (p[1] == '*')
				return false; /* (*VERB) */
			depth++;
		} else if (*p == ')') {
			if (depth == 0)
				return false;
			depth--;
		} else if (*p == '|' && depth == 0) {
			return false;
		}
	}

	for (p = src + 1; *p;) {
		char c;
		size_t adv;

		if (*p == '\\') {
			unsigned char e = (unsigned char)p[1];
			if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') ||
			    (e >= '0' && e <= '9'))
				break; /* \d, \w, \1 … */
			c = p[1];
			adv = 2;
		} else if (strchr(".^$|?*+()[]{}", *p)) {
			break;
		} else {
			c = *p;
			adv = 1;
		}
		if (p[adv] && strchr("?*+{", p[adv]))
			break; /* this literal is optional or repeated: not part of it */
		if (n + 1 >= size)
			return false;
		lit[n++] = c;
		p += adv;
	}
	lit[n] = '\0';
	return true;
}

static void add_except(struct cfg_strv *v, const char *name, size_t len)
{
	for (size_t i = 0; i < v->n; i++)
		if (strlen(v->v[i]) == len && strncasecmp(v->v[i], name, len) == 0)
			return;
	v->v = xrealloc(v->v, (v->n + 2) * sizeof(*v->v));
	v->v[v->n++] = xstrndup(name, len);
	v->v[v->n] = NULL;
}

/* Pattern i of p may send paths at or below root elsewhere: records an
 * exception, or returns false with *why set. */
static bool reach(const char *root, size_t rlen, const char *what, const struct cfg_patterns *p,
		  size_t i, struct cfg_strv *except, char **why)
{
	struct cfg_patterns one = vfs_patterns_one(p, i);
	_cleanup_free_ char *sub = xasprintf("%s/", root);
	char lit[VFS_PATH_MAX];
	const char *name, *slash;

	if (cfg_patterns_match(&one, root, rlen) >= 0) {
		*why = xasprintf("%s[%zu] \"%s\" matches %s", what, i, p->src[i], root);
		return false;
	}
	if (!cfg_patterns_may_match_prefix(&one, sub, rlen + 1))
		return true;
	if (!literal_prefix(p->src[i], lit, sizeof(lit)) || strlen(lit) <= rlen + 1 ||
	    strncasecmp(lit, sub, rlen + 1) != 0)
		goto unprovable;
	name = lit + rlen + 1;
	slash = strchr(name, '/');
	/* Only a directory (a `/` follows the name) can be an exception: a
	 * bind mount over a file does not survive rename-over-write, and a
	 * name that is only a prefix ("^/etc/hos") reaches many entries. */
	if (!slash || slash == name || (slash - name == 1 && name[0] == '.') ||
	    (slash - name == 2 && name[0] == '.' && name[1] == '.'))
		goto unprovable;
	add_except(except, name, (size_t)(slash - name));
	return true;
unprovable:
	*why = xasprintf("%s[%zu] \"%s\" may match below %s", what, i, p->src[i], root);
	return false;
}

static bool reach_list(const char *root, size_t rlen, const char *what,
		       const struct cfg_patterns *p, struct cfg_strv *except, char **why)
{
	for (size_t i = 0; i < p->n; i++)
		if (!reach(root, rlen, what, p, i, except, why))
			return false;
	return true;
}

/* Does list p send root and everything below it local? */
static bool covers(const struct cfg_patterns *p, const char *root, size_t rlen, const char *sub)
{
	return cfg_patterns_match(p, root, rlen) >= 0 &&
	       cfg_patterns_must_match_prefix(p, sub, rlen + 1) >= 0;
}

static bool valid_root(const char *root)
{
	size_t n;

	if (!root || root[0] != '/' || !root[1] || strstr(root, "//") || strstr(root, "/./") ||
	    strstr(root, "/../"))
		return false;
	n = strlen(root);
	if (n >= VFS_PATH_MAX - 1 || root[n - 1] == '/')
		return false;
	if ((n >= 2 && strcmp(root + n - 2, "/.") == 0) ||
	    (n >= 3 && strcmp(root + n - 3, "/..") == 0))
		return false;
	return true;
}

int vfs_plan_check(const struct vfs_router *r, const char *root, struct vfs_plan_entry *ret)
{
	const struct cfg_fs *fs = r->fs;
	struct cfg_patterns mapping;
	struct cfg_strv except = {0};
	_cleanup_free_ char *sub = NULL;
	char *why = NULL;
	size_t rlen;
	bool ok, user_local;

	memset(ret, 0, sizeof(*ret));
	if (!valid_root(root))
		return -EINVAL;
	rlen = strlen(root);
	sub = xasprintf("%s/", root);
	ret->root = xstrdup(root);

	if (r->mode == CFG_FS_LOCAL) {
		ret->provable = true;
		goto done;
	}
	/* fs.mapping rewrites what it matches: treat its patterns as
	 * sending paths elsewhere. */
	mapping = (struct cfg_patterns){
		.n = fs->mapping.n, .src = fs->mapping.pattern, .re = fs->mapping.re};
	ok = reach_list(root, rlen, "feature.fs.mapping", &mapping, &except, &why) &&
	     reach_list(root, rlen, "feature.fs.not_found", &fs->not_found, &except, &why) &&
	     reach_list(root, rlen, "feature.fs.read_write", &fs->read_write, &except, &why) &&
	     reach_list(root, rlen, "feature.fs.read_only", &fs->read_only, &except, &why);
	/* Steps 6–7 come after the user's local list (step 5). */
	user_local = covers(&fs->local, root, rlen, sub);
	if (ok && !user_local)
		ok = reach_list(root, rlen, "default not-found list", &r->def_not_found, &except,
				&why) &&
		     reach_list(root, rlen, "default remote list", &r->def_remote, &except, &why);
	if (ok && !user_local && r->mode != CFG_FS_LOCALWITHOVERRIDES) {
		bool exact = cfg_patterns_match(&r->def_local, root, rlen) >= 0;
		bool below = cfg_patterns_must_match_prefix(&r->def_local, sub, rlen + 1) >= 0;

		for (size_t d = 0; d < VFS_DYN_COUNT; d++) {
			exact = exact || cfg_patterns_match(&r->dyn[d], root, rlen) >= 0;
			below = below ||
				cfg_patterns_must_match_prefix(&r->dyn[d], sub, rlen + 1) >= 0;
		}
		if (!exact || !below) {
			ok = false;
			why = xasprintf("no local rule covers every path under %s (mode %s)", root,
					cfg_fs_mode_name(r->mode));
		}
	}
	if (!ok) {
		for (size_t i = 0; i < except.n; i++)
			free(except.v[i]);
		free(except.v);
		ret->why = why;
		return 0;
	}
	ret->provable = true;
	ret->n_except = except.n;
	ret->except = (const char *const *)except.v;
done:
	if (!ret->except)
		ret->except = xcalloc(1, sizeof(char *));
	return 0;
}

void vfs_plan_entry_done(struct vfs_plan_entry *e)
{
	if (!e)
		return;
	if (e->except)
		for (size_t i = 0; i < e->n_except; i++)
			free((char *)e->except[i]);
	free((void *)e->except);
	free((char *)e->root);
	free((char *)e->why);
	memset(e, 0, sizeof(*e));
}

int vfs_plan_new(const struct vfs_router *r, struct vfs_plan **ret)
{
	struct vfs_plan *p = xcalloc(1, sizeof(*p));

	p->v = xcalloc(ARRAY_SIZE(plan_roots), sizeof(*p->v));
	for (size_t i = 0; i < ARRAY_SIZE(plan_roots); i++) {
		int k = vfs_plan_check(r, plan_roots[i], &p->v[i]);
		assert(k == 0);
		(void)k;
		p->n++;
	}
	*ret = p;
	return 0;
}

void vfs_plan_free(struct vfs_plan *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		vfs_plan_entry_done(&p->v[i]);
	free(p->v);
	free(p);
}

size_t vfs_plan_count(const struct vfs_plan *p)
{
	return p->n;
}

const struct vfs_plan_entry *vfs_plan_get(const struct vfs_plan *p, size_t i)
{
	return i < p->n ? &p->v[i] : NULL;
}

const struct vfs_plan_entry *vfs_plan_find(const struct vfs_plan *p, const char *root)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->v[i].root, root) == 0)
			return &p->v[i];
	return NULL;
}
