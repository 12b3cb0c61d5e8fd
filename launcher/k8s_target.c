/* Kubernetes target resolution and listing (k8s_target.h). */
#define LOG_TARGET "podenv::kube"
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "launcher/k8s_target.h"

/* Workloads whose pods a selector picks: the API group path and the
 * resource (research/k8s.md §2.3). */
static const struct {
	enum cfg_target_kind kind;
	const char *word;
	const char *group; /* "/apis/apps/v1" */
	const char *resource;
	const char *selector; /* where the selector is: "spec.selector" */
} workloads[] = {
	{CFG_TARGET_DEPLOYMENT, "deployment", "/apis/apps/v1", "deployments", "spec.selector"},
	{CFG_TARGET_STATEFULSET, "statefulset", "/apis/apps/v1", "statefulsets", "spec.selector"},
	{CFG_TARGET_REPLICASET, "replicaset", "/apis/apps/v1", "replicasets", "spec.selector"},
	{CFG_TARGET_JOB, "job", "/apis/batch/v1", "jobs", "spec.selector"},
	{CFG_TARGET_ROLLOUT, "rollout", "/apis/argoproj.io/v1alpha1", "rollouts", "spec.selector"},
	/* A service's selector is a plain map, not a LabelSelector. */
	{CFG_TARGET_SERVICE, "service", "/api/v1", "services", "spec.selector"},
};

void k8s_target_done(struct k8s_target *t)
{
	free(t->namespace);
	free(t->pod);
	free(t->pod_uid);
	free(t->container);
	free(t->container_id);
	free(t->node);
	memset(t, 0, sizeof(*t));
}

static size_t json_len(json_object *a)
{
	return a && json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
}

/* ", "-joined names of the items of a list (metadata.name), or "none". */
static char *names_of(json_object *list, const char *prefix)
{
	json_object *items = k8s_json_get(list, "items");
	struct buf b;

	buf_init(&b);
	for (size_t i = 0; i < json_len(items) && i < 20; i++) {
		const char *n = k8s_json_str(json_object_array_get_idx(items, i), "metadata.name");
		if (n)
			buf_printf(&b, "%s%s%s", buf_len(&b) ? ", " : "", prefix, n);
	}
	if (json_len(items) > 20)
		buf_printf(&b, ", …");
	if (!buf_len(&b))
		buf_printf(&b, "none");
	buf_append(&b, "", 1);
	return buf_steal(&b, NULL);
}

static char *list_names(struct k8s_api *a, const char *group, const char *ns, const char *resource,
			const char *prefix)
{
	char *path = xasprintf("%s/namespaces/%s/%s", group, ns, resource);
	json_object *list = NULL;
	struct err e;
	char *r;

	if (k8s_api_get(a, path, &list, &e) < 0)
		r = xstrdup("could not list them");
	else
		r = names_of(list, prefix);
	json_object_put(list);
	free(path);
	return r;
}

/* The container's status entry in the pod, or NULL. */
static json_object *container_status(json_object *pod, const char *name)
{
	json_object *st = k8s_json_get(pod, "status.containerStatuses");

	for (size_t i = 0; i < json_len(st); i++) {
		json_object *c = json_object_array_get_idx(st, i);
		const char *n = k8s_json_str(c, "name");
		if (n && !strcmp(n, name))
			return c;
	}
	return NULL;
}

static bool has_container(json_object *pod, const char *name)
{
	json_object *cs = k8s_json_get(pod, "spec.containers");

	for (size_t i = 0; i < json_len(cs); i++) {
		const char *n = k8s_json_str(json_object_array_get_idx(cs, i), "name");
		if (n && !strcmp(n, name))
			return true;
	}
	return false;
}

static char *container_names(json_object *pod)
{
	json_object *cs = k8s_json_get(pod, "spec.containers");
	struct buf b;

	buf_init(&b);
	for (size_t i = 0; i < json_len(cs); i++) {
		const char *n = k8s_json_str(json_object_array_get_idx(cs, i), "name");
		buf_printf(&b, "%s%s", i ? ", " : "", n ? n : "?");
	}
	buf_append(&b, "", 1);
	return buf_steal(&b, NULL);
}

