/* Pattern lists, mapping substitution and filter entries. */
#include <arpa/inet.h>
#include <sys/socket.h>

#include "config/config.h"
#include "tests/unit/tap.h"

static const char *const no_env[] = {NULL};

TEST(patterns_match_caseless_and_lookahead)
{
	static const char *const src[] = {"^/proc(/|$)", "\\.json$", "^(?!/health/)/api"};
	struct cfg_patterns p;
	struct err e = {0};

	CHECK_OK(cfg_patterns_init(&p, src, 3, true, "test", &e));
	CHECK_INT(cfg_patterns_match(&p, "/proc", 5), ==, 0);
	CHECK_INT(cfg_patterns_match(&p, "/PROC/1/stat", 12), ==, 0);
	CHECK_INT(cfg_patterns_match(&p, "/procfs", 7), ==, -ENOENT);
	CHECK_INT(cfg_patterns_match(&p, "/x/A.JSON", 9), ==, 1);
	CHECK_INT(cfg_patterns_match(&p, "/api/v1", 7), ==, 2);
	cfg_patterns_done(&p);
	CHECK_OK(cfg_patterns_init(&p, src, 2, false, "test", &e));
	CHECK_INT(cfg_patterns_match(&p, "/PROC", 5), ==, -ENOENT);
	cfg_patterns_done(&p);
}

TEST(patterns_prefix)
{
	static const char *const src[] = {"^/etc/hosts$", "^/var/run/(?!x)"};
	struct cfg_patterns p;
	struct err e = {0};

	CHECK_OK(cfg_patterns_init(&p, src, 2, true, "test", &e));
	CHECK(!cfg_patterns_may_match_prefix(&p, "/usr", 4));
	CHECK(!cfg_patterns_may_match_prefix(&p, "/usr/", 5));
	CHECK(cfg_patterns_may_match_prefix(&p, "/etc", 4));
	CHECK(cfg_patterns_may_match_prefix(&p, "/etc/", 5));
	CHECK(cfg_patterns_may_match_prefix(&p, "/var/run/", 9));
	CHECK(!cfg_patterns_may_match_prefix(&p, "/var/lib/", 9));
	cfg_patterns_done(&p);
}

TEST(patterns_error)
{
	static const char *const src[] = {"ok", "a)"};
	struct cfg_patterns p;
	struct err e = {0};

	CHECK_INT(cfg_patterns_init(&p, src, 2, true, "list", &e), ==, -EINVAL);
	CHECK_CONTAINS(e.msg, "list[1]: invalid regular expression \"a)\"");
	CHECK_CONTAINS(e.msg, "at offset 1");
	CHECK_INT(p.n, ==, 0);
}

static char *map1(const char *json, const char *path)
{
	char text[512];
	struct cfg_source src = {.env = no_env, .no_discover = true, .path = "t.json"};
	struct err e = {0};
	struct cfg *c = NULL;
	char *out = NULL;

	snprintf(text, sizeof(text), "{\"feature\": {\"fs\": {\"mapping\": %s}}}", json);
	src.text = text;
	src.text_len = strlen(text);
	if (cfg_load(&src, &c, &e) < 0) {
		TAP_FAIL("load: %s", e.msg);
		return NULL;
	}
	if (cfg_mapping_apply(&c->feature.fs.mapping, path, &out) == 0)
		out = NULL;
	cfg_free(c);
	return out;
}

TEST(mapping_reference_example)
{
	const char *m = "{\"^/home/(?<user>\\\\S+)/dev/tomcat\": \"/etc/tomcat\", "
			"\"^/home/(?<user>\\\\S+)/dev/config/(?<app>\\\\S+)\": "
			"\"/mnt/configs/${user}-$app\"}";
	char *s;

	s = map1(m, "/home/johndoe/dev/tomcat/context.xml");
	CHECK_STR(s, "/etc/tomcat/context.xml");
	free(s);
	/* \S+ is greedy: as in Rust, "app" takes the rest of the path */
	s = map1("{\"^/home/(?<user>[^/]+)/dev/config/(?<app>[^/]+)\": "
		 "\"/mnt/configs/${user}-$app\"}",
		 "/home/johndoe/dev/config/api/app.conf");
	CHECK_STR(s, "/mnt/configs/johndoe-api/app.conf");
	free(s);
	s = map1(m, "/srv/other");
	CHECK(s == NULL);
}

