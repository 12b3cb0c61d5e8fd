/* WebSocket v4.channel.k8s.io port-forward over a connect-only libcurl
 * handle (k8s_ws.h). */
#define LOG_TARGET "podenv::kube"
#include <openssl/evp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>

#include "common/buf.h"
#include "common/log.h"
#include "launcher/cli.h"
#include "launcher/k8s_ws.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define HEADERS_MAX (64u << 10)
#define RECV_CHUNK (64u << 10)
#define MESSAGE_MAX (256u << 10) /* payload of one client message */
#define OUT_HIGH (4u << 20)	 /* queued output before writes say -EAGAIN */
#define ERRTEXT_MAX 1024

enum { OP_CONT = 0, OP_TEXT = 1, OP_BINARY = 2, OP_CLOSE = 8, OP_PING = 9, OP_PONG = 10 };

struct k8s_ws {
	CURL *h;
	int fd;
	uint16_t port;
	char *what;	    /* "pod NS/NAME port P" */
	struct buf in;	    /* received, not yet parsed */
	struct buf out;	    /* framed, waiting behind `sending` */
	struct buf sending; /* being sent: never appended to while not empty */
	size_t sent;	    /* bytes of `sending` gone */
	/* the frame being read */
	bool in_frame;
	uint8_t opcode;		 /* of the message (continuations keep it) */
	uint64_t left;		 /* payload bytes of the frame still to come */
	int channel;		 /* -1: the message's channel byte not read yet */
	unsigned prefix_left[2]; /* port bytes still to drop on channels 0, 1 */
	uint8_t prefix[2][2];
	struct buf errtext; /* channel 1 */
	bool upgraded;
	bool closed;
	bool more; /* the last read stopped with input possibly left */
	uint64_t rng;
	char reason[ERR_MSG_MAX];
};

static int fail(struct k8s_ws *w, const char *detail)
{
	snprintf(w->reason, sizeof(w->reason), "port-forward to %s: %s", w->what, detail);
	return -EPROTO;
}

static uint32_t next_mask(struct k8s_ws *w)
{
	/* xorshift64*: masks need only be unpredictable to intermediaries
	 * per RFC 6455 §10.3; seeded from getrandom. */
	w->rng ^= w->rng >> 12;
	w->rng ^= w->rng << 25;
	w->rng ^= w->rng >> 27;
	return (uint32_t)((w->rng * 0x2545F4914F6CDD1DULL) >> 32);
}

/* Appends one masked frame with payload [pre][p] to w->out. */
static void frame(struct k8s_ws *w, uint8_t op, const uint8_t *pre, size_t npre, const void *p,
		  size_t n)
{
	size_t len = npre + n;
	uint8_t hdr[14];
	size_t h = 0;
	uint32_t m = next_mask(w);
	uint8_t mask[4] = {(uint8_t)(m >> 24), (uint8_t)(m >> 16), (uint8_t)(m >> 8), (uint8_t)m};

	hdr[h++] = 0x80 | op;
	if (len < 126) {
		hdr[h++] = 0x80 | (uint8_t)len;
	} else if (len < 65536) {
		hdr[h++] = 0x80 | 126;
		hdr[h++] = (uint8_t)(len >> 8);
		hdr[h++] = (uint8_t)len;
	} else {
		hdr[h++] = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			hdr[h++] = (uint8_t)((uint64_t)len >> (8 * i));
	}
	memcpy(hdr + h, mask, 4);
	h += 4;
	buf_append(&w->out, hdr, h);
	uint8_t *dst = buf_reserve(&w->out, len);
	for (size_t i = 0; i < npre; i++)
		dst[i] = pre[i] ^ mask[i & 3];
	const uint8_t *src = p;
	for (size_t i = 0; i < n; i++)
		dst[npre + i] = src[i] ^ mask[(npre + i) & 3];
	buf_commit(&w->out, len);
}

int k8s_ws_flush(struct k8s_ws *w)
{
	if (!w->h) { /* k8s_ws_from_bytes: nowhere to send */
		buf_reset(&w->out);
		return -EPIPE;
	}
	for (;;) {
		if (w->sent == buf_len(&w->sending)) {
			buf_reset(&w->sending);
			w->sent = 0;
			if (!buf_len(&w->out))
				return 0;
			struct buf t = w->sending;
			w->sending = w->out;
			w->out = t;
		}
		size_t n = 0;
		CURLcode c = curl_easy_send(w->h, buf_data(&w->sending) + w->sent,
					    buf_len(&w->sending) - w->sent, &n);
		if (c == CURLE_AGAIN)
			return -EAGAIN;
		if (c != CURLE_OK) {
			snprintf(w->reason, sizeof(w->reason), "port-forward to %s: %s", w->what,
				 curl_easy_strerror(c));
			return -EPIPE;
		}
		w->sent += n;
	}
}

