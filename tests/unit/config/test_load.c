/* cfg_load(): the reference examples, every default, every shortened form,
 * env and command-line overrides, discovery and formats. */
#include <arpa/inet.h>
#include <sys/socket.h>

#include "config/config.h"
#include "tests/unit/tap.h"

static const char *const no_env[] = {NULL};

static struct cfg *load_env(const char *text, const char *const *env)
{
	struct cfg_source src = {.text = text,
				 .text_len = strlen(text),
				 .env = env,
				 .no_discover = true,
				 .path = "test.json"};
	struct err e = {0};
	struct cfg *c = NULL;
	int r = cfg_load(&src, &c, &e);

	if (r < 0)
		TAP_FAIL("cfg_load failed: %d %s", r, e.msg);
	REQUIRE(r == 0 && c);
	return c;
}

static struct cfg *load(const char *text)
{
	return load_env(text, no_env);
}

static struct cfg *load_file(const char *path, const char *const *env)
{
	struct cfg_source src = {.path = path, .env = env};
	struct err e = {0};
	struct cfg *c = NULL;
	int r = cfg_load(&src, &c, &e);

	if (r < 0)
		TAP_FAIL("cfg_load(%s) failed: %d %s", path, r, e.msg);
	REQUIRE(r == 0 && c);
	return c;
}

static bool has_warning(const struct cfg *c, const char *needle)
{
	for (size_t i = 0; i < c->warnings.n; i++)
		if (strstr(c->warnings.v[i], needle))
			return true;
	return false;
}

TEST(example_basic)
{
	struct cfg *c = load_file("tests/unit/config/data/basic.json", no_env);

	CHECK_INT(c->target.kind, ==, CFG_TARGET_POD);
	CHECK_STR(c->target.name, "bear-pod");
	CHECK(c->target.container == NULL);
	CHECK_INT(c->feature.fs.mode, ==, CFG_FS_READ);
	CHECK_INT(c->feature.env.include.n, ==, 0);
	CHECK_INT(c->feature.env.exclude.n, ==, 0);
	CHECK_INT(c->feature.network.incoming.mode, ==, CFG_INCOMING_MIRROR);
	CHECK(c->feature.network.outgoing.tcp && c->feature.network.outgoing.udp);
	CHECK(c->feature.network.dns.enabled);
	CHECK_STR(c->source_path, "tests/unit/config/data/basic.json");
	CHECK_INT(c->warnings.n, ==, 0);
	cfg_free(c);
}

TEST(example_templated_target_set)
{
	static const char *const env[] = {"TARGET=deployment/api/container/main", NULL};
	struct cfg *c = load_file("tests/unit/config/data/templated.json", env);

	CHECK_INT(c->target.kind, ==, CFG_TARGET_DEPLOYMENT);
	CHECK_STR(c->target.name, "api");
	CHECK_STR(c->target.container, "main");
	cfg_free(c);
}

TEST(example_templated_target_unset)
{
	struct cfg *c = load_file("tests/unit/config/data/templated.json", no_env);

	CHECK_INT(c->target.kind, ==, CFG_TARGET_POD);
	CHECK_STR(c->target.name, "fallback");
	CHECK_INT(c->feature.fs.mode, ==, CFG_FS_READ);
	cfg_free(c);
}

