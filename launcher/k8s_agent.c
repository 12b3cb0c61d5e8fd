/* The agent in the cluster and the session's way to it (k8s_agent.h). */
#define LOG_TARGET "podenv::kube"
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "common/buf.h"
#include "common/log.h"
#include "launcher/cli.h"
#include "launcher/incoming.h"
#include "launcher/k8s_agent.h"
#include "launcher/k8s_api.h"
#include "launcher/k8s_target.h"
#include "launcher/k8s_ws.h"
#include "proto/proto.h"

#define AGENT_CONTAINER "podenv-agent"
#define POLL_FAST (20 * USEC_PER_MSEC)
#define POLL_INTERVAL (100 * USEC_PER_MSEC)

static const char *const default_caps[] = {"NET_ADMIN", "NET_RAW", "SYS_PTRACE", "SYS_ADMIN"};

struct k8s_session {
	struct k8s_api *api;
	struct k8s_target target;
	char *ns;	 /* the agent's namespace */
	char *job;	 /* NULL: ephemeral */
	char *pod;	 /* the agent's pod (the target pod when ephemeral) */
	char *container; /* the agent's container */
	uint16_t port;
	uint8_t token[PROTO_TOKEN_SIZE];
	unsigned polls_without_pod;
};

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	interrupted = sig;
}

/* --- progress ------------------------------------------------------------- */

struct progress {
	bool spinner;
	usec_t start;
	unsigned frame;
	char last[256];
};

static void progress_init(struct progress *p)
{
	memset(p, 0, sizeof(*p));
	p->start = now_usec();
	p->spinner = isatty(STDERR_FILENO) && log_enabled("podenv", LOG_INFO) &&
		     !log_enabled("podenv", LOG_DEBUG);
}

static void progress_say(struct progress *p, const char *msg)
{
	static const char *const frames[] = {"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"};

	if (p->spinner) {
		fprintf(stderr, "\r\033[K%s podenv: %s (%.1f s)", frames[p->frame++ % 10], msg,
			(double)(now_usec() - p->start) / USEC_PER_SEC);
		fflush(stderr);
	} else if (strcmp(p->last, msg)) {
		log_debug("%s", msg);
	}
	snprintf(p->last, sizeof(p->last), "%s", msg);
}

static void progress_done(struct progress *p)
{
	if (p->spinner && p->frame) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
}

/* --- the agent's objects ---------------------------------------------------- */

static char *random_suffix(size_t n)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	uint8_t r[32];
	char *s = xcalloc(n + 1, 1);

	if (getrandom(r, sizeof(r), 0) != sizeof(r))
		for (size_t i = 0; i < sizeof(r); i++)
			r[i] = (uint8_t)(now_usec() >> (i % 8));
	for (size_t i = 0; i < n && i < sizeof(r); i++)
		s[i] = alphabet[r[i] % 36];
	return s;
}

static json_object *strmap_json(const struct cfg_strmap *m, json_object *o)
{
	if (!o)
		o = json_object_new_object();
	for (size_t i = 0; i < m->n; i++)
		json_object_object_add(o, m->keys[i], json_object_new_string(m->values[i]));
	return o;
}

static json_object *str_array(const char *const *v, size_t n)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

static bool cap_disabled(const struct cfg *cfg, const char *cap)
{
	for (size_t i = 0; i < cfg->agent.disabled_capabilities.n; i++) {
		const char *d = cfg->agent.disabled_capabilities.v[i];
		if (!strncasecmp(d, "CAP_", 4))
			d += 4;
		if (!strcasecmp(d, cap))
			return true;
	}
	return false;
}

static json_object *security_context(const struct cfg *cfg)
{
	json_object *sc = json_object_new_object();

	if (cfg->agent.privileged) {
		json_object_object_add(sc, "privileged", json_object_new_boolean(1));
		return sc;
	}
	json_object *add = json_object_new_array();
	for (size_t i = 0; i < ARRAY_SIZE(default_caps); i++)
		if (!cap_disabled(cfg, default_caps[i]))
			json_object_array_add(add, json_object_new_string(default_caps[i]));
	json_object *caps = json_object_new_object();
	json_object_object_add(caps, "add", add);
	json_object_object_add(sc, "capabilities", caps);
	return sc;
}

