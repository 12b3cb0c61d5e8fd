/* vfs: the filesystem the app sees as its `/`.
 *
 * Every path is routed by mirrord's file rules (research/mirrord.md §2) to
 * the pod (through the agent), to the local disk, or to "not found". This
 * header has two parts: the routing engine (pure logic on the parsed
 * config: no FUSE, no I/O, so it is unit-tested and fuzzed on its own) and
 * the FUSE filesystem built on it.
 */
#ifndef PODENV_VFS_VFS_H
#define PODENV_VFS_VFS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "config/config.h"

/* ==========================================================================
 * Routing: path → verdict, and the rule that decided it
 * ==========================================================================
 *
 * The order is mirrord's (`ensure_remote`, research §2.5), after two podenv
 * rules that mirrord gets for free from the kernel (DESIGN.md, "Semantics
 * to keep from mirrord"):
 *   0. an open for execution → local (the path as given, unmapped);
 *   1. mode local → local (the path unmapped: mirrord installs no fs
 *      hooks at all in that mode);
 *   -  fs.mapping rewrites the path (first matching entry), then:
 *   2. user not_found → not found;  3. user read_write → remote rw;
 *   4. user read_only → remote ro, or local when the open writes;
 *   5. user local → local;
 *   6. default not-found list (under $HOME) → not found;
 *   7. default remote list, unless the open writes → remote ro;
 *   8. default local list, then the dynamic entries (working directory
 *      unless it is `/`, the temp dir, the running program, hidden entries
 *      directly under $HOME) → local;
 *   9. the mode: localwithoverrides → local, write → remote rw,
 *      read → remote ro, or local when the open writes.
 * A targetless session uses localwithoverrides unless the mode is local.
 * All patterns are case-insensitive and unanchored unless they anchor
 * themselves.
 */

/* Path buffers are this big; longer paths are refused with -ENAMETOOLONG. */
#define VFS_PATH_MAX 4096

/* vfs_route() flags. */
enum {
	VFS_ROUTE_WRITE = 1 << 0, /* the operation writes: an open for writing,
				   * create, mkdir, unlink, rename, setattr… */
	VFS_ROUTE_EXEC = 1 << 1,  /* an open for execution (FUSE's exec flag) */
};

enum vfs_verdict {
	VFS_LOCAL = 0,
	VFS_REMOTE_RO, /* served by the pod, read-only */
	VFS_REMOTE_RW, /* served by the pod, writable */
	VFS_NOT_FOUND, /* ENOENT to the app */
};

/* Which rule decided (for `podenv explain`). */
enum vfs_rule {
	VFS_RULE_EXEC = 0,	    /* step 0: an open for execution */
	VFS_RULE_MODE_LOCAL,	    /* step 1: fs mode is local */
	VFS_RULE_NOT_FOUND,	    /* step 2: feature.fs.not_found[index] */
	VFS_RULE_READ_WRITE,	    /* step 3: feature.fs.read_write[index] */
	VFS_RULE_READ_ONLY,	    /* step 4: feature.fs.read_only[index] */
	VFS_RULE_LOCAL,		    /* step 5: feature.fs.local[index] */
	VFS_RULE_DEFAULT_NOT_FOUND, /* step 6: default not-found list[index] */
	VFS_RULE_DEFAULT_REMOTE,    /* step 7: default remote list[index] */
	VFS_RULE_DEFAULT_LOCAL,	    /* step 8: default local list[index] */
	VFS_RULE_CWD,		    /* step 8: the working directory */
	VFS_RULE_TMP,		    /* step 8: the temp dir */
	VFS_RULE_PROGRAM,	    /* step 8: the running program */
	VFS_RULE_HOME_HIDDEN,	    /* step 8: a hidden entry directly under $HOME */
	VFS_RULE_MODE,		    /* step 9: the mode decided */
};

struct vfs_decision {
	enum vfs_verdict verdict;
	enum vfs_rule rule;
	enum cfg_fs_mode mode; /* the effective mode (after targetless) */
	bool write;	       /* the flags asked for writing */
	int index;	       /* the pattern's index in its list; -1 for EXEC and MODE* */
	/* The pattern that decided, as written (dynamic entries: the pattern
	 * podenv built); NULL for EXEC and MODE*. Borrowed from the router
	 * (or its cfg): valid while the router lives. */
	const char *pattern;
	/* The fs.mapping entry applied, or NULL (same lifetime). */
	const char *map_pattern;
	const char *map_replace;
	bool cached; /* answered from the decision cache */
	/* The path to operate on, local or remote: the input after fs.mapping
	 * (unmapped for EXEC). */
	char path[VFS_PATH_MAX];
};

