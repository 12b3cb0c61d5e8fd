/* agent/http.c: splitting HTTP/1.1 request streams (every input fed whole
 * and in pieces down to one byte, with the forwarded bytes checked to add
 * up to the input exactly), giving up on what cannot be split, and the
 * SUBSCRIBE filter string and its matching. */
#include "agent/http.h"
#include "common/buf.h"
#include "tests/unit/tap.h"

#define MAX_REQS 16

struct req {
	char method[32];
	char path[256];
	char query[256];
	bool has_query;
	int framing;
	int version_minor;
	uint64_t offset;
	size_t nheaders;
	char headers[1024]; /* "name=value;" per header */
	struct buf body;
	bool ended;
};

struct run {
	struct req reqs[MAX_REQS];
	size_t n;
	int terminal; /* 0 or the terminal event */
	const char *why;
	bool body_error; /* MALFORMED came after a HEAD (held empty, used 0) */
	struct buf all;	 /* every forwarded byte, in order */
	uint64_t offset;
};

static void copy_str(char *dst, size_t cap, const char *s, size_t n)
{
	REQUIRE(n < cap);
	memcpy(dst, s, n);
	dst[n] = '\0';
}

static void record_head(struct run *out, const struct agent_http_head *h)
{
	struct req *r;

	REQUIRE(out->n < MAX_REQS);
	r = &out->reqs[out->n++];
	memset(r, 0, sizeof(*r));
	copy_str(r->method, sizeof(r->method), h->method, h->method_len);
	copy_str(r->path, sizeof(r->path), h->path, h->path_len);
	if (h->query) {
		r->has_query = true;
		copy_str(r->query, sizeof(r->query), h->query, h->query_len);
		CHECK(h->query == h->path + h->path_len + 1);
	}
	r->framing = h->framing;
	r->version_minor = h->version_minor;
	r->offset = h->offset;
	r->nheaders = h->nheaders;
	for (size_t i = 0; i < h->nheaders; i++) {
		size_t l = strlen(r->headers);
		REQUIRE(l + h->headers[i].name_len + h->headers[i].value_len + 3 <
			sizeof(r->headers));
		snprintf(r->headers + l, sizeof(r->headers) - l, "%.*s=%.*s;",
			 (int)h->headers[i].name_len, h->headers[i].name,
			 (int)h->headers[i].value_len, h->headers[i].value);
	}
	buf_append(&out->all, h->raw, h->raw_len);
}

/* Feeds data[0..len) in pieces of `step` bytes (0: whole) and records
 * what the parser reports. */
static void run_stream(const void *data, size_t len, size_t step, struct run *out)
{
	struct agent_http_parser *p = agent_http_parser_new();
	const char *d = data;
	size_t off = 0;

	memset(out, 0, sizeof(*out));
	if (step == 0)
		step = len ? len : 1;
	do {
		const char *c = d + off;
		size_t l = MIN(step, len - off);

		off += l;
		while (!out->terminal) {
			size_t used = 12345;
			int ev = agent_http_parser_feed(p, c, l, &used);
			const void *held;
			size_t hlen;

			REQUIRE(used <= l);
			switch (ev) {
			case AGENT_HTTP_NEED_MORE:
				CHECK_UINT(used, ==, l);
				break;
			case AGENT_HTTP_HEAD:
				record_head(out, agent_http_parser_head(p));
				break;
			case AGENT_HTTP_BODY:
			case AGENT_HTTP_END:
				REQUIRE(out->n > 0);
				CHECK(!out->reqs[out->n - 1].ended);
				buf_append(&out->reqs[out->n - 1].body, c, used);
				buf_append(&out->all, c, used);
				if (ev == AGENT_HTTP_END)
					out->reqs[out->n - 1].ended = true;
				break;
			default:
				CHECK_INT(ev, >=, AGENT_HTTP_TUNNEL);
				CHECK_INT(ev, <=, AGENT_HTTP_NOT_HTTP);
				out->terminal = ev;
				out->why = agent_http_parser_why(p);
				held = agent_http_parser_held(p, &hlen);
				if (agent_http_parser_head(p) && ev == AGENT_HTTP_MALFORMED) {
					out->body_error = true;
					CHECK_UINT(used, ==, 0);
				}
				if (ev == AGENT_HTTP_TUNNEL)
					CHECK_UINT(hlen, ==, 0);
				buf_append(&out->all, held, hlen);
				buf_append(&out->all, c + used, l - used);
				/* terminal: the same event again, nothing used */
				CHECK_INT(agent_http_parser_feed(p, c, l, &used), ==, ev);
				CHECK_UINT(used, ==, 0);
				break;
			}
			c += used;
			l -= used;
			if (ev == AGENT_HTTP_NEED_MORE || out->terminal)
				break;
		}
		if (out->terminal)
			buf_append(&out->all, d + off, len - off), off = len;
	} while (off < len);
	out->offset = agent_http_parser_offset(p);
	agent_http_parser_free(p);
}