/* The agent's container: image, command line, token, capabilities. */
static json_object *agent_container(struct k8s_session *ks, const struct cfg *cfg, const char *name)
{
	/* The configuration's default is podenv's image of this version. */
	const char *image = cfg->agent.image;
	char listen[32], timeout[24], token[PROTO_TOKEN_SIZE * 2 + 1];
	const char *args[16];
	size_t n = 0;

	snprintf(listen, sizeof(listen), "0.0.0.0:%u", (unsigned)ks->port);
	snprintf(timeout, sizeof(timeout), "%lld", (long long)cfg->agent.communication_timeout);
	if (ks->target.container_id) {
		args[n++] = "--container-id";
		args[n++] = ks->target.container_id;
	} else {
		/* targetless: the agent's own container */
		args[n++] = "--pid";
		args[n++] = "1";
	}
	args[n++] = "--listen";
	args[n++] = listen;
	args[n++] = "--communication-timeout";
	args[n++] = timeout;
	if (cfg->agent.log_level && *cfg->agent.log_level) {
		args[n++] = "--log-level";
		args[n++] = cfg->agent.log_level;
	}
	if (cfg->agent.json_log)
		args[n++] = "--json-log";
	args[n] = NULL;
	incoming_agent_args(cfg, args, ARRAY_SIZE(args)); /* agent.nftables, flush_connections */
	while (args[n])
		n++;
	/* Only the token's SHA-256 goes into the pod spec: whoever may read
	 * Jobs or pods in the namespace must not be able to use the agent. */
	uint8_t digest[SHA256_DIGEST_LENGTH];
	SHA256(ks->token, PROTO_TOKEN_SIZE, digest);
	for (size_t i = 0; i < sizeof(digest); i++)
		snprintf(token + 2 * i, 3, "%02x", digest[i]);

	json_object *c = json_object_new_object();
	json_object_object_add(c, "name", json_object_new_string(name));
	if (image)
		json_object_object_add(c, "image", json_object_new_string(image));
	if (cfg->agent.image_pull_policy)
		json_object_object_add(c, "imagePullPolicy",
				       json_object_new_string(cfg->agent.image_pull_policy));
	const char *cmd = "podenv-agent";
	json_object_object_add(c, "command", str_array(&cmd, 1));
	json_object_object_add(c, "args", str_array(args, n));
	json_object *env = json_object_new_array(), *tok = json_object_new_object();
	json_object_object_add(tok, "name", json_object_new_string("PODENV_AGENT_TOKEN_SHA256"));
	json_object_object_add(tok, "value", json_object_new_string(token));
	json_object_array_add(env, tok);
	explicit_bzero(token, sizeof(token));
	json_object_object_add(c, "env", env);
	json_object_object_add(c, "securityContext", security_context(cfg));
	return c;
}

static json_object *parse_json_field(const char *text)
{
	return text ? json_tokener_parse(text) : NULL;
}

