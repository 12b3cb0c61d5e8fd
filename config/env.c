/* Environment variables and command-line flags.
 *
 * mirrord resolves each field as env > file > default, and its CLI flags
 * only set those env vars (research §6.1, §6.4). We do the same: the file
 * is parsed first, then every variable of the table below that is set
 * replaces the field. Flags become "NAME=VALUE" overrides in the
 * cfg_source, consulted before the real environment. Every MIRRORD_X may
 * also be spelled PODENV_X (which wins over MIRRORD_X).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config/config_int.h"

extern char **environ;

static const char *envlist_get(const struct cfg_source *src, const char *name)
{
	const char *const *env = src->env ? src->env : (const char *const *)environ;
	size_t n = strlen(name);

	for (size_t i = 0; env && env[i]; i++)
		if (strncmp(env[i], name, n) == 0 && env[i][n] == '=')
			return env[i] + n + 1;
	return NULL;
}

const char *cfg_source_getenv(const struct cfg_source *src, const char *name)
{
	size_t n = strlen(name);
	const char *v;

	for (size_t i = src->n_overrides; i-- > 0;)
		if (strncmp(src->overrides[i], name, n) == 0 && src->overrides[i][n] == '=')
			return src->overrides[i] + n + 1;
	if (strncmp(name, "MIRRORD_", 8) == 0) {
		char alt[128];
		snprintf(alt, sizeof(alt), "PODENV_%s", name + 8);
		v = envlist_get(src, alt);
		if (v)
			return v;
	}
	return envlist_get(src, name);
}

/* --- the table ------------------------------------------------------------- */

enum env_kind { E_BOOL, E_OPTBOOL, E_INT, E_STR, E_STRLIST, E_PATTERNS, E_FN };

struct env_var {
	const char *name;
	const char *path;
	enum env_kind kind;
	size_t off;
	bool caseless;
	int (*fn)(struct cfg_ctx *ctx, const struct env_var *e, const char *value);
	const char *ignored;
};

#define C(f) offsetof(struct cfg, f)
#define W_OPERATOR "it needs the mirrord operator (mirrord for Teams), which podenv does not use"

static int bad(struct cfg_ctx *ctx, const struct env_var *e, const char *what, const char *value)
{
	return err_set(ctx->err, -EINVAL, "%s (%s): expected %s, got \"%s\"", e->name, e->path,
		       what, value);
}

static int mode_from(const char *const *names, const char *value)
{
	for (int i = 0; names[i]; i++)
		if (strcasecmp(names[i], value) == 0)
			return i;
	return -1;
}

static int fn_target(struct cfg_ctx *ctx, const struct env_var *e, const char *value)
{
	char path[128];
	snprintf(path, sizeof(path), "%s (%s)", e->name, e->path);
	return cfg_target_parse_str(value, &ctx->cfg->target, path, ctx->err);
}

static int fn_namespace(struct cfg_ctx *ctx, const struct env_var *e, const char *value)
{
	(void)e;
	free(ctx->cfg->target.namespace);
	ctx->cfg->target.namespace = xstrdup(value);
	return 0;
}

/* Splits "registry:tag" at the tag's colon (not a registry port's). */
static void image_split(const char *img, char **reg, char **tag)
{
	const char *slash = strrchr(img, '/'), *colon = strrchr(img, ':');

	if (colon && (!slash || colon > slash)) {
		*reg = xstrndup(img, (size_t)(colon - img));
		*tag = xstrdup(colon + 1);
	} else {
		*reg = xstrdup(img);
		*tag = xstrdup("latest");
	}
}

static int fn_image(struct cfg_ctx *ctx, const struct env_var *e, const char *value)
{
	char **img = &ctx->cfg->agent.image;
	_cleanup_free_ char *reg = NULL, *tag = NULL;

	if (!*value)
		return bad(ctx, e, "an image name", value);
	if (strcmp(e->name, "MIRRORD_AGENT_IMAGE") == 0) {
		free(*img);
		*img = xstrdup(value);
		return 0;
	}
	image_split(*img, &reg, &tag);
	free(*img);
	if (strcmp(e->name, "MIRRORD_AGENT_IMAGE_REGISTRY") == 0)
		*img = xasprintf("%s:%s", value, tag);
	else
		*img = xasprintf("%s:%s", reg, value);
	return 0;
}