TEST(example_complete)
{
	struct cfg *c = load_file("tests/unit/config/data/complete.json", no_env);
	const struct cfg_network *n = &c->feature.network;

	CHECK_INT(c->accept_invalid_certificates, ==, CFG_FALSE);
	CHECK_INT(c->skip_processes.n, ==, 1);
	CHECK_STR(c->skip_processes.v[0], "ide-debugger");
	CHECK_STR(c->target.name, "bear-pod");
	CHECK_STR(c->target.namespace, "default");
	CHECK(c->connect_tcp == NULL);
	CHECK_STR(c->agent.log_level, "info");
	CHECK(!c->agent.json_log);
	CHECK_INT(c->agent.labels.n, ==, 1);
	CHECK_STR(c->agent.labels.keys[0], "user");
	CHECK_STR(c->agent.labels.values[0], "meow");
	CHECK_STR(c->agent.annotations.keys[0], "cats.io/inject");
	CHECK_STR(c->agent.namespace, "default");
	CHECK_STR(c->agent.image, "ghcr.io/metalbear-co/mirrord:latest");
	CHECK_STR(c->agent.image_pull_policy, "IfNotPresent");
	CHECK_STR(c->agent.image_pull_secrets, "[{\"secret-key\":\"secret\"}]");
	CHECK_INT(c->agent.ttl, ==, 30);
	CHECK(!c->agent.ephemeral);
	CHECK_INT(c->agent.communication_timeout, ==, 30);
	CHECK_INT(c->agent.startup_timeout, ==, 360);
	CHECK_STR(c->agent.network_interface, "eth0");
	CHECK(c->agent.flush_connections);
	CHECK_INT(c->feature.env.include.n, ==, 2);
	CHECK_STR(c->feature.env.include.v[1], "PUBLIC_ENV");
	CHECK_STR(c->feature.env.exclude.v[0], "DATABASE_PASSWORD");
	CHECK_STR(c->feature.env.override.keys[0], "DATABASE_CONNECTION");
	CHECK_STR(c->feature.env.override.values[1], "panda");
	CHECK_INT(c->feature.fs.mode, ==, CFG_FS_WRITE);
	CHECK_INT(c->feature.fs.read_write.n, ==, 1);
	CHECK_INT(c->feature.fs.read_only.n, ==, 2);
	CHECK_INT(c->feature.fs.local.n, ==, 2);
	CHECK_INT(cfg_patterns_match(&c->feature.fs.read_only, "/a/B.YAML", 9), ==, 0);
	CHECK_INT(cfg_patterns_match(&c->feature.fs.local, "/x/app.mjs", 10), ==, 1);
	CHECK_INT(n->incoming.mode, ==, CFG_INCOMING_STEAL);
	CHECK_INT(n->incoming.http_filter.kind, ==, CFG_HTTP_HEADER);
	CHECK_STR(n->incoming.http_filter.value, "host: api\\..+");
	CHECK(cfg_regex_match(n->incoming.http_filter.re, "Host: API.example", 17));
	CHECK(!n->incoming.http_filter.ports.set);
	CHECK_INT(n->incoming.port_mapping.n, ==, 1);
	CHECK_INT(n->incoming.port_mapping.v[0].local, ==, 7777);
	CHECK_INT(n->incoming.port_mapping.v[0].remote, ==, 8888);
	CHECK(!n->incoming.ignore_localhost);
	CHECK_INT(n->incoming.ignore_ports.n, ==, 2);
	CHECK_INT(n->incoming.ignore_ports.v[1], ==, 10000);
	CHECK(!n->incoming.ports.set);
	CHECK(n->outgoing.tcp && n->outgoing.udp && !n->outgoing.ignore_localhost);
	CHECK_INT(n->outgoing.filter.side, ==, CFG_FILTER_LOCAL);
	CHECK_INT(n->outgoing.filter.n, ==, 4);
	CHECK_INT(n->outgoing.filter.v[0].proto, ==, CFG_PROTO_TCP);
	CHECK_INT(n->outgoing.filter.v[0].kind, ==, CFG_ADDR_SUBNET);
	CHECK_INT(n->outgoing.filter.v[0].prefix, ==, 24);
	CHECK_INT(n->outgoing.filter.v[0].port, ==, 1337);
	CHECK_INT(n->outgoing.filter.v[1].kind, ==, CFG_ADDR_SUBNET);
	CHECK_INT(n->outgoing.filter.v[2].kind, ==, CFG_ADDR_NAME);
	CHECK_STR(n->outgoing.filter.v[2].name, "google.com");
	CHECK_INT(n->outgoing.filter.v[3].kind, ==, CFG_ADDR_ANY);
	CHECK_INT(n->outgoing.filter.v[3].port, ==, 53);
	CHECK_INT(n->outgoing.unix_streams.n, ==, 1);
	CHECK_INT(cfg_patterns_match(&n->outgoing.unix_streams, "/run/bear.sock", 14), ==, 0);
	CHECK(n->dns.enabled);
	CHECK_INT(n->dns.filter.side, ==, CFG_FILTER_LOCAL);
	CHECK_INT(n->dns.filter.n, ==, 3); /* google.com already listed: not copied twice */
	CHECK(c->feature.copy_target.enabled);
	CHECK(!c->feature.copy_target.scale_down);
	CHECK_INT(c->operator, ==, CFG_TRUE);
	CHECK_STR(c->kubeconfig, "~/.kube/config");
	CHECK_STR(c->sip_binaries.v[0], "bash");
	CHECK(c->telemetry);
	CHECK_STR(c->kube_context, "my-cluster");
	/* Fields podenv cannot honour: one warning each. */
	CHECK(has_warning(c, "telemetry: field is ignored"));
	CHECK(has_warning(c, "operator: field is ignored"));
	CHECK(has_warning(c, "feature.copy_target: field is ignored"));
	CHECK(has_warning(c, "sip_binaries: field is ignored: it applies to macOS only"));
	/* skip_processes is honoured (vfs serves those processes locally). */
	CHECK(!has_warning(c, "skip_processes"));
	CHECK_INT(c->warnings.n, ==, 5);
	cfg_free(c);
}