static json_object *job_body(struct k8s_session *ks, const struct cfg *cfg)
{
	json_object *labels = json_object_new_object();
	json_object_object_add(labels, "app", json_object_new_string("podenv-agent"));
	strmap_json(&cfg->agent.labels, labels);
	json_object *annotations = strmap_json(&cfg->agent.annotations, NULL);

	json_object *meta = json_object_new_object();
	json_object_object_add(meta, "name", json_object_new_string(ks->job));
	json_object_object_add(meta, "namespace", json_object_new_string(ks->ns));
	json_object_object_add(meta, "labels", json_object_get(labels));
	json_object_object_add(meta, "annotations", json_object_get(annotations));

	json_object *pod = json_object_new_object();
	json_object_object_add(pod, "restartPolicy", json_object_new_string("Never"));
	json_object_object_add(pod, "terminationGracePeriodSeconds", json_object_new_int(0));
	if (ks->target.pod) {
		/* On the target's node, seeing its processes. */
		json_object_object_add(pod, "nodeName", json_object_new_string(ks->target.node));
		json_object_object_add(pod, "hostPID", json_object_new_boolean(1));
	} else if (cfg->agent.node_selector.n) {
		json_object_object_add(pod, "nodeSelector",
				       strmap_json(&cfg->agent.node_selector, NULL));
	}
	json_object *tol = parse_json_field(cfg->agent.tolerations);
	if (tol)
		json_object_object_add(pod, "tolerations", tol);
	json_object *secrets = parse_json_field(cfg->agent.image_pull_secrets);
	if (secrets)
		json_object_object_add(pod, "imagePullSecrets", secrets);
	if (cfg->agent.service_account)
		json_object_object_add(pod, "serviceAccountName",
				       json_object_new_string(cfg->agent.service_account));
	json_object *psc = parse_json_field(cfg->agent.security_context);
	if (psc)
		json_object_object_add(pod, "securityContext", psc);
	if (cfg->agent.priority_class)
		json_object_object_add(pod, "priorityClassName",
				       json_object_new_string(cfg->agent.priority_class));
	json_object *c = agent_container(ks, cfg, AGENT_CONTAINER);
	json_object *res = parse_json_field(cfg->agent.resources);
	if (res)
		json_object_object_add(c, "resources", res);
	json_object *containers = json_object_new_array();
	json_object_array_add(containers, c);
	json_object_object_add(pod, "containers", containers);

	json_object *tmeta = json_object_new_object();
	json_object_object_add(tmeta, "labels", labels);
	json_object_object_add(tmeta, "annotations", annotations);
	json_object *tmpl = json_object_new_object();
	json_object_object_add(tmpl, "metadata", tmeta);
	json_object_object_add(tmpl, "spec", pod);

	json_object *spec = json_object_new_object();
	json_object_object_add(spec, "ttlSecondsAfterFinished",
			       json_object_new_int64(cfg->agent.ttl));
	json_object_object_add(spec, "backoffLimit", json_object_new_int(0));
	json_object_object_add(spec, "template", tmpl);

	json_object *job = json_object_new_object();
	json_object_object_add(job, "apiVersion", json_object_new_string("batch/v1"));
	json_object_object_add(job, "kind", json_object_new_string("Job"));
	json_object_object_add(job, "metadata", meta);
	json_object_object_add(job, "spec", spec);
	return job;
}

/* agent.check_out_of_pods: the node must have room for one more pod. */
static int check_room(struct k8s_session *ks, struct err *reterr)
{
	const char *node = ks->target.node;
	_cleanup_free_ char *enode = k8s_escape(node);
	_cleanup_free_ char *npath = xasprintf("/api/v1/nodes/%s", enode);
	_cleanup_free_ char *sel = xasprintf("spec.nodeName=%s", node);
	_cleanup_free_ char *esel = k8s_escape(sel);
	_cleanup_free_ char *ppath = xasprintf("/api/v1/pods?fieldSelector=%s", esel);
	json_object *n = NULL, *pods = NULL;
	struct err e;
	int r = 0;

	/* Reading nodes needs a cluster-wide permission many users lack:
	 * without it the check is skipped, as the Job would tell anyway. */
	if (k8s_api_get(ks->api, npath, &n, &e) < 0 || k8s_api_get(ks->api, ppath, &pods, &e) < 0) {
		log_debug("agent.check_out_of_pods skipped: %s", e.msg);
		goto out;
	}
	const char *cap = k8s_json_str(n, "status.allocatable.pods");
	long max = cap ? strtol(cap, NULL, 10) : 0;
	json_object *items = k8s_json_get(pods, "items");
	long used = 0;
	for (size_t i = 0; items && i < json_object_array_length(items); i++) {
		const char *ph = k8s_json_str(json_object_array_get_idx(items, i), "status.phase");
		if (!ph || (strcmp(ph, "Succeeded") && strcmp(ph, "Failed")))
			used++;
	}
	if (max > 0 && used >= max)
		r = err_set(
			reterr, -ENOSPC,
			"node %s has no room for the agent pod (%ld of %ld pods); free one, set "
			"agent.ephemeral, or agent.check_out_of_pods: false",
			node, used, max);
out:
	json_object_put(n);
	json_object_put(pods);
	return r;
}

