/* k8s_config_*: kubeconfig sources and merging (KUBECONFIG precedence),
 * context selection, cluster/user fields, tokenFile re-reads, exec
 * credential plugins (shell-script fixtures written into a temp dir), the
 * in-cluster service account (a fake directory), and every error with its
 * message. Each test works in its own temp dir and removes it. */
#include <ftw.h>
#include <sys/stat.h>

#include "common/macro.h"
#include "launcher/k8s_config.h"
#include "tests/unit/tap.h"

/* "Hello" and "-----BEGIN CERTIFICATE-----\nCA\n" in base64. */
#define B64_HELLO "SGVsbG8="
#define B64_CA "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkNBCg=="

static char tmpdir[64];

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st, (void)flag, (void)f;
	remove(p);
	return 0;
}

static void cleanup_tmp(void)
{
	if (tmpdir[0])
		nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *tmp(void)
{
	if (!tmpdir[0]) {
		strcpy(tmpdir, "/tmp/podenv-k8s-XXXXXX");
		REQUIRE(mkdtemp(tmpdir));
		atexit(cleanup_tmp);
	}
	return tmpdir;
}

/* Writes <tmp>/name, creating missing directories; returns the path
 * (caller frees). */
static char *put(const char *name, const char *text, mode_t mode)
{
	char *p = xasprintf("%s/%s", tmp(), name);
	FILE *f;

	for (char *s = p + strlen(tmp()) + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		mkdir(p, 0755);
		*s = '/';
	}
	f = fopen(p, "w");
	REQUIRE(f);
	fputs(text, f);
	fclose(f);
	chmod(p, mode);
	return p;
}

static char *slurp(const char *name)
{
	char path[256], *buf = xcalloc(1, 65536);
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmp(), name);
	f = fopen(path, "r");
	if (f) {
		size_t n = fread(buf, 1, 65535, f);
		buf[n] = '\0';
		fclose(f);
	}
	return buf;
}

/* An environment: entries are formatted, "%T" in them is the temp dir.
 * Always has PATH; HOME points into the temp dir unless given. */
static char **mkenv(const char *const *entries)
{
	char **v = xcalloc(16, sizeof(char *));
	size_t n = 0;
	bool home = false;

	for (; entries && *entries; entries++) {
		char *s = xstrdup(*entries), *t;
		while ((t = strstr(s, "%T"))) {
			char *x = xasprintf("%.*s%s%s", (int)(t - s), s, tmp(), t + 2);
			free(s);
			s = x;
		}
		v[n++] = s;
		home |= strncmp(*entries, "HOME=", 5) == 0;
	}
	if (!home)
		v[n++] = xasprintf("HOME=%s/home", tmp());
	v[n++] = xstrdup("PATH=/usr/bin:/bin");
	return v;
}

static int load(const char *const *envs, const char *explicit_path, const char *context,
		struct k8s_config **c, struct err *e)
{
	char **env = mkenv(envs);
	char *sadir = xasprintf("%s/sa", tmp());
	struct k8s_config_source src = {
		.kubeconfig = explicit_path,
		.context = context,
		.env = env,
		.serviceaccount_dir = sadir,
	};
	int r;

	err_clear(e);
	*c = NULL;
	r = k8s_config_load(&src, c, e);
	for (char **p = env; *p; p++)
		free(*p);
	free(env);
	free(sadir);
	return r;
}

/* Loads and requires success. */
static struct k8s_config *ok(const char *const *envs, const char *path, const char *context)
{
	struct err e;
	struct k8s_config *c;
	int r = load(envs, path, context, &c, &e);

	if (r < 0)
		TAP_FAIL("k8s_config_load: %d %s", r, e.msg);
	REQUIRE(r == 0 && c);
	return c;
}

/* Loads a single explicit file with the given text and expects an error. */
static void fails(const char *text, const char *context, int code, const char *msg1,
		  const char *msg2)
{
	_cleanup_free_ char *p = put("bad/config", text, 0644);
	struct k8s_config *c;
	struct err e;
	int r = load(NULL, p, context, &c, &e);

	if (code == 0) { /* the variant that must load */
		if (r < 0)
			TAP_FAIL("k8s_config_load: %d %s", r, e.msg);
		CHECK(c != NULL);
		k8s_config_free(c);
		return;
	}
	CHECK_INT(r, ==, code);
	CHECK_INT(e.code, ==, code);
	CHECK(c == NULL);
	CHECK_CONTAINS(e.msg, p);
	if (msg1)
		CHECK_CONTAINS(e.msg, msg1);
	if (msg2)
		CHECK_CONTAINS(e.msg, msg2);
	CHECK(!strchr(e.msg, '\n'));
	k8s_config_free(c);
}

