/* `podenv config check|schema` (launcher/cmd_config.c, compiled into this
 * test): exit status 2 and one stderr line "podenv: config: <path>: …" for
 * each malformed file; 0 and the resolved JSON for the reference's examples. */
#include <fcntl.h>

#include "launcher/cmd_config.c"
#include "tests/unit/tap.h"

/* Runs cli_config_main with stdout/stderr captured into *out / *errout. */
static int run(char **argv, int argc, char **out, char **errout)
{
	FILE *o = tmpfile(), *e = tmpfile();
	int saved1 = dup(1), saved2 = dup(2), r;
	long n;

	REQUIRE(o && e && saved1 >= 0 && saved2 >= 0);
	fflush(stdout);
	fflush(stderr);
	dup2(fileno(o), 1);
	dup2(fileno(e), 2);
	r = cli_config_main(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(saved1, 1);
	dup2(saved2, 2);
	close(saved1);
	close(saved2);
	for (int i = 0; i < 2; i++) {
		FILE *f = i ? e : o;
		char **dst = i ? errout : out;
		n = ftell(f);
		rewind(f);
		*dst = calloc(1, (size_t)n + 1);
		REQUIRE(fread(*dst, 1, (size_t)n, f) == (size_t)n);
		fclose(f);
	}
	return r;
}

static const struct {
	const char *text, *want;
} bad[] = {
	{"{\"feature\": {\"network\": {\"incoming\": {\"mode\": \"stael\"}}}}",
	 "podenv: config: feature.network.incoming.mode: expected one of"},
	{"{\"feature\": {\"network\": {\"incomin\": {}}}}",
	 "podenv: config: feature.network.incomin: unknown field, did you mean \"incoming\"?"},
	{"{\"agent\": {\"ttl\": \"x\"}}", "podenv: config: agent.ttl: expected an integer"},
	{"{\"feature\": {\"fs\": {\"local\": [\"(\"]}}}",
	 "podenv: config: feature.fs.local[0]: invalid regular expression"},
	{"{\"feature\": {\"network\": {\"outgoing\": {\"filter\": {\"local\": "
	 "[\"1.2.3.0/40\"]}}}}}",
	 "podenv: config: feature.network.outgoing.filter.local[0]:"},
	{"{\n\"a\": }", "podenv: config: "},
};

TEST(check_malformed_exit_2)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char path[] = "/tmp/podenv-cfg-XXXXXX.json";
		int fd = mkstemps(path, 5);
		char *argv[] = {"config", "check", "-f", path, NULL};
		char *out, *err;

		REQUIRE(fd >= 0);
		REQUIRE(write(fd, bad[i].text, strlen(bad[i].text)) ==
			(ssize_t)strlen(bad[i].text));
		close(fd);
		CHECK_INT(run(argv, 4, &out, &err), ==, 2);
		CHECK_CONTAINS(err, bad[i].want);
		CHECK(strchr(err, '\n') == err + strlen(err) - 1); /* one line */
		CHECK_STR(out, "");
		free(out);
		free(err);
		unlink(path);
	}
}

TEST(check_examples)
{
	char *argv[] = {"config", "check", "-f", "tests/unit/config/data/complete.json",
			"-n",	  "other", NULL};
	char *out, *err;

	CHECK_INT(run(argv, 6, &out, &err), ==, 0);
	CHECK_CONTAINS(err, "podenv: config: loaded tests/unit/config/data/complete.json");
	CHECK_CONTAINS(err, "podenv: config: warning: telemetry: field is ignored");
	CHECK_CONTAINS(out, "\"path\": \"pod/bear-pod\"");
	CHECK_CONTAINS(out, "\"namespace\": \"other\"");
	CHECK_CONTAINS(out, "\"mode\": \"steal\"");
	free(out);
	free(err);
	setenv("TARGET", "pod/from-env", 1);
	argv[3] = "tests/unit/config/data/templated.json";
	CHECK_INT(run(argv, 4, &out, &err), ==, 0);
	CHECK_CONTAINS(out, "\"path\": \"pod/from-env\"");
	free(out);
	free(err);
	unsetenv("TARGET");
	CHECK_INT(run(argv, 4, &out, &err), ==, 0);
	CHECK_CONTAINS(out, "\"path\": \"pod/fallback\"");
	free(out);
	free(err);
}

TEST(usage_and_schema)
{
	char *a1[] = {"config", "schema", NULL};
	char *a2[] = {"config", "check", "--bogus", NULL};
	char *a3[] = {"config", "frobnicate", NULL};
	char *a4[] = {"config", "check", "-f", "/nonexistent/x.json", NULL};
	char *a5[] = {"config", "check", "-f", "x.toml", NULL};
	char *out, *err;

	CHECK_INT(run(a1, 2, &out, &err), ==, 0);
	CHECK_CONTAINS(out, "\"$schema\"");
	free(out);
	free(err);
	CHECK_INT(run(a2, 3, &out, &err), ==, 2);
	CHECK_CONTAINS(err, "unknown argument \"--bogus\"");
	free(out);
	free(err);
	CHECK_INT(run(a3, 2, &out, &err), ==, 2);
	free(out);
	free(err);
	CHECK_INT(run(a4, 4, &out, &err), ==, 2);
	CHECK_CONTAINS(err, "podenv: config: /nonexistent/x.json: cannot open");
	free(out);
	free(err);
	CHECK_INT(run(a5, 4, &out, &err), ==, 2);
	CHECK_CONTAINS(err, "not supported, use JSON or YAML");
	free(out);
	free(err);
}

TAP_MAIN()
