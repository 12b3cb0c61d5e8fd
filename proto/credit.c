/* Per-stream credit-based flow control (docs/PROTOCOL.md, "Flow
 * control"), after HTTP/2's: a sender spends credit with every
 * STREAM_DATA byte and may send only what it holds; a receiver returns
 * credit with STREAM_WINDOW once the data has left its buffers. Updates
 * are batched (half a window) to keep their rate proportional to
 * throughput, not to frame count. */
#include <errno.h>

#include "proto/proto_int.h"

void proto_credit_init(struct proto_credit *c, uint32_t send_window, uint32_t recv_window)
{
	*c = (struct proto_credit){
		.send = MIN(send_window, PROTO_WINDOW_MAX),
		.recv = MIN(recv_window, PROTO_WINDOW_MAX),
		.window = MIN(recv_window, PROTO_WINDOW_MAX),
	};
}

uint32_t proto_credit_sendable(const struct proto_credit *c, size_t want)
{
	size_t n = MIN(want, (size_t)PROTO_CHUNK_MAX);

	return (uint32_t)MIN(n, (size_t)c->send);
}

void proto_credit_sent(struct proto_credit *c, uint32_t n)
{
	/* Sending more than the credit is a bug in the caller, not data. */
	if (n > c->send)
		abort();
	c->send -= n;
}

int proto_credit_on_window(struct proto_credit *c, uint32_t increment)
{
	if (increment == 0 || increment > PROTO_WINDOW_MAX - c->send)
		return -EPROTO;
	c->send += increment;
	return 0;
}

int proto_credit_on_data(struct proto_credit *c, uint32_t n)
{
	if (n > c->recv)
		return -EPROTO;
	c->recv -= n;
	return 0;
}

uint32_t proto_credit_consumed(struct proto_credit *c, uint32_t n)
{
	uint32_t inc;

	/* Never return more than was granted and spent: a caller reporting
	 * bytes twice must not inflate the peer's credit. */
	if (n > c->window - c->recv - c->unacked)
		n = c->window - c->recv - c->unacked;
	c->unacked += n;
	if (c->unacked == 0 || c->unacked < c->window / 2)
		return 0;
	inc = c->unacked;
	c->recv += inc;
	c->unacked = 0;
	return inc;
}