static const char basic[] = "apiVersion: v1\n"
			    "kind: Config\n"
			    "current-context: dev\n"
			    "clusters:\n"
			    "- name: dev-cluster\n"
			    "  cluster:\n"
			    "    server: https://10.1.2.3:6443\n"
			    "    certificate-authority-data: " B64_CA "\n"
			    "    tls-server-name: kube.internal\n"
			    "    proxy-url: socks5://127.0.0.1:1080\n"
			    "- name: prod-cluster\n"
			    "  cluster:\n"
			    "    server: prod.example.com:443\n"
			    "    insecure-skip-tls-verify: true\n"
			    "users:\n"
			    "- name: dev-user\n"
			    "  user:\n"
			    "    token: static-token\n"
			    "- name: prod-user\n"
			    "  user:\n"
			    "    client-certificate-data: " B64_HELLO "\n"
			    "    client-key-data: " B64_CA "\n"
			    "contexts:\n"
			    "- name: dev\n"
			    "  context:\n"
			    "    cluster: dev-cluster\n"
			    "    user: dev-user\n"
			    "    namespace: team-a\n"
			    "- name: prod\n"
			    "  context: {cluster: prod-cluster, user: prod-user}\n";

TEST(single_file)
{
	_cleanup_free_ char *p = put("kube/config", basic, 0644);
	struct k8s_config *c = ok(NULL, p, NULL);

	CHECK_STR(c->source, p);
	CHECK_STR(c->context, "dev");
	CHECK_STR(c->cluster, "dev-cluster");
	CHECK_STR(c->user, "dev-user");
	CHECK_STR(c->server, "https://10.1.2.3:6443");
	CHECK_STR(c->namespace, "team-a");
	CHECK_STR(c->ca_pem, "-----BEGIN CERTIFICATE-----\nCA\n");
	CHECK_UINT(c->ca_pem_len, ==, 31);
	CHECK(!c->insecure);
	CHECK(!c->in_cluster);
	CHECK_STR(c->tls_server_name, "kube.internal");
	CHECK_STR(c->proxy_url, "socks5://127.0.0.1:1080");
	CHECK_STR(c->token, "static-token");
	CHECK(c->client_cert_pem == NULL && c->client_key_pem == NULL);
	/* Nothing to refresh: no tokenFile, no plugin. */
	CHECK_INT(k8s_config_refresh(c, time(NULL), NULL), ==, 0);
	CHECK_STR(c->token, "static-token");
	k8s_config_free(c);
}

TEST(context_override_client_cert_and_namespace_default)
{
	_cleanup_free_ char *p = put("kube/config", basic, 0644);
	struct k8s_config *c = ok(NULL, p, "prod");

	CHECK_STR(c->context, "prod");
	CHECK_STR(c->server, "https://prod.example.com:443"); /* scheme added */
	CHECK(c->insecure);
	CHECK(c->ca_pem == NULL);
	CHECK(c->tls_server_name == NULL && c->proxy_url == NULL);
	CHECK_STR(c->namespace, "default");
	CHECK(c->token == NULL);
	CHECK_STR(c->client_cert_pem, "Hello");
	CHECK_UINT(c->client_cert_pem_len, ==, 5);
	CHECK_STR(c->client_key_pem, "-----BEGIN CERTIFICATE-----\nCA\n");
	k8s_config_free(c);
}

TEST(json_kubeconfig)
{
	_cleanup_free_ char *p =
		put("kube/config.json",
		    "{\"apiVersion\": \"v1\", \"kind\": \"Config\", \"current-context\": \"j\",\n"
		    " \"clusters\": [{\"name\": \"c\", \"cluster\": {\"server\": "
		    "\"https://j:1\", \"insecure-skip-tls-verify\": false}}],\n"
		    " \"users\": [{\"name\": \"u\", \"user\": {\"token\": \"t\"}}],\n"
		    " \"contexts\": [{\"name\": \"j\", \"context\": {\"cluster\": \"c\", \"user\": "
		    "\"u\", \"namespace\": \"ns\"}}]}\n",
		    0644);
	struct k8s_config *c = ok(NULL, p, NULL);

	CHECK_STR(c->server, "https://j:1");
	CHECK_STR(c->namespace, "ns");
	CHECK_STR(c->token, "t");
	CHECK(!c->insecure);
	k8s_config_free(c);
}

/* KUBECONFIG: first file defining a name wins (whole entry), current-context
 * from the first file that sets one; missing files, empty entries and
 * duplicates are skipped. */
