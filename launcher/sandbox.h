/* The sandbox: runs a command with the pod's filesystem as its `/` in
 * private mount and UTS namespaces, and waits for it like exec would.
 * Private to launcher/.
 */
#ifndef PODENV_LAUNCHER_SANDBOX_H
#define PODENV_LAUNCHER_SANDBOX_H

#include "launcher/session.h"

struct sandbox_opts {
	struct session *session;
	char *const *argv; /* the command; argv[0] is looked up in env's PATH */
	char **env;	   /* the command's environment (borrowed) */
	bool set_hostname; /* feature.hostname */
};

/* Runs the command to completion while serving its filesystem. Returns 0
 * and the exit status to use in *status (the command's, 128+N after signal
 * N), or a negative errno with reterr set when the sandbox could not be
 * built (nothing is left behind). Call with no other threads running. */
int sandbox_run(const struct sandbox_opts *o, int *status, struct err *reterr);

#endif
