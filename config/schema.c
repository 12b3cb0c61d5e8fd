/* The format itself: one descriptor per field of mirrord's configuration
 * (reference + research §6.2), with its C location, type, default and,
 * for fields podenv cannot honour, why. parse.c, format.c and
 * cfg_schema_json() below all walk these tables, so the parser, the
 * canonical output and the JSON Schema cannot drift apart.
 */
#include <stddef.h>
#include <string.h>

#include "config/config_int.h"

/* Why a field is accepted but ignored (one warning per given field). */
#define W_OPERATOR "it needs the mirrord operator (mirrord for Teams), which podenv does not use"
#define W_MACOS "it applies to macOS only"
#define W_LAYER                                                                                    \
	"it tunes mirrord's LD_PRELOAD layer; podenv works at the kernel boundary and needs no "   \
	"such knob"

#define OFF(n) offsetof(S, n)
#define BOOL(n, d, ...)                                                                            \
	{                                                                                          \
		.name = #n, .kind = CK_BOOL, .off = OFF(n), .def = (d), __VA_ARGS__                \
	}
#define OPTBOOL(n, ...)                                                                            \
	{                                                                                          \
		.name = #n, .kind = CK_OPTBOOL, .off = OFF(n), __VA_ARGS__                         \
	}
#define INT(n, d, lo, hi, ...)                                                                     \
	{                                                                                          \
		.name = #n, .kind = CK_INT, .off = OFF(n), .def = (d), .min = (lo), .max = (hi),   \
		__VA_ARGS__                                                                        \
	}
#define OPTINT(n, lo, hi, ...)                                                                     \
	{                                                                                          \
		.name = #n, .kind = CK_OPTINT, .off = OFF(n), .min = (lo), .max = (hi),            \
		__VA_ARGS__                                                                        \
	}
#define STR(n, d, ...)                                                                             \
	{                                                                                          \
		.name = #n, .kind = CK_STR, .off = OFF(n), .def_str = (d), __VA_ARGS__             \
	}
#define STRLIST(n, fl, d, ...)                                                                     \
	{                                                                                          \
		.name = #n, .kind = CK_STRLIST, .off = OFF(n), .flags = (fl), .def_str = (d),      \
		__VA_ARGS__                                                                        \
	}
#define PATTERNS(n, fl, ...)                                                                       \
	{                                                                                          \
		.name = #n, .kind = CK_PATTERNS, .off = OFF(n), .flags = (fl), __VA_ARGS__         \
	}
#define STRMAP(n, ...)                                                                             \
	{                                                                                          \
		.name = #n, .kind = CK_STRMAP, .off = OFF(n), __VA_ARGS__                          \
	}
#define MAPPING(n, fl, ...)                                                                        \
	{                                                                                          \
		.name = #n, .kind = CK_MAPPING, .off = OFF(n), .flags = (fl), __VA_ARGS__          \
	}
#define ENUM(n, nm, d, ...)                                                                        \
	{                                                                                          \
		.name = #n, .kind = CK_ENUM, .off = OFF(n), .names = (nm), .def = (d), __VA_ARGS__ \
	}
#define PORTS(n, ...)                                                                              \
	{                                                                                          \
		.name = #n, .kind = CK_PORTS, .off = OFF(n), __VA_ARGS__                           \
	}
#define PAIRS(n, ...)                                                                              \
	{                                                                                          \
		.name = #n, .kind = CK_PAIRS, .off = OFF(n), __VA_ARGS__                           \
	}
#define JSON(n, fl, d, ...)                                                                        \
	{                                                                                          \
		.name = #n, .kind = CK_JSON, .off = OFF(n), .flags = (fl), .def_str = (d),         \
		__VA_ARGS__                                                                        \
	}
#define OBJECT(n, t, ...)                                                                          \
	{                                                                                          \
		.name = #n, .kind = CK_OBJECT, .off = OFF(n), .sub = &(t), __VA_ARGS__             \
	}
#define CUSTOM(n, c, ...)                                                                          \
	{                                                                                          \
		.name = #n, .kind = CK_CUSTOM, .off = OFF(n), .custom = &(c), __VA_ARGS__          \
	}
#define TABLE(arr, ...)                                                                            \
	{                                                                                          \
		.fields = (arr), .n = ARRAY_SIZE(arr), __VA_ARGS__                                 \
	}

