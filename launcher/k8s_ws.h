/* Port-forward to a pod over the API server: one WebSocket speaking
 * `v4.channel.k8s.io` (research/k8s.md §3.2, §4), carrying one TCP
 * connection to one port of the pod. Private to the launcher (the link's
 * transport for Kubernetes agents); main thread only.
 *
 * libcurl 7.88 has no WebSocket API, so the handle is connect-only (DNS,
 * proxy, TCP, TLS with the kubeconfig's material, HTTP/1.1 ALPN) and the
 * upgrade and framing are ours: a GET with Upgrade: websocket and the one
 * subprotocol; bytes after the 101's headers are kept; client frames are
 * binary, masked and never fragmented, each `[channel][payload]`, data on
 * channel 0; the server's first message on channels 0 and 1 is the
 * 2-byte little-endian port, checked and dropped; text on channel 1 is the
 * kubelet's error and ends the stream; pings get pongs, no other pong is
 * ever sent (the API server's x/net code drops the connection on one).
 *
 * I/O contract, as launcher/tls.h: k8s_ws_read() > 0 bytes of the pod's
 * stream, 0 closed, -EAGAIN wait for the fd to be readable, -EPROTO a
 * failure with a one-line k8s_ws_reason(); k8s_ws_write() takes up to len
 * bytes into one message (-EAGAIN when too much waits to go out: wait for
 * EPOLLOUT); k8s_ws_flush() pushes queued output. Callers read again while
 * k8s_ws_pending().
 */
#ifndef PODENV_LAUNCHER_K8S_WS_H
#define PODENV_LAUNCHER_K8S_WS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/loop.h"
#include "launcher/k8s_api.h"

struct k8s_ws;

/* Connects and upgrades, blocking for at most timeout. A refused upgrade
 * (403 RBAC, 404, 400 pod not running) is one line with the API server's
 * message; a 401 re-runs an exec plugin and tries once more. */
int k8s_ws_open(struct k8s_api *a, const char *ns, const char *pod, uint16_t port, usec_t timeout,
		struct k8s_ws **ret, struct err *reterr);
void k8s_ws_free(struct k8s_ws *w);

int k8s_ws_fd(const struct k8s_ws *w);
ssize_t k8s_ws_read(struct k8s_ws *w, void *buf, size_t len);
ssize_t k8s_ws_write(struct k8s_ws *w, const void *buf, size_t len);
/* 0 when nothing is left to send, -EAGAIN, or -errno/-EPROTO. */
int k8s_ws_flush(struct k8s_ws *w);
bool k8s_ws_pending(const struct k8s_ws *w);
/* EPOLLOUT while output waits. */
uint32_t k8s_ws_events(const struct k8s_ws *w);
const char *k8s_ws_reason(const struct k8s_ws *w);

/* A port-forward to `port` with no connection whose server sent exactly
 * `len` bytes (copied) after the 101 and then closed: k8s_ws_read decodes
 * them as it would from the API server (the fuzz target, tests). Answers
 * it would send (pongs) are dropped. Caller frees with k8s_ws_free. */
struct k8s_ws *k8s_ws_from_bytes(const void *bytes, size_t len, uint16_t port);

#endif
