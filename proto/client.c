/* The launcher's side of a session (proto.h, "client session"): request
 * ids and their callbacks, outgoing streams with credit, the handshake, and
 * the output scheduler of docs/PROTOCOL.md §6 — control frames first, then
 * one chunk per stream per turn, round-robin, within each stream's credit.
 *
 * Stream data waits unframed in the stream's own queue until the scheduler
 * frames it, so a stream without credit holds no space in the output and
 * never delays a file request queued after it.
 */
#include <stdio.h>

#include "common/map.h"
#include "proto/proto_int.h"

#define STREAM_QUEUE_MAX (256u * 1024)

enum client_state { CLIENT_NEW, CLIENT_HELLO_SENT, CLIENT_READY, CLIENT_LOST };

struct pending_req {
	proto_reply_fn cb;
	void *userdata;
};

struct proto_stream {
	struct proto_client *c;
	uint64_t id;
	uint8_t kind;
	const struct proto_stream_ops *ops;
	void *userdata;
	struct proto_credit credit;
	struct buf queue; /* TCP: bytes; UDP: [u32 len][datagram]... */
	bool opened;
	bool closed_by_us;  /* proto_stream_close(): no more callbacks */
	bool shut_queued;   /* STREAM_SHUTDOWN waits behind the queue */
	bool shut_sent;
	bool close_queued;  /* STREAM_CLOSE waits behind the queue */
	int close_err;
	bool want_writable;
	bool in_ring;
	struct proto_stream *ring_next;
};

struct proto_client {
	const struct proto_client_ops *ops;
	void *userdata;
	enum client_state state;
	struct proto_decoder *dec;
	struct buf ctl; /* control frames not yet scheduled */
	struct buf out; /* scheduled bytes being written */
	struct map reqs;    /* id -> struct pending_req */
	struct map streams; /* id -> struct proto_stream */
	uint64_t next_id;
	uint64_t caps;
	uint32_t peer_window;
	uint64_t frames_in;
	uint64_t ping_counter;
	/* Streams with data (or a queued SHUTDOWN/CLOSE) and credit to send. */
	struct proto_stream *ring_head, *ring_tail;
	proto_incoming_fn incoming; /* NULL: INCOMING streams are refused */
	void *incoming_userdata;
	unsigned in_input; /* > 0 while input callbacks run */
};

static void wake(struct proto_client *c)
{
	if (c->ops->wake)
		c->ops->wake(c->userdata);
}

int proto_client_new(const struct proto_client_ops *ops, void *userdata,
		     struct proto_client **ret)
{
	struct proto_client *c = xcalloc(1, sizeof(*c));
	int r;

	c->ops = ops;
	c->userdata = userdata;
	c->next_id = 1;
	r = proto_decoder_new(PROTO_PAYLOAD_MAX, &c->dec);
	if (r < 0) {
		free(c);
		return r;
	}
	*ret = c;
	return 0;
}

void proto_client_start(struct proto_client *c, const uint8_t token[PROTO_TOKEN_SIZE],
			uint64_t caps, const char *name)
{
	struct proto_msg m;

	proto_hello_init(&m, token, caps, PROTO_WINDOW_DEFAULT, name);
	proto_msg_encode(&c->ctl, &m);
	c->state = CLIENT_HELLO_SENT;
	wake(c);
}

bool proto_client_ready(const struct proto_client *c)
{
	return c->state == CLIENT_READY;
}

uint64_t proto_client_caps(const struct proto_client *c)
{
	return c->state == CLIENT_READY ? c->caps : 0;
}

uint64_t proto_client_frames_in(const struct proto_client *c)
{
	return c->frames_in;
}

size_t proto_client_pending(const struct proto_client *c)
{
	return map_len(&c->reqs);
}

/* --- streams: the ring of streams with something to send ------------------- */

static bool stream_can_send(const struct proto_stream *st)
{
	if (!st->opened)
		return false;
	if (buf_len(&st->queue) == 0)
		return (st->shut_queued && !st->shut_sent) || st->close_queued;
	if (st->kind == PROTO_STREAM_UDP) {
		uint32_t len = proto_le32_load(buf_data(&st->queue));
		return st->credit.send >= len;
	}
	return st->credit.send > 0;
}

static void ring_push(struct proto_stream *st)
{
	struct proto_client *c = st->c;

	if (st->in_ring || !stream_can_send(st))
		return;
	st->in_ring = true;
	st->ring_next = NULL;
	if (c->ring_tail)
		c->ring_tail->ring_next = st;
	else
		c->ring_head = st;
	c->ring_tail = st;
	wake(c);
}

