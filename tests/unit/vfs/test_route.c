/* vfs_route(): every rule class of research/mirrord.md §2.5, the default
 * lists, the dynamic entries, mapping, targetless, exec, the explanation,
 * the decision cache and skip_processes. */
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
	return f;
}

static struct fixture setup(const char *json)
{
	return setup_env(json, &env_std);
}

static void teardown(struct fixture *f)
{
	vfs_router_free(f->r);
	cfg_free(f->cfg);
}

/* Routes path and checks verdict, rule and pattern (NULL: none). */
#define EXPECT(f, path, flags, verdict_, rule_, pattern_)                                          \
	do {                                                                                       \
		struct vfs_decision _d;                                                            \
		const char *_p = (pattern_);                                                       \
		CHECK_OK(vfs_route((f).r, (path), (flags), &_d));                                  \
		if (_d.verdict != (verdict_) || _d.rule != (rule_))                                \
			TAP_FAIL("%s: got %s by %s, want %s by %s", (path),                        \
				 vfs_verdict_name(_d.verdict), vfs_rule_name(_d.rule),             \
				 vfs_verdict_name(verdict_), vfs_rule_name(rule_));                \
		if (_p)                                                                            \
			CHECK_STR(_d.pattern, _p);                                                 \
		else                                                                               \
			CHECK(_d.pattern == NULL);                                                 \
	} while (0)

static char *explain(const struct vfs_router *r, const char *path, unsigned flags)
{
	static char line[1024];
	struct vfs_decision d;

	if (vfs_route(r, path, flags, &d) < 0)
		return NULL;
	vfs_decision_format(&d, line, sizeof(line));
	return line;
}

TEST(defaults_read_mode)
{
	struct fixture f = setup("{\"target\": \"pod/p\"}");

	CHECK_INT(vfs_router_mode(f.r), ==, CFG_FS_READ);
	/* §2.3: remote read-only, overriding ^/etc(/|$) */
	EXPECT(f, "/etc/hostname", 0, VFS_REMOTE_RO, VFS_RULE_DEFAULT_REMOTE, "^/etc/hostname$");
	EXPECT(f, "/etc/hosts", 0, VFS_REMOTE_RO, VFS_RULE_DEFAULT_REMOTE, "^/etc/hosts$");
	EXPECT(f, "/etc/resolv.conf", 0, VFS_REMOTE_RO, VFS_RULE_DEFAULT_REMOTE,
	       "^/etc/resolv.conf$");
	EXPECT(f, "/etc/ssl/certs", 0, VFS_REMOTE_RO, VFS_RULE_DEFAULT_REMOTE,
	       "^/etc/ssl/certs(/|$)");
	EXPECT(f, "/etc/ssl/certs/ca-certificates.crt", 0, VFS_REMOTE_RO, VFS_RULE_DEFAULT_REMOTE,
	       "^/etc/ssl/certs(/|$)");
	/* §2.2 */
	EXPECT(f, "/etc/os-release", 0, VFS_LOCAL, VFS_RULE_DEFAULT_LOCAL, "^/etc(/|$)");
	EXPECT(f, "/etc/hosts.allow", 0, VFS_LOCAL, VFS_RULE_DEFAULT_LOCAL, "^/etc(/|$)");
	EXPECT(f, "/usr/lib/python3.11/os.txt", 0, VFS_LOCAL, VFS_RULE_DEFAULT_LOCAL, "^/usr(/|$)");
	EXPECT(f, "/usr", 0, VFS_LOCAL, VFS_RULE_DEFAULT_LOCAL, "^/usr(/|$)");
	EXPECT(f, "/home/bob/notes.txt", 0, VFS_LOCAL, VFS_RULE_DEFAULT_LOCAL, "^/home(/|$)");
	EXPECT(f, "/proc/self/maps", 0, VFS_LOCAL, VFS_RULE_DEFAULT_LOCAL, "^/proc(/|$)");
	EXPECT(f, "/tmp/x", 0, VFS_LOCAL, VFS_RULE_DEFAULT_LOCAL, "^/tmp(/|$)");
	EXPECT(f, "/var/tmp/x", 0, VFS_LOCAL, VFS_RULE_DEFAULT_LOCAL, "^/var/tmp(/|$)");
	EXPECT(f, "/", 0, VFS_LOCAL, VFS_RULE_DEFAULT_LOCAL, "^/$");
	EXPECT(f, "/app/lib/helper.py", 0, VFS_LOCAL, VFS_RULE_DEFAULT_LOCAL, ".\\.py$");
	EXPECT(f, "/app/node_modules/x/index.mjs", 0, VFS_LOCAL, VFS_RULE_DEFAULT_LOCAL,
	       "/node_modules");
	EXPECT(f, "/srv/x/libfoo.so", 0, VFS_LOCAL, VFS_RULE_DEFAULT_LOCAL, ".\\.so$");
	/* the working directory (dynamic) */
	EXPECT(f, "/work/proj", 0, VFS_LOCAL, VFS_RULE_CWD, "^/work/proj(/|$)");
	EXPECT(f, "/work/proj/data.bin", 0, VFS_LOCAL, VFS_RULE_CWD, "^/work/proj(/|$)");
	EXPECT(f, "/work/projection", 0, VFS_REMOTE_RO, VFS_RULE_MODE, NULL);
	/* the rest: the mode (read) */
	EXPECT(f, "/app/config.yaml", 0, VFS_REMOTE_RO, VFS_RULE_MODE, NULL);
	EXPECT(f, "/var/lib/data", 0, VFS_REMOTE_RO, VFS_RULE_MODE, NULL);
	EXPECT(f, "/lib64/x", 0, VFS_REMOTE_RO, VFS_RULE_MODE, NULL);
	teardown(&f);
}

