/* Kubernetes client configuration: which API server to talk to and how to
 * authenticate, read the way kubectl (client-go v0.32 tools/clientcmd) and
 * mirrord read it (research/k8s.md §1). Private to the launcher.
 *
 * Sources, first that applies:
 *   1. src->kubeconfig (mirrord's `kubeconfig`; a leading "~" or "~/" is
 *      HOME): that one file, which must exist;
 *   2. $KUBECONFIG: a ':'-separated list; empty entries and duplicates are
 *      dropped, files that do not exist are skipped, the rest are merged:
 *      for clusters, users and contexts the first file that defines a name
 *      wins with its whole entry, and current-context comes from the first
 *      file that sets one;
 *   3. $HOME/.kube/config when it exists;
 *   4. in-cluster: KUBERNETES_SERVICE_HOST and _PORT set and a service
 *      account token file present. This is also used, as kubectl does, when
 *      files were read but no context is selected (no src->context and no
 *      current-context).
 * The context is src->context (mirrord's `kube_context`) or the
 * current-context; its cluster and user must exist. Relative paths inside a
 * file (certificate-authority, client-certificate, client-key, tokenFile,
 * an exec command containing '/') are relative to that file's directory.
 *
 * YAML is read with libyaml (JSON is YAML too); scalars are kept as text,
 * booleans accept true/false/yes/no/on/off. Anchors and aliases are not
 * supported. Every error is one line in reterr naming the kubeconfig file
 * and the context, cluster or user concerned.
 *
 * Nothing here speaks HTTP: the caller applies mirrord's
 * `accept_invalid_certificates` (over `insecure`), `use_proxy` (whether
 * `proxy_url` and the *_PROXY variables are honoured) and the target's
 * namespace (over `namespace`). No function logs; tokens are never put in
 * error messages.
 *
 * Threads: a struct k8s_config belongs to one thread at a time (the
 * launcher's main thread). k8s_config_refresh() may block while an exec
 * plugin runs; call it before requests, not from latency-sensitive loop
 * handlers.
 */
#ifndef PODENV_LAUNCHER_K8S_CONFIG_H
#define PODENV_LAUNCHER_K8S_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "common/err.h"

#define K8S_SERVICEACCOUNT_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
/* Largest kubeconfig, referenced file (CA bundle, key, token) and exec
 * plugin output read, in bytes: a FIFO or /dev/zero given by mistake ends
 * in -EFBIG instead of eating memory. */
#define K8S_CONFIG_FILE_MAX (16u << 20)
#define K8S_CONFIG_REF_MAX (4u << 20)

/* Where to look; all fields borrowed for the duration of k8s_config_load. */
struct k8s_config_source {
	const char *kubeconfig;		/* explicit file, or NULL */
	const char *context;		/* context to use, or NULL: current-context */
	char *const *env;		/* environment to read (KUBECONFIG, HOME, PATH,
					 * KUBERNETES_SERVICE_HOST/PORT, POD_NAMESPACE) and
					 * to give exec plugins; NULL: environ. Copied. */
	const char *serviceaccount_dir; /* NULL: K8S_SERVICEACCOUNT_DIR */
	/* With kubeconfig set: the file's contents, used instead of reading
	 * it (fuzzing, tests); its references are still read from disk. */
	const char *text;
	size_t text_len;
};

struct k8s_config_auth; /* tokenFile, exec plugin and its cache: private */

/* The resolved configuration. Plain data, read by the caller; every string
 * is NUL-terminated and owned by the struct (k8s_config_free). A NULL
 * pointer means "not set". */
