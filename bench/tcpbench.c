/* TCP helper for bench/agent.sh: the same sink and echo server for the
 * direct and the through-the-agent runs, and the direct-side clients that
 * print the same lines as `podenv debug agent`'s tcpsend and pingpong.
 *
 *	tcpbench serve PORT              sink on PORT, echo on PORT+1 (fork per connection)
 *	tcpbench send IP PORT BYTES      zeros, half-close, wait for close: MB/s
 *	tcpbench pingpong IP PORT N      1-byte round trips (after 100 warm-up)
 *	tcpbench httploop IP PORT N      N short HTTP requests, one new connection
 *	                                 each (connect, GET with Connection: close,
 *	                                 read to EOF, close), one at a time after
 *	                                 20 warm-up: rate, time per connection,
 *	                                 failures counted (never fatal)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static int listen_on(int port)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	int one = 1, fd = socket(AF_INET6, SOCK_STREAM, 0);

	if (fd < 0)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 128) < 0)
		die("bind/listen");
	return fd;
}

static void serve_conn(int c, int echo)
{
	static char buf[1 << 20];
	int one = 1;
	ssize_t n;

	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	while ((n = read(c, buf, echo ? 65536 : sizeof(buf))) > 0)
		if (echo)
			for (ssize_t off = 0; off < n;) {
				ssize_t w = write(c, buf + off, (size_t)(n - off));
				if (w <= 0)
					_exit(1);
				off += w;
			}
	_exit(0); /* closes: the sender's "wait for close" ends here */
}

static _Noreturn void serve(int port)
{
	struct pollfd p[2] = { { .fd = listen_on(port), .events = POLLIN },
			       { .fd = listen_on(port + 1), .events = POLLIN } };

	signal(SIGCHLD, SIG_IGN);
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		if (poll(p, 2, -1) < 0)
			continue;
		for (int i = 0; i < 2; i++) {
			if (!(p[i].revents & POLLIN))
				continue;
			int c = accept(p[i].fd, NULL, NULL);
			if (c < 0)
				continue;
			if (fork() == 0) {
				close(p[0].fd);
				close(p[1].fd);
				serve_conn(c, i == 1);
			}
			close(c);
		}
	}
}

static int dial(const char *ip, int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

	if (inet_pton(AF_INET, ip, &a.sin_addr) != 1)
		die("address");
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("connect");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* One request on a new connection; 0 when a complete "HTTP/1.x 200"
 * response and then EOF arrived, else -1 with the reason, a word, in *why. */
static int http_once(const struct sockaddr_in *a, const char *req, uint64_t *connect_ns,
		     const char **why)
{
	char buf[4096], head[16] = "";
	size_t got = 0;
	ssize_t n;
	int ok = 0, fd = socket(AF_INET, SOCK_STREAM, 0);
	uint64_t t = ns();

	if (fd < 0)
		die("socket");
	if (connect(fd, (const struct sockaddr *)a, sizeof(*a)) < 0) {
		*why = errno == ECONNREFUSED ? "connect_refused"
		       : errno == ETIMEDOUT  ? "connect_timeout"
		       : errno == EADDRNOTAVAIL ? "connect_no_port"
					      : "connect_other";
		close(fd);
		return -1;
	}
	*connect_ns = ns() - t;
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		*why = "write_failed";
		close(fd);
		return -1;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n && got + (size_t)i < sizeof(head) - 1; i++)
			head[got + (size_t)i] = buf[i];
		got += (size_t)n;
	}
	ok = !strncmp(head, "HTTP/1.", 7) && !strncmp(head + 9, "200", 3);
	if (n < 0)
		*why = errno != ECONNRESET ? "read_failed" : got ? "reset_after_data" : "reset_before_data";
	else if (!got)
		*why = "eof_before_data";
	else if (!ok)
		*why = "not_http_200";
	close(fd);
	return n == 0 && ok ? 0 : -1;
}