static struct proto_stream *ring_pop(struct proto_client *c)
{
	struct proto_stream *st = c->ring_head;

	if (!st)
		return NULL;
	c->ring_head = st->ring_next;
	if (!c->ring_head)
		c->ring_tail = NULL;
	st->in_ring = false;
	st->ring_next = NULL;
	return st;
}

static void ring_remove(struct proto_stream *st)
{
	struct proto_client *c = st->c;
	struct proto_stream *prev = NULL;

	if (!st->in_ring)
		return;
	for (struct proto_stream *p = c->ring_head; p; prev = p, p = p->ring_next) {
		if (p != st)
			continue;
		if (prev)
			prev->ring_next = p->ring_next;
		else
			c->ring_head = p->ring_next;
		if (c->ring_tail == p)
			c->ring_tail = prev;
		break;
	}
	st->in_ring = false;
}

static void stream_free(struct proto_stream *st)
{
	ring_remove(st);
	map_remove(&st->c->streams, st->id);
	buf_done(&st->queue);
	free(st);
}

/* The stream ended on the agent's side or with the session: tell the owner
 * (unless it closed the stream itself) and free it. */
static void stream_gone(struct proto_stream *st, int err)
{
	if (!st->closed_by_us && st->ops->closed)
		st->ops->closed(st->userdata, err);
	stream_free(st);
}

static int stream_open(struct proto_client *c, struct proto_msg *m, uint8_t kind,
		       const struct proto_stream_ops *ops, void *userdata, struct proto_stream **ret);

int proto_stream_open(struct proto_client *c, uint8_t kind, const struct proto_addr *addr,
		      uint16_t port, const struct proto_stream_ops *ops, void *userdata,
		      struct proto_stream **ret)
{
	struct proto_msg m = { .type = PROTO_STREAM_OPEN };

	m.req.kind = kind;
	m.req.addr = *addr;
	m.req.port = port;
	return stream_open(c, &m, kind, ops, userdata, ret);
}

int proto_stream_open_unix(struct proto_client *c, const char *path,
			   const struct proto_stream_ops *ops, void *userdata,
			   struct proto_stream **ret)
{
	struct proto_msg m = { .type = PROTO_STREAM_OPEN_UNIX };

	if (c->state == CLIENT_READY && !(c->caps & PROTO_CAP_UNIX))
		return -EOPNOTSUPP;
	m.req.path = path;
	return stream_open(c, &m, PROTO_STREAM_UNIX, ops, userdata, ret);
}

static int stream_open(struct proto_client *c, struct proto_msg *m, uint8_t kind,
		       const struct proto_stream_ops *ops, void *userdata, struct proto_stream **ret)
{
	struct proto_stream *st;
	int r;

	if (c->state != CLIENT_READY)
		return -ENOTCONN;
	m->id = c->next_id++;
	r = proto_msg_encode(&c->ctl, m);
	if (r < 0)
		return r;
	st = xcalloc(1, sizeof(*st));
	st->c = c;
	st->id = m->id;
	st->kind = kind;
	st->ops = ops;
	st->userdata = userdata;
	buf_init(&st->queue);
	proto_credit_init(&st->credit, c->peer_window, PROTO_WINDOW_DEFAULT);
	map_put(&c->streams, st->id, st);
	wake(c);
	*ret = st;
	return 0;
}

void proto_client_set_incoming(struct proto_client *c, proto_incoming_fn fn, void *userdata)
{
	c->incoming = fn;
	c->incoming_userdata = userdata;
}

int proto_stream_accept(struct proto_client *c, uint64_t id, const struct proto_stream_ops *ops,
			void *userdata, struct proto_stream **ret)
{
	struct proto_stream *st;

	if (c->state != CLIENT_READY)
		return -ENOTCONN;
	if (!(id & PROTO_ID_AGENT) || map_get(&c->streams, id))
		return -EINVAL;
	st = xcalloc(1, sizeof(*st));
	st->c = c;
	st->id = id;
	st->kind = PROTO_STREAM_TCP;
	st->ops = ops;
	st->userdata = userdata;
	st->opened = true; /* INCOMING is the opening: no response to wait for */
	buf_init(&st->queue);
	proto_credit_init(&st->credit, c->peer_window, PROTO_WINDOW_DEFAULT);
	map_put(&c->streams, st->id, st);
	*ret = st;
	return 0;
}

static size_t write_space(const struct proto_stream *st)
{
	if (st->shut_queued || st->close_queued || st->c->state == CLIENT_LOST)
		return 0;
	return buf_len(&st->queue) >= STREAM_QUEUE_MAX ? 0 : STREAM_QUEUE_MAX - buf_len(&st->queue);
}