struct k8s_config {
	char *source;	 /* the file(s) read, ':'-joined, or "in-cluster" */
	char *context;	 /* NULL in-cluster */
	char *cluster;	 /* the cluster's name; NULL in-cluster */
	char *user;	 /* the user's name; NULL in-cluster */
	char *server;	 /* "https://host:port[/prefix]" ("https://" added when
			  * the kubeconfig gives no scheme) */
	char *namespace; /* context's namespace, else "default"; in-cluster:
			  * POD_NAMESPACE, the namespace file, else "default" */
	char *ca_pem;	 /* CA bundle (certificate-authority-data decoded, or
			  * the certificate-authority file); NULL: system roots */
	size_t ca_pem_len;
	bool insecure; /* insecure-skip-tls-verify (kept even with a CA: mirrord
			* and kube-rs do not reject the pair, kubectl does) */
	char *tls_server_name;
	char *proxy_url; /* scheme checked: http, https or socks5 */
	bool in_cluster;

	/* Credentials. These change in k8s_config_refresh(); a pointer read
	 * from here is valid until the next refresh, invalidate or free.
	 * Client certificate and key come as PEM from the kubeconfig (data or
	 * file) or from the exec plugin (which then replaces them). The
	 * bearer token, in kubectl's order: `token`, else the tokenFile (read
	 * at load, re-read at each refresh; trimmed), else the exec plugin's
	 * (only run when there is neither of the others). */
	char *client_cert_pem;
	size_t client_cert_pem_len;
	char *client_key_pem;
	size_t client_key_pem_len;
	char *token;

	struct k8s_config_auth *auth;
};

/* Loads, merges and resolves the configuration (see the top of this file).
 * Does not run an exec plugin (k8s_config_refresh does). On success returns
 * 0 and sets *ret; the caller frees it with k8s_config_free(). Errors, with
 * reterr set to one line:
 *   -ENOENT   explicit file missing; nothing found (no kubeconfig, not in a
 *             pod); CA, certificate, key or token file missing;
 *   -EACCES, -EISDIR, -EFBIG, …  a file that cannot be read;
 *   -EINVAL   not YAML, wrong shape (e.g. clusters not a list), duplicate
 *             name in one file, bad base64, bad boolean, bad proxy-url,
 *             cluster without server, client certificate without key, an
 *             exec section without command or apiVersion or with an
 *             unsupported apiVersion / interactiveMode;
 *   -ESRCH    unknown context (the message lists the contexts there are),
 *             context without cluster or user, or naming one that does not
 *             exist (listing those there are). */
int k8s_config_load(const struct k8s_config_source *src, struct k8s_config **ret,
		    struct err *reterr);

/* Brings the credentials up to date: re-reads the tokenFile; runs the exec
 * plugin when it is the token source (or the only credential) and nothing
 * is cached or the cached credential's expirationTimestamp is not after
 * `now` (wall-clock seconds, time(NULL); a parameter for tests). A
 * credential without expirationTimestamp is kept until
 * k8s_config_invalidate(). Returns 1 when the plugin ran, 0 when nothing
 * needed running; on error the previous credentials stay and reterr says:
 *   -ENOENT   exec plugin not found (with its installHint), tokenFile gone;
 *   -EIO      the plugin exited non-zero or was killed (the message ends
 *             with the last line of its stderr);
 *   -EBADMSG  its output is not an ExecCredential of the configured
 *             apiVersion with a token or a certificate/key pair, or the
 *             token file is empty.
 * The plugin gets our environment (src->env) plus its `env` list plus
 * KUBERNETES_EXEC_INFO ({"apiVersion":…,"kind":"ExecCredential",
 * "spec":{"interactive":false}}, with spec.cluster when
 * provideClusterInfo), stdin /dev/null, default signal dispositions and an
 * empty signal mask; its stdout and stderr are captured. */
int k8s_config_refresh(struct k8s_config *c, time_t now, struct err *reterr);

/* Drops the exec plugin's cached credential (after a 401), so the next
 * refresh runs it again. Static credentials are untouched. */
void k8s_config_invalidate(struct k8s_config *c);

/* Accepts NULL. */
void k8s_config_free(struct k8s_config *c);

#endif
