/* The Kubernetes API client (k8s_api.h). */
#define LOG_TARGET "podenv::kube"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/log.h"
#include "launcher/cli.h"
#include "launcher/k8s_api.h"
#include "launcher/k8s_config.h"

#define REQUEST_TIMEOUT_MS 30000L
#define CONNECT_TIMEOUT_MS 10000L
#define BODY_MAX (64u << 20)

struct k8s_api {
	struct k8s_config *conf;
	CURL *curl;  /* kept between requests: one connection, kept alive */
	bool verify; /* check the server's certificate */
	bool use_proxy;
	char *base;	   /* scheme://host[:port] as put in URLs (tls-server-name host) */
	char *prefix;	   /* the server URL's path, without a trailing '/' ("" if none) */
	char *host_header; /* host[:port] */
	char *connect_to;  /* CURLOPT_CONNECT_TO entry, or NULL */
	char *noproxy;
	char *where;
};

static void global_init(void)
{
	static bool done;

	if (!done) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		done = true;
	}
}

const char *k8s_api_namespace(const struct k8s_api *a)
{
	return a->conf->namespace ? a->conf->namespace : "default";
}

const char *k8s_api_where(const struct k8s_api *a)
{
	return a->where;
}

/* Splits the server URL; with tls-server-name the URL names that host and
 * CONNECT_TO sends the connection to the real one. */
static int parse_server(struct k8s_api *a, struct err *e)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
	int r = 0;

	if (curl_url_set(u, CURLUPART_URL, a->conf->server, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		r = err_set(e, -EINVAL, "kubeconfig %s: server \"%s\" is not a URL", a->where,
			    a->conf->server);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
		port = NULL;
	if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
		path = NULL;
	const char *name = a->conf->tls_server_name && *a->conf->tls_server_name
				   ? a->conf->tls_server_name
				   : host;
	bool v6 = strchr(name, ':') && name[0] != '[';
	a->host_header = xasprintf("%s%s%s%s%s", v6 ? "[" : "", name, v6 ? "]" : "",
				   port ? ":" : "", port ? port : "");
	a->base = xasprintf("%s://%s", scheme, a->host_header);
	if (name != host) {
		/* CONNECT_TO wants the real host without brackets' ambiguity:
		 * libcurl accepts "[v6]" there. */
		a->connect_to =
			xasprintf("%s:%s:%s:%s", name, port ? port : "", host, port ? port : "");
	}
	a->prefix = xstrdup(path && strcmp(path, "/") ? path : "");
	size_t n = strlen(a->prefix);
	while (n > 0 && a->prefix[n - 1] == '/')
		a->prefix[--n] = '\0';
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_url_cleanup(u);
	return r;
}

int k8s_api_open(const struct cfg *cfg, struct k8s_api **ret, struct err *reterr)
{
	struct k8s_config_source src = {
		.kubeconfig = cfg->kubeconfig,
		.context = cfg->kube_context,
	};
	struct k8s_api *a;
	int r;

	global_init();
	a = xcalloc(1, sizeof(*a));
	r = k8s_config_load(&src, &a->conf, reterr);
	if (r < 0) {
		free(a);
		return r;
	}
	if (a->conf->in_cluster)
		a->where = xstrdup("in-cluster configuration");
	else
		a->where = xasprintf("context \"%s\" of %s", a->conf->context, a->conf->source);
	a->verify = !a->conf->insecure;
	if (cfg->accept_invalid_certificates != CFG_UNSET)
		a->verify = cfg->accept_invalid_certificates == CFG_FALSE;
	a->use_proxy = cfg->use_proxy;
	/* Loopback is never proxied (Go's rule; libcurl 7.88 has none). */
	const char *np = getenv("no_proxy");
	if (!np || !*np)
		np = getenv("NO_PROXY");
	a->noproxy =
		xasprintf("%s%slocalhost,127.0.0.1,::1", np && *np ? np : "", np && *np ? "," : "");
	r = parse_server(a, reterr);
	if (r >= 0) {
		r = k8s_config_refresh(a->conf, time(NULL), reterr);
		if (r < 0)
			err_prefix(reterr, "kubeconfig %s", a->where);
	}
	if (r < 0) {
		k8s_api_free(a);
		return r;
	}
	a->curl = curl_easy_init();
	if (!a->curl) {
		k8s_api_free(a);
		return err_set(reterr, -ENOMEM, "libcurl");
	}
	*ret = a;
	return 0;
}

void k8s_api_free(struct k8s_api *a)
{
	if (!a)
		return;
	if (a->curl)
		curl_easy_cleanup(a->curl);
	k8s_config_free(a->conf);
	free(a->base);
	free(a->prefix);
	free(a->host_header);
	free(a->connect_to);
	free(a->noproxy);
	free(a->where);
	free(a);
}

bool k8s_api_reauth(struct k8s_api *a)
{
	struct err e;

	k8s_config_invalidate(a->conf);
	return k8s_config_refresh(a->conf, time(NULL), &e) == 1;
}

/* TLS, client certificate, proxy and timeouts on h. */
static void setup_common(struct k8s_api *a, CURL *h, struct curl_slist **connect_to)
{
	const struct k8s_config *c = a->conf;

	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, a->verify ? 1L : 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, a->verify ? 2L : 0L);
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (c->ca_pem && a->verify) {
		/* Only the cluster's CA is trusted, as client-go does. */
		struct curl_blob b = {
			.data = c->ca_pem, .len = c->ca_pem_len, .flags = CURL_BLOB_COPY};
		curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &b);
	}
	if (c->client_cert_pem && c->client_key_pem) {
		struct curl_blob cb = {.data = c->client_cert_pem,
				       .len = c->client_cert_pem_len,
				       .flags = CURL_BLOB_COPY};
		struct curl_blob kb = {.data = c->client_key_pem,
				       .len = c->client_key_pem_len,
				       .flags = CURL_BLOB_COPY};
		curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cb);
		curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
		curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &kb);
		curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
	}
	if (!a->use_proxy) {
		curl_easy_setopt(h, CURLOPT_PROXY, "");
	} else if (c->proxy_url) {
		curl_easy_setopt(h, CURLOPT_PROXY, c->proxy_url);
		curl_easy_setopt(h, CURLOPT_NOPROXY, "");
	} else {
		curl_easy_setopt(h, CURLOPT_NOPROXY, a->noproxy);
	}
	if (a->connect_to) {
		*connect_to = curl_slist_append(NULL, a->connect_to);
		curl_easy_setopt(h, CURLOPT_CONNECT_TO, *connect_to);
	}
}

