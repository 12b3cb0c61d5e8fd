/* Delivery of incoming connections to the app (vnet.h, "delivery").
 *
 * Each connection joins a socket connected to the app's listener inside
 * its namespace (made by the launcher) with its far side: an INCOMING
 * stream from the agent (a mirrored or stolen connection of the pod) or a
 * socket accepted on this host (listen_ports). Bytes move both ways with
 * backpressure: the app socket is read only while the far side has room,
 * and far-side bytes are written to the app with their credit returned
 * only once the socket took them. Half-closes pass through; a reset on
 * either side resets the other. A mirror stream gets no answer: what the
 * app writes is read and dropped.
 *
 * Ended connections are freed from a deferred call, so no callback ever
 * runs on freed memory.
 */
#define LOG_TARGET "podenv::vnet"
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include "common/buf.h"
#include "common/log.h"
#include "proto/proto.h"
#include "vnet/vnet.h"

#define READ_CHUNK 65536
#define SOCK_BUF_MAX (256u * 1024)

struct vnet_conn {
	struct vnet_deliver *d;
	struct vnet_conn *prev, *next; /* d->live or d->dead */
	bool dead;
	bool mirror;
	/* the app side */
	int app_fd;
	struct loop_source *app_src;
	bool connected;
	struct buf to_app;
	bool app_eof;	  /* read EOF from the app */
	bool far_eof;	  /* the far side will send no more */
	bool to_app_shut; /* shutdown(app_fd, SHUT_WR) done */
	/* the far side: a stream, or a host socket */
	struct proto_stream *st;
	int far_fd;
	struct loop_source *far_src;
	struct buf to_far;
	bool far_shut; /* shutdown(far_fd, SHUT_WR) done */
	/* vnet_deliver_open_unix: told the outcome of the open */
	void (*opened)(void *userdata, int err);
	void *opened_userdata;
};

struct vnet_deliver {
	struct loop *loop;
	void (*refused)(void *userdata);
	void *userdata;
	struct vnet_conn *live, *dead;
	struct loop_source *reaper;
	unsigned n;
};

