/* The sandbox: runs a command with the pod's filesystem as its `/` in
 * private mount and UTS namespaces, and waits for it like exec would.
 * Private to launcher/.
 */
#ifndef PODENV_LAUNCHER_SANDBOX_H
#define PODENV_LAUNCHER_SANDBOX_H

#include "launcher/session.h"
#include "vfs/vfs.h"

struct sandbox_opts {
	struct session *session;
	char *const *argv; /* the command; argv[0] is looked up in env's PATH */
	char **env;	   /* the command's environment (borrowed) */
	bool set_hostname; /* feature.hostname */
};

/* The facts the file rules depend on for a session of cfg: $HOME and
 * $TMPDIR from the environment, cwd and program as given (borrowed, like
 * the environment's strings), targetless when cfg has no target. The
 * sandbox and `podenv explain` build their routers from this. */
void sandbox_router_env(const struct cfg *cfg, const char *cwd, const char *program,
			struct vfs_router_env *ret);

/* Runs the command to completion while serving its filesystem. Returns 0
 * and the exit status to use in *status (the command's, 128+N after signal
 * N), or a negative errno with reterr set when the sandbox could not be
 * built (nothing is left behind). Call with no other threads running. */
int sandbox_run(const struct sandbox_opts *o, int *status, struct err *reterr);

#endif
