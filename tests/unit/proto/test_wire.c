/* Unit tests for proto/wire.c: little-endian primitives and the
 * bounds-checked reader. */
#include "proto/proto.h"
#include "tests/unit/tap.h"

TEST(wire_integers_are_little_endian)
{
	struct buf b = {0};
	static const uint8_t want[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
				       0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f};

	proto_put_u8(&b, 0x01);
	proto_put_u16(&b, 0x0302);
	proto_put_u32(&b, 0x07060504);
	proto_put_u64(&b, 0x0f0e0d0c0b0a0908ull);
	CHECK_UINT(buf_len(&b), ==, sizeof(want));
	CHECK(memcmp(buf_data(&b), want, sizeof(want)) == 0);

	struct proto_reader r;
	proto_reader_init(&r, buf_data(&b), buf_len(&b));
	CHECK_UINT(proto_get_u8(&r), ==, 0x01);
	CHECK_UINT(proto_get_u16(&r), ==, 0x0302);
	CHECK_UINT(proto_get_u32(&r), ==, 0x07060504);
	CHECK_UINT(proto_get_u64(&r), ==, 0x0f0e0d0c0b0a0908ull);
	CHECK_INT(proto_reader_done(&r), ==, 0);
	buf_done(&b);
}

TEST(wire_string_has_length_and_nul)
{
	struct buf b = {0};
	struct proto_reader r;

	proto_put_str(&b, "abc");
	proto_put_str(&b, NULL);
	CHECK_UINT(buf_len(&b), ==, 4 + 3 + 1 + 4 + 1);
	CHECK(memcmp(buf_data(&b), "\x03\0\0\0abc\0\0\0\0\0\0", 13) == 0);
	proto_reader_init(&r, buf_data(&b), buf_len(&b));
	CHECK_STR(proto_get_str(&r), "abc");
	CHECK_STR(proto_get_str(&r), "");
	CHECK_INT(proto_reader_done(&r), ==, 0);
	buf_done(&b);
}

TEST(wire_string_rejects_missing_or_inner_nul)
{
	struct proto_reader r;

	proto_reader_init(&r, "\x03\0\0\0abcX", 8);
	CHECK_STR(proto_get_str(&r), "");
	CHECK_INT(proto_reader_done(&r), ==, -EPROTO);

	proto_reader_init(&r, "\x03\0\0\0a\0c\0", 8);
	proto_get_str(&r);
	CHECK_INT(proto_reader_done(&r), ==, -EPROTO);

	/* A length that runs past the end, and the maximal length. */
	proto_reader_init(&r, "\x09\0\0\0abc\0", 8);
	proto_get_str(&r);
	CHECK_INT(proto_reader_done(&r), ==, -EPROTO);
	proto_reader_init(&r, "\xff\xff\xff\xff", 4);
	proto_get_str(&r);
	CHECK_INT(proto_reader_done(&r), ==, -EPROTO);
}

TEST(wire_reader_errors_are_sticky)
{
	struct proto_reader r;
	static const uint8_t in[] = {1, 2, 3};

	proto_reader_init(&r, in, sizeof(in));
	CHECK_UINT(proto_get_u32(&r), ==, 0);
	CHECK_UINT(proto_get_u8(&r), ==, 0); /* would be in range, but the reader failed */
	CHECK(proto_get_raw(&r, 0) == NULL);
	CHECK_INT(proto_reader_done(&r), ==, -EPROTO);
}

TEST(wire_reader_requires_full_consumption)
{
	struct proto_reader r;
	static const uint8_t in[] = {1, 2, 3};

	proto_reader_init(&r, in, sizeof(in));
	proto_get_u16(&r);
	CHECK_INT(proto_reader_done(&r), ==, -EPROTO);
	proto_get_u8(&r);
	CHECK_INT(proto_reader_done(&r), ==, 0);
}

TEST(wire_blob_bounds)
{
	struct buf b = {0};
	struct proto_reader r;
	struct proto_bytes v;

	proto_put_blob(&b, "xyz", 3);
	proto_reader_init(&r, buf_data(&b), buf_len(&b));
	v = proto_get_blob(&r);
	CHECK_UINT(v.len, ==, 3);
	CHECK(memcmp(v.data, "xyz", 3) == 0);
	CHECK_INT(proto_reader_done(&r), ==, 0);

	proto_reader_init(&r, buf_data(&b), buf_len(&b) - 1);
	v = proto_get_blob(&r);
	CHECK(v.data == NULL);
	CHECK_INT(proto_reader_done(&r), ==, -EPROTO);
	buf_done(&b);
}

TEST(wire_addr_families)
{
	struct buf b = {0};
	struct proto_reader r;
	struct proto_addr a4 = {.family = PROTO_AF_INET, .bytes = {10, 0, 0, 1}};
	struct proto_addr a6 = {.family = PROTO_AF_INET6, .bytes = {0xfe, 0x80, [15] = 1}};
	struct proto_addr none = {0}, out;

	proto_put_addr(&b, &a4);
	proto_put_addr(&b, &a6);
	proto_put_addr(&b, &none);
	CHECK_UINT(buf_len(&b), ==, 5 + 17 + 1);
	proto_reader_init(&r, buf_data(&b), buf_len(&b));
	proto_get_addr(&r, &out);
	CHECK(memcmp(&out, &a4, sizeof(out)) == 0);
	proto_get_addr(&r, &out);
	CHECK(memcmp(&out, &a6, sizeof(out)) == 0);
	proto_get_addr(&r, &out);
	CHECK_UINT(out.family, ==, PROTO_AF_NONE);
	CHECK_INT(proto_reader_done(&r), ==, 0);

	proto_reader_init(&r, "\x05\1\2\3\4", 5);
	proto_get_addr(&r, &out);
	CHECK_INT(proto_reader_done(&r), ==, -EPROTO);
	buf_done(&b);
}

TEST(wire_attr_roundtrip)
{
	struct buf b = {0};
	struct proto_reader r;
	struct proto_attr a =
				  {
					  .ino = 1,
					  .mode = 0100644,
					  .nlink = 2,
					  .uid = 3,
					  .gid = 4,
					  .rdev = 5,
					  .size = 6,
					  .blocks = 7,
					  .blksize = 4096,
					  .atime = {-1, 999999999},
					  .mtime = {1700000000, 1},
					  .ctime = {2, 3},
				  },
			  out;

	proto_put_attr(&b, &a);
	CHECK_UINT(buf_len(&b), ==, 88);
	proto_reader_init(&r, buf_data(&b), buf_len(&b));
	proto_get_attr(&r, &out);
	CHECK_INT(proto_reader_done(&r), ==, 0);
	CHECK_UINT(out.ino, ==, 1);
	CHECK_UINT(out.mode, ==, 0100644);
	CHECK_UINT(out.nlink, ==, 2);
	CHECK_UINT(out.uid, ==, 3);
	CHECK_UINT(out.gid, ==, 4);
	CHECK_UINT(out.rdev, ==, 5);
	CHECK_UINT(out.size, ==, 6);
	CHECK_UINT(out.blocks, ==, 7);
	CHECK_UINT(out.blksize, ==, 4096);
	CHECK_INT(out.atime.sec, ==, -1);
	CHECK_UINT(out.atime.nsec, ==, 999999999);
	CHECK_INT(out.mtime.sec, ==, 1700000000);
	CHECK_UINT(out.mtime.nsec, ==, 1);
	CHECK_INT(out.ctime.sec, ==, 2);
	CHECK_UINT(out.ctime.nsec, ==, 3);
	buf_done(&b);
}

TAP_MAIN()
