/* `target` and `agent.image`: the two fields whose shortened string form
 * has its own grammar.
 *
 * target: "targetless" | <type>/<name>[/container/<c>] | label/k=v[,k=v]
 * [/container/<c>] | container/<c> | containername/<c> | pid/<PID> (podenv:
 * a local process), or { "path": <that string or { "<type>": name,
 * "container": c }>, "namespace": ns }.
 */
#include <stdio.h>
#include <string.h>

#include "config/config_int.h"

#define TARGET_EXPECT                                                                              \
	"\"targetless\", \"<type>/<name>[/container/<container>]\" (type: pod, deployment, "       \
	"rollout, job, cronjob, statefulset, service, replicaset), \"label/<k>=<v>[,…]\", "      \
	"\"container/<name>\", \"containername/<name>\" or \"pid/<PID>\""

static const struct {
	const char *word;
	const char *obj_key; /* key in the object form of target.path */
	enum cfg_target_kind kind;
} kinds[] = {
	{"pod", "pod", CFG_TARGET_POD},
	{"deployment", "deployment", CFG_TARGET_DEPLOYMENT},
	{"deploy", NULL, CFG_TARGET_DEPLOYMENT},
	{"rollout", "rollout", CFG_TARGET_ROLLOUT},
	{"job", "job", CFG_TARGET_JOB},
	{"cronjob", "cron_job", CFG_TARGET_CRONJOB},
	{"statefulset", "stateful_set", CFG_TARGET_STATEFULSET},
	{"service", "service", CFG_TARGET_SERVICE},
	{"replicaset", "replica_set", CFG_TARGET_REPLICASET},
	{"label", "labels", CFG_TARGET_LABEL},
	{"container", NULL, CFG_TARGET_CONTAINER},
	{"containername", NULL, CFG_TARGET_CONTAINERNAME},
	{"pid", "pid", CFG_TARGET_PID},
};

const char *cfg_target_kind_name(enum cfg_target_kind k)
{
	if (k == CFG_TARGET_NONE)
		return "targetless";
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
		if (kinds[i].kind == k)
			return kinds[i].word;
	return "?";
}

void cfg_target_done(struct cfg_target *t)
{
	free(t->name);
	free(t->container);
	cfg_strmap_done(&t->labels);
	t->name = t->container = NULL;
	t->kind = CFG_TARGET_NONE;
	t->pid = 0;
}

static bool name_ok(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '/' || s[i] == ' ')
			return false;
	return true;
}

static int pid_parse(const char *s, int *pid)
{
	char *end;
	long v;

	if (!*s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (*end || errno || v <= 0 || v > 0x3fffffff)
		return -EINVAL;
	*pid = (int)v;
	return 0;
}

static int labels_parse(const char *s, size_t n, struct cfg_strmap *out)
{
	_cleanup_free_ char *copy = xstrndup(s, n);
	char *save = NULL;

	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		if (!eq || eq == tok)
			return -EINVAL;
		*eq = '\0';
		cfg_strmap_push(out, tok, eq + 1);
	}
	return out->n ? 0 : -EINVAL;
}

/* Keeps t->namespace; replaces the path part. */
int cfg_target_parse_str(const char *s, struct cfg_target *t, const char *path, struct err *reterr)
{
	const char *slash = strchr(s, '/'), *rest, *sub;
	struct cfg_target nt = {0};
	size_t wlen, nlen;
	size_t i;

	if (strcmp(s, "targetless") == 0 || *s == '\0') {
		cfg_target_done(t);
		return 0;
	}
	if (!slash)
		goto bad;
	wlen = (size_t)(slash - s);
	for (i = 0; i < ARRAY_SIZE(kinds); i++)
		if (strlen(kinds[i].word) == wlen && strncmp(s, kinds[i].word, wlen) == 0)
			break;
	if (i == ARRAY_SIZE(kinds))
		goto bad;
	nt.kind = kinds[i].kind;
	rest = slash + 1;
	sub = strstr(rest, "/container/");
	nlen = sub ? (size_t)(sub - rest) : strlen(rest);
	if (sub) {
		const char *c = sub + strlen("/container/");
		if (nt.kind == CFG_TARGET_CONTAINER || nt.kind == CFG_TARGET_CONTAINERNAME ||
		    nt.kind == CFG_TARGET_PID || !name_ok(c, strlen(c)))
			goto bad;
		nt.container = xstrdup(c);
	}
	if (nt.kind == CFG_TARGET_PID) {
		if (pid_parse(rest, &nt.pid) < 0) {
			cfg_target_done(&nt);
			return err_set(reterr, -EINVAL,
				       "%s: expected \"pid/<PID>\" with a positive PID, got \"%s\"",
				       path, s);
		}
	} else if (nt.kind == CFG_TARGET_LABEL) {
		if (labels_parse(rest, nlen, &nt.labels) < 0)
			goto bad;
	} else {
		if (!name_ok(rest, nlen))
			goto bad;
		nt.name = xstrndup(rest, nlen);
	}
	cfg_target_done(t);
	nt.namespace = t->namespace;
	*t = nt;
	return 0;
bad:
	cfg_target_done(&nt);
	return err_set(reterr, -EINVAL, "%s: expected " TARGET_EXPECT ", got \"%s\"", path, s);
}