TEST(mapping_groups)
{
	char *s;

	s = map1("{\"^/a/(\\\\w+)/(\\\\w+)\": \"/b/$2/${1}x\"}", "/a/one/two/rest");
	CHECK_STR(s, "/b/two/onex/rest");
	free(s);
	/* $1x is the (missing) group named "1x": empty, as Rust's expand */
	s = map1("{\"^/a/(\\\\w+)\": \"/b/$1x\"}", "/a/one");
	CHECK_STR(s, "/b/");
	free(s);
	s = map1("{\"^/A\": \"/cost$$/$\"}", "/a/z"); /* caseless; $$ is a literal $ */
	CHECK_STR(s, "/cost$/$/z");
	free(s);
	s = map1("{\"^/a/(?P<n>x)?\": \"/b/${n}/${9}/$nope\"}", "/a/");
	CHECK_STR(s, "/b///");
	free(s);
}

TEST(net_entries)
{
	static const struct {
		const char *text;
		bool proto;
		enum cfg_proto p;
		enum cfg_addr_kind kind;
		unsigned prefix;
		uint16_t port;
	} ok[] = {
		{"tcp://1.1.1.0/24:1337", true, CFG_PROTO_TCP, CFG_ADDR_SUBNET, 24, 1337},
		{"UDP://10.0.0.1", true, CFG_PROTO_UDP, CFG_ADDR_IP, 32, 0},
		{"any://:53", true, CFG_PROTO_ANY, CFG_ADDR_ANY, 0, 53},
		{":53", false, CFG_PROTO_ANY, CFG_ADDR_ANY, 0, 53},
		{"google.com", false, CFG_PROTO_ANY, CFG_ADDR_NAME, 0, 0},
		{"localhost:1337", false, CFG_PROTO_ANY, CFG_ADDR_NAME, 0, 1337},
		{"[::1]:80", false, CFG_PROTO_ANY, CFG_ADDR_IP, 128, 80},
		{"[fd00::]/8", false, CFG_PROTO_ANY, CFG_ADDR_SUBNET, 8, 0},
		{"0.0.0.0:443", false, CFG_PROTO_ANY, CFG_ADDR_ANY, 32, 443},
		{"tcp://", true, CFG_PROTO_TCP, CFG_ADDR_ANY, 0, 0},
		{"my_svc-1.ns.svc", false, CFG_PROTO_ANY, CFG_ADDR_NAME, 0, 0},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct cfg_net_entry e;
		struct err er = {0};
		int r = cfg_net_entry_parse(ok[i].text, ok[i].proto, &e, &er);
		if (r < 0) {
			TAP_FAIL("%s: %s", ok[i].text, er.msg);
			continue;
		}
		CHECK_INT(e.proto, ==, ok[i].p);
		CHECK_INT(e.kind, ==, ok[i].kind);
		if (e.kind == CFG_ADDR_SUBNET || e.kind == CFG_ADDR_IP)
			CHECK_UINT(e.prefix, ==, ok[i].prefix);
		CHECK_UINT(e.port, ==, ok[i].port);
		CHECK_STR(e.text, ok[i].text);
		cfg_net_entry_done(&e);
	}
}

TEST(net_entry_match)
{
	struct cfg_net_entry e;
	struct err er = {0};
	uint8_t a[4], b[16];

	CHECK_OK(cfg_net_entry_parse("tcp://10.1.0.0/16:80", true, &e, &er));
	inet_pton(AF_INET, "10.1.200.3", a);
	CHECK(cfg_net_entry_match(&e, CFG_PROTO_TCP, AF_INET, a, 80));
	CHECK(!cfg_net_entry_match(&e, CFG_PROTO_UDP, AF_INET, a, 80));
	CHECK(!cfg_net_entry_match(&e, CFG_PROTO_TCP, AF_INET, a, 81));
	inet_pton(AF_INET, "10.2.0.1", a);
	CHECK(!cfg_net_entry_match(&e, CFG_PROTO_TCP, AF_INET, a, 80));
	cfg_net_entry_done(&e);
	CHECK_OK(cfg_net_entry_parse("10.0.0.0/9", false, &e, &er));
	inet_pton(AF_INET, "10.127.255.255", a);
	CHECK(cfg_net_entry_match(&e, CFG_PROTO_UDP, AF_INET, a, 5));
	inet_pton(AF_INET, "10.128.0.0", a);
	CHECK(!cfg_net_entry_match(&e, CFG_PROTO_UDP, AF_INET, a, 5));
	cfg_net_entry_done(&e);
	CHECK_OK(cfg_net_entry_parse(":53", false, &e, &er));
	inet_pton(AF_INET6, "fd00::1", b);
	CHECK(cfg_net_entry_match(&e, CFG_PROTO_UDP, AF_INET6, b, 53));
	CHECK(!cfg_net_entry_match(&e, CFG_PROTO_UDP, AF_INET6, b, 54));
	cfg_net_entry_done(&e);
}

TAP_MAIN()