ssize_t k8s_ws_write(struct k8s_ws *w, const void *buf, size_t len)
{
	static const uint8_t data_channel = 0;
	size_t queued = buf_len(&w->out) + buf_len(&w->sending) - w->sent;

	if (w->closed)
		return -EPIPE;
	if (queued >= OUT_HIGH) {
		int r = k8s_ws_flush(w);
		if (r < 0)
			return r;
	}
	len = MIN(len, MESSAGE_MAX);
	frame(w, OP_BINARY, &data_channel, 1, buf, len);
	int r = k8s_ws_flush(w);
	if (r < 0 && r != -EAGAIN)
		return r;
	return (ssize_t)len;
}

/* Reads what the socket has into w->in: 1 got some, 0 EOF, -EAGAIN. */
static int fill(struct k8s_ws *w)
{
	size_t n = 0;
	if (!w->h)
		return 0; /* k8s_ws_from_bytes: all was given */
	uint8_t *p = buf_reserve(&w->in, RECV_CHUNK);
	CURLcode c = curl_easy_recv(w->h, p, RECV_CHUNK, &n);

	if (c == CURLE_AGAIN)
		return -EAGAIN;
	if (c != CURLE_OK) {
		snprintf(w->reason, sizeof(w->reason), "port-forward to %s: %s", w->what,
			 curl_easy_strerror(c));
		return -EPROTO;
	}
	if (n == 0)
		return 0;
	buf_commit(&w->in, n);
	return 1;
}

/* Handles a whole control frame (payload in w->in). */
static int control(struct k8s_ws *w, uint8_t op, size_t n)
{
	const uint8_t *p = buf_data(&w->in);

	if (op == OP_PING) {
		frame(w, OP_PONG, NULL, 0, p, n);
	} else if (op == OP_CLOSE) {
		unsigned code = n >= 2 ? (unsigned)(p[0] << 8 | p[1]) : 1005;
		w->closed = true;
		if (code != 1000 && code != 1005) {
			char t[160];
			snprintf(t, sizeof(t), "%u %.*s", code, (int)MIN(n > 2 ? n - 2 : 0, 120),
				 (const char *)p + 2);
			snprintf(w->reason, sizeof(w->reason),
				 "the API server closed the port-forward to %s (%s)", w->what, t);
		}
	}
	buf_consume(&w->in, n);
	return 0;
}