TEST(patterns_are_caseless)
{
	struct fixture f = setup("{\"feature\": {\"fs\": {\"read_only\": [\"^/data/Config$\"]}}}");

	EXPECT(f, "/ETC/HOSTS", 0, VFS_REMOTE_RO, VFS_RULE_DEFAULT_REMOTE, "^/etc/hosts$");
	EXPECT(f, "/Usr/Bin/env", 0, VFS_LOCAL, VFS_RULE_DEFAULT_LOCAL, "^/usr(/|$)");
	EXPECT(f, "/DATA/config", 0, VFS_REMOTE_RO, VFS_RULE_READ_ONLY, "^/data/Config$");
	EXPECT(f, "/app/Main.PY", 0, VFS_LOCAL, VFS_RULE_DEFAULT_LOCAL, ".\\.py$");
	EXPECT(f, "/work/PROJ/x", 0, VFS_LOCAL, VFS_RULE_CWD, "^/work/proj(/|$)");
	EXPECT(f, "/HOME/U/.KUBE/config", 0, VFS_NOT_FOUND, VFS_RULE_DEFAULT_NOT_FOUND,
	       "^/home/u/\\.kube");
	teardown(&f);
}

TEST(default_remote_skipped_for_writes)
{
	struct fixture f = setup("{}");

	/* step 7 is for reads only: a write-open of /etc/hosts falls to ^/etc */
	EXPECT(f, "/etc/hosts", VFS_ROUTE_WRITE, VFS_LOCAL, VFS_RULE_DEFAULT_LOCAL, "^/etc(/|$)");
	EXPECT(f, "/etc/ssl/certs/x.pem", VFS_ROUTE_WRITE, VFS_LOCAL, VFS_RULE_DEFAULT_LOCAL,
	       "^/etc(/|$)");
	teardown(&f);
}

TEST(read_mode_write_open_goes_local)
{
	struct fixture f = setup("{\"feature\": {\"fs\": \"read\"}}");

	EXPECT(f, "/app/config.yaml", 0, VFS_REMOTE_RO, VFS_RULE_MODE, NULL);
	EXPECT(f, "/app/config.yaml", VFS_ROUTE_WRITE, VFS_LOCAL, VFS_RULE_MODE, NULL);
	CHECK_STR(explain(f.r, "/app/config.yaml", VFS_ROUTE_WRITE),
		  "local: mode read (step 9, open for writing goes local)");
	CHECK_STR(explain(f.r, "/app/config.yaml", 0), "remote read-only: mode read (step 9)");
	teardown(&f);
}

