/* Unit tests for proto/msg.c: every message type round-trips, decoding
 * is strict, and direction rules hold. */
#include "proto/proto.h"
#include "tests/unit/tap.h"

static const uint16_t request_types[] = {
	PROTO_STAT,	   PROTO_FSTAT,	    PROTO_OPEN,	       PROTO_OPEN_READ,	  PROTO_READFILE,
	PROTO_READ,	   PROTO_WRITE,	    PROTO_TRUNCATE,    PROTO_FTRUNCATE,	  PROTO_RELEASE,
	PROTO_OPENDIR,	   PROTO_READDIR,   PROTO_READLINK,    PROTO_MKDIR,	  PROTO_MKNOD,
	PROTO_RMDIR,	   PROTO_UNLINK,    PROTO_RENAME,      PROTO_SYMLINK,	  PROTO_LINK,
	PROTO_CHMOD,	   PROTO_CHOWN,	    PROTO_UTIMENS,     PROTO_STATFS,	  PROTO_FSYNC,
	PROTO_GETXATTR,	   PROTO_LISTXATTR, PROTO_SETXATTR,    PROTO_REMOVEXATTR, PROTO_ACCESS,
	PROTO_GETENV,	   PROTO_HOSTNAME,  PROTO_RESOLVCONF,  PROTO_DNS_RESOLVE, PROTO_DNS_QUERY,
	PROTO_STREAM_OPEN, PROTO_SUBSCRIBE, PROTO_UNSUBSCRIBE, PROTO_STREAM_OPEN_UNIX,
};

/* Encodes m, decodes it back into out; the encoding stays in *b (out
 * borrows from it), and re-encoding out must give the same bytes. */
static void roundtrip(struct buf *b, const struct proto_msg *m, struct proto_msg *out)
{
	struct proto_frame f;
	struct buf again = {0};
	int r;

	buf_reset(b);
	r = proto_msg_encode(b, m);
	if (r < 0)
		TAP_FAIL("encode %s: %d", proto_type_name(m->type), r);
	REQUIRE(r == 0);
	REQUIRE(proto_header_parse(buf_data(b), PROTO_PAYLOAD_MAX, &f) == 0);
	REQUIRE(f.len + PROTO_HEADER_SIZE == buf_len(b));
	f.payload = buf_data(b) + PROTO_HEADER_SIZE;
	r = proto_msg_decode(&f, out);
	if (r < 0)
		TAP_FAIL("decode %s: %d", proto_type_name(m->type), r);
	REQUIRE(r == 0);
	CHECK_UINT(out->type, ==, m->type);
	CHECK_UINT(out->flags, ==, m->flags);
	CHECK_UINT(out->id, ==, m->id);
	REQUIRE(proto_msg_encode(&again, out) == 0);
	CHECK_UINT(buf_len(&again), ==, buf_len(b));
	CHECK(memcmp(buf_data(&again), buf_data(b), buf_len(b)) == 0);
	buf_done(&again);
}

static struct proto_attr sample_attr(void)
{
	return (struct proto_attr){
		.ino = 42,
		.mode = 0100600,
		.nlink = 1,
		.uid = 1000,
		.gid = 100,
		.rdev = 0,
		.size = 12345,
		.blocks = 32,
		.blksize = 4096,
		.atime = {1, 2},
		.mtime = {3, 4},
		.ctime = {5, 6},
	};
}

static struct proto_req full_req(uint16_t type)
{
	struct proto_req q = {
		.path = "/etc/hosts",
		.path2 = "/etc/hosts.new",
		.name = "user.x",
		.filter = "header=^x-debug:",
		.fh = 77,
		.offset = 4096,
		.size = 100,
		.rdev = 0x0801,
		.flags = 0x8000,
		.mode = 0644,
		.count = 65536,
		.uid = 1,
		.gid = 2,
		.atime = {10, PROTO_UTIME_NOW},
		.mtime = {11, 12},
		.data = {(const uint8_t *)"payload", 7},
		.addr = {.family = PROTO_AF_INET, .bytes = {127, 0, 0, 1}},
		.port = 8080,
		.kind = 1,
	};

	if (type == PROTO_DNS_RESOLVE)
		q.kind = PROTO_AF_INET6;
	return q;
}

