/* Kubernetes targets: from the configuration's target (mirrord's forms) to
 * one running container of one pod, and the list `podenv ls` prints.
 * Private to the launcher; main thread only.
 *
 *   pod/NAME[/container/C]         that pod; C, else its only container;
 *   deployment|statefulset|replicaset|job|rollout/NAME[/container/C],
 *   service/NAME, label/K=V[,…]    a running, ready pod its selector picks
 *                                  (not being deleted; the first by name);
 *   container/C, containername/C   a running pod of the namespace with a
 *                                  running container C (the first by name);
 *   targetless                     no pod (the agent runs on any node).
 * The namespace is target.namespace, else the context's. Every error names
 * what was looked for and lists the choices there are.
 */
#ifndef PODENV_LAUNCHER_K8S_TARGET_H
#define PODENV_LAUNCHER_K8S_TARGET_H

#include <stdio.h>

#include "config/config.h"
#include "launcher/k8s_api.h"

struct k8s_target {
	char *namespace;
	char *pod; /* NULL: targetless */
	char *pod_uid;
	char *container;
	char *container_id; /* "containerd://…" as the pod's status says */
	char *node;
};

int k8s_target_resolve(struct k8s_api *a, const struct cfg_target *t, struct k8s_target *out,
		       struct err *reterr);
void k8s_target_done(struct k8s_target *t);

/* Writes the targets of namespace ns, one per line (`pod/P/container/C` for
 * each running container of each running pod, then `deployment/D` for each
 * deployment with a ready replica), or as one JSON array when json. */
int k8s_targets_list(struct k8s_api *a, const char *ns, bool json, FILE *out, struct err *reterr);

#endif
