/* The mount plan: which top-level directories are local in full (with
 * directory exceptions), checked against vfs_route() itself. */
#include <strings.h>

#include "tests/unit/tap.h"
#include "vfs/vfs.h"

static const char *const no_env[] = {NULL};

static const struct vfs_router_env env_std = {
	.home = "/home/u",
	.cwd = "/work/proj",
	.tmpdir = "/tmp",
	.program = "/usr/bin/python3",
};

struct fixture {
	struct cfg *cfg;
	struct vfs_router *r;
	struct vfs_plan *plan;
};

static struct fixture setup_env(const char *json, const struct vfs_router_env *env)
{
	struct cfg_source src = {.text = json,
				 .text_len = strlen(json),
				 .env = no_env,
				 .no_discover = true,
				 .path = "test.json"};
	struct fixture f = {0};
	struct err e = {0};

	if (cfg_load(&src, &f.cfg, &e) < 0)
		TAP_FAIL("cfg_load: %s", e.msg);
	REQUIRE(f.cfg);
	if (vfs_router_new(f.cfg, env, &f.r, &e) < 0)
		TAP_FAIL("vfs_router_new: %s", e.msg);
	REQUIRE(f.r);
	CHECK_OK(vfs_plan_new(f.r, &f.plan));
	REQUIRE(f.plan);
	return f;
}

static struct fixture setup(const char *json)
{
	return setup_env(json, &env_std);
}

static void teardown(struct fixture *f)
{
	vfs_plan_free(f->plan);
	vfs_router_free(f->r);
	cfg_free(f->cfg);
}

static const struct vfs_plan_entry *entry(const struct fixture *f, const char *root)
{
	const struct vfs_plan_entry *e = vfs_plan_find(f->plan, root);

	if (!e)
		TAP_FAIL("no plan entry for %s", root);
	REQUIRE(e);
	return e;
}

/* Provable with exactly the exceptions listed ("" for none, else
 * comma-separated in order). */
#define PROVABLE(f, root, excepts)                                                                 \
	do {                                                                                       \
		const struct vfs_plan_entry *_e = entry(&(f), (root));                             \
		char _got[256] = "";                                                               \
		if (!_e->provable)                                                                 \
			TAP_FAIL("%s not provable: %s", (root), _e->why);                          \
		for (size_t _i = 0; _i < _e->n_except; _i++) {                                     \
			if (_i)                                                                    \
				strcat(_got, ",");                                                 \
			strcat(_got, _e->except[_i]);                                              \
		}                                                                                  \
		CHECK_STR(_got, (excepts));                                                        \
		CHECK(_e->except && _e->except[_e->n_except] == NULL);                             \
	} while (0)

#define UNPROVABLE(f, root, why_part)                                                              \
	do {                                                                                       \
		const struct vfs_plan_entry *_e = entry(&(f), (root));                             \
		CHECK(!_e->provable);                                                              \
		CHECK_CONTAINS(_e->why, (why_part));                                               \
	} while (0)

/* Every path built from these names under each provable root must route
 * local for every flag combination, unless its first component below the
 * root is an exception (compared caselessly). */
static void verify_plan(const struct fixture *f)
{
	static const char *const names[] = {"u",     "U",      ".kube", "hosts", "x.py",
					    "share", "lib",    "etc",	"ssl",	 "certs",
					    "proj",  "config", "a b",	".",	 "resolv.conf"};
	const size_t nn = ARRAY_SIZE(names);
	char path[512];

	for (size_t i = 0; i < vfs_plan_count(f->plan); i++) {
		const struct vfs_plan_entry *e = vfs_plan_get(f->plan, i);

		if (!e->provable)
			continue;
		for (size_t a = 0; a <= nn; a++)
			for (size_t b = 0; b <= nn; b++)
				for (size_t c = 0; c <= nn; c++) {
					bool excepted = false;
					snprintf(path, sizeof(path), "%s%s%s%s%s%s%s", e->root,
						 a < nn ? "/" : "", a < nn ? names[a] : "",
						 a < nn && b < nn ? "/" : "",
						 a < nn && b < nn ? names[b] : "",
						 a < nn && b < nn && c < nn ? "/" : "",
						 a < nn && b < nn && c < nn ? names[c] : "");
					for (size_t x = 0; a < nn && x < e->n_except; x++)
						if (strcasecmp(e->except[x], names[a]) == 0)
							excepted = true;
					if (excepted)
						continue;
					for (unsigned fl = 0; fl < 4; fl++) {
						struct vfs_decision d;
						CHECK_OK(vfs_route(f->r, path, fl, &d));
						if (d.verdict != VFS_LOCAL || strcmp(d.path, path))
							TAP_FAIL("plan says %s is local, but %s "
								 "(flags %u) is %s -> %s",
								 e->root, path, fl,
								 vfs_verdict_name(d.verdict),
								 d.path);
					}
				}
	}
}