TEST(msg_every_request_roundtrips)
{
	struct buf b = {0};

	for (size_t i = 0; i < ARRAY_SIZE(request_types); i++) {
		struct proto_msg m = {.type = request_types[i], .id = i + 1}, out;

		m.req = full_req(m.type);
		roundtrip(&b, &m, &out);
		CHECK(proto_type_is_request(m.type) || m.type == PROTO_STREAM_OPEN ||
		      m.type == PROTO_STREAM_OPEN_UNIX);
		CHECK_INT(proto_msg_check(&out, false), ==, 0);
		CHECK_INT(proto_msg_check(&out, true), ==, -EPROTO);
	}
	buf_done(&b);
}

TEST(msg_every_response_roundtrips)
{
	struct buf b = {0}, items = {0};
	struct proto_dirent e = {.cookie = 9, .flags = PROTO_DIRENT_ATTR, .name = "file"};

	e.attr = sample_attr();
	proto_dirent_put(&items, &e);
	for (size_t i = 0; i < ARRAY_SIZE(request_types); i++) {
		uint16_t type = request_types[i];
		struct proto_msg m = {.type = type, .flags = PROTO_F_RESPONSE, .id = 1000 + i};
		struct proto_msg out;

		m.rep.attr = sample_attr();
		m.rep.statfs = (struct proto_statfs){1, 2, 3, 4, 5, 4096, 4096, 255};
		m.rep.fh = 5;
		m.rep.count = 3;
		m.rep.eof = true;
		m.rep.str = "text";
		m.rep.data = (struct proto_bytes){(const uint8_t *)"abc", 3};
		m.rep.addr = (struct proto_addr){.family = PROTO_AF_INET6, .bytes = {[15] = 1}};
		m.rep.port = 40000;
		/* Each list-carrying type gets a list of its own item kind. */
		struct buf l = {0};
		if (type == PROTO_READDIR)
			proto_dirent_put(&l, &e);
		else if (type == PROTO_DNS_RESOLVE)
			proto_dnsaddr_put(&l, &(struct proto_dnsaddr){m.rep.addr, 30});
		else
			proto_put_str(&l, "HOME=/root");
		m.rep.list = (struct proto_list){1, buf_data(&l), (uint32_t)buf_len(&l)};
		roundtrip(&b, &m, &out);
		CHECK_INT(out.status, ==, 0);
		CHECK_INT(proto_msg_check(&out, true), ==, 0);
		CHECK_INT(proto_msg_check(&out, false), ==, -EPROTO);

		/* And the error form: status only. */
		proto_msg_error(&m, &m, -ENOENT);
		roundtrip(&b, &m, &out);
		CHECK_INT(out.status, ==, ENOENT);
		CHECK_UINT(buf_len(&b), ==, PROTO_HEADER_SIZE + 4);
		buf_done(&l);
	}
	buf_done(&b);
	buf_done(&items);
}

TEST(msg_request_fields_survive)
{
	struct buf b = {0};
	struct proto_msg m = {.type = PROTO_RENAME, .id = 3}, out;

	m.req = full_req(PROTO_RENAME);
	roundtrip(&b, &m, &out);
	CHECK_STR(out.req.path, "/etc/hosts");
	CHECK_STR(out.req.path2, "/etc/hosts.new");
	CHECK_UINT(out.req.flags, ==, 0x8000);
	/* Fields a type does not use are not sent. */
	CHECK_STR(out.req.name, "");
	CHECK_UINT(out.req.fh, ==, 0);

	m = (struct proto_msg){.type = PROTO_WRITE, .id = 4};
	m.req = full_req(PROTO_WRITE);
	m.req.offset = PROTO_OFF_CUR;
	roundtrip(&b, &m, &out);
	CHECK_UINT(out.req.fh, ==, 77);
	CHECK_UINT(out.req.offset, ==, PROTO_OFF_CUR);
	CHECK_UINT(out.req.data.len, ==, 7);
	CHECK(memcmp(out.req.data.data, "payload", 7) == 0);

	m = (struct proto_msg){.type = PROTO_UTIMENS, .id = 5};
	m.req = full_req(PROTO_UTIMENS);
	roundtrip(&b, &m, &out);
	CHECK_UINT(out.req.atime.nsec, ==, PROTO_UTIME_NOW);
	CHECK_INT(out.req.mtime.sec, ==, 11);

	m = (struct proto_msg){.type = PROTO_STREAM_OPEN, .id = 6};
	m.req = full_req(PROTO_STREAM_OPEN);
	roundtrip(&b, &m, &out);
	CHECK_UINT(out.req.kind, ==, PROTO_STREAM_TCP);
	CHECK_UINT(out.req.addr.family, ==, PROTO_AF_INET);
	CHECK_UINT(out.req.addr.bytes[0], ==, 127);
	CHECK_UINT(out.req.port, ==, 8080);

	m = (struct proto_msg){.type = PROTO_SUBSCRIBE, .id = 7};
	m.req = full_req(PROTO_SUBSCRIBE);
	m.req.kind = PROTO_STEAL;
	roundtrip(&b, &m, &out);
	CHECK_STR(out.req.filter, "header=^x-debug:");
	CHECK_UINT(out.req.kind, ==, PROTO_STEAL);
	buf_done(&b);
}

