/* A podenv session: the configuration, the link to the agent, and what
 * the launcher learned from the pod (environment, hostname). Shared by
 * exec, shell and mount. Private to launcher/.
 */
#ifndef PODENV_LAUNCHER_SESSION_H
#define PODENV_LAUNCHER_SESSION_H

#include "common/loop.h"
#include "config/config.h"
#include "launcher/link.h"

struct session {
	struct cfg *cfg;
	struct loop *loop;
	struct link *link;
	struct proto_client *client; /* borrowed from link */
	char *target;		     /* "pid/123", for messages and prompts */
	char **remote_env;	     /* the target's environment */
	char hostname[256];	     /* the target's hostname */
	char *resolv_conf;	     /* the target's /etc/resolv.conf ("" if none) */
	struct trace *trace;	     /* --trace, or NULL; borrowed */
	/* The app's listeners (incoming.h), while the sandbox runs; else NULL.
	 * incoming_app_listening(s->incoming, proto, port) asks about a port. */
	struct incoming *incoming;
	struct k8s_session *kube;    /* the agent in a cluster, or NULL */
	bool kube_failed;	     /* its link never came up: remove it now */
	bool lost;
	char lost_reason[ERR_MSG_MAX];
	/* Called when the link is lost (after lost/lost_reason are set). */
	void (*on_lost)(struct session *s);
	void *userdata;
};

/* Opens the link for cfg's target (pid/PID: spawns the agent; connect_tcp:
 * connects; a Kubernetes target or none: starts an agent in the cluster,
 * launcher/k8s_agent.h) and waits for the handshake. Takes ownership of cfg. */
int session_open(struct cfg *cfg, struct session **ret, struct err *reterr);

/* Fetches the target's environment, hostname and resolv.conf (one round trip each,
 * run on the session's loop until answered). */
int session_fetch_context(struct session *s, struct err *reterr);

void session_free(struct session *s);

/* A local target (pid/PID) the agent cannot enter: fails here, in one line
 * ("target pid/N: no such process", "cannot enter it …"), rather than as
 * the agent's log line followed by a lost link. */
int session_check_local_target(pid_t pid, struct err *reterr);

/* The local agent's log filter: $RUST_LOG, else following -v/-q (the agent
 * is quiet, warnings only, unless asked). */
const char *session_agent_log_level(void);

/* Parses config flags (cfg_source_flag_parse) from argv[*idx] on, stopping
 * at the first argument that is not one (or after "--"), and loads the
 * configuration. An unknown option is an error; stop_at_non_option says a
 * command follows (exec), for the error's hint. Prints warnings for ignored
 * fields. Returns 0, or a negative errno with reterr set ("config: …"). */
int session_load_config(int argc, char **argv, int *idx, bool stop_at_non_option,
			struct cfg **ret, struct err *reterr);

#endif
