/* The agent's file service, confined to the target's root (see fs.h for
 * the resolution rules and why each operation is shaped as it is).
 */
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/xattr.h>

#include "agent/fs.h"
#include "common/macro.h"

#define RESOLVE_FLAGS (RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)

static const char *relative(const char *path)
{
	while (*path == '/')
		path++;
	return *path ? path : ".";
}

static int openat2_in_root(int root_fd, const char *path, int flags, mode_t mode)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode & 07777 : 0,
		.resolve = RESOLVE_FLAGS,
	};
	int fd;

	do
		fd = (int)syscall(SYS_openat2, root_fd, relative(path), &how, sizeof(how));
	while (fd < 0 && errno == EAGAIN); /* a rename raced the lookup: retry */
	return fd < 0 ? -errno : fd;
}

int agent_fs_open(int root_fd, const char *path, int flags, mode_t mode)
{
	return openat2_in_root(root_fd, path, flags, mode);
}

/* O_PATH fd of path, following the last symlink (in root) or not. */
static int open_path(int root_fd, const char *path, bool follow)
{
	return openat2_in_root(root_fd, path, O_PATH | (follow ? 0 : O_NOFOLLOW), 0);
}

/* Splits path into its parent (opened as an O_PATH directory in root) and
 * the last component, which must be a plain name: operating on "." or ".."
 * or the root itself is refused as the kernel would refuse it. */
static int open_parent(int root_fd, const char *path, char name[static 256])
{
	char parent[4096];
	const char *slash;
	size_t len = strlen(path);

	while (len > 1 && path[len - 1] == '/')
		len--; /* "dir/" names dir */
	if (len >= sizeof(parent))
		return -ENAMETOOLONG;
	memcpy(parent, path, len);
	parent[len] = '\0';
	slash = strrchr(parent, '/');
	const char *base = slash ? slash + 1 : parent;
	size_t blen = strlen(base);
	if (blen == 0)
		return -EBUSY; /* the root */
	if (blen > 255)
		return -ENAMETOOLONG;
	if (!strcmp(base, ".") || !strcmp(base, ".."))
		return -EINVAL;
	memcpy(name, base, blen + 1);
	if (slash)
		parent[slash - parent] = '\0';
	else
		parent[0] = '\0';
	return openat2_in_root(root_fd, parent, O_PATH | O_DIRECTORY, 0);
}

/* "/proc/self/fd/N": the kernel follows this magic link to the exact inode
 * the fd holds, never re-resolving a path. */
static void fd_path(char out[static 32], int fd)
{
	snprintf(out, 32, "/proc/self/fd/%d", fd);
}

int agent_fs_stat(int root_fd, const char *path, bool follow, struct stat *st)
{
	_cleanup_close_ int fd = open_path(root_fd, path, follow);

	if (fd < 0)
		return fd;
	return fstat(fd, st) < 0 ? -errno : 0;
}

int agent_fs_readlink(int root_fd, const char *path, char *out, size_t outsz)
{
	_cleanup_close_ int fd = open_path(root_fd, path, false);
	ssize_t n;

	if (fd < 0)
		return fd;
	n = readlinkat(fd, "", out, outsz);
	if (n < 0)
		return errno == ENOENT ? -EINVAL : -errno; /* not a symlink */
	return (int)n;
}

int agent_fs_mkdir(int root_fd, const char *path, mode_t mode)
{
	char name[256];
	_cleanup_close_ int dfd = open_parent(root_fd, path, name);

	if (dfd < 0)
		return dfd;
	return mkdirat(dfd, name, mode) < 0 ? -errno : 0;
}

int agent_fs_mknod(int root_fd, const char *path, mode_t mode, dev_t dev)
{
	char name[256];
	_cleanup_close_ int dfd = open_parent(root_fd, path, name);

	if (dfd < 0)
		return dfd;
	return mknodat(dfd, name, mode, dev) < 0 ? -errno : 0;
}

int agent_fs_unlink(int root_fd, const char *path)
{
	char name[256];
	_cleanup_close_ int dfd = open_parent(root_fd, path, name);

	if (dfd < 0)
		return dfd;
	return unlinkat(dfd, name, 0) < 0 ? -errno : 0;
}

int agent_fs_rmdir(int root_fd, const char *path)
{
	char name[256];
	_cleanup_close_ int dfd = open_parent(root_fd, path, name);

	if (dfd < 0)
		return dfd;
	return unlinkat(dfd, name, AT_REMOVEDIR) < 0 ? -errno : 0;
}

int agent_fs_symlink(int root_fd, const char *target, const char *path)
{
	char name[256];
	_cleanup_close_ int dfd = open_parent(root_fd, path, name);

	if (dfd < 0)
		return dfd;
	/* The link's text is data: it is resolved (in root) only when used. */
	return symlinkat(target, dfd, name) < 0 ? -errno : 0;
}

int agent_fs_link(int root_fd, const char *oldpath, const char *newpath)
{
	char oname[256], nname[256];
	_cleanup_close_ int ofd = open_parent(root_fd, oldpath, oname);
	_cleanup_close_ int nfd = open_parent(root_fd, newpath, nname);

	if (ofd < 0)
		return ofd;
	if (nfd < 0)
		return nfd;
	return linkat(ofd, oname, nfd, nname, 0) < 0 ? -errno : 0;
}