/* podenv's own agents are nobody's target. */
static bool is_agent_pod(json_object *pod)
{
	const char *app = k8s_json_str(pod, "metadata.labels.app");

	return app && !strcmp(app, "podenv-agent");
}

static bool pod_ready(json_object *pod)
{
	json_object *conds = k8s_json_get(pod, "status.conditions");
	const char *phase = k8s_json_str(pod, "status.phase");

	if (!phase || strcmp(phase, "Running") || k8s_json_get(pod, "metadata.deletionTimestamp"))
		return false;
	for (size_t i = 0; i < json_len(conds); i++) {
		json_object *c = json_object_array_get_idx(conds, i);
		const char *t = k8s_json_str(c, "type"), *s = k8s_json_str(c, "status");
		if (t && s && !strcmp(t, "Ready"))
			return !strcmp(s, "True");
	}
	return false;
}

/* Why a pod or container is not running: "phase Pending,
 * ContainerCreating: message". */
static void not_running_reason(json_object *pod, json_object *cst, char *out, size_t n)
{
	const char *phase = k8s_json_str(pod, "status.phase");
	const char *reason = cst ? k8s_json_str(cst, "state.waiting.reason") : NULL;
	const char *msg = cst ? k8s_json_str(cst, "state.waiting.message") : NULL;

	if (!reason && cst)
		reason = k8s_json_str(cst, "state.terminated.reason");
	if (!reason)
		reason = k8s_json_str(pod, "status.reason");
	snprintf(out, n, "phase %s%s%s%s%s", phase ? phase : "unknown", reason ? ", " : "",
		 reason ? reason : "", msg ? ": " : "", msg ? msg : "");
}

/* Fills out from a pod object and the wanted container (NULL: its only
 * one). what: how the user named it, for messages. */
static int take_pod(json_object *pod, const char *container, const char *what,
		    struct k8s_target *out, struct err *reterr)
{
	const char *name = k8s_json_str(pod, "metadata.name");
	json_object *cs = k8s_json_get(pod, "spec.containers");
	char why[256];

	if (!container) {
		if (json_len(cs) == 1) {
			container = k8s_json_str(json_object_array_get_idx(cs, 0), "name");
		} else {
			_cleanup_free_ char *names = container_names(pod);
			return err_set(reterr, -EINVAL,
				       "%s: pod %s has several containers (%s); choose one with "
				       "pod/%s/container/NAME",
				       what, name, names, name);
		}
	}
	if (!container || !has_container(pod, container)) {
		_cleanup_free_ char *names = container_names(pod);
		return err_set(reterr, -ESRCH,
			       "%s: pod %s has no container \"%s\" (containers: %s)", what, name,
			       container ? container : "", names);
	}
	json_object *cst = container_status(pod, container);
	const char *phase = k8s_json_str(pod, "status.phase");
	if (!phase || strcmp(phase, "Running")) {
		not_running_reason(pod, cst, why, sizeof(why));
		return err_set(reterr, -EAGAIN, "%s: pod %s is not running (%s)", what, name, why);
	}
	const char *id = cst ? k8s_json_str(cst, "containerID") : NULL;
	if (!cst || !k8s_json_get(cst, "state.running") || !id || !*id) {
		not_running_reason(pod, cst, why, sizeof(why));
		return err_set(reterr, -EAGAIN, "%s: container %s of pod %s is not running (%s)",
			       what, container, name, why);
	}
	const char *node = k8s_json_str(pod, "spec.nodeName");
	if (!node || !*node)
		return err_set(reterr, -EAGAIN, "%s: pod %s has no node yet", what, name);
	out->pod = xstrdup(name);
	out->pod_uid =
		xstrdup(k8s_json_str(pod, "metadata.uid") ? k8s_json_str(pod, "metadata.uid") : "");
	out->container = xstrdup(container);
	out->container_id = xstrdup(id);
	out->node = xstrdup(node);
	return 0;
}

/* "k=v,k in (a,b),k,!k" from a LabelSelector (or, for services, a plain
 * map). NULL when it selects nothing expressible. */
