/* Malformed configurations: each must fail with a message that names the
 * right JSON path (or file:line:col) and what was expected. */
#include "config/config.h"
#include "tests/unit/tap.h"

static const char *const no_env[] = {NULL};

struct bad {
	const char *text;
	const char *want;  /* must appear in the message */
	const char *want2; /* and this too, if set */
};

static const struct bad cases[] = {
	/* wrong types */
	{"{\"accept_invalid_certificates\": \"yes\"}",
	 "accept_invalid_certificates: expected a boolean or null, got a string", NULL},
	{"{\"feature\": {\"env\": 1}}",
	 "feature.env: expected a boolean or an object, got an integer", NULL},
	{"{\"feature\": {\"fs\": 3}}", "feature.fs: expected a boolean, a mode string or an object",
	 NULL},
	{"{\"feature\": {\"network\": \"on\"}}",
	 "feature.network: expected a boolean or an object, got a string", NULL},
	{"{\"feature\": {\"network\": {\"incoming\": [1]}}}",
	 "feature.network.incoming: expected a boolean, a mode string or an object, got an array",
	 NULL},
	{"{\"feature\": {\"network\": {\"outgoing\": {\"tcp\": \"true\"}}}}",
	 "feature.network.outgoing.tcp: expected a boolean, got a string", NULL},
	{"{\"agent\": {\"ttl\": \"30\"}}", "agent.ttl: expected an integer, got a string", NULL},
	{"{\"agent\": {\"ttl\": 1.5}}", "agent.ttl: expected an integer, got a number", NULL},
	{"{\"agent\": {\"startup_timeout\": -1}}",
	 "agent.startup_timeout: expected an integer in 0..", "got -1"},
	{"{\"agent\": {\"labels\": {\"a\": 1}}}",
	 "agent.labels.a: expected a string, got an integer", NULL},
	{"{\"agent\": {\"tolerations\": {}}}",
	 "agent.tolerations: expected an array, got an object", NULL},
	{"{\"agent\": {\"image_pull_secrets\": [\"x\"]}}",
	 "agent.image_pull_secrets[0]: expected an object, got a string", NULL},
	{"{\"agent\": {\"image\": 7}}",
	 "agent.image: expected an image string or an object {registry, tag}", NULL},
	{"{\"agent\": {\"image\": {\"registry\": \"r\", \"tga\": \"x\"}}}",
	 "agent.image.tga: unknown field, did you mean \"tag\"?", NULL},
	{"{\"feature\": {\"env\": {\"include\": [\"A\", 2]}}}",
	 "feature.env.include[1]: expected a string, got an integer", NULL},
	{"{\"skip_processes\": {}}",
	 "skip_processes: expected a string or a list of strings, got an object", NULL},
	{"[]", "expected a JSON object at the top level, got an array", NULL},
	/* enums */
	{"{\"feature\": {\"network\": {\"incoming\": {\"mode\": \"stael\"}}}}",
	 "feature.network.incoming.mode: expected one of \"off\", \"mirror\", \"steal\", got "
	 "\"stael\"",
	 NULL},
	{"{\"feature\": {\"fs\": {\"mode\": \"readwrite\"}}}",
	 "feature.fs.mode: expected one of \"local\", \"localwithoverrides\", \"read\", \"write\", "
	 "got \"readwrite\"",
	 NULL},
	{"{\"feature\": {\"fs\": \"rw\"}}", "feature.fs: expected one of \"local\"", "got \"rw\""},
	{"{\"feature\": {\"network\": {\"incoming\": \"sniff\"}}}",
	 "feature.network.incoming: expected one of \"off\", \"mirror\", \"steal\", got \"sniff\"",
	 NULL},
	{"{\"feature\": {\"network\": {\"incoming\": {\"on_concurrent_steal\": \"kill\"}}}}",
	 "feature.network.incoming.on_concurrent_steal: expected one of \"abort\", \"continue\", "
	 "\"override\"",
	 NULL},
	/* unknown keys */
	{"{\"feature\": {\"network\": {\"incomin\": true}}}",
	 "feature.network.incomin: unknown field, did you mean \"incoming\"?", NULL},
	{"{\"targte\": \"pod/x\"}", "targte: unknown field, did you mean \"target\"?", NULL},
	{"{\"agent\": {\"namespce\": \"x\"}}",
	 "agent.namespce: unknown field, did you mean \"namespace\"?", NULL},
	{"{\"feature\": {\"fs\": {\"readonly\": \"x\"}}}",
	 "feature.fs.readonly: unknown field, did you mean \"read_only\"?", NULL},
	{"{\"zzzzzzzzzz\": 1}",
	 "zzzzzzzzzz: unknown field, expected one of: accept_invalid_certificates", NULL},
	{"{\"target\": {\"path\": \"pod/x\", \"namespcae\": \"n\"}}",
	 "target.namespcae: unknown field, did you mean \"namespace\"?", NULL},
	{"{\"target\": {\"path\": {\"podd\": \"x\"}}}",
	 "target.path.podd: unknown field, did you mean \"pod\"?", NULL},
	{"{\"feature\": {\"network\": {\"incoming\": {\"http_filter\": {\"header\": \"x\"}}}}}",
	 "feature.network.incoming.http_filter.header: unknown field", NULL},
	{"{\"feature\": {\"network\": {\"outgoing\": {\"filter\": {\"locals\": [\"a\"]}}}}}",
	 "feature.network.outgoing.filter.locals: unknown field, did you mean \"local\"?", NULL},
	/* target strings */
	{"{\"target\": \"pods/x\"}", "target: expected \"targetless\"", "got \"pods/x\""},
	{"{\"target\": \"pod/\"}", "target: expected \"targetless\"", NULL},
	{"{\"target\": \"pod/x/container/\"}", "target: expected", NULL},
	{"{\"target\": \"pid/abc\"}", "target: expected \"pid/<PID>\" with a positive PID", NULL},
	{"{\"target\": {\"path\": \"deployment\"}}", "target.path: expected", NULL},
	{"{\"target\": {\"path\": {\"pod\": \"a\", \"deployment\": \"b\"}}}",
	 "target.path.deployment: only one target type may be given", NULL},
	{"{\"target\": 5}", "target: expected a target string or object, got an integer", NULL},
	/* regexes */
	{"{\"feature\": {\"fs\": {\"read_only\": [\"ok\", \"(unclosed\"]}}}",
	 "feature.fs.read_only[1]: invalid regular expression \"(unclosed\"", "at offset 9"},
	{"{\"feature\": {\"fs\": {\"mapping\": {\"[a-\": \"/x\"}}}}",
	 "feature.fs.mapping.[a-: invalid regular expression", NULL},
	{"{\"feature\": {\"network\": {\"incoming\": {\"http_filter\": {\"header_filter\": "
	 "\"a(?<\"}}}}}",
	 "feature.network.incoming.http_filter.header_filter: invalid regular expression", NULL},
	{"{\"feature\": {\"network\": {\"outgoing\": {\"unix_streams\": \"*bear\"}}}}",
	 "feature.network.outgoing.unix_streams[0]: invalid regular expression",
	 "quantifier does not follow a repeatable item"},
	/* filters */
	{"{\"feature\": {\"network\": {\"outgoing\": {\"filter\": {\"local\": "
	 "[\"1.1.1.0/33\"]}}}}}",
	 "feature.network.outgoing.filter.local[0]: \"1.1.1.0/33\": expected a subnet mask length "
	 "0-32",
	 NULL},
	{"{\"feature\": {\"network\": {\"outgoing\": {\"filter\": {\"local\": [\"300.1.1.1\"]}}}}}",
	 "feature.network.outgoing.filter.local[0]: \"300.1.1.1\": invalid IPv4 address", NULL},
	{"{\"feature\": {\"network\": {\"outgoing\": {\"filter\": {\"remote\": "
	 "[\"a.com:99999\"]}}}}}",
	 "feature.network.outgoing.filter.remote[0]: \"a.com:99999\": expected a port number "
	 "0-65535",
	 NULL},
	{"{\"feature\": {\"network\": {\"outgoing\": {\"filter\": {\"remote\": "
	 "[\"sctp://a.com\"]}}}}}",
	 "feature.network.outgoing.filter.remote[0]: \"sctp://a.com\": unknown protocol \"sctp\"",
	 NULL},
	{"{\"feature\": {\"network\": {\"outgoing\": {\"filter\": {\"remote\": [\"a.com/24\"]}}}}}",
	 "feature.network.outgoing.filter.remote[0]: \"a.com/24\": a subnet needs an IP address",
	 NULL},
	{"{\"feature\": {\"network\": {\"outgoing\": {\"filter\": {\"remote\": "
	 "[\"a.com:80x\"]}}}}}",
	 "feature.network.outgoing.filter.remote[0]: \"a.com:80x\": unexpected \"x\"", NULL},
	{"{\"feature\": {\"network\": {\"outgoing\": {\"filter\": {\"local\": [\"a\"], \"remote\": "
	 "[\"b\"]}}}}}",
	 "feature.network.outgoing.filter: \"local\" and \"remote\" are mutually exclusive", NULL},
	{"{\"feature\": {\"network\": {\"outgoing\": {\"filter\": {\"local\": []}}}}}",
	 "feature.network.outgoing.filter.local: expected a non-empty list of filter entries",
	 NULL},
	{"{\"feature\": {\"network\": {\"outgoing\": {\"filter\": {}}}}}",
	 "feature.network.outgoing.filter: expected either \"local\" or \"remote\"", NULL},
	{"{\"feature\": {\"network\": {\"dns\": {\"filter\": {\"local\": [\"udp://a.com\"]}}}}}",
	 "feature.network.dns.filter.local[0]: \"udp://a.com\": expected "
	 "[name|address|subnet/mask][:port] (no protocol",
	 NULL},
	{"{\"feature\": {\"network\": {\"dns\": {\"filter\": {\"remote\": [\"[::1\"]}}}}}",
	 "feature.network.dns.filter.remote[0]: \"[::1\": unterminated IPv6 address", NULL},
	/* ports */
	{"{\"feature\": {\"network\": {\"incoming\": {\"ports\": [80, 70000]}}}}",
	 "feature.network.incoming.ports[1]: expected a port number (0-65535), got 70000", NULL},
	{"{\"feature\": {\"network\": {\"incoming\": {\"ignore_ports\": \"80\"}}}}",
	 "feature.network.incoming.ignore_ports: expected a list of port numbers, got a string",
	 NULL},
	{"{\"feature\": {\"network\": {\"incoming\": {\"ports\": [80], \"ignore_ports\": [81]}}}}",
	 "feature.network.incoming.ignore_ports: cannot be combined with "
	 "feature.network.incoming.ports",
	 NULL},
	{"{\"feature\": {\"network\": {\"incoming\": {\"port_mapping\": [7777, 8888]}}}}",
	 "feature.network.incoming.port_mapping[0]: expected a pair [local, remote] of port "
	 "numbers, got an integer",
	 NULL},
	{"{\"feature\": {\"network\": {\"incoming\": {\"port_mapping\": [[1, 2, 3]]}}}}",
	 "feature.network.incoming.port_mapping[0]: expected a pair [local, remote]", NULL},
	{"{\"feature\": {\"network\": {\"incoming\": {\"port_mapping\": [[1, 2], [1, 3]]}}}}",
	 "feature.network.incoming.port_mapping[1]: port 1 is mapped twice", NULL},
	{"{\"feature\": {\"network\": {\"incoming\": {\"listen_ports\": [[80, -4]]}}}}",
	 "feature.network.incoming.listen_ports[0][1]: expected a port number (0-65535), got -4",
	 NULL},
	/* http filter */
	{"{\"feature\": {\"network\": {\"incoming\": {\"http_filter\": {\"header_filter\": \"a\", "
	 "\"path_filter\": \"b\"}}}}}",
	 "feature.network.incoming.http_filter.path_filter: only one of \"header_filter\" and "
	 "\"path_filter\" may be set",
	 NULL},
	{"{\"feature\": {\"network\": {\"incoming\": {\"http_filter\": {\"all_of\": []}}}}}",
	 "feature.network.incoming.http_filter.all_of: expected a non-empty list of filters", NULL},
	{"{\"feature\": {\"network\": {\"incoming\": {\"http_filter\": {\"any_of\": []}}}}}",
	 "feature.network.incoming.http_filter.any_of: expected a non-empty list of filters", NULL},
	{"{\"feature\": {\"network\": {\"incoming\": {\"http_filter\": {\"any_of\": [{\"path\": "
	 "\"\"}]}}}}}",
	 "feature.network.incoming.http_filter.any_of[0].path: expected a non-empty string", NULL},
	{"{\"feature\": {\"network\": {\"incoming\": {\"http_filter\": {\"any_of\": [{\"path\": "
	 "\"a\", \"header\": \"b\"}]}}}}}",
	 "feature.network.incoming.http_filter.any_of[0]: expected exactly one of", NULL},
	{"{\"feature\": {\"network\": {\"incoming\": {\"http_filter\": {\"method_filter\": \"GE "
	 "T\"}}}}}",
	 "feature.network.incoming.http_filter.method_filter: expected an HTTP method name", NULL},
	{"{\"feature\": {\"network\": {\"incoming\": {\"http_filter\": {\"body_filter\": "
	 "{\"body\": \"xml\"}}}}}}",
	 "feature.network.incoming.http_filter.body_filter.body: expected \"json\"", NULL},
	/* cross-field */
	{"{\"feature\": {\"network\": {\"incoming\": \"steal\"}}}",
	 "feature.network.incoming.mode: \"steal\" needs a target", NULL},
	{"{\"agent\": {\"ephemeral\": true}}", "agent.ephemeral: an ephemeral agent needs a target",
	 NULL},
	{"{\"connect_tcp\": \"10.0.0.1\"}", "connect_tcp: expected \"IP:PORT\", got \"10.0.0.1\"",
	 NULL},
	{"{\"connect_tcp\": \"host:80\"}", "connect_tcp: expected \"IP:PORT\"", NULL},
	{"{\"startup_retry\": {\"min_ms\": 10, \"max_ms\": 5}}",
	 "startup_retry.min_ms: expected at most max_ms (5), got 10", NULL},
	{"{\"startup_retry\": {\"max_ms\": 0}}", "startup_retry.max_ms: expected a value above 0",
	 NULL},
	{"{\"feature\": {\"fs\": {\"readonly_file_buffer\": 20000000}}}",
	 "feature.fs.readonly_file_buffer: expected an integer in 0..15728640", NULL},
	/* invalid JSON: line and column */
	{"{\n  \"target\": \"pod/x\",\n  \"agent\": {\"ttl\": 3,}\n}",
	 "test.json:3:", "invalid JSON"},
	{"{\n  \"target\": \"pod/x\"\n", "test.json:3:1: invalid JSON: unexpected end of input",
	 NULL},
	{"{\"a\": 1} x", "test.json:1:10: invalid JSON", NULL},
	{"{\"a\": tru}", "test.json:1:", "invalid JSON"},
	/* templates */
	{"{\"target\": \"{{ get_env(name=\"NOPE_UNSET_VAR\") }}\"}",
	 "test.json:1:", "environment variable NOPE_UNSET_VAR is not set"},
	{"{\"target\": \"{% for x in y %}{% endfor %}\"}",
	 "test.json:1:16: template: unsupported tag \"for\"", NULL},
	{"\n\n  {{ now() }}", "test.json:3:6: template: unsupported function \"now\"", NULL},
	{"{{ \"a\" | replace(from=\"a\", to=\"b\") }}",
	 "test.json:1:10: template: unsupported filter \"replace\"", NULL},
	{"{% if true %}{}", "test.json:1:1: template: {% if %} is never closed", NULL},
	{"{} {% endif %}", "template: {% endif %} without {% if %}", NULL},
	{"{\"k\": \"{{ undefined_thing }}\"}", "variable \"undefined_thing\" is not defined", NULL},
	{"{\"k\": \"{{ 'a\"}", "test.json:1:8: template: unclosed \"{{\"", NULL},
};

