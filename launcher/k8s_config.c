/* kubeconfig and in-cluster configuration (k8s_config.h), following
 * client-go v0.32 tools/clientcmd (loader.go, client_config.go,
 * validation.go) and plugin/pkg/client/auth/exec/exec.go; the facts are in
 * research/k8s.md §1.
 *
 * Each file is read with libyaml onto a json-c tree, as config/yaml.c does
 * for podenv's own configuration, except that every scalar stays a string:
 * kubeconfig fields are typed by client-go's structs, not by YAML's scalar
 * rules, so `name: 1.10` is the string "1.10" and booleans are parsed only
 * where a boolean is expected. The files are merged by reference (entries
 * point into the trees), and only the selected context, cluster and user
 * are read in detail, so a broken entry nobody uses does not fail the load,
 * as with kubectl.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common/macro.h"
#include "config/config.h"
#include "launcher/k8s_config.h"

extern char **environ;

#define EXEC_API_V1 "client.authentication.k8s.io/v1"
#define EXEC_API_V1BETA1 "client.authentication.k8s.io/v1beta1"
#define EXEC_CLUSTER_EXTENSION "client.authentication.k8s.io/exec"
#define STDERR_KEEP 4096
#define NAMES_MAX 400 /* characters of a "(contexts: a, b)" list in a message */

static void json_putp(json_object **o)
{
	json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_putp)

static void strv_free(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

static void strv_freep(char ***v)
{
	strv_free(*v);
}
#define _cleanup_strv_ _cleanup_(strv_freep)

static size_t strv_len(char *const *v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}

/* Appends s (taken) to the NULL-terminated *v of length *n. */
static void strv_push(char ***v, size_t *n, char *s)
{
	*v = xrealloc(*v, (*n + 2) * sizeof(char *));
	(*v)[(*n)++] = s;
	(*v)[*n] = NULL;
}

static const char *env_get(char *const *env, const char *name)
{
	size_t n = strlen(name);

	for (; env && *env; env++)
		if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
			return *env + n + 1;
	return NULL;
}

static bool env_set(char *const *env, const char *name)
{
	const char *v = env_get(env, name);
	return v && *v;
}

/* Reads a whole file into a NUL-terminated buffer. Referenced files are
 * opened non-blocking so that a FIFO or terminal named by mistake fails
 * instead of hanging. Returns 0 or -errno (-EFBIG above max). */
static int read_all(const char *path, size_t max, bool nonblock, char **ret, size_t *retlen)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, cap = 0;
	struct stat st;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | (nonblock ? O_NONBLOCK : 0));
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	for (;;) {
		ssize_t n;

		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			buf = xrealloc(buf, cap + 1);
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max)
			return -EFBIG;
	}
	if (!buf)
		buf = xmalloc(1);
	buf[len] = '\0';
	*ret = TAKE_PTR(buf);
	if (retlen)
		*retlen = len;
	return 0;
}

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

/* A path from a kubeconfig, relative to the directory of its file. */
static char *path_resolve(const char *dir, const char *p)
{
	if (p[0] == '/' || !dir)
		return xstrdup(p);
	return xasprintf("%s/%s", dir, p);
}

static void trim(char *s)
{
	size_t n = strlen(s), i = 0;

	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	while (s[i] && isspace((unsigned char)s[i]))
		i++;
	memmove(s, s + i, n - i + 1);
}

/* --- base64 (RFC 4648, standard alphabet) --------------------------------- */

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decodes s, ignoring whitespace (Go's decoder skips line breaks, and
 * YAML folds long lines); padding is optional but must be right when
 * present. The result is NUL-terminated. -EINVAL if malformed. */
static int b64_decode(const char *s, size_t n, char **ret, size_t *retlen)
{
	_cleanup_free_ char *out = xmalloc(n / 4 * 3 + 4);
	size_t o = 0, chars = 0, pad = 0;
	uint32_t acc = 0;
	int bits = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		int v;

		if (isspace(c))
			continue;
		if (c == '=') {
			pad++;
			continue;
		}
		if (pad)
			return -EINVAL; /* data after padding */
		if ((v = b64_value(c)) < 0)
			return -EINVAL;
		chars++;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (chars % 4 == 1 || pad > 2 || (pad && (chars + pad) % 4 != 0))
		return -EINVAL;
	out[o] = '\0';
	*retlen = o;
	*ret = TAKE_PTR(out);
	return 0;
}

static char *b64_encode(const char *s, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = xmalloc((n + 2) / 3 * 4 + 1), *p = out;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)(unsigned char)s[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)(unsigned char)s[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)s[i + 2];
		*p++ = tab[v >> 18];
		*p++ = tab[(v >> 12) & 63];
		*p++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		*p++ = i + 2 < n ? tab[v & 63] : '=';
	}
	*p = '\0';
	return out;
}

/* --- YAML onto json-c, scalars as strings --------------------------------- */


/* --- the merged kubeconfig ------------------------------------------------ */

struct kc_file {
	char *path;
	char *dir;
	json_object *root; /* NULL: empty file */
};

struct kc_entry {
	const char *name;  /* borrowed from the tree */
	json_object *body; /* the cluster/user/context mapping; NULL if empty */
	size_t file;	   /* index into kc.files */
};

struct kc_list {
	struct kc_entry *v;
	size_t n;
};

struct kc {
	struct kc_file *files;
	size_t nfiles;
	struct kc_list clusters, users, contexts;
	const char *current; /* borrowed from a tree */
	char *label;	     /* the paths, ':'-joined, for messages */
};

static void kc_done(struct kc *kc)
{
	for (size_t i = 0; i < kc->nfiles; i++) {
		free(kc->files[i].path);
		free(kc->files[i].dir);
		json_object_put(kc->files[i].root);
	}
	free(kc->files);
	free(kc->clusters.v);
	free(kc->users.v);
	free(kc->contexts.v);
	free(kc->label);
}

static const struct kc_entry *kc_find(const struct kc_list *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i].name, name) == 0)
			return &l->v[i];
	return NULL;
}

/* "a, b, c" (shortened when long), for messages. */
static void kc_names(const struct kc_list *l, char *buf, size_t size)
{
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < l->n && o < size; i++) {
		int n = snprintf(buf + o, size - o, "%s%s", i ? ", " : "", l->v[i].name);
		if (n < 0 || (size_t)n >= size - o || o + (size_t)n > NAMES_MAX) {
			snprintf(buf + o, size - o, "%s…", i ? ", " : "");
			return;
		}
		o += (size_t)n;
	}
}