TEST(kubeconfig_merge_precedence)
{
	_cleanup_free_ char *a = put("a.yaml",
				     "clusters:\n"
				     "- name: shared\n"
				     "  cluster: {server: 'https://from-a:1'}\n"
				     "users:\n"
				     "- name: u\n"
				     "  user: {token: token-a}\n"
				     "contexts:\n"
				     "- name: one\n"
				     "  context: {cluster: shared, user: u, namespace: from-a}\n",
				     0644);
	_cleanup_free_ char *b = put("b.yaml",
				     "current-context: two\n"
				     "clusters:\n"
				     "- name: shared\n"
				     "  cluster:\n"
				     "    server: https://from-b:1\n"
				     "    tls-server-name: only-in-b\n"
				     "- name: bonly\n"
				     "  cluster: {server: 'https://b-only:1'}\n"
				     "users:\n"
				     "- name: u\n"
				     "  user: {token: token-b}\n"
				     "contexts:\n"
				     "- name: one\n"
				     "  context: {cluster: bonly, user: u}\n"
				     "- name: two\n"
				     "  context: {cluster: shared, user: u}\n",
				     0644);
	_cleanup_free_ char *cfile = put("c.yaml", "current-context: one\n", 0644);
	const char *env[] = {"KUBECONFIG=:%T/missing.yaml:%T/a.yaml::%T/a.yaml:%T/b.yaml:%T/c.yaml",
			     NULL};
	_cleanup_free_ char *label = xasprintf("%s:%s:%s", a, b, cfile);
	struct k8s_config *c = ok(env, NULL, NULL);

	CHECK_STR(c->source, label);
	CHECK_STR(c->context, "two"); /* b sets it first; c's is ignored */
	CHECK_STR(c->server, "https://from-a:1");
	CHECK(c->tls_server_name == NULL); /* a's whole entry, nothing from b */
	CHECK_STR(c->token, "token-a");
	CHECK_STR(c->namespace, "default");
	k8s_config_free(c);

	c = ok(env, NULL, "one"); /* a's context "one", not b's */
	CHECK_STR(c->server, "https://from-a:1");
	CHECK_STR(c->namespace, "from-a");
	k8s_config_free(c);

	/* An explicit file beats KUBECONFIG. */
	c = ok(env, b, "one");
	CHECK_STR(c->server, "https://b-only:1");
	CHECK_STR(c->token, "token-b");
	CHECK_STR(c->source, b);
	k8s_config_free(c);
}

TEST(home_kube_config_and_tilde)
{
	struct k8s_config *c;

	free(put("home/.kube/config", basic, 0644)); /* HOME=%T/home, no KUBECONFIG */
	c = ok(NULL, NULL, NULL);
	CHECK_STR(c->context, "dev");
	CHECK_CONTAINS(c->source, "/home/.kube/config");
	k8s_config_free(c);

	free(put("home/other.yaml", basic, 0644));
	c = ok(NULL, "~/other.yaml", "prod");
	CHECK_CONTAINS(c->source, "/home/other.yaml");
	CHECK(c->source[0] == '/');
	k8s_config_free(c);
}

TEST(ca_file_relative_and_data_wins)
{
	_cleanup_free_ char *ca = put("certs/ca.pem", "FILE-CA\n", 0644);
	_cleanup_free_ char *p =
		put("certs/config",
		    "current-context: x\n"
		    "clusters:\n"
		    "- name: byfile\n"
		    "  cluster: {server: 'https://s:1', certificate-authority: ca.pem}\n"
		    "- name: both\n"
		    "  cluster:\n"
		    "    server: https://s:2\n"
		    "    certificate-authority: /nonexistent/ca.pem\n"
		    "    certificate-authority-data: |\n"
		    "      LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0t\n"
		    "      LS0tCkNBCg==\n"
		    "users: [{name: u, user: {}}]\n"
		    "contexts:\n"
		    "- {name: x, context: {cluster: byfile, user: u}}\n"
		    "- {name: y, context: {cluster: both, user: u}}\n",
		    0644);
	struct k8s_config *c = ok(NULL, p, NULL);

	CHECK_STR(c->ca_pem, "FILE-CA\n");
	CHECK_UINT(c->ca_pem_len, ==, 8);
	CHECK(c->token == NULL);
	k8s_config_free(c);
	c = ok(NULL, p, "y"); /* data wins; its line breaks are ignored */
	CHECK_STR(c->ca_pem, "-----BEGIN CERTIFICATE-----\nCA\n");
	k8s_config_free(c);
}

TEST(token_vs_token_file)
{
	_cleanup_free_ char *tf = put("tok/token", "  file-token-1\n", 0600);
	_cleanup_free_ char *p = put("tok/config",
				     "current-context: f\n"
				     "clusters: [{name: c, cluster: {server: 'https://s:1'}}]\n"
				     "users:\n"
				     "- name: both\n"
				     "  user: {token: wins, tokenFile: token}\n"
				     "- name: file\n"
				     "  user: {tokenFile: token}\n"
				     "contexts:\n"
				     "- {name: b, context: {cluster: c, user: both}}\n"
				     "- {name: f, context: {cluster: c, user: file}}\n",
				     0644);
	struct k8s_config *c = ok(NULL, p, "b");
	struct err e;

	CHECK_STR(c->token, "wins");
	k8s_config_free(c);

	c = ok(NULL, p, NULL);
	CHECK_STR(c->token, "file-token-1");
	/* Rotated: the next refresh sees the new token. */
	free(put("tok/token", "file-token-2", 0600));
	CHECK_INT(k8s_config_refresh(c, time(NULL), &e), ==, 0);
	CHECK_STR(c->token, "file-token-2");
	/* Gone: an error, the old token stays. */
	unlink(tf);
	err_clear(&e);
	CHECK_INT(k8s_config_refresh(c, time(NULL), &e), ==, -ENOENT);
	CHECK_CONTAINS(e.msg, "context \"f\", user \"file\": tokenFile ");
	CHECK_CONTAINS(e.msg, "No such file");
	CHECK_STR(c->token, "file-token-2");
	free(put("tok/token", "\n\n", 0600));
	CHECK_INT(k8s_config_refresh(c, time(NULL), &e), ==, -EBADMSG);
	CHECK_CONTAINS(e.msg, "is empty");
	k8s_config_free(c);
}