static const char *const fs_modes[] = {"local", "localwithoverrides", "read", "write", NULL};
static const char *const incoming_modes[] = {"off", "mirror", "steal", NULL};

static int fn_fs_mode(struct cfg_ctx *ctx, const struct env_var *e, const char *value)
{
	int m = mode_from(fs_modes, value);
	if (m < 0)
		return bad(ctx, e, "one of local, localwithoverrides, read, write", value);
	ctx->cfg->feature.fs.mode = m;
	return 0;
}

/* Legacy booleans: MIRRORD_FILE_OPS true → write, MIRRORD_FILE_RO_OPS true
 * → read; false → local. */
static int fn_fs_ops(struct cfg_ctx *ctx, const struct env_var *e, const char *value)
{
	int b = cfg_bool_parse_str(value);
	if (b < 0)
		return bad(ctx, e, "true or false", value);
	if (!b)
		ctx->cfg->feature.fs.mode = CFG_FS_LOCAL;
	else
		ctx->cfg->feature.fs.mode = strstr(e->name, "RO_") ? CFG_FS_READ : CFG_FS_WRITE;
	return 0;
}

static int fn_steal(struct cfg_ctx *ctx, const struct env_var *e, const char *value)
{
	int b = cfg_bool_parse_str(value), m = mode_from(incoming_modes, value);

	if (b >= 0)
		m = b ? CFG_INCOMING_STEAL : CFG_INCOMING_OFF;
	if (m < 0)
		return bad(ctx, e, "true, false, off, mirror or steal", value);
	ctx->cfg->feature.network.incoming.mode = m;
	return 0;
}

static int fn_concurrent(struct cfg_ctx *ctx, const struct env_var *e, const char *value)
{
	static const char *const names[] = {"abort", "continue", "override", NULL};
	int m = mode_from(names, value);
	if (m < 0)
		return bad(ctx, e, "abort, continue or override", value);
	ctx->cfg->feature.network.incoming.on_concurrent_steal = m;
	return 0;
}

static int fn_http(struct cfg_ctx *ctx, const struct env_var *e, const char *value)
{
	enum cfg_http_kind k = strstr(e->name, "_JQ")	   ? CFG_HTTP_HEADER_JQ
			       : strstr(e->name, "HEADER") ? CFG_HTTP_HEADER
			       : strstr(e->name, "PATH")   ? CFG_HTTP_PATH
							   : CFG_HTTP_METHOD;
	char path[128];

	snprintf(path, sizeof(path), "%s (%s)", e->name, e->path);
	return cfg_http_filter_set_env(&ctx->cfg->feature.network.incoming.http_filter, k, value,
				       path, ctx->err);
}

static int fn_http_ports(struct cfg_ctx *ctx, const struct env_var *e, const char *value)
{
	struct cfg_ports *p = &ctx->cfg->feature.network.incoming.http_filter.ports;
	_cleanup_free_ char *copy = xstrdup(value);
	char *save = NULL;

	cfg_ports_done(p);
	p->set = true;
	p->v = xcalloc(strlen(value) + 1, sizeof(*p->v));
	for (char *t = strtok_r(copy, ",; ", &save); t; t = strtok_r(NULL, ",; ", &save)) {
		char *end;
		long v = strtol(t, &end, 10);
		if (*end || v < 0 || v > 65535)
			return bad(ctx, e, "port numbers separated by ','", value);
		p->v[p->n++] = (uint16_t)v;
	}
	return 0;
}

