/* k8s_ws_*: the WebSocket v4.channel.k8s.io port-forward against a scripted
 * server in a child process (plain HTTP on loopback, so the bytes are
 * visible): the upgrade request, bytes that come with the 101, the port
 * prefixes split across reads, a ping answered with its pong, a
 * fragmented message, 16- and 64-bit lengths, masked unfragmented client
 * messages on channel 0, the error channel, refused and broken upgrades. */
#include <ftw.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "common/macro.h"
#include "launcher/k8s_api.h"
#include "launcher/k8s_ws.h"
#include "tests/unit/tap.h"

#define PORT 7777
#define BIG 70000

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

/* --- the scripted server (child process) ------------------------------------ */

static void put(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n > 0) {
		ssize_t w = write(fd, b, n);
		if (w <= 0)
			_exit(90);
		b += w;
		n -= (size_t)w;
	}
}

static void get(int fd, void *p, size_t n)
{
	uint8_t *b = p;

	while (n > 0) {
		ssize_t r = read(fd, b, n);
		if (r <= 0)
			_exit(91);
		b += r;
		n -= (size_t)r;
	}
}

/* An unmasked server frame. */
static void sframe(int fd, uint8_t first, const void *p, size_t n)
{
	uint8_t h[10];
	size_t k = 0;

	h[k++] = first;
	if (n < 126) {
		h[k++] = (uint8_t)n;
	} else if (n < 65536) {
		h[k++] = 126;
		h[k++] = (uint8_t)(n >> 8);
		h[k++] = (uint8_t)n;
	} else {
		h[k++] = 127;
		for (int i = 7; i >= 0; i--)
			h[k++] = (uint8_t)((uint64_t)n >> (8 * i));
	}
	put(fd, h, k);
	put(fd, p, n);
}

/* Reads one client frame; it must be masked. Returns the payload (malloc). */
static uint8_t *cframe(int fd, uint8_t *first, size_t *len)
{
	uint8_t h[2], ext[8], mask[4];
	uint64_t n;

	get(fd, h, 2);
	if (!(h[1] & 0x80))
		_exit(92); /* unmasked: the API server would close with 1002 */
	n = h[1] & 0x7f;
	if (n == 126) {
		get(fd, ext, 2);
		n = (uint64_t)ext[0] << 8 | ext[1];
	} else if (n == 127) {
		get(fd, ext, 8);
		n = 0;
		for (int i = 0; i < 8; i++)
			n = n << 8 | ext[i];
	}
	get(fd, mask, 4);
	uint8_t *p = xmalloc(n + 1);
	get(fd, p, n);
	for (uint64_t i = 0; i < n; i++)
		p[i] ^= mask[i & 3];
	*first = h[0];
	*len = n;
	return p;
}

static char *head_of(int fd)
{
	static char buf[8192];
	size_t n = 0;

	while (n < sizeof(buf) - 1 && !strstr(buf, "\r\n\r\n")) {
		ssize_t r = read(fd, buf + n, 1);
		if (r <= 0)
			_exit(93);
		n += (size_t)r;
		buf[n] = '\0';
	}
	return buf;
}

static void accept_of(const char *head, char out[64])
{
	const char *k = strstr(head, "Sec-WebSocket-Key: ");
	char in[128];
	unsigned char md[32];
	unsigned mdlen = 0;

	if (!k)
		_exit(94);
	k += strlen("Sec-WebSocket-Key: ");
	snprintf(in, sizeof(in), "%.*s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", (int)strcspn(k, "\r"),
		 k);
	EVP_Digest(in, strlen(in), md, &mdlen, EVP_sha1(), NULL);
	EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
}