static char *selector_string(json_object *sel, bool plain_map)
{
	json_object *ml = plain_map ? sel : k8s_json_get(sel, "matchLabels");
	json_object *me = plain_map ? NULL : k8s_json_get(sel, "matchExpressions");
	struct buf b;

	buf_init(&b);
	if (ml && json_object_is_type(ml, json_type_object)) {
		json_object_object_foreach(ml, k, v) buf_printf(
			&b, "%s%s=%s", buf_len(&b) ? "," : "", k, json_object_get_string(v));
	}
	for (size_t i = 0; i < json_len(me); i++) {
		json_object *x = json_object_array_get_idx(me, i);
		const char *k = k8s_json_str(x, "key"), *op = k8s_json_str(x, "operator");
		json_object *vals = k8s_json_get(x, "values");
		if (!k || !op)
			continue;
		const char *sep = buf_len(&b) ? "," : "";
		if (!strcmp(op, "Exists")) {
			buf_printf(&b, "%s%s", sep, k);
		} else if (!strcmp(op, "DoesNotExist")) {
			buf_printf(&b, "%s!%s", sep, k);
		} else {
			buf_printf(&b, "%s%s %s (", sep, k, !strcmp(op, "In") ? "in" : "notin");
			for (size_t j = 0; j < json_len(vals); j++)
				buf_printf(
					&b, "%s%s", j ? "," : "",
					json_object_get_string(json_object_array_get_idx(vals, j)));
			buf_printf(&b, ")");
		}
	}
	if (!buf_len(&b)) {
		buf_done(&b);
		return NULL;
	}
	buf_append(&b, "", 1);
	return buf_steal(&b, NULL);
}

static int by_name(const void *x, const void *y)
{
	json_object *a = *(json_object *const *)x, *b = *(json_object *const *)y;
	const char *na = k8s_json_str(a, "metadata.name"), *nb = k8s_json_str(b, "metadata.name");

	return strcmp(na ? na : "", nb ? nb : "");
}

/* Lists pods (selector may be NULL) and sorts them by name. */
static int list_pods(struct k8s_api *a, const char *ns, const char *selector, json_object **list,
		     json_object ***sorted, size_t *n, struct err *reterr)
{
	char *path;
	int r;

	if (selector) {
		_cleanup_free_ char *q = k8s_escape(selector);
		path = xasprintf("/api/v1/namespaces/%s/pods?labelSelector=%s", ns, q);
	} else {
		path = xasprintf("/api/v1/namespaces/%s/pods", ns);
	}
	r = k8s_api_get(a, path, list, reterr);
	free(path);
	if (r < 0)
		return r;
	json_object *items = k8s_json_get(*list, "items");
	*n = json_len(items);
	*sorted = xcalloc(*n + 1, sizeof(json_object *));
	for (size_t i = 0; i < *n; i++)
		(*sorted)[i] = json_object_array_get_idx(items, i);
	qsort(*sorted, *n, sizeof(json_object *), by_name);
	return 0;
}

/* Picks a running, ready pod among those selector selects. */
static int pick_pod(struct k8s_api *a, const char *ns, const char *selector, const char *container,
		    const char *what, struct k8s_target *out, struct err *reterr)
{
	json_object *list = NULL, **pods = NULL;
	size_t n = 0;
	int r;

	r = list_pods(a, ns, selector, &list, &pods, &n, reterr);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (pod_ready(pods[i])) {
			r = take_pod(pods[i], container, what, out, reterr);
			goto out;
		}
	struct buf b;
	buf_init(&b);
	for (size_t i = 0; i < n && i < 10; i++) {
		char why[160];
		not_running_reason(pods[i], NULL, why, sizeof(why));
		buf_printf(&b, "%s%s (%s)", i ? ", " : "", k8s_json_str(pods[i], "metadata.name"),
			   why);
	}
	buf_append(&b, "", 1);
	r = err_set(reterr, -EAGAIN, "%s: no running, ready pod (pods of it: %s)", what,
		    n ? (const char *)buf_data(&b) : "none");
	buf_done(&b);
out:
	free(pods);
	json_object_put(list);
	return r;
}

