/* probe: a small static program run inside sandboxes and pods by the
 * end-to-end tests. It reports what it sees, one answer per command, so a
 * test can tell the pod's view from the host's without trusting any tool
 * of the filesystem it runs on.
 *
 *	probe hostname | cat PATH | env NAME | ls DIR | stat PATH | cwd
 * Exit status: 0 on success, 1 with the errno name on stderr otherwise.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(const char *what, const char *arg)
{
	fprintf(stderr, "probe: %s %s: %s\n", what, arg ? arg : "", strerror(errno));
	return 1;
}

int main(int argc, char **argv)
{
	char buf[65536];

	if (argc < 2) {
		fputs("usage: probe hostname | cat PATH | env NAME | ls DIR | stat PATH | cwd\n",
		      stderr);
		return 2;
	}
	const char *cmd = argv[1], *arg = argc > 2 ? argv[2] : NULL;
	if (!strcmp(cmd, "hostname")) {
		if (gethostname(buf, sizeof(buf)) < 0)
			return fail(cmd, NULL);
		puts(buf);
	} else if (!strcmp(cmd, "cwd")) {
		if (!getcwd(buf, sizeof(buf)))
			return fail(cmd, NULL);
		puts(buf);
	} else if (!strcmp(cmd, "cat") && arg) {
		int fd = open(arg, O_RDONLY);
		ssize_t n;
		if (fd < 0)
			return fail(cmd, arg);
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			fwrite(buf, 1, (size_t)n, stdout);
		if (n < 0)
			return fail(cmd, arg);
		close(fd);
	} else if (!strcmp(cmd, "env") && arg) {
		const char *v = getenv(arg);
		if (!v) {
			fprintf(stderr, "probe: env %s: unset\n", arg);
			return 1;
		}
		puts(v);
	} else if (!strcmp(cmd, "ls") && arg) {
		DIR *d = opendir(arg);
		struct dirent *de;
		if (!d)
			return fail(cmd, arg);
		while ((de = readdir(d)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				puts(de->d_name);
		closedir(d);
	} else if (!strcmp(cmd, "stat") && arg) {
		struct stat st;
		if (lstat(arg, &st) < 0)
			return fail(cmd, arg);
		printf("mode=%o uid=%u gid=%u size=%lld\n", st.st_mode, st.st_uid, st.st_gid,
		       (long long)st.st_size);
	} else {
		fprintf(stderr, "probe: unknown command %s\n", cmd);
		return 2;
	}
	return 0;
}