ssize_t k8s_ws_read(struct k8s_ws *w, void *buf, size_t len)
{
	uint8_t *dst = buf;
	size_t got = 0;

	w->more = false;
	while (got < len) {
		if (w->closed)
			return got ? (ssize_t)got : (w->reason[0] ? -EPROTO : 0);
		size_t have = buf_len(&w->in);
		const uint8_t *p = buf_data(&w->in);
		if (!w->in_frame) {
			size_t need = 2;
			if (have >= 2) {
				uint8_t l7 = p[1] & 0x7f;
				need += (l7 == 126   ? 2
					 : l7 == 127 ? 8
						     : 0) +
					((p[1] & 0x80) ? 4 : 0);
			}
			if (have >= need) {
				uint8_t op = p[0] & 0x0f;
				uint64_t n = p[1] & 0x7f;
				if (p[1] & 0x80)
					return fail(w, "the server sent a masked frame");
				if (n == 126)
					n = (uint64_t)p[2] << 8 | p[3];
				else if (n == 127)
					for (int i = 0; i < 8; i++)
						n = (i ? n << 8 : 0) | p[2 + i];
				if (op >= 8) {
					if (n > 125)
						return fail(w, "bad control frame");
					/* Handled whole: wait for its (small) payload
					 * before taking anything. */
					if (have < need + n)
						goto more;
					buf_consume(&w->in, need);
					control(w, op, (size_t)n);
					continue;
				}
				buf_consume(&w->in, need);
				if (op == OP_TEXT)
					return fail(w, "unexpected text message");
				if (op != OP_CONT) {
					w->opcode = op;
					w->channel = -1;
				}
				w->in_frame = true;
				w->left = n;
				continue;
			}
		} else if (w->left == 0) {
			w->in_frame = false;
			if (w->channel == 1 && buf_len(&w->errtext) && !w->prefix_left[1]) {
				buf_append(&w->errtext, "", 1);
				return fail(w, (const char *)buf_data(&w->errtext));
			}
			continue;
		} else if (have > 0) {
			if (w->channel < 0) {
				w->channel = p[0];
				buf_consume(&w->in, 1);
				w->left--;
				continue;
			}
			size_t n = (size_t)MIN((uint64_t)have, w->left);
			unsigned ch = (unsigned)w->channel;
			if (ch < 2 && w->prefix_left[ch]) {
				size_t k = MIN(n, w->prefix_left[ch]);
				for (size_t i = 0; i < k; i++)
					w->prefix[ch][2 - w->prefix_left[ch] + i] = p[i];
				w->prefix_left[ch] -= (unsigned)k;
				if (!w->prefix_left[ch] &&
				    (w->prefix[ch][0] | w->prefix[ch][1] << 8) != w->port)
					return fail(w, "the server forwards another port");
			} else if (ch == 0) {
				n = MIN(n, len - got);
				memcpy(dst + got, p, n);
				got += n;
			} else if (ch == 1) {
				size_t room = ERRTEXT_MAX - MIN(buf_len(&w->errtext), ERRTEXT_MAX);
				for (size_t i = 0; i < MIN(n, room); i++)
					buf_append(&w->errtext,
						   p[i] == '\n' ? " " : (const char *)p + i, 1);
			} /* other channels: ignored, as the server does */
			buf_consume(&w->in, n);
			w->left -= n;
			continue;
		}
	more:;
		int r = fill(w);
		if (r == -EAGAIN)
			return got ? (ssize_t)got : -EAGAIN;
		if (r == 0) {
			w->closed = true;
			if (!got && !w->reason[0])
				return 0;
			continue;
		}
		if (r < 0)
			return got ? (ssize_t)got : r;
	}
	w->more = true;
	return (ssize_t)got;
}

bool k8s_ws_pending(const struct k8s_ws *w)
{
	return w->more;
}

uint32_t k8s_ws_events(const struct k8s_ws *w)
{
	return buf_len(&w->out) || w->sent < buf_len(&w->sending) ? EPOLLOUT : 0;
}

int k8s_ws_fd(const struct k8s_ws *w)
{
	return w->fd;
}

const char *k8s_ws_reason(const struct k8s_ws *w)
{
	return w->reason;
}

void k8s_ws_free(struct k8s_ws *w)
{
	if (!w)
		return;
	if (w->upgraded && !w->closed) {
		/* A close frame, best effort: the server ends its side now. */
		static const uint8_t normal[2] = {0x03, 0xe8};
		frame(w, OP_CLOSE, normal, 2, NULL, 0);
		k8s_ws_flush(w);
	}
	k8s_api_dial_free(w->h);
	buf_done(&w->in);
	buf_done(&w->out);
	buf_done(&w->sending);
	buf_done(&w->errtext);
	free(w->what);
	free(w);
}

struct k8s_ws *k8s_ws_from_bytes(const void *bytes, size_t len, uint16_t port)
{
	struct k8s_ws *w = xcalloc(1, sizeof(*w));

	w->fd = -1;
	w->port = port;
	w->what = xstrdup("a recorded stream");
	buf_init(&w->in);
	buf_init(&w->out);
	buf_init(&w->sending);
	buf_init(&w->errtext);
	buf_append(&w->in, bytes, len);
	w->prefix_left[0] = w->prefix_left[1] = 2;
	w->channel = -1;
	w->rng = 0x9e3779b97f4a7c15ULL;
	w->upgraded = true;
	return w;
}

/* --- the upgrade ----------------------------------------------------------- */

static int wait_fd(int fd, short events, usec_t deadline)
{
	usec_t now = now_usec();
	struct pollfd p = {.fd = fd, .events = events};

	if (now >= deadline)
		return -ETIMEDOUT;
	int r = poll(&p, 1, (int)((deadline - now + 999) / 1000));
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	return r == 0 ? -ETIMEDOUT : 0;
}