static char *auth_header(struct k8s_api *a)
{
	return a->conf->token ? xasprintf("Authorization: Bearer %s", a->conf->token) : NULL;
}

int k8s_api_curl_error(struct k8s_api *a, CURLcode c, const char *errbuf, struct err *reterr)
{
	const char *detail = errbuf && *errbuf ? errbuf : curl_easy_strerror(c);

	switch (c) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return err_set(reterr, -ECONNREFUSED,
			       "cannot reach the Kubernetes API server %s (%s): %s; is the cluster "
			       "up?",
			       a->conf->server, a->where, detail);
	case CURLE_OPERATION_TIMEDOUT:
		return err_set(reterr, -ETIMEDOUT,
			       "the Kubernetes API server %s (%s) did not answer: %s",
			       a->conf->server, a->where, detail);
	case CURLE_PEER_FAILED_VERIFICATION:
		return err_set(reterr, -EPROTO,
			       "the Kubernetes API server %s (%s) has a certificate that does not "
			       "check out: %s (set accept_invalid_certificates to skip the check)",
			       a->conf->server, a->where, detail);
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CLIENTCERT:
		return err_set(reterr, -EPROTO,
			       "TLS with the Kubernetes API server %s (%s) failed: %s",
			       a->conf->server, a->where, detail);
	default:
		return err_set(reterr, -EIO, "talking to the Kubernetes API server %s (%s): %s",
			       a->conf->server, a->where, detail);
	}
}

int k8s_api_dial_handle(struct k8s_api *a, const char *path, CURL **ret, char **host_header,
			char **auth, char **request_path, struct err *reterr)
{
	struct err e;
	CURL *h;

	/* A plugin's token may have expired since the last request. */
	if (k8s_config_refresh(a->conf, time(NULL), &e) < 0)
		return err_set(reterr, e.code, "kubeconfig %s: %s", a->where, e.msg);
	h = curl_easy_init();
	if (!h)
		return err_set(reterr, -ENOMEM, "libcurl");
	/* The connect-to list must live as long as the handle: it rides in
	 * the handle's private pointer (k8s_api_dial_free). */
	struct curl_slist *ct = NULL;
	setup_common(a, h, &ct);
	curl_easy_setopt(h, CURLOPT_PRIVATE, ct);
	char *url = xasprintf("%s%s%s", a->base, a->prefix, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	free(url);
	/* Upgrades exist only in HTTP/1.1: no h2 in ALPN. */
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
	if (a->use_proxy)
		curl_easy_setopt(h, CURLOPT_HTTPPROXYTUNNEL, 1L);
	*ret = h;
	*host_header = xstrdup(a->host_header);
	*auth = auth_header(a);
	*request_path = xasprintf("%s%s", a->prefix, path);
	return 0;
}

void k8s_api_dial_free(CURL *h)
{
	struct curl_slist *ct = NULL;

	if (!h)
		return;
	curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&ct);
	curl_easy_cleanup(h);
	curl_slist_free_all(ct);
}

static size_t on_body(char *p, size_t size, size_t n, void *userdata)
{
	struct buf *b = userdata;

	if (buf_len(b) + n > BODY_MAX)
		return 0;
	buf_append(b, p, n * size);
	return n * size;
}

