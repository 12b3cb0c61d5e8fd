/* Seccomp user notification, shared by the features that must see an
 * app's syscall before it completes (listen.c: listen(); unixsock.c:
 * connect() for feature.network.outgoing.unix_streams). Each installs its
 * own filter with its own notification fd; stacked filters do not mix.
 * Private to launcher/.
 */
#ifndef PODENV_LAUNCHER_SECCOMP_H
#define PODENV_LAUNCHER_SECCOMP_H

#include <stddef.h>
#include <sys/types.h>

#include "common/err.h"

/* In the sandbox child: installs a filter that turns the native-ABI
 * syscalls nrs[0..n) into user notifications (everything else is
 * allowed) and returns its notification fd, or a negative errno with
 * reterr saying `what` failed. Uses SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
 * where the kernel has it (Linux 5.19; Go's preemption signals must not
 * restart a call the launcher is answering), and sets no_new_privs only
 * when the child lacks CAP_SYS_ADMIN. */
int seccomp_notify_install(const int *nrs, size_t n, const char *what, struct err *reterr);

/* A notification's syscall number without x86-64's x32 bit (the filter
 * matches both ABIs). */
static inline int seccomp_syscall_nr(int nr)
{
	return nr & ~0x40000000;
}

/* A pidfd for the process of thread `tid` (pidfd_open takes only thread
 * group leaders before Linux 6.9), or -1 with errno. */
int seccomp_pidfd_of_thread(pid_t tid);

#endif