TEST(msg_readdir_list_iterates)
{
	struct buf b = {0}, items = {0};
	struct proto_msg m = {.type = PROTO_READDIR, .flags = PROTO_F_RESPONSE, .id = 1}, out;
	struct proto_dirent e = {0};
	struct proto_iter it;
	static const char *names[] = {".", "..", "a", "long-name-for-a-file"};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		e.cookie = i + 1;
		e.name = names[i];
		e.attr.ino = 100 + i;
		e.attr.mode = 040755;
		e.flags = i == 3 ? 0 : PROTO_DIRENT_ATTR;
		size_t before = buf_len(&items);
		proto_dirent_put(&items, &e);
		CHECK_UINT(buf_len(&items) - before, ==, proto_dirent_size(strlen(names[i])));
	}
	m.rep.eof = true;
	m.rep.list =
		(struct proto_list){ARRAY_SIZE(names), buf_data(&items), (uint32_t)buf_len(&items)};
	roundtrip(&b, &m, &out);
	CHECK(out.rep.eof);
	CHECK_UINT(out.rep.list.count, ==, ARRAY_SIZE(names));
	proto_iter_init(&it, &out.rep.list);
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		REQUIRE(proto_iter_dirent(&it, &e) == 1);
		CHECK_STR(e.name, names[i]);
		CHECK_UINT(e.cookie, ==, i + 1);
		CHECK_UINT(e.attr.ino, ==, 100 + i);
		CHECK_UINT(e.flags, ==, i == 3 ? 0 : PROTO_DIRENT_ATTR);
	}
	CHECK_INT(proto_iter_dirent(&it, &e), ==, 0);
	buf_done(&b);
	buf_done(&items);
}

TEST(msg_env_and_dns_lists_iterate)
{
	struct buf b = {0}, items = {0};
	struct proto_msg m = {.type = PROTO_GETENV, .flags = PROTO_F_RESPONSE, .id = 1}, out;
	struct proto_iter it;
	const char *s;
	struct proto_dnsaddr a;

	proto_put_str(&items, "A=1");
	proto_put_str(&items, "PATH=/bin:/usr/bin");
	m.rep.list = (struct proto_list){2, buf_data(&items), (uint32_t)buf_len(&items)};
	roundtrip(&b, &m, &out);
	proto_iter_init(&it, &out.rep.list);
	CHECK_INT(proto_iter_str(&it, &s), ==, 1);
	CHECK_STR(s, "A=1");
	CHECK_INT(proto_iter_str(&it, &s), ==, 1);
	CHECK_STR(s, "PATH=/bin:/usr/bin");
	CHECK_INT(proto_iter_str(&it, &s), ==, 0);

	buf_reset(&items);
	proto_dnsaddr_put(&items, &(struct proto_dnsaddr){{PROTO_AF_INET, {10, 96, 0, 1}}, 5});
	proto_dnsaddr_put(&items, &(struct proto_dnsaddr){{PROTO_AF_INET6, {0xfd}}, 7});
	m = (struct proto_msg){.type = PROTO_DNS_RESOLVE, .flags = PROTO_F_RESPONSE, .id = 2};
	m.rep.str = "api.default.svc.cluster.local";
	m.rep.list = (struct proto_list){2, buf_data(&items), (uint32_t)buf_len(&items)};
	roundtrip(&b, &m, &out);
	CHECK_STR(out.rep.str, "api.default.svc.cluster.local");
	proto_iter_init(&it, &out.rep.list);
	CHECK_INT(proto_iter_dnsaddr(&it, &a), ==, 1);
	CHECK_UINT(a.addr.family, ==, PROTO_AF_INET);
	CHECK_UINT(a.addr.bytes[1], ==, 96);
	CHECK_UINT(a.ttl, ==, 5);
	CHECK_INT(proto_iter_dnsaddr(&it, &a), ==, 1);
	CHECK_UINT(a.addr.family, ==, PROTO_AF_INET6);
	CHECK_UINT(a.ttl, ==, 7);
	CHECK_INT(proto_iter_dnsaddr(&it, &a), ==, 0);
	buf_done(&b);
	buf_done(&items);
}