/* A relative client-certificate (against the kubeconfig's directory) and an
 * absolute client-key. */
TEST(client_cert_files)
{
	_cleanup_free_ char *crt = put("mtls/c.crt", "CERT PEM\n", 0644);
	_cleanup_free_ char *key = put("mtls/c.key", "KEY PEM\n", 0600);
	_cleanup_free_ char *text =
		xasprintf("current-context: m\n"
			  "clusters: [{name: c, cluster: {server: 'https://s:1'}}]\n"
			  "users: [{name: u, user: {client-certificate: c.crt, client-key: %s}}]\n"
			  "contexts: [{name: m, context: {cluster: c, user: u}}]\n",
			  key);
	_cleanup_free_ char *p = put("mtls/config", text, 0644);
	struct k8s_config *c = ok(NULL, p, NULL);

	CHECK_STR(c->client_cert_pem, "CERT PEM\n");
	CHECK_UINT(c->client_cert_pem_len, ==, 9);
	CHECK_STR(c->client_key_pem, "KEY PEM\n");
	CHECK_UINT(c->client_key_pem_len, ==, 8);
	CHECK(c->token == NULL);
	CHECK(crt != NULL);
	k8s_config_free(c);
}

/* --- exec plugins --------------------------------------------------------- */

static char *exec_config(const char *user_yaml)
{
	_cleanup_free_ char *text =
		xasprintf("current-context: e\n"
			  "clusters:\n"
			  "- name: c\n"
			  "  cluster:\n"
			  "    server: https://10.9.9.9:443\n"
			  "    certificate-authority-data: " B64_HELLO "\n"
			  "    extensions:\n"
			  "    - name: client.authentication.k8s.io/exec\n"
			  "      extension: {audience: aud}\n"
			  "users:\n"
			  "- name: u\n"
			  "  user:\n"
			  "%s"
			  "contexts: [{name: e, context: {cluster: c, user: u}}]\n",
			  user_yaml);
	return put("exec/config", text, 0644);
}

/* A plugin that counts its runs, records its input and prints $OUT. */
static const char plugin[] = "#!/bin/sh\n"
			     "d=$(dirname \"$0\")\n"
			     "echo x >> \"$d/runs\"\n"
			     "printf '%s' \"$KUBERNETES_EXEC_INFO\" > \"$d/info\"\n"
			     "printf '%s|%s|%s|%s' \"$FOO\" \"$1\" \"$2\" \"$#\" > \"$d/args\"\n"
			     "cat \"$d/out\"\n";

static int runs(void)
{
	_cleanup_free_ char *r = slurp("exec/runs");
	int n = 0;

	for (char *p = r; *p; p++)
		n += *p == '\n';
	return n;
}

static const char exec_user_v1[] = "    exec:\n"
				   "      apiVersion: client.authentication.k8s.io/v1\n"
				   "      command: ./plugin.sh\n"
				   "      args: [get-token, --fast]\n"
				   "      env: [{name: FOO, value: bar}]\n"
				   "      interactiveMode: Never\n";

TEST(exec_plugin_token_cached_without_expiry)
{
	_cleanup_free_ char *p = exec_config(exec_user_v1);
	struct k8s_config *c;
	struct err e;
	_cleanup_free_ char *info = NULL, *args = NULL;

	free(put("exec/plugin.sh", plugin, 0755));
	free(put("exec/out",
		 "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
		 "\"status\":{\"token\":\"exec-token-1\"}}\n",
		 0644));
	{
		const char *env[] = {"FOO=outer", "KUBERNETES_EXEC_INFO=stale", NULL};
		c = ok(env, p, NULL);
	}
	CHECK(c->token == NULL); /* load does not run the plugin */
	CHECK_INT(runs(), ==, 0);
	CHECK_INT(k8s_config_refresh(c, time(NULL), &e), ==, 1);
	CHECK_STR(c->token, "exec-token-1");
	info = slurp("exec/info");
	CHECK_STR(info, "{\"kind\":\"ExecCredential\",\"apiVersion\":"
			"\"client.authentication.k8s.io/v1\",\"spec\":{\"interactive\":false}}");
	args = slurp("exec/args");
	CHECK_STR(args, "bar|get-token|--fast|2"); /* env list over ours */
	/* Cached: no expiry, so no new run until invalidated. */
	CHECK_INT(k8s_config_refresh(c, time(NULL) + 86400 * 365, &e), ==, 0);
	CHECK_INT(runs(), ==, 1);
	free(put("exec/out",
		 "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
		 "\"status\":{\"token\":\"exec-token-2\"}}",
		 0644));
	k8s_config_invalidate(c);
	CHECK(c->token == NULL);
	CHECK_INT(k8s_config_refresh(c, time(NULL), &e), ==, 1);
	CHECK_STR(c->token, "exec-token-2");
	CHECK_INT(runs(), ==, 2);
	k8s_config_free(c);
}