TEST(read_only_makes_os_release_remote)
{
	struct fixture f =
		setup("{\"feature\": {\"fs\": {\"read_only\": [\"^/etc/os-release$\"]}}}");

	EXPECT(f, "/etc/os-release", 0, VFS_REMOTE_RO, VFS_RULE_READ_ONLY, "^/etc/os-release$");
	/* step 4: an open for writing goes to the local file */
	EXPECT(f, "/etc/os-release", VFS_ROUTE_WRITE, VFS_LOCAL, VFS_RULE_READ_ONLY,
	       "^/etc/os-release$");
	EXPECT(f, "/etc/passwd", 0, VFS_LOCAL, VFS_RULE_DEFAULT_LOCAL, "^/etc(/|$)");
	CHECK_STR(explain(f.r, "/etc/os-release", 0),
		  "remote read-only: feature.fs.read_only[0] \"^/etc/os-release$\" (step 4)");
	CHECK_STR(explain(f.r, "/etc/os-release", VFS_ROUTE_WRITE),
		  "local: feature.fs.read_only[0] \"^/etc/os-release$\" (step 4, open for "
		  "writing goes local)");
	teardown(&f);
}

TEST(write_mode)
{
	struct fixture f = setup("{\"feature\": {\"fs\": {\"mode\": \"write\"}}}");

	CHECK_INT(vfs_router_mode(f.r), ==, CFG_FS_WRITE);
	EXPECT(f, "/app/out.log", 0, VFS_REMOTE_RW, VFS_RULE_MODE, NULL);
	EXPECT(f, "/app/out.log", VFS_ROUTE_WRITE, VFS_REMOTE_RW, VFS_RULE_MODE, NULL);
	EXPECT(f, "/etc/hosts", 0, VFS_REMOTE_RO, VFS_RULE_DEFAULT_REMOTE, "^/etc/hosts$");
	EXPECT(f, "/usr/bin/env", VFS_ROUTE_WRITE, VFS_LOCAL, VFS_RULE_DEFAULT_LOCAL, "^/usr(/|$)");
	CHECK_STR(explain(f.r, "/app/out.log", VFS_ROUTE_WRITE),
		  "remote read-write: mode write (step 9)");
	teardown(&f);
}

TEST(localwithoverrides_mode)
{
	struct fixture f = setup("{\"feature\": {\"fs\": {\"mode\": \"localwithoverrides\", "
				 "\"read_only\": [\"^/app/config\"]}}}");

	EXPECT(f, "/app/data", 0, VFS_LOCAL, VFS_RULE_MODE, NULL);
	EXPECT(f, "/app/config.yaml", 0, VFS_REMOTE_RO, VFS_RULE_READ_ONLY, "^/app/config");
	EXPECT(f, "/etc/hostname", 0, VFS_REMOTE_RO, VFS_RULE_DEFAULT_REMOTE, "^/etc/hostname$");
	EXPECT(f, "/home/u/.kube/config", 0, VFS_NOT_FOUND, VFS_RULE_DEFAULT_NOT_FOUND,
	       "^/home/u/\\.kube");
	teardown(&f);
}

TEST(local_mode)
{
	struct fixture f = setup("{\"feature\": {\"fs\": {\"mode\": \"local\", "
				 "\"not_found\": [\"^/app\"], "
				 "\"mapping\": {\"^/app/(.*)\": \"/srv/$1\"}}}}");

	/* step 1 wins over everything, even not_found; no mapping */
	EXPECT(f, "/app/x", 0, VFS_LOCAL, VFS_RULE_MODE_LOCAL, NULL);
	EXPECT(f, "/etc/hosts", 0, VFS_LOCAL, VFS_RULE_MODE_LOCAL, NULL);
	EXPECT(f, "/home/u/.kube/config", 0, VFS_LOCAL, VFS_RULE_MODE_LOCAL, NULL);
	{
		struct vfs_decision d;
		CHECK_OK(vfs_route(f.r, "/app/x", 0, &d));
		CHECK_STR(d.path, "/app/x");
		CHECK(d.map_pattern == NULL);
	}
	CHECK_STR(explain(f.r, "/app/x", 0), "local: mode local (step 1)");
	teardown(&f);

	/* fs: false is mode local */
	f = setup("{\"feature\": {\"fs\": false}}");
	EXPECT(f, "/etc/hosts", 0, VFS_LOCAL, VFS_RULE_MODE_LOCAL, NULL);
	teardown(&f);
}