static const struct env_var env_vars[] = {
	{.name = "MIRRORD_ACCEPT_INVALID_CERTIFICATES",
	 .path = "accept_invalid_certificates",
	 .kind = E_OPTBOOL,
	 .off = C(accept_invalid_certificates)},
	{.name = "MIRRORD_SKIP_PROCESSES",
	 .path = "skip_processes",
	 .kind = E_STRLIST,
	 .off = C(skip_processes)},
	{.name = "MIRRORD_SKIP_BUILD_TOOLS",
	 .path = "skip_build_tools",
	 .kind = E_BOOL,
	 .off = C(skip_build_tools)},
	{.name = "MIRRORD_SKIP_EXTRA_BUILD_TOOLS",
	 .path = "skip_extra_build_tools",
	 .kind = E_STRLIST,
	 .off = C(skip_extra_build_tools)},
	{.name = "MIRRORD_OPERATOR_ENABLE",
	 .path = "operator",
	 .kind = E_OPTBOOL,
	 .off = C(operator),
	 .ignored = W_OPERATOR},
	{.name = "MIRRORD_MULTI_CLUSTER",
	 .path = "multi_cluster",
	 .kind = E_OPTBOOL,
	 .off = C(multi_cluster),
	 .ignored = W_OPERATOR},
	{.name = "MIRRORD_API",
	 .path = "api",
	 .kind = E_BOOL,
	 .off = C(api),
	 .ignored = "podenv has no session-monitor API socket"},
	{.name = "MIRRORD_KUBECONFIG", .path = "kubeconfig", .kind = E_STR, .off = C(kubeconfig)},
	{.name = "MIRRORD_KUBE_CONTEXT",
	 .path = "kube_context",
	 .kind = E_STR,
	 .off = C(kube_context)},
	{.name = "MIRRORD_SKIP_SIP",
	 .path = "skip_sip",
	 .kind = E_STRLIST,
	 .off = C(skip_sip),
	 .ignored = "it applies to macOS only"},
	{.name = "MIRRORD_TELEMETRY",
	 .path = "telemetry",
	 .kind = E_BOOL,
	 .off = C(telemetry),
	 .ignored = "podenv never sends telemetry"},
	{.name = "MIRRORD_PROXY", .path = "use_proxy", .kind = E_BOOL, .off = C(use_proxy)},
	{.name = "MIRRORD_KEY", .path = "key", .kind = E_STR, .off = C(key)},
	{.name = "MIRRORD_CONNECT_TCP",
	 .path = "connect_tcp",
	 .kind = E_STR,
	 .off = C(connect_tcp)},
	{.name = "MIRRORD_IMPERSONATED_TARGET",
	 .path = "target.path",
	 .kind = E_FN,
	 .off = 0,
	 .fn = fn_target},
	{.name = "MIRRORD_TARGET_NAMESPACE",
	 .path = "target.namespace",
	 .kind = E_FN,
	 .off = 0,
	 .fn = fn_namespace},
	{.name = "MIRRORD_AGENT_RUST_LOG",
	 .path = "agent.log_level",
	 .kind = E_STR,
	 .off = C(agent.log_level)},
	{.name = "MIRRORD_AGENT_JSON_LOG",
	 .path = "agent.json_log",
	 .kind = E_BOOL,
	 .off = C(agent.json_log)},
	{.name = "MIRRORD_AGENT_NAMESPACE",
	 .path = "agent.namespace",
	 .kind = E_STR,
	 .off = C(agent.namespace)},
	{.name = "MIRRORD_AGENT_IMAGE",
	 .path = "agent.image",
	 .kind = E_FN,
	 .off = 0,
	 .fn = fn_image},
	{.name = "MIRRORD_AGENT_IMAGE_REGISTRY",
	 .path = "agent.image.registry",
	 .kind = E_FN,
	 .off = 0,
	 .fn = fn_image},
	{.name = "MIRRORD_AGENT_IMAGE_TAG",
	 .path = "agent.image.tag",
	 .kind = E_FN,
	 .off = 0,
	 .fn = fn_image},
	{.name = "MIRRORD_AGENT_IMAGE_PULL_POLICY",
	 .path = "agent.image_pull_policy",
	 .kind = E_STR,
	 .off = C(agent.image_pull_policy)},
	{.name = "MIRRORD_AGENT_TTL", .path = "agent.ttl", .kind = E_INT, .off = C(agent.ttl)},
	{.name = "MIRRORD_EPHEMERAL_CONTAINER",
	 .path = "agent.ephemeral",
	 .kind = E_BOOL,
	 .off = C(agent.ephemeral)},
	{.name = "MIRRORD_AGENT_COMMUNICATION_TIMEOUT",
	 .path = "agent.communication_timeout",
	 .kind = E_INT,
	 .off = C(agent.communication_timeout)},
	{.name = "MIRRORD_AGENT_STARTUP_TIMEOUT",
	 .path = "agent.startup_timeout",
	 .kind = E_INT,
	 .off = C(agent.startup_timeout)},
	{.name = "MIRRORD_AGENT_STEALER_FLUSH_CONNECTIONS",
	 .path = "agent.flush_connections",
	 .kind = E_BOOL,
	 .off = C(agent.flush_connections)},
	{.name = "MIRRORD_AGENT_EXTERNAL_IP_FIX",
	 .path = "agent.external_ip_fix",
	 .kind = E_BOOL,
	 .off = C(agent.external_ip_fix)},
	{.name = "MIRRORD_AGENT_EXCLUDE_FROM_MESH",
	 .path = "agent.exclude_from_mesh",
	 .kind = E_BOOL,
	 .off = C(agent.exclude_from_mesh)},
	{.name = "MIRRORD_AGENT_HTTP_DETECTION_TIMEOUT",
	 .path = "agent.http_detection_timeout",
	 .kind = E_INT,
	 .off = C(agent.http_detection_timeout)},
	{.name = "MIRRORD_AGENT_CLEAN_IPTABLES_ON_START",
	 .path = "agent.clean_iptables_on_start",
	 .kind = E_OPTBOOL,
	 .off = C(agent.clean_iptables_on_start)},
	{.name = "MIRRORD_OVERRIDE_ENV_VARS_INCLUDE",
	 .path = "feature.env.include",
	 .kind = E_STRLIST,
	 .off = C(feature.env.include)},
	{.name = "MIRRORD_OVERRIDE_ENV_VARS_EXCLUDE",
	 .path = "feature.env.exclude",
	 .kind = E_STRLIST,
	 .off = C(feature.env.exclude)},
	{.name = "MIRRORD_OVERRIDE_ENV_VARS_FILE",
	 .path = "feature.env.env_file",
	 .kind = E_STR,
	 .off = C(feature.env.env_file)},
	{.name = "MIRRORD_ENV_LOAD_FROM_PROCESS",
	 .path = "feature.env.load_from_process",
	 .kind = E_OPTBOOL,
	 .off = C(feature.env.load_from_process),
	 .ignored = "podenv always fetches the pod environment before the program starts"},
	{.name = "MIRRORD_FILE_OPS",
	 .path = "feature.fs.mode",
	 .kind = E_FN,
	 .off = 0,
	 .fn = fn_fs_ops},
	{.name = "MIRRORD_FILE_RO_OPS",
	 .path = "feature.fs.mode",
	 .kind = E_FN,
	 .off = 0,
	 .fn = fn_fs_ops},
	{.name = "MIRRORD_FILE_MODE",
	 .path = "feature.fs.mode",
	 .kind = E_FN,
	 .off = 0,
	 .fn = fn_fs_mode},
	{.name = "MIRRORD_FILE_READ_WRITE_PATTERN",
	 .path = "feature.fs.read_write",
	 .kind = E_PATTERNS,
	 .off = C(feature.fs.read_write),
	 .caseless = true},
	{.name = "MIRRORD_FILE_READ_ONLY_PATTERN",
	 .path = "feature.fs.read_only",
	 .kind = E_PATTERNS,
	 .off = C(feature.fs.read_only),
	 .caseless = true},
	{.name = "MIRRORD_FILE_LOCAL_PATTERN",
	 .path = "feature.fs.local",
	 .kind = E_PATTERNS,
	 .off = C(feature.fs.local),
	 .caseless = true},
	{.name = "MIRRORD_AGENT_TCP_STEAL_TRAFFIC",
	 .path = "feature.network.incoming.mode",
	 .kind = E_FN,
	 .off = 0,
	 .fn = fn_steal},
	{.name = "MIRRORD_OPERATOR_ON_CONCURRENT_STEAL",
	 .path = "feature.network.incoming.on_concurrent_steal",
	 .kind = E_FN,
	 .off = 0,
	 .fn = fn_concurrent,
	 .ignored = W_OPERATOR},
	{.name = "MIRRORD_HTTP_HEADER_FILTER",
	 .path = "feature.network.incoming.http_filter.header_filter",
	 .kind = E_FN,
	 .off = 0,
	 .fn = fn_http},
	{.name = "MIRRORD_HTTP_PATH_FILTER",
	 .path = "feature.network.incoming.http_filter.path_filter",
	 .kind = E_FN,
	 .off = 0,
	 .fn = fn_http},
	{.name = "MIRRORD_HTTP_METHOD_FILTER",
	 .path = "feature.network.incoming.http_filter.method_filter",
	 .kind = E_FN,
	 .off = 0,
	 .fn = fn_http},
	{.name = "MIRRORD_HTTP_HEADER_FILTER_JQ",
	 .path = "feature.network.incoming.http_filter.header_filter_jq",
	 .kind = E_FN,
	 .off = 0,
	 .fn = fn_http},
	{.name = "MIRRORD_HTTP_FILTER_PORTS",
	 .path = "feature.network.incoming.http_filter.ports",
	 .kind = E_FN,
	 .off = 0,
	 .fn = fn_http_ports},
	{.name = "MIRRORD_TCP_OUTGOING",
	 .path = "feature.network.outgoing.tcp",
	 .kind = E_BOOL,
	 .off = C(feature.network.outgoing.tcp)},
	{.name = "MIRRORD_UDP_OUTGOING",
	 .path = "feature.network.outgoing.udp",
	 .kind = E_BOOL,
	 .off = C(feature.network.outgoing.udp)},
	{.name = "MIRRORD_OUTGOING_REMOTE_UNIX_STREAMS",
	 .path = "feature.network.outgoing.unix_streams",
	 .kind = E_PATTERNS,
	 .off = C(feature.network.outgoing.unix_streams),
	 .caseless = false},
	{.name = "MIRRORD_REMOTE_DNS",
	 .path = "feature.network.dns.enabled",
	 .kind = E_BOOL,
	 .off = C(feature.network.dns.enabled)},
	{.name = "MIRRORD_ENABLE_IPV6",
	 .path = "feature.network.ipv6",
	 .kind = E_BOOL,
	 .off = C(feature.network.ipv6)},
};