TEST(msg_oneway_messages_roundtrip)
{
	struct buf b = {0};
	struct proto_msg m, out;
	static const uint8_t token[PROTO_TOKEN_SIZE] = {1, 2, 3};

	proto_hello_init(&m, token, PROTO_CAP_ALL, 1 << 20, "podenv test");
	roundtrip(&b, &m, &out);
	CHECK_UINT(out.hello.version_min, ==, PROTO_VERSION_MIN);
	CHECK_UINT(out.hello.version_max, ==, PROTO_VERSION);
	CHECK_UINT(out.hello.caps, ==, PROTO_CAP_ALL);
	CHECK_UINT(out.hello.window, ==, 1 << 20);
	CHECK(memcmp(out.hello.token, token, PROTO_TOKEN_SIZE) == 0);
	CHECK_STR(out.hello.name, "podenv test");
	CHECK(memcmp(buf_data(&b) + PROTO_HEADER_SIZE, PROTO_MAGIC, PROTO_MAGIC_SIZE) == 0);

	m = (struct proto_msg){.type = PROTO_WELCOME};
	m.welcome = (struct proto_welcome){1, PROTO_CAP_FILES, 99, 4096, "agent"};
	roundtrip(&b, &m, &out);
	CHECK_UINT(out.welcome.session_id, ==, 99);
	CHECK_STR(out.welcome.name, "agent");

	m = (struct proto_msg){.type = PROTO_REFUSE};
	m.refuse = (struct proto_refuse){PROTO_REFUSE_AUTH, 1, 1, "authentication failed"};
	roundtrip(&b, &m, &out);
	CHECK_UINT(out.refuse.reason, ==, PROTO_REFUSE_AUTH);
	CHECK_STR(out.refuse.message, "authentication failed");

	m = (struct proto_msg){.type = PROTO_PING, .counter = 5};
	roundtrip(&b, &m, &out);
	CHECK_UINT(out.counter, ==, 5);
	m.type = PROTO_PONG;
	roundtrip(&b, &m, &out);
	CHECK_UINT(out.counter, ==, 5);

	m = (struct proto_msg){.type = PROTO_GOODBYE};
	m.goodbye = (struct proto_goodbye){PROTO_BYE_PROTOCOL, "malformed frame"};
	roundtrip(&b, &m, &out);
	CHECK_UINT(out.goodbye.code, ==, PROTO_BYE_PROTOCOL);
	CHECK_STR(out.goodbye.reason, "malformed frame");

	m = (struct proto_msg){.type = PROTO_STREAM_DATA, .id = 3};
	m.data = (struct proto_bytes){(const uint8_t *)"GET / HTTP/1.1\r\n", 16};
	roundtrip(&b, &m, &out);
	CHECK_UINT(out.data.len, ==, 16);
	CHECK(memcmp(out.data.data, "GET / HTTP/1.1\r\n", 16) == 0);
	CHECK_UINT(buf_len(&b), ==, PROTO_HEADER_SIZE + 16); /* no length prefix */

	m = (struct proto_msg){.type = PROTO_STREAM_WINDOW, .id = 3, .window = 65536};
	roundtrip(&b, &m, &out);
	CHECK_UINT(out.window, ==, 65536);

	m = (struct proto_msg){.type = PROTO_STREAM_SHUTDOWN, .id = PROTO_ID_AGENT | 1};
	roundtrip(&b, &m, &out);
	CHECK_UINT(buf_len(&b), ==, PROTO_HEADER_SIZE);

	m = (struct proto_msg){.type = PROTO_STREAM_CLOSE, .id = 3, .error = ECONNRESET};
	roundtrip(&b, &m, &out);
	CHECK_INT(out.error, ==, ECONNRESET);

	m = (struct proto_msg){.type = PROTO_INCOMING, .id = PROTO_ID_AGENT | 7};
	m.incoming = (struct proto_incoming){
		.port = 80,
		.mode = PROTO_MIRROR,
		.remote = {PROTO_AF_INET, {10, 1, 0, 9}},
		.remote_port = 51000,
		.local = {PROTO_AF_INET, {10, 1, 0, 2}},
		.local_port = 80,
	};
	roundtrip(&b, &m, &out);
	CHECK_UINT(out.incoming.port, ==, 80);
	CHECK_UINT(out.incoming.mode, ==, PROTO_MIRROR);
	CHECK_UINT(out.incoming.remote.bytes[3], ==, 9);
	CHECK_UINT(out.incoming.remote_port, ==, 51000);
	CHECK_UINT(out.incoming.local_port, ==, 80);
	CHECK_INT(proto_msg_check(&out, true), ==, 0);
	CHECK_INT(proto_msg_check(&out, false), ==, -EPROTO);
	buf_done(&b);
}