TEST(user_lists_order)
{
	struct fixture f =
		setup("{\"feature\": {\"fs\": {"
		      "\"not_found\": [\"^/app/secret\"], "
		      "\"read_write\": [\"^/app/(secret|rw)\", \"^/data\"], "
		      "\"read_only\": [\"^/app\", \"^/data/ro\"], "
		      "\"local\": [\"^/app\", \"^/etc/hosts$\", \"^/home/u/\\\\.kube\"]}}}");

	/* 2 before 3 */
	EXPECT(f, "/app/secret/key", 0, VFS_NOT_FOUND, VFS_RULE_NOT_FOUND, "^/app/secret");
	EXPECT(f, "/app/secret/key", VFS_ROUTE_WRITE, VFS_NOT_FOUND, VFS_RULE_NOT_FOUND,
	       "^/app/secret");
	/* 3 before 4; read_write is writable even in read mode */
	EXPECT(f, "/app/rw/x", 0, VFS_REMOTE_RW, VFS_RULE_READ_WRITE, "^/app/(secret|rw)");
	EXPECT(f, "/app/rw/x", VFS_ROUTE_WRITE, VFS_REMOTE_RW, VFS_RULE_READ_WRITE,
	       "^/app/(secret|rw)");
	EXPECT(f, "/data/ro/x", 0, VFS_REMOTE_RW, VFS_RULE_READ_WRITE, "^/data");
	/* 4 before 5 */
	EXPECT(f, "/app/main.conf", 0, VFS_REMOTE_RO, VFS_RULE_READ_ONLY, "^/app");
	EXPECT(f, "/app/main.conf", VFS_ROUTE_WRITE, VFS_LOCAL, VFS_RULE_READ_ONLY, "^/app");
	/* 5 before 6 and 7 */
	EXPECT(f, "/etc/hosts", 0, VFS_LOCAL, VFS_RULE_LOCAL, "^/etc/hosts$");
	EXPECT(f, "/home/u/.kube/config", 0, VFS_LOCAL, VFS_RULE_LOCAL, "^/home/u/\\.kube");
	/* user not_found beats the default local list too */
	teardown(&f);

	f = setup("{\"feature\": {\"fs\": {\"not_found\": [\"\\\\.py$\"], "
		  "\"local\": [\"^/opt2/\"]}}}");
	EXPECT(f, "/usr/lib/python3/os.py", 0, VFS_NOT_FOUND, VFS_RULE_NOT_FOUND, "\\.py$");
	EXPECT(f, "/opt2/tool", 0, VFS_LOCAL, VFS_RULE_LOCAL, "^/opt2/");
	CHECK_STR(explain(f.r, "/opt2/tool", 0), "local: feature.fs.local[0] \"^/opt2/\" (step 5)");
	CHECK_STR(explain(f.r, "/x/a.py", 0),
		  "not found: feature.fs.not_found[0] \"\\.py$\" (step 2)");
	teardown(&f);
}

TEST(default_not_found_under_home)
{
	struct fixture f = setup("{}");

	EXPECT(f, "/home/u/.kube", 0, VFS_NOT_FOUND, VFS_RULE_DEFAULT_NOT_FOUND,
	       "^/home/u/\\.kube");
	EXPECT(f, "/home/u/.kube/config", VFS_ROUTE_WRITE, VFS_NOT_FOUND,
	       VFS_RULE_DEFAULT_NOT_FOUND, "^/home/u/\\.kube");
	EXPECT(f, "/home/u/.config/gcloud/creds.json", 0, VFS_NOT_FOUND, VFS_RULE_DEFAULT_NOT_FOUND,
	       "^/home/u/\\.config/gcloud");
	EXPECT(f, "/home/u/.azure/x", 0, VFS_NOT_FOUND, VFS_RULE_DEFAULT_NOT_FOUND,
	       "^/home/u/\\.azure");
	EXPECT(f, "/home/u/.config/other", 0, VFS_LOCAL, VFS_RULE_DEFAULT_LOCAL, "^/home(/|$)");
	EXPECT(f, "/home/other/.kube/config", 0, VFS_LOCAL, VFS_RULE_DEFAULT_LOCAL, "^/home(/|$)");
	CHECK_STR(explain(f.r, "/home/u/.kube/config", 0),
		  "not found: default not-found list[1] \"^/home/u/\\.kube\" (step 6)");
	teardown(&f);
}