int cfg_env_apply(struct cfg_ctx *ctx)
{
	for (size_t i = 0; i < ARRAY_SIZE(env_vars); i++) {
		const struct env_var *e = &env_vars[i];
		const char *v = cfg_source_getenv(ctx->src, e->name);
		void *p = (char *)ctx->cfg + e->off;
		char path[160];
		int b, r = 0;

		if (!v)
			continue;
		switch (e->kind) {
		case E_BOOL:
		case E_OPTBOOL:
			b = cfg_bool_parse_str(v);
			if (b < 0)
				return bad(ctx, e, "true or false", v);
			if (e->kind == E_BOOL)
				*(bool *)p = b;
			else
				*(int *)p = b;
			break;
		case E_INT: {
			char *end;
			long long n;
			errno = 0;
			n = strtoll(v, &end, 10);
			if (!*v || *end || errno || n < 0 || n > INT32_MAX)
				return bad(ctx, e, "a non-negative integer", v);
			*(int64_t *)p = n;
			break;
		}
		case E_STR:
			free(*(char **)p);
			*(char **)p = xstrdup(v);
			break;
		case E_STRLIST:
			cfg_strv_done(p);
			cfg_strv_split(p, v, true);
			break;
		case E_PATTERNS: {
			struct cfg_strv sv = {0};
			snprintf(path, sizeof(path), "%s (%s)", e->name, e->path);
			cfg_strv_split(&sv, v, true);
			r = cfg_patterns_set(p, &sv, e->caseless, path, ctx->err);
			cfg_strv_done(&sv);
			break;
		}
		case E_FN:
			r = e->fn(ctx, e, v);
			break;
		}
		if (r < 0)
			return r;
		if (e->ignored)
			cfg_warn(ctx, "%s (%s): field is ignored: %s", e->name, e->path,
				 e->ignored);
	}
	return 0;
}

