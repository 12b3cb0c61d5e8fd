/* Unit tests for proto/frame.c: the header, frame building and the
 * incremental decoder. */
#include "proto/proto.h"
#include "tests/unit/tap.h"

static void put_ping(struct buf *b, uint64_t counter)
{
	struct proto_msg m = {.type = PROTO_PING, .counter = counter};

	REQUIRE(proto_msg_encode(b, &m) == 0);
}

TEST(frame_header_layout)
{
	uint8_t h[PROTO_HEADER_SIZE];
	static const uint8_t want[] = {0x10, 0x00, 0x00, 0x00, 0x06, 0x01, 0x01, 0x00,
				       0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01};
	struct proto_frame f;

	proto_header_format(h, PROTO_READ, PROTO_F_RESPONSE, 0x0102030405060708ull, 16);
	CHECK(memcmp(h, want, sizeof(want)) == 0);
	CHECK_INT(proto_header_parse(h, PROTO_PAYLOAD_MAX, &f), ==, 0);
	CHECK_UINT(f.type, ==, PROTO_READ);
	CHECK_UINT(f.flags, ==, PROTO_F_RESPONSE);
	CHECK_UINT(f.id, ==, 0x0102030405060708ull);
	CHECK_UINT(f.len, ==, 16);
}

TEST(frame_header_rejects_reserved_flags_and_oversize)
{
	uint8_t h[PROTO_HEADER_SIZE];
	struct proto_frame f;

	proto_header_format(h, PROTO_PING, 0x8000, 0, 8);
	CHECK_INT(proto_header_parse(h, PROTO_PAYLOAD_MAX, &f), ==, -EPROTO);
	proto_header_format(h, PROTO_PING, 0, 0, PROTO_PAYLOAD_MAX + 1);
	CHECK_INT(proto_header_parse(h, PROTO_PAYLOAD_MAX, &f), ==, -EMSGSIZE);
	proto_header_format(h, PROTO_PING, 0, 0, PROTO_PAYLOAD_MAX);
	CHECK_INT(proto_header_parse(h, PROTO_PAYLOAD_MAX, &f), ==, 0);
	proto_header_format(h, PROTO_PING, 0, 0, 0xffffffffu);
	CHECK_INT(proto_header_parse(h, PROTO_PAYLOAD_MAX, &f), ==, -EMSGSIZE);
}

TEST(frame_decoder_one_byte_at_a_time)
{
	struct proto_decoder *d;
	struct proto_frame f;
	struct buf b = {0};
	int frames = 0;

	for (uint64_t i = 1; i <= 3; i++)
		put_ping(&b, i);
	CHECK_OK(proto_decoder_new(PROTO_PAYLOAD_MAX, &d));
	for (size_t i = 0; i < buf_len(&b); i++) {
		int r;

		proto_decoder_feed(d, buf_data(&b) + i, 1);
		while ((r = proto_decoder_next(d, &f)) > 0) {
			struct proto_msg m;

			frames++;
			/* A frame completes exactly with its last byte. */
			CHECK_UINT(i + 1, ==, (size_t)frames * (PROTO_HEADER_SIZE + 8));
			CHECK_INT(proto_msg_decode(&f, &m), ==, 0);
			CHECK_UINT(m.counter, ==, (uint64_t)frames);
		}
		CHECK_INT(r, ==, 0);
	}
	CHECK_INT(frames, ==, 3);
	CHECK_UINT(proto_decoder_pending(d), ==, 0);
	proto_decoder_free(d);
	buf_done(&b);
}

TEST(frame_decoder_many_frames_in_one_chunk)
{
	struct proto_decoder *d;
	struct proto_frame f;
	struct buf b = {0};
	int frames = 0, r;

	for (uint64_t i = 0; i < 100; i++)
		put_ping(&b, i);
	put_ping(&b, 100);
	CHECK_OK(proto_decoder_new(PROTO_PAYLOAD_MAX, &d));
	/* All but the last frame's final byte. */
	memcpy(proto_decoder_reserve(d, buf_len(&b)), buf_data(&b), buf_len(&b) - 1);
	proto_decoder_commit(d, buf_len(&b) - 1);
	while ((r = proto_decoder_next(d, &f)) > 0)
		frames++;
	CHECK_INT(r, ==, 0);
	CHECK_INT(frames, ==, 100);
	CHECK_UINT(proto_decoder_pending(d), ==, PROTO_HEADER_SIZE + 7);
	proto_decoder_feed(d, buf_data(&b) + buf_len(&b) - 1, 1);
	CHECK_INT(proto_decoder_next(d, &f), ==, 1);
	CHECK_INT(proto_decoder_next(d, &f), ==, 0);
	proto_decoder_free(d);
	buf_done(&b);
}