static int httploop(const char *ip, int port, unsigned long n)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	unsigned long warm = 20, done = 0, errors = 0, reset0 = 0, top = 0;
	struct {
		const char *why;
		unsigned long n;
	} kinds[16] = { { 0 } };
	uint64_t *total = calloc(n, sizeof(*total)), *conn = calloc(n, sizeof(*conn)), t0 = 0;
	char req[256];

	if (!total || !conn || inet_pton(AF_INET, ip, &a.sin_addr) != 1)
		die("httploop");
	snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", ip);
	for (unsigned long i = 0; i < n + warm; i++) {
		const char *why = NULL;
		uint64_t c = 0, t;

		if (i == warm)
			t0 = ns();
		t = ns();
		if (http_once(&a, req, &c, &why) < 0) {
			if (i >= warm) {
				size_t k = 0;
				errors++;
				reset0 += !strcmp(why, "reset_before_data");
				while (k < 15 && kinds[k].why && strcmp(kinds[k].why, why))
					k++;
				kinds[k].why = why;
				if (++kinds[k].n > kinds[top].n)
					top = k;
			}
			continue;
		}
		if (i >= warm) {
			total[done] = ns() - t;
			conn[done++] = c;
		}
	}
	double s = (double)(ns() - t0) / 1e9;
	if (!done)
		die("httploop: no request succeeded");
	qsort(total, done, sizeof(*total), cmp);
	qsort(conn, done, sizeof(*conn), cmp);
	/* The rate counts the requests that succeeded. */
	printf("ok conns=%lu errors=%lu top_error=%s reset_before_data=%lu conn_per_sec=%.1f"
	       " p50_us=%.1f p99_us=%.1f"
	       " connect_p50_us=%.1f connect_p99_us=%.1f\n",
	       n, errors, errors ? kinds[top].why : "none", reset0, (double)done / s, (double)total[done / 2] / 1e3,
	       (double)total[done * 99 / 100] / 1e3, (double)conn[done / 2] / 1e3,
	       (double)conn[done * 99 / 100] / 1e3);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "serve"))
		serve(atoi(argv[2]));
	if (argc == 5 && !strcmp(argv[1], "send")) {
		static char zeros[65536];
		unsigned long long total = strtoull(argv[4], NULL, 10), sent = 0;
		char c;
		int fd = dial(argv[2], atoi(argv[3]));
		uint64_t t0 = ns();
		while (sent < total) {
			size_t n = total - sent < sizeof(zeros) ? total - sent : sizeof(zeros);
			ssize_t w = write(fd, zeros, n);
			if (w <= 0)
				die("write");
			sent += (unsigned long long)w;
		}
		shutdown(fd, SHUT_WR);
		if (read(fd, &c, 1) != 0)
			die("expected the peer's close");
		double s = (double)(ns() - t0) / 1e9;
		printf("ok bytes=%llu seconds=%.6f MBps=%.1f\n", sent, s, (double)sent / s / 1e6);
		return 0;
	}
	if (argc == 5 && !strcmp(argv[1], "pingpong")) {
		unsigned long n = strtoul(argv[4], NULL, 10), warm = 100;
		uint64_t *rtt = calloc(n, sizeof(*rtt)), sum = 0;
		int fd = dial(argv[2], atoi(argv[3]));
		char c = 'x';
		for (unsigned long i = 0; i < n + warm; i++) {
			uint64_t t = ns();
			if (write(fd, &c, 1) != 1 || read(fd, &c, 1) != 1)
				die("round trip");
			if (i >= warm)
				rtt[i - warm] = ns() - t;
		}
		for (unsigned long i = 0; i < n; i++)
			sum += rtt[i];
		qsort(rtt, n, sizeof(*rtt), cmp);
		printf("ok round_trips=%lu mean_us=%.1f p50_us=%.1f p99_us=%.1f\n", n,
		       (double)sum / (double)n / 1e3, (double)rtt[n / 2] / 1e3,
		       (double)rtt[n * 99 / 100] / 1e3);
		return 0;
	}
	if (argc == 5 && !strcmp(argv[1], "httploop"))
		return httploop(argv[2], atoi(argv[3]), strtoul(argv[4], NULL, 10));
	fprintf(stderr, "usage: tcpbench serve PORT | send IP PORT BYTES | pingpong IP PORT N"
			" | httploop IP PORT N\n");
	return 2;
}