/* --- command-line flags -------------------------------------------------------- */

struct cli_flag {
	char short_name;
	const char *long_name;
	const char *arg;    /* NULL: a switch */
	const char *set[3]; /* "NAME" (takes the argument) or "NAME=VALUE" */
	const char *help;
};

static const struct cli_flag flags[] = {
	{'t',
	 "target",
	 "TARGET",
	 {"MIRRORD_IMPERSONATED_TARGET"},
	 "target: pod/NAME[/container/C], deployment/NAME, pid/PID, targetless…"},
	{'n', "target-namespace", "NS", {"MIRRORD_TARGET_NAMESPACE"}, "target namespace"},
	{'a', "agent-namespace", "NS", {"MIRRORD_AGENT_NAMESPACE"}, "agent namespace"},
	{'l', "agent-log-level", "FILTER", {"MIRRORD_AGENT_RUST_LOG"}, "agent log filter"},
	{'i', "agent-image", "IMAGE", {"MIRRORD_AGENT_IMAGE"}, "agent image"},
	{0, "agent-ttl", "SECONDS", {"MIRRORD_AGENT_TTL"}, "agent Job TTL"},
	{0,
	 "agent-startup-timeout",
	 "SECONDS",
	 {"MIRRORD_AGENT_STARTUP_TIMEOUT"},
	 "agent start-up timeout"},
	{'e',
	 "ephemeral-container",
	 NULL,
	 {"MIRRORD_EPHEMERAL_CONTAINER=true"},
	 "run the agent as an ephemeral container"},
	{0, "fs-mode", "MODE", {"MIRRORD_FILE_MODE"}, "read, write, local, localwithoverrides"},
	{'x',
	 "override-env-vars-exclude",
	 "VARS",
	 {"MIRRORD_OVERRIDE_ENV_VARS_EXCLUDE"},
	 "remote env vars to leave out (A;B*)"},
	{'s',
	 "override-env-vars-include",
	 "VARS",
	 {"MIRRORD_OVERRIDE_ENV_VARS_INCLUDE"},
	 "remote env vars to take (A;B*)"},
	{0, "no-remote-dns", NULL, {"MIRRORD_REMOTE_DNS=false"}, "resolve names locally"},
	{0, "skip-processes", "NAMES", {"MIRRORD_SKIP_PROCESSES"}, "(accepted, ignored)"},
	{'c',
	 "accept-invalid-certificates",
	 NULL,
	 {"MIRRORD_ACCEPT_INVALID_CERTIFICATES=true"},
	 "accept invalid TLS certificates (=false to refuse)"},
	{0,
	 "steal",
	 NULL,
	 {"MIRRORD_AGENT_TCP_STEAL_TRAFFIC=true"},
	 "steal incoming traffic instead of mirroring it"},
	{0,
	 "no-outgoing",
	 NULL,
	 {"MIRRORD_TCP_OUTGOING=false", "MIRRORD_UDP_OUTGOING=false"},
	 "outgoing traffic leaves locally"},
	{0, "no-tcp-outgoing", NULL, {"MIRRORD_TCP_OUTGOING=false"}, "outgoing TCP locally"},
	{0, "no-udp-outgoing", NULL, {"MIRRORD_UDP_OUTGOING=false"}, "outgoing UDP locally"},
	{0,
	 "no-network",
	 NULL,
	 {"MIRRORD_AGENT_TCP_STEAL_TRAFFIC=off", "MIRRORD_TCP_OUTGOING=false",
	  "MIRRORD_REMOTE_DNS=false"},
	 "no incoming, outgoing or DNS through the pod"},
	{0, "no-telemetry", NULL, {"MIRRORD_TELEMETRY=false"}, "(accepted; podenv sends none)"},
	{0, "context", "CONTEXT", {"MIRRORD_KUBE_CONTEXT"}, "kubeconfig context"},
	{0, "kubeconfig", "FILE", {"MIRRORD_KUBECONFIG"}, "kubeconfig file"},
	{0, "env-file", "FILE", {"MIRRORD_OVERRIDE_ENV_VARS_FILE"}, "dotenv file"},
	{'k', "key", "KEY", {"MIRRORD_KEY"}, "session key"},
	{0, "connect-tcp", "IP:PORT", {"MIRRORD_CONNECT_TCP"}, "use an agent listening there"},
	{0, "disable-version-check", NULL, {NULL}, "(accepted, no effect)"},
};

