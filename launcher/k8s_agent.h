/* The agent in the cluster: a Job on the target's node (or an ephemeral
 * container in the target pod when agent.ephemeral), built from every
 * agent.* field; waited for up to agent.startup_timeout; reached through a
 * port-forward (k8s_ws.h) that becomes the session's link. Private to the
 * launcher; main thread only.
 *
 * The agent gets the target container's id (--container-id, the pod
 * status's "containerd://…"), listens on a random port of its pod, and a
 * fresh 32-byte token per session in PODENV_AGENT_TOKEN. Its
 * communication_timeout (-t) ends it once the launcher is gone; the Job's
 * ttlSecondsAfterFinished (agent.ttl) then removes Job and pod. When
 * anything fails before the link is up, the Job is deleted at once (with
 * its pods: propagationPolicy Background), so nothing is left behind.
 *
 * Progress: on a terminal at the default log level, one spinner line on
 * stderr that is erased when done; otherwise debug log lines (-v), nothing
 * with -q or when stderr is not a terminal.
 */
#ifndef PODENV_LAUNCHER_K8S_AGENT_H
#define PODENV_LAUNCHER_K8S_AGENT_H

#include "common/loop.h"
#include "config/config.h"
#include "launcher/link.h"

struct k8s_session;

/* Loads the kubeconfig, resolves cfg's target, starts the agent, waits for
 * it, opens the port-forward and the link on l (handshake begun, not
 * waited for). On error nothing is left in the cluster. */
int k8s_session_open(struct loop *l, const struct cfg *cfg, const struct link_ops *ops,
		     void *userdata, struct link **link, struct k8s_session **ret,
		     struct err *reterr);

/* After the link is gone. failed: the session never came up, so the Job
 * goes now instead of after its TTL. Accepts NULL. */
void k8s_session_free(struct k8s_session *ks, bool failed);

#endif
