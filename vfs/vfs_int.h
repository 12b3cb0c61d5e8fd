/* vfs internals shared by the files of the module; include only inside
 * vfs/. */
#ifndef PODENV_VFS_VFS_INT_H
#define PODENV_VFS_VFS_INT_H

#include <pthread.h>
#include <stdint.h>

#include "vfs/vfs.h"

/* The dynamic local entries of step 8, in mirrord's order. */
enum vfs_dyn {
	VFS_DYN_TMP = 0,
	VFS_DYN_CWD,
	VFS_DYN_PROGRAM,
	VFS_DYN_HOME_HIDDEN,
	VFS_DYN_COUNT,
};

struct vfs_cache_slot {
	char *key; /* the path; NULL: empty slot */
	uint64_t hash;
	unsigned flags;
	enum vfs_verdict verdict;
	enum vfs_rule rule;
	int index;
	const char *pattern;
	const char *map_pattern;
	const char *map_replace;
	char *mapped; /* NULL: the path is unmapped */
};

/* Bounded, direct-mapped: a colliding path evicts the older one. */
struct vfs_cache {
	pthread_mutex_t lock;
	struct vfs_cache_slot *slots;
	size_t cap; /* power of two */
	size_t len;
	unsigned long long lookups;
	unsigned long long hits;
};

struct vfs_router {
	const struct cfg *cfg; /* borrowed */
	const struct cfg_fs *fs;
	enum cfg_fs_mode mode; /* effective */

	/* The default lists (research §2.2–2.4), compiled caseless. */
	struct cfg_patterns def_local;
	struct cfg_patterns def_remote;
	struct cfg_patterns def_not_found;	/* empty without $HOME */
	struct cfg_patterns dyn[VFS_DYN_COUNT]; /* 0 or 1 pattern each */

	/* skip_processes, plus build tools when skip_build_tools. */
	struct cfg_strv skip;

	struct vfs_cache *cache; /* mutable behind a const router */
};

/* A one-pattern view of p's entry i (no ownership). */
static inline struct cfg_patterns vfs_patterns_one(const struct cfg_patterns *p, size_t i)
{
	return (struct cfg_patterns){.n = 1, .src = &p->src[i], .re = &p->re[i]};
}

#endif