/* A string field: absent or null leaves *ret NULL; lists and mappings are
 * an error (scalars are all strings here). */
static int field_str(json_object *o, const char *key, const char **ret, const char *where,
		     struct err *e)
{
	json_object *v;

	*ret = NULL;
	if (!o || !json_object_object_get_ex(o, key, &v) || !v)
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return err_set(e, -EINVAL, "%s: %s: expected a string", where, key);
	*ret = json_object_get_string(v);
	return 0;
}

/* YAML 1.1's booleans (sigs.k8s.io/yaml reads kubeconfigs with them). */
static int field_bool(json_object *o, const char *key, bool *ret, const char *where, struct err *e)
{
	static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES",
					  "on",	  "On",	  "ON",	  "y",	 "Y"};
	static const char *const no[] = {"false", "False", "FALSE", "no", "No", "NO",
					 "off",	  "Off",   "OFF",   "n",  "N"};
	const char *s;
	int r;

	*ret = false;
	if ((r = field_str(o, key, &s, where, e)) < 0 || !s)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++)
		if (strcmp(s, yes[i]) == 0)
			return *ret = true, 0;
	for (size_t i = 0; i < ARRAY_SIZE(no); i++)
		if (strcmp(s, no[i]) == 0)
			return 0;
	return err_set(e, -EINVAL, "%s: %s: expected true or false, not \"%s\"", where, key, s);
}

/* A mapping or nothing; anything else is an error. */
static int field_map(json_object *o, const char *key, json_object **ret, const char *where,
		     struct err *e)
{
	json_object *v;

	*ret = NULL;
	if (!o || !json_object_object_get_ex(o, key, &v) || !v)
		return 0;
	if (!json_object_is_type(v, json_type_object))
		return err_set(e, -EINVAL, "%s: %s: expected a mapping", where, key);
	*ret = v;
	return 0;
}

static int field_list(json_object *o, const char *key, json_object **ret, const char *where,
		      struct err *e)
{
	json_object *v;

	*ret = NULL;
	if (!o || !json_object_object_get_ex(o, key, &v) || !v)
		return 0;
	if (!json_object_is_type(v, json_type_array))
		return err_set(e, -EINVAL, "%s: %s: expected a list", where, key);
	*ret = v;
	return 0;
}

/* Adds one file's named list (clusters/users/contexts) to the merged map:
 * names already defined by an earlier file are skipped whole; a name given
 * twice in one file is an error, as in client-go's conversion. */
static int kc_collect(struct kc *kc, size_t fi, const char *key, const char *field,
		      struct kc_list *l, struct err *e)
{
	const char *path = kc->files[fi].path;
	_cleanup_free_ char *where = xasprintf("kubeconfig %s", path);
	json_object *arr;
	size_t n;
	int r;

	if ((r = field_list(kc->files[fi].root, key, &arr, where, e)) < 0 || !arr)
		return r;
	n = json_object_array_length(arr);
	for (size_t i = 0; i < n; i++) {
		json_object *item = json_object_array_get_idx(arr, i), *body;
		_cleanup_free_ char *iw = xasprintf("kubeconfig %s: %s[%zu]", path, key, i);
		const char *name;

		if (!item || !json_object_is_type(item, json_type_object))
			return err_set(e, -EINVAL, "%s: expected a mapping with name and %s", iw,
				       field);
		if ((r = field_str(item, "name", &name, iw, e)) < 0)
			return r;
		if (!name)
			return err_set(e, -EINVAL, "%s: has no name", iw);
		if ((r = field_map(item, field, &body, iw, e)) < 0)
			return r;
		for (size_t j = 0; j < i; j++) {
			json_object *prev = json_object_array_get_idx(arr, j), *pn;
			if (json_object_object_get_ex(prev, "name", &pn) &&
			    json_object_is_type(pn, json_type_string) &&
			    strcmp(json_object_get_string(pn), name) == 0)
				return err_set(e, -EINVAL,
					       "kubeconfig %s: %s: \"%s\" is defined twice", path,
					       key, name);
		}
		if (kc_find(l, name))
			continue; /* an earlier file wins */
		l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
		l->v[l->n++] = (struct kc_entry){.name = name, .body = body, .file = fi};
	}
	return 0;
}

/* Parses text as the next file of the merge; takes nothing. */
static int kc_add(struct kc *kc, const char *path, const char *text, size_t len, struct err *e)
{
	_cleanup_json_ json_object *root = NULL;
	_cleanup_free_ char *where = xasprintf("kubeconfig %s", path);
	struct kc_file *f;
	const char *cur;
	size_t fi;
	int r;

	if ((r = cfg_yaml_to_json(text, len, where, CFG_YAML_STRINGS, &root, e)) < 0)
		return r;
	if (root && !json_object_is_type(root, json_type_object))
		return err_set(e, -EINVAL, "%s: not a kubeconfig (the top level is not a mapping)",
			       where);
	kc->files = xrealloc(kc->files, (kc->nfiles + 1) * sizeof(*kc->files));
	fi = kc->nfiles++;
	f = &kc->files[fi];
	f->path = xstrdup(path);
	f->dir = dir_of(path);
	f->root = TAKE_PTR(root);
	if (!kc->label)
		kc->label = xstrdup(path);
	else {
		char *l = xasprintf("%s:%s", kc->label, path);
		free(kc->label);
		kc->label = l;
	}
	if ((r = kc_collect(kc, fi, "clusters", "cluster", &kc->clusters, e)) < 0 ||
	    (r = kc_collect(kc, fi, "users", "user", &kc->users, e)) < 0 ||
	    (r = kc_collect(kc, fi, "contexts", "context", &kc->contexts, e)) < 0)
		return r;
	if ((r = field_str(f->root, "current-context", &cur, where, e)) < 0)
		return r;
	if (cur && *cur && !kc->current)
		kc->current = cur;
	return 0;
}

/* Reads and adds a file. -ENOENT is returned without touching reterr, so
 * that KUBECONFIG and ~/.kube/config can skip missing files. */
