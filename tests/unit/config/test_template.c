/* The Tera subset, through cfg_load on small documents. */
#include "config/config.h"
#include "tests/unit/tap.h"

/* Renders "{\"kube_context\": \"<tmpl>\"}" and returns kube_context. */
static char *render(const char *tmpl, const char *const *env)
{
	static const char *const no_env[] = {NULL};
	char text[1024];
	struct cfg_source src = {
		.env = env ? env : no_env, .no_discover = true, .path = "t.json", .cwd = "/"};
	struct err e = {0};
	struct cfg *c = NULL;
	char *out;

	snprintf(text, sizeof(text), "{\"kube_context\": \"%s\"}", tmpl);
	src.text = text;
	src.text_len = strlen(text);
	if (cfg_load(&src, &c, &e) < 0) {
		TAP_FAIL("%s: %s", tmpl, e.msg);
		return xstrdup("(error)");
	}
	out = xstrdup(c->kube_context ? c->kube_context : "(null)");
	cfg_free(c);
	return out;
}

#define CHECK_RENDER(tmpl, env, want)                                                              \
	do {                                                                                       \
		char *_s = render(tmpl, env);                                                      \
		CHECK_STR(_s, want);                                                               \
		free(_s);                                                                          \
	} while (0)

TEST(get_env)
{
	static const char *const env[] = {"CTX=prod", "EMPTY=", NULL};

	CHECK_RENDER("{{ get_env(name=\"CTX\") }}", env, "prod");
	CHECK_RENDER("{{get_env(name='CTX', default='x')}}", env, "prod");
	CHECK_RENDER("{{ get_env(name=\"NOPE\", default=\"dev\") }}", env, "dev");
	CHECK_RENDER("{{ get_env(name=`NOPE`, default=true) }}", env, "true");
	CHECK_RENDER("{{ get_env(name='NOPE', default=42) }}", env, "42");
	CHECK_RENDER("{{ get_env(name='EMPTY', default='d') }}", env, "");
	CHECK_RENDER("{{ get_env(name='NOPE') | default(value='f') }}", env, "f");
	CHECK_RENDER("a-{{ 'lit' }}-b", env, "a-lit-b");
	CHECK_RENDER("{{ get_env(name='CTX') | upper }}", env, "PROD");
	CHECK_RENDER("{{ ' X ' | trim | lower }}", env, "x");
}

TEST(conditionals)
{
	static const char *const env[] = {"MODE=ci", NULL};

	CHECK_RENDER("{% if get_env(name='MODE') == 'ci' %}ci-ctx{% else %}dev{% endif %}", env,
		     "ci-ctx");
	CHECK_RENDER("{% if get_env(name='MODE') != 'ci' %}a{% elif true %}b{% else %}c{% endif %}",
		     env, "b");
	CHECK_RENDER("{% if false %}a{% elif false %}b{% else %}c{% endif %}", env, "c");
	CHECK_RENDER("{% if not false and (1 == 1 or false) %}y{% endif %}", env, "y");
	CHECK_RENDER("{% if get_env(name='NOPE', default='') %}y{% else %}n{% endif %}", env, "n");
	CHECK_RENDER("{% if true %}{% if false %}x{% else %}in{% endif %}{% endif %}", env, "in");
	/* branches not taken are not evaluated: an unset var there is fine */
	CHECK_RENDER("{% if false %}{{ get_env(name='NOPE') }}{% endif %}ok", env, "ok");
	CHECK_RENDER("a{# a comment {{ with }} braces #}b", env, "ab");
	CHECK_RENDER("a  {{- 'b' -}}  c", env, "abc");
	CHECK_RENDER("a {%- if true -%} b {%- endif -%} c", env, "abc");
}

TEST(key_and_git_branch)
{
	static const char *const env[] = {"MIRRORD_KEY=k123", "MIRRORD_BRANCH_NAME=feat/x", NULL};
	static const char *const env2[] = {NULL};

	CHECK_RENDER("{{ key }}", env, "k123");
	CHECK_RENDER("{{ git_branch }}", env, "feat/x");
	CHECK_RENDER("{{ git_branch | default(value='main') }}", env2, "main");
}

TEST(key_from_file)
{
	static const char *const env[] = {NULL};
	const char *text = "{\"key\": \"mine\", \"kube_context\": \"s-{{ key }}\"}";
	struct cfg_source src = {.text = text,
				 .text_len = strlen(text),
				 .env = env,
				 .no_discover = true,
				 .path = "t.json"};
	struct err e = {0};
	struct cfg *c = NULL;

	CHECK_OK(cfg_load(&src, &c, &e));
	REQUIRE(c);
	CHECK_STR(c->kube_context, "s-mine");
	CHECK_STR(c->key, "mine");
	cfg_free(c);
}

TEST(unquoted_injection)
{
	static const char *const env[] = {"DNS=false", NULL};
	const char *text = "{\"feature\": {\"network\": {\"dns\": {{ get_env(name=\"DNS\", "
			   "default=true) }}}}}";
	struct cfg_source src = {.text = text,
				 .text_len = strlen(text),
				 .env = env,
				 .no_discover = true,
				 .path = "t.json"};
	struct err e = {0};
	struct cfg *c = NULL;

	CHECK_OK(cfg_load(&src, &c, &e));
	REQUIRE(c);
	CHECK(!c->feature.network.dns.enabled);
	cfg_free(c);
}

TAP_MAIN()