/* Decoding a payload given as raw bytes. */
static int decode_raw(uint16_t type, uint16_t flags, uint64_t id, const void *p, size_t n)
{
	struct proto_frame f = {
		.type = type, .flags = flags, .id = id, .len = (uint32_t)n, .payload = p};
	struct proto_msg m;

	return proto_msg_decode(&f, &m);
}

TEST(msg_decode_rejects_malformed_payloads)
{
	/* Trailing byte after a complete PING. */
	CHECK_INT(decode_raw(PROTO_PING, 0, 0, "\1\0\0\0\0\0\0\0X", 9), ==, -EPROTO);
	/* Truncated PING. */
	CHECK_INT(decode_raw(PROTO_PING, 0, 0, "\1\0\0", 3), ==, -EPROTO);
	/* Control message with an id, stream message without. */
	CHECK_INT(decode_raw(PROTO_PING, 0, 5, "\1\0\0\0\0\0\0\0", 8), ==, -EPROTO);
	CHECK_INT(decode_raw(PROTO_STREAM_SHUTDOWN, 0, 0, "", 0), ==, -EPROTO);
	/* RESPONSE flag on a one-way message. */
	CHECK_INT(decode_raw(PROTO_STREAM_SHUTDOWN, PROTO_F_RESPONSE, 1, "", 0), ==, -EPROTO);
	/* Request id 0. */
	CHECK_INT(decode_raw(PROTO_READLINK, 0, 0, "\0\0\0\0\0", 5), ==, -EPROTO);
	CHECK_INT(decode_raw(PROTO_READLINK, 0, 1, "\0\0\0\0\0", 5), ==, 0);
	/* A STAT whose path length runs past the payload. */
	CHECK_INT(decode_raw(PROTO_STAT, 0, 1, "\xff\0\0\0/\0\0\0\0\0", 10), ==, -EPROTO);
	/* Status out of the errno range, and a body after an error status. */
	CHECK_INT(decode_raw(PROTO_RMDIR, PROTO_F_RESPONSE, 1, "\0\x10\0\0", 4), ==, -EPROTO);
	CHECK_INT(decode_raw(PROTO_RMDIR, PROTO_F_RESPONSE, 1, "\2\0\0\0", 4), ==, 0);
	CHECK_INT(decode_raw(PROTO_RMDIR, PROTO_F_RESPONSE, 1, "\2\0\0\0\0", 5), ==, -EPROTO);
	/* eof must be 0 or 1 (READDIR rep: eof, list count 0). */
	CHECK_INT(decode_raw(PROTO_READDIR, PROTO_F_RESPONSE, 1, "\0\0\0\0\1\0\0\0\0", 9), ==, 0);
	CHECK_INT(decode_raw(PROTO_READDIR, PROTO_F_RESPONSE, 1, "\0\0\0\0\2\0\0\0\0", 9), ==,
		  -EPROTO);
	/* A list count far larger than its bytes. */
	CHECK_INT(decode_raw(PROTO_GETENV, PROTO_F_RESPONSE, 1, "\0\0\0\0\xff\xff\xff\xff", 8), ==,
		  -EPROTO);
	/* STREAM_WINDOW of 0 and above the maximum; STREAM_CLOSE errno out of range. */
	CHECK_INT(decode_raw(PROTO_STREAM_WINDOW, 0, 1, "\0\0\0\0", 4), ==, -EPROTO);
	CHECK_INT(decode_raw(PROTO_STREAM_WINDOW, 0, 1, "\0\0\0\x80", 4), ==, -EPROTO);
	CHECK_INT(decode_raw(PROTO_STREAM_CLOSE, 0, 1, "\0\x10\0\0", 4), ==, -EPROTO);
	/* STREAM_OPEN: unknown kind, no address, and an agent-allocated id. */
	CHECK_INT(decode_raw(PROTO_STREAM_OPEN, 0, 1, "\3\4\1\2\3\4\x50\0", 8), ==, -EPROTO);
	CHECK_INT(decode_raw(PROTO_STREAM_OPEN, 0, 1, "\1\0\x50\0", 4), ==, -EPROTO);
	CHECK_INT(decode_raw(PROTO_STREAM_OPEN, 0, 1, "\1\4\1\2\3\4\x50\0", 8), ==, 0);
	CHECK_INT(decode_raw(PROTO_STREAM_OPEN, 0, PROTO_ID_AGENT | 1, "\1\4\1\2\3\4\x50\0", 8), ==,
		  -EPROTO);
	/* STREAM_OPEN_UNIX: a relative path, a bare "@", an agent id. */
	CHECK_INT(decode_raw(PROTO_STREAM_OPEN_UNIX, 0, 1, "\1\0\0\0a\0", 6), ==, -EPROTO);
	CHECK_INT(decode_raw(PROTO_STREAM_OPEN_UNIX, 0, 1, "\1\0\0\0@\0", 6), ==, -EPROTO);
	CHECK_INT(decode_raw(PROTO_STREAM_OPEN_UNIX, 0, 1, "\2\0\0\0@a\0", 7), ==, 0);
	CHECK_INT(decode_raw(PROTO_STREAM_OPEN_UNIX, 0, 1, "\2\0\0\0/s\0", 7), ==, 0);
	CHECK_INT(decode_raw(PROTO_STREAM_OPEN_UNIX, 0, PROTO_ID_AGENT | 1, "\2\0\0\0/s\0", 7),
		  ==, -EPROTO);
	/* INCOMING with a client id. */
	CHECK_INT(decode_raw(PROTO_INCOMING, 0, 1, "\x50\0\1\0\0\0\0\0\0", 9), ==, -EPROTO);
	CHECK_INT(decode_raw(PROTO_INCOMING, 0, PROTO_ID_AGENT | 1, "\x50\0\1\0\0\0\0\0\0", 9), ==,
		  0);
	/* HELLO with a wrong magic. */
	CHECK_INT(decode_raw(PROTO_HELLO, 0, 0, "GET / HTTP/1.1\r\n", 16), ==, -EPROTO);
	/* An unknown type is not malformed, just unknown. */
	CHECK_INT(decode_raw(0x01ff, 0, 1, "", 0), ==, -EOPNOTSUPP);
	CHECK(proto_type_is_request(0x01ff));
	CHECK(!proto_type_is_request(0x03ff));
}