TEST(exec_plugin_expiry_and_cert)
{
	_cleanup_free_ char *p =
		exec_config("    exec:\n"
			    "      apiVersion: client.authentication.k8s.io/v1beta1\n"
			    "      command: plugin.sh\n"
			    "      provideClusterInfo: true\n");
	const char *env[] = {"PATH=/nonexistent:%T/exec:/usr/bin:/bin", NULL};
	struct k8s_config *c;
	struct err e;
	_cleanup_free_ char *info = NULL;
	time_t exp = 1893456000; /* 2030-01-01T00:00:00Z */

	free(put("exec/plugin.sh", plugin, 0755));
	free(put(
		"exec/out",
		"{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":"
		"\"ExecCredential\",\"status\":{\"clientCertificateData\":\"CERT\","
		"\"clientKeyData\":\"KEY\",\"expirationTimestamp\":\"2030-01-01T01:00:00+01:00\"}}",
		0644));
	c = ok(env, p, NULL); /* found in PATH (ours, first entry first) */
	CHECK_INT(k8s_config_refresh(c, exp - 10, &e), ==, 1);
	CHECK_STR(c->client_cert_pem, "CERT");
	CHECK_STR(c->client_key_pem, "KEY");
	CHECK_UINT(c->client_key_pem_len, ==, 3);
	CHECK(c->token == NULL);
	info = slurp("exec/info");
	CHECK_STR(info,
		  "{\"kind\":\"ExecCredential\",\"apiVersion\":"
		  "\"client.authentication.k8s.io/v1beta1\",\"spec\":{\"cluster\":{"
		  "\"server\":\"https://10.9.9.9:443\",\"certificate-authority-data\":"
		  "\"" B64_HELLO "\",\"config\":{\"audience\":\"aud\"}},\"interactive\":false}}");
	CHECK_INT(k8s_config_refresh(c, exp - 1, &e), ==, 0); /* still valid */
	CHECK_INT(runs(), ==, 1);
	free(put("exec/out",
		 "{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":"
		 "\"ExecCredential\",\"status\":{\"token\":\"t2\","
		 "\"expirationTimestamp\":\"2030-01-01T00:10:00.123Z\"}}",
		 0644));
	CHECK_INT(k8s_config_refresh(c, exp, &e), ==, 1); /* expired */
	CHECK_STR(c->token, "t2");
	CHECK(c->client_cert_pem == NULL); /* the new credential has no cert */
	CHECK_INT(k8s_config_refresh(c, exp + 599, &e), ==, 0);
	CHECK_INT(k8s_config_refresh(c, exp + 600, &e), ==, 1);
	CHECK_INT(runs(), ==, 3);
	k8s_config_free(c);
}

TEST(exec_plugin_skipped_with_static_token)
{
	_cleanup_free_ char *p = exec_config("    token: static\n"
					     "    exec:\n"
					     "      apiVersion: client.authentication.k8s.io/v1\n"
					     "      command: /nonexistent/plugin\n"
					     "      interactiveMode: IfAvailable\n");
	struct k8s_config *c = ok(NULL, p, NULL);

	CHECK_INT(k8s_config_refresh(c, time(NULL), NULL), ==, 0);
	CHECK_STR(c->token, "static");
	k8s_config_free(c);
}

/* Runs refresh and expects an error mentioning the context and user. */
static void exec_fails(const char *user_yaml, const char *out, int code, const char *msg1,
		       const char *msg2)
{
	_cleanup_free_ char *p = exec_config(user_yaml);
	struct k8s_config *c;
	struct err e;

	free(put("exec/plugin.sh", plugin, 0755));
	free(put("exec/out", out, 0644));
	c = ok(NULL, p, NULL);
	err_clear(&e);
	CHECK_INT(k8s_config_refresh(c, time(NULL), &e), ==, code);
	CHECK_CONTAINS(e.msg, p);
	CHECK_CONTAINS(e.msg, "context \"e\", user \"u\": exec plugin ");
	if (msg1)
		CHECK_CONTAINS(e.msg, msg1);
	if (msg2)
		CHECK_CONTAINS(e.msg, msg2);
	CHECK(!strchr(e.msg, '\n'));
	CHECK(c->token == NULL);
	k8s_config_free(c);
}