static int path_object_parse(struct cfg_ctx *ctx, json_object *v, struct cfg_target *t,
			     const char *path)
{
	struct cfg_target nt = {0};
	const char *known[ARRAY_SIZE(kinds) + 1];
	size_t nknown = 0;
	int r = 0;

	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
		if (kinds[i].obj_key)
			known[nknown++] = kinds[i].obj_key;
	known[nknown++] = "container";
	json_object_object_foreach(v, key, val)
	{
		_cleanup_free_ char *p = cfg_path_join(path, key);
		size_t i;

		if (strcmp(key, "container") == 0) {
			if (!json_object_is_type(val, json_type_string)) {
				r = err_set(ctx->err, -EINVAL, "%s: expected a string, got %s", p,
					    cfg_json_type_name(val));
				goto out;
			}
			free(nt.container);
			nt.container = xstrdup(json_object_get_string(val));
			continue;
		}
		for (i = 0; i < ARRAY_SIZE(kinds); i++)
			if (kinds[i].obj_key && strcmp(kinds[i].obj_key, key) == 0)
				break;
		if (i == ARRAY_SIZE(kinds)) {
			const char *s = cfg_suggest(key, known, nknown);
			r = err_set(ctx->err, -EINVAL,
				    s ? "%s: unknown field, did you mean \"%s\"?"
				      : "%s: unknown field, expected a target type (pod, "
					"deployment, …)%s",
				    p, s ? s : "");
			goto out;
		}
		if (nt.kind != CFG_TARGET_NONE) {
			r = err_set(ctx->err, -EINVAL, "%s: only one target type may be given", p);
			goto out;
		}
		nt.kind = kinds[i].kind;
		if (nt.kind == CFG_TARGET_LABEL) {
			if (!json_object_is_type(val, json_type_object) ||
			    json_object_object_length(val) == 0) {
				r = err_set(ctx->err, -EINVAL,
					    "%s: expected a non-empty object of label selectors, "
					    "got %s",
					    p, cfg_json_type_name(val));
				goto out;
			}
			json_object_object_foreach(val, lk, lv)
			{
				if (!json_object_is_type(lv, json_type_string)) {
					r = err_set(ctx->err, -EINVAL,
						    "%s.%s: expected a string, got %s", p, lk,
						    cfg_json_type_name(lv));
					goto out;
				}
				cfg_strmap_push(&nt.labels, lk, json_object_get_string(lv));
			}
		} else if (nt.kind == CFG_TARGET_PID) {
			if (!json_object_is_type(val, json_type_int) ||
			    json_object_get_int64(val) <= 0 ||
			    json_object_get_int64(val) > 0x3fffffff) {
				r = err_set(ctx->err, -EINVAL,
					    "%s: expected a positive PID, got %s", p,
					    cfg_json_type_name(val));
				goto out;
			}
			nt.pid = (int)json_object_get_int64(val);
		} else {
			const char *s = json_object_get_string(val);
			if (!json_object_is_type(val, json_type_string) || !name_ok(s, strlen(s))) {
				r = err_set(ctx->err, -EINVAL, "%s: expected a %s name, got %s", p,
					    key, cfg_json_type_name(val));
				goto out;
			}
			nt.name = xstrdup(s);
		}
	}
	if (nt.kind == CFG_TARGET_NONE) {
		r = err_set(ctx->err, -EINVAL, "%s: expected one target type (pod, deployment, …)",
			    path);
		goto out;
	}
	cfg_target_done(t);
	nt.namespace = t->namespace;
	*t = nt;
	return 0;
out:
	cfg_target_done(&nt);
	return r;
}