TEST(msg_stream_data_limit)
{
	struct buf b = {0};
	static uint8_t big[PROTO_CHUNK_MAX + 1];
	struct proto_msg m = {.type = PROTO_STREAM_DATA, .id = 1};

	m.data = (struct proto_bytes){big, PROTO_CHUNK_MAX};
	CHECK_INT(proto_msg_encode(&b, &m), ==, 0);
	CHECK_INT(decode_raw(PROTO_STREAM_DATA, 0, 1, big, PROTO_CHUNK_MAX), ==, 0);
	buf_reset(&b);
	m.data.len = PROTO_CHUNK_MAX + 1;
	CHECK_INT(proto_msg_encode(&b, &m), ==, -EMSGSIZE);
	CHECK_UINT(buf_len(&b), ==, 0);
	CHECK_INT(decode_raw(PROTO_STREAM_DATA, 0, 1, big, PROTO_CHUNK_MAX + 1), ==, -EPROTO);
	buf_done(&b);
}

TEST(msg_encode_rejects_invalid_and_leaves_buffer)
{
	struct buf b = {0};
	struct proto_msg m = {.type = 0x7777, .id = 1};

	proto_put_u8(&b, 0xee);
	CHECK_INT(proto_msg_encode(&b, &m), ==, -EINVAL);
	m = (struct proto_msg){.type = PROTO_STAT}; /* id 0 */
	CHECK_INT(proto_msg_encode(&b, &m), ==, -EINVAL);
	m = (struct proto_msg){
		.type = PROTO_STAT, .id = 1, .flags = PROTO_F_RESPONSE, .status = 5000};
	CHECK_INT(proto_msg_encode(&b, &m), ==, -EINVAL);
	m = (struct proto_msg){.type = PROTO_STREAM_OPEN, .id = 1};
	m.req.kind = PROTO_STREAM_TCP; /* no address */
	CHECK_INT(proto_msg_encode(&b, &m), ==, -EINVAL);
	m = (struct proto_msg){.type = PROTO_STREAM_WINDOW, .id = 1};
	CHECK_INT(proto_msg_encode(&b, &m), ==, -EINVAL);
	/* A WRITE larger than a frame. */
	static uint8_t big[PROTO_PAYLOAD_MAX];
	m = (struct proto_msg){.type = PROTO_WRITE, .id = 1};
	m.req.data = (struct proto_bytes){big, sizeof(big)};
	CHECK_INT(proto_msg_encode(&b, &m), ==, -EMSGSIZE);
	m.req.data.len = PROTO_IO_MAX;
	CHECK_INT(proto_msg_encode(&b, &m), ==, 0);
	CHECK_UINT(buf_len(&b), ==, 1 + PROTO_HEADER_SIZE + 8 + 8 + 4 + PROTO_IO_MAX);
	CHECK_UINT(buf_data(&b)[0], ==, 0xee);
	buf_done(&b);
}