static int create_job(struct k8s_session *ks, const struct cfg *cfg, struct err *reterr)
{
	_cleanup_free_ char *ens = k8s_escape(ks->ns);
	_cleanup_free_ char *path = xasprintf("/apis/batch/v1/namespaces/%s/jobs", ens);
	_cleanup_free_ char *suffix = random_suffix(10);
	json_object *body;
	int r;

	ks->job = xasprintf("podenv-agent-%s", suffix);
	ks->container = xstrdup(AGENT_CONTAINER);
	body = job_body(ks, cfg);
	r = k8s_api_call(ks->api, "POST", path, body, NULL, NULL, NULL, reterr);
	json_object_put(body);
	if (r < 0) {
		free(ks->job);
		ks->job = NULL;
		return err_prefix(reterr, "creating the agent Job in namespace %s", ks->ns);
	}
	log_debug("agent Job %s/%s created", ks->ns, ks->job);
	return 0;
}

static int add_ephemeral(struct k8s_session *ks, const struct cfg *cfg, struct err *reterr)
{
	_cleanup_free_ char *ens = k8s_escape(ks->ns), *epod = k8s_escape(ks->target.pod);
	_cleanup_free_ char *path =
		xasprintf("/api/v1/namespaces/%s/pods/%s/ephemeralcontainers", ens, epod);
	_cleanup_free_ char *suffix = random_suffix(5);
	json_object *c, *list, *spec, *body, *answer = NULL;
	long status = 0;
	int r;

	ks->container = xasprintf("podenv-agent-%s", suffix);
	ks->pod = xstrdup(ks->target.pod);
	c = agent_container(ks, cfg, ks->container);
	json_object_object_add(c, "targetContainerName",
			       json_object_new_string(ks->target.container));
	list = json_object_new_array();
	json_object_array_add(list, c);
	spec = json_object_new_object();
	json_object_object_add(spec, "ephemeralContainers", list);
	body = json_object_new_object();
	json_object_object_add(body, "spec", spec);
	r = k8s_api_call(ks->api, "PATCH", path, body, "application/strategic-merge-patch+json",
			 &answer, &status, reterr);
	json_object_put(body);
	/* kubectl's reading: a 404 without a name means the subresource is
	 * not there. */
	if (r < 0 && status == 404 && !k8s_json_str(answer, "details.name"))
		r = err_set(reterr, -EOPNOTSUPP,
			    "ephemeral containers are disabled in this cluster; unset "
			    "agent.ephemeral to run the agent as a Job");
	json_object_put(answer);
	if (r < 0)
		return err_prefix(reterr, "adding the agent container to pod %s/%s", ks->ns,
				  ks->target.pod);
	return 0;
}

static void delete_job(struct k8s_session *ks)
{
	_cleanup_free_ char *ens = k8s_escape(ks->ns), *ejob = k8s_escape(ks->job);
	/* batch/v1 orphans a Job's pods unless told otherwise. */
	_cleanup_free_ char *path = xasprintf(
		"/apis/batch/v1/namespaces/%s/jobs/%s?propagationPolicy=Background", ens, ejob);
	struct err e;

	if (k8s_api_call(ks->api, "DELETE", path, NULL, NULL, NULL, NULL, &e) < 0 &&
	    e.code != -ENOENT)
		log_warn(
			"could not delete the agent Job: %s; delete it with `kubectl delete job -n "
			"%s %s`",
			e.msg, ks->ns, ks->job);
	else
		log_debug("agent Job %s/%s deleted", ks->ns, ks->job);
}

/* --- waiting ------------------------------------------------------------------ */

