/* Unit tests for common/buf.c. */
#include "common/buf.h"
#include "tests/unit/tap.h"

TEST(buf_empty_is_zeroed)
{
	struct buf b;
	buf_init(&b);
	CHECK_UINT(buf_len(&b), ==, 0);
	CHECK(buf_data(&b) == NULL);
	buf_done(&b);
}

TEST(buf_append_and_consume_fifo)
{
	struct buf b;
	buf_init(&b);
	buf_append(&b, "hello ", 6);
	buf_append(&b, "world", 5);
	CHECK_UINT(buf_len(&b), ==, 11);
	CHECK(memcmp(buf_data(&b), "hello world", 11) == 0);
	buf_consume(&b, 6);
	CHECK_UINT(buf_len(&b), ==, 5);
	CHECK(memcmp(buf_data(&b), "world", 5) == 0);
	buf_consume(&b, 100); /* more than held: empties, no underflow */
	CHECK_UINT(buf_len(&b), ==, 0);
	buf_done(&b);
}

TEST(buf_grows_past_many_doublings)
{
	struct buf b;
	uint8_t chunk[1000];
	buf_init(&b);
	for (size_t i = 0; i < sizeof(chunk); i++)
		chunk[i] = (uint8_t)i;
	for (int i = 0; i < 1000; i++)
		buf_append(&b, chunk, sizeof(chunk));
	CHECK_UINT(buf_len(&b), ==, 1000000);
	CHECK_UINT(buf_data(&b)[999999], ==, 999 % 256);
	buf_done(&b);
}

TEST(buf_slides_instead_of_growing_when_drained)
{
	struct buf b;
	buf_init(&b);
	buf_append(&b, "0123456789", 10);
	size_t cap = b.cap;
	for (int i = 0; i < 10000; i++) {
		buf_consume(&b, 5);
		buf_append(&b, "abcde", 5);
	}
	CHECK_UINT(b.cap, ==, cap);
	CHECK_UINT(buf_len(&b), ==, 10);
	buf_done(&b);
}

TEST(buf_reserve_commit)
{
	struct buf b;
	buf_init(&b);
	char *p = buf_reserve(&b, 4096);
	memcpy(p, "xyz", 3);
	buf_commit(&b, 3);
	CHECK_UINT(buf_len(&b), ==, 3);
	CHECK(memcmp(buf_data(&b), "xyz", 3) == 0);
	buf_done(&b);
}

TEST(buf_printf_and_steal)
{
	struct buf b;
	size_t len;
	buf_init(&b);
	buf_printf(&b, "%s=%d", "answer", 42);
	buf_consume(&b, 2);
	char *s = buf_steal(&b, &len);
	CHECK_STR(s, "swer=42");
	CHECK_UINT(len, ==, 7);
	CHECK_UINT(buf_len(&b), ==, 0);
	free(s);
	buf_done(&b);
}

TAP_MAIN()