static int resolve_pod(struct k8s_api *a, const struct cfg_target *t, const char *ns,
		       const char *what, struct k8s_target *out, struct err *reterr)
{
	_cleanup_free_ char *name = k8s_escape(t->name);
	_cleanup_free_ char *path = xasprintf("/api/v1/namespaces/%s/pods/%s", ns, name);
	json_object *pod = NULL;
	int r = k8s_api_get(a, path, &pod, reterr);

	if (r == -ENOENT) {
		_cleanup_free_ char *names = list_names(a, "/api/v1", ns, "pods", "");
		r = err_set(reterr, -ENOENT, "%s: no pod \"%s\" in namespace %s (pods there: %s)",
			    what, t->name, ns, names);
	} else if (r >= 0) {
		r = take_pod(pod, t->container, what, out, reterr);
	}
	json_object_put(pod);
	return r;
}

static int resolve_workload(struct k8s_api *a, const struct cfg_target *t, const char *ns,
			    const char *what, struct k8s_target *out, struct err *reterr)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(workloads); i++)
		if (workloads[i].kind == t->kind)
			break;
	if (i == ARRAY_SIZE(workloads))
		return err_set(reterr, -EOPNOTSUPP,
			       "%s: this kind of target is not supported; use pod/, deployment/, "
			       "statefulset/, replicaset/, job/, rollout/, service/, label/ or "
			       "container/",
			       what);
	_cleanup_free_ char *name = k8s_escape(t->name);
	_cleanup_free_ char *path = xasprintf("%s/namespaces/%s/%s/%s", workloads[i].group, ns,
					      workloads[i].resource, name);
	json_object *obj = NULL;
	int r = k8s_api_get(a, path, &obj, reterr);
	if (r == -ENOENT) {
		_cleanup_free_ char *prefix = xasprintf("%s/", workloads[i].word);
		_cleanup_free_ char *names =
			list_names(a, workloads[i].group, ns, workloads[i].resource, prefix);
		r = err_set(reterr, -ENOENT, "%s: no %s \"%s\" in namespace %s (there: %s)", what,
			    workloads[i].word, t->name, ns, names);
	}
	if (r < 0) {
		json_object_put(obj);
		return r;
	}
	_cleanup_free_ char *sel = selector_string(k8s_json_get(obj, workloads[i].selector),
						   t->kind == CFG_TARGET_SERVICE);
	json_object_put(obj);
	if (!sel)
		return err_set(reterr, -EINVAL, "%s: it has no pod selector", what);
	log_debug("%s: pods with %s", what, sel);
	return pick_pod(a, ns, sel, t->container, what, out, reterr);
}

/* Appends name to the ", "-joined list in b unless it is there. */
static void add_unique(struct buf *b, const char *name)
{
	const char *p = buf_len(b) ? (const char *)buf_data(b) : "";
	size_t n = strlen(name);

	for (const char *q = p; (q = strstr(q, name)); q += n)
		if ((q == p || q[-1] == ' ') && (q[n] == ',' || q[n] == '\0'))
			return;
	if (buf_len(b))
		buf_truncate(b, buf_len(b) - 1); /* the NUL */
	buf_printf(b, "%s%s", buf_len(b) ? ", " : "", name);
	buf_append(b, "", 1);
}

static int resolve_container(struct k8s_api *a, const struct cfg_target *t, const char *ns,
			     const char *what, struct k8s_target *out, struct err *reterr)
{
	json_object *list = NULL, **pods = NULL;
	size_t n = 0;
	struct buf seen;
	int r;

	r = list_pods(a, ns, NULL, &list, &pods, &n, reterr);
	if (r < 0)
		return r;
	buf_init(&seen);
	r = -ENOENT;
	for (size_t i = 0; i < n && r < 0; i++) {
		json_object *cs = k8s_json_get(pods[i], "spec.containers");
		if (is_agent_pod(pods[i]))
			continue;
		for (size_t j = 0; j < json_len(cs); j++) {
			const char *c = k8s_json_str(json_object_array_get_idx(cs, j), "name");
			struct err e;
			if (!c)
				continue;
			add_unique(&seen, c);
			if (!strcmp(c, t->name) && pod_ready(pods[i]) &&
			    take_pod(pods[i], c, what, out, &e) >= 0) {
				r = 0;
				break;
			}
		}
	}
	if (r < 0)
		r = err_set(reterr, -ENOENT,
			    "%s: no running pod in namespace %s has a running container \"%s\" "
			    "(containers there: %s)",
			    what, ns, t->name,
			    buf_len(&seen) ? (const char *)buf_data(&seen) : "none");
	buf_done(&seen);
	free(pods);
	json_object_put(list);
	return r;
}

