/* Unit tests for proto/handshake.c: HELLO/WELCOME/REFUSE decisions and
 * the token helpers. */
#include "proto/proto.h"
#include "tests/unit/tap.h"

static const uint8_t good[PROTO_TOKEN_SIZE] = {0xde, 0xad, 0xbe, 0xef, [31] = 0x42};

static struct proto_server_params server(void)
{
	return (struct proto_server_params){
		.token = good,
		.caps = PROTO_CAP_FILES | PROTO_CAP_TCP,
		.session_id = 7,
		.window = 512 * 1024,
		.name = "podenv-agent test",
	};
}

/* Encodes m and decodes it again, as the peer would see it. */
static void over_wire(const struct proto_msg *m, struct proto_msg *out, struct buf *b)
{
	struct proto_frame f;

	buf_reset(b);
	REQUIRE(proto_msg_encode(b, m) == 0);
	REQUIRE(proto_header_parse(buf_data(b), PROTO_PAYLOAD_MAX, &f) == 0);
	f.payload = buf_data(b) + PROTO_HEADER_SIZE;
	REQUIRE(proto_msg_decode(&f, out) == 0);
}

TEST(handshake_accepts_right_token)
{
	struct proto_msg hello, seen, reply, back;
	struct proto_server_params p = server();
	struct proto_welcome w;
	struct buf b1 = {0}, b2 = {0};
	struct err e = {0};

	proto_hello_init(&hello, good, PROTO_CAP_ALL, 1 << 20, "podenv");
	over_wire(&hello, &seen, &b1);
	CHECK_INT(proto_handshake_server(&seen, &p, &reply), ==, 0);
	CHECK_UINT(reply.type, ==, PROTO_WELCOME);
	over_wire(&reply, &back, &b2);
	CHECK_INT(proto_handshake_client(&back, &w, &e), ==, 0);
	CHECK_UINT(w.version, ==, PROTO_VERSION);
	CHECK_UINT(w.caps, ==, PROTO_CAP_FILES | PROTO_CAP_TCP);
	CHECK_UINT(w.session_id, ==, 7);
	CHECK_UINT(w.window, ==, 512 * 1024);
	CHECK_STR(w.name, "podenv-agent test");
	CHECK(!err_isset(&e));
	buf_done(&b1);
	buf_done(&b2);
}

TEST(handshake_refuses_wrong_token)
{
	struct proto_msg hello, seen, reply, back;
	struct proto_server_params p = server();
	uint8_t bad[PROTO_TOKEN_SIZE];
	struct proto_welcome w;
	struct buf b1 = {0}, b2 = {0};
	struct err e = {0};

	memcpy(bad, good, sizeof(bad));
	bad[31] ^= 1; /* differs only in the last byte */
	proto_hello_init(&hello, bad, PROTO_CAP_ALL, 1 << 20, "podenv");
	over_wire(&hello, &seen, &b1);
	CHECK_INT(proto_handshake_server(&seen, &p, &reply), ==, -EACCES);
	CHECK_UINT(reply.type, ==, PROTO_REFUSE);
	CHECK_UINT(reply.refuse.reason, ==, PROTO_REFUSE_AUTH);
	over_wire(&reply, &back, &b2);
	CHECK_INT(proto_handshake_client(&back, &w, &e), ==, -EACCES);
	CHECK_CONTAINS(e.msg, "wrong token");
	buf_done(&b1);
	buf_done(&b2);
}