size_t proto_stream_write_space(struct proto_stream *st)
{
	size_t n = write_space(st);

	/* Whoever saw "full" gets writable() once there is room again. */
	if (n == 0)
		st->want_writable = true;
	return n;
}

size_t proto_stream_write(struct proto_stream *st, const void *p, size_t n)
{
	size_t space = write_space(st);

	if (st->kind == PROTO_STREAM_UDP) {
		if (n > PROTO_CHUNK_MAX || space < n + 4) {
			st->want_writable = space == 0;
			return 0;
		}
		proto_put_u32(&st->queue, (uint32_t)n);
		buf_append(&st->queue, p, n);
	} else {
		if (n > space) {
			n = space;
			st->want_writable = true;
		}
		buf_append(&st->queue, p, n);
	}
	ring_push(st);
	return n;
}

void proto_stream_consumed(struct proto_stream *st, size_t n)
{
	struct proto_msg m = { .type = PROTO_STREAM_WINDOW, .id = st->id };

	if (st->c->state != CLIENT_READY)
		return;
	m.window = proto_credit_consumed(&st->credit, (uint32_t)MIN(n, (size_t)UINT32_MAX));
	if (m.window) {
		proto_msg_encode(&st->c->ctl, &m);
		wake(st->c);
	}
}

void proto_stream_shutdown(struct proto_stream *st)
{
	if (st->shut_queued || st->close_queued)
		return;
	st->shut_queued = true;
	ring_push(st);
}

void proto_stream_close(struct proto_stream *st, int err)
{
	if (st->c->state == CLIENT_LOST) {
		st->closed_by_us = true;
		stream_free(st);
		return;
	}
	st->closed_by_us = true;
	st->close_queued = true;
	st->close_err = err;
	if (err) {
		/* A reset does not wait for queued data. */
		buf_reset(&st->queue);
	}
	/* Not yet opened: the CLOSE goes out once the open is answered, so the
	 * agent never keeps a connection nobody owns. */
	ring_push(st);
}

/* Frames one turn of st into out: a chunk of data, or its SHUTDOWN/CLOSE.
 * Returns true if st was freed. */
static bool stream_emit(struct proto_client *c, struct proto_stream *st)
{
	if (buf_len(&st->queue) > 0) {
		uint32_t n;
		const uint8_t *p = buf_data(&st->queue);
		size_t hdr = 0;
		if (st->kind == PROTO_STREAM_UDP) {
			n = proto_le32_load(p);
			hdr = 4;
		} else {
			n = proto_credit_sendable(&st->credit, buf_len(&st->queue));
		}
		struct proto_msg m = { .type = PROTO_STREAM_DATA, .id = st->id };
		m.data.data = p + hdr;
		m.data.len = n;
		proto_msg_encode(&c->out, &m);
		proto_credit_sent(&st->credit, n);
		buf_consume(&st->queue, hdr + n);
		if (st->want_writable && write_space(st) > 0 && !st->closed_by_us) {
			st->want_writable = false;
			if (st->ops->writable)
				st->ops->writable(st->userdata);
		}
		return false;
	}
	if (st->shut_queued && !st->shut_sent && !st->close_queued) {
		struct proto_msg m = { .type = PROTO_STREAM_SHUTDOWN, .id = st->id };
		proto_msg_encode(&c->out, &m);
		st->shut_sent = true;
		return false;
	}
	if (st->close_queued) {
		struct proto_msg m = { .type = PROTO_STREAM_CLOSE, .id = st->id,
				       .error = st->close_err };
		proto_msg_encode(&c->out, &m);
		stream_free(st);
		return true;
	}
	return false;
}

bool proto_client_has_output(const struct proto_client *c)
{
	return buf_len(&c->out) > 0 || buf_len(&c->ctl) > 0 || c->ring_head;
}

size_t proto_client_output(struct proto_client *c, size_t max, const uint8_t **p)
{
	while (buf_len(&c->out) < max) {
		if (buf_len(&c->ctl) > 0) {
			buf_append(&c->out, buf_data(&c->ctl), buf_len(&c->ctl));
			buf_reset(&c->ctl);
			continue;
		}
		struct proto_stream *st = ring_pop(c);
		if (!st)
			break;
		if (!stream_emit(c, st))
			ring_push(st); /* only if it still has something to send */
	}
	*p = buf_data(&c->out);
	return buf_len(&c->out);
}

void proto_client_output_consume(struct proto_client *c, size_t n)
{
	buf_consume(&c->out, n);
}