TEST(default_config)
{
	struct fixture f = setup("{}");

	CHECK_UINT(vfs_plan_count(f.plan), >=, 20);
	PROVABLE(f, "/usr", "");
	PROVABLE(f, "/proc", "");
	PROVABLE(f, "/sys", "");
	PROVABLE(f, "/dev", "");
	PROVABLE(f, "/lib", "");
	PROVABLE(f, "/bin", "");
	PROVABLE(f, "/sbin", "");
	PROVABLE(f, "/opt", "");
	PROVABLE(f, "/run", "");
	PROVABLE(f, "/snap", "");
	PROVABLE(f, "/nix", "");
	PROVABLE(f, "/tmp", "");
	/* ~/.kube, ~/.config/gcloud, ~/.azure are not found */
	PROVABLE(f, "/home", "u");
	/* /etc/hosts, /etc/resolv.conf, /etc/hostname are remote */
	UNPROVABLE(f, "/etc", "default remote list[0] \"^/etc/resolv.conf$\" may match below /etc");
	UNPROVABLE(f, "/var", "no local rule covers every path under /var (mode read)");
	UNPROVABLE(f, "/lib64", "no local rule covers");
	UNPROVABLE(f, "/root", "no local rule covers");
	UNPROVABLE(f, "/srv", "no local rule covers");
	verify_plan(&f);
	teardown(&f);
}

TEST(user_pattern_into_usr)
{
	struct fixture f =
		setup("{\"feature\": {\"fs\": {\"read_only\": [\"^/usr/local(/|$)\"]}}}");

	UNPROVABLE(f, "/usr", "feature.fs.read_only[0] \"^/usr/local(/|$)\" may match below /usr");
	PROVABLE(f, "/lib", "");
	verify_plan(&f);
	teardown(&f);

	/* unanchored: reaches everywhere */
	f = setup("{\"feature\": {\"fs\": {\"not_found\": [\"secret\"]}}}");
	UNPROVABLE(f, "/usr", "feature.fs.not_found[0] \"secret\" may match below /usr");
	UNPROVABLE(f, "/proc", "may match below /proc");
	verify_plan(&f);
	teardown(&f);

	/* a pattern that matches the root itself */
	f = setup("{\"feature\": {\"fs\": {\"read_write\": [\"^/usr\"]}}}");
	UNPROVABLE(f, "/usr", "feature.fs.read_write[0] \"^/usr\" matches /usr");
	teardown(&f);
}

TEST(directory_exceptions)
{
	struct fixture f =
		setup("{\"feature\": {\"fs\": {"
		      "\"read_only\": [\"^/usr/share/app/\", \"^/USR/Lib/python3/x\\\\.py$\"], "
		      "\"read_write\": [\"^/opt/data/(a|b)\"], "
		      "\"not_found\": [\"^/usr/share/secret\"], "
		      "\"mapping\": {\"^/dev/shm/(.*)\": \"/tmp/$1\"}}}}");

	PROVABLE(f, "/usr", "share,Lib");
	PROVABLE(f, "/opt", "data");
	PROVABLE(f, "/dev", "shm");
	verify_plan(&f);
	teardown(&f);
}

