/* The typed podenv configuration: mirrord's configuration format, read
 * unchanged (shared/seed/mirrord-config.txt plus the newer fields of
 * research/mirrord.md §6.2).
 *
 * cfg_load() finds the file (-f, MIRRORD_CONFIG_FILE, .mirrord/mirrord.json),
 * renders the Tera-template subset, parses JSON (json-c) or YAML (libyaml)
 * into one tree, maps it onto `struct cfg` with every default filled and
 * every shortened form normalised, then applies environment variables and
 * command-line flags (which act as those variables): env > file > default.
 * Every error names the JSON path and what was expected.
 *
 * `struct cfg` is plain read-only data once loaded: any thread may read it
 * and call the matching functions below concurrently (they allocate their
 * own match state). Strings are NUL-terminated, owned by the cfg and freed
 * by cfg_free(); a NULL `char *` means "not set". Lists are (n, v) pairs.
 */
#ifndef PODENV_CONFIG_CONFIG_H
#define PODENV_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* An optional boolean: CFG_UNSET when neither file nor env gave one. */
enum cfg_tristate {
	CFG_UNSET = -1,
	CFG_FALSE = 0,
	CFG_TRUE = 1,
};

struct cfg_optint {
	bool set;
	int64_t value;
};

struct cfg_strv {
	size_t n;
	char **v; /* n entries, then NULL */
};

/* An ordered string → string map (file order). */
struct cfg_strmap {
	size_t n;
	char **keys;
	char **values;
};

/* A compiled PCRE2 pattern; opaque. */
struct cfg_regex;

/* A list of regular expressions compiled once (PCRE2, JIT when available). */
struct cfg_patterns {
	size_t n;
	char **src;	       /* the patterns as written */
	struct cfg_regex **re; /* compiled, same order */
};

/* Ordered (regex → replacement) pairs, as feature.fs.mapping and
 * feature.env.mapping. */
struct cfg_mapping {
	size_t n;
	char **pattern;
	char **replace;
	struct cfg_regex **re;
};

struct cfg_ports {
	bool set; /* false: not given (distinct from an empty list) */
	size_t n;
	uint16_t *v;
};

struct cfg_port_pair {
	uint16_t local;
	uint16_t remote; /* for listen_ports: the port really bound locally */
};

struct cfg_port_pairs {
	size_t n;
	struct cfg_port_pair *v;
};

/* --- target ------------------------------------------------------------ */

enum cfg_target_kind {
	CFG_TARGET_NONE = 0, /* targetless */
	CFG_TARGET_POD,
	CFG_TARGET_DEPLOYMENT,
	CFG_TARGET_ROLLOUT,
	CFG_TARGET_JOB,
	CFG_TARGET_CRONJOB,
	CFG_TARGET_STATEFULSET,
	CFG_TARGET_SERVICE,
	CFG_TARGET_REPLICASET,
	CFG_TARGET_LABEL,
	CFG_TARGET_CONTAINER,	  /* container/NAME (older mirrord form) */
	CFG_TARGET_CONTAINERNAME, /* containername/NAME */
	CFG_TARGET_PID,		  /* podenv extension: pid/PID, a local process */
};

struct cfg_target {
	enum cfg_target_kind kind;
	char *name;		  /* workload or container name; NULL for NONE, LABEL, PID */
	char *container;	  /* the container inside the pod, or NULL */
	struct cfg_strmap labels; /* CFG_TARGET_LABEL: k=v selectors */
	int pid;		  /* CFG_TARGET_PID */
	char *namespace;	  /* NULL: the kube context's namespace */
};

/* --- agent ------------------------------------------------------------- */

struct cfg_agent_dns {
	struct cfg_optint timeout;
	struct cfg_optint attempts;
};