/* The last few events about object name: "Reason: message; …". */
static char *events_of(struct k8s_session *ks, const char *name)
{
	_cleanup_free_ char *sel = xasprintf("involvedObject.name=%s", name);
	_cleanup_free_ char *esel = k8s_escape(sel), *ens = k8s_escape(ks->ns);
	_cleanup_free_ char *path =
		xasprintf("/api/v1/namespaces/%s/events?fieldSelector=%s", ens, esel);
	json_object *list = NULL;
	struct err e;
	struct buf b;

	buf_init(&b);
	if (k8s_api_get(ks->api, path, &list, &e) >= 0) {
		json_object *items = k8s_json_get(list, "items");
		size_t n = items ? json_object_array_length(items) : 0;
		for (size_t i = n > 3 ? n - 3 : 0; i < n; i++) {
			json_object *ev = json_object_array_get_idx(items, i);
			const char *reason = k8s_json_str(ev, "reason");
			const char *msg = k8s_json_str(ev, "message");
			buf_printf(&b, "%s%s: %s", buf_len(&b) ? "; " : "", reason ? reason : "?",
				   msg ? msg : "");
		}
	}
	json_object_put(list);
	buf_append(&b, "", 1);
	return buf_steal(&b, NULL);
}

static json_object *status_of(json_object *pod, const char *key, const char *name)
{
	json_object *st = k8s_json_get(pod, key);

	for (size_t i = 0; st && i < json_object_array_length(st); i++) {
		json_object *c = json_object_array_get_idx(st, i);
		const char *n = k8s_json_str(c, "name");
		if (n && !strcmp(n, name))
			return c;
	}
	return NULL;
}

/* Container waiting reasons that will not fix themselves. */
static bool fatal_reason(const char *r)
{
	static const char *const fatal[] = {
		"ImagePullBackOff",	      "ErrImagePull",	      "InvalidImageName",
		"CreateContainerConfigError", "CreateContainerError", "CrashLoopBackOff",
		"ErrImageNeverPull",	      "StartError",	      "RunContainerError"};

	for (size_t i = 0; r && i < ARRAY_SIZE(fatal); i++)
		if (!strcmp(r, fatal[i]))
			return true;
	return false;
}

/* One look at the agent: 1 ready, 0 not yet (why says what it waits for),
 * or a negative errno with reterr set when it will not start. */