static void serve(int lfd, const char *mode)
{
	int fd = accept(lfd, NULL, NULL);
	char *head, acc[64], resp[512];

	if (fd < 0)
		_exit(95);
	head = head_of(fd);
	if (strncmp(head,
		    "GET /api/v1/namespaces/ns/pods/p%2Fq/portforward?ports=7777 HTTP/1.1\r\n",
		    strlen("GET /api/v1/namespaces/ns/pods/p%2Fq/portforward?ports=7777 "
			   "HTTP/1.1\r\n")) ||
	    !strstr(head, "\r\nUpgrade: websocket\r\n") ||
	    !strstr(head, "\r\nConnection: Upgrade\r\n") ||
	    !strstr(head, "\r\nSec-WebSocket-Version: 13\r\n") ||
	    !strstr(head, "\r\nSec-WebSocket-Protocol: v4.channel.k8s.io\r\n") ||
	    !strstr(head, "\r\nAuthorization: Bearer tok-123\r\n"))
		_exit(96);
	if (!strcmp(mode, "refuse")) {
		const char *body =
			"{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
			"\"message\":\"pods \\\"p\\\" is forbidden: no port-forward for "
			"you\",\"reason\":\"Forbidden\",\"code\":403}";
		snprintf(resp, sizeof(resp),
			 "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\n\r\n%s",
			 strlen(body), body);
		put(fd, resp, strlen(resp));
		_exit(0);
	}
	accept_of(head, acc);
	if (!strcmp(mode, "badaccept"))
		acc[0] = acc[0] == 'A' ? 'B' : 'A';
	snprintf(resp, sizeof(resp),
		 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "
		 "Upgrade\r\nSec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: "
		 "v4.channel.k8s.io\r\n\r\n",
		 acc);
	/* The head and the first prefix frame in one write. */
	uint8_t pre0[] = {0x82, 3, 0, PORT & 0xff, PORT >> 8};
	uint8_t both[600];
	size_t hl = strlen(resp);
	memcpy(both, resp, hl);
	memcpy(both + hl, pre0, sizeof(pre0));
	put(fd, both, hl + sizeof(pre0));
	if (!strcmp(mode, "wrongport")) {
		uint8_t pre1[] = {1, 0x10, 0x00};
		sframe(fd, 0x82, pre1, 3);
		uint8_t d[] = {0, 'x'};
		sframe(fd, 0x82, d, 2);
		sleep(2);
		_exit(0);
	}
	/* the error channel's prefix, one byte at a time */
	uint8_t pre1[] = {0x82, 3, 1, PORT & 0xff, PORT >> 8};
	for (size_t i = 0; i < sizeof(pre1); i++) {
		put(fd, pre1 + i, 1);
		usleep(2000);
	}
	sframe(fd, 0x89, "hi", 2); /* ping */
	uint8_t a[] = {0, 'h', 'e', 'l'};
	sframe(fd, 0x02, a, sizeof(a)); /* binary, not FIN */
	sframe(fd, 0x80, "lo", 2);	/* continuation, FIN */

	/* The client: the pong first, then "ping!" on channel 0, masked. */
	uint8_t first;
	size_t n;
	uint8_t *p = cframe(fd, &first, &n);
	if (first != 0x8a || n != 2 || memcmp(p, "hi", 2))
		_exit(97);
	free(p);
	p = cframe(fd, &first, &n);
	if (first != 0x82 || n != 6 || p[0] != 0 || memcmp(p + 1, "ping!", 5))
		_exit(98);
	free(p);
	/* A big message (64-bit length) and a medium one (16-bit). */
	uint8_t *big = xmalloc(BIG + 1);
	big[0] = 0;
	for (size_t i = 1; i <= BIG; i++)
		big[i] = (uint8_t)(i * 7);
	sframe(fd, 0x82, big, BIG + 1);
	sframe(fd, 0x82, big, 300);
	free(big);
	/* A client message larger than one frame's worth arrives in pieces,
	 * each its own unfragmented message. */
	size_t total = 0;
	while (total < 600000) {
		p = cframe(fd, &first, &n);
		if (first != 0x82 || n < 2 || p[0] != 0)
			_exit(99);
		for (size_t i = 1; i < n; i++)
			if (p[i] != (uint8_t)(total + i - 1))
				_exit(100);
		total += n - 1;
		free(p);
	}
	if (total != 600000)
		_exit(101);
	const char *err = "\1error forwarding port 7777 to pod p, uid u1: dial tcp: refused";
	sframe(fd, 0x82, err, strlen(err));
	uint8_t close_frame[] = {0x03, 0xe8};
	sframe(fd, 0x88, close_frame, 2);
	sleep(1);
	_exit(0);
}