const char *k8s_status_message(json_object *o)
{
	const char *kind = k8s_json_str(o, "kind");

	if (!kind || strcmp(kind, "Status"))
		return NULL;
	return k8s_json_str(o, "message");
}

static int status_error(struct k8s_api *a, const char *method, const char *path, long code,
			json_object *body, const char *raw, struct err *reterr)
{
	const char *msg = k8s_status_message(body);
	char text[200];

	if (!msg) {
		snprintf(text, sizeof(text), "%.190s", raw && *raw ? raw : "(no message)");
		text[strcspn(text, "\r\n")] = '\0';
		msg = text;
	}
	switch (code) {
	case 401:
		return err_set(reterr, -EACCES,
			       "the Kubernetes API server %s refused the credentials of %s (401 "
			       "Unauthorized: %s)",
			       a->conf->server, a->where, msg);
	case 403:
		return err_set(reterr, -EACCES, "forbidden (403, %s): %s", a->where, msg);
	case 404:
		return err_set(reterr, -ENOENT, "%s", msg);
	case 409:
		return err_set(reterr, -EEXIST, "%s", msg);
	case 400:
	case 422:
		return err_set(reterr, -EINVAL, "%s %s: %s", method, path, msg);
	default:
		return err_set(reterr, -EIO, "%s %s: the API server answered %ld: %s", method, path,
			       code, msg);
	}
}

int k8s_api_call(struct k8s_api *a, const char *method, const char *path, json_object *body,
		 const char *content_type, json_object **ret, long *status, struct err *reterr)
{
	char errbuf[CURL_ERROR_SIZE];
	bool retried = false;
	long code = 0;
	int r;

	if (ret)
		*ret = NULL;
again:;
	struct err e;
	if (k8s_config_refresh(a->conf, time(NULL), &e) < 0)
		return err_set(reterr, e.code, "kubeconfig %s: %s", a->where, e.msg);
	struct buf out;
	struct curl_slist *hdrs = NULL, *ct = NULL;
	CURL *h = a->curl;
	const char *data =
		body ? json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN) : NULL;

	buf_init(&out);
	curl_easy_reset(h);
	setup_common(a, h, &ct);
	char *url = xasprintf("%s%s%s", a->base, a->prefix, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	free(url);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, REQUEST_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "podenv/" PODENV_VERSION);
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	char *auth = auth_header(a);
	if (auth)
		hdrs = curl_slist_append(hdrs, auth);
	free(auth);
	if (data) {
		char *cth = xasprintf("Content-Type: %s",
				      content_type ? content_type : "application/json");
		hdrs = curl_slist_append(hdrs, cth);
		free(cth);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, data);
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	errbuf[0] = '\0';
	CURLcode c = curl_easy_perform(h);
	curl_slist_free_all(hdrs);
	curl_slist_free_all(ct);
	if (c != CURLE_OK) {
		buf_done(&out);
		if (status)
			*status = 0;
		return k8s_api_curl_error(a, c, errbuf, reterr);
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (status)
		*status = code;
	buf_append(&out, "", 1);
	json_object *j = json_tokener_parse((const char *)buf_data(&out));
	log_debug("%s %s: %ld", method, path, code);
	if (code == 401 && !retried && k8s_api_reauth(a)) {
		/* An exec plugin's token went stale before its expiry. */
		json_object_put(j);
		buf_done(&out);
		retried = true;
		goto again;
	}
	if (code >= 200 && code < 300) {
		if (ret)
			*ret = j;
		else
			json_object_put(j);
		r = 0;
	} else {
		r = status_error(a, method, path, code, j, (const char *)buf_data(&out), reterr);
		if (ret)
			*ret = j;
		else
			json_object_put(j);
	}
	buf_done(&out);
	return r;
}

int k8s_api_get(struct k8s_api *a, const char *path, json_object **ret, struct err *reterr)
{
	return k8s_api_call(a, "GET", path, NULL, NULL, ret, NULL, reterr);
}

json_object *k8s_json_get(json_object *o, const char *path)
{
	char key[128];

	while (o && *path) {
		size_t n = strcspn(path, ".");
		if (n >= sizeof(key))
			return NULL;
		memcpy(key, path, n);
		key[n] = '\0';
		if (!json_object_is_type(o, json_type_object) ||
		    !json_object_object_get_ex(o, key, &o))
			return NULL;
		path += n;
		if (*path == '.')
			path++;
	}
	return o;
}

const char *k8s_json_str(json_object *o, const char *path)
{
	json_object *v = k8s_json_get(o, path);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

int64_t k8s_json_int(json_object *o, const char *path, int64_t def)
{
	json_object *v = k8s_json_get(o, path);

	return v && json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : def;
}

char *k8s_escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0);
	char *r = xstrdup(e ? e : "");

	curl_free(e);
	return r;
}