static int agent_state(struct k8s_session *ks, char *why, size_t whylen, struct err *reterr)
{
	json_object *list = NULL, *pod = NULL;
	int r;

	if (ks->job) {
		_cleanup_free_ char *sel = xasprintf("job-name=%s", ks->job);
		_cleanup_free_ char *esel = k8s_escape(sel), *ens = k8s_escape(ks->ns);
		_cleanup_free_ char *path =
			xasprintf("/api/v1/namespaces/%s/pods?labelSelector=%s", ens, esel);
		r = k8s_api_get(ks->api, path, &list, reterr);
		if (r < 0)
			return r;
		json_object *items = k8s_json_get(list, "items");
		if (!items || json_object_array_length(items) == 0) {
			json_object_put(list);
			/* A Job whose pod is refused (PodSecurity, quota) says so
			 * in its events and never gets one: look now and then. */
			if (++ks->polls_without_pod % 10 == 0) {
				_cleanup_free_ char *ev = events_of(ks, ks->job);
				const char *fc = strstr(ev, "FailedCreate: ");
				if (fc)
					return err_set(
						reterr, -EPERM,
						"the agent Job %s could not create its pod: %s",
						ks->job, fc + strlen("FailedCreate: "));
			}
			snprintf(why, whylen, "waiting for Job %s to create the agent pod",
				 ks->job);
			return 0;
		}
		pod = json_object_array_get_idx(items, 0);
		free(ks->pod);
		ks->pod = xstrdup(k8s_json_str(pod, "metadata.name"));
	} else {
		_cleanup_free_ char *ens = k8s_escape(ks->ns), *epod = k8s_escape(ks->pod);
		_cleanup_free_ char *path = xasprintf("/api/v1/namespaces/%s/pods/%s", ens, epod);
		r = k8s_api_get(ks->api, path, &list, reterr);
		if (r < 0)
			return r;
		pod = list;
	}
	json_object *cst = status_of(
		pod, ks->job ? "status.containerStatuses" : "status.ephemeralContainerStatuses",
		ks->container);
	const char *phase = k8s_json_str(pod, "status.phase");
	const char *waiting = cst ? k8s_json_str(cst, "state.waiting.reason") : NULL;
	const char *wmsg = cst ? k8s_json_str(cst, "state.waiting.message") : NULL;
	json_object *term = cst ? k8s_json_get(cst, "state.terminated") : NULL;
	json_object *conds = k8s_json_get(pod, "status.conditions");
	r = 0;
	for (size_t i = 0; conds && i < json_object_array_length(conds); i++) {
		json_object *c = json_object_array_get_idx(conds, i);
		const char *t = k8s_json_str(c, "type"), *s = k8s_json_str(c, "status");
		const char *reason = k8s_json_str(c, "reason");
		if (t && s && !strcmp(t, "PodScheduled") && !strcmp(s, "False") && reason &&
		    !strcmp(reason, "Unschedulable")) {
			const char *m = k8s_json_str(c, "message");
			r = err_set(reterr, -EAGAIN, "the agent pod %s cannot be scheduled: %s",
				    ks->pod, m ? m : reason);
			goto out;
		}
	}
	if (term ||
	    (ks->job && phase && (!strcmp(phase, "Failed") || !strcmp(phase, "Succeeded")))) {
		const char *reason = term ? k8s_json_str(term, "reason") : NULL;
		const char *msg = term ? k8s_json_str(term, "message") : NULL;
		char m[160] = "";
		if (msg) {
			snprintf(m, sizeof(m), "%s", msg);
			for (char *p = m; *p; p++)
				if (*p == '\n')
					*p = ' ';
		}
		r = err_set(reterr, -ECHILD, "the agent in pod %s exited (%s, exit code %lld)%s%s",
			    ks->pod, reason ? reason : phase,
			    (long long)(term ? k8s_json_int(term, "exitCode", -1) : -1),
			    *m ? ": " : "", m);
		goto out;
	}
	if (fatal_reason(waiting)) {
		r = err_set(reterr, -EAGAIN, "the agent pod %s cannot start: %s%s%s", ks->pod,
			    waiting, wmsg ? ": " : "", wmsg ? wmsg : "");
		goto out;
	}
	bool running = cst && k8s_json_get(cst, "state.running");
	json_object *ready = cst ? k8s_json_get(cst, "ready") : NULL;
	if (running && (!ks->job || !ready || json_object_get_boolean(ready))) {
		r = 1;
		goto out;
	}
	snprintf(why, whylen, "waiting for the agent pod %s (%s%s%s)", ks->pod,
		 phase ? phase : "unknown", waiting ? ", " : "", waiting ? waiting : "");
out:
	json_object_put(list);
	return r;
}

static int wait_agent(struct k8s_session *ks, const struct cfg *cfg, usec_t deadline,
		      struct err *reterr)
{
	struct progress p;
	char why[320] = "starting the agent";
	int r;

	progress_init(&p);
	for (;;) {
		if (interrupted) {
			r = err_set(reterr, -EINTR, "interrupted while waiting for the agent");
			break;
		}
		r = agent_state(ks, why, sizeof(why), reterr);
		if (r != 0)
			break;
		if (now_usec() >= deadline) {
			const char *name = ks->pod ? ks->pod : ks->job;
			_cleanup_free_ char *ev = events_of(ks, name);
			if (!*ev && ks->job && ks->pod) {
				free(ev);
				ev = events_of(ks, ks->job);
			}
			r = err_set(
				reterr, -ETIMEDOUT,
				"the agent was not ready within %lld s (agent.startup_timeout): "
				"%s%s%s",
				(long long)cfg->agent.startup_timeout, why, *ev ? "; events: " : "",
				ev);
			break;
		}
		progress_say(&p, why);
		/* Often at first (an agent whose image is there starts in well
		 * under a second), then gently. */
		usleep(now_usec() - p.start < USEC_PER_SEC ? POLL_FAST : POLL_INTERVAL);
	}
	progress_done(&p);
	if (r > 0)
		log_debug("agent %s/%s ready after %.2f s", ks->ns, ks->pod,
			  (double)(now_usec() - p.start) / USEC_PER_SEC);
	return r < 0 ? r : 0;
}