static void run_done(struct run *r)
{
	for (size_t i = 0; i < r->n; i++)
		buf_done(&r->reqs[i].body);
	buf_done(&r->all);
}

/* Runs s whole and in pieces of 1, 2, 3, 5, 7 and 64 bytes; every run must
 * report the same as the whole one, and forward exactly the input. */
static void run_all(const char *s, size_t len, struct run *whole)
{
	static const size_t steps[] = {1, 2, 3, 5, 7, 64};

	run_stream(s, len, 0, whole);
	CHECK_UINT(buf_len(&whole->all), ==, len);
	CHECK(memcmp(buf_data(&whole->all), s, len) == 0);
	for (size_t k = 0; k < ARRAY_SIZE(steps); k++) {
		struct run r;

		run_stream(s, len, steps[k], &r);
		CHECK_UINT(r.n, ==, whole->n);
		CHECK_INT(r.terminal, ==, whole->terminal);
		CHECK_UINT(buf_len(&r.all), ==, len);
		CHECK(buf_len(&r.all) == len && memcmp(buf_data(&r.all), s, len) == 0);
		if (whole->why && r.why)
			CHECK_STR(r.why, whole->why);
		for (size_t i = 0; i < r.n && i < whole->n; i++) {
			CHECK_STR(r.reqs[i].method, whole->reqs[i].method);
			CHECK_STR(r.reqs[i].path, whole->reqs[i].path);
			CHECK_STR(r.reqs[i].headers, whole->reqs[i].headers);
			CHECK_INT(r.reqs[i].ended, ==, whole->reqs[i].ended);
			CHECK_UINT(r.reqs[i].offset, ==, whole->reqs[i].offset);
			CHECK_UINT(buf_len(&r.reqs[i].body), ==, buf_len(&whole->reqs[i].body));
		}
		run_done(&r);
	}
}

#define RUN_ALL(lit, r) run_all(lit, sizeof(lit) - 1, r)

static void check_body(const struct req *r, const char *body)
{
	size_t n = strlen(body);

	CHECK_UINT(buf_len(&r->body), ==, n);
	if (n > 0 && buf_len(&r->body) == n)
		CHECK(memcmp(buf_data(&r->body), body, n) == 0);
}

TEST(simple_get)
{
	struct run r;

	RUN_ALL("GET /api/items?id=7&x=y HTTP/1.1\r\nHost: svc\r\nX-User:  alice \r\n"
		"Accept: */*\r\n\r\n",
		&r);
	CHECK_INT(r.terminal, ==, 0);
	REQUIRE(r.n == 1);
	CHECK_STR(r.reqs[0].method, "GET");
	CHECK_STR(r.reqs[0].path, "/api/items");
	CHECK(r.reqs[0].has_query);
	CHECK_STR(r.reqs[0].query, "id=7&x=y");
	CHECK_INT(r.reqs[0].version_minor, ==, 1);
	CHECK_INT(r.reqs[0].framing, ==, AGENT_HTTP_NO_BODY);
	CHECK_STR(r.reqs[0].headers, "Host=svc;X-User=alice;Accept=*/*;");
	CHECK(r.reqs[0].ended);
	check_body(&r.reqs[0], "");
	run_done(&r);
}

TEST(http10_and_leading_empty_lines)
{
	struct run r;

	RUN_ALL("\r\n\r\nGET / HTTP/1.0\r\n\r\n", &r);
	CHECK_INT(r.terminal, ==, 0);
	REQUIRE(r.n == 1);
	CHECK_INT(r.reqs[0].version_minor, ==, 0);
	CHECK_STR(r.reqs[0].path, "/");
	CHECK(!r.reqs[0].has_query);
	CHECK_UINT(r.reqs[0].nheaders, ==, 0);
	run_done(&r);
}