static int kc_add_file(struct kc *kc, const char *path, struct err *e)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r;

	r = read_all(path, K8S_CONFIG_FILE_MAX, false, &text, &len);
	if (r == -ENOENT)
		return r;
	if (r < 0)
		return err_set_errno(e, r, "kubeconfig %s: cannot read it", path);
	return kc_add(kc, path, text, len, e);
}

/* --- credentials ------------------------------------------------------------ */

struct k8s_config_auth {
	char *where; /* "kubeconfig F: context "c", user "u"" for messages */
	char *static_token;
	char *token_file; /* resolved path */
	char *file_token; /* its last contents, trimmed */
	char *static_cert, *static_key;
	size_t static_cert_len, static_key_len;

	bool has_exec;
	char *exec_cmd;	  /* as written */
	char *exec_dir;	  /* the kubeconfig's directory, for a relative command */
	char **exec_argv; /* argv[0] = the command as written */
	char **exec_env;  /* NAME=value, from the exec env list */
	char *exec_api;
	char *install_hint;
	char *exec_info; /* KUBERNETES_EXEC_INFO */
	char **env;	 /* copy of the source's environment */

	bool cached;
	char *x_token, *x_cert, *x_key;
	size_t x_cert_len, x_key_len;
	bool x_expires;
	time_t x_expiry;
};

static void auth_drop_cache(struct k8s_config_auth *a)
{
	free(a->x_token);
	free(a->x_cert);
	free(a->x_key);
	a->x_token = a->x_cert = a->x_key = NULL;
	a->x_cert_len = a->x_key_len = 0;
	a->cached = false;
	a->x_expires = false;
}

static void auth_free(struct k8s_config_auth *a)
{
	if (!a)
		return;
	auth_drop_cache(a);
	free(a->where);
	free(a->static_token);
	free(a->token_file);
	free(a->file_token);
	free(a->static_cert);
	free(a->static_key);
	free(a->exec_cmd);
	free(a->exec_dir);
	strv_free(a->exec_argv);
	strv_free(a->exec_env);
	free(a->exec_api);
	free(a->install_hint);
	free(a->exec_info);
	strv_free(a->env);
	free(a);
}

/* Points the public credential fields at the current sources. */
static void auth_apply(struct k8s_config *c)
{
	struct k8s_config_auth *a = c->auth;

	c->token = a->static_token ? a->static_token
		   : a->file_token ? a->file_token
		   : a->cached	   ? a->x_token
				   : NULL;
	if (a->cached && a->x_cert) {
		c->client_cert_pem = a->x_cert;
		c->client_cert_pem_len = a->x_cert_len;
		c->client_key_pem = a->x_key;
		c->client_key_pem_len = a->x_key_len;
	} else {
		c->client_cert_pem = a->static_cert;
		c->client_cert_pem_len = a->static_cert_len;
		c->client_key_pem = a->static_key;
		c->client_key_pem_len = a->static_key_len;
	}
}

static int token_file_read(struct k8s_config_auth *a, struct err *e)
{
	_cleanup_free_ char *t = NULL;
	int r;

	r = read_all(a->token_file, K8S_CONFIG_REF_MAX, true, &t, NULL);
	if (r < 0)
		return err_set_errno(e, r, "%s: tokenFile %s", a->where, a->token_file);
	trim(t);
	if (!*t)
		return err_set(e, -EBADMSG, "%s: tokenFile %s is empty", a->where, a->token_file);
	free(a->file_token);
	a->file_token = TAKE_PTR(t);
	return 0;
}

/* RFC 3339 ("2024-05-01T10:00:00Z", fractions and offsets allowed). */
static int digits(const char **p, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++, (*p)++) {
		if (!isdigit((unsigned char)**p))
			return -1;
		v = v * 10 + (**p - '0');
	}
	return v;
}

static int parse_rfc3339(const char *s, time_t *ret)
{
	struct tm tm = {0};
	const char *p = s;
	int Y, M, D, h, m, sec, off = 0;
	time_t t;

	if ((Y = digits(&p, 4)) < 0 || *p++ != '-' || (M = digits(&p, 2)) < 1 || M > 12 ||
	    *p++ != '-' || (D = digits(&p, 2)) < 1 || D > 31 || (*p != 'T' && *p != 't'))
		return -EINVAL;
	p++;
	if ((h = digits(&p, 2)) < 0 || h > 23 || *p++ != ':' || (m = digits(&p, 2)) < 0 || m > 59 ||
	    *p++ != ':' || (sec = digits(&p, 2)) < 0 || sec > 60)
		return -EINVAL;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (*p == 'Z' || *p == 'z')
		p++;
	else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, oh, om;
		if ((oh = digits(&p, 2)) < 0 || oh > 23 || *p++ != ':' ||
		    (om = digits(&p, 2)) < 0 || om > 59)
			return -EINVAL;
		off = sign * (oh * 3600 + om * 60);
	} else
		return -EINVAL;
	if (*p)
		return -EINVAL;
	tm.tm_year = Y - 1900;
	tm.tm_mon = M - 1;
	tm.tm_mday = D;
	tm.tm_hour = h;
	tm.tm_min = m;
	tm.tm_sec = sec;
	t = timegm(&tm);
	*ret = t - off;
	return 0;
}

/* The last non-empty line of a plugin's stderr, made printable. */
static void last_line(const char *s, size_t n, char *out, size_t size)
{
	size_t end = n, start, o = 0;

	while (end > 0 && isspace((unsigned char)s[end - 1]))
		end--;
	start = end;
	while (start > 0 && s[start - 1] != '\n')
		start--;
	while (start < end && isspace((unsigned char)s[start]))
		start++;
	for (size_t i = start; i < end && o + 1 < size; i++)
		out[o++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	out[o] = '\0';
}

/* Finds the plugin: a command with '/' relative to the kubeconfig's
 * directory, else searched in the PATH of our environment (Go's
 * exec.LookPath). NULL when there is no executable file. */
static char *exec_find(const struct k8s_config_auth *a)
{
	const char *path = env_get(a->env, "PATH");

	if (strchr(a->exec_cmd, '/')) {
		char *p = path_resolve(a->exec_dir, a->exec_cmd);
		struct stat st;
		if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0)
			return p;
		free(p);
		return NULL;
	}
	while (path && *path) {
		const char *colon = strchrnul(path, ':');
		_cleanup_free_ char *p = NULL;
		struct stat st;

		if (colon == path)
			p = xasprintf("./%s", a->exec_cmd);
		else
			p = xasprintf("%.*s/%s", (int)(colon - path), path, a->exec_cmd);
		if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0)
			return TAKE_PTR(p);
		path = *colon ? colon + 1 : colon;
	}
	return NULL;
}