struct cfg_agent {
	char *log_level;
	bool json_log;
	char *namespace;
	char *image; /* "registry:tag"; object form normalised to this */
	char *image_pull_policy;
	char *image_pull_secrets; /* JSON text of the list, or NULL */
	int64_t ttl;
	bool ephemeral;
	int64_t communication_timeout;
	int64_t startup_timeout;
	char *network_interface;
	bool flush_connections;
	struct cfg_strv disabled_capabilities;
	char *tolerations; /* JSON text */
	char *resources;   /* JSON text */
	bool check_out_of_pods;
	bool privileged;
	bool external_ip_fix;
	int nftables; /* enum cfg_tristate */
	struct cfg_agent_dns dns;
	struct cfg_strmap labels;
	struct cfg_strmap annotations;
	struct cfg_strmap node_selector;
	char *service_account;
	char *priority_class;
	char *metrics;
	bool exclude_from_mesh;
	bool inject_headers;
	bool override_cache_control;
	int64_t max_body_buffer_size;
	int64_t max_body_buffer_timeout;
	int64_t http_detection_timeout;
	char *security_context;	     /* JSON text */
	int clean_iptables_on_start; /* enum cfg_tristate */
	bool disable_mesh_sidecar_injection;
	int64_t jaq_time_limit;
};

struct cfg_container {
	char *cli_image;
	struct cfg_strv cli_extra_args;
	bool cli_prevent_cleanup;
	char *cli_image_lib_path;
	char *override_host_ip;
	bool host_gateway_detection;
	char *cli_tls_path;
	char *platform;
};

/* --- feature.env -------------------------------------------------------- */

struct cfg_env {
	struct cfg_strv include; /* wildcard (* ?) names; empty = all */
	struct cfg_strv exclude; /* env: false normalises to exclude ["*"] */
	struct cfg_strmap override;
	int load_from_process; /* enum cfg_tristate */
	struct cfg_strv unset;
	char *env_file;
	struct cfg_mapping mapping; /* regex on the name → new value */
};

/* --- feature.fs ---------------------------------------------------------- */

enum cfg_fs_mode {
	CFG_FS_LOCAL = 0,
	CFG_FS_LOCALWITHOVERRIDES,
	CFG_FS_READ,
	CFG_FS_WRITE,
};

struct cfg_fs {
	enum cfg_fs_mode mode;
	struct cfg_patterns read_write; /* all four case-insensitive */
	struct cfg_patterns read_only;
	struct cfg_patterns local;
	struct cfg_patterns not_found;
	struct cfg_mapping mapping; /* case-insensitive */
	int64_t readonly_file_buffer;
};

/* --- feature.network ----------------------------------------------------- */

enum cfg_incoming_mode {
	CFG_INCOMING_OFF = 0,
	CFG_INCOMING_MIRROR,
	CFG_INCOMING_STEAL,
};

enum cfg_concurrent_steal {
	CFG_STEAL_ABORT = 0,
	CFG_STEAL_CONTINUE,
	CFG_STEAL_OVERRIDE,
};

enum cfg_http_kind {
	CFG_HTTP_NONE = 0,
	CFG_HTTP_HEADER,    /* value: regex on "Name: value", case-insensitive */
	CFG_HTTP_PATH,	    /* value: regex on the path, then path+query, case-insensitive */
	CFG_HTTP_METHOD,    /* value: method name, case-insensitive */
	CFG_HTTP_HEADER_JQ, /* value: jq program (not compiled here) */
	CFG_HTTP_BODY,	    /* value: JSONPath query, re: regex on the result */
	CFG_HTTP_ALL_OF,    /* sub[0..nsub) must all match */
	CFG_HTTP_ANY_OF,    /* one of sub[0..nsub) must match */
};

struct cfg_http_filter {
	enum cfg_http_kind kind;
	char *value;
	struct cfg_regex *re; /* HEADER, PATH, BODY */
	char *matches;	      /* BODY: the regex source of re */
	size_t nsub;
	struct cfg_http_filter *sub;
	struct cfg_ports ports; /* top level only; unset: [80, 8080] (launcher/incoming.c) */
};

struct cfg_incoming {
	enum cfg_incoming_mode mode;
	struct cfg_http_filter http_filter;
	struct cfg_port_pairs port_mapping; /* local → remote */
	bool ignore_localhost;
	struct cfg_ports ignore_ports;
	struct cfg_port_pairs listen_ports; /* requested → actual */
	struct cfg_ports ports;		    /* unset = every port */
	enum cfg_concurrent_steal on_concurrent_steal;
	char *tls_delivery; /* JSON text */
	char *https_delivery;
};