TEST(home_outside_home_and_trailing_slash)
{
	static const struct vfs_router_env env = {
		.home = "/srv/users/u/", .cwd = "/", .program = "/srv/bin/app"};
	struct fixture f = setup_env("{}", &env);

	EXPECT(f, "/srv/users/u/.kube/config", 0, VFS_NOT_FOUND, VFS_RULE_DEFAULT_NOT_FOUND,
	       "^/srv/users/u/\\.kube");
	/* hidden entries directly under $HOME are local (dynamic entry) */
	EXPECT(f, "/srv/users/u/.bashrc", 0, VFS_LOCAL, VFS_RULE_HOME_HIDDEN, "^/srv/users/u/\\.");
	EXPECT(f, "/srv/users/u/.cache/pip/x", 0, VFS_LOCAL, VFS_RULE_HOME_HIDDEN,
	       "^/srv/users/u/\\.");
	EXPECT(f, "/srv/users/u/code/x", 0, VFS_REMOTE_RO, VFS_RULE_MODE, NULL);
	/* cwd "/" adds no entry: the rest stays remote */
	EXPECT(f, "/app/config.yaml", 0, VFS_REMOTE_RO, VFS_RULE_MODE, NULL);
	/* tmpdir unset: /tmp */
	EXPECT(f, "/tmp", 0, VFS_LOCAL, VFS_RULE_DEFAULT_LOCAL, "^/tmp(/|$)");
	/* the running program */
	EXPECT(f, "/srv/bin/app", 0, VFS_LOCAL, VFS_RULE_PROGRAM, "/srv/bin/app$");
	EXPECT(f, "/srv/bin/app2", 0, VFS_REMOTE_RO, VFS_RULE_MODE, NULL);
	CHECK_STR(explain(f.r, "/srv/users/u/.bashrc", 0),
		  "local: hidden entry under $HOME \"^/srv/users/u/\\.\" (step 8)");
	teardown(&f);
}

TEST(no_home)
{
	static const struct vfs_router_env env = {.cwd = "/work"};
	struct fixture f = setup_env("{}", &env);

	/* without $HOME the not-found defaults are empty */
	EXPECT(f, "/home/u/.kube/config", 0, VFS_LOCAL, VFS_RULE_DEFAULT_LOCAL, "^/home(/|$)");
	EXPECT(f, "/root/.kube/config", 0, VFS_REMOTE_RO, VFS_RULE_MODE, NULL);
	teardown(&f);
	/* nor with a NULL env */
	f = setup_env("{}", NULL);
	EXPECT(f, "/root/.kube/config", 0, VFS_REMOTE_RO, VFS_RULE_MODE, NULL);
	EXPECT(f, "/tmp/x", 0, VFS_LOCAL, VFS_RULE_DEFAULT_LOCAL, "^/tmp(/|$)");
	teardown(&f);
}

TEST(dynamic_entries_are_escaped)
{
	static const struct vfs_router_env env = {
		.home = "/h/a.b",
		.cwd = "/w/a+b(c)[d]/",
		.tmpdir = "/scratch/t.1",
		.program = "/opt2/bin/my.app",
	};
	struct fixture f = setup_env("{}", &env);

	EXPECT(f, "/w/a+b(c)[d]", 0, VFS_LOCAL, VFS_RULE_CWD, "^/w/a\\+b\\(c\\)\\[d\\](/|$)");
	EXPECT(f, "/w/a+b(c)[d]/x", 0, VFS_LOCAL, VFS_RULE_CWD, "^/w/a\\+b\\(c\\)\\[d\\](/|$)");
	EXPECT(f, "/w/aab(c)[d]/x", 0, VFS_REMOTE_RO, VFS_RULE_MODE, NULL);
	/* the temp dir entry has no trailing anchor (as mirrord) */
	EXPECT(f, "/scratch/t.1/x", 0, VFS_LOCAL, VFS_RULE_TMP, "^/scratch/t\\.1");
	EXPECT(f, "/scratch/t.10", 0, VFS_LOCAL, VFS_RULE_TMP, "^/scratch/t\\.1");
	EXPECT(f, "/scratch/tx1", 0, VFS_REMOTE_RO, VFS_RULE_MODE, NULL);
	EXPECT(f, "/opt2/bin/my.app", 0, VFS_LOCAL, VFS_RULE_PROGRAM, "/opt2/bin/my\\.app$");
	EXPECT(f, "/opt2/bin/myxapp", 0, VFS_REMOTE_RO, VFS_RULE_MODE, NULL);
	EXPECT(f, "/h/a.b/.kube", 0, VFS_NOT_FOUND, VFS_RULE_DEFAULT_NOT_FOUND,
	       "^/h/a\\.b/\\.kube");
	EXPECT(f, "/h/aXb/.kube", 0, VFS_REMOTE_RO, VFS_RULE_MODE, NULL);
	teardown(&f);
}

