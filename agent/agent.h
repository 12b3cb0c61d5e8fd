/* podenv-agent internals shared by the files of agent/ (a program, so this
 * header is private to the folder).
 *
 * The target is the process whose context the agent serves: its root
 * (/proc/PID/root, opened once as an O_PATH directory fd), its environment,
 * its UTS and network namespaces. Holding a pidfd and the root fd means a
 * recycled PID can never redirect us to another process's files.
 */
#ifndef PODENV_AGENT_H
#define PODENV_AGENT_H

#include <stdbool.h>
#include <sys/types.h>

#include "common/err.h"

#define PODENV_AGENT_VERSION "0.1.0"

struct agent_target {
	pid_t pid;
	int pidfd;   /* keeps the identity of pid; -1 if unsupported */
	int root_fd; /* O_PATH directory: /proc/PID/root */
	int net_fd;  /* /proc/PID/ns/net */
	int uts_fd;  /* /proc/PID/ns/uts */
};

/* Opens the target by PID. Errors name the PID and the failing path. */
int agent_target_open_pid(pid_t pid, struct agent_target **ret, struct err *reterr);

/* Finds the process of container `id` on this node by scanning
 * /proc/ * /cgroup (runtime-agnostic; the id may be a prefix of at least 12
 * hex digits) and opens it. When several processes match, the oldest one
 * (the container's init) is the target. */
int agent_target_find_container(const char *id, pid_t *ret_pid, struct err *reterr);

void agent_target_free(struct agent_target *t);

/* The target's environment as a NULL-terminated array of "NAME=value"
 * strings (entries without '=' are dropped). Caller frees with
 * agent_strv_free. */
int agent_target_environ(const struct agent_target *t, char ***ret, struct err *reterr);

/* True when ns_fd (an open /proc/PID/ns/X) is the namespace self_ns names
 * ("/proc/self/ns/net"): entering it would change nothing (and needs a
 * privilege an unprivileged agent lacks). */
bool agent_target_shares_ns(int ns_fd, const char *self_ns);

/* The hostname seen in the target's UTS namespace. Forks a short-lived child
 * that enters the namespace, so the agent's own namespaces are unchanged;
 * call before any thread is started. */
int agent_target_hostname(const struct agent_target *t, char *out, size_t outsz,
			  struct err *reterr);

/* Reads a whole small file (at most max bytes) under the target's root,
 * resolved with RESOLVE_IN_ROOT so nothing outside the root is reachable.
 * Caller frees *ret (NUL-terminated). */
int agent_target_read_file(const struct agent_target *t, const char *path, size_t max,
			   char **ret, size_t *ret_len);

void agent_strv_free(char **v);

#endif