/* Every proper prefix of a valid payload is rejected, and decoding it
 * reads nothing past its end (the prefix is copied to an exact-size heap
 * block, so AddressSanitizer sees any over-read). */
static void check_prefixes(const struct proto_msg *m)
{
	struct buf b = {0};
	struct proto_frame f;

	REQUIRE(proto_msg_encode(&b, m) == 0);
	REQUIRE(proto_header_parse(buf_data(&b), PROTO_PAYLOAD_MAX, &f) == 0);
	for (uint32_t n = 0; n < f.len; n++) {
		uint8_t *p = xmalloc(n ? n : 1);
		struct proto_msg out;
		int r;

		memcpy(p, buf_data(&b) + PROTO_HEADER_SIZE, n);
		f.payload = p;
		f.len = n;
		r = proto_msg_decode(&f, &out);
		if (r != -EPROTO)
			TAP_FAIL("%s: prefix of %u bytes gave %d", proto_type_name(m->type), n, r);
		free(p);
	}
	buf_done(&b);
}

TEST(msg_truncated_payloads_rejected)
{
	struct buf items = {0};
	struct proto_dirent e = {.cookie = 1, .flags = PROTO_DIRENT_ATTR, .name = "x"};

	proto_dirent_put(&items, &e);
	for (size_t i = 0; i < ARRAY_SIZE(request_types); i++) {
		struct proto_msg m = {.type = request_types[i], .id = 1};

		m.req = full_req(m.type);
		check_prefixes(&m);
		m = (struct proto_msg){
			.type = request_types[i], .id = 1, .flags = PROTO_F_RESPONSE};
		m.rep.str = "s";
		m.rep.data = (struct proto_bytes){(const uint8_t *)"abc", 3};
		m.rep.addr.family = PROTO_AF_INET;
		if (m.type == PROTO_READDIR)
			m.rep.list =
				(struct proto_list){1, buf_data(&items), (uint32_t)buf_len(&items)};
		check_prefixes(&m);
	}
	struct proto_msg m;
	static const uint8_t token[PROTO_TOKEN_SIZE];
	proto_hello_init(&m, token, 0, 1, "x");
	check_prefixes(&m);
	m = (struct proto_msg){.type = PROTO_GOODBYE, .goodbye = {1, "bye"}};
	check_prefixes(&m);
	m = (struct proto_msg){.type = PROTO_INCOMING, .id = PROTO_ID_AGENT | 1};
	m.incoming = (struct proto_incoming){
		.port = 1, .mode = PROTO_STEAL, .remote = {PROTO_AF_INET6, {1}}};
	check_prefixes(&m);
	buf_done(&items);
}

TEST(msg_type_names)
{
	CHECK_STR(proto_type_name(PROTO_READDIR), "READDIR");
	CHECK_STR(proto_type_name(PROTO_STREAM_DATA), "STREAM_DATA");
	CHECK(proto_type_name(0x0999) == NULL);
}

TAP_MAIN()