TEST(mapping_named_groups)
{
	struct fixture f = setup("{\"feature\": {\"fs\": {\"mapping\": {"
				 "\"^/home/(?<user>[^/]+)/dev/config/(?<app>[^/]+)\": "
				 "\"/mnt/configs/${user}-$app\", "
				 "\"^/data/(.*)\": \"/usr/share/$1\", "
				 "\"^/pod-hosts$\": \"/etc/hosts\"}}}}");
	struct vfs_decision d;

	CHECK_OK(vfs_route(f.r, "/home/jo/dev/config/api/app.conf", 0, &d));
	CHECK_STR(d.path, "/mnt/configs/jo-api/app.conf");
	CHECK_INT(d.verdict, ==, VFS_REMOTE_RO);
	CHECK_INT(d.rule, ==, VFS_RULE_MODE);
	CHECK_STR(d.map_pattern, "^/home/(?<user>[^/]+)/dev/config/(?<app>[^/]+)");
	CHECK_STR(d.map_replace, "/mnt/configs/${user}-$app");
	/* the rules see the mapped path */
	CHECK_OK(vfs_route(f.r, "/data/zoneinfo/UTC", 0, &d));
	CHECK_STR(d.path, "/usr/share/zoneinfo/UTC");
	CHECK_INT(d.verdict, ==, VFS_LOCAL);
	CHECK_STR(d.pattern, "^/usr(/|$)");
	CHECK_OK(vfs_route(f.r, "/POD-HOSTS", 0, &d)); /* caseless */
	CHECK_STR(d.path, "/etc/hosts");
	CHECK_INT(d.verdict, ==, VFS_REMOTE_RO);
	CHECK_INT(d.rule, ==, VFS_RULE_DEFAULT_REMOTE);
	CHECK_STR(explain(f.r, "/pod-hosts", 0),
		  "remote read-only: default remote list[1] \"^/etc/hosts$\" (step 7) on "
		  "/etc/hosts, mapped by feature.fs.mapping \"^/pod-hosts$\" -> \"/etc/hosts\"");
	/* unmapped */
	CHECK_OK(vfs_route(f.r, "/home/jo/notes", 0, &d));
	CHECK_STR(d.path, "/home/jo/notes");
	CHECK(d.map_pattern == NULL);
	/* cached answers keep the mapping */
	CHECK_OK(vfs_route(f.r, "/data/zoneinfo/UTC", 0, &d));
	CHECK(d.cached);
	CHECK_STR(d.path, "/usr/share/zoneinfo/UTC");
	CHECK_STR(d.map_replace, "/usr/share/$1");
	teardown(&f);
}

TEST(targetless_is_localwithoverrides)
{
	struct vfs_router_env env = env_std;
	struct fixture f;

	env.targetless = true;
	f = setup_env("{}", &env);
	CHECK_INT(vfs_router_mode(f.r), ==, CFG_FS_LOCALWITHOVERRIDES);
	EXPECT(f, "/app/config.yaml", 0, VFS_LOCAL, VFS_RULE_MODE, NULL);
	EXPECT(f, "/etc/hosts", 0, VFS_REMOTE_RO, VFS_RULE_DEFAULT_REMOTE, "^/etc/hosts$");
	CHECK_STR(explain(f.r, "/app/config.yaml", 0), "local: mode localwithoverrides (step 9)");
	teardown(&f);
	f = setup_env("{\"feature\": {\"fs\": \"write\"}}", &env);
	CHECK_INT(vfs_router_mode(f.r), ==, CFG_FS_LOCALWITHOVERRIDES);
	teardown(&f);
	/* ... unless the user chose local */
	f = setup_env("{\"feature\": {\"fs\": \"local\"}}", &env);
	CHECK_INT(vfs_router_mode(f.r), ==, CFG_FS_LOCAL);
	EXPECT(f, "/etc/hosts", 0, VFS_LOCAL, VFS_RULE_MODE_LOCAL, NULL);
	teardown(&f);
}