/* --- requests -------------------------------------------------------------- */

int64_t proto_client_request(struct proto_client *c, struct proto_msg *m, proto_reply_fn cb,
			     void *userdata)
{
	struct pending_req *pr;
	int r;

	if (c->state == CLIENT_LOST)
		return -ENOTCONN;
	m->flags = 0;
	m->id = c->next_id++;
	r = proto_msg_encode(&c->ctl, m);
	if (r < 0)
		return r;
	pr = xmalloc(sizeof(*pr));
	pr->cb = cb;
	pr->userdata = userdata;
	map_put(&c->reqs, m->id, pr);
	wake(c);
	return (int64_t)m->id;
}

void proto_client_cancel(struct proto_client *c, uint64_t id)
{
	free(map_remove(&c->reqs, id));
}

void proto_client_ping(struct proto_client *c)
{
	struct proto_msg m = { .type = PROTO_PING, .counter = ++c->ping_counter };

	if (c->state != CLIENT_READY)
		return;
	proto_msg_encode(&c->ctl, &m);
	wake(c);
}

void proto_client_goodbye(struct proto_client *c, uint32_t code, const char *reason)
{
	struct proto_msg m = { .type = PROTO_GOODBYE };

	if (c->state != CLIENT_READY)
		return;
	m.goodbye.code = code;
	m.goodbye.reason = reason;
	proto_msg_encode(&c->ctl, &m);
	wake(c);
}

/* --- input ----------------------------------------------------------------- */

/* Fails every request and stream: the session is over. */
static void fail_all(struct proto_client *c)
{
	uint64_t key;
	void *v;

	for (size_t pos = 0; map_next(&c->reqs, &pos, &key, &v);) {
		struct pending_req *pr = v;
		struct proto_msg m = { .flags = PROTO_F_RESPONSE, .id = key,
				       .status = ECONNABORTED };
		map_remove(&c->reqs, key);
		pos = 0; /* the map changed: restart the walk */
		if (pr->cb)
			pr->cb(pr->userdata, &m);
		free(pr);
	}
	for (size_t pos = 0; map_next(&c->streams, &pos, &key, &v);) {
		pos = 0;
		stream_gone(v, ECONNABORTED);
	}
}

static int lose(struct proto_client *c, int err, const char *reason)
{
	if (c->state == CLIENT_LOST)
		return err;
	c->state = CLIENT_LOST;
	buf_reset(&c->ctl);
	c->ring_head = c->ring_tail = NULL;
	if (c->ops->lost)
		c->ops->lost(c->userdata, err, reason);
	fail_all(c);
	return err;
}

void proto_client_abort(struct proto_client *c, int err, const char *reason)
{
	lose(c, err, reason);
}

/* A malformed frame: tell the agent why (best effort) and end. */
static int protocol_error(struct proto_client *c, const char *what)
{
	char reason[160];
	struct proto_msg m = { .type = PROTO_GOODBYE };

	snprintf(reason, sizeof(reason), "malformed frame from the agent: %s", what);
	if (c->state == CLIENT_READY) {
		m.goodbye.code = PROTO_BYE_PROTOCOL;
		m.goodbye.reason = reason;
		proto_msg_encode(&c->out, &m);
	}
	return lose(c, -EPROTO, reason);
}

static void on_stream_msg(struct proto_client *c, const struct proto_msg *m)
{
	struct proto_stream *st = map_get(&c->streams, m->id);

	if (!st)
		return; /* closes crossed: ignore */
	switch (m->type) {
	case PROTO_STREAM_OPEN: /* the response */
	case PROTO_STREAM_OPEN_UNIX:
		if (m->status) {
			if (!st->closed_by_us && st->ops->opened)
				st->ops->opened(st->userdata, m->status, NULL, 0);
			stream_free(st);
			return;
		}
		st->opened = true;
		if (st->closed_by_us) {
			ring_push(st); /* the queued CLOSE can go now */
			return;
		}
		if (st->ops->opened)
			st->ops->opened(st->userdata, 0, &m->rep.addr, m->rep.port);
		ring_push(st);
		return;
	case PROTO_STREAM_DATA:
		if (proto_credit_on_data(&st->credit, m->data.len) < 0) {
			protocol_error(c, "stream data beyond the granted window");
			return;
		}
		if (st->closed_by_us)
			return;
		if (st->ops->data)
			st->ops->data(st->userdata, m->data.data, m->data.len);
		return;
	case PROTO_STREAM_WINDOW:
		if (proto_credit_on_window(&st->credit, m->window) < 0) {
			protocol_error(c, "stream window overflow");
			return;
		}
		ring_push(st);
		return;
	case PROTO_STREAM_SHUTDOWN:
		if (!st->closed_by_us && st->ops->shutdown)
			st->ops->shutdown(st->userdata);
		return;
	case PROTO_STREAM_CLOSE:
		stream_gone(st, m->error);
		return;
	}
}

