/* Canonical JSON output and the JSON Schema. */
#include <json-c/json.h>

#include "config/config.h"
#include "tests/unit/tap.h"

static const char *const no_env[] = {NULL};

static struct cfg *load_text(const char *text, const char *path)
{
	struct cfg_source src = {.text = text,
				 .text_len = strlen(text),
				 .env = no_env,
				 .no_discover = true,
				 .path = path};
	struct err e = {0};
	struct cfg *c = NULL;

	if (cfg_load(&src, &c, &e) < 0)
		TAP_FAIL("load: %s", e.msg);
	REQUIRE(c);
	return c;
}

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	char *s = calloc(1, 1 << 16);
	size_t n;

	REQUIRE(f && s);
	n = fread(s, 1, (1 << 16) - 1, f);
	s[n] = '\0';
	fclose(f);
	return s;
}

TEST(round_trip_complete)
{
	char *text = read_all("tests/unit/config/data/complete.json");
	struct cfg *c = load_text(text, "complete.json"), *c2;
	char *out = cfg_format_json(c), *out2;

	CHECK_CONTAINS(out, "\"mode\": \"steal\"");
	CHECK_CONTAINS(out, "\"path\": \"pod/bear-pod\"");
	CHECK_CONTAINS(out, "\"header_filter\": \"host: api\\\\..+\"");
	CHECK_CONTAINS(out, "\"tcp://1.1.1.0/24:1337\"");
	c2 = load_text(out, "out.json");
	out2 = cfg_format_json(c2);
	CHECK_STR(out2, out);
	free(text);
	free(out);
	free(out2);
	cfg_free(c);
	cfg_free(c2);
}

TEST(round_trip_forms)
{
	static const char *const docs[] = {
		"{\"feature\": {\"env\": false, \"fs\": false, \"network\": false}}",
		"{\"target\": \"pod/a/container/b\", \"feature\": {\"network\": {\"incoming\": "
		"{\"mode\": \"steal\", "
		"\"http_filter\": {\"all_of\": [{\"header\": \"x\"}, {\"body\": \"json\", "
		"\"query\": \"$.a\", "
		"\"matches\": \"b\"}]}, \"ports\": [1]}}}}",
		"{\"target\": \"label/a=b\", \"agent\": {\"image\": {\"registry\": \"r\", \"tag\": "
		"\"t\"}}}",
		"{\"feature\": {\"fs\": {\"mapping\": {\"^/a\": \"/b\"}}, \"copy_target\": true}}",
	};
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		struct cfg *c = load_text(docs[i], "t.json"), *c2;
		char *out = cfg_format_json(c), *out2;
		c2 = load_text(out, "t.json");
		out2 = cfg_format_json(c2);
		CHECK_STR(out2, out);
		free(out);
		free(out2);
		cfg_free(c);
		cfg_free(c2);
	}
}

TEST(schema_is_json)
{
	char *s = cfg_schema_json();
	json_object *o = json_tokener_parse(s), *props, *feature;

	REQUIRE(o);
	CHECK(json_object_object_get_ex(o, "properties", &props));
	CHECK(json_object_object_get_ex(props, "feature", &feature));
	CHECK_CONTAINS(s, "\"additionalProperties\": false");
	CHECK_CONTAINS(s, "\"localwithoverrides\"");
	CHECK_CONTAINS(s, "Ignored by podenv: podenv never sends telemetry");
	CHECK_CONTAINS(s, "\"startup_timeout\"");
	json_object_put(o);
	free(s);
}

TEST(names)
{
	char *s;
	struct cfg_target t = {.kind = CFG_TARGET_DEPLOYMENT, .name = "d", .container = "c"};

	CHECK_STR(cfg_fs_mode_name(CFG_FS_LOCALWITHOVERRIDES), "localwithoverrides");
	CHECK_STR(cfg_incoming_mode_name(CFG_INCOMING_STEAL), "steal");
	CHECK_STR(cfg_target_kind_name(CFG_TARGET_NONE), "targetless");
	s = cfg_target_format(&t);
	CHECK_STR(s, "deployment/d/container/c");
	free(s);
}

TAP_MAIN()