enum cfg_proto {
	CFG_PROTO_ANY = 0,
	CFG_PROTO_TCP,
	CFG_PROTO_UDP,
};

enum cfg_addr_kind {
	CFG_ADDR_ANY = 0, /* only a port (or nothing): any address */
	CFG_ADDR_NAME,	  /* a host name, resolved at match time */
	CFG_ADDR_IP,	  /* one address */
	CFG_ADDR_SUBNET,  /* address/prefix */
};

/* One entry of an outgoing or DNS filter:
 * [protocol://][name|address|subnet/mask][:port]. */
struct cfg_net_entry {
	char *text; /* as written */
	enum cfg_proto proto;
	enum cfg_addr_kind kind;
	char *name;	  /* CFG_ADDR_NAME */
	int family;	  /* AF_INET or AF_INET6 for IP and SUBNET */
	uint8_t addr[16]; /* network order; first 4 bytes for IPv4 */
	unsigned prefix;  /* SUBNET: prefix length; IP: 32 or 128 */
	uint16_t port;	  /* 0 = any port */
};

enum cfg_filter_side {
	CFG_FILTER_NONE = 0, /* no filter: everything remote */
	CFG_FILTER_LOCAL,    /* matching → local, the rest remote */
	CFG_FILTER_REMOTE,   /* matching → remote, the rest local */
};

struct cfg_net_filter {
	enum cfg_filter_side side;
	size_t n;
	struct cfg_net_entry *v;
};

struct cfg_outgoing {
	bool tcp;
	bool udp;
	bool ignore_localhost;
	struct cfg_net_filter filter;
	struct cfg_patterns unix_streams; /* case-sensitive */
};

struct cfg_dns {
	bool enabled;
	struct cfg_net_filter filter; /* entries never carry a protocol */
};

struct cfg_network {
	struct cfg_incoming incoming;
	struct cfg_outgoing outgoing;
	struct cfg_dns dns;
	bool ipv6;
};

struct cfg_copy_target {
	bool enabled;
	bool scale_down;
	struct cfg_strv exclude_containers;
	struct cfg_strv exclude_init_containers;
};

struct cfg_magic {
	bool aws;
	bool auto_mount;
	bool turbo;
};

struct cfg_feature {
	struct cfg_env env;
	struct cfg_fs fs;
	struct cfg_network network;
	bool hostname;
	struct cfg_copy_target copy_target;
	char *split_queues; /* JSON text; operator only */
	char *db_branches;  /* JSON text; operator only */
	char *preview;	    /* JSON text; operator only */
	struct cfg_magic magic;
};

struct cfg_internal_proxy {
	int64_t start_idle_timeout;
	int64_t idle_timeout;
	int64_t socket_timeout;
	int64_t ping_interval;
	char *log_level;
	char *log_destination;
	bool json_log;
	int64_t process_logging_interval;
};

struct cfg_external_proxy {
	bool tls_enable;
	int64_t start_idle_timeout;
	int64_t idle_timeout;
	char *log_level;
	char *log_destination;
	bool json_log;
	char *host_ip;
};

struct cfg_latency {
	int64_t transmit_delay;
	int64_t receive_delay;
};

struct cfg_experimental {
	bool tcp_ping4_mock;
	bool trust_any_certificate;
	bool enable_exec_hooks_linux;
	bool hide_ipv6_interfaces;
	int disable_reuseaddr; /* enum cfg_tristate */
	bool use_dev_null;
	int64_t idle_local_http_connection_timeout;
	bool ignore_system_proxy_config;
	bool browser_extension_config;
	char *sip_log_destination;
	bool non_blocking_tcp_connect;
	bool dlopen_cgo;
	struct cfg_latency latency;
	char *applev; /* JSON text */
	bool sip_utils;
	int go_asmcgocall; /* enum cfg_tristate */
	int guard_std_fds; /* enum cfg_tristate */
};

struct cfg_startup_retry {
	int64_t min_ms;
	int64_t max_ms;
	int64_t max_retries;
};

struct cfg_ci {
	char *output_dir;
};

