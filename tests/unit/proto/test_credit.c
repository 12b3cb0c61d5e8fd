/* Unit tests for proto/credit.c: per-stream flow-control accounting. */
#include "proto/proto.h"
#include "tests/unit/tap.h"

TEST(credit_sendable_is_bounded_by_credit_and_chunk)
{
	struct proto_credit c;

	proto_credit_init(&c, 100000, 5000);
	CHECK_UINT(proto_credit_sendable(&c, 10), ==, 10);
	CHECK_UINT(proto_credit_sendable(&c, 1 << 20), ==, PROTO_CHUNK_MAX);
	proto_credit_sent(&c, PROTO_CHUNK_MAX);
	CHECK_UINT(c.send, ==, 100000 - PROTO_CHUNK_MAX);
	CHECK_UINT(proto_credit_sendable(&c, 1 << 20), ==, 100000 - PROTO_CHUNK_MAX);
	proto_credit_sent(&c, 100000 - PROTO_CHUNK_MAX);
	CHECK_UINT(proto_credit_sendable(&c, 1), ==, 0);
}

TEST(credit_window_update_restores_credit)
{
	struct proto_credit c;

	proto_credit_init(&c, 1000, 1000);
	proto_credit_sent(&c, 1000);
	CHECK_INT(proto_credit_on_window(&c, 400), ==, 0);
	CHECK_UINT(proto_credit_sendable(&c, 1000), ==, 400);
	CHECK_INT(proto_credit_on_window(&c, 0), ==, -EPROTO);
	CHECK_INT(proto_credit_on_window(&c, PROTO_WINDOW_MAX), ==, -EPROTO);
	CHECK_UINT(c.send, ==, 400);
	CHECK_INT(proto_credit_on_window(&c, PROTO_WINDOW_MAX - 400), ==, 0);
	CHECK_UINT(c.send, ==, PROTO_WINDOW_MAX);
}

TEST(credit_receiving_more_than_granted_is_a_protocol_error)
{
	struct proto_credit c;

	proto_credit_init(&c, 0, 1000);
	CHECK_INT(proto_credit_on_data(&c, 600), ==, 0);
	CHECK_INT(proto_credit_on_data(&c, 401), ==, -EPROTO);
	CHECK_INT(proto_credit_on_data(&c, 400), ==, 0);
	CHECK_INT(proto_credit_on_data(&c, 1), ==, -EPROTO);
}

TEST(credit_updates_are_batched_at_half_window)
{
	struct proto_credit c;

	proto_credit_init(&c, 0, 1000);
	CHECK_INT(proto_credit_on_data(&c, 1000), ==, 0);
	CHECK_UINT(proto_credit_consumed(&c, 200), ==, 0);
	CHECK_UINT(proto_credit_consumed(&c, 299), ==, 0);
	CHECK_UINT(proto_credit_consumed(&c, 1), ==, 500);
	CHECK_UINT(c.recv, ==, 500);
	CHECK_UINT(proto_credit_consumed(&c, 500), ==, 500);
	CHECK_UINT(c.recv, ==, 1000);
	/* Nothing buffered: reporting more cannot inflate the grant. */
	CHECK_UINT(proto_credit_consumed(&c, 10000), ==, 0);
	CHECK_UINT(c.recv, ==, 1000);
}

/* Sender and receiver agree over a long transfer: the sender never
 * exceeds the receiver's grant, and everything arrives. */
TEST(credit_sender_and_receiver_converge)
{
	struct proto_credit tx, rx;
	uint64_t total = 10u << 20, sent = 0, delivered = 0;
	uint32_t inflight = 0, win = 256 * 1024;

	proto_credit_init(&tx, win, 0);
	proto_credit_init(&rx, 0, win);
	while (delivered < total) {
		uint32_t n = proto_credit_sendable(&tx, total - sent);

		if (n) {
			proto_credit_sent(&tx, n);
			REQUIRE(proto_credit_on_data(&rx, n) == 0);
			sent += n;
			inflight += n;
		}
		/* The receiver drains in odd-sized pieces. */
		uint32_t d = MIN(inflight, 10007u);
		inflight -= d;
		delivered += d;
		uint32_t inc = proto_credit_consumed(&rx, d);
		if (inc)
			REQUIRE(proto_credit_on_window(&tx, inc) == 0);
		REQUIRE(n || d || inc); /* progress every round: no deadlock */
	}
	CHECK_UINT(sent, ==, total);
}

TAP_MAIN()