static int path_parse(struct cfg_ctx *ctx, json_object *v, struct cfg_target *t, const char *path)
{
	if (json_object_is_type(v, json_type_null)) {
		cfg_target_done(t);
		return 0;
	}
	if (json_object_is_type(v, json_type_string))
		return cfg_target_parse_str(json_object_get_string(v), t, path, ctx->err);
	if (json_object_is_type(v, json_type_object))
		return path_object_parse(ctx, v, t, path);
	return err_set(ctx->err, -EINVAL, "%s: expected a target string or object, got %s", path,
		       cfg_json_type_name(v));
}

static int target_parse(struct cfg_ctx *ctx, json_object *v, void *field, const char *path)
{
	struct cfg_target *t = field;
	static const char *const known[] = {"path", "namespace"};

	if (!json_object_is_type(v, json_type_object))
		return path_parse(ctx, v, t, path);
	json_object_object_foreach(v, key, val)
	{
		_cleanup_free_ char *p = cfg_path_join(path, key);
		int r;

		if (strcmp(key, "path") == 0) {
			r = path_parse(ctx, val, t, p);
		} else if (strcmp(key, "namespace") == 0) {
			if (json_object_is_type(val, json_type_null)) {
				free(t->namespace);
				t->namespace = NULL;
				continue;
			}
			if (!json_object_is_type(val, json_type_string))
				return err_set(ctx->err, -EINVAL, "%s: expected a string, got %s",
					       p, cfg_json_type_name(val));
			free(t->namespace);
			t->namespace = xstrdup(json_object_get_string(val));
			r = 0;
		} else {
			const char *s = cfg_suggest(key, known, ARRAY_SIZE(known));
			return err_set(ctx->err, -EINVAL,
				       s ? "%s: unknown field, did you mean \"%s\"?"
					 : "%s: unknown field, expected one of: path, namespace%s",
				       p, s ? s : "");
		}
		if (r < 0)
			return r;
	}
	return 0;
}

char *cfg_target_format(const struct cfg_target *t)
{
	struct buf b = {0};
	char *s;

	switch (t->kind) {
	case CFG_TARGET_NONE:
		return xstrdup("targetless");
	case CFG_TARGET_PID:
		return xasprintf("pid/%d", t->pid);
	case CFG_TARGET_LABEL:
		buf_printf(&b, "label/");
		for (size_t i = 0; i < t->labels.n; i++)
			buf_printf(&b, "%s%s=%s", i ? "," : "", t->labels.keys[i],
				   t->labels.values[i]);
		break;
	default:
		buf_printf(&b, "%s/%s", cfg_target_kind_name(t->kind), t->name);
		break;
	}
	if (t->container)
		buf_printf(&b, "/container/%s", t->container);
	s = buf_steal(&b, NULL);
	buf_done(&b);
	return s;
}

static json_object *target_format(const void *field)
{
	const struct cfg_target *t = field;
	json_object *o = json_object_new_object();

	if (t->kind == CFG_TARGET_NONE) {
		json_object_object_add(o, "path", NULL);
	} else {
		char *s = cfg_target_format(t);
		json_object_object_add(o, "path", json_object_new_string(s));
		free(s);
	}
	json_object_object_add(o, "namespace",
			       t->namespace ? json_object_new_string(t->namespace) : NULL);
	return o;
}

static void target_free(void *field)
{
	struct cfg_target *t = field;
	cfg_target_done(t);
	free(t->namespace);
	t->namespace = NULL;
}