static void list_remove(struct vnet_conn **head, struct vnet_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		*head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

static void list_push(struct vnet_conn **head, struct vnet_conn *c)
{
	c->prev = NULL;
	c->next = *head;
	if (*head)
		(*head)->prev = c;
	*head = c;
}

/* Ends the connection (err: reset both sides with it). Never frees. */
static void conn_end(struct vnet_conn *c, int err)
{
	if (c->dead)
		return;
	c->dead = true;
	loop_source_free(c->app_src);
	c->app_src = NULL;
	loop_source_free(c->far_src);
	c->far_src = NULL;
	if (err) {
		struct linger lg = {1, 0}; /* close with RST */
		if (c->app_fd >= 0)
			setsockopt(c->app_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		if (c->far_fd >= 0)
			setsockopt(c->far_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	if (c->app_fd >= 0)
		close(c->app_fd);
	c->app_fd = -1;
	if (c->far_fd >= 0)
		close(c->far_fd);
	c->far_fd = -1;
	if (c->st) {
		proto_stream_close(c->st, err);
		c->st = NULL;
	}
	buf_done(&c->to_app);
	buf_done(&c->to_far);
	list_remove(&c->d->live, c);
	list_push(&c->d->dead, c);
	loop_defer_arm(c->d->reaper);
}

static int reap(struct loop_source *s, void *userdata)
{
	struct vnet_deliver *d = userdata;
	(void)s;

	while (d->dead) {
		struct vnet_conn *c = d->dead;
		list_remove(&d->dead, c);
		d->n--;
		free(c);
	}
	return 0;
}

/* --- the app side ------------------------------------------------------------------- */

static size_t far_space(struct vnet_conn *c)
{
	if (c->st)
		return proto_stream_write_space(c->st);
	if (c->far_fd >= 0)
		return buf_len(&c->to_far) >= SOCK_BUF_MAX ? 0 : SOCK_BUF_MAX - buf_len(&c->to_far);
	return 0;
}

static void far_flush(struct vnet_conn *c);

/* What the app writes goes nowhere: a mirror, or a stream the agent has
 * already closed (the app is still finishing). */
static bool discard(const struct vnet_conn *c)
{
	return c->mirror || (!c->st && c->far_fd < 0);
}

static void maybe_done(struct vnet_conn *c)
{
	/* Both directions finished: the app's bytes all left, the far
	 * side's all reached the app. */
	if (c->dead || !c->app_eof || !c->to_app_shut)
		return;
	if (c->far_fd >= 0 && (buf_len(&c->to_far) || !c->far_shut))
		return;
	conn_end(c, 0);
}

static void app_read(struct vnet_conn *c)
{
	uint8_t buf[READ_CHUNK];

	while (!c->dead && !c->app_eof) {
		size_t space = discard(c) ? sizeof(buf) : far_space(c);
		if (space == 0)
			break; /* resumed by writable() or the far socket's flush */
		ssize_t n = recv(c->app_fd, buf, MIN(space, sizeof(buf)), 0);
		if (n > 0) {
			if (discard(c))
				continue;
			if (c->st)
				proto_stream_write(c->st, buf, (size_t)n);
			else
				buf_append(&c->to_far, buf, (size_t)n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n < 0) {
			conn_end(c, errno);
			return;
		}
		c->app_eof = true;
		if (c->st && !c->mirror)
			proto_stream_shutdown(c->st);
	}
	if (!c->dead && c->far_fd >= 0)
		far_flush(c);
}

static void app_flush(struct vnet_conn *c)
{
	size_t taken = 0;

	if (!c->connected)
		return;
	while (buf_len(&c->to_app) > 0) {
		ssize_t n =
			send(c->app_fd, buf_data(&c->to_app), buf_len(&c->to_app), MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			conn_end(c, errno);
			return;
		}
		buf_consume(&c->to_app, (size_t)n);
		taken += (size_t)n;
	}
	if (taken && c->st)
		proto_stream_consumed(c->st, taken);
	if (buf_len(&c->to_app) == 0 && c->far_eof && !c->to_app_shut) {
		shutdown(c->app_fd, SHUT_WR);
		c->to_app_shut = true;
	}
}

static void update_events(struct vnet_conn *c)
{
	uint32_t ev = 0;

	if (c->dead)
		return;
	if (!c->connected) {
		loop_io_events_set(c->app_src, EPOLLOUT);
	} else {
		if (!c->app_eof && (discard(c) || far_space(c) > 0))
			ev |= EPOLLIN;
		if (buf_len(&c->to_app) > 0)
			ev |= EPOLLOUT;
		loop_io_events_set(c->app_src, ev);
	}
	if (c->far_src)
		loop_io_events_set(
			c->far_src,
			(!c->far_eof && buf_len(&c->to_app) < SOCK_BUF_MAX ? EPOLLIN : 0) |
				(buf_len(&c->to_far) ? EPOLLOUT : 0));
	maybe_done(c);
}

static int on_app_io(struct loop_source *s, int fd, uint32_t events, void *userdata)
{
	struct vnet_conn *c = userdata;
	(void)s;

	if (!c->connected) {
		int err = 0;
		socklen_t l = sizeof(err);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err) {
			log_debug("connecting to the app: %s", strerror(err));
			if (c->d->refused)
				c->d->refused(c->d->userdata);
			conn_end(c, err == ECONNREFUSED ? ECONNREFUSED : ECONNRESET);
			return 0;
		}
		c->connected = true;
		app_flush(c);
		if (!c->dead)
			app_read(c);
		update_events(c);
		return 0;
	}
	if (events & EPOLLOUT)
		app_flush(c);
	if (!c->dead && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		app_read(c);
	update_events(c);
	return 0;
}

/* --- far side: a stream ------------------------------------------------------------- */

static void st_data(void *userdata, const uint8_t *p, size_t n)
{
	struct vnet_conn *c = userdata;

	if (c->dead)
		return;
	buf_append(&c->to_app, p, n);
	app_flush(c);
	update_events(c);
}

static void st_shutdown(void *userdata)
{
	struct vnet_conn *c = userdata;

	if (c->dead)
		return;
	c->far_eof = true;
	app_flush(c);
	update_events(c);
}

static void st_closed(void *userdata, int err)
{
	struct vnet_conn *c = userdata;

	c->st = NULL; /* freed by the client after this call */
	if (c->dead)
		return;
	if (err) {
		conn_end(c, err);
		return;
	}
	/* Both directions are over on the agent's side. The app may still
	 * be answering: its bytes are drained until it closes. */
	c->far_eof = true;
	app_flush(c);
	update_events(c);
}

static void st_writable(void *userdata)
{
	struct vnet_conn *c = userdata;

	if (c->dead || !c->connected)
		return;
	app_read(c);
	update_events(c);
}

/* Only streams this side opens (vnet_deliver_open_unix). */
static void st_opened(void *userdata, int err, const struct proto_addr *a, uint16_t port)
{
	struct vnet_conn *c = userdata;
	(void)a;
	(void)port;

	if (err)
		c->st = NULL; /* freed by the client after this call */
	if (c->opened)
		c->opened(c->opened_userdata, err);
	if (c->dead)
		return;
	if (err) {
		conn_end(c, 0);
		return;
	}
	if (loop_add_io(c->d->loop, c->app_fd, EPOLLOUT, on_app_io, c, &c->app_src) < 0)
		conn_end(c, ECONNRESET);
}

static const struct proto_stream_ops stream_ops = {
	.opened = st_opened,
	.data = st_data,
	.shutdown = st_shutdown,
	.closed = st_closed,
	.writable = st_writable,
};

/* --- far side: a host socket ------------------------------------------------------- */

static void far_flush(struct vnet_conn *c)
{
	while (buf_len(&c->to_far) > 0) {
		ssize_t n =
			send(c->far_fd, buf_data(&c->to_far), buf_len(&c->to_far), MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			conn_end(c, errno);
			return;
		}
		buf_consume(&c->to_far, (size_t)n);
	}
	if (c->app_eof && buf_len(&c->to_far) == 0 && !c->far_shut) {
		shutdown(c->far_fd, SHUT_WR);
		c->far_shut = true;
	}
}

static int on_far_io(struct loop_source *s, int fd, uint32_t events, void *userdata)
{
	struct vnet_conn *c = userdata;
	uint8_t buf[READ_CHUNK];
	(void)s;

	if (events & EPOLLOUT)
		far_flush(c);
	while (!c->dead && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c->far_eof &&
	       buf_len(&c->to_app) < SOCK_BUF_MAX) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n > 0) {
			buf_append(&c->to_app, buf, (size_t)n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n < 0) {
			conn_end(c, errno);
			return 0;
		}
		c->far_eof = true;
	}
	if (c->dead)
		return 0;
	app_flush(c);
	if (!c->dead && c->connected)
		app_read(c);
	update_events(c);
	return 0;
}

/* --- set-up ------------------------------------------------------------------------- */

int vnet_deliver_new(struct loop *loop, void (*refused)(void *userdata), void *userdata,
		     struct vnet_deliver **ret)
{
	struct vnet_deliver *d = xcalloc(1, sizeof(*d));
	int r = loop_add_defer(loop, reap, d, &d->reaper);

	if (r < 0) {
		free(d);
		return r;
	}
	d->loop = loop;
	d->refused = refused;
	d->userdata = userdata;
	*ret = d;
	return 0;
}

void vnet_deliver_free(struct vnet_deliver *d)
{
	if (!d)
		return;
	while (d->live)
		conn_end(d->live, ECONNRESET);
	reap(NULL, d);
	loop_source_free(d->reaper);
	free(d);
}

static struct vnet_conn *conn_new(struct vnet_deliver *d, int app_fd)
{
	struct vnet_conn *c = xcalloc(1, sizeof(*c));
	int one = 1;

	c->d = d;
	c->app_fd = app_fd;
	c->far_fd = -1;
	buf_init(&c->to_app);
	buf_init(&c->to_far);
	setsockopt(app_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	list_push(&d->live, c);
	d->n++;
	return c;
}

int vnet_deliver_stream(struct vnet_deliver *d, struct proto_client *client, uint64_t id,
			bool mirror, int app_fd)
{
	struct vnet_conn *c = conn_new(d, app_fd);
	int r;

	c->mirror = mirror;
	r = proto_stream_accept(client, id, &stream_ops, c, &c->st);
	if (r >= 0)
		r = loop_add_io(d->loop, app_fd, EPOLLOUT, on_app_io, c, &c->app_src);
	if (r < 0) {
		c->app_fd = -1; /* the caller keeps it on failure */
		conn_end(c, ECONNRESET);
		return r;
	}
	return 0;
}

int vnet_deliver_socket(struct vnet_deliver *d, int far_fd, int app_fd)
{
	struct vnet_conn *c = conn_new(d, app_fd);
	int one = 1, r;

	c->far_fd = far_fd;
	setsockopt(far_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	r = loop_add_io(d->loop, app_fd, EPOLLOUT, on_app_io, c, &c->app_src);
	if (r >= 0)
		r = loop_add_io(d->loop, far_fd, EPOLLIN, on_far_io, c, &c->far_src);
	if (r < 0) {
		c->app_fd = c->far_fd = -1;
		conn_end(c, ECONNRESET);
		return r;
	}
	return 0;
}

unsigned vnet_deliver_count(const struct vnet_deliver *d)
{
	return d->n;
}

int vnet_deliver_open_unix(struct vnet_deliver *d, struct proto_client *client, const char *path,
			   int app_fd, void (*opened)(void *userdata, int err), void *userdata)
{
	struct vnet_conn *c = conn_new(d, app_fd);
	int r;

	c->opened = opened;
	c->opened_userdata = userdata;
	r = proto_stream_open_unix(client, path, &stream_ops, c, &c->st);
	if (r < 0) {
		c->opened = NULL;
		c->app_fd = -1; /* the caller keeps it on failure */
		conn_end(c, 0);
		return r;
	}
	return 0;
}
