/* sandbox_env_*: mirrord's feature.env rules and order, the default
 * excludes, wildcards, unset, mapping, and the dotenv parser (dotenvy
 * 0.15.7 behaviour, including its quirks). */
#include <fcntl.h>

#include "launcher/env.h"
#include "tests/unit/tap.h"

static const char *const no_env[] = {NULL};

static struct cfg *load(const char *text)
{
	struct cfg_source src = {.text = text,
				 .text_len = strlen(text),
				 .env = no_env,
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

static char *const pod[] = {
	"PATH=/pod/bin",
	"HOME=/root",
	"PWD=/app",
	"JAVA_HOME=/pod/java",
	"DATABASE_USER=app",
	"DATABASE_PASSWORD=secret",
	"MY_APP_MODE=prod",
	"MY_APP_X=1",
	"REGION=eu-1",
	"KUBERNETES_SERVICE_HOST=10.0.0.1",
	"AWS_PROFILE=pod-profile",
	NULL,
};

static char *const local[] = {
	"PATH=/usr/bin:/bin", "HOME=/home/me",	  "PWD=/work", "TERM=xterm",
	"REGION=local",	      "Aws_Profile=mine", NULL,
};

/* Builds with cfg text; fails the test on error. Caller frees. */
static char **build(const char *json, char *const *remote, char *const *loc)
{
	struct cfg *c = load(json);
	struct err e = {0};
	char **env = NULL;
	int r = sandbox_env_build(c, remote, loc, &env, &e);

	if (r < 0)
		TAP_FAIL("sandbox_env_build: %d %s", r, e.msg);
	REQUIRE(r >= 0 && env);
	CHECK_INT(r, ==, sandbox_env_count(env));
	cfg_free(c);
	return env;
}

#define GET(env, name) sandbox_env_get(env, name)

TEST(wildmatch)
{
	CHECK(sandbox_env_wildmatch("*", ""));
	CHECK(sandbox_env_wildmatch("*", "ANY"));
	CHECK(sandbox_env_wildmatch("", ""));
	CHECK(!sandbox_env_wildmatch("", "A"));
	CHECK(sandbox_env_wildmatch("MY_APP_*", "MY_APP_"));
	CHECK(sandbox_env_wildmatch("MY_APP_*", "MY_APP_MODE"));
	CHECK(!sandbox_env_wildmatch("MY_APP_*", "XMY_APP_MODE"));
	CHECK(sandbox_env_wildmatch("A?C", "ABC"));
	CHECK(!sandbox_env_wildmatch("A?C", "AC"));
	CHECK(!sandbox_env_wildmatch("A?C", "ABBC"));
	CHECK(sandbox_env_wildmatch("*_HOST", "KUBERNETES_SERVICE_HOST"));
	CHECK(sandbox_env_wildmatch("*S*V*E*", "KUBERNETES_SERVICE_HOST"));
	CHECK(sandbox_env_wildmatch("a*b*c", "aXbYbZc"));
	CHECK(!sandbox_env_wildmatch("a*b*c", "aXbYbZ"));
	CHECK(sandbox_env_wildmatch("**?", "x"));
	CHECK(!sandbox_env_wildmatch("FOO", "foo"));	/* case-sensitive */
	CHECK(!sandbox_env_wildmatch("FOO", "FOOBAR")); /* whole name */
	CHECK(sandbox_env_wildmatch("CAF?", "CAF\xc3\xa9"));
	CHECK(!sandbox_env_wildmatch("CAF??", "CAF\xc3\xa9"));
	CHECK(sandbox_env_wildmatch("*?", "\xc3\xa9"));
	CHECK(!sandbox_env_wildmatch("*??", "\xc3\xa9"));
}

TEST(default_takes_everything_but_default_excludes)
{
	char **env = build("{}", pod, local);

	/* PATH, HOME, PWD, JAVA_HOME stay local (or absent) */
	CHECK_STR(GET(env, "PATH"), "/usr/bin:/bin");
	CHECK_STR(GET(env, "HOME"), "/home/me");
	CHECK_STR(GET(env, "PWD"), "/work");
	CHECK(GET(env, "JAVA_HOME") == NULL);
	/* the pod wins over local */
	CHECK_STR(GET(env, "REGION"), "eu-1");
	CHECK_STR(GET(env, "DATABASE_PASSWORD"), "secret");
	CHECK_STR(GET(env, "KUBERNETES_SERVICE_HOST"), "10.0.0.1");
	CHECK_STR(GET(env, "TERM"), "xterm");
	CHECK_STR(GET(env, "PODENV_TARGET"), "targetless");
	sandbox_env_free(env);
}

TEST(default_excludes_list)
{
	struct cfg *c = load("{}");
	static const char *const ex[] = {"PATH",
					 "HOME",
					 "PWD",
					 "PYTHONPATH",
					 "CLASSPATH",
					 "GOPATH",
					 "GOMODCACHE",
					 "RUST_LOG",
					 "MIRRORD_LOG",
					 "_JAVA_OPTIONS",
					 "BUNDLE_PATH",
					 "DOTNET_EnableDiagnostics",
					 "BUNDLER_ORIG_BUNDLER_ORIG_MANPATH"};

	for (size_t i = 0; i < sizeof(ex) / sizeof(ex[0]); i++)
		if (sandbox_env_selected(&c->feature.env, ex[i]))
			TAP_FAIL("%s should be excluded by default", ex[i]);
	/* exact names: relatives are taken */
	CHECK(sandbox_env_selected(&c->feature.env, "PATHX"));
	CHECK(sandbox_env_selected(&c->feature.env, "path"));
	CHECK(sandbox_env_selected(&c->feature.env, "DOTNET_ENABLEDIAGNOSTICS"));
	cfg_free(c);
}

TEST(include)
{
	char **env = build("{\"feature\":{\"env\":{\"include\":\"DATABASE_USER;MY_APP_*\"}}}", pod,
			   local);

	CHECK_STR(GET(env, "DATABASE_USER"), "app");
	CHECK_STR(GET(env, "MY_APP_MODE"), "prod");
	CHECK_STR(GET(env, "MY_APP_X"), "1");
	CHECK(GET(env, "DATABASE_PASSWORD") == NULL);
	CHECK_STR(GET(env, "REGION"), "local"); /* not included: the local value stays */
	sandbox_env_free(env);
}

TEST(include_cannot_reinclude_default_excludes)
{
	/* mirrord's doc says include re-includes them; its agent does not. */
	char **env = build("{\"feature\":{\"env\":{\"include\":[\"PATH\",\"HOME\",\"*\"]}}}", pod,
			   local);

	CHECK_STR(GET(env, "PATH"), "/usr/bin:/bin");
	CHECK_STR(GET(env, "HOME"), "/home/me");
	CHECK_STR(GET(env, "REGION"), "eu-1");
	sandbox_env_free(env);
}

TEST(exclude)
{
	char **env =
		build("{\"feature\":{\"env\":{\"exclude\":[\"DATABASE_PASSWORD\",\"MY_APP_?\"]}}}",
		      pod, local);

	CHECK(GET(env, "DATABASE_PASSWORD") == NULL);
	CHECK(GET(env, "MY_APP_X") == NULL);
	CHECK_STR(GET(env, "MY_APP_MODE"), "prod"); /* ? is exactly one character */
	CHECK_STR(GET(env, "DATABASE_USER"), "app");
	CHECK_STR(GET(env, "PATH"), "/usr/bin:/bin");
	sandbox_env_free(env);
}

TEST(exclude_everything_and_env_false)
{
	char **a = build("{\"feature\":{\"env\":{\"exclude\":\"*\"}}}", pod, local);
	char **b = build("{\"feature\":{\"env\":false}}", pod, local);

	CHECK_STR(GET(a, "REGION"), "local");
	CHECK(GET(a, "DATABASE_USER") == NULL);
	CHECK_STR(GET(b, "REGION"), "local");
	CHECK(GET(b, "DATABASE_USER") == NULL);
	/* only the local variables and PODENV_TARGET (AWS_PROFILE unset by magic) */
	CHECK_INT(sandbox_env_count(b), ==, 6);
	sandbox_env_free(a);
	sandbox_env_free(b);
}

TEST(include_and_exclude)
{
	char **env = build("{\"feature\":{\"env\":{\"include\":\"DATABASE_*;MY_APP_*\","
			   "\"exclude\":\"*PASSWORD\"}}}",
			   pod, local);

	CHECK_STR(GET(env, "DATABASE_USER"), "app");
	CHECK(GET(env, "DATABASE_PASSWORD") == NULL);
	CHECK_STR(GET(env, "MY_APP_MODE"), "prod");
	CHECK_STR(GET(env, "REGION"), "local");
	sandbox_env_free(env);
}

TEST(override_always_set)
{
	char **env = build("{\"feature\":{\"env\":{\"exclude\":\"*\",\"override\":{"
			   "\"REGION\":\"eu-2\",\"PATH\":\"/override/bin\",\"NEW\":\"v=1\"}}}}",
			   pod, local);

	/* override sets even what the filter left out and the default excludes */
	CHECK_STR(GET(env, "REGION"), "eu-2");
	CHECK_STR(GET(env, "PATH"), "/override/bin");
	CHECK_STR(GET(env, "NEW"), "v=1");
	sandbox_env_free(env);
}

TEST(unset_case_insensitive)
{
	char **env = build("{\"feature\":{\"env\":{\"unset\":[\"region\",\"term\"],"
			   "\"override\":{\"Region\":\"x\"}},\"magic\":{\"aws\":false}}}",
			   pod, local);

	CHECK(GET(env, "REGION") == NULL);
	CHECK(GET(env, "Region") == NULL); /* unset wins over override */
	CHECK(GET(env, "TERM") == NULL);   /* local variables too */
	CHECK_STR(GET(env, "AWS_PROFILE"), "pod-profile");
	CHECK_STR(GET(env, "Aws_Profile"), "mine");
	CHECK_STR(GET(env, "PATH"), "/usr/bin:/bin");
	sandbox_env_free(env);
}

TEST(magic_aws_unsets_aws_profile)
{
	char **env = build("{}", pod, local);

	CHECK(GET(env, "AWS_PROFILE") == NULL);
	CHECK(GET(env, "Aws_Profile") == NULL);
	sandbox_env_free(env);
}

TEST(unset_can_remove_podenv_target)
{
	char **env = build("{\"feature\":{\"env\":{\"unset\":\"podenv_target\"}}}", pod, local);

	CHECK(GET(env, "PODENV_TARGET") == NULL);
	sandbox_env_free(env);
}

TEST(podenv_target)
{
	char **env = build("{\"target\":\"pod/bear-pod/container/main\"}", NULL, local);

	CHECK_STR(GET(env, "PODENV_TARGET"), "pod/bear-pod/container/main");
	sandbox_env_free(env);
}

TEST(mapping_on_names_literal_value)
{
	char **env = build("{\"feature\":{\"env\":{\"mapping\":{"
			   "\"^MY_APP_(.*)$\":\"mapped-$1\",\"^DATABASE\":\"db\"},"
			   "\"override\":{\"MY_APP_MODE\":\"dev\"}}}}",
			   pod, local);

	/* the replacement is the value as written; override comes after */
	CHECK_STR(GET(env, "MY_APP_X"), "mapped-$1");
	CHECK_STR(GET(env, "MY_APP_MODE"), "dev");
	CHECK_STR(GET(env, "DATABASE_USER"), "db");
	CHECK_STR(GET(env, "DATABASE_PASSWORD"), "db");
	/* mapping sees only pod (and env_file) variables, never local ones */
	CHECK_STR(GET(env, "TERM"), "xterm");
	sandbox_env_free(env);
}

TEST(mapping_first_in_file_order)
{
	char **env = build("{\"feature\":{\"env\":{\"mapping\":{"
			   "\"REG\":\"first\",\"REGION\":\"second\"}}}}",
			   pod, local);

	CHECK_STR(GET(env, "REGION"), "first");
	sandbox_env_free(env);
}

TEST(empty_and_null_remote)
{
	char *const empty[] = {NULL};
	char **a = build("{}", empty, local);
	char **b = build("{}", NULL, NULL);

	CHECK_STR(GET(a, "REGION"), "local");
	CHECK_INT(sandbox_env_count(a), ==, 6); /* 6 local - Aws_Profile + PODENV_TARGET */
	CHECK_INT(sandbox_env_count(b), ==, 1);
	CHECK_STR(GET(b, "PODENV_TARGET"), "targetless");
	sandbox_env_free(a);
	sandbox_env_free(b);
}

TEST(duplicates_and_malformed)
{
	char *const remote[] = {"A=1", "B=x", "A=2", "NOEQUALS", "=value", "C=", "D==d", NULL};
	char *const loc[] = {"L=1", "X=a", "L=2", "junk", NULL};
	char **env = build("{}", remote, loc);

	CHECK_STR(GET(env, "A"), "2");
	CHECK_STR(GET(env, "C"), "");
	CHECK_STR(GET(env, "D"), "=d");
	CHECK_STR(GET(env, "L"), "2");
	CHECK(GET(env, "NOEQUALS") == NULL);
	CHECK(GET(env, "junk") == NULL);
	/* each name once; local order first: L X A B C D PODENV_TARGET */
	CHECK_INT(sandbox_env_count(env), ==, 7);
	CHECK_STR(env[0], "L=2");
	CHECK_STR(env[1], "X=a");
	CHECK_STR(env[2], "A=2");
	CHECK_STR(env[6], "PODENV_TARGET=targetless");
	CHECK(env[7] == NULL);
	sandbox_env_free(env);
}

TEST(bad_override_name)
{
	struct cfg *c = load("{\"feature\":{\"env\":{\"override\":{\"A=B\":\"x\"}}}}");
	struct err e = {0};
	char **env = NULL;

	CHECK_INT(sandbox_env_build(c, pod, local, &env, &e), ==, -EINVAL);
	CHECK_CONTAINS(e.msg, "feature.env.override");
	CHECK(env == NULL);
	cfg_free(c);
}

TEST(set_get_remove)
{
	char **env = NULL;

	CHECK_INT(sandbox_env_set(&env, "A", "1"), ==, 0);
	CHECK_INT(sandbox_env_set(&env, "B", "2"), ==, 0);
	CHECK_INT(sandbox_env_set(&env, "A", "3"), ==, 0);
	CHECK_INT(sandbox_env_count(env), ==, 2);
	CHECK_STR(env[0], "A=3");
	CHECK_STR(GET(env, "B"), "2");
	CHECK(GET(env, "AB") == NULL);
	CHECK_INT(sandbox_env_set(&env, "", "x"), ==, -EINVAL);
	CHECK_INT(sandbox_env_set(&env, "X=Y", "x"), ==, -EINVAL);
	CHECK_INT(sandbox_env_set(&env, "A", NULL), ==, 0);
	CHECK(GET(env, "A") == NULL);
	CHECK_INT(sandbox_env_count(env), ==, 1);
	CHECK_INT(sandbox_env_set(&env, "NOPE", NULL), ==, 0);
	sandbox_env_free(env);
	sandbox_env_free(NULL);

	env = build("{}", pod, local);
	CHECK_INT(sandbox_env_set(&env, "PODENV_ROOT", "/run/podenv/root"), ==, 0);
	CHECK_STR(GET(env, "PODENV_ROOT"), "/run/podenv/root");
	sandbox_env_free(env);
}

TEST(parse_getenv_list)
{
	struct buf b = {0};
	struct proto_list l;
	struct err e = {0};
	char **env = NULL;
	static const char *const items[] = {"A=1", "bogus", "B=2=3", "=x", "C="};

	for (size_t i = 0; i < 5; i++)
		proto_put_str(&b, items[i]);
	l = (struct proto_list){.count = 5, .data = buf_data(&b), .len = (uint32_t)buf_len(&b)};
	CHECK_INT(sandbox_env_parse(&l, &env, &e), ==, 3);
	CHECK_STR(env[0], "A=1");
	CHECK_STR(env[1], "B=2=3");
	CHECK_STR(env[2], "C=");
	CHECK(env[3] == NULL);
	sandbox_env_free(env);

	l = (struct proto_list){.count = 0, .data = NULL, .len = 0};
	CHECK_INT(sandbox_env_parse(&l, &env, &e), ==, 0);
	REQUIRE(env);
	CHECK(env[0] == NULL);
	sandbox_env_free(env);
	buf_done(&b);
}

/* --- dotenv -------------------------------------------------------------- */

static char **dotenv(const char *text, char *const *lookup)
{
	struct err e = {0};
	char **out = NULL;
	int r = sandbox_env_file_parse(text, strlen(text), "t.env", lookup, &out, &e);

	if (r < 0)
		TAP_FAIL("parse failed: %d %s", r, e.msg);
	REQUIRE(r >= 0 && out);
	return out;
}

static int dotenv_err(const char *text, struct err *e)
{
	char **out = NULL;
	int r = sandbox_env_file_parse(text, strlen(text), "t.env", NULL, &out, e);

	CHECK(out == NULL);
	return r;
}

/* dotenvy's own test_parse_line_env. */
TEST(dotenv_basic)
{
	char **v = dotenv("\nKEY=1\nKEY2=\"2\"\nKEY3='3'\nKEY4='fo ur'\nKEY5=\"fi ve\"\n"
			  "KEY6=s\\ ix\nKEY7=\nKEY8=     \nKEY9=   # foo\n"
			  "KEY10  =\"whitespace before =\"\nKEY11=    \"whitespace after =\"\n"
			  "export=\"export as key\"\nexport   SHELL_LOVER=1\n",
			  NULL);
	static const char *const want[] = {
		"KEY=1",
		"KEY2=2",
		"KEY3=3",
		"KEY4=fo ur",
		"KEY5=fi ve",
		"KEY6=s ix",
		"KEY7=",
		"KEY8=",
		"KEY9=",
		"KEY10=whitespace before =",
		"KEY11=whitespace after =",
		"export=export as key",
		"SHELL_LOVER=1",
	};

	CHECK_INT(sandbox_env_count(v), ==, 13);
	for (size_t i = 0; i < 13 && v[i]; i++)
		CHECK_STR(v[i], want[i]);
	sandbox_env_free(v);
}

/* dotenvy's test_parse_value_escapes. */
TEST(dotenv_escapes)
{
	char **v =
		dotenv("KEY=my\\ cool\\ value\nKEY2=\\$sweet\nKEY3=\"awesome stuff \\\"mang\\\"\"\n"
		       "KEY4='sweet $\\fgs'\\''fds'\nKEY5=\"'\\\"yay\\\\\"\\ \"stuff\"\n"
		       "KEY6=\"lol\" #well you see when I say lol wh\nKEY7=\"line 1\\nline 2\"\n",
		       NULL);

	CHECK_INT(sandbox_env_count(v), ==, 7);
	CHECK_STR(GET(v, "KEY"), "my cool value");
	CHECK_STR(GET(v, "KEY2"), "$sweet");
	CHECK_STR(GET(v, "KEY3"), "awesome stuff \"mang\"");
	CHECK_STR(GET(v, "KEY4"), "sweet $\\fgs'fds");
	CHECK_STR(GET(v, "KEY5"), "'\"yay\\ stuff");
	CHECK_STR(GET(v, "KEY6"), "lol");
	CHECK_STR(GET(v, "KEY7"), "line 1\nline 2");
	sandbox_env_free(v);
}

TEST(dotenv_comments_and_blank_lines)
{
	char **v = dotenv("# comment\n   # indented comment \"with a quote\n\n  \t\n"
			  "A=a#not-a-comment\nB=b # comment\nC='c # kept'\r\nD=\"d\" # c\n",
			  NULL);

	CHECK_INT(sandbox_env_count(v), ==, 4);
	CHECK_STR(GET(v, "A"), "a#not-a-comment");
	CHECK_STR(GET(v, "B"), "b");
	CHECK_STR(GET(v, "C"), "c # kept");
	CHECK_STR(GET(v, "D"), "d");
	sandbox_env_free(v);
}

TEST(dotenv_multiline_and_keys)
{
	char **v = dotenv("CERT=\"-----BEGIN-----\nabc\n-----END-----\"\nS='a\nb'\n"
			  "_u.n.d=1\nLAST=end",
			  NULL);

	CHECK_STR(GET(v, "CERT"), "-----BEGIN-----\nabc\n-----END-----");
	CHECK_STR(GET(v, "S"), "a\nb");
	CHECK_STR(GET(v, "_u.n.d"), "1");
	CHECK_STR(GET(v, "LAST"), "end");
	sandbox_env_free(v);
}

TEST(dotenv_substitution)
{
	char *const lookup[] = {"USER=me", "KEY11=from-env", NULL};
	char **v = dotenv("KEY1=test_user\nKEY1_1=sep\nKEY=\">$KEY1_1<>$KEY1}<>$KEY1{<\"\n"
			  "B=${KEY1}\nE=${USER}@host\nKEY11=file\nP=\">${KEY11}<\"\n"
			  "U=>$NOPE<${NOPE2}\nQ='$KEY1'\nX=\\$KEY1\nD=$$KEY1\n",
			  lookup);

	/* $NAME stops at '_' (only letters and digits), as in dotenvy */
	CHECK_STR(GET(v, "KEY"), ">test_user_1<>test_user}<>test_user{<");
	CHECK_STR(GET(v, "B"), "test_user");
	CHECK_STR(GET(v, "E"), "me@host");
	CHECK_STR(GET(v, "P"), ">from-env<"); /* the environment wins */
	CHECK_STR(GET(v, "U"), "><");
	CHECK_STR(GET(v, "Q"), "$KEY1");
	CHECK_STR(GET(v, "X"), "$KEY1");
	CHECK_STR(GET(v, "D"), "test_user");
	sandbox_env_free(v);
}

TEST(dotenv_duplicates_kept_in_order)
{
	char **v = dotenv("A=1\nA=2\nB=$A\n", NULL);

	CHECK_INT(sandbox_env_count(v), ==, 3);
	CHECK_STR(v[0], "A=1");
	CHECK_STR(v[1], "A=2");
	CHECK_STR(v[2], "B=2");
	sandbox_env_free(v);
}

TEST(dotenv_errors)
{
	struct err e = {0};

	CHECK_INT(dotenv_err("  invalid    \n", &e), ==, -EINVAL);
	CHECK_CONTAINS(e.msg, "t.env: line 1");
	CHECK_INT(dotenv_err("A=1\nvery bacon = yes indeed\n", &e), ==, -EINVAL);
	CHECK_CONTAINS(e.msg, "line 2");
	CHECK_INT(dotenv_err("=value\n", &e), ==, -EINVAL);
	CHECK_INT(dotenv_err("KEY=my uncool value\n", &e), ==, -EINVAL);
	CHECK_INT(dotenv_err("KEY2=\"why\n", &e), ==, -EINVAL);
	CHECK_INT(dotenv_err("KEY3='please stop''\n", &e), ==, -EINVAL);
	CHECK_INT(dotenv_err("KEY4=h\\8u\n", &e), ==, -EINVAL);
	CHECK_INT(dotenv_err("KEY=VALUE\nKEY1=>${KEY{<\n", &e), ==, -EINVAL);
	CHECK_CONTAINS(e.msg, "line 2");
	CHECK_INT(dotenv_err(".Key=VALUE\n", &e), ==, -EINVAL);
	CHECK_INT(dotenv_err("export\n", &e), ==, -EINVAL);
	/* dotenvy quirks kept: "$NAME" inside double quotes copies the
	 * closing quote, leaving the quote open; a last line without newline
	 * that ends in one blank */
	CHECK_INT(dotenv_err("A=\"$HOME\"\n", &e), ==, -EINVAL);
	CHECK_INT(dotenv_err("A=1 ", &e), ==, -EINVAL);
	/* values are not echoed */
	CHECK_INT(dotenv_err("PASSWORD=hunter2 hunter3\n", &e), ==, -EINVAL);
	CHECK(strstr(e.msg, "hunter") == NULL);
}

TEST(dotenv_nul_and_empty)
{
	struct err e = {0};
	char **out = NULL;

	CHECK_INT(sandbox_env_file_parse("A=x\0y\n", 6, "t.env", NULL, &out, &e), ==, -EINVAL);
	CHECK(out == NULL);
	CHECK_INT(sandbox_env_file_parse("", 0, "t.env", NULL, &out, &e), ==, 0);
	REQUIRE(out);
	CHECK(out[0] == NULL);
	sandbox_env_free(out);
}

/* --- env_file through the builder ------------------------------------------ */

static char *write_tmp(const char *text)
{
	char *path = strdup("/tmp/podenv-test-env-XXXXXX");
	int fd = mkstemp(path);

	REQUIRE(fd >= 0);
	REQUIRE(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	return path;
}

TEST(env_file_order)
{
	char *path = write_tmp("export REGION=from-file\nMY_APP_MODE=file\nFILE_ONLY=1\n"
			       "PATH=/file/bin\nSECRET=s\n");
	char *json = NULL;
	char **env;

	REQUIRE(asprintf(&json,
			 "{\"feature\":{\"env\":{\"env_file\":\"%s\",\"include\":\"REGION;MY_*\","
			 "\"mapping\":{\"^FILE_\":\"mapped\"},\"override\":{\"MY_APP_MODE\":"
			 "\"ovr\"},"
			 "\"unset\":\"secret\"}}}",
			 path) > 0);
	env = build(json, pod, local);
	/* pod < env_file < mapping < override; include filters only the pod */
	CHECK_STR(GET(env, "REGION"), "from-file");
	CHECK_STR(GET(env, "MY_APP_MODE"), "ovr");
	CHECK_STR(GET(env, "MY_APP_X"), "1");
	CHECK_STR(GET(env, "FILE_ONLY"), "mapped");
	CHECK_STR(GET(env, "PATH"), "/file/bin");
	CHECK(GET(env, "SECRET") == NULL);
	CHECK(GET(env, "DATABASE_USER") == NULL);
	sandbox_env_free(env);
	unlink(path);
	free(path);
	free(json);
}

TEST(env_file_substitutes_from_local_env)
{
	char *path = write_tmp("GREETING=\"hi ${HOME}\"\n");
	char *json = NULL;
	char **env;

	REQUIRE(asprintf(&json, "{\"feature\":{\"env\":{\"env_file\":\"%s\"}}}", path) > 0);
	env = build(json, pod, local);
	CHECK_STR(GET(env, "GREETING"), "hi /home/me");
	sandbox_env_free(env);
	unlink(path);
	free(path);
	free(json);
}

TEST(env_file_errors)
{
	struct cfg *c = load("{\"feature\":{\"env\":{\"env_file\":\"/nonexistent/podenv.env\"}}}");
	struct err e = {0};
	char **env = NULL;
	char *path = write_tmp("A=1\nB=\"open\n");
	char *json = NULL;

	CHECK_INT(sandbox_env_build(c, pod, local, &env, &e), ==, -ENOENT);
	CHECK_CONTAINS(e.msg, "feature.env.env_file: /nonexistent/podenv.env");
	CHECK(env == NULL);
	cfg_free(c);

	REQUIRE(asprintf(&json, "{\"feature\":{\"env\":{\"env_file\":\"%s\"}}}", path) > 0);
	c = load(json);
	err_clear(&e);
	CHECK_INT(sandbox_env_build(c, pod, local, &env, &e), ==, -EINVAL);
	CHECK_CONTAINS(e.msg, "line 2");
	CHECK_CONTAINS(e.msg, path);
	cfg_free(c);
	unlink(path);
	free(path);
	free(json);
}

TEST(env_file_from_env_var)
{
	/* MIRRORD_OVERRIDE_ENV_VARS_FILE (the --env-file flag) */
	char *path = write_tmp("FROM_FLAG=yes\n");
	char *var = NULL;
	struct cfg *c;
	struct err e = {0};
	char **env = NULL;

	REQUIRE(asprintf(&var, "MIRRORD_OVERRIDE_ENV_VARS_FILE=%s", path) > 0);
	{
		const char *const envp[] = {var, NULL};
		struct cfg_source src = {.text = "{}",
					 .text_len = 2,
					 .env = envp,
					 .no_discover = true,
					 .path = "t.json"};
		REQUIRE(cfg_load(&src, &c, &e) == 0);
	}
	CHECK_OK(sandbox_env_build(c, NULL, local, &env, &e));
	CHECK_STR(GET(env, "FROM_FLAG"), "yes");
	sandbox_env_free(env);
	cfg_free(c);
	unlink(path);
	free(path);
	free(var);
}

TAP_MAIN()