TEST(content_length_body)
{
	struct run r;

	RUN_ALL("POST /upload HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world", &r);
	CHECK_INT(r.terminal, ==, 0);
	REQUIRE(r.n == 1);
	CHECK_INT(r.reqs[0].framing, ==, AGENT_HTTP_LENGTH);
	CHECK(r.reqs[0].ended);
	check_body(&r.reqs[0], "hello world");
	run_done(&r);

	/* the same value repeated is one value (RFC 9110 §8.6) */
	RUN_ALL("POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3, 3\r\n\r\nabc", &r);
	CHECK_INT(r.terminal, ==, 0);
	REQUIRE(r.n == 1);
	check_body(&r.reqs[0], "abc");
	run_done(&r);

	/* a body that has not all arrived: no END yet */
	RUN_ALL("PUT /x HTTP/1.1\r\nContent-Length: 100\r\n\r\npartial", &r);
	REQUIRE(r.n == 1);
	CHECK(!r.reqs[0].ended);
	check_body(&r.reqs[0], "partial");
	run_done(&r);
}

TEST(chunked_with_extensions_and_trailers)
{
	static const char body[] = "5;ext=1;q=\"a b;c\"\r\nhello\r\n"
				   "6 ; name\r\n world\r\n"
				   "A\r\n0123456789\r\n"
				   "0;last=yes\r\nX-Checksum: abc\r\nX-Other:  v \r\n\r\n";
	static const char req[] = "POST /stream HTTP/1.1\r\nHost: a\r\n"
				  "Transfer-Encoding: gzip, Chunked\r\n\r\n"
				  "5;ext=1;q=\"a b;c\"\r\nhello\r\n"
				  "6 ; name\r\n world\r\n"
				  "A\r\n0123456789\r\n"
				  "0;last=yes\r\nX-Checksum: abc\r\nX-Other:  v \r\n\r\n"
				  "GET /next HTTP/1.1\r\n\r\n";
	struct run r;

	RUN_ALL(req, &r);
	CHECK_INT(r.terminal, ==, 0);
	REQUIRE(r.n == 2);
	CHECK_INT(r.reqs[0].framing, ==, AGENT_HTTP_CHUNKED);
	CHECK(r.reqs[0].ended);
	check_body(&r.reqs[0], body);
	CHECK_STR(r.reqs[1].path, "/next");
	CHECK(r.reqs[1].ended);
	run_done(&r);

	/* no trailers, big chunk size in hex */
	RUN_ALL("POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
		"1f\r\n0123456789abcdef0123456789abcde\r\n0\r\n\r\n",
		&r);
	CHECK_INT(r.terminal, ==, 0);
	REQUIRE(r.n == 1);
	CHECK(r.reqs[0].ended);
	run_done(&r);
}

TEST(pipelined_requests)
{
	static const char s[] = "GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
				"POST /two?x=1 HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody"
				"POST /three HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
				"3\r\nabc\r\n0\r\n\r\n"
				"\r\n" /* a stray CRLF after a body, as some clients send */
				"DELETE /four HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
				"GET /five HTTP/1.1\r\n\r\n";
	struct run r;

	RUN_ALL(s, &r);
	CHECK_INT(r.terminal, ==, 0);
	REQUIRE(r.n == 5);
	CHECK_STR(r.reqs[0].path, "/one");
	CHECK_STR(r.reqs[1].path, "/two");
	CHECK_STR(r.reqs[1].query, "x=1");
	check_body(&r.reqs[1], "body");
	CHECK_STR(r.reqs[2].path, "/three");
	check_body(&r.reqs[2], "3\r\nabc\r\n0\r\n\r\n");
	CHECK_STR(r.reqs[3].method, "DELETE");
	CHECK_STR(r.reqs[4].path, "/five");
	for (size_t i = 0; i < 5; i++)
		CHECK(r.reqs[i].ended);
	/* offsets: where each request starts in the stream */
	CHECK_UINT(r.reqs[0].offset, ==, 0);
	CHECK_UINT(r.reqs[1].offset, ==, strlen("GET /one HTTP/1.1\r\nHost: a\r\n\r\n"));
	CHECK_UINT(r.reqs[4].offset, ==, sizeof(s) - 1 - strlen("GET /five HTTP/1.1\r\n\r\n"));
	CHECK_UINT(r.offset, ==, sizeof(s) - 1);
	run_done(&r);
}

