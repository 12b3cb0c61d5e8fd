/* Unit tests for agent/fs.c: every operation, and every way out of the
 * root we know of (.., absolute symlinks, symlinks to /, magic links). */
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/xattr.h>

#include "agent/fs.h"
#include "tests/unit/tap.h"

static char root[256];
static int root_fd = -1;

/* A fresh root: /etc/hostname "inside", /dir/, /link -> "/", /abs ->
 * "/etc/hostname", /up -> "../../../../etc/hostname". Next to it (outside
 * the root) a file "outside" that no operation may reach. */
static void setup(void)
{
	char p[512];
	snprintf(root, sizeof(root), "/tmp/podenv-fs-test.%d", (int)getpid());
	snprintf(p, sizeof(p), "rm -rf %s %s.outside", root, root);
	REQUIRE(system(p) == 0);
	REQUIRE(mkdir(root, 0755) == 0);
	snprintf(p, sizeof(p), "%s/etc", root);
	REQUIRE(mkdir(p, 0755) == 0);
	snprintf(p, sizeof(p), "%s/dir", root);
	REQUIRE(mkdir(p, 0755) == 0);
	snprintf(p, sizeof(p), "%s/etc/hostname", root);
	FILE *f = fopen(p, "w");
	REQUIRE(f);
	fputs("inside\n", f);
	fclose(f);
	snprintf(p, sizeof(p), "%s.outside", root);
	f = fopen(p, "w");
	REQUIRE(f);
	fputs("outside\n", f);
	fclose(f);
	REQUIRE(chmod(p, 0644) == 0);
	snprintf(p, sizeof(p), "%s/link", root);
	REQUIRE(symlink("/", p) == 0);
	snprintf(p, sizeof(p), "%s/abs", root);
	REQUIRE(symlink("/etc/hostname", p) == 0);
	snprintf(p, sizeof(p), "%s/up", root);
	REQUIRE(symlink("../../../../etc/hostname", p) == 0);
	/* points at the outside file by its real absolute host path */
	snprintf(p, sizeof(p), "%s/escape", root);
	char target[512];
	snprintf(target, sizeof(target), "%s.outside", root);
	REQUIRE(symlink(target, p) == 0);
	root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	REQUIRE(root_fd >= 0);
}

static void teardown(void)
{
	char p[600];
	snprintf(p, sizeof(p), "rm -rf %s %s.outside", root, root);
	if (system(p) != 0)
		fprintf(stderr, "# cleanup of %s failed\n", root);
}

/* Binds /proc at where in a private mount namespace of this test's own
 * process, so nothing is left mounted on the host even if the test dies. */
static int mount_proc_or_skip(const char *where)
{
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -1;
	return mount("/proc", where, NULL, MS_BIND | MS_REC, NULL);
}