struct cfg {
	int accept_invalid_certificates; /* enum cfg_tristate; unset: the kubeconfig's */
	struct cfg_strv skip_processes;
	bool skip_build_tools;
	struct cfg_strv skip_extra_build_tools;
	struct cfg_target target;
	char *connect_tcp; /* "IP:PORT" (validated) or NULL */
	struct cfg_agent agent;
	struct cfg_container container;
	struct cfg_feature feature;
	struct cfg_internal_proxy internal_proxy;
	struct cfg_external_proxy external_proxy;
	struct cfg_experimental experimental;
	int operator; /* enum cfg_tristate */
	int multi_cluster;
	bool api;
	char *profile;
	char *kubeconfig;
	char *kube_context;
	struct cfg_strv sip_binaries;
	struct cfg_strv skip_sip;
	bool telemetry;
	bool use_proxy;
	char *key; /* the session key: CLI/env, file, else 5 random hex digits */
	char *traceparent;
	char *baggage;
	struct cfg_startup_retry startup_retry;
	struct cfg_ci ci;

	/* Where the configuration came from: a path, "-" for stdin, or NULL
	 * when no file was used (defaults + env only). */
	char *source_path;
	/* One "path: field is ignored: why" line per field that was given but
	 * that podenv cannot honour, and other non-fatal remarks. */
	struct cfg_strv warnings;
};

/* --- loading ------------------------------------------------------------ */

/* Where cfg_load() reads from. Zero-initialise, then set what applies.
 * Borrowed pointers, except `overrides`, which cfg_source_flag_parse()
 * fills and cfg_source_done() frees. */
struct cfg_source {
	const char *path; /* -f: a file, "-" = stdin; NULL: discover */
	const char *text; /* or the configuration text itself (path names it) */
	size_t text_len;
	const char *const *env; /* "NAME=VALUE" list, NULL-terminated; NULL: environ */
	const char *cwd;	/* where to look for .mirrord/mirrord.json; NULL: "." */
	bool no_discover;	/* don't look for MIRRORD_CONFIG_FILE / .mirrord/ */
	/* Command-line flags turned into "NAME=VALUE" environment overrides;
	 * they take precedence over env. */
	size_t n_overrides;
	char **overrides;
};

/* Frees what cfg_source_flag_parse() allocated; the source is reusable. */
void cfg_source_done(struct cfg_source *src);

/* Parses one `mirrord exec`-style configuration flag at argv[*idx]
 * (-f/--config-file, -t/--target, -n/--target-namespace, --steal,
 * --fs-mode …; the full list is cfg_source_flags_help()). Accepts "--flag
 * value", "--flag=value" and "-t value". Returns 1 and advances *idx past
 * what it consumed when it was a configuration flag, 0 when argv[*idx] is
 * not one (the caller handles it), -EINVAL with reterr set when its value
 * is missing or invalid. */
int cfg_source_flag_parse(struct cfg_source *src, int argc, char **argv, int *idx,
			  struct err *reterr);

/* A multi-line help text listing the flags above. Static storage. */
const char *cfg_source_flags_help(void);

/* Loads, validates and resolves the configuration. On success *ret is a
 * new cfg (caller frees with cfg_free) and 0 is returned. On failure
 * returns -EINVAL (bad configuration), -ENOENT/-EACCES/… (unreadable file)
 * or -ENOTSUP (TOML), with reterr->msg = "<json.path>: <what was
 * expected>" or "<file>:<line>:<col>: <message>". Does no I/O beyond
 * reading the configuration file (and .git/HEAD for `git_branch`). */
int cfg_load(const struct cfg_source *src, struct cfg **ret, struct err *reterr);

/* Frees a cfg; NULL is fine. */
void cfg_free(struct cfg *cfg);

/* YAML (one document) onto a json-c tree, as the configuration is read;
 * other YAML readers (kubeconfig) share it. Plain scalars are typed
 * (null, booleans, numbers, strings) unless flags has CFG_YAML_STRINGS
 * (then only null is special: "1.10" stays a string). Anchors and aliases
 * are refused. *ret is NULL for an empty document; caller puts it.
 * Errors: -EINVAL, reterr "NAME:LINE:COL: invalid YAML: …". */
#define CFG_YAML_STRINGS 0x1u
struct json_object;
int cfg_yaml_to_json(const char *text, size_t len, const char *name, unsigned flags,
		     struct json_object **ret, struct err *reterr);