TEST(targets)
{
	struct run r;

	RUN_ALL("GET http://svc.ns:8080/a/b?c=d HTTP/1.1\r\n\r\n"
		"GET https://svc HTTP/1.1\r\n\r\n"
		"OPTIONS * HTTP/1.1\r\n\r\n",
		&r);
	CHECK_INT(r.terminal, ==, 0);
	REQUIRE(r.n == 3);
	CHECK_STR(r.reqs[0].path, "/a/b");
	CHECK_STR(r.reqs[0].query, "c=d");
	CHECK_STR(r.reqs[1].path, "");
	CHECK_STR(r.reqs[2].path, "*");
	run_done(&r);
}

TEST(upgrade_and_connect_stop_splitting)
{
	struct run r;

	RUN_ALL("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
		"Upgrade: websocket\r\n\r\n\x81\x05hello GET /not-a-request HTTP/1.1\r\n\r\n",
		&r);
	CHECK_INT(r.terminal, ==, AGENT_HTTP_TUNNEL);
	REQUIRE(r.n == 1);
	CHECK_INT(r.reqs[0].framing, ==, AGENT_HTTP_UPGRADE);
	run_done(&r);

	RUN_ALL("CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n\x00\x00\x00\x08", &r);
	CHECK_INT(r.terminal, ==, AGENT_HTTP_TUNNEL);
	REQUIRE(r.n == 1);
	CHECK_STR(r.reqs[0].path, "");
	run_done(&r);

	/* Upgrade without Connection: upgrade is an ordinary request */
	RUN_ALL("GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\nGET /2 HTTP/1.1\r\n\r\n", &r);
	CHECK_INT(r.terminal, ==, 0);
	CHECK_UINT(r.n, ==, 2);
	run_done(&r);
}

static void check_head_error(const char *s, int ev, const char *why)
{
	struct run r;

	run_all(s, strlen(s), &r);
	CHECK_INT(r.terminal, ==, ev);
	CHECK_UINT(r.n, ==, 0);
	if (why)
		CHECK_STR(r.why, why);
	run_done(&r);
}

TEST(malformed_request_line)
{
	check_head_error("GET  / HTTP/1.1\r\n\r\n", AGENT_HTTP_MALFORMED, "bad request target");
	check_head_error("GET / HTTP/1.1 x\r\n\r\n", AGENT_HTTP_MALFORMED, "bad HTTP version");
	check_head_error("GET / HTTP/3.0\r\n\r\n", AGENT_HTTP_MALFORMED,
			 "unsupported HTTP version");
	check_head_error("GET / http/1.1\r\n\r\n", AGENT_HTTP_MALFORMED, "bad HTTP version");
	check_head_error("GET /\r\n\r\n", AGENT_HTTP_MALFORMED, "bad request target");
	check_head_error("GET / HTTP/1\r\n\r\n", AGENT_HTTP_MALFORMED, "bad HTTP version");
	check_head_error("GET / HTTP/1.1\n\n", AGENT_HTTP_MALFORMED, "bad HTTP version");
	check_head_error("GET /a\x01 HTTP/1.1\r\n\r\n", AGENT_HTTP_MALFORMED, "bad request target");
	check_head_error("GET /a#frag HTTP/1.1\r\n\r\n", AGENT_HTTP_MALFORMED,
			 "fragment in request target");
	check_head_error("GET a/b HTTP/1.1\r\n\r\n", AGENT_HTTP_MALFORMED, "bad request target");
	check_head_error("GET / HTTP/1.1\rX\n\r\n", AGENT_HTTP_MALFORMED, "bare CR");
}