/* Our environment with the plugin's env list and KUBERNETES_EXEC_INFO laid
 * over it (later entries replace same-named earlier ones, as Go's
 * exec.Cmd dedups). Caller frees with strv_free. */
static char **exec_envp(const struct k8s_config_auth *a)
{
	char **v = NULL;
	size_t n = 0, nx = strv_len(a->exec_env);

	for (char *const *p = a->env; p && *p; p++) {
		size_t len = strcspn(*p, "=");
		bool replaced = strncmp(*p, "KUBERNETES_EXEC_INFO=", 21) == 0;
		for (size_t i = 0; i < nx && !replaced; i++)
			replaced = strncmp(*p, a->exec_env[i], len + 1) == 0;
		if (!replaced)
			strv_push(&v, &n, xstrdup(*p));
	}
	for (size_t i = 0; i < nx; i++) {
		size_t len = strcspn(a->exec_env[i], "=");
		bool later = false;
		for (size_t j = i + 1; j < nx && !later; j++)
			later = strncmp(a->exec_env[j], a->exec_env[i], len + 1) == 0;
		if (!later)
			strv_push(&v, &n, xstrdup(a->exec_env[i]));
	}
	strv_push(&v, &n, xasprintf("KUBERNETES_EXEC_INFO=%s", a->exec_info));
	if (!v)
		v = xcalloc(1, sizeof(char *));
	return v;
}

struct exec_result {
	char *out;
	size_t out_len;
	bool out_overflow;
	char err[2 * STDERR_KEEP];
	size_t err_len;
	int status;
};

/* Spawns the plugin and collects stdout (bounded) and the tail of
 * stderr until both close, then reaps it. Returns 0 or -errno from
 * posix_spawn (the exec's own error, glibc reports it). */