TEST(defaults_empty)
{
	struct cfg *c = load("{}");

	CHECK_INT(c->accept_invalid_certificates, ==, CFG_UNSET);
	CHECK(c->skip_build_tools);
	CHECK_INT(c->target.kind, ==, CFG_TARGET_NONE);
	CHECK(c->target.namespace == NULL);
	CHECK_STR(c->agent.log_level, "info");
	CHECK_STR(c->agent.image, "localhost/podenv-agent:0.1.0");
	CHECK_STR(c->agent.image_pull_policy, "IfNotPresent");
	CHECK_INT(c->agent.ttl, ==, 1);
	CHECK_INT(c->agent.startup_timeout, ==, 60);
	CHECK_INT(c->agent.communication_timeout, ==, 30);
	CHECK(c->agent.flush_connections);
	CHECK(!c->agent.privileged);
	CHECK(c->agent.check_out_of_pods);
	CHECK_STR(c->agent.tolerations, "[{\"operator\":\"Exists\"}]");
	CHECK_CONTAINS(c->agent.resources, "\"memory\":\"100Mi\"");
	CHECK_INT(c->agent.nftables, ==, CFG_UNSET);
	CHECK(!c->agent.dns.timeout.set);
	CHECK_INT(c->agent.max_body_buffer_size, ==, 65535);
	CHECK_INT(c->agent.http_detection_timeout, ==, 2);
	CHECK_STR(c->container.cli_image_lib_path, "/opt/mirrord/lib/libmirrord_layer.so");
	CHECK_INT(c->feature.fs.mode, ==, CFG_FS_READ);
	CHECK_INT(c->feature.fs.readonly_file_buffer, ==, 128000);
	CHECK_INT(c->feature.network.incoming.mode, ==, CFG_INCOMING_MIRROR);
	CHECK_INT(c->feature.network.incoming.on_concurrent_steal, ==, CFG_STEAL_ABORT);
	CHECK_INT(c->feature.network.incoming.http_filter.kind, ==, CFG_HTTP_NONE);
	CHECK(c->feature.network.outgoing.tcp);
	CHECK(c->feature.network.outgoing.udp);
	CHECK(!c->feature.network.outgoing.ignore_localhost);
	CHECK_INT(c->feature.network.outgoing.filter.side, ==, CFG_FILTER_NONE);
	CHECK(c->feature.network.dns.enabled);
	CHECK(c->feature.network.ipv6);
	CHECK(c->feature.hostname);
	CHECK(!c->feature.copy_target.enabled);
	CHECK(c->feature.magic.aws && c->feature.magic.auto_mount && c->feature.magic.turbo);
	CHECK_INT(c->internal_proxy.start_idle_timeout, ==, 60);
	CHECK_INT(c->internal_proxy.idle_timeout, ==, 5);
	CHECK_INT(c->external_proxy.idle_timeout, ==, 5);
	CHECK(c->experimental.tcp_ping4_mock);
	CHECK(c->experimental.use_dev_null);
	CHECK_INT(c->experimental.idle_local_http_connection_timeout, ==, 3000);
	CHECK_INT(c->operator, ==, CFG_UNSET);
	CHECK(c->telemetry && c->use_proxy && c->api);
	CHECK_INT(c->skip_sip.n, ==, 1);
	CHECK_STR(c->skip_sip.v[0], "git");
	CHECK(c->key && strlen(c->key) == 5);
	CHECK_INT(c->startup_retry.min_ms, ==, 500);
	CHECK_INT(c->startup_retry.max_ms, ==, 5000);
	CHECK_INT(c->startup_retry.max_retries, ==, 2);
	CHECK_STR(c->ci.output_dir, "/tmp/mirrord/");
	CHECK_INT(c->warnings.n, ==, 0);
	cfg_free(c);
}

TEST(defaults_no_file)
{
	struct cfg_source src = {.env = no_env, .no_discover = true};
	struct err e = {0};
	struct cfg *c = NULL;

	CHECK_OK(cfg_load(&src, &c, &e));
	REQUIRE(c);
	CHECK(c->source_path == NULL);
	CHECK_INT(c->feature.fs.mode, ==, CFG_FS_READ);
	cfg_free(c);
}

TEST(short_env)
{
	struct cfg *c = load("{\"feature\": {\"env\": false}}");
	CHECK_INT(c->feature.env.exclude.n, ==, 1);
	CHECK_STR(c->feature.env.exclude.v[0], "*");
	cfg_free(c);
	c = load("{\"feature\": {\"env\": true}}");
	CHECK_INT(c->feature.env.exclude.n, ==, 0);
	cfg_free(c);
	c = load("{\"feature\": {\"env\": {\"include\": [\"A\", \"B;C\"], \"unset\": \"X;Y\", "
		 "\"env_file\": \".env\", \"mapping\": {\"^DB_(.*)$\": \"x\"}}}}");
	CHECK_INT(c->feature.env.include.n, ==, 3);
	CHECK_STR(c->feature.env.include.v[2], "C");
	CHECK_INT(c->feature.env.unset.n, ==, 2);
	CHECK_STR(c->feature.env.env_file, ".env");
	CHECK_INT(c->feature.env.mapping.n, ==, 1);
	cfg_free(c);
}

TEST(short_fs)
{
	static const struct {
		const char *text;
		enum cfg_fs_mode mode;
	} cases[] = {
		{"true", CFG_FS_READ},
		{"false", CFG_FS_LOCAL},
		{"\"read\"", CFG_FS_READ},
		{"\"write\"", CFG_FS_WRITE},
		{"\"local\"", CFG_FS_LOCAL},
		{"\"localwithoverrides\"", CFG_FS_LOCALWITHOVERRIDES},
		{"{\"mode\": \"write\"}", CFG_FS_WRITE},
		{"{}", CFG_FS_READ},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[256];
		struct cfg *c;
		snprintf(text, sizeof(text), "{\"feature\": {\"fs\": %s}}", cases[i].text);
		c = load(text);
		CHECK_INT(c->feature.fs.mode, ==, cases[i].mode);
		cfg_free(c);
	}
}