int k8s_target_resolve(struct k8s_api *a, const struct cfg_target *t, struct k8s_target *out,
		       struct err *reterr)
{
	_cleanup_free_ char *what = cfg_target_format(t);
	int r;

	memset(out, 0, sizeof(*out));
	out->namespace =
		xstrdup(t->namespace && *t->namespace ? t->namespace : k8s_api_namespace(a));
	switch (t->kind) {
	case CFG_TARGET_NONE:
		return 0;
	case CFG_TARGET_POD:
		r = resolve_pod(a, t, out->namespace, what, out, reterr);
		break;
	case CFG_TARGET_CONTAINER:
	case CFG_TARGET_CONTAINERNAME:
		r = resolve_container(a, t, out->namespace, what, out, reterr);
		break;
	case CFG_TARGET_LABEL: {
		struct buf b;
		buf_init(&b);
		for (size_t i = 0; i < t->labels.n; i++)
			buf_printf(&b, "%s%s=%s", i ? "," : "", t->labels.keys[i],
				   t->labels.values[i]);
		buf_append(&b, "", 1);
		r = pick_pod(a, out->namespace, (const char *)buf_data(&b), t->container, what, out,
			     reterr);
		buf_done(&b);
		break;
	}
	default:
		r = resolve_workload(a, t, out->namespace, what, out, reterr);
		break;
	}
	if (r < 0)
		k8s_target_done(out);
	return r;
}

static void add_target(json_object *arr, const char *kind, const char *a, const char *b)
{
	char *t = b ? xasprintf("%s/%s/container/%s", kind, a, b) : xasprintf("%s/%s", kind, a);

	json_object_array_add(arr, json_object_new_string(t));
	free(t);
}

int k8s_targets_list(struct k8s_api *a, const char *ns, bool json, FILE *out, struct err *reterr)
{
	json_object *list = NULL, **pods = NULL, *deps = NULL;
	json_object *arr = json_object_new_array();
	size_t n = 0;
	int r;

	_cleanup_free_ char *path = xasprintf("/apis/apps/v1/namespaces/%s/deployments", ns);

	r = list_pods(a, ns, NULL, &list, &pods, &n, reterr);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		const char *name = k8s_json_str(pods[i], "metadata.name");
		const char *phase = k8s_json_str(pods[i], "status.phase");
		json_object *cs = k8s_json_get(pods[i], "spec.containers");
		if (!name || !phase || strcmp(phase, "Running") || is_agent_pod(pods[i]) ||
		    k8s_json_get(pods[i], "metadata.deletionTimestamp"))
			continue;
		for (size_t j = 0; j < json_len(cs); j++) {
			const char *c = k8s_json_str(json_object_array_get_idx(cs, j), "name");
			json_object *st = c ? container_status(pods[i], c) : NULL;
			if (st && k8s_json_get(st, "state.running"))
				add_target(arr, "pod", name, c);
		}
	}
	r = k8s_api_get(a, path, &deps, reterr);
	if (r < 0)
		goto out;
	json_object *items = k8s_json_get(deps, "items");
	for (size_t i = 0; i < json_len(items); i++) {
		json_object *d = json_object_array_get_idx(items, i);
		const char *name = k8s_json_str(d, "metadata.name");
		if (name && k8s_json_int(d, "status.readyReplicas", 0) > 0)
			add_target(arr, "deployment", name, NULL);
	}
	if (json) {
		fprintf(out, "%s\n",
			json_object_to_json_string_ext(
				arr, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	} else {
		for (size_t i = 0; i < json_len(arr); i++)
			fprintf(out, "%s\n",
				json_object_get_string(json_object_array_get_idx(arr, i)));
	}
out:
	free(pods);
	json_object_put(list);
	json_object_put(deps);
	json_object_put(arr);
	return r;
}