TEST(literal_prefix_refusals)
{
	static const char *const bad[] = {
		"^/usr/lib|/x",		 /* top-level alternation */
		"^/usr/(?i)lib/x",	 /* inline options */
		"^/usr/libs?/x",	 /* the last literal is optional */
		"^/usr/l[i]b/x",	 /* a class before the name ends */
		"^/usr/\\\\Qlib\\\\E/x", /* quoting */
		"^/usr/lib",		 /* only a prefix of a name */
		"^/usr/lib$",		 /* a file directly under the root */
		"^/usr//x",		 /* an empty name */
		"^/usr/../x",		 /* a dot name */
		"/usr/lib/x",		 /* not anchored */
		"^/usr/.*/x",		 /* a wildcard name */
		"^/usr/lib\\\\d/x",	 /* an escape class */
	};
	char json[512];

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct fixture f;
		snprintf(json, sizeof(json), "{\"feature\": {\"fs\": {\"read_only\": [\"%s\"]}}}",
			 bad[i]);
		f = setup(json);
		if (entry(&f, "/usr")->provable)
			TAP_FAIL("%s: /usr should not be provable", bad[i]);
		verify_plan(&f);
		teardown(&f);
	}
}

TEST(user_local_overrides_defaults)
{
	struct fixture f = setup("{\"feature\": {\"fs\": {"
				 "\"local\": [\"^/etc(/|$)\", \"^/var(/|$)\", \"^/srv/x\"]}}}");

	/* step 5 comes before the default remote list (step 7) */
	PROVABLE(f, "/etc", "");
	PROVABLE(f, "/var", "");
	UNPROVABLE(f, "/srv", "no local rule covers");
	verify_plan(&f);
	teardown(&f);

	/* ... but not before the user's own remote lists */
	f = setup("{\"feature\": {\"fs\": {\"local\": [\"^/etc(/|$)\"], "
		  "\"read_only\": [\"^/etc/app/\"]}}}");
	PROVABLE(f, "/etc", "app");
	verify_plan(&f);
	teardown(&f);
}

TEST(modes)
{
	struct vfs_router_env env = env_std;
	struct fixture f =
		setup("{\"feature\": {\"fs\": {\"mode\": \"local\", \"not_found\": [\"x\"]}}}");

	for (size_t i = 0; i < vfs_plan_count(f.plan); i++) {
		const struct vfs_plan_entry *e = vfs_plan_get(f.plan, i);
		CHECK(e->provable);
		CHECK_UINT(e->n_except, ==, 0);
	}
	verify_plan(&f);
	teardown(&f);

	/* targetless: localwithoverrides needs no covering local rule */
	env.targetless = true;
	f = setup_env("{}", &env);
	PROVABLE(f, "/var", "");
	PROVABLE(f, "/srv", "");
	PROVABLE(f, "/home", "u");
	UNPROVABLE(f, "/etc", "default remote list");
	verify_plan(&f);
	teardown(&f);

	f = setup("{\"feature\": {\"fs\": \"write\"}}");
	PROVABLE(f, "/usr", "");
	UNPROVABLE(f, "/var", "(mode write)");
	verify_plan(&f);
	teardown(&f);
}

TEST(check_any_directory)
{
	struct fixture f = setup("{}");
	struct vfs_plan_entry e;

	/* the working directory is local through its dynamic entry */
	CHECK_OK(vfs_plan_check(f.r, "/work/proj", &e));
	CHECK(e.provable);
	CHECK_UINT(e.n_except, ==, 0);
	vfs_plan_entry_done(&e);
	CHECK_OK(vfs_plan_check(f.r, "/usr/lib/x86_64-linux-gnu", &e));
	CHECK(e.provable);
	vfs_plan_entry_done(&e);
	CHECK_OK(vfs_plan_check(f.r, "/work/projX", &e));
	CHECK(!e.provable);
	vfs_plan_entry_done(&e);
	CHECK_OK(vfs_plan_check(f.r, "/etc/ssl", &e));
	CHECK(!e.provable);
	CHECK_CONTAINS(e.why, "^/etc/ssl/certs(/|$)");
	vfs_plan_entry_done(&e);
	CHECK_OK(vfs_plan_check(f.r, "/etc/apt", &e));
	CHECK(e.provable);
	vfs_plan_entry_done(&e);
	CHECK_INT(vfs_plan_check(f.r, "/", &e), ==, -EINVAL);
	CHECK_INT(vfs_plan_check(f.r, "/usr/", &e), ==, -EINVAL);
	CHECK_INT(vfs_plan_check(f.r, "usr", &e), ==, -EINVAL);
	CHECK_INT(vfs_plan_check(f.r, "/usr//lib", &e), ==, -EINVAL);
	CHECK_INT(vfs_plan_check(f.r, "/usr/..", &e), ==, -EINVAL);
	vfs_plan_entry_done(NULL);
	teardown(&f);
}

TAP_MAIN()