/* The value of header name in the head (case-insensitive), copied. */
static char *header(const char *head, const char *name)
{
	size_t n = strlen(name);

	for (const char *l = strstr(head, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n")) {
		const char *s = l + 2;
		if (!strncasecmp(s, name, n) && s[n] == ':') {
			s += n + 1;
			while (*s == ' ' || *s == '\t')
				s++;
			return xstrndup(s, strcspn(s, "\r\n"));
		}
	}
	return NULL;
}

static char *accept_key(const char *key)
{
	char in[128];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char out[64];

	snprintf(in, sizeof(in), "%s%s", key, WS_GUID);
	EVP_Digest(in, strlen(in), md, &mdlen, EVP_sha1(), NULL);
	EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
	return xstrdup(out);
}

/* One dial and upgrade. Returns 0, the HTTP status (> 0) of a refused
 * upgrade with reterr set, or -errno. */
static int dial(struct k8s_api *a, struct k8s_ws *w, const char *path, usec_t deadline,
		struct err *reterr)
{
	_cleanup_free_ char *host = NULL, *auth = NULL, *target = NULL, *accept = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	uint8_t nonce[16];
	char key[32];
	curl_socket_t sock;
	int r;

	r = k8s_api_dial_handle(a, path, &w->h, &host, &auth, &target, reterr);
	if (r < 0)
		return r;
	curl_easy_setopt(w->h, CURLOPT_ERRORBUFFER, errbuf);
	usec_t left = deadline > now_usec() ? deadline - now_usec() : 1000;
	curl_easy_setopt(w->h, CURLOPT_CONNECTTIMEOUT_MS, (long)(left / 1000 + 1));
	CURLcode c = curl_easy_perform(w->h);
	if (c != CURLE_OK)
		return k8s_api_curl_error(a, c, errbuf, reterr);
	curl_easy_setopt(w->h, CURLOPT_ERRORBUFFER, NULL);
	if (curl_easy_getinfo(w->h, CURLINFO_ACTIVESOCKET, &sock) != CURLE_OK ||
	    sock == CURL_SOCKET_BAD)
		return err_set(reterr, -EIO, "port-forward to %s: no socket", w->what);
	w->fd = (int)sock;

	if (getrandom(nonce, sizeof(nonce), 0) != sizeof(nonce))
		return err_set_errno(reterr, -errno, "getrandom");
	EVP_EncodeBlock((unsigned char *)key, nonce, sizeof(nonce));
	accept = accept_key(key);
	char *req = xasprintf("GET %s HTTP/1.1\r\n"
			      "Host: %s\r\n"
			      "User-Agent: podenv/" PODENV_VERSION "\r\n"
			      "Upgrade: websocket\r\n"
			      "Connection: Upgrade\r\n"
			      "Sec-WebSocket-Key: %s\r\n"
			      "Sec-WebSocket-Version: 13\r\n"
			      "Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n"
			      "%s%s"
			      "\r\n",
			      target, host, key, auth ? auth : "", auth ? "\r\n" : "");
	size_t off = 0, total = strlen(req);
	while (off < total) {
		size_t n = 0;
		c = curl_easy_send(w->h, req + off, total - off, &n);
		if (c == CURLE_AGAIN) {
			r = wait_fd(w->fd, POLLOUT, deadline);
			if (r < 0)
				break;
			continue;
		}
		if (c != CURLE_OK) {
			r = -EIO;
			break;
		}
		off += n;
	}
	explicit_bzero(req, total);
	free(req);
	if (off < total)
		return err_set(reterr, r == -ETIMEDOUT ? -ETIMEDOUT : -EIO,
			       "port-forward to %s: sending the upgrade request failed%s", w->what,
			       r == -ETIMEDOUT ? " (timed out)" : "");

	/* The answer's head; what follows it stays in w->in. */
	const char *end;
	for (;;) {
		buf_append(&w->in, "", 1);
		buf_truncate(&w->in, buf_len(&w->in) - 1);
		end = buf_len(&w->in) ? strstr((const char *)buf_data(&w->in), "\r\n\r\n") : NULL;
		if (end)
			break;
		if (buf_len(&w->in) > HEADERS_MAX)
			return err_set(reterr, -EPROTO, "port-forward to %s: answer too large",
				       w->what);
		r = fill(w);
		if (r == -EAGAIN) {
			r = wait_fd(w->fd, POLLIN, deadline);
			if (r == -ETIMEDOUT)
				return err_set(reterr, -ETIMEDOUT,
					       "port-forward to %s: the API server did not answer "
					       "the upgrade in time",
					       w->what);
			continue;
		}
		if (r <= 0)
			return err_set(reterr, -ECONNRESET,
				       "port-forward to %s: the API server closed the connection "
				       "during the upgrade",
				       w->what);
	}
	size_t head_len = (size_t)(end - (const char *)buf_data(&w->in)) + 4;
	_cleanup_free_ char *head = xstrndup((const char *)buf_data(&w->in), head_len);
	buf_consume(&w->in, head_len);
	int status = 0;
	if (sscanf(head, "HTTP/1.%*d %d", &status) != 1)
		return err_set(reterr, -EPROTO, "port-forward to %s: not an HTTP answer", w->what);
	if (status != 101) {
		/* The body is a Status most of the time: read what came (up to
		 * Content-Length, briefly) for its message. */
		_cleanup_free_ char *cl = header(head, "Content-Length");
		size_t want = cl ? (size_t)strtoul(cl, NULL, 10) : 0;
		usec_t body_deadline = MIN(deadline, now_usec() + 2 * USEC_PER_SEC);
		while (buf_len(&w->in) < want && want < HEADERS_MAX) {
			r = fill(w);
			if (r == -EAGAIN && wait_fd(w->fd, POLLIN, body_deadline) == 0)
				continue;
			if (r <= 0)
				break;
		}
		buf_append(&w->in, "", 1);
		json_object *j = json_tokener_parse((const char *)buf_data(&w->in));
		const char *msg = k8s_status_message(j);
		char line[256];
		snprintf(line, sizeof(line), "%s", head + strcspn(head, " ") + 1);
		line[strcspn(line, "\r\n")] = '\0';
		err_set(reterr, status == 401 || status == 403 ? -EACCES : -ECONNREFUSED,
			"the API server refused the port-forward to %s (%s): %s", w->what, line,
			msg ? msg : "no reason given");
		json_object_put(j);
		return status;
	}
	_cleanup_free_ char *upgrade = header(head, "Upgrade");
	_cleanup_free_ char *got_accept = header(head, "Sec-WebSocket-Accept");
	_cleanup_free_ char *proto = header(head, "Sec-WebSocket-Protocol");
	if (!upgrade || strcasecmp(upgrade, "websocket") || !got_accept ||
	    strcmp(got_accept, accept))
		return err_set(reterr, -EPROTO,
			       "port-forward to %s: the API server's answer is not a WebSocket "
			       "upgrade (Upgrade or Sec-WebSocket-Accept missing or wrong)",
			       w->what);
	if (proto && strcmp(proto, "v4.channel.k8s.io"))
		return err_set(reterr, -EPROTO,
			       "port-forward to %s: the API server chose subprotocol \"%s\"",
			       w->what, proto);
	return 0;
}

int k8s_ws_open(struct k8s_api *a, const char *ns, const char *pod, uint16_t port, usec_t timeout,
		struct k8s_ws **ret, struct err *reterr)
{
	usec_t deadline = now_usec() + timeout;
	_cleanup_free_ char *ens = k8s_escape(ns), *epod = k8s_escape(pod);
	_cleanup_free_ char *path = xasprintf("/api/v1/namespaces/%s/pods/%s/portforward?ports=%u",
					      ens, epod, (unsigned)port);
	struct k8s_ws *w = NULL;
	int r;

	for (int attempt = 0; attempt < 2; attempt++) {
		w = xcalloc(1, sizeof(*w));
		w->fd = -1;
		w->port = port;
		w->what = xasprintf("pod %s/%s port %u", ns, pod, (unsigned)port);
		w->prefix_left[0] = w->prefix_left[1] = 2;
		w->channel = -1;
		buf_init(&w->in);
		buf_init(&w->out);
		buf_init(&w->sending);
		buf_init(&w->errtext);
		if (getrandom(&w->rng, sizeof(w->rng), 0) != sizeof(w->rng) || !w->rng)
			w->rng = 0x9e3779b97f4a7c15ULL ^ (uint64_t)now_usec();
		r = dial(a, w, path, deadline, reterr);
		if (r == 0) {
			w->upgraded = true;
			log_debug("port-forward to %s: WebSocket open", w->what);
			*ret = w;
			return 0;
		}
		k8s_ws_free(w);
		if (r != 401 || !k8s_api_reauth(a))
			break;
	}
	return r > 0 ? reterr->code : r;
}