static void override_push(struct cfg_source *src, char *s)
{
	src->overrides = xrealloc(src->overrides, (src->n_overrides + 1) * sizeof(char *));
	src->overrides[src->n_overrides++] = s;
}

void cfg_source_done(struct cfg_source *src)
{
	for (size_t i = 0; i < src->n_overrides; i++)
		free(src->overrides[i]);
	free(src->overrides);
	src->overrides = NULL;
	src->n_overrides = 0;
}

int cfg_source_flag_parse(struct cfg_source *src, int argc, char **argv, int *idx,
			  struct err *reterr)
{
	const char *a = argv[*idx], *val = NULL, *name;
	const struct cli_flag *f = NULL;
	size_t nlen;

	if (a[0] != '-' || a[1] == '\0')
		return 0;
	if (a[1] == '-') {
		name = a + 2;
		nlen = strcspn(name, "=");
		if (name[nlen] == '=')
			val = name + nlen + 1;
		if (nlen == strlen("config-file") && strncmp(name, "config-file", nlen) == 0)
			goto config_file;
		for (size_t i = 0; i < ARRAY_SIZE(flags); i++)
			if (strlen(flags[i].long_name) == nlen &&
			    strncmp(flags[i].long_name, name, nlen) == 0)
				f = &flags[i];
	} else {
		if (a[1] == 'f') {
			val = a[2] ? a + 2 : NULL;
			goto config_file;
		}
		for (size_t i = 0; i < ARRAY_SIZE(flags); i++)
			if (flags[i].short_name && flags[i].short_name == a[1])
				f = &flags[i];
		if (f && a[2]) {
			if (!f->arg)
				return err_set(reterr, -EINVAL, "-%c takes no value", a[1]);
			val = a + 2;
		}
	}
	if (!f)
		return 0;
	if (f->arg && !val) {
		if (*idx + 1 >= argc)
			return err_set(reterr, -EINVAL, "--%s: expected %s", f->long_name, f->arg);
		val = argv[++*idx];
	}
	if (!f->arg && val) {
		/* Only -c/--accept-invalid-certificates takes an optional =BOOL. */
		if (f->short_name != 'c' || cfg_bool_parse_str(val) < 0)
			return err_set(reterr, -EINVAL, "--%s takes no value (got \"%s\")",
				       f->long_name, val);
		override_push(src, xasprintf("MIRRORD_ACCEPT_INVALID_CERTIFICATES=%s", val));
		++*idx;
		return 1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(f->set) && f->set[i]; i++)
		override_push(src,
			      f->arg ? xasprintf("%s=%s", f->set[i], val) : xstrdup(f->set[i]));
	++*idx;
	return 1;

config_file:
	/* A bare -f means ./.mirrord/mirrord.json, as in mirrord. */
	if (!val && *idx + 1 < argc &&
	    (argv[*idx + 1][0] != '-' || strcmp(argv[*idx + 1], "-") == 0))
		val = argv[++*idx];
	src->path = val ? val : ".mirrord/mirrord.json";
	++*idx;
	return 1;
}

const char *cfg_source_flags_help(void)
{
	static char text[4096];

	if (!text[0]) {
		struct buf b = {0};
		char *s;
		buf_printf(&b, "  -f, --config-file FILE         configuration file (- = stdin)\n");
		for (size_t i = 0; i < ARRAY_SIZE(flags); i++) {
			char left[64];
			snprintf(left, sizeof(left), "%s%c%s--%s%s%s",
				 flags[i].short_name ? "-" : "",
				 flags[i].short_name ? flags[i].short_name : ' ',
				 flags[i].short_name ? ", " : "  ", flags[i].long_name,
				 flags[i].arg ? " " : "", flags[i].arg ? flags[i].arg : "");
			buf_printf(&b, "  %-30s %s\n", flags[i].short_name ? left : left + 1,
				   flags[i].help);
		}
		s = buf_steal(&b, NULL);
		snprintf(text, sizeof(text), "%s", s);
		free(s);
	}
	return text;
}