/* The dynamic facts the rules depend on. Borrowed; copied by
 * vfs_router_new(). NULL or "" means unknown / unset (no entry). */
struct vfs_router_env {
	const char *home;    /* $HOME: default not-found list, hidden entries */
	const char *cwd;     /* the app's working directory */
	const char *tmpdir;  /* $TMPDIR, else "/tmp" when NULL */
	const char *program; /* absolute path of the program being run */
	bool targetless;     /* a targetless session: localwithoverrides */
};

struct vfs_router;

/* Builds a router from the fs rules of cfg and env: compiles the default
 * and dynamic lists (case-insensitive). cfg is borrowed and must outlive
 * the router (its patterns are used in place). On success *ret is a new
 * router (caller frees with vfs_router_free) and 0 is returned; -EINVAL
 * with reterr set if a dynamic pattern fails to compile (a bug: they are
 * escaped). Any thread; no I/O. */
int vfs_router_new(const struct cfg *cfg, const struct vfs_router_env *env, struct vfs_router **ret,
		   struct err *reterr);

/* Frees a router; NULL is fine. */
void vfs_router_free(struct vfs_router *r);

/* Routes path, an absolute normalised path as FUSE builds it (no "//",
 * "." or ".." components), for an operation described by flags
 * (VFS_ROUTE_*). Fills *out and returns 0; -EINVAL if path is not
 * absolute, -ENAMETOOLONG if it (or its mapping) does not fit in
 * VFS_PATH_MAX. Decisions are cached per (path, flags) in a bounded
 * table; the router is logically read-only, and the cache is locked, so
 * any thread may call this concurrently. */
int vfs_route(const struct vfs_router *r, const char *path, unsigned flags,
	      struct vfs_decision *out);

/* The effective mode (cfg's, or localwithoverrides when targetless). */
enum cfg_fs_mode vfs_router_mode(const struct vfs_router *r);

/* Should the file operations of a process whose executable is exe_name be
 * served locally (skip_processes; with skip_build_tools, mirrord's build
 * tool list and skip_extra_build_tools)? exe_name is a file name or a path
 * (its last component is compared, exactly). Borrowed; any thread. */
bool vfs_router_skips_process(const struct vfs_router *r, const char *exe_name);

/* Cache counters (for benches and tests). */
struct vfs_route_stats {
	unsigned long long lookups;
	unsigned long long hits;
	size_t entries;
	size_t capacity;
};
void vfs_router_stats(const struct vfs_router *r, struct vfs_route_stats *ret);

/* "local", "remote read-only", "remote read-write", "not found". Static. */
const char *vfs_verdict_name(enum vfs_verdict v);

/* Where the rule comes from: "feature.fs.read_only", "default local list",
 * "working directory", "mode"… Static. */
const char *vfs_rule_name(enum vfs_rule rule);

/* One line for `podenv explain`, e.g.
 *   remote read-only: default remote list[1] "^/etc/hosts$" (step 7)
 * plus " — mapped from …" when fs.mapping applied. Writes at most size
 * bytes (NUL-terminated, truncated if needed) to buf; returns the length
 * it wanted, like snprintf. */
int vfs_decision_format(const struct vfs_decision *d, char *buf, size_t size);

/* ==========================================================================
 * The mount plan: "native where provable" (DESIGN.md, Performance design)
 * ==========================================================================
 *
 * For each top-level directory podenv knows (/bin, /dev, /etc, /home,
 * /lib*, /opt, /proc, /run, /sbin, /snap, /sys, /tmp, /usr, /var, …), the
 * plan says whether every path in it is routed local for every flag
 * combination, so it can be bind-mounted natively over the FUSE root.
 * A provable root may list exceptions: directories below it (by name, one
 * level down) that a non-local pattern reaches into; the FUSE view is
 * mounted back on each. Exceptions are only ever directories (the pattern
 * shows a `/` after the name); a pattern reaching a file directly under
 * the root (`^/etc/hosts$`) makes the root unprovable, as does any pattern
 * whose reach cannot be read off its text (unanchored, alternation, a
 * wildcard before the name). Patterns are caseless: an exception "u" also
 * covers a sibling "U" — the mounter compares names with strcasecmp. When
 * unsure: not provable.
 */

struct vfs_plan_entry {
	const char *root;	   /* "/usr" */
	bool provable;		   /* bind-mount root natively */
	size_t n_except;	   /* provable only: names directly under root */
	const char *const *except; /* n_except names, then NULL */
	const char *why;	   /* not provable: the reason, for `podenv explain` */
};