/* --- matching ------------------------------------------------------------ */

/* Index of the first pattern of p that matches somewhere in s[0..len)
 * (patterns anchor themselves), or -ENOENT. */
int cfg_patterns_match(const struct cfg_patterns *p, const char *s, size_t len);

/* True when some string that starts with prefix[0..len) could be matched
 * by a pattern of p (PCRE2 partial matching); used to prove that a whole
 * subtree is routed one way. */
bool cfg_patterns_may_match_prefix(const struct cfg_patterns *p, const char *prefix, size_t len);

/* Index of the first pattern of p that matches EVERY string starting with
 * prefix[0..len), or -ENOENT. Proved, conservatively, by a complete match
 * under PCRE2_PARTIAL_HARD: the match never looked past the end of the
 * prefix (a `$`, a lookahead or a greedy `.*` reaching the end counts as
 * looking), so no suffix can change it. A pattern that matches every
 * extension in a way this cannot see is reported as not matching. */
int cfg_patterns_must_match_prefix(const struct cfg_patterns *p, const char *prefix, size_t len);

/* Compiles src[0..n) into p (caseless: PCRE2_CASELESS). On error returns
 * -EINVAL with reterr = "<what>[i]: <PCRE2 message> at offset N". Free
 * with cfg_patterns_done(). */
int cfg_patterns_init(struct cfg_patterns *p, const char *const *src, size_t n, bool caseless,
		      const char *what, struct err *reterr);
void cfg_patterns_done(struct cfg_patterns *p);

/* Compiles one PCRE2 pattern exactly as the configuration's own are (the
 * HTTP filters use caseless = true), JIT when available. On success *ret
 * is new (caller frees with cfg_regex_free, which accepts NULL) and 0 is
 * returned; a bad pattern gives -EINVAL with reterr = "<path>: invalid
 * regular expression …". For code that receives a pattern from elsewhere
 * (the agent decoding a SUBSCRIBE filter). Any thread. */
int cfg_regex_new(const char *src, bool caseless, struct cfg_regex **ret, const char *path,
		  struct err *reterr);
void cfg_regex_free(struct cfg_regex *re);

/* Does regex re match somewhere in s[0..len)? */
bool cfg_regex_match(const struct cfg_regex *re, const char *s, size_t len);

/* Applies the first entry of m whose pattern matches path: the first match
 * is replaced by the replacement with `$name`, `${name}`, `$1`, `${1}`
 * expanded (Rust regex syntax: `$$` is a literal `$`, an unknown group is
 * empty). Returns 1 with *ret = the new string (caller frees), 0 when no
 * entry matched (*ret untouched). */
int cfg_mapping_apply(const struct cfg_mapping *m, const char *path, char **ret);

/* Parses one filter entry (allow_proto: outgoing form with "tcp://"…).
 * Fills *ret (free with cfg_net_entry_done). -EINVAL + reterr on error. */
int cfg_net_entry_parse(const char *text, bool allow_proto, struct cfg_net_entry *ret,
			struct err *reterr);
void cfg_net_entry_done(struct cfg_net_entry *e);

/* Does an address entry (ANY, IP or SUBNET) match this destination?
 * proto is TCP or UDP; addr is 4 or 16 bytes per family; NAME entries
 * never match here (the caller resolves them and compares). */
bool cfg_net_entry_match(const struct cfg_net_entry *e, enum cfg_proto proto, int family,
			 const void *addr, uint16_t port);

/* --- names and output ----------------------------------------------------- */

const char *cfg_fs_mode_name(enum cfg_fs_mode m);
const char *cfg_incoming_mode_name(enum cfg_incoming_mode m);
const char *cfg_target_kind_name(enum cfg_target_kind k);

/* The target as mirrord writes it: "pod/NAME[/container/C]", "targetless"…
 * Caller frees. */
char *cfg_target_format(const struct cfg_target *t);

/* The fully resolved configuration as canonical JSON (every field, every
 * default, fixed key order, 2-space indent, trailing newline). It loads
 * back to the same cfg. Caller frees. */
char *cfg_format_json(const struct cfg *cfg);

/* A JSON Schema (draft-07) of the format, for editors. Caller frees. */
char *cfg_schema_json(void);

#endif