TEST(malformed_table)
{
	size_t n = sizeof(cases) / sizeof(cases[0]);

	CHECK_UINT(n, >=, 30);
	for (size_t i = 0; i < n; i++) {
		struct cfg_source src = {.text = cases[i].text,
					 .text_len = strlen(cases[i].text),
					 .env = no_env,
					 .no_discover = true,
					 .path = "test.json"};
		struct err e = {0};
		struct cfg *c = NULL;
		int r = cfg_load(&src, &c, &e);

		if (r != -EINVAL || c) {
			TAP_FAIL("case %zu (%s): r=%d, expected -EINVAL", i, cases[i].text, r);
			cfg_free(c);
			continue;
		}
		if (!strstr(e.msg, cases[i].want))
			TAP_FAIL("case %zu: \"%s\" lacks \"%s\"", i, e.msg, cases[i].want);
		if (cases[i].want2 && !strstr(e.msg, cases[i].want2))
			TAP_FAIL("case %zu: \"%s\" lacks \"%s\"", i, e.msg, cases[i].want2);
	}
}

TEST(env_errors)
{
	static const struct {
		const char *env;
		const char *want;
	} ecases[] = {
		{"MIRRORD_FILE_MODE=rw", "MIRRORD_FILE_MODE (feature.fs.mode): expected one of "
					 "local, localwithoverrides, read, write, got \"rw\""},
		{"MIRRORD_AGENT_TTL=abc",
		 "MIRRORD_AGENT_TTL (agent.ttl): expected a non-negative integer"},
		{"MIRRORD_REMOTE_DNS=maybe",
		 "MIRRORD_REMOTE_DNS (feature.network.dns.enabled): expected true or false"},
		{"MIRRORD_IMPERSONATED_TARGET=nope",
		 "MIRRORD_IMPERSONATED_TARGET (target.path): expected"},
		{"MIRRORD_AGENT_TCP_STEAL_TRAFFIC=grab",
		 "MIRRORD_AGENT_TCP_STEAL_TRAFFIC (feature.network.incoming.mode)"},
		{"MIRRORD_FILE_LOCAL_PATTERN=a;(",
		 "MIRRORD_FILE_LOCAL_PATTERN (feature.fs.local)[1]: invalid regular expression"},
		{"MIRRORD_HTTP_FILTER_PORTS=80,x",
		 "MIRRORD_HTTP_FILTER_PORTS (feature.network.incoming.http_filter.ports)"},
	};
	for (size_t i = 0; i < sizeof(ecases) / sizeof(ecases[0]); i++) {
		const char *env[] = {ecases[i].env, NULL};
		struct cfg_source src = {.text = "{}",
					 .text_len = 2,
					 .env = env,
					 .no_discover = true,
					 .path = "t.json"};
		struct err e = {0};
		struct cfg *c = NULL;

		CHECK_INT(cfg_load(&src, &c, &e), ==, -EINVAL);
		CHECK(c == NULL);
		CHECK_CONTAINS(e.msg, ecases[i].want);
	}
}