TEST(exec_is_local)
{
	struct fixture f = setup("{\"feature\": {\"fs\": {\"mode\": \"write\", "
				 "\"not_found\": [\"^/app/bin/hidden\"], "
				 "\"read_write\": [\"^/app\"], "
				 "\"mapping\": {\"^/app/bin/(.*)\": \"/other/$1\"}}}}");
	struct vfs_decision d;

	EXPECT(f, "/app/bin/tool", VFS_ROUTE_EXEC, VFS_LOCAL, VFS_RULE_EXEC, NULL);
	EXPECT(f, "/app/bin/hidden", VFS_ROUTE_EXEC, VFS_LOCAL, VFS_RULE_EXEC, NULL);
	EXPECT(f, "/app/bin/tool", VFS_ROUTE_EXEC | VFS_ROUTE_WRITE, VFS_LOCAL, VFS_RULE_EXEC,
	       NULL);
	CHECK_OK(vfs_route(f.r, "/app/bin/tool", VFS_ROUTE_EXEC, &d));
	CHECK_STR(d.path, "/app/bin/tool"); /* the kernel execs the path as given */
	CHECK(d.map_pattern == NULL);
	/* without the flag the same path follows the rules */
	CHECK_OK(vfs_route(f.r, "/app/bin/tool", 0, &d));
	CHECK_STR(d.path, "/other/tool");
	CHECK_INT(d.verdict, ==, VFS_REMOTE_RW);
	CHECK_STR(explain(f.r, "/app/bin/tool", VFS_ROUTE_EXEC),
		  "local: open for execution (step 0)");
	teardown(&f);
}

TEST(bad_paths)
{
	struct fixture f = setup("{\"feature\": {\"fs\": {\"mapping\": {\"^/big.*\": \"$0$0\"}}}}");
	struct vfs_decision d;
	char *big = malloc(VFS_PATH_MAX + 2);

	CHECK_INT(vfs_route(f.r, "relative/path", 0, &d), ==, -EINVAL);
	CHECK_INT(vfs_route(f.r, "", 0, &d), ==, -EINVAL);
	CHECK_INT(vfs_route(f.r, NULL, 0, &d), ==, -EINVAL);
	memset(big, 'a', VFS_PATH_MAX + 1);
	big[0] = '/';
	big[VFS_PATH_MAX + 1] = '\0';
	CHECK_INT(vfs_route(f.r, big, 0, &d), ==, -ENAMETOOLONG);
	big[VFS_PATH_MAX - 1] = '\0'; /* exactly fits */
	CHECK_OK(vfs_route(f.r, big, 0, &d));
	/* a mapping that grows the path past the limit */
	memcpy(big, "/big", 4);
	big[2100] = '\0';
	CHECK_INT(vfs_route(f.r, big, 0, &d), ==, -ENAMETOOLONG);
	free(big);
	teardown(&f);
}