/* --- the client --------------------------------------------------------------- */

struct fixture {
	struct k8s_api *api;
	struct cfg cfg;
	pid_t server;
};

static void setup(struct fixture *f, const char *mode)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t sl = sizeof(sa);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	char path[128];
	struct err e;

	REQUIRE(lfd >= 0);
	REQUIRE(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	REQUIRE(listen(lfd, 4) == 0);
	REQUIRE(getsockname(lfd, (struct sockaddr *)&sa, &sl) == 0);
	f->server = fork();
	REQUIRE(f->server >= 0);
	if (f->server == 0)
		serve(lfd, mode);
	close(lfd);

	strcpy(tmpdir, "/tmp/podenv-k8sws-XXXXXX");
	REQUIRE(mkdtemp(tmpdir));
	atexit(cleanup_tmp);
	snprintf(path, sizeof(path), "%s/kubeconfig", tmpdir);
	FILE *k = fopen(path, "w");
	REQUIRE(k);
	fprintf(k,
		"{\"apiVersion\":\"v1\",\"kind\":\"Config\",\"current-context\":\"c\","
		"\"clusters\":[{\"name\":\"x\",\"cluster\":{\"server\":\"http://127.0.0.1:%u\"}}],"
		"\"users\":[{\"name\":\"u\",\"user\":{\"token\":\"tok-123\"}}],"
		"\"contexts\":[{\"name\":\"c\",\"context\":{\"cluster\":\"x\",\"user\":\"u\"}}]}",
		(unsigned)ntohs(sa.sin_port));
	fclose(k);
	memset(&f->cfg, 0, sizeof(f->cfg));
	f->cfg.kubeconfig = path;
	f->cfg.accept_invalid_certificates = CFG_UNSET;
	f->cfg.use_proxy = false;
	if (k8s_api_open(&f->cfg, &f->api, &e) < 0) {
		printf("# %s\n", e.msg);
		REQUIRE(false);
	}
	f->cfg.kubeconfig = NULL;
}

static int server_status(struct fixture *f)
{
	int st = 0;

	REQUIRE(waitpid(f->server, &st, 0) == f->server);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Reads exactly n bytes (or an error), waiting on the fd. */
static ssize_t read_n(struct k8s_ws *w, uint8_t *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = k8s_ws_read(w, buf + got, n - got);
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		if (r != -EAGAIN)
			return r;
		/* pongs queued by the read go out here */
		k8s_ws_flush(w);
		struct pollfd p = {.fd = k8s_ws_fd(w), .events = POLLIN};
		if (poll(&p, 1, 5000) <= 0)
			return -ETIMEDOUT;
	}
	return (ssize_t)got;
}

static void write_all(struct k8s_ws *w, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t r = k8s_ws_write(w, p, n);
		if (r == -EAGAIN) {
			struct pollfd pf = {.fd = k8s_ws_fd(w), .events = POLLOUT};
			poll(&pf, 1, 5000);
			continue;
		}
		REQUIRE(r > 0);
		p += r;
		n -= (size_t)r;
	}
	while (k8s_ws_flush(w) == -EAGAIN) {
		struct pollfd pf = {.fd = k8s_ws_fd(w), .events = POLLOUT};
		poll(&pf, 1, 5000);
	}
}