TEST(exec_plugin_failures)
{
	exec_fails("    exec:\n"
		   "      apiVersion: client.authentication.k8s.io/v1\n"
		   "      command: ./fail.sh\n"
		   "      interactiveMode: Never\n",
		   "", -ENOENT, "\"./fail.sh\" not found", NULL);
	free(put("exec/fail.sh",
		 "#!/bin/sh\necho 'progress...' >&2\necho 'error: login expired, run login' >&2\n"
		 "echo '  ' >&2\nexit 3\n",
		 0755));
	exec_fails("    exec:\n"
		   "      apiVersion: client.authentication.k8s.io/v1\n"
		   "      command: ./fail.sh\n"
		   "      interactiveMode: Never\n",
		   "", -EIO, "fail.sh failed with exit status 3: error: login expired, run login",
		   NULL);
	free(put("exec/kill.sh", "#!/bin/sh\nkill -9 $$\n", 0755));
	exec_fails("    exec:\n"
		   "      apiVersion: client.authentication.k8s.io/v1\n"
		   "      command: ./kill.sh\n"
		   "      interactiveMode: Never\n",
		   "", -EIO, "killed by signal 9", NULL);
	exec_fails("    exec:\n"
		   "      apiVersion: client.authentication.k8s.io/v1\n"
		   "      command: podenv-no-such-plugin\n"
		   "      interactiveMode: Never\n"
		   "      installHint: |\n"
		   "        Install it with\n"
		   "        apt install podenv-plugin\n",
		   "", -ENOENT, "\"podenv-no-such-plugin\" not found in PATH",
		   ": Install it with apt install podenv-plugin");
	exec_fails(exec_user_v1, "", -EBADMSG, "printed nothing", NULL);
	exec_fails(exec_user_v1, "token: x\n", -EBADMSG, "output is not JSON", NULL);
	exec_fails(exec_user_v1, "{\"status\":{}} trailing", -EBADMSG, "output is not JSON", NULL);
	exec_fails(exec_user_v1,
		   "{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":"
		   "\"ExecCredential\",\"status\":{\"token\":\"t\"}}",
		   -EBADMSG,
		   "returned apiVersion \"client.authentication.k8s.io/v1beta1\", but the "
		   "kubeconfig asks for \"client.authentication.k8s.io/v1\"",
		   NULL);
	exec_fails(exec_user_v1,
		   "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"Other\"}",
		   -EBADMSG, "kind \"Other\", not ExecCredential", NULL);
	exec_fails(
		exec_user_v1,
		"{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\"}",
		-EBADMSG, "returned no status", NULL);
	exec_fails(
		exec_user_v1,
		"{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
		"\"status\":{\"token\":\"\"}}",
		-EBADMSG, "neither a token nor a client certificate and key", NULL);
	exec_fails(
		exec_user_v1,
		"{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
		"\"status\":{\"clientCertificateData\":\"C\"}}",
		-EBADMSG, "a client certificate without its key", NULL);
	exec_fails(
		exec_user_v1,
		"{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
		"\"status\":{\"token\":\"t\",\"expirationTimestamp\":\"tomorrow\"}}",
		-EBADMSG, "expirationTimestamp \"tomorrow\" is not RFC 3339", NULL);
	exec_fails(
		exec_user_v1,
		"{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
		"\"status\":{\"token\":7}}",
		-EBADMSG, "status.token is not a string", NULL);
}

TEST(exec_config_errors)
{
	fails("current-context: e\n"
	      "clusters: [{name: c, cluster: {server: 'https://s:1'}}]\n"
	      "users: [{name: u, user: {exec: {command: x, apiVersion: "
	      "client.authentication.k8s.io/v1alpha1}}}]\n"
	      "contexts: [{name: e, context: {cluster: c, user: u}}]\n",
	      NULL, -EINVAL, "context \"e\", user \"u\": exec: apiVersion",
	      "v1alpha1\" is not supported");
	fails("current-context: e\n"
	      "clusters: [{name: c, cluster: {server: 'https://s:1'}}]\n"
	      "users: [{name: u, user: {exec: {command: x, apiVersion: "
	      "client.authentication.k8s.io/v1}}}]\n"
	      "contexts: [{name: e, context: {cluster: c, user: u}}]\n",
	      NULL, -EINVAL, "interactiveMode must be set", NULL);
	fails("current-context: e\n"
	      "clusters: [{name: c, cluster: {server: 'https://s:1'}}]\n"
	      "users: [{name: u, user: {exec: {command: x, interactiveMode: Always, apiVersion: "
	      "client.authentication.k8s.io/v1}}}]\n"
	      "contexts: [{name: e, context: {cluster: c, user: u}}]\n",
	      NULL, -EINVAL, "interactiveMode Always is not supported", NULL);
	fails("current-context: e\n"
	      "clusters: [{name: c, cluster: {server: 'https://s:1'}}]\n"
	      "users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1}}}]\n"
	      "contexts: [{name: e, context: {cluster: c, user: u}}]\n",
	      NULL, -EINVAL, "exec: no command", NULL);
}

/* --- in-cluster ------------------------------------------------------------ */

static void fake_sa(bool with_ns)
{
	free(put("sa/token", "sa-token\n", 0600));
	free(put("sa/ca.crt", "SA CA\n", 0644));
	if (with_ns)
		free(put("sa/namespace", "pod-ns\n", 0644));
}

TEST(in_cluster)
{
	const char *env[] = {"KUBERNETES_SERVICE_HOST=10.96.0.1", "KUBERNETES_SERVICE_PORT=443",
			     NULL};
	struct k8s_config *c;

	fake_sa(true);
	c = ok(env, NULL, NULL); /* no ~/.kube/config */
	CHECK(c->in_cluster);
	CHECK_STR(c->source, "in-cluster");
	CHECK(c->context == NULL && c->cluster == NULL && c->user == NULL);
	CHECK_STR(c->server, "https://10.96.0.1:443");
	CHECK_STR(c->ca_pem, "SA CA\n");
	CHECK_STR(c->token, "sa-token");
	CHECK_STR(c->namespace, "pod-ns");
	free(put("sa/token", "sa-token-rotated", 0600));
	CHECK_INT(k8s_config_refresh(c, time(NULL), NULL), ==, 0);
	CHECK_STR(c->token, "sa-token-rotated");
	k8s_config_free(c);
}

