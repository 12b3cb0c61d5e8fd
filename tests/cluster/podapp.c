/* podapp: the mini cluster pod's own application (tests/cluster/README.md).
 *
 * A small static HTTP/1.1 server: every request, whatever its method or
 * path, is answered `200 OK` with the body `pod-original`. Keep-alive and
 * pipelining work, so later tests can steal or mirror traffic on long-lived
 * connections. One epoll loop, non-blocking sockets, listening on [::]:PORT
 * (dual stack).
 *
 *   podapp [-p PORT] [-b BODY] [-l]
 *
 * -l logs one line per request ("podapp: METHOD TARGET") to stdout.
 * SIGTERM and SIGINT end it with status 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define IN_MAX (64 * 1024)
#define OUT_MAX (256 * 1024)

struct conn {
	int fd;
	size_t in_len;
	unsigned long long body_left; /* request body bytes still to discard */
	int close_after;	      /* close once out is flushed */
	size_t out_len, out_off;
	char in[IN_MAX];
	char out[OUT_MAX];
};

static volatile sig_atomic_t stop;
static const char *body = "pod-original";
static int logging;
static int epfd;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void conn_free(struct conn *c)
{
	close(c->fd);
	free(c);
}

static void logline(const char *method, size_t mlen, const char *target, size_t tlen)
{
	char line[512];
	if (mlen > 32)
		mlen = 32;
	if (tlen > 400)
		tlen = 400;
	int n = snprintf(line, sizeof line, "podapp: %.*s %.*s\n", (int)mlen, method, (int)tlen,
			 target);
	if (n > 0 && write(STDOUT_FILENO, line, (size_t)n) < 0) {
		/* a lost log line is not worth more */
	}
}

/* Find a header's value in [hdr, end); returns its length or -1. */
static int header(const char *hdr, const char *end, const char *name, const char **val)
{
	size_t nlen = strlen(name);
	const char *p = hdr;
	while (p < end) {
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (!eol)
			eol = end;
		if ((size_t)(eol - p) > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0) {
			const char *v = p + nlen + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			const char *ve = eol;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			*val = v;
			return (int)(ve - v);
		}
		p = eol + 2;
	}
	return -1;
}

static int has_token(const char *v, int len, const char *tok)
{
	size_t tl = strlen(tok);
	for (int i = 0; i + (int)tl <= len; i++)
		if (strncasecmp(v + i, tok, tl) == 0)
			return 1;
	return 0;
}

static int out_add(struct conn *c, const char *s, size_t n)
{
	if (c->out_off > 0 && c->out_len + n > OUT_MAX) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	if (c->out_len + n > OUT_MAX)
		return -1;
	memcpy(c->out + c->out_len, s, n);
	c->out_len += n;
	return 0;
}

/* Parse and answer every complete request in c->in. 0 ok, -1 close now. */
static int process(struct conn *c)
{
	size_t off = 0;
	for (;;) {
		if (c->body_left > 0) {
			size_t avail = c->in_len - off;
			size_t take = avail < c->body_left ? avail : (size_t)c->body_left;
			off += take;
			c->body_left -= take;
			if (c->body_left > 0)
				break;
		}
		if (c->close_after)
			break;
		/* Allow stray CRLFs between requests (RFC 9112 2.2). */
		while (off + 1 < c->in_len && c->in[off] == '\r' && c->in[off + 1] == '\n')
			off += 2;
		const char *start = c->in + off;
		size_t avail = c->in_len - off;
		const char *end = memmem(start, avail, "\r\n\r\n", 4);
		if (!end) {
			if (avail >= IN_MAX)
				return -1; /* header block too large */
			break;
		}
		const char *eol = memmem(start, (size_t)(end - start) + 2, "\r\n", 2);
		const char *sp1 = memchr(start, ' ', (size_t)(eol - start));
		const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
		if (!sp1 || !sp2)
			return -1;
		int http10 = (eol - sp2 - 1) == 8 && memcmp(sp2 + 1, "HTTP/1.0", 8) == 0;
		int head = (sp1 - start) == 4 && memcmp(start, "HEAD", 4) == 0;
		if (logging)
			logline(start, (size_t)(sp1 - start), sp1 + 1, (size_t)(sp2 - sp1 - 1));

		const char *hdr = eol + 2, *hend = end + 2, *v;
		int vl;
		int keep = !http10;
		if ((vl = header(hdr, hend, "Connection", &v)) >= 0) {
			if (has_token(v, vl, "close"))
				keep = 0;
			else if (has_token(v, vl, "keep-alive"))
				keep = 1;
		}
		unsigned long long clen = 0;
		if ((vl = header(hdr, hend, "Content-Length", &v)) >= 0) {
			char num[32];
			if (vl <= 0 || vl >= (int)sizeof num)
				return -1;
			memcpy(num, v, (size_t)vl);
			num[vl] = 0;
			char *e;
			clen = strtoull(num, &e, 10);
			if (*e)
				return -1;
		}
		if ((vl = header(hdr, hend, "Transfer-Encoding", &v)) >= 0 &&
		    has_token(v, vl, "chunked")) {
			/* Chunked request bodies are not parsed: answer, then close. */
			keep = 0;
		}
		if (clen > 0 && (vl = header(hdr, hend, "Expect", &v)) >= 0 &&
		    has_token(v, vl, "100-continue")) {
			static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
			if (out_add(c, cont, sizeof cont - 1) < 0)
				return -1;
		}
		char resp[512];
		size_t blen = strlen(body);
		int n = snprintf(
			resp, sizeof resp,
			"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
			"Server: podapp\r\nConnection: %s\r\n\r\n",
			blen, keep ? "keep-alive" : "close");
		if (out_add(c, resp, (size_t)n) < 0 || (!head && out_add(c, body, blen) < 0))
			return -1;
		off = (size_t)(end - c->in) + 4;
		c->body_left = clen;
		if (!keep)
			c->close_after = 1;
		if (c->out_len - c->out_off > OUT_MAX / 2)
			break; /* let the peer read before parsing more */
	}
	if (off > 0) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	return 0;
}