TEST(frame_decoder_truncated_frame_waits)
{
	struct proto_decoder *d;
	struct proto_frame f;
	struct buf b = {0};

	put_ping(&b, 7);
	CHECK_OK(proto_decoder_new(PROTO_PAYLOAD_MAX, &d));
	proto_decoder_feed(d, buf_data(&b), buf_len(&b) - 1);
	CHECK_INT(proto_decoder_next(d, &f), ==, 0);
	CHECK_INT(proto_decoder_next(d, &f), ==, 0);
	proto_decoder_free(d);
	buf_done(&b);
}

TEST(frame_decoder_rejects_oversize_from_header_alone)
{
	struct proto_decoder *d;
	struct proto_frame f;
	uint8_t h[PROTO_HEADER_SIZE];

	proto_header_format(h, PROTO_HELLO, 0, 0, PROTO_HELLO_MAX + 1);
	CHECK_OK(proto_decoder_new(PROTO_HELLO_MAX, &d));
	proto_decoder_feed(d, h, sizeof(h));
	CHECK_INT(proto_decoder_next(d, &f), ==, -EMSGSIZE);
	/* Sticky: feeding more does not revive it. */
	proto_decoder_feed(d, h, sizeof(h));
	CHECK_INT(proto_decoder_next(d, &f), ==, -EMSGSIZE);
	proto_decoder_free(d);

	/* After the handshake the limit is raised. */
	CHECK_OK(proto_decoder_new(PROTO_HELLO_MAX, &d));
	proto_decoder_max_set(d, PROTO_PAYLOAD_MAX);
	proto_decoder_feed(d, h, sizeof(h));
	CHECK_INT(proto_decoder_next(d, &f), ==, 0);
	proto_decoder_free(d);
}

TEST(frame_decoder_rejects_reserved_flags)
{
	struct proto_decoder *d;
	struct proto_frame f;
	uint8_t h[PROTO_HEADER_SIZE];

	proto_header_format(h, PROTO_PING, 0x0002, 0, 8);
	CHECK_OK(proto_decoder_new(PROTO_PAYLOAD_MAX, &d));
	proto_decoder_feed(d, h, sizeof(h));
	CHECK_INT(proto_decoder_next(d, &f), ==, -EPROTO);
	proto_decoder_free(d);
}

TEST(frame_decoder_max_frame_roundtrip)
{
	struct proto_decoder *d;
	struct proto_frame f;
	struct buf b = {0};
	size_t start = proto_frame_begin(&b, PROTO_DNS_QUERY, 0, 1);

	memset(buf_reserve(&b, PROTO_PAYLOAD_MAX), 0xab, PROTO_PAYLOAD_MAX);
	buf_commit(&b, PROTO_PAYLOAD_MAX);
	CHECK_INT(proto_frame_end(&b, start), ==, 0);
	CHECK_UINT(buf_len(&b), ==, PROTO_FRAME_MAX);
	CHECK_OK(proto_decoder_new(PROTO_PAYLOAD_MAX, &d));
	for (size_t off = 0; off < buf_len(&b); off += 4099)
		proto_decoder_feed(d, buf_data(&b) + off, MIN(4099, buf_len(&b) - off));
	CHECK_INT(proto_decoder_next(d, &f), ==, 1);
	CHECK_UINT(f.len, ==, PROTO_PAYLOAD_MAX);
	CHECK_UINT(f.payload[PROTO_PAYLOAD_MAX - 1], ==, 0xab);
	proto_decoder_free(d);
	buf_done(&b);
}

TEST(frame_end_refuses_oversize_and_drops_it)
{
	struct buf b = {0};
	size_t start;

	put_ping(&b, 1);
	start = proto_frame_begin(&b, PROTO_DNS_QUERY, 0, 1);
	buf_reserve(&b, PROTO_PAYLOAD_MAX + 1);
	buf_commit(&b, PROTO_PAYLOAD_MAX + 1);
	CHECK_INT(proto_frame_end(&b, start), ==, -EMSGSIZE);
	CHECK_UINT(buf_len(&b), ==, PROTO_HEADER_SIZE + 8);
	buf_done(&b);
}

/* The payload of a returned frame stays valid while the caller handles
 * it, even when the buffer had consumed bytes before it. */
TEST(frame_decoder_payload_stays_valid_until_next_call)
{
	struct proto_decoder *d;
	struct proto_frame f1;
	struct buf b = {0};

	put_ping(&b, 41);
	put_ping(&b, 42);
	CHECK_OK(proto_decoder_new(PROTO_PAYLOAD_MAX, &d));
	proto_decoder_feed(d, buf_data(&b), buf_len(&b));
	CHECK_INT(proto_decoder_next(d, &f1), ==, 1);
	CHECK_INT(proto_decoder_next(d, &f1), ==, 1);
	struct proto_msg m;
	CHECK_INT(proto_msg_decode(&f1, &m), ==, 0);
	CHECK_UINT(m.counter, ==, 42);
	proto_decoder_free(d);
	buf_done(&b);
}

TAP_MAIN()