int agent_fs_rename(int root_fd, const char *oldpath, const char *newpath, unsigned int flags)
{
	char oname[256], nname[256];
	_cleanup_close_ int ofd = open_parent(root_fd, oldpath, oname);
	_cleanup_close_ int nfd = open_parent(root_fd, newpath, nname);

	if (ofd < 0)
		return ofd;
	if (nfd < 0)
		return nfd;
	return renameat2(ofd, oname, nfd, nname, flags) < 0 ? -errno : 0;
}

int agent_fs_chmod(int root_fd, const char *path, mode_t mode)
{
	_cleanup_close_ int fd = open_path(root_fd, path, true);
	char p[32];

	if (fd < 0)
		return fd;
	fd_path(p, fd);
	return chmod(p, mode) < 0 ? -errno : 0;
}

int agent_fs_chown(int root_fd, const char *path, uid_t uid, gid_t gid, bool follow)
{
	_cleanup_close_ int fd = open_path(root_fd, path, follow);

	if (fd < 0)
		return fd;
	return fchownat(fd, "", uid, gid, AT_EMPTY_PATH) < 0 ? -errno : 0;
}

int agent_fs_utimens(int root_fd, const char *path, const struct timespec times[2], bool follow)
{
	_cleanup_close_ int fd = open_path(root_fd, path, follow);
	char p[32];

	if (fd < 0)
		return fd;
	fd_path(p, fd);
	return utimensat(AT_FDCWD, p, times, 0) < 0 ? -errno : 0;
}

int agent_fs_truncate(int root_fd, const char *path, off_t size)
{
	_cleanup_close_ int fd = openat2_in_root(root_fd, path, O_WRONLY, 0);

	if (fd < 0)
		return fd;
	return ftruncate(fd, size) < 0 ? -errno : 0;
}

int agent_fs_statfs(int root_fd, const char *path, struct statfs *st)
{
	_cleanup_close_ int fd = open_path(root_fd, path, true);

	if (fd < 0)
		return fd;
	return fstatfs(fd, st) < 0 ? -errno : 0;
}

int agent_fs_access(int root_fd, const char *path, int mode)
{
	_cleanup_close_ int fd = open_path(root_fd, path, true);

	if (fd < 0)
		return fd;
	return faccessat(fd, "", mode, AT_EMPTY_PATH | AT_EACCESS) < 0 ? -errno : 0;
}

ssize_t agent_fs_getxattr(int root_fd, const char *path, const char *name, void *value,
			  size_t size)
{
	_cleanup_close_ int fd = open_path(root_fd, path, true);
	char p[32];
	ssize_t n;

	if (fd < 0)
		return fd;
	fd_path(p, fd);
	n = getxattr(p, name, value, size);
	return n < 0 ? -errno : n;
}

ssize_t agent_fs_listxattr(int root_fd, const char *path, char *list, size_t size)
{
	_cleanup_close_ int fd = open_path(root_fd, path, true);
	char p[32];
	ssize_t n;

	if (fd < 0)
		return fd;
	fd_path(p, fd);
	n = listxattr(p, list, size);
	return n < 0 ? -errno : n;
}

int agent_fs_setxattr(int root_fd, const char *path, const char *name, const void *value,
		      size_t size, int flags)
{
	_cleanup_close_ int fd = open_path(root_fd, path, true);
	char p[32];

	if (fd < 0)
		return fd;
	fd_path(p, fd);
	return setxattr(p, name, value, size, flags) < 0 ? -errno : 0;
}

int agent_fs_removexattr(int root_fd, const char *path, const char *name)
{
	_cleanup_close_ int fd = open_path(root_fd, path, true);
	char p[32];

	if (fd < 0)
		return fd;
	fd_path(p, fd);
	return removexattr(p, name) < 0 ? -errno : 0;
}

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

int agent_fs_readdir(int dir_fd, uint64_t cookie, struct agent_fs_dirent *out, size_t max)
{
	/* getdents64 on the caller's fd, positioned by lseek to the cookie (the
	 * d_off of the last entry returned), so a listing can continue across
	 * requests and concurrent listings of one fd stay independent as long
	 * as each request is served whole. */
	char buf[32768];
	size_t n = 0;

	if (lseek(dir_fd, (off_t)cookie, SEEK_SET) < 0)
		return -errno;
	while (n < max) {
		long got = syscall(SYS_getdents64, dir_fd, buf, sizeof(buf));
		if (got < 0)
			return -errno;
		if (got == 0)
			break;
		for (long off = 0; off < got;) {
			struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
			off += d->d_reclen;
			if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
				continue;
			if (n == max) {
				/* Full: the next call starts from the last entry kept. */
				return (int)n;
			}
			struct agent_fs_dirent *e = &out[n];
			e->cookie = (uint64_t)d->d_off;
			snprintf(e->name, sizeof(e->name), "%s", d->d_name);
			if (fstatat(dir_fd, d->d_name, &e->st, AT_SYMLINK_NOFOLLOW) < 0)
				memset(&e->st, 0, sizeof(e->st));
			n++;
		}
	}
	return (int)n;
}