TEST(malformed_headers)
{
	check_head_error("GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", AGENT_HTTP_MALFORMED,
			 "bad header name");
	check_head_error("GET / HTTP/1.1\r\nHost : x\r\n\r\n", AGENT_HTTP_MALFORMED,
			 "bad header name");
	check_head_error("GET / HTTP/1.1\r\nNoColon\r\n\r\n", AGENT_HTTP_MALFORMED,
			 "bad header name");
	check_head_error("GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n", AGENT_HTTP_MALFORMED,
			 "bad header value");
	check_head_error("GET / HTTP/1.1\r\nX: a\r\n  folded\r\n\r\n", AGENT_HTTP_MALFORMED,
			 "obs-fold in header");
	check_head_error("GET / HTTP/1.1\r\nX: a\nY: b\r\n\r\n", AGENT_HTTP_MALFORMED, "bare LF");
	check_head_error("GET / HTTP/1.1\r\nX: a\r\n\n", AGENT_HTTP_MALFORMED, "bare LF");
	check_head_error("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
			 AGENT_HTTP_MALFORMED, "conflicting Content-Length");
	check_head_error("POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n", AGENT_HTTP_MALFORMED,
			 "conflicting Content-Length");
	check_head_error("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", AGENT_HTTP_MALFORMED,
			 "Content-Length not a number");
	check_head_error("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
			 AGENT_HTTP_MALFORMED, "Content-Length too large");
	check_head_error("POST / HTTP/1.1\r\nContent-Length: 3\r\n"
			 "Transfer-Encoding: chunked\r\n\r\nabc",
			 AGENT_HTTP_MALFORMED, "both Content-Length and Transfer-Encoding");
	check_head_error("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", AGENT_HTTP_MALFORMED,
			 "Transfer-Encoding not ending in chunked");
	check_head_error("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
			 AGENT_HTTP_MALFORMED, "Transfer-Encoding with a coding after chunked");
	check_head_error("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
			 "Transfer-Encoding: chunked\r\n\r\n",
			 AGENT_HTTP_MALFORMED, "Transfer-Encoding with a coding after chunked");
	check_head_error("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
			 AGENT_HTTP_MALFORMED, "Transfer-Encoding in HTTP/1.0");
}

TEST(too_large)
{
	struct buf b = {0};
	struct run r;

	buf_printf(&b, "GET / HTTP/1.1\r\n");
	while (buf_len(&b) < AGENT_HTTP_HEAD_MAX + 100)
		buf_printf(&b, "X-Filler: %0100d\r\n", 0);
	buf_printf(&b, "\r\n");
	run_stream(buf_data(&b), buf_len(&b), 4096, &r);
	CHECK_INT(r.terminal, ==, AGENT_HTTP_MALFORMED);
	CHECK(buf_len(&r.all) == buf_len(&b) &&
	      memcmp(buf_data(&r.all), buf_data(&b), buf_len(&b)) == 0);
	run_done(&r);
	buf_done(&b);

	/* too many header lines, well below the size limit */
	buf_printf(&b, "GET / HTTP/1.1\r\n");
	for (int i = 0; i <= AGENT_HTTP_HEADERS_MAX; i++)
		buf_printf(&b, "a: b\r\n");
	buf_printf(&b, "\r\n");
	run_stream(buf_data(&b), buf_len(&b), 0, &r);
	CHECK_INT(r.terminal, ==, AGENT_HTTP_MALFORMED);
	CHECK_STR(r.why, "too many headers");
	run_done(&r);
	buf_done(&b);

	/* empty lines alone count too */
	for (int i = 0; i < AGENT_HTTP_HEAD_MAX; i++)
		buf_append(&b, "\r\n", 2);
	run_stream(buf_data(&b), buf_len(&b), 1000, &r);
	CHECK_INT(r.terminal, ==, AGENT_HTTP_MALFORMED);
	CHECK_STR(r.why, "request head too large");
	run_done(&r);
	buf_done(&b);
}

TEST(malformed_after_good_requests)
{
	struct run r;

	RUN_ALL("GET /ok HTTP/1.1\r\n\r\nGET /bad HTTP/1.1\r\nX : y\r\n\r\n", &r);
	CHECK_INT(r.terminal, ==, AGENT_HTTP_MALFORMED);
	REQUIRE(r.n == 1);
	CHECK(r.reqs[0].ended);
	CHECK(!r.body_error);
	run_done(&r);
}