TEST(exchange)
{
	struct fixture f;
	struct k8s_ws *w = NULL;
	struct err e;
	uint8_t buf[BIG];

	setup(&f, "ok");
	CHECK_OK(k8s_ws_open(f.api, "ns", "p/q", PORT, 5 * USEC_PER_SEC, &w, &e));
	REQUIRE(w);
	CHECK_INT(read_n(w, buf, 5), ==, 5);
	CHECK(!memcmp(buf, "hello", 5));
	write_all(w, (const uint8_t *)"ping!", 5);
	ssize_t got_big = read_n(w, buf, BIG);
	if (got_big != BIG) {
		k8s_ws_free(w);
		printf("# server exit %d\n", server_status(&f));
	}
	REQUIRE(got_big == BIG);
	bool same = true;
	for (size_t i = 0; i < BIG; i++)
		same = same && buf[i] == (uint8_t)((i + 1) * 7);
	CHECK(same);
	CHECK_INT(read_n(w, buf, 299), ==, 299);
	uint8_t *out = xmalloc(600000);
	for (size_t i = 0; i < 600000; i++)
		out[i] = (uint8_t)i;
	write_all(w, out, 600000);
	free(out);
	CHECK_INT(read_n(w, buf, 1), ==, -EPROTO);
	CHECK_CONTAINS(k8s_ws_reason(w), "error forwarding port 7777 to pod p, uid u1: dial tcp");
	CHECK_CONTAINS(k8s_ws_reason(w), "port-forward to pod ns/p/q port 7777");
	k8s_ws_free(w);
	CHECK_INT(server_status(&f), ==, 0);
	k8s_api_free(f.api);
}

TEST(refused_upgrade)
{
	struct fixture f;
	struct k8s_ws *w = NULL;
	struct err e;

	setup(&f, "refuse");
	CHECK_INT(k8s_ws_open(f.api, "ns", "p/q", PORT, 5 * USEC_PER_SEC, &w, &e), ==, -EACCES);
	CHECK(!w);
	CHECK_CONTAINS(e.msg, "refused the port-forward to pod ns/p/q port 7777 (403 Forbidden)");
	CHECK_CONTAINS(e.msg, "no port-forward for you");
	CHECK(!strchr(e.msg, '\n'));
	CHECK_INT(server_status(&f), ==, 0);
	k8s_api_free(f.api);
}

TEST(bad_accept_key)
{
	struct fixture f;
	struct k8s_ws *w = NULL;
	struct err e;

	setup(&f, "badaccept");
	CHECK_INT(k8s_ws_open(f.api, "ns", "p/q", PORT, 5 * USEC_PER_SEC, &w, &e), ==, -EPROTO);
	CHECK_CONTAINS(e.msg, "Sec-WebSocket-Accept");
	kill(f.server, SIGKILL);
	server_status(&f);
	k8s_api_free(f.api);
}

TEST(wrong_port_prefix)
{
	struct fixture f;
	struct k8s_ws *w = NULL;
	struct err e;
	uint8_t buf[8];

	setup(&f, "wrongport");
	CHECK_OK(k8s_ws_open(f.api, "ns", "p/q", PORT, 5 * USEC_PER_SEC, &w, &e));
	CHECK_INT(read_n(w, buf, 1), ==, -EPROTO);
	CHECK_CONTAINS(k8s_ws_reason(w), "another port");
	k8s_ws_free(w);
	kill(f.server, SIGKILL);
	server_status(&f);
	k8s_api_free(f.api);
}

TEST(server_down)
{
	struct fixture f;
	struct k8s_ws *w = NULL;
	struct err e;

	setup(&f, "refuse");
	kill(f.server, SIGKILL);
	server_status(&f);
	/* the listening socket died with the child */
	CHECK_INT(k8s_ws_open(f.api, "ns", "p/q", PORT, 5 * USEC_PER_SEC, &w, &e), ==,
		  -ECONNREFUSED);
	CHECK_CONTAINS(e.msg, "cannot reach the Kubernetes API server http://127.0.0.1:");
	k8s_api_free(f.api);
}

TAP_MAIN()