TEST(in_cluster_ipv6_pod_namespace_and_default)
{
	const char *env[] = {"KUBERNETES_SERVICE_HOST=fd00::1", "KUBERNETES_SERVICE_PORT=6443",
			     "POD_NAMESPACE=from-env", NULL};
	const char *env2[] = {"KUBERNETES_SERVICE_HOST=h", "KUBERNETES_SERVICE_PORT=1", NULL};
	struct k8s_config *c;

	fake_sa(true);
	c = ok(env, NULL, NULL);
	CHECK_STR(c->server, "https://[fd00::1]:6443");
	CHECK_STR(c->namespace, "from-env");
	k8s_config_free(c);

	fake_sa(false);
	{
		_cleanup_free_ char *ns = xasprintf("%s/sa/namespace", tmp());
		unlink(ns);
	}
	c = ok(env2, NULL, NULL);
	CHECK_STR(c->namespace, "default");
	k8s_config_free(c);
}

TEST(in_cluster_when_no_context_selected)
{
	const char *env[] = {"KUBERNETES_SERVICE_HOST=10.0.0.1", "KUBERNETES_SERVICE_PORT=443",
			     "KUBECONFIG=%T/k.yaml", NULL};
	struct k8s_config *c;
	struct err e;

	fake_sa(true);
	free(put("k.yaml",
		 "clusters: [{name: c, cluster: {server: 'https://s:1'}}]\n"
		 "users: [{name: u, user: {}}]\n"
		 "contexts: [{name: x, context: {cluster: c, user: u}}]\n",
		 0644));
	c = ok(env, NULL, NULL); /* no current-context: in-cluster */
	CHECK(c->in_cluster);
	k8s_config_free(c);
	c = ok(env, NULL, "x"); /* a chosen context wins */
	CHECK(!c->in_cluster);
	CHECK_STR(c->server, "https://s:1");
	k8s_config_free(c);
	/* Without a service account, no context is an error naming them. */
	{
		_cleanup_free_ char *tok = xasprintf("%s/sa/token", tmp());
		unlink(tok);
	}
	CHECK_INT(load(env, NULL, NULL, &c, &e), ==, -ESRCH);
	CHECK_CONTAINS(e.msg, "k.yaml: no current-context and no kube_context given (contexts: x)");
}

/* --- errors ------------------------------------------------------------------ */

TEST(error_file_missing_or_unreadable)
{
	struct k8s_config *c;
	struct err e;
	_cleanup_free_ char *dir = xasprintf("%s/adir", tmp());

	CHECK_INT(load(NULL, "/nonexistent/podenv/config", NULL, &c, &e), ==, -ENOENT);
	CHECK_STR(e.msg, "kubeconfig /nonexistent/podenv/config: No such file or directory");
	mkdir(dir, 0755);
	CHECK_INT(load(NULL, dir, NULL, &c, &e), ==, -EISDIR);
	CHECK_CONTAINS(e.msg, "adir: cannot read it: Is a directory");
	/* In KUBECONFIG too: a missing file is skipped, an unreadable one is not. */
	{
		const char *env[] = {"KUBECONFIG=%T/nope:%T/adir", NULL};
		CHECK_INT(load(env, NULL, NULL, &c, &e), ==, -EISDIR);
	}
	{
		const char *env[] = {"KUBECONFIG=%T/nope:%T/nope2", NULL};
		CHECK_INT(load(env, NULL, NULL, &c, &e), ==, -ENOENT);
		CHECK_CONTAINS(e.msg, "no Kubernetes configuration: none of the files in "
				      "KUBECONFIG (");
		CHECK_CONTAINS(e.msg, "and this is not a pod");
	}
	CHECK_INT(load(NULL, NULL, NULL, &c, &e), ==, -ENOENT);
	CHECK_CONTAINS(e.msg, "/home/.kube/config does not exist");
	{
		/* Only the chosen context can make use of files: still nothing. */
		const char *env[] = {"KUBERNETES_SERVICE_HOST=h", "KUBERNETES_SERVICE_PORT=1",
				     NULL};
		fake_sa(true);
		CHECK_INT(load(env, NULL, "dev", &c, &e), ==, -ENOENT);
	}
	CHECK(c == NULL);
}

TEST(error_not_yaml)
{
	fails("clusters: [\n  - name: x\n", NULL, -EINVAL, "invalid YAML", "config:2:3:");
	fails("a: b\n---\nc: d\n", NULL, -EINVAL, "only one document", NULL);
	fails("- just\n- a list\n", NULL, -EINVAL, "not a kubeconfig", NULL);
	fails("clusters: {name: x}\n", NULL, -EINVAL, "clusters: expected a list", NULL);
	fails("clusters: [{cluster: {}}]\n", NULL, -EINVAL, "clusters[0]: has no name", NULL);
	fails("users: [3]\n", NULL, -EINVAL, "users[0]: expected a mapping with name and user",
	      NULL);
	fails("contexts: [{name: a, context: {}}, {name: a, context: {}}]\n", NULL, -EINVAL,
	      "contexts: \"a\" is defined twice", NULL);
	fails("x: &a b\ny: *a\n", NULL, -EINVAL, "anchors are not supported", NULL);
}