static const char *const fs_modes[] = {"local", "localwithoverrides", "read", "write", NULL};
static const char *const incoming_modes[] = {"off", "mirror", "steal", NULL};
static const char *const concurrent_steal[] = {"abort", "continue", "override", NULL};

const char *cfg_fs_mode_name(enum cfg_fs_mode m)
{
	return (unsigned)m < ARRAY_SIZE(fs_modes) - 1 ? fs_modes[m] : "?";
}

const char *cfg_incoming_mode_name(enum cfg_incoming_mode m)
{
	return (unsigned)m < ARRAY_SIZE(incoming_modes) - 1 ? incoming_modes[m] : "?";
}

static int mode_lookup(const char *const *names, const char *s)
{
	for (int i = 0; names[i]; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	return -1;
}

/* --- agent ----------------------------------------------------------------- */

#define S struct cfg_agent_dns
static const struct cfg_field agent_dns_fields[] = {
	OPTINT(timeout, 0, INT32_MAX, .desc = "Seconds per DNS attempt in the pod."),
	OPTINT(attempts, 0, INT32_MAX, .desc = "DNS attempts in the pod."),
};
#undef S
static const struct cfg_table agent_dns_table = TABLE(agent_dns_fields);

#define S struct cfg_agent
static const struct cfg_field agent_fields[] = {
	STR(log_level, "info", .desc = "Agent log filter (RUST_LOG syntax)."),
	BOOL(json_log, false),
	STR(namespace, NULL, .desc = "Namespace of the agent Job; default: the current one."),
	CUSTOM(image, cfg_image_custom),
	STR(image_pull_policy, "IfNotPresent"),
	JSON(image_pull_secrets, FL_ARRAY, NULL),
	INT(ttl, 1, 0, INT32_MAX),
	BOOL(ephemeral, false),
	INT(communication_timeout, 30, 0, INT32_MAX),
	INT(startup_timeout, 60, 0, INT32_MAX),
	STR(network_interface, NULL,
	    .ignored = "podenv's agent mirrors by redirecting the port, not by capturing an "
		       "interface"),
	BOOL(flush_connections, true),
	STRLIST(disabled_capabilities, 0, NULL),
	JSON(tolerations, FL_ARRAY, "[{\"operator\":\"Exists\"}]"),
	JSON(resources, FL_OBJECT,
	     "{\"requests\":{\"cpu\":\"1m\",\"memory\":\"1Mi\"},\"limits\":{\"cpu\":\"100m\","
	     "\"memory\":\"100Mi\"}}"),
	BOOL(check_out_of_pods, true),
	BOOL(privileged, false),
	BOOL(external_ip_fix, true),
	OPTBOOL(nftables),
	OBJECT(dns, agent_dns_table),
	STRMAP(labels),
	STRMAP(annotations),
	STRMAP(node_selector),
	STR(service_account, NULL),
	STR(priority_class, NULL),
	STR(metrics, NULL, .ignored = "podenv-agent exports no Prometheus metrics"),
	BOOL(exclude_from_mesh, false),
	BOOL(inject_headers, false),
	BOOL(override_cache_control, true),
	INT(max_body_buffer_size, 65535, 0, INT32_MAX),
	INT(max_body_buffer_timeout, 1000, 0, INT32_MAX),
	INT(http_detection_timeout, 2, 0, INT32_MAX),
	JSON(security_context, FL_OBJECT, NULL),
	OPTBOOL(clean_iptables_on_start),
	BOOL(disable_mesh_sidecar_injection, true),
	INT(jaq_time_limit, 1, 0, INT32_MAX),
	/* The reference documents these only in prose. */
};
#undef S
static const struct cfg_table agent_table = TABLE(agent_fields);

#define S struct cfg_container
static const struct cfg_field container_fields[] = {
	STR(cli_image, "ghcr.io/metalbear-co/mirrord-cli:latest"),
	STRLIST(cli_extra_args, 0, NULL),
	BOOL(cli_prevent_cleanup, false),
	STR(cli_image_lib_path, "/opt/mirrord/lib/libmirrord_layer.so"),
	STR(override_host_ip, NULL),
	BOOL(host_gateway_detection, true),
	STR(cli_tls_path, "/opt/mirrord/tls/mirrord-tls.pem"),
	STR(platform, NULL),
};
#undef S
static const struct cfg_table container_table = TABLE(container_fields);

/* --- feature.env ------------------------------------------------------------- */

static int env_short(struct cfg_ctx *ctx, json_object *v, void *base, const char *path)
{
	struct cfg_env *e = base;

	if (!json_object_is_type(v, json_type_boolean))
		return err_set(ctx->err, -EINVAL, "%s: expected a boolean or an object, got %s",
			       path, cfg_json_type_name(v));
	if (!json_object_get_boolean(v)) {
		/* mirrord's disabled env: fetch nothing. */
		cfg_strv_done(&e->include);
		cfg_strv_done(&e->exclude);
		cfg_strv_push(&e->exclude, "*");
	}
	return 0;
}

#define S struct cfg_env
static const struct cfg_field env_fields[] = {
	STRLIST(include, FL_SEMI, NULL, .desc = "Remote variables to take (wildcards * ?)."),
	STRLIST(exclude, FL_SEMI, NULL, .desc = "Remote variables to leave out (wildcards * ?)."),
	STRMAP(override),
	OPTBOOL(load_from_process,
		.ignored = "podenv always fetches the pod environment before the program starts"),
	STRLIST(unset, FL_SEMI, NULL),
	STR(env_file, NULL),
	MAPPING(mapping, 0),
};
#undef S
static const struct cfg_table env_table =
	TABLE(env_fields, .shortform = env_short, .short_schema = "[{\"type\": \"boolean\"}]");

/* --- feature.fs ---------------------------------------------------------------- */

static int fs_short(struct cfg_ctx *ctx, json_object *v, void *base, const char *path)
{
	struct cfg_fs *fs = base;
	int m;

	if (json_object_is_type(v, json_type_boolean)) {
		fs->mode = json_object_get_boolean(v) ? CFG_FS_READ : CFG_FS_LOCAL;
		return 0;
	}
	if (json_object_is_type(v, json_type_string) &&
	    (m = mode_lookup(fs_modes, json_object_get_string(v))) >= 0) {
		fs->mode = m;
		return 0;
	}
	if (json_object_is_type(v, json_type_string))
		return err_set(ctx->err, -EINVAL,
			       "%s: expected one of \"local\", \"localwithoverrides\", \"read\", "
			       "\"write\", got \"%s\"",
			       path, json_object_get_string(v));
	return err_set(ctx->err, -EINVAL,
		       "%s: expected a boolean, a mode string or an object, got %s", path,
		       cfg_json_type_name(v));
}

static int fs_check(struct cfg_ctx *ctx, void *base, const char *path)
{
	struct cfg_fs *fs = base;

	if (fs->readonly_file_buffer > 1024 * 1024)
		cfg_warn(ctx,
			 "%s.readonly_file_buffer: %lld bytes is above 1 MiB; large remote reads "
			 "may time out",
			 path, (long long)fs->readonly_file_buffer);
	return 0;
}

#define S struct cfg_fs
static const struct cfg_field fs_fields[] = {
	ENUM(mode, fs_modes, CFG_FS_READ),
	PATTERNS(read_write, FL_CASELESS),
	PATTERNS(read_only, FL_CASELESS),
	PATTERNS(local, FL_CASELESS),
	PATTERNS(not_found, FL_CASELESS),
	MAPPING(mapping, FL_CASELESS),
	INT(readonly_file_buffer, 128000, 0, 15 * 1024 * 1024),
};
#undef S
static const struct cfg_table fs_table = TABLE(
	fs_fields, .shortform = fs_short, .check = fs_check,
	.short_schema = "[{\"type\": \"boolean\"}, {\"enum\": [\"local\", \"localwithoverrides\", "
			"\"read\", \"write\"]}]");

/* --- feature.network -------------------------------------------------------------- */

static int incoming_short(struct cfg_ctx *ctx, json_object *v, void *base, const char *path)
{
	struct cfg_incoming *in = base;
	int m;

	if (json_object_is_type(v, json_type_boolean)) {
		in->mode = json_object_get_boolean(v) ? CFG_INCOMING_MIRROR : CFG_INCOMING_OFF;
		return 0;
	}
	if (json_object_is_type(v, json_type_string) &&
	    (m = mode_lookup(incoming_modes, json_object_get_string(v))) >= 0) {
		in->mode = m;
		return 0;
	}
	if (json_object_is_type(v, json_type_string))
		return err_set(ctx->err, -EINVAL,
			       "%s: expected one of \"off\", \"mirror\", \"steal\", got \"%s\"",
			       path, json_object_get_string(v));
	return err_set(ctx->err, -EINVAL,
		       "%s: expected a boolean, a mode string or an object, got %s", path,
		       cfg_json_type_name(v));
}

#define S struct cfg_incoming
static const struct cfg_field incoming_fields[] = {
	ENUM(mode, incoming_modes, CFG_INCOMING_MIRROR),
	CUSTOM(http_filter, cfg_http_filter_custom),
	PAIRS(port_mapping),
	BOOL(ignore_localhost, false),
	PORTS(ignore_ports),
	PAIRS(listen_ports),
	PORTS(ports),
	ENUM(on_concurrent_steal, concurrent_steal, CFG_STEAL_ABORT, .ignored = W_OPERATOR),
	JSON(tls_delivery, FL_OBJECT, NULL, .ignored = W_OPERATOR),
	JSON(https_delivery, FL_OBJECT, NULL, .ignored = W_OPERATOR),
};
#undef S
static const struct cfg_table incoming_table = TABLE(
	incoming_fields, .shortform = incoming_short,
	.short_schema = "[{\"type\": \"boolean\"}, {\"enum\": [\"off\", \"mirror\", \"steal\"]}]");

static int outgoing_short(struct cfg_ctx *ctx, json_object *v, void *base, const char *path)
{
	struct cfg_outgoing *o = base;

	if (!json_object_is_type(v, json_type_boolean))
		return err_set(ctx->err, -EINVAL, "%s: expected a boolean or an object, got %s",
			       path, cfg_json_type_name(v));
	o->tcp = o->udp = json_object_get_boolean(v);
	return 0;
}

#define S struct cfg_outgoing
static const struct cfg_field outgoing_fields[] = {
	BOOL(tcp, true),
	BOOL(udp, true),
	BOOL(ignore_localhost, false),
	CUSTOM(filter, cfg_outgoing_filter_custom),
	PATTERNS(unix_streams, 0),
};
#undef S
static const struct cfg_table outgoing_table = TABLE(outgoing_fields, .shortform = outgoing_short,
						     .short_schema = "[{\"type\": \"boolean\"}]");

static int dns_short(struct cfg_ctx *ctx, json_object *v, void *base, const char *path)
{
	struct cfg_dns *d = base;

	if (!json_object_is_type(v, json_type_boolean))
		return err_set(ctx->err, -EINVAL, "%s: expected a boolean or an object, got %s",
			       path, cfg_json_type_name(v));
	d->enabled = json_object_get_boolean(v);
	return 0;
}

#define S struct cfg_dns
static const struct cfg_field dns_fields[] = {
	BOOL(enabled, true),
	CUSTOM(filter, cfg_dns_filter_custom),
};
#undef S
static const struct cfg_table dns_table =
	TABLE(dns_fields, .shortform = dns_short, .short_schema = "[{\"type\": \"boolean\"}]");

static int network_short(struct cfg_ctx *ctx, json_object *v, void *base, const char *path)
{
	struct cfg_network *n = base;

	if (!json_object_is_type(v, json_type_boolean))
		return err_set(ctx->err, -EINVAL, "%s: expected a boolean or an object, got %s",
			       path, cfg_json_type_name(v));
	if (!json_object_get_boolean(v)) {
		n->incoming.mode = CFG_INCOMING_OFF;
		n->outgoing.tcp = n->outgoing.udp = false;
		n->dns.enabled = false;
	}
	return 0;
}

#define S struct cfg_network
static const struct cfg_field network_fields[] = {
	OBJECT(incoming, incoming_table),
	OBJECT(outgoing, outgoing_table),
	OBJECT(dns, dns_table),
	BOOL(ipv6, true),
};
#undef S
static const struct cfg_table network_table = TABLE(network_fields, .shortform = network_short,
						    .short_schema = "[{\"type\": \"boolean\"}]");

/* --- feature (rest) ---------------------------------------------------------------- */

static int copy_target_short(struct cfg_ctx *ctx, json_object *v, void *base, const char *path)
{
	struct cfg_copy_target *c = base;

	if (!json_object_is_type(v, json_type_boolean))
		return err_set(ctx->err, -EINVAL, "%s: expected a boolean or an object, got %s",
			       path, cfg_json_type_name(v));
	c->enabled = json_object_get_boolean(v);
	return 0;
}

#define S struct cfg_copy_target
static const struct cfg_field copy_target_fields[] = {
	BOOL(enabled, false),
	BOOL(scale_down, false),
	STRLIST(exclude_containers, 0, NULL),
	STRLIST(exclude_init_containers, 0, NULL),
};
#undef S
static const struct cfg_table copy_target_table =
	TABLE(copy_target_fields, .shortform = copy_target_short, .object_enables = true,
	      .short_schema = "[{\"type\": \"boolean\"}]");

#define S struct cfg_magic
static const struct cfg_field magic_fields[] = {
	BOOL(aws, true),
	BOOL(auto_mount, true),
	BOOL(turbo, true,
	     .ignored = "it sets ignore_localhost for Next.js processes only, which "
			"podenv cannot single out in its sandbox"),
};
#undef S
static const struct cfg_table magic_table = TABLE(magic_fields);

#define S struct cfg_feature
static const struct cfg_field feature_fields[] = {
	OBJECT(env, env_table),
	OBJECT(fs, fs_table),
	OBJECT(network, network_table),
	BOOL(hostname, true),
	OBJECT(copy_target, copy_target_table, .ignored = W_OPERATOR),
	JSON(split_queues, 0, NULL, .ignored = W_OPERATOR),
	JSON(db_branches, 0, NULL, .ignored = W_OPERATOR),
	JSON(preview, FL_OBJECT, NULL, .ignored = W_OPERATOR),
	OBJECT(magic, magic_table),
};
#undef S
static const struct cfg_table feature_table = TABLE(feature_fields);

/* --- proxies, experimental, misc --------------------------------------------------------- */

#define S struct cfg_internal_proxy
static const struct cfg_field internal_proxy_fields[] = {
	INT(start_idle_timeout, 60, 0, INT32_MAX),
	INT(idle_timeout, 5, 0, INT32_MAX),
	INT(socket_timeout, 31536000, 0, INT64_MAX),
	INT(ping_interval, 30, 0, INT32_MAX),
	STR(log_level, "mirrord=info,warn"),
	STR(log_destination, NULL),
	BOOL(json_log, true),
	INT(process_logging_interval, 60, 0, INT32_MAX),
};
#undef S
static const struct cfg_table internal_proxy_table = TABLE(internal_proxy_fields);

#define S struct cfg_external_proxy
static const struct cfg_field external_proxy_fields[] = {
	BOOL(tls_enable, true),
	INT(start_idle_timeout, 60, 0, INT32_MAX),
	INT(idle_timeout, 5, 0, INT32_MAX),
	STR(log_level, "mirrord=info,warn"),
	STR(log_destination, NULL),
	BOOL(json_log, true),
	STR(host_ip, NULL),
};
#undef S
static const struct cfg_table external_proxy_table = TABLE(external_proxy_fields);

#define S struct cfg_latency
static const struct cfg_field latency_fields[] = {
	INT(transmit_delay, 0, 0, INT32_MAX),
	INT(receive_delay, 0, 0, INT32_MAX),
};
#undef S
static const struct cfg_table latency_table = TABLE(latency_fields);

#define S struct cfg_experimental
static const struct cfg_field experimental_fields[] = {
	BOOL(tcp_ping4_mock, true, .ignored = W_LAYER),
	BOOL(trust_any_certificate, false, .ignored = W_MACOS),
	BOOL(enable_exec_hooks_linux, true, .ignored = W_LAYER),
	BOOL(hide_ipv6_interfaces, false, .ignored = W_LAYER),
	OPTBOOL(disable_reuseaddr, .ignored = W_MACOS),
	BOOL(use_dev_null, true, .ignored = W_LAYER),
	INT(idle_local_http_connection_timeout, 3000, 0, INT32_MAX),
	BOOL(ignore_system_proxy_config, false),
	BOOL(browser_extension_config, false,
	     .ignored = "podenv has no browser-extension integration"),
	STR(sip_log_destination, NULL, .ignored = W_MACOS),
	BOOL(non_blocking_tcp_connect, true, .ignored = W_LAYER),
	BOOL(dlopen_cgo, false, .ignored = W_LAYER),
	OBJECT(latency, latency_table,
	       .ignored = "deprecated in mirrord (now `mirrord chaos`); podenv adds no latency"),
	JSON(applev, 0, NULL, .ignored = W_MACOS),
	BOOL(sip_utils, true, .ignored = W_MACOS),
	OPTBOOL(go_asmcgocall, .ignored = W_LAYER),
	OPTBOOL(guard_std_fds, .ignored = W_LAYER),
};
#undef S
static const struct cfg_table experimental_table = TABLE(experimental_fields);

static int startup_retry_check(struct cfg_ctx *ctx, void *base, const char *path)
{
	struct cfg_startup_retry *s = base;

	if (s->max_ms == 0)
		return err_set(ctx->err, -EINVAL, "%s.max_ms: expected a value above 0", path);
	if (s->min_ms > s->max_ms)
		return err_set(ctx->err, -EINVAL,
			       "%s.min_ms: expected at most max_ms (%lld), got %lld", path,
			       (long long)s->max_ms, (long long)s->min_ms);
	return 0;
}

#define S struct cfg_startup_retry
static const struct cfg_field startup_retry_fields[] = {
	INT(min_ms, 500, 0, INT32_MAX),
	INT(max_ms, 5000, 0, INT32_MAX),
	INT(max_retries, 2, 0, INT32_MAX),
};
#undef S
static const struct cfg_table startup_retry_table =
	TABLE(startup_retry_fields, .check = startup_retry_check);

#define S struct cfg_ci
static const struct cfg_field ci_fields[] = {
	STR(output_dir, "/tmp/mirrord/"),
};
#undef S
static const struct cfg_table ci_table = TABLE(ci_fields);

/* --- root ------------------------------------------------------------------------------------- */

#define S struct cfg
static const struct cfg_field root_fields[] = {
	OPTBOOL(accept_invalid_certificates, .desc = "Accept invalid TLS certificates from the API "
						     "server; unset: the kubeconfig's."),
	STRLIST(skip_processes, FL_SEMI, NULL),
	BOOL(skip_build_tools, true),
	STRLIST(skip_extra_build_tools, FL_SEMI, NULL),
	CUSTOM(target, cfg_target_custom),
	STR(connect_tcp, NULL, .desc = "IP:PORT of an agent already listening."),
	OBJECT(agent, agent_table),
	OBJECT(container, container_table,
	       .ignored = "it configures `mirrord container`, which podenv does not have"),
	OBJECT(feature, feature_table),
	OBJECT(internal_proxy, internal_proxy_table,
	       .ignored = "podenv has no internal proxy: the launcher talks to the agent itself"),
	OBJECT(external_proxy, external_proxy_table,
	       .ignored = "it configures `mirrord container`, which podenv does not have"),
	OBJECT(experimental, experimental_table),
	OPTBOOL(operator, .ignored = W_OPERATOR),
	OPTBOOL(multi_cluster, .ignored = W_OPERATOR),
	BOOL(api, true, .ignored = "podenv has no session-monitor API socket"),
	STR(profile, NULL, .ignored = W_OPERATOR),
	STR(kubeconfig, NULL),
	STR(kube_context, NULL),
	STRLIST(sip_binaries, FL_SEMI, NULL, .ignored = W_MACOS),
	STRLIST(skip_sip, FL_SEMI, "git", .ignored = W_MACOS),
	BOOL(telemetry, true, .ignored = "podenv never sends telemetry"),
	BOOL(use_proxy, true),
	STR(key, NULL),
	STR(traceparent, NULL, .ignored = W_OPERATOR),
	STR(baggage, NULL, .ignored = W_OPERATOR),
	OBJECT(startup_retry, startup_retry_table),
	OBJECT(ci, ci_table, .ignored = "it configures `mirrord ci`, which podenv does not have"),
};
#undef S
const struct cfg_table cfg_root_table = TABLE(root_fields);

/* --- JSON Schema ---------------------------------------------------------------------------------
 */

static json_object *parse_json(const char *s)
{
	json_object *o = json_tokener_parse(s);
	if (!o)
		abort(); /* a bug in the literals above */
	return o;
}

static json_object *strlist_schema(void)
{
	return parse_json("{\"anyOf\": [{\"type\": \"null\"}, {\"type\": \"string\"}, "
			  "{\"type\": \"array\", \"items\": {\"type\": \"string\"}}]}");
}

static json_object *table_schema(const struct cfg_table *t);

static json_object *field_schema(const struct cfg_field *f)
{
	json_object *o = NULL;

	switch (f->kind) {
	case CK_BOOL:
		o = parse_json("{\"type\": \"boolean\"}");
		json_object_object_add(o, "default", json_object_new_boolean(f->def));
		break;
	case CK_OPTBOOL:
		o = parse_json("{\"type\": [\"boolean\", \"null\"]}");
		break;
	case CK_INT:
	case CK_OPTINT:
		o = parse_json(f->kind == CK_INT ? "{\"type\": \"integer\"}"
						 : "{\"type\": [\"integer\", \"null\"]}");
		if (f->min || f->max) {
			json_object_object_add(o, "minimum", json_object_new_int64(f->min));
			json_object_object_add(o, "maximum", json_object_new_int64(f->max));
		}
		if (f->kind == CK_INT)
			json_object_object_add(o, "default", json_object_new_int64(f->def));
		break;
	case CK_STR:
		o = parse_json("{\"type\": [\"string\", \"null\"]}");
		if (f->def_str)
			json_object_object_add(o, "default", json_object_new_string(f->def_str));
		break;
	case CK_STRLIST:
	case CK_PATTERNS:
		o = strlist_schema();
		break;
	case CK_STRMAP:
	case CK_MAPPING:
		o = parse_json("{\"type\": [\"object\", \"null\"], \"additionalProperties\": "
			       "{\"type\": \"string\"}}");
		break;
	case CK_ENUM: {
		json_object *e = json_object_new_array();
		for (int i = 0; f->names[i]; i++)
			json_object_array_add(e, json_object_new_string(f->names[i]));
		o = json_object_new_object();
		json_object_object_add(o, "enum", e);
		json_object_object_add(o, "default", json_object_new_string(f->names[f->def]));
		break;
	}
	case CK_PORTS:
		o = parse_json(
			"{\"type\": [\"array\", \"null\"], \"items\": {\"type\": \"integer\", "
			"\"minimum\": 0, \"maximum\": 65535}}");
		break;
	case CK_PAIRS:
		o = parse_json(
			"{\"type\": [\"array\", \"null\"], \"items\": {\"type\": \"array\", "
			"\"minItems\": 2, \"maxItems\": 2, \"items\": {\"type\": \"integer\", "
			"\"minimum\": 0, \"maximum\": 65535}}}");
		break;
	case CK_JSON:
		o = parse_json(f->flags & FL_ARRAY    ? "{\"type\": [\"array\", \"null\"]}"
			       : f->flags & FL_OBJECT ? "{\"type\": [\"object\", \"null\"]}"
						      : "{}");
		if (f->def_str)
			json_object_object_add(o, "default", parse_json(f->def_str));
		break;
	case CK_OBJECT:
		o = table_schema(f->sub);
		break;
	case CK_CUSTOM:
		o = parse_json(f->custom->schema);
		break;
	}
	if (f->desc || f->ignored) {
		const char *d = f->desc ? f->desc : "";
		char *s = f->ignored ? xasprintf("%s%sIgnored by podenv: %s.", d, *d ? " " : "",
						 f->ignored)
				     : xstrdup(d);
		json_object_object_add(o, "description", json_object_new_string(s));
		free(s);
	}
	return o;
}

static json_object *table_schema(const struct cfg_table *t)
{
	json_object *o = json_object_new_object(), *props = json_object_new_object();

	json_object_object_add(o, "type", json_object_new_string("object"));
	json_object_object_add(o, "additionalProperties", json_object_new_boolean(false));
	for (size_t i = 0; i < t->n; i++)
		json_object_object_add(props, t->fields[i].name, field_schema(&t->fields[i]));
	json_object_object_add(o, "properties", props);
	if (t->short_schema) {
		json_object *any = parse_json(t->short_schema), *w = json_object_new_object();
		json_object_array_add(any, o);
		json_object_array_add(any, parse_json("{\"type\": \"null\"}"));
		json_object_object_add(w, "anyOf", any);
		return w;
	}
	return o;
}

char *cfg_schema_json(void)
{
	json_object *t = table_schema(&cfg_root_table), *o = json_object_new_object();
	char *s;

	json_object_object_add(o, "$schema",
			       json_object_new_string("http://json-schema.org/draft-07/schema#"));
	json_object_object_add(o, "title",
			       json_object_new_string("podenv / mirrord configuration"));
	json_object_object_foreach(t, k, v) json_object_object_add(o, k, json_object_get(v));
	json_object_put(t);
	s = xasprintf("%s\n", json_object_to_json_string_ext(
				      o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
						 JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return s;
}