struct vfs_plan;

/* Computes the plan for r's rules (no I/O). *ret is new (caller frees with
 * vfs_plan_free); r is borrowed only during the call. Returns 0. */
int vfs_plan_new(const struct vfs_router *r, struct vfs_plan **ret);
void vfs_plan_free(struct vfs_plan *p);

/* Entries, in a fixed order; borrowed from the plan. */
size_t vfs_plan_count(const struct vfs_plan *p);
const struct vfs_plan_entry *vfs_plan_get(const struct vfs_plan *p, size_t i);
/* The entry for root ("/usr"), or NULL. */
const struct vfs_plan_entry *vfs_plan_find(const struct vfs_plan *p, const char *root);

/* Checks one directory (absolute, normalised, not "/"): fills *ret as a
 * plan entry would be; ret->except and ret->why are allocated — free with
 * vfs_plan_entry_done(). Returns 0, or -EINVAL for a bad path. */
int vfs_plan_check(const struct vfs_router *r, const char *root, struct vfs_plan_entry *ret);
void vfs_plan_entry_done(struct vfs_plan_entry *e);

/* ==========================================================================
 * The FUSE filesystem (fuse.c)
 * ==========================================================================
 *
 * One mount = one FUSE session served on the launcher's loop. With a
 * router it is the app's routed `/`; without one it is the pod's raw root
 * (everything remote), as `podenv mount` and $PODENV_ROOT show it.
 * Remote operations are asynchronous requests on the client; the kernel is
 * answered from their callbacks. Loop thread only.
 */
struct loop;
struct proto_client;

/* A file podenv serves itself (the app's /etc/resolv.conf names podenv's
 * DNS server): read-only, whatever the rules say about its path. */
struct vfs_file_override {
	const char *path;
	const char *content;
};

/* Sees every routing decision of a routed view (`podenv exec --trace`): d is
 * the router's decision for path and flags (borrowed, valid during the
 * call); final is the verdict served, override says why it differs from
 * d's ("skip_processes", "traversal anchor"), NULL when it does not.
 * Called on the loop thread, once per routing (cached decisions too). */
typedef void (*vfs_trace_fn)(void *userdata, const char *path, unsigned flags,
			     const struct vfs_decision *d, enum vfs_verdict final,
			     const char *override);

struct vfs_mount_opts {
	struct loop *loop;
	struct proto_client *client;	 /* borrowed; outlives the mount */
	const struct vfs_router *router; /* borrowed; NULL: the raw pod view */
	const char *mountpoint;
	/* Local paths under this directory are refused (the launcher's own
	 * mounts live there: serving them would wait on ourselves). NULL:
	 * the mountpoint. */
	const char *private_prefix;
	/* Absolute paths shown as empty directories (mount points the
	 * sandbox mounts over), NULL-terminated; may be NULL. Copied. */
	const char *const *synthetic_dirs;
	/* Absolute local paths (the working directory, the program, the
	 * host's ELF interpreters) that are, with their ancestor directories,
	 * served from the local side for lookups and listings, so the
	 * kernel's component-by-component walk reaches them whatever those
	 * directories' own routes say (the kernel, not the app, opens an
	 * interpreter: mirrord never sees it either). NULL-terminated; may be
	 * NULL. Copied. */
	const char *const *local_anchors;
	/* Files served from memory; an array ended by a NULL path; may be
	 * NULL. Copied. */
	const struct vfs_file_override *overrides;
	bool read_only;
	bool allow_other; /* other users may use the mount (needs root) */
	vfs_trace_fn trace; /* NULL: none; routed views only */
	void *trace_userdata;
};

struct vfs_mount;

/* 0 when this process can use FUSE (/dev/fuse readable and writable);
 * else a negative errno and a message saying what to do. Call before
 * starting anything else, so a missing requirement costs nothing. */
int vfs_fuse_check(struct err *reterr);

/* Mounts (fuse_session_mount: in the caller's mount namespace) and starts
 * serving on o->loop. Errors say which mountpoint failed. */
int vfs_mount_new(const struct vfs_mount_opts *o, struct vfs_mount **ret, struct err *reterr);

/* The mount went away (unmounted from outside, e.g. fusermount3 -u). */
bool vfs_mount_gone(const struct vfs_mount *m);

/* Unmounts and frees. NULL is fine. */
void vfs_mount_free(struct vfs_mount *m);

#endif