TEST(cache_hits_and_bounds)
{
	struct fixture f = setup("{}");
	struct vfs_route_stats st;
	struct vfs_decision d, d2;
	char path[64];

	CHECK_OK(vfs_route(f.r, "/app/config.yaml", 0, &d));
	CHECK(!d.cached);
	CHECK_OK(vfs_route(f.r, "/app/config.yaml", 0, &d2));
	CHECK(d2.cached);
	CHECK_INT(d2.verdict, ==, d.verdict);
	CHECK_INT(d2.rule, ==, d.rule);
	CHECK_STR(d2.path, "/app/config.yaml");
	/* the write flag is part of the key */
	CHECK_OK(vfs_route(f.r, "/app/config.yaml", VFS_ROUTE_WRITE, &d2));
	CHECK(!d2.cached);
	CHECK_INT(d2.verdict, ==, VFS_LOCAL);
	CHECK_OK(vfs_route(f.r, "/app/config.yaml", VFS_ROUTE_WRITE, &d2));
	CHECK(d2.cached);
	CHECK_INT(d2.verdict, ==, VFS_LOCAL);
	/* a prefix of a cached path is a different key */
	CHECK_OK(vfs_route(f.r, "/app/config.yam", 0, &d2));
	CHECK(!d2.cached);
	vfs_router_stats(f.r, &st);
	CHECK_UINT(st.lookups, ==, 5);
	CHECK_UINT(st.hits, ==, 2);
	CHECK_UINT(st.entries, ==, 3);
	/* bounded: many distinct paths never grow it past its capacity, and
	 * every answer stays right */
	for (int i = 0; i < 50000; i++) {
		snprintf(path, sizeof(path), "/%s/f%d", i % 2 ? "usr" : "app", i);
		CHECK_OK(vfs_route(f.r, path, 0, &d));
		if (d.verdict != (i % 2 ? VFS_LOCAL : VFS_REMOTE_RO))
			TAP_FAIL("%s: %s", path, vfs_verdict_name(d.verdict));
		CHECK_OK(vfs_route(f.r, path, 0, &d));
		if (!d.cached || d.verdict != (i % 2 ? VFS_LOCAL : VFS_REMOTE_RO))
			TAP_FAIL("%s (again): %s", path, vfs_verdict_name(d.verdict));
	}
	vfs_router_stats(f.r, &st);
	CHECK_UINT(st.entries, <=, st.capacity);
	CHECK_UINT(st.capacity, >, 0);
	teardown(&f);
}

TEST(skip_processes)
{
	struct fixture f = setup("{\"skip_processes\": [\"myhelper\"], "
				 "\"skip_extra_build_tools\": [\"ninja\"]}");

	CHECK(vfs_router_skips_process(f.r, "cargo"));
	CHECK(vfs_router_skips_process(f.r, "/usr/bin/gcc"));
	CHECK(vfs_router_skips_process(f.r, "cc1"));
	CHECK(vfs_router_skips_process(f.r, "clang"));
	CHECK(vfs_router_skips_process(f.r, "bazel-real"));
	CHECK(vfs_router_skips_process(f.r, "myhelper"));
	CHECK(vfs_router_skips_process(f.r, "ninja"));
	CHECK(vfs_router_skips_process(f.r, "JetBrains.Debugger.Worker"));
	CHECK(!vfs_router_skips_process(f.r, "python3"));
	CHECK(!vfs_router_skips_process(f.r, "Cargo"));
	CHECK(!vfs_router_skips_process(f.r, "/usr/bin/"));
	CHECK(!vfs_router_skips_process(f.r, ""));
	CHECK(!vfs_router_skips_process(f.r, NULL));
	teardown(&f);

	f = setup("{\"skip_build_tools\": false, \"skip_processes\": \"myhelper\", "
		  "\"skip_extra_build_tools\": [\"ninja\"]}");
	CHECK(!vfs_router_skips_process(f.r, "cargo"));
	CHECK(!vfs_router_skips_process(f.r, "ninja"));
	CHECK(vfs_router_skips_process(f.r, "myhelper"));
	CHECK(vfs_router_skips_process(f.r, "JetBrains.Debugger.Worker"));
	teardown(&f);
}

TEST(names)
{
	CHECK_STR(vfs_verdict_name(VFS_NOT_FOUND), "not found");
	CHECK_STR(vfs_rule_name(VFS_RULE_READ_WRITE), "feature.fs.read_write");
	CHECK_STR(vfs_rule_name(VFS_RULE_CWD), "working directory");
	CHECK_STR(vfs_rule_name(VFS_RULE_TMP), "temp dir");
	CHECK_STR(vfs_rule_name(VFS_RULE_PROGRAM), "running program");
}

TEST(format_truncates)
{
	struct fixture f = setup("{}");
	struct vfs_decision d;
	char small[8];
	int n;

	CHECK_OK(vfs_route(f.r, "/etc/hosts", 0, &d));
	n = vfs_decision_format(&d, small, sizeof(small));
	CHECK_INT(n, ==,
		  (int)strlen("remote read-only: default remote list[1] \"^/etc/hosts$\" "
			      "(step 7)"));
	CHECK_STR(small, "remote ");
	CHECK_INT(vfs_decision_format(&d, NULL, 0), ==, n);
	teardown(&f);
}

TAP_MAIN()