static const char two_contexts[] = "current-context: nope\n"
				   "clusters: [{name: c, cluster: {server: 'https://s:1'}}]\n"
				   "users: [{name: u, user: {}}]\n"
				   "contexts:\n"
				   "- {name: alpha, context: {cluster: c, user: u}}\n"
				   "- {name: beta, context: {cluster: c}}\n"
				   "- {name: gamma, context: {user: u}}\n"
				   "- {name: delta, context: {cluster: zz, user: u}}\n"
				   "- {name: eps, context: {cluster: c, user: zz}}\n";

TEST(error_contexts)
{
	fails(two_contexts, NULL, -ESRCH,
	      "context \"nope\" not found (contexts: alpha, beta, gamma, delta, eps)", NULL);
	fails(two_contexts, "other", -ESRCH, "context \"other\" not found (contexts: alpha", NULL);
	fails(two_contexts, "beta", -ESRCH, "context \"beta\": no user", NULL);
	fails(two_contexts, "gamma", -ESRCH, "context \"gamma\": no cluster", NULL);
	fails(two_contexts, "delta", -ESRCH,
	      "context \"delta\": cluster \"zz\" not found (clusters: c)", NULL);
	fails(two_contexts, "eps", -ESRCH, "context \"eps\": user \"zz\" not found (users: u)",
	      NULL);
	fails("current-context: a\n", NULL, -ESRCH, "(there are no contexts)", NULL);
}

static void cluster_fails(const char *cluster_yaml, const char *user_yaml, int code,
			  const char *msg)
{
	_cleanup_free_ char *text =
		xasprintf("current-context: x\n"
			  "clusters: [{name: c, cluster: %s}]\n"
			  "users: [{name: u, user: %s}]\n"
			  "contexts: [{name: x, context: {cluster: c, user: u}}]\n",
			  cluster_yaml, user_yaml);
	fails(text, NULL, code, msg, NULL);
}

TEST(error_cluster_and_user_fields)
{
	cluster_fails("{insecure-skip-tls-verify: true}", "{}", -EINVAL,
		      "context \"x\", cluster \"c\": no server");
	cluster_fails("{server: 'https://s', certificate-authority-data: 'not*base64'}", "{}",
		      -EINVAL,
		      "context \"x\", cluster \"c\": certificate-authority-data is not "
		      "valid base64");
	cluster_fails("{server: 'https://s', certificate-authority-data: 'SGVsbG8'}", "{}", 0,
		      NULL); /* padding is optional */
	cluster_fails("{server: 'https://s', certificate-authority-data: 'SGVsbG8=='}", "{}",
		      -EINVAL, "not valid base64");
	cluster_fails("{server: 'https://s', certificate-authority: missing-ca.pem}", "{}", -ENOENT,
		      "cluster \"c\": certificate-authority ");
	cluster_fails("{server: 'https://s', certificate-authority: missing-ca.pem}", "{}", -ENOENT,
		      "/bad/missing-ca.pem: No such file or directory");
	cluster_fails("{server: 'https://s', insecure-skip-tls-verify: maybe}", "{}", -EINVAL,
		      "insecure-skip-tls-verify: expected true or false, not \"maybe\"");
	cluster_fails("{server: 'https://s', proxy-url: 'ftp://p:1'}", "{}", -EINVAL,
		      "proxy-url \"ftp://p:1\": unsupported scheme");
	cluster_fails("{server: [a]}", "{}", -EINVAL, "cluster \"c\": server: expected a string");
	cluster_fails("{server: 'https://s'}", "{client-certificate-data: " B64_HELLO "}", -EINVAL,
		      "user \"u\": client-certificate without client-key");
	cluster_fails("{server: 'https://s'}", "{client-key-data: '%%%'}", -EINVAL,
		      "user \"u\": client-key-data is not valid base64");
	cluster_fails("{server: 'https://s'}", "{tokenFile: /nonexistent/token}", -ENOENT,
		      "user \"u\": tokenFile /nonexistent/token: No such file");
}

TEST(in_memory_text)
{
	struct k8s_config_source src = {.kubeconfig = "/virtual/config",
					.text = basic,
					.text_len = sizeof(basic) - 1,
					.env = (char *const[]){"HOME=/nonexistent", NULL},
					.serviceaccount_dir = "/nonexistent"};
	struct k8s_config *c = NULL;
	struct err e = {0};

	CHECK_INT(k8s_config_load(&src, &c, &e), ==, 0);
	REQUIRE(c);
	CHECK_STR(c->source, "/virtual/config");
	CHECK_STR(c->token, "static-token");
	k8s_config_free(c);
	k8s_config_free(NULL);
}

TAP_MAIN()