TEST(file_errors)
{
	struct cfg_source src = {.path = "tests/unit/config/data/does-not-exist.json",
				 .env = no_env};
	struct err e = {0};
	struct cfg *c = NULL;

	CHECK_INT(cfg_load(&src, &c, &e), ==, -ENOENT);
	CHECK_CONTAINS(e.msg,
		       "does-not-exist.json: cannot open the configuration file: No such file");
	src.path = "tests/unit/config/data/mirrord.toml";
	CHECK_INT(cfg_load(&src, &c, &e), ==, -ENOTSUP);
	CHECK_CONTAINS(e.msg, "TOML configurations are not supported, use JSON or YAML");
	src.path = "tests/unit/config/data/config.ini";
	CHECK_INT(cfg_load(&src, &c, &e), ==, -EINVAL);
	CHECK_CONTAINS(e.msg, "expected .json, .yaml or .yml");
	src.path = "tests/unit/config/data";
	CHECK_INT(cfg_load(&src, &c, &e), ==, -EISDIR);
	CHECK(c == NULL);
}

TEST(yaml_errors)
{
	static const struct {
		const char *text, *want;
	} ycases[] = {
		{"target: [a\nfeature: 1\n", "t.yaml:"},
		{"agent:\n  ttl: x\n", "agent.ttl: expected an integer, got a string"},
		{"a: &x 1\nb: *x\n", "t.yaml:1:4: invalid YAML: anchors are not supported"},
		{"feature:\n  fs:\n    moed: read\n",
		 "feature.fs.moed: unknown field, did you mean \"mode\"?"},
		{"- 1\n- 2\n", "expected a JSON object at the top level, got an array"},
	};
	for (size_t i = 0; i < sizeof(ycases) / sizeof(ycases[0]); i++) {
		struct cfg_source src = {.text = ycases[i].text,
					 .text_len = strlen(ycases[i].text),
					 .env = no_env,
					 .path = "t.yaml"};
		struct err e = {0};
		struct cfg *c = NULL;

		CHECK_INT(cfg_load(&src, &c, &e), ==, -EINVAL);
		CHECK_CONTAINS(e.msg, ycases[i].want);
	}
}

TAP_MAIN()