static char *read_in_root(const char *path)
{
	static char buf[256];
	int fd = agent_fs_open(root_fd, path, O_RDONLY, 0);
	if (fd < 0) {
		snprintf(buf, sizeof(buf), "error %d", fd);
		return buf;
	}
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

TEST(fs_paths_resolve_inside_root)
{
	setup();
	CHECK_STR(read_in_root("/etc/hostname"), "inside\n");
	CHECK_STR(read_in_root("etc/hostname"), "inside\n");
	CHECK_STR(read_in_root("/../../../etc/hostname"), "inside\n");
	CHECK_STR(read_in_root("/link/etc/hostname"), "inside\n");
	CHECK_STR(read_in_root("/link/link/link/etc/hostname"), "inside\n");
	CHECK_STR(read_in_root("/abs"), "inside\n");
	CHECK_STR(read_in_root("/up"), "inside\n");
	/* the host's real path of the outside file means nothing in root */
	CHECK_STR(read_in_root("/escape"), "error -2");
	teardown();
}

TEST(fs_magic_links_refused)
{
	setup();
	/* /proc/self/root inside a root that has the host's /proc mounted is
	 * the classic escape; a symlink into /proc/self/fd likewise. */
	char p[512];
	snprintf(p, sizeof(p), "%s/proc", root);
	REQUIRE(mkdir(p, 0755) == 0);
	if (mount_proc_or_skip(p) < 0) {
		teardown();
		SKIP("cannot bind /proc");
	}
	/* root_fd was opened in the old mount namespace: reopen to see /proc */
	close(root_fd);
	root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	REQUIRE(root_fd >= 0);
	CHECK_INT(agent_fs_open(root_fd, "/proc/self/root/etc/passwd", O_RDONLY, 0), ==, -ELOOP);
	struct stat st;
	CHECK_INT(agent_fs_stat(root_fd, "/proc/self/cwd", true, &st), ==, -ELOOP);
	umount2(p, MNT_DETACH);
	teardown();
}

TEST(fs_stat_follow_and_nofollow)
{
	setup();
	struct stat st;
	CHECK_OK(agent_fs_stat(root_fd, "/abs", true, &st));
	CHECK(S_ISREG(st.st_mode));
	CHECK_INT(st.st_size, ==, 7);
	CHECK_OK(agent_fs_stat(root_fd, "/abs", false, &st));
	CHECK(S_ISLNK(st.st_mode));
	CHECK_OK(agent_fs_stat(root_fd, "/", true, &st));
	CHECK(S_ISDIR(st.st_mode));
	CHECK_INT(agent_fs_stat(root_fd, "/nope", true, &st), ==, -ENOENT);
	char buf[64];
	int n = agent_fs_readlink(root_fd, "/abs", buf, sizeof(buf));
	CHECK_INT(n, ==, 13);
	buf[n > 0 ? n : 0] = '\0';
	CHECK_STR(buf, "/etc/hostname");
	CHECK_INT(agent_fs_readlink(root_fd, "/etc/hostname", buf, sizeof(buf)), ==, -EINVAL);
	teardown();
}

TEST(fs_chmod_through_symlink_stays_inside)
{
	setup();
	char out[512];
	struct stat st;
	snprintf(out, sizeof(out), "%s.outside", root);
	CHECK_INT(agent_fs_chmod(root_fd, "/escape", 0600), ==, -ENOENT);
	CHECK_INT(agent_fs_utimens(root_fd, "/escape", NULL, true), ==, -ENOENT);
	CHECK_INT(agent_fs_truncate(root_fd, "/escape", 0), ==, -ENOENT);
	REQUIRE(stat(out, &st) == 0);
	CHECK_UINT(st.st_mode & 07777, ==, 0644);
	CHECK_INT(st.st_size, ==, 8);
	/* chmod through an in-root absolute symlink changes its in-root target */
	CHECK_OK(agent_fs_chmod(root_fd, "/abs", 0640));
	CHECK_OK(agent_fs_stat(root_fd, "/etc/hostname", true, &st));
	CHECK_UINT(st.st_mode & 07777, ==, 0640);
	teardown();
}

TEST(fs_create_write_truncate_unlink)
{
	setup();
	int fd = agent_fs_open(root_fd, "/dir/new", O_CREAT | O_EXCL | O_WRONLY, 0600);
	CHECK_INT(fd, >=, 0);
	CHECK_INT(write(fd, "hello", 5), ==, 5);
	close(fd);
	CHECK_STR(read_in_root("/dir/new"), "hello");
	CHECK_OK(agent_fs_truncate(root_fd, "/dir/new", 2));
	CHECK_STR(read_in_root("/dir/new"), "he");
	CHECK_INT(agent_fs_open(root_fd, "/dir/new", O_CREAT | O_EXCL | O_WRONLY, 0600), ==,
		  -EEXIST);
	CHECK_OK(agent_fs_unlink(root_fd, "/dir/new"));
	CHECK_INT(agent_fs_unlink(root_fd, "/dir/new"), ==, -ENOENT);
	/* creating through "..": lands in root */
	fd = agent_fs_open(root_fd, "/../../made", O_CREAT | O_WRONLY, 0644);
	CHECK_INT(fd, >=, 0);
	close(fd);
	char p[512];
	snprintf(p, sizeof(p), "%s/made", root);
	CHECK(access(p, F_OK) == 0);
	teardown();
}

TEST(fs_directories_and_names)
{
	setup();
	CHECK_OK(agent_fs_mkdir(root_fd, "/dir/sub", 0755));
	CHECK_INT(agent_fs_mkdir(root_fd, "/dir/sub", 0755), ==, -EEXIST);
	CHECK_OK(agent_fs_rmdir(root_fd, "/dir/sub/"));
	CHECK_INT(agent_fs_rmdir(root_fd, "/"), ==, -EBUSY);
	CHECK_INT(agent_fs_unlink(root_fd, "/dir/.."), ==, -EINVAL);
	CHECK_INT(agent_fs_rmdir(root_fd, "/dir/."), ==, -EINVAL);
	/* the parent is resolved in root: /link/dir is /dir */
	CHECK_OK(agent_fs_mkdir(root_fd, "/link/dir/viaLink", 0700));
	struct stat st;
	CHECK_OK(agent_fs_stat(root_fd, "/dir/viaLink", false, &st));
	CHECK(S_ISDIR(st.st_mode));
	teardown();
}

TEST(fs_rename_link_symlink)
{
	setup();
	CHECK_OK(agent_fs_rename(root_fd, "/etc/hostname", "/dir/h", 0));
	CHECK_STR(read_in_root("/dir/h"), "inside\n");
	CHECK_OK(agent_fs_link(root_fd, "/dir/h", "/dir/h2"));
	struct stat st;
	CHECK_OK(agent_fs_stat(root_fd, "/dir/h2", true, &st));
	CHECK_UINT(st.st_nlink, ==, 2);
	CHECK_OK(agent_fs_symlink(root_fd, "/dir/h", "/dir/s"));
	CHECK_STR(read_in_root("/dir/s"), "inside\n");
	CHECK_INT(agent_fs_rename(root_fd, "/dir/h", "/dir/h2", RENAME_NOREPLACE), ==, -EEXIST);
	CHECK_OK(agent_fs_rename(root_fd, "/dir/h", "/dir/h2", RENAME_EXCHANGE));
	teardown();
}

TEST(fs_access_statfs_chown)
{
	setup();
	struct statfs sfs;
	CHECK_OK(agent_fs_statfs(root_fd, "/", &sfs));
	CHECK_OK(agent_fs_access(root_fd, "/etc/hostname", R_OK));
	CHECK_INT(agent_fs_access(root_fd, "/nope", F_OK), ==, -ENOENT);
	CHECK_OK(agent_fs_chown(root_fd, "/abs", 1234, 1234, false));
	struct stat st;
	CHECK_OK(agent_fs_stat(root_fd, "/abs", false, &st));
	CHECK_UINT(st.st_uid, ==, 1234);
	CHECK_OK(agent_fs_stat(root_fd, "/etc/hostname", false, &st));
	CHECK_UINT(st.st_uid, ==, getuid());
	teardown();
}

TEST(fs_xattrs)
{
	setup();
	int r = agent_fs_setxattr(root_fd, "/abs", "user.podenv", "v1", 2, 0);
	if (r == -ENOTSUP || r == -EOPNOTSUPP) {
		teardown();
		SKIP("no user xattrs on this filesystem");
	}
	CHECK_OK(r);
	char v[16] = { 0 };
	CHECK_INT(agent_fs_getxattr(root_fd, "/etc/hostname", "user.podenv", v, sizeof(v)), ==, 2);
	CHECK_STR(v, "v1");
	CHECK_INT(agent_fs_getxattr(root_fd, "/etc/hostname", "user.podenv", NULL, 0), ==, 2);
	char list[256];
	ssize_t n = agent_fs_listxattr(root_fd, "/etc/hostname", list, sizeof(list));
	CHECK_INT(n, >=, 12);
	CHECK_OK(agent_fs_removexattr(root_fd, "/etc/hostname", "user.podenv"));
	CHECK_INT(agent_fs_getxattr(root_fd, "/etc/hostname", "user.podenv", v, sizeof(v)), <, 0);
	teardown();
}

TEST(fs_readdir_continues_by_cookie)
{
	setup();
	char p[512];
	for (int i = 0; i < 1000; i++) {
		snprintf(p, sizeof(p), "/dir/f%04d", i);
		int fd = agent_fs_open(root_fd, p, O_CREAT | O_WRONLY, 0644);
		REQUIRE(fd >= 0);
		close(fd);
	}
	int dfd = agent_fs_open(root_fd, "/dir", O_RDONLY | O_DIRECTORY, 0);
	REQUIRE(dfd >= 0);
	static struct agent_fs_dirent ents[64];
	static char seen[1000];
	uint64_t cookie = 0;
	int total = 0, n;
	while ((n = agent_fs_readdir(dfd, cookie, ents, 64)) > 0) {
		for (int i = 0; i < n; i++) {
			int idx = atoi(ents[i].name + 1);
			CHECK(ents[i].name[0] == 'f' && idx >= 0 && idx < 1000);
			CHECK(S_ISREG(ents[i].st.st_mode));
			if (idx >= 0 && idx < 1000)
				seen[idx]++;
		}
		total += n;
		cookie = ents[n - 1].cookie;
	}
	CHECK_INT(n, ==, 0);
	CHECK_INT(total, ==, 1000);
	for (int i = 0; i < 1000; i++)
		if (seen[i] != 1)
			TAP_FAIL("entry f%04d seen %d times", i, seen[i]);
	close(dfd);
	teardown();
}

TAP_MAIN()
