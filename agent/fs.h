/* The agent's file service: every path operation a FUSE filesystem needs,
 * confined to the target's root.
 *
 * Every path is resolved with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
 * against the target's root fd, so "..", absolute symlinks and /proc magic
 * links can never leave it. Operations on a final component (unlink, mkdir,
 * rename…) open the parent that way and then act on one plain name with
 * the *at() call; operations that must follow a final symlink (chmod,
 * utimens, xattrs) first resolve it in root to an O_PATH fd and then act on
 * that fd, never on a path the kernel would resolve against the host root.
 *
 * Paths are absolute within the target ("/etc/hosts"); "" and "/" mean the
 * root. All functions return >= 0 or -errno and are safe to call from any
 * thread (they share nothing but the root fd, which they only read).
 */
#ifndef PODENV_AGENT_FS_H
#define PODENV_AGENT_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>

/* Resolves path in root; returns a new fd opened with `flags` (O_CLOEXEC
 * added) or -errno. `follow` false adds O_NOFOLLOW for the last component. */
int agent_fs_open(int root_fd, const char *path, int flags, mode_t mode);

int agent_fs_stat(int root_fd, const char *path, bool follow, struct stat *st);
int agent_fs_readlink(int root_fd, const char *path, char *out, size_t outsz);
int agent_fs_mkdir(int root_fd, const char *path, mode_t mode);
int agent_fs_mknod(int root_fd, const char *path, mode_t mode, dev_t dev);
int agent_fs_unlink(int root_fd, const char *path);
int agent_fs_rmdir(int root_fd, const char *path);
int agent_fs_symlink(int root_fd, const char *target, const char *path);
int agent_fs_link(int root_fd, const char *oldpath, const char *newpath);
int agent_fs_rename(int root_fd, const char *oldpath, const char *newpath, unsigned int flags);
int agent_fs_chmod(int root_fd, const char *path, mode_t mode);
int agent_fs_chown(int root_fd, const char *path, uid_t uid, gid_t gid, bool follow);
/* times as for utimensat (UTIME_NOW / UTIME_OMIT allowed). */
int agent_fs_utimens(int root_fd, const char *path, const struct timespec times[2], bool follow);
int agent_fs_truncate(int root_fd, const char *path, off_t size);
int agent_fs_statfs(int root_fd, const char *path, struct statfs *st);
/* mode as for access(2): R_OK, W_OK, X_OK, F_OK; checked with the agent's
 * effective ids (AT_EACCESS). */
int agent_fs_access(int root_fd, const char *path, int mode);

/* Extended attributes, following the last symlink. A size of 0 asks for
 * the size needed; returns the length or -errno (-ERANGE if too small). */
ssize_t agent_fs_getxattr(int root_fd, const char *path, const char *name, void *value,
			  size_t size);
ssize_t agent_fs_listxattr(int root_fd, const char *path, char *list, size_t size);
int agent_fs_setxattr(int root_fd, const char *path, const char *name, const void *value,
		      size_t size, int flags);
int agent_fs_removexattr(int root_fd, const char *path, const char *name);

/* One directory entry with its attributes (readdirplus). */
struct agent_fs_dirent {
	uint64_t cookie; /* pass back to continue after this entry */
	struct stat st;	 /* lstat of the entry; st_mode 0 if it vanished */
	char name[256];
};

/* Reads entries of the directory open as dir_fd, starting after `cookie`
 * (0 = from the start), filling at most max entries (attributes included,
 * "." and ".." skipped). Returns the count; 0 means the end. */
int agent_fs_readdir(int dir_fd, uint64_t cookie, struct agent_fs_dirent *out, size_t max);

#endif