/* --- the session ------------------------------------------------------------- */

static int open_steps(struct k8s_session *ks, struct loop *l, const struct cfg *cfg,
		      const struct link_ops *ops, void *userdata, struct link **link,
		      struct err *reterr)
{
	usec_t start = now_usec();
	usec_t deadline = start + (usec_t)MAX(cfg->agent.startup_timeout, 1) * USEC_PER_SEC;
	struct k8s_ws *ws = NULL;
	int r;

	r = k8s_target_resolve(ks->api, &cfg->target, &ks->target, reterr);
	if (r < 0)
		return r;
	if (getrandom(ks->token, sizeof(ks->token), 0) != sizeof(ks->token))
		return err_set_errno(reterr, -errno, "getrandom");
	uint8_t pr[2];
	if (getrandom(pr, 2, 0) != 2)
		return err_set_errno(reterr, -errno, "getrandom");
	ks->port = (uint16_t)(20000 + (pr[0] << 8 | pr[1]) % 40000);
	if (cfg->agent.ephemeral) {
		if (!ks->target.pod)
			return err_set(
				reterr, -EINVAL,
				"agent.ephemeral needs a target pod (targetless runs the agent "
				"as a Job)");
		ks->ns = xstrdup(ks->target.namespace);
		r = add_ephemeral(ks, cfg, reterr);
	} else {
		ks->ns = xstrdup(cfg->agent.namespace && *cfg->agent.namespace
					 ? cfg->agent.namespace
					 : k8s_api_namespace(ks->api));
		r = ks->target.pod && cfg->agent.check_out_of_pods ? check_room(ks, reterr) : 0;
		if (r >= 0)
			r = create_job(ks, cfg, reterr);
	}
	if (r < 0)
		return r;
	r = wait_agent(ks, cfg, deadline, reterr);
	if (r < 0)
		return r;
	usec_t left = deadline > now_usec() ? deadline - now_usec() : 0;
	r = k8s_ws_open(ks->api, ks->ns, ks->pod, ks->port, MAX(left, 10 * USEC_PER_SEC), &ws,
			reterr);
	if (r < 0)
		return r;
	if (interrupted) {
		k8s_ws_free(ws);
		return err_set(reterr, -EINTR, "interrupted while connecting to the agent");
	}
	log_debug("agent %s/%s reached in %.2f s", ks->ns, ks->pod,
		  (double)(now_usec() - start) / USEC_PER_SEC);
	return link_connect_kube(l, ws, ks->token, ops, userdata, link, reterr);
}

int k8s_session_open(struct loop *l, const struct cfg *cfg, const struct link_ops *ops,
		     void *userdata, struct link **link, struct k8s_session **ret,
		     struct err *reterr)
{
	struct k8s_session *ks = xcalloc(1, sizeof(*ks));
	struct sigaction sa = {.sa_handler = on_interrupt}, old_int, old_term;
	int r;

	r = k8s_api_open(cfg, &ks->api, reterr);
	if (r < 0) {
		free(ks);
		return r;
	}
	/* Ctrl-C while the agent starts: clean up instead of leaving it. */
	interrupted = 0;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	r = open_steps(ks, l, cfg, ops, userdata, link, reterr);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	if (r < 0) {
		k8s_session_free(ks, true);
		return r;
	}
	*ret = ks;
	return 0;
}

void k8s_session_free(struct k8s_session *ks, bool failed)
{
	if (!ks)
		return;
	if (failed && ks->job)
		delete_job(ks);
	k8s_target_done(&ks->target);
	k8s_api_free(ks->api);
	free(ks->ns);
	free(ks->job);
	free(ks->pod);
	free(ks->container);
	explicit_bzero(ks->token, sizeof(ks->token));
	free(ks);
}