const struct cfg_custom cfg_target_custom = {
	.parse = target_parse,
	.format = target_format,
	.free = target_free,
	.schema = "{\"description\": \"The pod (or workload) to run in: a string such as "
		  "\\\"pod/NAME[/container/C]\\\", \\\"deployment/NAME\\\", \\\"pid/PID\\\" or "
		  "\\\"targetless\\\", or an object {path, namespace}.\", \"anyOf\": ["
		  "{\"type\": \"null\"}, {\"type\": \"string\"}, "
		  "{\"type\": \"object\", \"additionalProperties\": false, \"properties\": {"
		  "\"path\": {\"anyOf\": [{\"type\": \"null\"}, {\"type\": \"string\"}, {\"type\": "
		  "\"object\", "
		  "\"additionalProperties\": false, \"properties\": {"
		  "\"pod\": {\"type\": \"string\"}, \"deployment\": {\"type\": \"string\"}, "
		  "\"rollout\": {\"type\": \"string\"}, \"job\": {\"type\": \"string\"}, "
		  "\"cron_job\": {\"type\": \"string\"}, \"stateful_set\": {\"type\": \"string\"}, "
		  "\"service\": {\"type\": \"string\"}, \"replica_set\": {\"type\": \"string\"}, "
		  "\"labels\": {\"type\": \"object\", \"additionalProperties\": {\"type\": "
		  "\"string\"}}, "
		  "\"pid\": {\"type\": \"integer\", \"minimum\": 1}, "
		  "\"container\": {\"type\": \"string\"}}}]}, "
		  "\"namespace\": {\"type\": [\"string\", \"null\"]}}}]}",
};

/* --- agent.image --------------------------------------------------------- */

/* Our agent image, as `make agent-image` names it (AGENT_IMAGE in the
 * Makefile; tests/e2e/test_packaging.py checks that they agree). "localhost/"
 * because it is built here and loaded into the cluster (kind load
 * image-archive, ctr images import, or pushed to a registry and named in
 * agent.image), so it is never pulled from a public registry under a name
 * someone else could own. The tag is the release (PODENV_VERSION), so that
 * launcher and agent speak the same protocol. */
#define IMAGE_REGISTRY "localhost/podenv-agent"
#define IMAGE_TAG "0.1.0"

static int image_parse(struct cfg_ctx *ctx, json_object *v, void *field, const char *path)
{
	char **img = field;
	const char *reg = IMAGE_REGISTRY, *tag = IMAGE_TAG;

	if (json_object_is_type(v, json_type_null))
		return 0;
	if (json_object_is_type(v, json_type_string)) {
		if (!*json_object_get_string(v))
			return err_set(ctx->err, -EINVAL, "%s: expected an image name, got \"\"",
				       path);
		free(*img);
		*img = xstrdup(json_object_get_string(v));
		return 0;
	}
	if (!json_object_is_type(v, json_type_object))
		return err_set(ctx->err, -EINVAL,
			       "%s: expected an image string or an object {registry, tag}, got %s",
			       path, cfg_json_type_name(v));
	json_object_object_foreach(v, key, val)
	{
		static const char *const known[] = {"registry", "tag"};
		_cleanup_free_ char *p = cfg_path_join(path, key);
		const char **dst;

		if (strcmp(key, "registry") == 0) {
			dst = &reg;
		} else if (strcmp(key, "tag") == 0) {
			dst = &tag;
		} else {
			const char *s = cfg_suggest(key, known, ARRAY_SIZE(known));
			return err_set(ctx->err, -EINVAL,
				       s ? "%s: unknown field, did you mean \"%s\"?"
					 : "%s: unknown field, expected one of: registry, tag%s",
				       p, s ? s : "");
		}
		if (!json_object_is_type(val, json_type_string) || !*json_object_get_string(val))
			return err_set(ctx->err, -EINVAL, "%s: expected a non-empty string, got %s",
				       p, cfg_json_type_name(val));
		*dst = json_object_get_string(val);
	}
	free(*img);
	*img = xasprintf("%s:%s", reg, tag);
	return 0;
}

static json_object *image_format(const void *field)
{
	char *const *img = field;
	return json_object_new_string(*img ? *img : IMAGE_REGISTRY ":" IMAGE_TAG);
}

static void image_init(void *field)
{
	char **img = field;
	*img = xstrdup(IMAGE_REGISTRY ":" IMAGE_TAG);
}

static void image_free(void *field)
{
	char **img = field;
	free(*img);
	*img = NULL;
}

const struct cfg_custom cfg_image_custom = {
	.parse = image_parse,
	.format = image_format,
	.free = image_free,
	.init = image_init,
	.schema =
		"{\"description\": \"The agent image: \\\"registry:tag\\\" or {registry, tag}.\", "
		"\"default\": \"" IMAGE_REGISTRY ":" IMAGE_TAG
		"\", \"anyOf\": [{\"type\": \"string\"}, "
		"{\"type\": \"object\", \"additionalProperties\": false, \"properties\": {"
		"\"registry\": {\"type\": \"string\"}, \"tag\": {\"type\": \"string\"}}}]}",
};