TEST(short_fs_lists)
{
	struct cfg *c = load(
		"{\"feature\": {\"fs\": {\"read_only\": \"^/etc/.\", \"local\": [\"a\", \"b\"], "
		"\"not_found\": \"\\\\.config/gcloud\", \"read_write\": [], "
		"\"mapping\": {\"^/home/(?<user>\\\\S+)/dev\": \"/srv/$user\"}, "
		"\"readonly_file_buffer\": 0}}}");
	const struct cfg_fs *fs = &c->feature.fs;

	CHECK_INT(fs->read_only.n, ==, 1);
	CHECK_INT(cfg_patterns_match(&fs->read_only, "/ETC/hosts", 10), ==, 0);
	CHECK_INT(fs->local.n, ==, 2);
	CHECK_INT(fs->not_found.n, ==, 1);
	CHECK_INT(fs->read_write.n, ==, 0);
	CHECK_INT(fs->mapping.n, ==, 1);
	CHECK_INT(fs->readonly_file_buffer, ==, 0);
	cfg_free(c);
}

TEST(short_network)
{
	struct cfg *c = load("{\"feature\": {\"network\": false}}");
	CHECK_INT(c->feature.network.incoming.mode, ==, CFG_INCOMING_OFF);
	CHECK(!c->feature.network.outgoing.tcp && !c->feature.network.outgoing.udp);
	CHECK(!c->feature.network.dns.enabled);
	cfg_free(c);
	c = load("{\"feature\": {\"network\": true}}");
	CHECK_INT(c->feature.network.incoming.mode, ==, CFG_INCOMING_MIRROR);
	CHECK(c->feature.network.dns.enabled);
	cfg_free(c);
}

