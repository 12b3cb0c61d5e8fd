/* A small Kubernetes API client over libcurl (research/k8s.md §1–2, §4):
 * JSON requests with the kubeconfig's credentials (k8s_config.h), and the
 * pieces the port-forward WebSocket (k8s_ws.h) needs to dial the same
 * server the same way. Private to the launcher; main thread only.
 *
 * What it applies, as kubectl does unless mirrord says otherwise:
 *   - TLS: the cluster's CA only (no system roots) when one is given;
 *     `insecure-skip-tls-verify` or mirrord's `accept_invalid_certificates`
 *     (which wins either way when set) turns checking off;
 *     `tls-server-name` is the name checked and sent (SNI, Host) while the
 *     connection goes to the server's address (CURLOPT_CONNECT_TO);
 *   - credentials: client certificate and key (from the kubeconfig or the
 *     exec plugin), bearer token (token, tokenFile, exec plugin, in-cluster),
 *     refreshed before each request; a 401 re-runs an exec plugin once;
 *   - proxies: the cluster's `proxy-url`, else the *_proxy variables, with
 *     loopback never proxied (as Go does); mirrord's `use_proxy: false`
 *     uses none.
 * Errors are one line naming the server, the context and the kubeconfig:
 * the server down, a certificate that does not check out, 401, 403 with
 * the API server's message.
 */
#ifndef PODENV_LAUNCHER_K8S_API_H
#define PODENV_LAUNCHER_K8S_API_H

#include <curl/curl.h>
#include <json-c/json.h>
#include <stdbool.h>

#include "common/err.h"
#include "config/config.h"

struct k8s_api;

/* Loads the kubeconfig the configuration names (kubeconfig, kube_context,
 * accept_invalid_certificates, use_proxy) and gets credentials ready (an
 * exec plugin runs here). */
int k8s_api_open(const struct cfg *cfg, struct k8s_api **ret, struct err *reterr);
void k8s_api_free(struct k8s_api *a);

/* The context's namespace (else "default"). Borrowed. */
const char *k8s_api_namespace(const struct k8s_api *a);

/* "context C (FILE)" or "in-cluster", for messages. Borrowed. */
const char *k8s_api_where(const struct k8s_api *a);

/* One request. path starts with "/" and is appended to the server URL
 * (query included, already escaped). body: JSON to send or NULL;
 * content_type: NULL means application/json. On a 2xx answer returns 0 and
 * *ret (may be NULL) gets the parsed body (NULL when it is not JSON).
 * Otherwise returns a negative errno with reterr set to one line:
 *   -ECONNREFUSED/-EHOSTUNREACH/-ETIMEDOUT  the server cannot be reached;
 *   -EPROTO   TLS failed (certificate, handshake);
 *   -EACCES   401 (credentials refused) or 403 (the API's message);
 *   -ENOENT   404 (the API's message);
 *   -EEXIST   409; -EINVAL 400/422; -EIO other answers.
 * *status (may be NULL) gets the HTTP status (0 when there was none). */
int k8s_api_call(struct k8s_api *a, const char *method, const char *path, json_object *body,
		 const char *content_type, json_object **ret, long *status, struct err *reterr);

/* GET; a shorthand for k8s_api_call. */
int k8s_api_get(struct k8s_api *a, const char *path, json_object **ret, struct err *reterr);

/* Prepares a fresh handle for a connect-only dial of path on the server,
 * with everything k8s_api_call would set (TLS, client certificate, proxy,
 * HTTP/1.1 only). *host_header gets the Host value to send and
 * *auth_header the "Authorization: Bearer …" line (or NULL); *request_path
 * the full request target (the server's path prefix + path). Caller frees
 * the strings and the handle (k8s_api_dial_free). */
int k8s_api_dial_handle(struct k8s_api *a, const char *path, CURL **ret, char **host_header,
			char **auth_header, char **request_path, struct err *reterr);

/* Frees a handle from k8s_api_dial_handle. Accepts NULL. */
void k8s_api_dial_free(CURL *h);

/* Turns a failed libcurl dial into k8s_api_call's one-line message. */
int k8s_api_curl_error(struct k8s_api *a, CURLcode c, const char *errbuf, struct err *reterr);

/* After a 401 on a dial: drops an exec plugin's credential so the next
 * request runs it again. Returns true when that may help. */
bool k8s_api_reauth(struct k8s_api *a);

/* Helpers over json-c: the string/int at a dotted path ("status.phase"),
 * or NULL / def when absent or of another type. */
const char *k8s_json_str(json_object *o, const char *path);
json_object *k8s_json_get(json_object *o, const char *path);
int64_t k8s_json_int(json_object *o, const char *path, int64_t def);

/* The message of a Status body ("pods \"x\" not found"), or NULL. */
const char *k8s_status_message(json_object *o);

/* %-escapes s for a URL path segment or query value. Caller frees. */
char *k8s_escape(const char *s);

#endif