TEST(handshake_refuses_wrong_version)
{
	struct proto_msg hello, reply;
	struct proto_server_params p = server();
	struct proto_welcome w;
	struct err e = {0};

	proto_hello_init(&hello, good, PROTO_CAP_ALL, 1 << 20, "podenv");
	hello.hello.version_min = hello.hello.version_max = PROTO_VERSION + 1;
	CHECK_INT(proto_handshake_server(&hello, &p, &reply), ==, -EPROTONOSUPPORT);
	CHECK_UINT(reply.type, ==, PROTO_REFUSE);
	CHECK_UINT(reply.refuse.reason, ==, PROTO_REFUSE_VERSION);
	CHECK_UINT(reply.refuse.version_max, ==, PROTO_VERSION);
	CHECK_INT(proto_handshake_client(&reply, &w, &e), ==, -EPROTONOSUPPORT);
	CHECK_CONTAINS(e.msg, "protocol versions");

	/* Version is checked before the token: a wrong token from a client of
	 * another version is told about the version. */
	hello.hello.token[0] ^= 0xff;
	CHECK_INT(proto_handshake_server(&hello, &p, &reply), ==, -EPROTONOSUPPORT);

	/* A range that reaches down to ours is accepted at our version. */
	proto_hello_init(&hello, good, PROTO_CAP_ALL, 1 << 20, "podenv");
	hello.hello.version_max = PROTO_VERSION + 5;
	CHECK_INT(proto_handshake_server(&hello, &p, &reply), ==, 0);
	CHECK_UINT(reply.welcome.version, ==, PROTO_VERSION);

	/* The client refuses a WELCOME with a version it does not speak. */
	reply.welcome.version = PROTO_VERSION + 1;
	CHECK_INT(proto_handshake_client(&reply, &w, &e), ==, -EPROTONOSUPPORT);
}

TEST(handshake_refuses_non_hello)
{
	struct proto_msg m = {.type = PROTO_PING}, reply;
	struct proto_server_params p = server();
	struct proto_welcome w;
	struct err e = {0};

	CHECK_INT(proto_handshake_server(&m, &p, &reply), ==, -EPROTO);
	CHECK_UINT(reply.refuse.reason, ==, PROTO_REFUSE_MAGIC);
	CHECK_INT(proto_handshake_server(NULL, &p, &reply), ==, -EPROTO);
	CHECK_UINT(reply.type, ==, PROTO_REFUSE);
	CHECK_INT(proto_handshake_client(&m, &w, &e), ==, -EPROTO);
	reply.refuse.reason = PROTO_REFUSE_BUSY;
	reply.refuse.message = "too many sessions";
	CHECK_INT(proto_handshake_client(&reply, &w, &e), ==, -ECONNREFUSED);
	CHECK_CONTAINS(e.msg, "too many sessions");
}

TEST(handshake_token_equal_constant_time_compare)
{
	uint8_t a[PROTO_TOKEN_SIZE], b[PROTO_TOKEN_SIZE];

	memcpy(a, good, sizeof(a));
	memcpy(b, good, sizeof(b));
	CHECK(proto_token_equal(a, b));
	/* A difference in any single bit of any byte is found. */
	for (size_t i = 0; i < PROTO_TOKEN_SIZE; i++)
		for (int bit = 0; bit < 8; bit++) {
			b[i] ^= (uint8_t)(1 << bit);
			CHECK(!proto_token_equal(a, b));
			b[i] ^= (uint8_t)(1 << bit);
		}
	CHECK(proto_token_equal(a, b));
	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	CHECK(proto_token_equal(a, b));
}

TEST(handshake_token_parse_and_format)
{
	uint8_t t[PROTO_TOKEN_SIZE];
	char hex[2 * PROTO_TOKEN_SIZE + 1];

	proto_token_format(good, hex);
	CHECK_STR(hex, "deadbeef00000000000000000000000000000000000000000000000000000042");
	CHECK_INT(proto_token_parse(hex, t), ==, 0);
	CHECK(proto_token_equal(t, good));
	CHECK_INT(
		proto_token_parse(
			"  DEADBEEF00000000000000000000000000000000000000000000000000000042\n", t),
		==, 0);
	CHECK(proto_token_equal(t, good));
	CHECK_INT(proto_token_parse("deadbeef", t), ==, -EINVAL);
	CHECK_INT(proto_token_parse("", t), ==, -EINVAL);
	CHECK_INT(proto_token_parse(
			  "xeadbeef00000000000000000000000000000000000000000000000000000042", t),
		  ==, -EINVAL);
	CHECK_INT(proto_token_parse(
			  "deadbeef000000000000000000000000000000000000000000000000000000420", t),
		  ==, -EINVAL);
}

TAP_MAIN()
