/* Seccomp user-notification filters (seccomp.h). Raw seccomp(2): Debian
 * 12's libseccomp 2.5.4 does not know SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/macro.h"
#include "launcher/seccomp.h"

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#define X32_BIT 0x40000000u /* x32 syscalls share the arch: match them too */
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#define X32_BIT 0u
#else
#error "seccomp.c: add this architecture's AUDIT_ARCH"
#endif

#define MAX_NRS 8

int seccomp_notify_install(const int *nrs, size_t n, const char *what, struct err *reterr)
{
	struct sock_filter prog[4 + 2 * MAX_NRS + 2];
	size_t len = 0;
	unsigned long flags =
		SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
	int fd;

	if (n == 0 || n > MAX_NRS)
		return err_set(reterr, -EINVAL, "%s: %zu syscalls to watch", what, n);
	prog[len++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
						   offsetof(struct seccomp_data, arch));
	prog[len++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0);
	prog[len++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	prog[len++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
						   offsetof(struct seccomp_data, nr));
	/* Each match jumps to the final USER_NOTIF; the ALLOW sits before it. */
	size_t checks = X32_BIT ? 2 * n : n;
	for (size_t i = 0; i < n; i++) {
		size_t left = checks - (X32_BIT ? 2 * i : i); /* this check and those after */
		prog[len++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
							   (unsigned)nrs[i], (uint8_t)left, 0);
		if (X32_BIT)
			prog[len++] = (struct sock_filter)BPF_JUMP(
				BPF_JMP | BPF_JEQ | BPF_K, X32_BIT | (unsigned)nrs[i],
				(uint8_t)(left - 1), 0);
	}
	prog[len++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	prog[len++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF);
	struct sock_fprog fprog = { .len = (unsigned short)len, .filter = prog };

	for (int attempt = 0; attempt < 3; attempt++) {
		fd = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &fprog);
		if (fd >= 0)
			return fd;
		if (errno == EINVAL && (flags & SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV)) {
			flags &= ~SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV; /* before 5.19 */
			continue;
		}
		if (errno == EACCES && !prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)) {
			/* No CAP_SYS_ADMIN here: the kernel wants no_new_privs. */
			if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
				break;
			continue;
		}
		break;
	}
	return err_set_errno(reterr, -errno,
			     "installing the seccomp filter that %s (needs Linux 5.0 with seccomp "
			     "user notification)",
			     what);
}

int seccomp_pidfd_of_thread(pid_t tid)
{
	int fd = (int)syscall(SYS_pidfd_open, tid, 0);
	char path[64], line[128];
	pid_t tgid = 0;

	if (fd >= 0 || errno != EINVAL)
		return fd;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	FILE *f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Tgid: %d", &tgid) == 1)
			break;
	if (f)
		fclose(f);
	if (tgid <= 0)
		return -1;
	return (int)syscall(SYS_pidfd_open, tgid, 0);
}