/* Write what is pending. 1 all flushed, 0 would block, -1 error. */
static int flush(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -1;
		}
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	return 1;
}

static void conn_update(struct conn *c)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
	if (c->out_len > c->out_off)
		ev.events = EPOLLOUT;
	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Answer what is buffered, as far as the peer reads. 1 go on reading,
 * 0 output blocked, -1 close. */
static int pump(struct conn *c)
{
	for (;;) {
		size_t before = c->in_len;
		if (process(c) < 0)
			return -1;
		int r = flush(c);
		if (r <= 0)
			return r;
		if (c->close_after)
			return -1;
		if (c->in_len == before)
			return 1;
	}
}

/* Returns -1 when the connection is to be freed. */
static int conn_event(struct conn *c, unsigned events)
{
	if (events & EPOLLERR)
		return -1;
	int r = pump(c);
	if (r < 0)
		return -1;
	while (r > 0) {
		if (c->in_len == IN_MAX)
			return -1;
		ssize_t n = recv(c->fd, c->in + c->in_len, IN_MAX - c->in_len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return -1;
		}
		if (n == 0) {
			/* Peer done sending: answer what is complete, then close. */
			if (process(c) == 0)
				flush(c);
			return -1;
		}
		c->in_len += (size_t)n;
		r = pump(c);
		if (r < 0)
			return -1;
	}
	conn_update(c);
	return 0;
}

int main(int argc, char **argv)
{
	int port = 80, opt;
	while ((opt = getopt(argc, argv, "p:b:l")) != -1) {
		switch (opt) {
		case 'p':
			port = atoi(optarg);
			break;
		case 'b':
			body = optarg;
			break;
		case 'l':
			logging = 1;
			break;
		default:
			fprintf(stderr, "usage: podapp [-p PORT] [-b BODY] [-l]\n");
			return 2;
		}
	}
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	int ls = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ls < 0) {
		perror("podapp: socket");
		return 1;
	}
	int one = 1, zero = 0;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	setsockopt(ls, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
	struct sockaddr_in6 sa6 = {.sin6_family = AF_INET6,
				   .sin6_port = htons((uint16_t)port),
				   .sin6_addr = IN6ADDR_ANY_INIT};
	if (bind(ls, (struct sockaddr *)&sa6, sizeof sa6) < 0 || listen(ls, 1024) < 0) {
		perror("podapp: bind/listen");
		return 1;
	}
	epfd = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
	epoll_ctl(epfd, EPOLL_CTL_ADD, ls, &lev);
	if (logging) {
		char line[64];
		int n = snprintf(line, sizeof line, "podapp: listening on port %d\n", port);
		if (write(STDOUT_FILENO, line, (size_t)n) < 0) {
			/* ignore */
		}
	}

	struct epoll_event evs[128];
	while (!stop) {
		int n = epoll_wait(epfd, evs, 128, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("podapp: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (!c) {
				for (;;) {
					int fd = accept4(ls, NULL, NULL,
							 SOCK_NONBLOCK | SOCK_CLOEXEC);
					if (fd < 0)
						break;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
					struct conn *nc = malloc(sizeof *nc);
					if (!nc) {
						close(fd);
						continue;
					}
					nc->fd = fd;
					nc->in_len = nc->out_len = nc->out_off = 0;
					nc->body_left = 0;
					nc->close_after = 0;
					struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP,
								 .data.ptr = nc};
					if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
						conn_free(nc);
				}
				continue;
			}
			if (conn_event(c, evs[i].events) < 0) {
				epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
				conn_free(c);
			}
		}
	}
	return 0;
}