static void on_response(struct proto_client *c, const struct proto_msg *m)
{
	struct pending_req *pr = map_remove(&c->reqs, m->id);

	if (!pr)
		return; /* cancelled */
	if (pr->cb)
		pr->cb(pr->userdata, m);
	free(pr);
}

static int on_frame(struct proto_client *c, const struct proto_frame *f)
{
	struct proto_msg m;
	char what[96];
	int r;

	c->frames_in++;
	r = proto_msg_decode(f, &m);
	if (r == 0 && c->state == CLIENT_READY)
		r = proto_msg_check(&m, true);
	if (r < 0) {
		snprintf(what, sizeof(what), "%s (type 0x%04x)",
			 proto_type_name(f->type) ? proto_type_name(f->type) : "unknown type",
			 f->type);
		return protocol_error(c, what);
	}
	if (c->state == CLIENT_HELLO_SENT) {
		struct proto_welcome w;
		struct err e;
		err_clear(&e);
		r = proto_handshake_client(&m, &w, &e);
		if (r < 0)
			return lose(c, r, e.msg);
		c->state = CLIENT_READY;
		c->caps = w.caps;
		c->peer_window = w.window;
		if (c->ops->ready)
			c->ops->ready(c->userdata, &w);
		return 0;
	}
	switch (m.type) {
	case PROTO_PING: {
		struct proto_msg pong = { .type = PROTO_PONG, .counter = m.counter };
		proto_msg_encode(&c->ctl, &pong);
		wake(c);
		return 0;
	}
	case PROTO_PONG:
		return 0;
	case PROTO_GOODBYE: {
		char reason[256];
		snprintf(reason, sizeof(reason), "the agent ended the session: %s",
			 m.goodbye.reason[0] ? m.goodbye.reason : "no reason given");
		return lose(c, -ECONNRESET, reason);
	}
	case PROTO_STREAM_OPEN:
	case PROTO_STREAM_OPEN_UNIX:
	case PROTO_STREAM_DATA:
	case PROTO_STREAM_WINDOW:
	case PROTO_STREAM_SHUTDOWN:
	case PROTO_STREAM_CLOSE:
		on_stream_msg(c, &m);
		return c->state == CLIENT_LOST ? -EPROTO : 0;
	case PROTO_INCOMING: {
		/* The owner takes the stream with proto_stream_accept() during
		 * the callback; a stream nobody took is refused. */
		if (map_get(&c->streams, m.id))
			return protocol_error(c, "INCOMING for a stream id in use");
		if (c->incoming)
			c->incoming(c->incoming_userdata, m.id, &m.incoming);
		if (c->state == CLIENT_LOST)
			return -EPROTO;
		if (!map_get(&c->streams, m.id)) {
			struct proto_msg rst = { .type = PROTO_STREAM_CLOSE, .id = m.id,
						 .error = ECONNREFUSED };
			proto_msg_encode(&c->ctl, &rst);
			wake(c);
		}
		return 0;
	}
	default:
		if (m.flags & PROTO_F_RESPONSE)
			on_response(c, &m);
		return 0;
	}
}

void *proto_client_input_reserve(struct proto_client *c, size_t n)
{
	return proto_decoder_reserve(c->dec, n);
}

int proto_client_input_commit(struct proto_client *c, size_t n)
{
	struct proto_frame f;
	int r;

	if (c->state == CLIENT_LOST)
		return -ENOTCONN;
	proto_decoder_commit(c->dec, n);
	c->in_input++;
	while ((r = proto_decoder_next(c->dec, &f)) > 0) {
		r = on_frame(c, &f);
		if (r < 0)
			break;
	}
	if (r < 0 && c->state != CLIENT_LOST)
		protocol_error(c, r == -EMSGSIZE ? "frame larger than the maximum" : "bad header");
	c->in_input--;
	return c->state == CLIENT_LOST ? (r < 0 ? r : -ENOTCONN) : 0;
}

void proto_client_free(struct proto_client *c)
{
	if (!c)
		return;
	c->state = CLIENT_LOST;
	fail_all(c);
	map_done(&c->reqs);
	map_done(&c->streams);
	proto_decoder_free(c->dec);
	buf_done(&c->ctl);
	buf_done(&c->out);
	free(c);
}