TEST(malformed_chunked_body)
{
	static const char *const bad[] = {
		"zz\r\n",		     /* not hex */
		"5\r\nhelloXX",		     /* data not followed by CRLF */
		"5 x\r\nhello\r\n0\r\n\r\n", /* junk after the size */
		"5;a\x01\r\n",		     /* CTL in an extension */
		"5\nhello\r\n",		     /* bare LF */
		"1234567890abcdef0\r\n",     /* size overflow */
		"0\r\nX : y\r\n\r\n",	     /* bad trailer */
		"0\r\n folded\r\n\r\n",	     /* obs-fold in trailers */
		"0\r\nX: y\n\r\n",	     /* bare LF in trailers */
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct buf b = {0};
		struct run r;

		buf_printf(&b, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n%s", bad[i]);
		run_all((const char *)buf_data(&b), buf_len(&b), &r);
		if (r.terminal != AGENT_HTTP_MALFORMED)
			TAP_FAIL("case %zu: terminal %d", i, r.terminal);
		CHECK(r.body_error);
		CHECK_UINT(r.n, ==, 1);
		run_done(&r);
		buf_done(&b);
	}
}

TEST(http2_preface)
{
	struct run r;

	RUN_ALL("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00", &r);
	CHECK_INT(r.terminal, ==, AGENT_HTTP_H2);
	CHECK_UINT(r.n, ==, 0);
	run_done(&r);
	/* PRI as an HTTP/1.1 method is just a method */
	RUN_ALL("PRI / HTTP/1.1\r\n\r\n", &r);
	CHECK_INT(r.terminal, ==, 0);
	CHECK_UINT(r.n, ==, 1);
	run_done(&r);
}

TEST(not_http)
{
	struct run r;
	size_t used;
	struct agent_http_parser *p;
	static const unsigned char tls[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01};

	/* decided on the first byte */
	p = agent_http_parser_new();
	CHECK_INT(agent_http_parser_feed(p, tls, sizeof(tls), &used), ==, AGENT_HTTP_NOT_HTTP);
	CHECK_UINT(used, ==, 1);
	agent_http_parser_free(p);

	check_head_error("SSH-2.0-OpenSSH_9.2\r\n", AGENT_HTTP_NOT_HTTP, "not a request line");
	check_head_error("*1\r\n$4\r\nPING\r\n", AGENT_HTTP_NOT_HTTP, "not a request line");
	RUN_ALL("\x00\x00\x00\x08\x04\xd2\x16\x2f", &r); /* PostgreSQL SSLRequest */
	CHECK_INT(r.terminal, ==, AGENT_HTTP_NOT_HTTP);
	run_done(&r);
	check_head_error("\n", AGENT_HTTP_NOT_HTTP, NULL);
	check_head_error("ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJ / HTTP/1.1\r\n\r\n",
			 AGENT_HTTP_NOT_HTTP, NULL);
	RUN_ALL("\x16\x03\x01", &r);
	CHECK_INT(r.terminal, ==, AGENT_HTTP_NOT_HTTP);
	run_done(&r);
}

/* --- filters ----------------------------------------------------------------- */

static struct agent_http_filter *filter(const char *s)
{
	struct agent_http_filter *f = NULL;
	struct err e = {0};
	int r = agent_http_filter_parse(s, strlen(s), &f, &e);

	if (r < 0)
		TAP_FAIL("parse \"%s\": %d %s", s, r, e.msg);
	REQUIRE(r == 0 && f);
	return f;
}

/* Does the first request of s match filter string fs? */
static bool matches(const char *fs, const char *s)
{
	struct agent_http_parser *p = agent_http_parser_new();
	struct agent_http_filter *f = filter(fs);
	size_t used;
	bool m;

	REQUIRE(agent_http_parser_feed(p, s, strlen(s), &used) == AGENT_HTTP_HEAD);
	m = agent_http_filter_match(f, agent_http_parser_head(p));
	agent_http_filter_free(f);
	agent_http_parser_free(p);
	return m;
}

TEST(filter_header)
{
	const char *f = "header x-user: alice\n";

	CHECK(matches(f, "GET / HTTP/1.1\r\nHost: a\r\nX-User: alice\r\n\r\n"));
	CHECK(matches(f, "GET / HTTP/1.1\r\nx-user:alice\r\n\r\n"));  /* rendered "x-user: alice" */
	CHECK(matches(f, "GET / HTTP/1.1\r\nX-USER: ALICE\r\n\r\n")); /* caseless */
	CHECK(matches(f, "GET / HTTP/1.1\r\nX-User: alice-and-bob\r\n\r\n")); /* unanchored */
	CHECK(!matches(f, "GET / HTTP/1.1\r\nX-User: bob\r\n\r\n"));
	CHECK(!matches(f, "GET / HTTP/1.1\r\n\r\n"));
	CHECK(!matches(f, "GET /x-user:alice HTTP/1.1\r\n\r\n"));

	f = "header ^x-user: alice$\n";
	CHECK(matches(f, "GET / HTTP/1.1\r\nX-User: alice  \r\n\r\n"));
	CHECK(!matches(f, "GET / HTTP/1.1\r\nX-User: alice2\r\n\r\n"));
	CHECK(!matches(f, "GET / HTTP/1.1\r\nY-X-User: alice\r\n\r\n"));

	/* mirrord's preview default: baggage with a session key */
	f = "header baggage: .*mirrord-session=k1.*\n";
	CHECK(matches(f, "GET / HTTP/1.1\r\nBaggage: a=b,mirrord-session=k1,c=d\r\n\r\n"));
	CHECK(!matches(f, "GET / HTTP/1.1\r\nBaggage: mirrord-session=k2\r\n\r\n"));
}

TEST(filter_path)
{
	const char *f = "path ^(?!/health)\n";

	CHECK(!matches(f, "GET /health HTTP/1.1\r\n\r\n"));
	CHECK(!matches(f, "GET /healthz?x=1 HTTP/1.1\r\n\r\n"));
	CHECK(!matches(f, "GET /HEALTH HTTP/1.1\r\n\r\n")); /* caseless */
	CHECK(matches(f, "GET /api/health HTTP/1.1\r\n\r\n"));
	CHECK(matches(f, "GET / HTTP/1.1\r\n\r\n"));

	/* path alone, then path + query */
	f = "path ^/search\\?q=podenv($|&)\n";
	CHECK(matches(f, "GET /search?q=podenv HTTP/1.1\r\n\r\n"));
	CHECK(matches(f, "GET /search?q=podenv&page=2 HTTP/1.1\r\n\r\n"));
	CHECK(!matches(f, "GET /search?q=other HTTP/1.1\r\n\r\n"));
	f = "path ^/api/v1$\n";
	CHECK(matches(f, "GET /api/v1?debug=1 HTTP/1.1\r\n\r\n")); /* the path alone matches */
	CHECK(matches(f, "GET http://svc/api/v1 HTTP/1.1\r\n\r\n"));
	CHECK(!matches(f, "GET /api/v12 HTTP/1.1\r\n\r\n"));
	f = "path debug=1\n";
	CHECK(matches(f, "GET /x?debug=1 HTTP/1.1\r\n\r\n"));
	CHECK(!matches(f, "GET /x HTTP/1.1\r\nX: debug=1\r\n\r\n"));
}

TEST(filter_method_all_any)
{
	const char *f = "method post\n";

	CHECK(matches(f, "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"));
	CHECK(!matches(f, "GET / HTTP/1.1\r\n\r\n"));

	f = "all_of 2\nheader ^x-user: alice$\npath ^/api/\n";
	CHECK(matches(f, "GET /api/a HTTP/1.1\r\nX-User: alice\r\n\r\n"));
	CHECK(!matches(f, "GET /web HTTP/1.1\r\nX-User: alice\r\n\r\n"));
	CHECK(!matches(f, "GET /api/a HTTP/1.1\r\nX-User: bob\r\n\r\n"));

	f = "any_of 2\nheader ^x-user: alice$\npath ^/api/\n";
	CHECK(matches(f, "GET /api/a HTTP/1.1\r\nX-User: bob\r\n\r\n"));
	CHECK(matches(f, "GET /web HTTP/1.1\r\nX-User: alice\r\n\r\n"));
	CHECK(!matches(f, "GET /web HTTP/1.1\r\nX-User: bob\r\n\r\n"));

	/* nesting: (alice or bob) and not a health check */
	f = "all_of 2\nany_of 2\nheader ^x-user: alice$\nheader ^x-user: bob$\n"
	    "path ^(?!/health)\n";
	CHECK(matches(f, "GET /a HTTP/1.1\r\nX-User: bob\r\n\r\n"));
	CHECK(!matches(f, "GET /health HTTP/1.1\r\nX-User: bob\r\n\r\n"));
	CHECK(!matches(f, "GET /a HTTP/1.1\r\nX-User: carol\r\n\r\n"));
}

static void check_parse_error(const char *s, const char *msg)
{
	struct agent_http_filter *f = (void *)1;
	struct err e = {0};

	CHECK_INT(agent_http_filter_parse(s, strlen(s), &f, &e), ==, -EINVAL);
	CHECK(f == NULL);
	CHECK_CONTAINS(e.msg, msg);
}

TEST(filter_parse_errors)
{
	struct agent_http_filter *f = (void *)1;

	CHECK_INT(agent_http_filter_parse("", 0, &f, NULL), ==, 0);
	CHECK(f == NULL);
	check_parse_error("header x", "line 1: no line feed");
	check_parse_error("body x\n", "line 1: unknown filter \"body\"");
	check_parse_error("Header x\n", "unknown filter");
	check_parse_error("header\n", "expected \"<kind> <value>\"");
	check_parse_error("header \n", "expected \"<kind> <value>\"");
	check_parse_error("path ^(unclosed\n", "filter line 1: invalid regular expression");
	check_parse_error("all_of 2\npath a\n", "line 3: missing");
	check_parse_error("all_of 0\n", "expected a count");
	check_parse_error("all_of 65\n", "expected a count");
	check_parse_error("any_of 01\npath a\n", "expected a count");
	check_parse_error("path a\npath b\n", "line 2: text after the filter");
	check_parse_error("method GE T\n", "bad method name");
	check_parse_error("all_of 1\nall_of 1\nall_of 1\nall_of 1\nall_of 1\nall_of 1\n"
			  "all_of 1\nall_of 1\nall_of 1\npath a\n",
			  "nested deeper");
	{
		static const char nul[] = "path a\0b\n";
		struct err e = {0};
		CHECK_INT(agent_http_filter_parse(nul, sizeof(nul) - 1, &f, &e), ==, -EINVAL);
		CHECK_CONTAINS(e.msg, "NUL");
	}
}

/* The launcher's side: from the configuration, through the string, back. */
static struct cfg *load(const char *json)
{
	static const char *const no_env[] = {NULL};
	struct cfg_source src = {.text = json,
				 .text_len = strlen(json),
				 .env = no_env,
				 .no_discover = true,
				 .path = "test.json"};
	struct err e = {0};
	struct cfg *c = NULL;
	int r = cfg_load(&src, &c, &e);

	if (r < 0)
		TAP_FAIL("cfg_load: %d %s", r, e.msg);
	REQUIRE(r == 0 && c);
	return c;
}

static char *format_cfg(const char *http_filter_json, int *ret)
{
	char json[1024];
	struct cfg *c;
	char *s = NULL;

	snprintf(json, sizeof(json),
		 "{\"feature\": {\"network\": {\"incoming\": {\"mode\": \"mirror\", "
		 "\"http_filter\": %s}}}}",
		 http_filter_json);
	c = load(json);
	*ret = agent_http_filter_format(&c->feature.network.incoming.http_filter, &s);
	cfg_free(c);
	return s;
}

TEST(filter_format_from_config)
{
	int r;
	char *s;
	struct agent_http_filter *f;

	s = format_cfg("{\"header_filter\": \"x-user: alice\", \"ports\": [80]}", &r);
	CHECK_INT(r, ==, 0);
	CHECK_STR(s, "header x-user: alice\n");
	free(s);

	s = format_cfg("{\"all_of\": [{\"header\": \"^x-user: alice$\"}, {\"path\": "
		       "\"^(?!/health)\"}, {\"method\": \"GET\"}]}",
		       &r);
	CHECK_INT(r, ==, 0);
	CHECK_STR(s, "all_of 3\nheader ^x-user: alice$\npath ^(?!/health)\nmethod GET\n");
	f = filter(s);
	REQUIRE(f->kind == CFG_HTTP_ALL_OF && f->nsub == 3);
	CHECK_STR(f->sub[1].value, "^(?!/health)");
	CHECK(f->sub[1].re != NULL);
	CHECK(f->sub[2].re == NULL);
	agent_http_filter_free(f);
	free(s);

	s = format_cfg("{\"any_of\": [{\"path\": \"^/a \\\\d+\"}, {\"header\": \"h: v\"}]}", &r);
	CHECK_INT(r, ==, 0);
	CHECK_STR(s, "any_of 2\npath ^/a \\d+\nheader h: v\n");
	free(s);

	s = format_cfg("null", &r);
	CHECK_INT(r, ==, 0);
	CHECK_STR(s, "");
	free(s);

	s = format_cfg("{\"header_filter_jq\": \".\"}", &r);
	CHECK_INT(r, ==, -EOPNOTSUPP);
	CHECK(s == NULL);
	s = format_cfg("{\"body_filter\": {\"body\": \"json\", \"query\": \"$.a\", "
		       "\"matches\": \"x\"}}",
		       &r);
	CHECK_INT(r, ==, -EOPNOTSUPP);
	s = format_cfg("{\"path_filter\": \"a\\nb\"}", &r);
	CHECK_INT(r, ==, -EINVAL);
	CHECK(s == NULL);
}

TAP_MAIN()