static int exec_spawn(const char *path, char *const *argv, char *const *envp,
		      struct exec_result *res)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	int outp[2], errp[2], r;
	size_t cap = 0;
	pid_t pid;

	if (pipe2(outp, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(errp, O_CLOEXEC) < 0) {
		r = -errno;
		close(outp[0]);
		close(outp[1]);
		return r;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
	posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
	posix_spawnattr_init(&at);
	/* The launcher blocks signals for its signalfd; the plugin must not
	 * inherit that, nor ignored dispositions. */
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	r = posix_spawn(&pid, path, &fa, &at, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(outp[1]);
	close(errp[1]);
	if (r != 0) {
		close(outp[0]);
		close(errp[0]);
		return -r;
	}

	struct pollfd pfd[2] = {{.fd = outp[0], .events = POLLIN},
				{.fd = errp[0], .events = POLLIN}};
	while (pfd[0].fd >= 0 || pfd[1].fd >= 0) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++) {
			char tmp[STDERR_KEEP];
			ssize_t n;

			if (pfd[i].fd < 0 || !pfd[i].revents)
				continue;
			n = read(pfd[i].fd, tmp, sizeof(tmp));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				close(pfd[i].fd);
				pfd[i].fd = -1;
				continue;
			}
			if (i == 0) {
				if (res->out_len + (size_t)n > K8S_CONFIG_REF_MAX) {
					res->out_overflow = true; /* keep draining */
					continue;
				}
				if (res->out_len + (size_t)n + 1 > cap) {
					cap = MAX(cap * 2, res->out_len + (size_t)n + 1);
					res->out = xrealloc(res->out, cap);
				}
				memcpy(res->out + res->out_len, tmp, (size_t)n);
				res->out_len += (size_t)n;
				res->out[res->out_len] = '\0';
			} else {
				/* Keep the tail: n <= STDERR_KEEP, so after dropping
				 * all but the last STDERR_KEEP bytes it fits. */
				if (res->err_len + (size_t)n > sizeof(res->err)) {
					memmove(res->err, res->err + res->err_len - STDERR_KEEP,
						STDERR_KEEP);
					res->err_len = STDERR_KEEP;
				}
				memcpy(res->err + res->err_len, tmp, (size_t)n);
				res->err_len += (size_t)n;
			}
		}
	}
	for (int i = 0; i < 2; i++)
		if (pfd[i].fd >= 0)
			close(pfd[i].fd);
	while (waitpid(pid, &res->status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

/* Reads the plugin's ExecCredential into the cache. */
static int exec_parse(struct k8s_config_auth *a, const char *path, const struct exec_result *res,
		      struct err *e)
{
	_cleanup_json_ json_object *root = NULL;
	json_tokener *tok;
	json_object *status, *v;
	const char *api = NULL, *kind = NULL, *token = NULL, *cert = NULL, *key = NULL, *exp = NULL;
	enum json_tokener_error jerr;
	size_t end;
	time_t expiry = 0;

	if (res->out_overflow)
		return err_set(e, -EBADMSG, "%s: exec plugin %s printed more than %u bytes",
			       a->where, path, K8S_CONFIG_REF_MAX);
	if (res->out_len == 0)
		return err_set(e, -EBADMSG, "%s: exec plugin %s printed nothing", a->where, path);
	tok = json_tokener_new();
	root = json_tokener_parse_ex(tok, res->out, (int)res->out_len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	while (root && end < res->out_len && isspace((unsigned char)res->out[end]))
		end++;
	if (!root || jerr != json_tokener_success || end != res->out_len)
		return err_set(e, -EBADMSG, "%s: exec plugin %s: its output is not JSON (%s)",
			       a->where, path,
			       jerr != json_tokener_success ? json_tokener_error_desc(jerr)
			       : !root			    ? "null"
							    : "trailing data");
	if (!json_object_is_type(root, json_type_object))
		return err_set(e, -EBADMSG,
			       "%s: exec plugin %s: its output is not an ExecCredential", a->where,
			       path);
	if (json_object_object_get_ex(root, "apiVersion", &v) &&
	    json_object_is_type(v, json_type_string))
		api = json_object_get_string(v);
	if (json_object_object_get_ex(root, "kind", &v) && json_object_is_type(v, json_type_string))
		kind = json_object_get_string(v);
	if (!api || strcmp(api, a->exec_api) != 0)
		return err_set(e, -EBADMSG,
			       "%s: exec plugin %s returned apiVersion \"%s\", but the kubeconfig "
			       "asks for \"%s\"",
			       a->where, path, api ? api : "", a->exec_api);
	if (!kind || strcmp(kind, "ExecCredential") != 0)
		return err_set(e, -EBADMSG,
			       "%s: exec plugin %s returned kind \"%s\", not ExecCredential",
			       a->where, path, kind ? kind : "");
	if (!json_object_object_get_ex(root, "status", &status) ||
	    !json_object_is_type(status, json_type_object))
		return err_set(e, -EBADMSG, "%s: exec plugin %s returned no status", a->where,
			       path);
#define STATUS_STR(name, var)                                                                      \
	do {                                                                                       \
		if (json_object_object_get_ex(status, name, &v) && v) {                            \
			if (!json_object_is_type(v, json_type_string))                             \
				return err_set(e, -EBADMSG,                                        \
					       "%s: exec plugin %s: status." name                  \
					       " is not a string",                                 \
					       a->where, path);                                    \
			var = json_object_get_string(v);                                           \
			if (!*var)                                                                 \
				var = NULL;                                                        \
		}                                                                                  \
	} while (0)
	STATUS_STR("token", token);
	STATUS_STR("clientCertificateData", cert);
	STATUS_STR("clientKeyData", key);
	STATUS_STR("expirationTimestamp", exp);
#undef STATUS_STR
	if (!!cert != !!key)
		return err_set(e, -EBADMSG,
			       "%s: exec plugin %s returned a client %s without its %s", a->where,
			       path, cert ? "certificate" : "key", cert ? "key" : "certificate");
	if (!token && !cert)
		return err_set(
			e, -EBADMSG,
			"%s: exec plugin %s returned neither a token nor a client certificate "
			"and key",
			a->where, path);
	if (exp && parse_rfc3339(exp, &expiry) < 0)
		return err_set(e, -EBADMSG,
			       "%s: exec plugin %s: expirationTimestamp \"%s\" is not RFC 3339",
			       a->where, path, exp);
	auth_drop_cache(a);
	a->cached = true;
	a->x_token = token ? xstrdup(token) : NULL;
	if (cert) {
		a->x_cert = xstrdup(cert);
		a->x_cert_len = strlen(cert);
		a->x_key = xstrdup(key);
		a->x_key_len = strlen(key);
	}
	a->x_expires = exp != NULL;
	a->x_expiry = expiry;
	return 0;
}

static int exec_run(struct k8s_config_auth *a, struct err *e)
{
	_cleanup_free_ char *path = exec_find(a);
	_cleanup_strv_ char **envp = NULL;
	struct exec_result res = {0};
	char tail[300];
	int r;

	if (!path)
		return err_set(e, -ENOENT, "%s: exec plugin \"%s\" not found%s%s%s", a->where,
			       a->exec_cmd, strchr(a->exec_cmd, '/') ? "" : " in PATH",
			       a->install_hint ? ": " : "", a->install_hint ? a->install_hint : "");
	envp = exec_envp(a);
	r = exec_spawn(path, a->exec_argv, envp, &res);
	if (r < 0) {
		free(res.out);
		return err_set_errno(e, r, "%s: exec plugin %s", a->where, path);
	}
	last_line(res.err, res.err_len, tail, sizeof(tail));
	if (!WIFEXITED(res.status) || WEXITSTATUS(res.status) != 0) {
		free(res.out);
		if (WIFSIGNALED(res.status))
			return err_set(e, -EIO, "%s: exec plugin %s was killed by signal %d%s%s",
				       a->where, path, WTERMSIG(res.status), *tail ? ": " : "",
				       tail);
		return err_set(e, -EIO, "%s: exec plugin %s failed with exit status %d: %s",
			       a->where, path, WEXITSTATUS(res.status),
			       *tail ? tail : "(nothing on stderr)");
	}
	r = exec_parse(a, path, &res, e);
	free(res.out);
	return r;
}

int k8s_config_refresh(struct k8s_config *c, time_t now, struct err *reterr)
{
	struct k8s_config_auth *a = c->auth;
	int r, ran = 0;

	if (a->token_file && (r = token_file_read(a, reterr)) < 0)
		return r;
	if (a->has_exec && !a->static_token && !a->token_file &&
	    (!a->cached || (a->x_expires && now >= a->x_expiry))) {
		if ((r = exec_run(a, reterr)) < 0)
			return r;
		ran = 1;
	}
	auth_apply(c);
	return ran;
}

void k8s_config_invalidate(struct k8s_config *c)
{
	if (!c)
		return;
	auth_drop_cache(c->auth);
	auth_apply(c);
}

void k8s_config_free(struct k8s_config *c)
{
	if (!c)
		return;
	free(c->source);
	free(c->context);
	free(c->cluster);
	free(c->user);
	free(c->server);
	free(c->namespace);
	free(c->ca_pem);
	free(c->tls_server_name);
	free(c->proxy_url);
	auth_free(c->auth);
	free(c);
}

static void k8s_config_freep(struct k8s_config **c)
{
	k8s_config_free(*c);
}

/* --- resolving a context ----------------------------------------------------- */

/* PEM (or other bytes) from `<key>-data` (base64) or else the file `<key>`,
 * relative to dir. Neither set leaves *ret NULL. */
static int load_blob(json_object *o, const char *key, const char *dir, const char *where,
		     char **ret, size_t *retlen, struct err *e)
{
	_cleanup_free_ char *dkey = xasprintf("%s-data", key);
	_cleanup_free_ char *path = NULL;
	const char *data, *file;
	int r;

	*ret = NULL;
	*retlen = 0;
	if ((r = field_str(o, dkey, &data, where, e)) < 0 ||
	    (r = field_str(o, key, &file, where, e)) < 0)
		return r;
	if (data && *data) {
		if (b64_decode(data, strlen(data), ret, retlen) < 0)
			return err_set(e, -EINVAL, "%s: %s is not valid base64", where, dkey);
		return 0;
	}
	if (!file || !*file)
		return 0;
	path = path_resolve(dir, file);
	r = read_all(path, K8S_CONFIG_REF_MAX, true, ret, retlen);
	if (r < 0)
		return err_set_errno(e, r, "%s: %s %s", where, key, path);
	return 0;
}

static int check_proxy_url(const char *url, const char *where, struct err *e)
{
	static const char *const ok[] = {"http://", "https://", "socks5://"};

	for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
		if (strncasecmp(url, ok[i], strlen(ok[i])) == 0)
			return 0;
	return err_set(e, -EINVAL,
		       "%s: proxy-url \"%s\": unsupported scheme, must be http, https or socks5",
		       where, url);
}

static int resolve_cluster(struct kc *kc, const struct kc_entry *ce, const char *ctxname,
			   struct k8s_config *c, struct err *e)
{
	const struct kc_file *f = &kc->files[ce->file];
	_cleanup_free_ char *where = xasprintf("kubeconfig %s: context \"%s\", cluster \"%s\"",
					       f->path, ctxname, ce->name);
	const char *server, *sni, *proxy;
	int r;

	if ((r = field_str(ce->body, "server", &server, where, e)) < 0 ||
	    (r = field_str(ce->body, "tls-server-name", &sni, where, e)) < 0 ||
	    (r = field_str(ce->body, "proxy-url", &proxy, where, e)) < 0 ||
	    (r = field_bool(ce->body, "insecure-skip-tls-verify", &c->insecure, where, e)) < 0)
		return r;
	if (!server || !*server)
		return err_set(e, -EINVAL, "%s: no server", where);
	c->server = strstr(server, "://") ? xstrdup(server) : xasprintf("https://%s", server);
	if (sni && *sni)
		c->tls_server_name = xstrdup(sni);
	if (proxy && *proxy) {
		if ((r = check_proxy_url(proxy, where, e)) < 0)
			return r;
		c->proxy_url = xstrdup(proxy);
	}
	return load_blob(ce->body, "certificate-authority", f->dir, where, &c->ca_pem,
			 &c->ca_pem_len, e);
}

/* The exec section, and KUBERNETES_EXEC_INFO built from it. */
static int resolve_exec(struct kc *kc, const struct kc_entry *ue, json_object *ex,
			const struct kc_entry *ce, struct k8s_config *c, const char *where,
			struct err *e)
{
	struct k8s_config_auth *a = c->auth;
	_cleanup_free_ char *xw = xasprintf("%s: exec", where);
	_cleanup_json_ json_object *info = NULL;
	const char *cmd, *api, *mode, *hint;
	json_object *args, *env, *spec;
	bool cluster_info;
	size_t n = 0;
	int r;

	if ((r = field_str(ex, "command", &cmd, xw, e)) < 0 ||
	    (r = field_str(ex, "apiVersion", &api, xw, e)) < 0 ||
	    (r = field_str(ex, "interactiveMode", &mode, xw, e)) < 0 ||
	    (r = field_str(ex, "installHint", &hint, xw, e)) < 0 ||
	    (r = field_bool(ex, "provideClusterInfo", &cluster_info, xw, e)) < 0 ||
	    (r = field_list(ex, "args", &args, xw, e)) < 0 ||
	    (r = field_list(ex, "env", &env, xw, e)) < 0)
		return r;
	if (!cmd || !*cmd)
		return err_set(e, -EINVAL, "%s: no command", xw);
	if (!api || !*api)
		return err_set(e, -EINVAL, "%s: no apiVersion", xw);
	if (strcmp(api, EXEC_API_V1) != 0 && strcmp(api, EXEC_API_V1BETA1) != 0)
		return err_set(e, -EINVAL, "%s: apiVersion \"%s\" is not supported (use %s or %s)",
			       xw, api, EXEC_API_V1, EXEC_API_V1BETA1);
	/* validation.go: v1 must say; plugins run here never get a terminal. */
	if (!mode && strcmp(api, EXEC_API_V1) == 0)
		return err_set(e, -EINVAL, "%s: interactiveMode must be set for %s", xw, api);
	if (mode && strcmp(mode, "Never") != 0 && strcmp(mode, "IfAvailable") != 0) {
		if (strcmp(mode, "Always") == 0)
			return err_set(
				e, -EINVAL,
				"%s: interactiveMode Always is not supported (podenv runs exec "
				"plugins without a terminal)",
				xw);
		return err_set(e, -EINVAL,
			       "%s: interactiveMode \"%s\" is not Never, IfAvailable or Always", xw,
			       mode);
	}
	a->has_exec = true;
	a->exec_cmd = xstrdup(cmd);
	a->exec_dir = xstrdup(kc->files[ue->file].dir);
	a->exec_api = xstrdup(api);
	if (hint && *hint) {
		a->install_hint = xstrdup(hint);
		for (char *p = a->install_hint; *p; p++)
			if (*p == '\n' || *p == '\r' || *p == '\t')
				*p = ' '; /* one-line messages */
		trim(a->install_hint);
	}
	strv_push(&a->exec_argv, &n, xstrdup(cmd));
	for (size_t i = 0; args && i < json_object_array_length(args); i++) {
		json_object *v = json_object_array_get_idx(args, i);
		if (v && !json_object_is_type(v, json_type_string))
			return err_set(e, -EINVAL, "%s: args[%zu]: expected a string", xw, i);
		strv_push(&a->exec_argv, &n, xstrdup(v ? json_object_get_string(v) : ""));
	}
	n = 0;
	for (size_t i = 0; env && i < json_object_array_length(env); i++) {
		json_object *item = json_object_array_get_idx(env, i);
		_cleanup_free_ char *ew = xasprintf("%s: env[%zu]", xw, i);
		const char *name, *value;

		if (!item || !json_object_is_type(item, json_type_object))
			return err_set(e, -EINVAL, "%s: expected a mapping with name and value",
				       ew);
		if ((r = field_str(item, "name", &name, ew, e)) < 0 ||
		    (r = field_str(item, "value", &value, ew, e)) < 0)
			return r;
		if (!name || !*name || strchr(name, '='))
			return err_set(e, -EINVAL, "%s: name must be set and contain no '='", ew);
		strv_push(&a->exec_env, &n, xasprintf("%s=%s", name, value ? value : ""));
	}

	/* KUBERNETES_EXEC_INFO as client-go writes it (exec.go, research/k8s.md §1.5). */
	info = json_object_new_object();
	spec = json_object_new_object();
	json_object_object_add(info, "kind", json_object_new_string("ExecCredential"));
	json_object_object_add(info, "apiVersion", json_object_new_string(api));
	if (cluster_info) {
		json_object *cl = json_object_new_object(), *exts, *cfg = NULL;
		json_object_object_add(cl, "server", json_object_new_string(c->server));
		if (c->tls_server_name)
			json_object_object_add(cl, "tls-server-name",
					       json_object_new_string(c->tls_server_name));
		if (c->insecure)
			json_object_object_add(cl, "insecure-skip-tls-verify",
					       json_object_new_boolean(1));
		if (c->ca_pem) {
			_cleanup_free_ char *b = b64_encode(c->ca_pem, c->ca_pem_len);
			json_object_object_add(cl, "certificate-authority-data",
					       json_object_new_string(b));
		}
		if (c->proxy_url)
			json_object_object_add(cl, "proxy-url",
					       json_object_new_string(c->proxy_url));
		/* The per-cluster exec extension becomes spec.cluster.config. */
		if (json_object_object_get_ex(ce->body, "extensions", &exts) &&
		    json_object_is_type(exts, json_type_array))
			for (size_t i = 0; i < json_object_array_length(exts) && !cfg; i++) {
				json_object *x = json_object_array_get_idx(exts, i), *nm;
				if (x && json_object_object_get_ex(x, "name", &nm) && nm &&
				    strcmp(json_object_get_string(nm), EXEC_CLUSTER_EXTENSION) ==
					    0 &&
				    json_object_object_get_ex(x, "extension", &cfg) && cfg)
					json_object_object_add(cl, "config", json_object_get(cfg));
			}
		json_object_object_add(spec, "cluster", cl);
	}
	json_object_object_add(spec, "interactive", json_object_new_boolean(0));
	json_object_object_add(info, "spec", spec);
	a->exec_info = xstrdup(json_object_to_json_string_ext(
		info, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	return 0;
}

static int resolve_user(struct kc *kc, const struct kc_entry *ue, const struct kc_entry *ce,
			const char *ctxname, struct k8s_config *c, struct err *e)
{
	const struct kc_file *f = &kc->files[ue->file];
	struct k8s_config_auth *a = c->auth;
	_cleanup_free_ char *where =
		xasprintf("kubeconfig %s: context \"%s\", user \"%s\"", f->path, ctxname, ue->name);
	const char *token, *token_file;
	json_object *ex;
	int r;

	a->where = xstrdup(where);
	if ((r = load_blob(ue->body, "client-certificate", f->dir, where, &a->static_cert,
			   &a->static_cert_len, e)) < 0 ||
	    (r = load_blob(ue->body, "client-key", f->dir, where, &a->static_key,
			   &a->static_key_len, e)) < 0)
		return r;
	if (!!a->static_cert != !!a->static_key)
		return err_set(e, -EINVAL, "%s: %s without %s", where,
			       a->static_cert ? "client-certificate" : "client-key",
			       a->static_cert ? "client-key" : "client-certificate");
	if ((r = field_str(ue->body, "token", &token, where, e)) < 0 ||
	    (r = field_str(ue->body, "tokenFile", &token_file, where, e)) < 0 ||
	    (r = field_map(ue->body, "exec", &ex, where, e)) < 0)
		return r;
	if (token && *token)
		a->static_token = xstrdup(token);
	else if (token_file && *token_file) {
		a->token_file = path_resolve(f->dir, token_file);
		if ((r = token_file_read(a, e)) < 0)
			return r;
	}
	if (ex && (r = resolve_exec(kc, ue, ex, ce, c, where, e)) < 0)
		return r;
	return 0;
}

static int kc_resolve(struct kc *kc, const char *ctxname, char *const *env, struct k8s_config *c,
		      struct err *e)
{
	const struct kc_entry *xe, *ce, *ue;
	const char *cname, *uname, *ns;
	char names[NAMES_MAX + 64];
	_cleanup_free_ char *where = NULL;
	int r;

	if (!(xe = kc_find(&kc->contexts, ctxname))) {
		kc_names(&kc->contexts, names, sizeof(names));
		return err_set(e, -ESRCH, "kubeconfig %s: context \"%s\" not found (%s%s)",
			       kc->label, ctxname, *names ? "contexts: " : "there are no contexts",
			       names);
	}
	where = xasprintf("kubeconfig %s: context \"%s\"", kc->files[xe->file].path, ctxname);
	if ((r = field_str(xe->body, "cluster", &cname, where, e)) < 0 ||
	    (r = field_str(xe->body, "user", &uname, where, e)) < 0 ||
	    (r = field_str(xe->body, "namespace", &ns, where, e)) < 0)
		return r;
	if (!cname || !*cname)
		return err_set(e, -ESRCH, "%s: no cluster", where);
	if (!uname || !*uname)
		return err_set(e, -ESRCH, "%s: no user", where);
	if (!(ce = kc_find(&kc->clusters, cname))) {
		kc_names(&kc->clusters, names, sizeof(names));
		return err_set(e, -ESRCH, "%s: cluster \"%s\" not found (%s%s)", where, cname,
			       *names ? "clusters: " : "there are no clusters", names);
	}
	if (!(ue = kc_find(&kc->users, uname))) {
		kc_names(&kc->users, names, sizeof(names));
		return err_set(e, -ESRCH, "%s: user \"%s\" not found (%s%s)", where, uname,
			       *names ? "users: " : "there are no users", names);
	}
	c->source = xstrdup(kc->label);
	c->context = xstrdup(ctxname);
	c->cluster = xstrdup(cname);
	c->user = xstrdup(uname);
	c->namespace = xstrdup(ns && *ns ? ns : "default");
	c->auth = xcalloc(1, sizeof(*c->auth));
	c->auth->env = xcalloc(strv_len(env) + 1, sizeof(char *));
	for (size_t i = 0; env && env[i]; i++)
		c->auth->env[i] = xstrdup(env[i]);
	if ((r = resolve_cluster(kc, ce, ctxname, c, e)) < 0 ||
	    (r = resolve_user(kc, ue, ce, ctxname, c, e)) < 0)
		return r;
	auth_apply(c);
	return 0;
}

/* --- in-cluster ---------------------------------------------------------------- */

static bool incluster_possible(char *const *env, const char *sadir)
{
	_cleanup_free_ char *tok = xasprintf("%s/token", sadir);
	struct stat st;

	return env_set(env, "KUBERNETES_SERVICE_HOST") && env_set(env, "KUBERNETES_SERVICE_PORT") &&
	       stat(tok, &st) == 0 && S_ISREG(st.st_mode);
}

/* client-go rest.InClusterConfig and inClusterClientConfig.Namespace. */
static int incluster_load(char *const *env, const char *sadir, struct k8s_config *c, struct err *e)
{
	const char *host = env_get(env, "KUBERNETES_SERVICE_HOST");
	const char *port = env_get(env, "KUBERNETES_SERVICE_PORT");
	const char *ns = env_get(env, "POD_NAMESPACE");
	_cleanup_free_ char *ca = xasprintf("%s/ca.crt", sadir);
	_cleanup_free_ char *nsfile = xasprintf("%s/namespace", sadir);
	_cleanup_free_ char *nstext = NULL;
	int r;

	c->in_cluster = true;
	c->source = xstrdup("in-cluster");
	c->server = strchr(host, ':') ? xasprintf("https://[%s]:%s", host, port)
				      : xasprintf("https://%s:%s", host, port);
	/* As client-go: a CA that cannot be read is left out (system roots). */
	if (read_all(ca, K8S_CONFIG_REF_MAX, true, &c->ca_pem, &c->ca_pem_len) < 0 ||
	    c->ca_pem_len == 0) {
		free(c->ca_pem);
		c->ca_pem = NULL;
		c->ca_pem_len = 0;
	}
	if (ns && *ns)
		c->namespace = xstrdup(ns);
	else if (read_all(nsfile, K8S_CONFIG_REF_MAX, true, &nstext, NULL) == 0 &&
		 (trim(nstext), *nstext))
		c->namespace = TAKE_PTR(nstext);
	else
		c->namespace = xstrdup("default");
	c->auth = xcalloc(1, sizeof(*c->auth));
	c->auth->where = xasprintf("in-cluster service account %s", sadir);
	c->auth->token_file = xasprintf("%s/token", sadir);
	c->auth->env = xcalloc(1, sizeof(char *));
	r = token_file_read(c->auth, e);
	if (r < 0)
		return r;
	auth_apply(c);
	return 0;
}

/* --- loading ------------------------------------------------------------------- */

static char *expand_home(const char *p, char *const *env)
{
	const char *home = env_get(env, "HOME");

	if (home && *home && p[0] == '~' && (p[1] == '\0' || p[1] == '/'))
		return xasprintf("%s%s", home, p + 1);
	return xstrdup(p);
}

/* Reads the files of the first source that applies; *why says, when none
 * was found, what was looked for (for the error). */
static int kc_read_sources(struct kc *kc, const struct k8s_config_source *src, char *const *env,
			   char **why, struct err *e)
{
	const char *list = env_get(env, "KUBECONFIG"), *home = env_get(env, "HOME");
	_cleanup_free_ char *path = NULL;
	int r;

	if (src->kubeconfig && *src->kubeconfig) {
		path = expand_home(src->kubeconfig, env);
		if (src->text)
			return kc_add(kc, path, src->text, src->text_len, e);
		r = kc_add_file(kc, path, e);
		if (r == -ENOENT)
			return err_set_errno(e, r, "kubeconfig %s", path);
		return r;
	}
	if (list && *list) {
		_cleanup_strv_ char **seen = NULL;
		size_t nseen = 0;

		for (const char *p = list; *p;) {
			const char *colon = strchrnul(p, ':');
			char *one = xstrndup(p, (size_t)(colon - p));
			bool dup = !*one;

			for (size_t i = 0; i < nseen && !dup; i++)
				dup = strcmp(seen[i], one) == 0;
			if (dup)
				free(one);
			else {
				strv_push(&seen, &nseen, one);
				r = kc_add_file(kc, one, e);
				if (r < 0 && r != -ENOENT)
					return r;
			}
			p = *colon ? colon + 1 : colon;
		}
		*why = xasprintf("none of the files in KUBECONFIG (%s) exists", list);
		return 0;
	}
	if (!home || !*home) {
		*why = xstrdup("HOME is not set, so there is no ~/.kube/config");
		return 0;
	}
	path = xasprintf("%s/.kube/config", home);
	r = kc_add_file(kc, path, e);
	if (r < 0 && r != -ENOENT)
		return r;
	*why = xasprintf("%s does not exist", path);
	return 0;
}

int k8s_config_load(const struct k8s_config_source *src, struct k8s_config **ret,
		    struct err *reterr)
{
	char *const *env = src->env ? src->env : environ;
	const char *sadir =
		src->serviceaccount_dir ? src->serviceaccount_dir : K8S_SERVICEACCOUNT_DIR;
	const char *ctx = src->context && *src->context ? src->context : NULL;
	_cleanup_(k8s_config_freep) struct k8s_config *c = xcalloc(1, sizeof(*c));
	_cleanup_free_ char *why = NULL;
	struct kc kc = {0};
	int r;

	r = kc_read_sources(&kc, src, env, &why, reterr);
	if (r < 0)
		goto out;
	if (!ctx)
		ctx = kc.current;
	if (kc.nfiles == 0 || !ctx) {
		if (!src->context && incluster_possible(env, sadir)) {
			r = incluster_load(env, sadir, c, reterr);
			goto out;
		}
		if (kc.nfiles == 0)
			r = err_set(
				reterr, -ENOENT,
				"no Kubernetes configuration: %s, and this is not a pod "
				"(no KUBERNETES_SERVICE_HOST or no service account token in %s)",
				why ? why : "no kubeconfig", sadir);
		else {
			char names[NAMES_MAX + 64];
			kc_names(&kc.contexts, names, sizeof(names));
			r = err_set(reterr, -ESRCH,
				    "kubeconfig %s: no current-context and no kube_context given "
				    "(%s%s)",
				    kc.label, *names ? "contexts: " : "there are no contexts",
				    names);
		}
		goto out;
	}
	r = kc_resolve(&kc, ctx, env, c, reterr);
out:
	kc_done(&kc);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(c);
	return 0;
}