TEST(short_incoming)
{
	static const struct {
		const char *text;
		enum cfg_incoming_mode mode;
	} cases[] = {
		{"true", CFG_INCOMING_MIRROR},	   {"false", CFG_INCOMING_OFF},
		{"\"steal\"", CFG_INCOMING_STEAL}, {"\"mirror\"", CFG_INCOMING_MIRROR},
		{"\"off\"", CFG_INCOMING_OFF},	   {"{\"mode\": \"steal\"}", CFG_INCOMING_STEAL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[256];
		struct cfg *c;
		snprintf(text, sizeof(text),
			 "{\"target\": \"pod/x\", \"feature\": {\"network\": {\"incoming\": %s}}}",
			 cases[i].text);
		c = load(text);
		CHECK_INT(c->feature.network.incoming.mode, ==, cases[i].mode);
		cfg_free(c);
	}
}

TEST(incoming_object)
{
	struct cfg *c = load(
		"{\"target\": \"pod/x\", \"feature\": {\"network\": {\"incoming\": {\"mode\": "
		"\"steal\", "
		"\"http_filter\": {\"path_filter\": \"^(?!/health/)\", \"ports\": [80, 8080]}, "
		"\"listen_ports\": [[80, 4480]], \"ports\": [80], \"ignore_localhost\": true, "
		"\"on_concurrent_steal\": \"override\"}}}}");
	const struct cfg_incoming *in = &c->feature.network.incoming;

	CHECK_INT(in->http_filter.kind, ==, CFG_HTTP_PATH);
	CHECK(cfg_regex_match(in->http_filter.re, "/api/x", 6));
	CHECK(!cfg_regex_match(in->http_filter.re, "/health/live", 12));
	CHECK(!cfg_regex_match(in->http_filter.re, "/HEALTH/live", 12)); /* case-insensitive */
	CHECK(in->http_filter.ports.set);
	CHECK_INT(in->http_filter.ports.n, ==, 2);
	CHECK_INT(in->listen_ports.v[0].local, ==, 80);
	CHECK_INT(in->listen_ports.v[0].remote, ==, 4480);
	CHECK(in->ports.set);
	CHECK_INT(in->ports.v[0], ==, 80);
	CHECK(in->ignore_localhost);
	CHECK_INT(in->on_concurrent_steal, ==, CFG_STEAL_OVERRIDE);
	CHECK(has_warning(c,
			  "on_concurrent_steal: field is ignored: it needs the mirrord operator"));
	cfg_free(c);
}

TEST(http_filter_composite)
{
	struct cfg *c =
		load("{\"feature\": {\"network\": {\"incoming\": {\"http_filter\": {\"any_of\": ["
		     "{\"header\": \"^User-Agent: (?!kube-probe)\"}, {\"path\": \"^/api\"}, "
		     "{\"method\": \"post\"}, {\"body\": \"json\", \"query\": \"$.a\", "
		     "\"matches\": \"^x\"}]}}}}}");
	const struct cfg_http_filter *f = &c->feature.network.incoming.http_filter;

	CHECK_INT(f->kind, ==, CFG_HTTP_ANY_OF);
	REQUIRE(f->nsub == 4);
	CHECK_INT(f->sub[0].kind, ==, CFG_HTTP_HEADER);
	CHECK(cfg_regex_match(f->sub[0].re, "user-agent: curl", 16));
	CHECK(!cfg_regex_match(f->sub[0].re, "User-Agent: kube-probe/1.29", 27));
	CHECK_INT(f->sub[1].kind, ==, CFG_HTTP_PATH);
	CHECK_INT(f->sub[2].kind, ==, CFG_HTTP_METHOD);
	CHECK_STR(f->sub[2].value, "post");
	CHECK_INT(f->sub[3].kind, ==, CFG_HTTP_BODY);
	CHECK_STR(f->sub[3].value, "$.a");
	cfg_free(c);
	c = load("{\"feature\": {\"network\": {\"incoming\": {\"http_filter\": {\"all_of\": ["
		 "{\"query\": \".x\"}, {\"method\": \"GET\"}]}}}}}");
	CHECK_INT(c->feature.network.incoming.http_filter.kind, ==, CFG_HTTP_ALL_OF);
	CHECK_INT(c->feature.network.incoming.http_filter.sub[0].kind, ==, CFG_HTTP_HEADER_JQ);
	cfg_free(c);
}

TEST(outgoing_and_dns)
{
	struct cfg *c = load("{\"feature\": {\"network\": {\"outgoing\": false, \"dns\": false}}}");
	CHECK(!c->feature.network.outgoing.tcp && !c->feature.network.outgoing.udp);
	CHECK(!c->feature.network.dns.enabled);
	cfg_free(c);
	c = load("{\"feature\": {\"network\": {\"outgoing\": {\"udp\": false, \"filter\": "
		 "{\"remote\": [\"udp://[fd00::1]:53\", \"db.svc:5432\"]}, \"unix_streams\": "
		 "[\"a\", \"b\"]}, "
		 "\"dns\": {\"filter\": {\"remote\": [\"my-service\"]}}}}}");
	CHECK(c->feature.network.outgoing.tcp && !c->feature.network.outgoing.udp);
	CHECK_INT(c->feature.network.outgoing.filter.side, ==, CFG_FILTER_REMOTE);
	CHECK_INT(c->feature.network.outgoing.filter.v[0].family, ==, AF_INET6);
	CHECK_INT(c->feature.network.outgoing.unix_streams.n, ==, 2);
	/* remote outgoing names extend an existing remote DNS filter */
	CHECK_INT(c->feature.network.dns.filter.n, ==, 2);
	CHECK_STR(c->feature.network.dns.filter.v[1].text, "db.svc:5432");
	cfg_free(c);
	/* local outgoing names create a local DNS filter */
	c = load("{\"feature\": {\"network\": {\"outgoing\": {\"filter\": {\"local\": "
		 "[\"tcp://db.local:5432\"]}}}}}");
	CHECK_INT(c->feature.network.dns.filter.side, ==, CFG_FILTER_LOCAL);
	CHECK_STR(c->feature.network.dns.filter.v[0].text, "db.local:5432");
	cfg_free(c);
}

TEST(target_forms)
{
	static const struct {
		const char *json;
		enum cfg_target_kind kind;
		const char *name, *container, *ns;
	} cases[] = {
		{"\"pod/p\"", CFG_TARGET_POD, "p", NULL, NULL},
		{"\"pod/p/container/c\"", CFG_TARGET_POD, "p", "c", NULL},
		{"\"deployment/d\"", CFG_TARGET_DEPLOYMENT, "d", NULL, NULL},
		{"\"deploy/d/container/c\"", CFG_TARGET_DEPLOYMENT, "d", "c", NULL},
		{"\"rollout/r\"", CFG_TARGET_ROLLOUT, "r", NULL, NULL},
		{"\"job/j\"", CFG_TARGET_JOB, "j", NULL, NULL},
		{"\"cronjob/j\"", CFG_TARGET_CRONJOB, "j", NULL, NULL},
		{"\"statefulset/s\"", CFG_TARGET_STATEFULSET, "s", NULL, NULL},
		{"\"service/s\"", CFG_TARGET_SERVICE, "s", NULL, NULL},
		{"\"replicaset/s\"", CFG_TARGET_REPLICASET, "s", NULL, NULL},
		{"\"container/c\"", CFG_TARGET_CONTAINER, "c", NULL, NULL},
		{"\"containername/c\"", CFG_TARGET_CONTAINERNAME, "c", NULL, NULL},
		{"\"targetless\"", CFG_TARGET_NONE, NULL, NULL, NULL},
		{"null", CFG_TARGET_NONE, NULL, NULL, NULL},
		{"{\"path\": \"pod/p\", \"namespace\": \"ns\"}", CFG_TARGET_POD, "p", NULL, "ns"},
		{"{\"path\": {\"pod\": \"p\"}, \"namespace\": \"default\"}", CFG_TARGET_POD, "p",
		 NULL, "default"},
		{"{\"path\": {\"deployment\": \"d\", \"container\": \"c\"}}", CFG_TARGET_DEPLOYMENT,
		 "d", "c", NULL},
		{"{\"path\": {\"stateful_set\": \"s\"}}", CFG_TARGET_STATEFULSET, "s", NULL, NULL},
		{"{\"namespace\": \"ns\"}", CFG_TARGET_NONE, NULL, NULL, "ns"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[256];
		struct cfg *c;
		snprintf(text, sizeof(text), "{\"target\": %s}", cases[i].json);
		c = load(text);
		CHECK_INT(c->target.kind, ==, cases[i].kind);
		if (cases[i].name)
			CHECK_STR(c->target.name, cases[i].name);
		else
			CHECK(c->target.name == NULL);
		if (cases[i].container)
			CHECK_STR(c->target.container, cases[i].container);
		else
			CHECK(c->target.container == NULL);
		if (cases[i].ns)
			CHECK_STR(c->target.namespace, cases[i].ns);
		cfg_free(c);
	}
}

TEST(target_pid_and_label)
{
	struct cfg *c = load("{\"target\": \"pid/1234\"}");
	char *s;

	CHECK_INT(c->target.kind, ==, CFG_TARGET_PID);
	CHECK_INT(c->target.pid, ==, 1234);
	s = cfg_target_format(&c->target);
	CHECK_STR(s, "pid/1234");
	free(s);
	cfg_free(c);
	c = load("{\"target\": \"label/app=web,tier=front/container/main\"}");
	CHECK_INT(c->target.kind, ==, CFG_TARGET_LABEL);
	CHECK_INT(c->target.labels.n, ==, 2);
	CHECK_STR(c->target.labels.values[1], "front");
	CHECK_STR(c->target.container, "main");
	s = cfg_target_format(&c->target);
	CHECK_STR(s, "label/app=web,tier=front/container/main");
	free(s);
	cfg_free(c);
	c = load("{\"target\": {\"path\": {\"labels\": {\"app\": \"web\"}}}}");
	CHECK_INT(c->target.kind, ==, CFG_TARGET_LABEL);
	cfg_free(c);
}

TEST(agent_image_forms)
{
	struct cfg *c = load("{\"agent\": {\"image\": \"internal.repo/images/mirrord:latest\"}}");
	CHECK_STR(c->agent.image, "internal.repo/images/mirrord:latest");
	cfg_free(c);
	c = load("{\"agent\": {\"image\": {\"registry\": \"internal.repo/images/mirrord\", "
		 "\"tag\": \"3.1\"}}}");
	CHECK_STR(c->agent.image, "internal.repo/images/mirrord:3.1");
	cfg_free(c);
	c = load("{\"agent\": {\"image\": {\"registry\": \"r.io/m\"}}}");
	CHECK_STR(c->agent.image, "r.io/m:0.1.0"); /* the tag defaults to the release */
	cfg_free(c);
}

TEST(agent_fields)
{
	struct cfg *c = load(
		"{\"target\": \"pod/x\", \"agent\": {\"ephemeral\": true, \"privileged\": true, "
		"\"nftables\": true, "
		"\"dns\": {\"timeout\": 3, \"attempts\": 2}, \"disabled_capabilities\": "
		"[\"SYS_ADMIN\"], "
		"\"tolerations\": [], \"node_selector\": {\"kubernetes.io/hostname\": \"node1\"}, "
		"\"service_account\": \"sa\", \"check_out_of_pods\": false, "
		"\"resources\": {\"limits\": {\"cpu\": \"1\"}}, \"image_pull_secrets\": "
		"[{\"name\": \"k\"}], "
		"\"security_context\": {\"seccomp_profile\": {\"type\": \"RuntimeDefault\"}}}}");

	CHECK(c->agent.ephemeral && c->agent.privileged);
	CHECK_INT(c->agent.nftables, ==, CFG_TRUE);
	CHECK(c->agent.dns.timeout.set);
	CHECK_INT(c->agent.dns.timeout.value, ==, 3);
	CHECK_INT(c->agent.dns.attempts.value, ==, 2);
	CHECK_STR(c->agent.disabled_capabilities.v[0], "SYS_ADMIN");
	CHECK_STR(c->agent.tolerations, "[]");
	CHECK_STR(c->agent.node_selector.values[0], "node1");
	CHECK_STR(c->agent.service_account, "sa");
	CHECK(!c->agent.check_out_of_pods);
	CHECK_STR(c->agent.resources, "{\"limits\":{\"cpu\":\"1\"}}");
	CHECK_STR(c->agent.image_pull_secrets, "[{\"name\":\"k\"}]");
	CHECK_CONTAINS(c->agent.security_context, "RuntimeDefault");
	cfg_free(c);
}

TEST(top_level_misc)
{
	struct cfg *c = load(
		"{\"connect_tcp\": \"10.10.0.100:7777\", \"skip_processes\": \"bash;node\", "
		"\"skip_build_tools\": false, \"skip_extra_build_tools\": [\"make\"], "
		"\"kubeconfig\": \"~/k\", "
		"\"use_proxy\": false, \"key\": \"abc\", \"accept_invalid_certificates\": true, "
		"\"startup_retry\": {\"min_ms\": 10, \"max_ms\": 20}, "
		"\"internal_proxy\": {\"idle_timeout\": 30}, \"external_proxy\": "
		"{\"start_idle_timeout\": 60}, "
		"\"container\": {\"cli_extra_args\": [\"-p\", \"local:container\"]}, "
		"\"experimental\": {\"enable_exec_hooks_linux\": false, \"latency\": "
		"{\"receive_delay\": 5}}, "
		"\"feature\": {\"hostname\": false, \"split_queues\": {\"q\": {\"queue_type\": "
		"\"SQS\"}}, "
		"\"magic\": {\"aws\": false}, \"copy_target\": {\"scale_down\": true, \"enabled\": "
		"false}}}");

	CHECK_STR(c->connect_tcp, "10.10.0.100:7777");
	CHECK_INT(c->skip_processes.n, ==, 2);
	CHECK(!c->skip_build_tools);
	CHECK_STR(c->skip_extra_build_tools.v[0], "make");
	CHECK(!c->use_proxy);
	CHECK_STR(c->key, "abc");
	CHECK_INT(c->accept_invalid_certificates, ==, CFG_TRUE);
	CHECK_INT(c->startup_retry.max_ms, ==, 20);
	CHECK_INT(c->internal_proxy.idle_timeout, ==, 30);
	CHECK_STR(c->container.cli_extra_args.v[1], "local:container");
	CHECK(!c->experimental.enable_exec_hooks_linux);
	CHECK_INT(c->experimental.latency.receive_delay, ==, 5);
	CHECK(!c->feature.hostname);
	CHECK_CONTAINS(c->feature.split_queues, "SQS");
	CHECK(!c->feature.magic.aws);
	CHECK(!c->feature.copy_target.enabled);
	CHECK(c->feature.copy_target.scale_down);
	CHECK(has_warning(c, "internal_proxy: field is ignored"));
	CHECK(has_warning(c, "external_proxy: field is ignored"));
	CHECK(has_warning(c, "container: field is ignored"));
	CHECK(has_warning(c, "experimental.enable_exec_hooks_linux: field is ignored"));
	CHECK(has_warning(c, "experimental.latency: field is ignored"));
	CHECK(has_warning(c, "feature.split_queues: field is ignored"));
	cfg_free(c);
}

TEST(null_values)
{
	struct cfg *c = load(
		"{\"connect_tcp\": null, \"agent\": {\"namespace\": null, \"tolerations\": null, "
		"\"nftables\": null}, \"feature\": {\"network\": {\"incoming\": {\"ports\": null, "
		"\"http_filter\": null}, \"outgoing\": {\"filter\": null}}}, \"operator\": null}");
	CHECK(c->connect_tcp == NULL);
	CHECK_STR(c->agent.tolerations, "[{\"operator\":\"Exists\"}]");
	CHECK(!c->feature.network.incoming.ports.set);
	CHECK_INT(c->operator, ==, CFG_UNSET);
	cfg_free(c);
}

TEST(env_overrides)
{
	static const char *const env[] = {
		"MIRRORD_IMPERSONATED_TARGET=pod/from-env",
		"MIRRORD_TARGET_NAMESPACE=envns",
		"MIRRORD_AGENT_NAMESPACE=agentns",
		"MIRRORD_AGENT_RUST_LOG=debug",
		"MIRRORD_AGENT_IMAGE_TAG=9.9",
		"MIRRORD_AGENT_TTL=7",
		"MIRRORD_FILE_MODE=localwithoverrides",
		"MIRRORD_AGENT_TCP_STEAL_TRAFFIC=true",
		"MIRRORD_TCP_OUTGOING=false",
		"MIRRORD_REMOTE_DNS=false",
		"MIRRORD_OVERRIDE_ENV_VARS_INCLUDE=A;B",
		"MIRRORD_FILE_LOCAL_PATTERN=^/data;^/srv",
		"MIRRORD_HTTP_HEADER_FILTER=x-user: me",
		"MIRRORD_HTTP_FILTER_PORTS=80,8080",
		"MIRRORD_ACCEPT_INVALID_CERTIFICATES=true",
		"MIRRORD_ENABLE_IPV6=false",
		"PODENV_KUBE_CONTEXT=podenv-wins",
		"MIRRORD_KUBE_CONTEXT=mirrord-loses",
		NULL,
	};
	struct cfg *c = load_env("{\"target\": \"pod/from-file\", \"agent\": {\"ttl\": 3}, "
				 "\"feature\": {\"fs\": \"write\"}}",
				 env);

	CHECK_STR(c->target.name, "from-env");
	CHECK_STR(c->target.namespace, "envns");
	CHECK_STR(c->agent.namespace, "agentns");
	CHECK_STR(c->agent.log_level, "debug");
	CHECK_STR(c->agent.image, "localhost/podenv-agent:9.9");
	CHECK_INT(c->agent.ttl, ==, 7);
	CHECK_INT(c->feature.fs.mode, ==, CFG_FS_LOCALWITHOVERRIDES);
	CHECK_INT(c->feature.network.incoming.mode, ==, CFG_INCOMING_STEAL);
	CHECK(!c->feature.network.outgoing.tcp);
	CHECK(c->feature.network.outgoing.udp);
	CHECK(!c->feature.network.dns.enabled);
	CHECK_INT(c->feature.env.include.n, ==, 2);
	CHECK_INT(c->feature.fs.local.n, ==, 2);
	CHECK_INT(c->feature.network.incoming.http_filter.kind, ==, CFG_HTTP_HEADER);
	CHECK_INT(c->feature.network.incoming.http_filter.ports.n, ==, 2);
	CHECK_INT(c->accept_invalid_certificates, ==, CFG_TRUE);
	CHECK(!c->feature.network.ipv6);
	CHECK_STR(c->kube_context, "podenv-wins");
	cfg_free(c);
}

TEST(env_legacy_fs)
{
	static const char *const env1[] = {"MIRRORD_FILE_OPS=true", NULL};
	static const char *const env2[] = {"MIRRORD_FILE_RO_OPS=false", NULL};
	struct cfg *c = load_env("{}", env1);
	CHECK_INT(c->feature.fs.mode, ==, CFG_FS_WRITE);
	cfg_free(c);
	c = load_env("{}", env2);
	CHECK_INT(c->feature.fs.mode, ==, CFG_FS_LOCAL);
	cfg_free(c);
}

TEST(cli_flags)
{
	char *argv[] = {"check",
			"-t",
			"pod/cli",
			"--target-namespace=ns1",
			"-a",
			"ans",
			"--steal",
			"--fs-mode",
			"write",
			"--no-outgoing",
			"--no-remote-dns",
			"-k",
			"kkk",
			"--agent-ttl",
			"4",
			"-e",
			NULL};
	static const char *const env[] = {"MIRRORD_IMPERSONATED_TARGET=pod/env", NULL};
	int argc = 16, i = 1;
	struct cfg_source src = {.env = env, .no_discover = true};
	struct err e = {0};
	struct cfg *c = NULL;

	while (i < argc)
		REQUIRE(cfg_source_flag_parse(&src, argc, argv, &i, &e) == 1);
	src.text = "{\"target\": \"pod/file\"}";
	src.text_len = strlen(src.text);
	CHECK_OK(cfg_load(&src, &c, &e));
	REQUIRE(c);
	CHECK_STR(c->target.name, "cli");
	CHECK_STR(c->target.namespace, "ns1");
	CHECK_STR(c->agent.namespace, "ans");
	CHECK_INT(c->feature.network.incoming.mode, ==, CFG_INCOMING_STEAL);
	CHECK_INT(c->feature.fs.mode, ==, CFG_FS_WRITE);
	CHECK(!c->feature.network.outgoing.tcp && !c->feature.network.outgoing.udp);
	CHECK(!c->feature.network.dns.enabled);
	CHECK_STR(c->key, "kkk");
	CHECK_INT(c->agent.ttl, ==, 4);
	CHECK(c->agent.ephemeral);
	cfg_free(c);
	cfg_source_done(&src);
}

TEST(cli_flag_errors)
{
	char *argv1[] = {"check", "--target", NULL};
	char *argv2[] = {"check", "--steal=yes", NULL};
	char *argv3[] = {"check", "--accept-invalid-certificates=false", "-f", "x.yaml", "--bogus",
			 NULL};
	struct cfg_source src = {0};
	struct err e = {0};
	int i = 1;

	CHECK_INT(cfg_source_flag_parse(&src, 2, argv1, &i, &e), ==, -EINVAL);
	CHECK_CONTAINS(e.msg, "--target: expected TARGET");
	i = 1;
	CHECK_INT(cfg_source_flag_parse(&src, 2, argv2, &i, &e), ==, -EINVAL);
	i = 1;
	CHECK_INT(cfg_source_flag_parse(&src, 5, argv3, &i, &e), ==, 1);
	CHECK_STR(src.overrides[src.n_overrides - 1], "MIRRORD_ACCEPT_INVALID_CERTIFICATES=false");
	CHECK_INT(cfg_source_flag_parse(&src, 5, argv3, &i, &e), ==, 1);
	CHECK_STR(src.path, "x.yaml");
	CHECK_INT(i, ==, 4);
	CHECK_INT(cfg_source_flag_parse(&src, 5, argv3, &i, &e), ==, 0);
	cfg_source_done(&src);
	CHECK(strstr(cfg_source_flags_help(), "--fs-mode") != NULL);
}

TEST(yaml_file)
{
	static const char *const env[] = {"NS=yamlns", NULL};
	struct cfg *c = load_file("tests/unit/config/data/complete.yaml", env);

	CHECK_STR(c->target.name, "bear-pod");
	CHECK_STR(c->target.namespace, "yamlns");
	CHECK_INT(c->feature.fs.mode, ==, CFG_FS_WRITE);
	CHECK_INT(c->feature.network.incoming.port_mapping.v[0].remote, ==, 8888);
	CHECK_INT(c->feature.network.incoming.mode, ==, CFG_INCOMING_STEAL);
	CHECK_INT(c->agent.ttl, ==, 30);
	CHECK(!c->feature.network.dns.enabled);
	CHECK_STR(c->agent.labels.values[0], "007");
	cfg_free(c);
}

TEST(discovery)
{
	static const char *const env_file[] = {
		"MIRRORD_CONFIG_FILE=tests/unit/config/data/basic.json", NULL};
	struct cfg_source src = {.env = env_file};
	struct cfg_source src2 = {.env = no_env, .cwd = "tests/unit/config/data/project"};
	struct err e = {0};
	struct cfg *c = NULL;

	CHECK_OK(cfg_load(&src, &c, &e));
	REQUIRE(c);
	CHECK_STR(c->source_path, "tests/unit/config/data/basic.json");
	cfg_free(c);
	c = NULL;
	CHECK_OK(cfg_load(&src2, &c, &e));
	REQUIRE(c);
	CHECK_STR(c->source_path, "tests/unit/config/data/project/.mirrord/mirrord.json");
	CHECK_STR(c->target.name, "discovered");
	cfg_free(c);
}

TEST(stdin_config)
{
	int fds[2];
	const char *text = "{\"target\": \"pod/stdin\"}";
	struct cfg_source src = {.path = "-", .env = no_env};
	struct err e = {0};
	struct cfg *c = NULL;

	REQUIRE(pipe(fds) == 0);
	REQUIRE(write(fds[1], text, strlen(text)) == (ssize_t)strlen(text));
	close(fds[1]);
	REQUIRE(dup2(fds[0], 0) == 0);
	CHECK_OK(cfg_load(&src, &c, &e));
	REQUIRE(c);
	CHECK_STR(c->target.name, "stdin");
	CHECK_STR(c->source_path, "-");
	cfg_free(c);
}

TAP_MAIN()
