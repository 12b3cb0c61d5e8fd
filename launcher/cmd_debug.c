/* `podenv debug agent`: talk to an agent directly, one protocol operation
 * per argument. A diagnostic for users ("what does the agent see?") and the
 * driver of the agent's end-to-end tests and benchmarks.
 *
 *	podenv debug agent -t pid/1234 'stat /etc/hostname' 'cat /app/config.yaml'
 *
 * Each operation prints one result ("ok …" or "error ENOENT: …") or, for
 * cat/tcp/udp, the bytes themselves on stdout. The exit status is 0 when
 * every operation succeeded, 1 otherwise, 2 for usage errors.
 */
#define LOG_TARGET "podenv::debug"
#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/log.h"
#include "dns/dns.h"
#include "launcher/cli.h"
#include "launcher/link.h"
#include "launcher/session.h"

#define MAX_WORDS 8

struct dbg {
	struct loop *loop;
	struct link *link;
	struct proto_client *client;
	char **ops;
	int nops, next;
	bool failed;
	bool busy; /* an operation is in flight */
	bool lost;
	/* the current operation */
	char *w[MAX_WORDS];
	int nw;
	uint64_t fh;
	uint64_t off;
	uint64_t cookie;
	unsigned long long count; /* bytes or entries seen */
	usec_t started;
	/* tcp/udp */
	struct proto_stream *stream;
	struct loop_source *stdin_src;
	bool stdin_eof;
	bool peer_eof;
};

static void op_next(struct dbg *d);

static void fail(struct dbg *d, int err, const char *what)
{
	printf("error %s: %s%s%s\n", strerrorname_np(err) ? strerrorname_np(err) : "?",
	       strerror(err), what ? ": " : "", what ? what : "");
	fflush(stdout);
	d->failed = true;
}

static void op_done(struct dbg *d)
{
	fflush(stdout);
	d->busy = false;
	op_next(d);
}

static void print_attr(const char *prefix, const struct proto_attr *a)
{
	printf("%smode=%o uid=%u gid=%u size=%llu nlink=%u ino=%llu mtime=%lld\n", prefix, a->mode,
	       a->uid, a->gid, (unsigned long long)a->size, a->nlink,
	       (unsigned long long)a->ino, (long long)a->mtime.sec);
}

static const char *type_char(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFDIR: return "d";
	case S_IFLNK: return "l";
	case S_IFREG: return "-";
	case S_IFCHR: return "c";
	case S_IFBLK: return "b";
	case S_IFIFO: return "p";
	case S_IFSOCK: return "s";
	}
	return "?";
}

/* --- simple one-request operations ------------------------------------------ */

static void on_simple(void *userdata, const struct proto_msg *m)
{
	struct dbg *d = userdata;
	const struct proto_rep *p = &m->rep;

	if (m->status) {
		fail(d, m->status, d->w[0]);
		op_done(d);
		return;
	}
	switch (m->type) {
	case PROTO_STAT:
	case PROTO_MKDIR:
	case PROTO_CHMOD:
	case PROTO_CHOWN:
	case PROTO_SYMLINK:
	case PROTO_LINK:
	case PROTO_TRUNCATE:
	case PROTO_UTIMENS:
	case PROTO_MKNOD:
		print_attr("ok ", &p->attr);
		break;
	case PROTO_READLINK:
	case PROTO_HOSTNAME:
		printf("ok %s\n", p->str);
		break;
	case PROTO_READFILE:
		fwrite(p->data.data, 1, p->data.len, stdout);
		if (!p->eof)
			fprintf(stderr, "podenv: (first %u bytes only)\n", p->data.len);
		break;
	case PROTO_RESOLVCONF:
		fwrite(p->data.data, 1, p->data.len, stdout);
		break;
	case PROTO_STATFS:
		printf("ok bsize=%u blocks=%llu bfree=%llu files=%llu namemax=%u\n", p->statfs.bsize,
		       (unsigned long long)p->statfs.blocks, (unsigned long long)p->statfs.bfree,
		       (unsigned long long)p->statfs.files, p->statfs.namemax);
		break;
	case PROTO_GETXATTR:
		printf("ok %.*s\n", (int)p->data.len, (const char *)p->data.data);
		break;
	case PROTO_LISTXATTR:
		printf("ok");
		for (uint32_t i = 0; i < p->data.len; i += (uint32_t)strlen((const char *)p->data.data + i) + 1)
			printf(" %s", (const char *)p->data.data + i);
		printf("\n");
		break;
	case PROTO_GETENV: {
		struct proto_iter it;
		const char *s;
		proto_iter_init(&it, &p->list);
		while (proto_iter_str(&it, &s) > 0)
			printf("%s\n", s);
		break;
	}
	default:
		printf("ok\n");
		break;
	}
	op_done(d);
}

static int send_req(struct dbg *d, struct proto_msg *m, proto_reply_fn cb)
{
	int64_t r = proto_client_request(d->client, m, cb, d);

	if (r < 0) {
		fail(d, (int)-r, "sending the request");
		return (int)r;
	}
	return 0;
}

/* --- cat: OPEN_READ, then READ until EOF, then RELEASE ------------------------- */

static void cat_read(struct dbg *d);

static void on_release(void *userdata, const struct proto_msg *m)
{
	struct dbg *d = userdata;

	if (m->status)
		fail(d, m->status, "release");
	if (!strcmp(d->w[0], "readall")) {
		double s = (double)(now_usec() - d->started) / 1e6;
		printf("ok bytes=%llu seconds=%.6f MBps=%.1f\n", d->count, s,
		       s > 0 ? (double)d->count / s / 1e6 : 0.0);
	}
	op_done(d);
}

static void cat_release(struct dbg *d)
{
	struct proto_msg m = { .type = PROTO_RELEASE };

	m.req.fh = d->fh;
	if (send_req(d, &m, on_release) < 0)
		op_done(d);
}

static void cat_output(struct dbg *d, const struct proto_bytes *b)
{
	if (strcmp(d->w[0], "readall") != 0)
		fwrite(b->data, 1, b->len, stdout);
	d->count += b->len;
	d->off += b->len;
}

static void on_read(void *userdata, const struct proto_msg *m)
{
	struct dbg *d = userdata;

	if (m->status) {
		fail(d, m->status, "read");
		cat_release(d);
		return;
	}
	cat_output(d, &m->rep.data);
	if (m->rep.eof || m->rep.data.len == 0)
		cat_release(d);
	else
		cat_read(d);
}

static void cat_read(struct dbg *d)
{
	struct proto_msg m = { .type = PROTO_READ };

	m.req.fh = d->fh;
	m.req.offset = d->off;
	m.req.count = PROTO_IO_MAX;
	if (send_req(d, &m, on_read) < 0)
		op_done(d);
}

/* readall: the size is known from OPEN_READ, so several READs are kept in
 * flight (as the kernel's readahead does through FUSE); order does not
 * matter, only the byte count. */
#define READALL_DEPTH 4
static struct {
	uint64_t size, next;
	int inflight;
	bool failed;
} ra;

static void readall_more(struct dbg *d);

static void on_readall(void *userdata, const struct proto_msg *m)
{
	struct dbg *d = userdata;

	ra.inflight--;
	if (m->status) {
		if (!ra.failed)
			fail(d, m->status, "read");
		ra.failed = true;
	} else {
		d->count += m->rep.data.len;
	}
	readall_more(d);
}

static void readall_more(struct dbg *d)
{
	while (!ra.failed && ra.inflight < READALL_DEPTH && ra.next < ra.size) {
		struct proto_msg m = { .type = PROTO_READ };
		m.req.fh = d->fh;
		m.req.offset = ra.next;
		m.req.count = PROTO_IO_MAX;
		if (proto_client_request(d->client, &m, on_readall, d) < 0) {
			ra.failed = true;
			break;
		}
		ra.next += PROTO_IO_MAX;
		ra.inflight++;
	}
	if (ra.inflight == 0)
		cat_release(d);
}

static void on_open_read(void *userdata, const struct proto_msg *m)
{
	struct dbg *d = userdata;

	if (m->status) {
		fail(d, m->status, d->w[1]);
		op_done(d);
		return;
	}
	d->fh = m->rep.fh;
	cat_output(d, &m->rep.data);
	if (m->rep.eof) {
		cat_release(d);
	} else if (!strcmp(d->w[0], "readall")) {
		ra.size = m->rep.attr.size;
		ra.next = m->rep.data.len;
		ra.inflight = 0;
		ra.failed = false;
		readall_more(d);
	} else {
		cat_read(d);
	}
}

/* --- ls: OPENDIR, READDIR until eof, RELEASE --------------------------------- */

static void ls_next(struct dbg *d);

static void on_readdir(void *userdata, const struct proto_msg *m)
{
	struct dbg *d = userdata;
	struct proto_iter it;
	struct proto_dirent e;

	if (m->status) {
		fail(d, m->status, "readdir");
		cat_release(d);
		return;
	}
	proto_iter_init(&it, &m->rep.list);
	while (proto_iter_dirent(&it, &e) > 0) {
		if (strcmp(d->w[0], "lscount") != 0)
			printf("%s %s %llu\n", type_char(e.attr.mode), e.name,
			       (unsigned long long)e.attr.size);
		d->cookie = e.cookie;
		d->count++;
	}
	if (m->rep.eof || m->rep.list.count == 0) {
		if (!strcmp(d->w[0], "lscount"))
			printf("ok entries=%llu\n", d->count);
		cat_release(d);
	} else {
		ls_next(d);
	}
}

static void ls_next(struct dbg *d)
{
	struct proto_msg m = { .type = PROTO_READDIR };

	m.req.fh = d->fh;
	m.req.offset = d->cookie;
	m.req.count = 65536;
	if (send_req(d, &m, on_readdir) < 0)
		op_done(d);
}

static void on_opendir(void *userdata, const struct proto_msg *m)
{
	struct dbg *d = userdata;

	if (m->status) {
		fail(d, m->status, d->w[1]);
		op_done(d);
		return;
	}
	d->fh = m->rep.fh;
	ls_next(d);
}

/* --- write: OPEN (create, truncate), WRITE, RELEASE ------------------------------ */

static void on_write(void *userdata, const struct proto_msg *m)
{
	struct dbg *d = userdata;

	if (m->status)
		fail(d, m->status, "write");
	else
		printf("ok wrote=%u\n", m->rep.count);
	cat_release(d);
}

static void on_open_write(void *userdata, const struct proto_msg *m)
{
	struct dbg *d = userdata;
	struct proto_msg w = { .type = PROTO_WRITE };

	if (m->status) {
		fail(d, m->status, d->w[1]);
		op_done(d);
		return;
	}
	d->fh = m->rep.fh;
	w.req.fh = d->fh;
	w.req.offset = 0;
	w.req.data.data = (const uint8_t *)d->w[2];
	w.req.data.len = (uint32_t)strlen(d->w[2]);
	if (send_req(d, &w, on_write) < 0)
		op_done(d);
}

/* --- statloop: N stats with K in flight (benchmark of the round trip) ---------- */

struct statloop {
	struct dbg *d;
	unsigned long long total, sent, done;
	int errors;
};
static struct statloop sl;

static void statloop_send(void);

static void on_statloop(void *userdata, const struct proto_msg *m)
{
	(void)userdata;
	if (m->status)
		sl.errors++;
	sl.done++;
	if (sl.sent < sl.total)
		statloop_send();
	else if (sl.done == sl.total) {
		double s = (double)(now_usec() - sl.d->started) / 1e6;
		if (sl.errors)
			fail(sl.d, EIO, "some stats failed");
		else
			printf("ok ops=%llu seconds=%.6f ops_per_sec=%.0f\n", sl.total, s,
			       (double)sl.total / s);
		op_done(sl.d);
	}
}

static void statloop_send(void)
{
	struct proto_msg m = { .type = PROTO_STAT };

	m.req.path = sl.d->w[1];
	sl.sent++;
	proto_client_request(sl.d->client, &m, on_statloop, NULL);
}

/* --- tcp / udp: stdin → stream → stdout ------------------------------------------ */

static void stream_finish(struct dbg *d, int err)
{
	loop_source_free(d->stdin_src);
	d->stdin_src = NULL;
	if (err)
		fail(d, err, "stream");
	d->stream = NULL;
	op_done(d);
}

/* Moves stdin into the stream while it has room; called when stdin is
 * readable and when the stream frees room. stdin may be a pipe (epoll) or
 * a regular file (epoll refuses those: read until the stream is full). */
static void pump_stdin(struct dbg *d)
{
	char buf[65536];

	while (!d->stdin_eof && d->stream) {
		size_t space = proto_stream_write_space(d->stream);
		if (space == 0) {
			if (d->stdin_src)
				loop_io_events_set(d->stdin_src, 0); /* until writable() */
			return;
		}
		ssize_t n = read(0, buf, MIN(space, sizeof(buf)));
		if (n > 0) {
			proto_stream_write(d->stream, buf, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (d->stdin_src)
				loop_io_events_set(d->stdin_src, EPOLLIN);
			return;
		}
		d->stdin_eof = true;
		loop_source_free(d->stdin_src);
		d->stdin_src = NULL;
		if (!strcmp(d->w[0], "tcp"))
			proto_stream_shutdown(d->stream);
	}
}

static int on_stdin(struct loop_source *s, int fd, uint32_t events, void *userdata)
{
	(void)s;
	(void)fd;
	(void)events;
	pump_stdin(userdata);
	return 0;
}

static void on_stream_opened(void *userdata, int err, const struct proto_addr *a, uint16_t port)
{
	struct dbg *d = userdata;
	(void)a;
	(void)port;

	if (err) {
		d->stream = NULL;
		fail(d, err, "connect");
		op_done(d);
		return;
	}
	fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
	if (loop_add_io(d->loop, 0, EPOLLIN, on_stdin, d, &d->stdin_src) < 0)
		d->stdin_src = NULL; /* a regular file: pumped by writable() */
	pump_stdin(d);
}

static void on_stream_data(void *userdata, const uint8_t *p, size_t n)
{
	struct dbg *d = userdata;

	fwrite(p, 1, n, stdout);
	proto_stream_consumed(d->stream, n);
	if (!strcmp(d->w[0], "udp")) {
		/* One reply datagram is the answer. */
		fflush(stdout);
		proto_stream_close(d->stream, 0);
		stream_finish(d, 0);
	}
}

static void on_stream_shutdown(void *userdata)
{
	struct dbg *d = userdata;

	d->peer_eof = true;
	fflush(stdout);
}

static void on_stream_closed(void *userdata, int err)
{
	struct dbg *d = userdata;

	d->stream = NULL;
	fflush(stdout);
	stream_finish(d, err);
}

static void on_stream_writable(void *userdata)
{
	pump_stdin(userdata);
}

static const struct proto_stream_ops stream_ops = {
	.opened = on_stream_opened,
	.data = on_stream_data,
	.shutdown = on_stream_shutdown,
	.closed = on_stream_closed,
	.writable = on_stream_writable,
};

static int parse_addr(const char *host, struct proto_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, host, a->bytes) == 1) {
		a->family = PROTO_AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, host, a->bytes) == 1) {
		a->family = PROTO_AF_INET6;
		return 0;
	}
	return -EINVAL;
}

/* --- echoload: N concurrent streams, each sending BYTES of its own
 * deterministic data to an echo server and checking what comes back ------- */

struct echo_conn {
	struct dbg *d;
	struct proto_stream *st;
	unsigned idx;
	uint64_t sent, received;
	uint32_t seed_tx, seed_rx; /* xorshift states for the two directions */
	bool done;
	bool bad;
};

static struct {
	struct echo_conn *conns;
	unsigned n, finished, bad;
	uint64_t bytes;
} el;

static uint8_t xorshift_byte(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return (uint8_t)*x;
}

static void echo_finish(struct echo_conn *ec, bool ok)
{
	if (ec->done)
		return;
	ec->done = true;
	if (!ok)
		el.bad++;
	if (++el.finished == el.n) {
		struct dbg *d = ec->d;
		double s = (double)(now_usec() - d->started) / 1e6;
		if (el.bad)
			fail(d, EIO, "some streams did not echo their data intact");
		else
			printf("ok streams=%u bytes_each=%llu seconds=%.3f MBps=%.1f\n", el.n,
			       (unsigned long long)el.bytes, s,
			       (double)el.bytes * el.n * 2 / s / 1e6);
		free(el.conns);
		el.conns = NULL;
		op_done(d);
	}
}

static void echo_pump(struct echo_conn *ec)
{
	uint8_t buf[16384];

	while (ec->sent < el.bytes) {
		size_t space = proto_stream_write_space(ec->st);
		size_t n = MIN(MIN(space, sizeof(buf)), (size_t)(el.bytes - ec->sent));
		if (n == 0)
			return; /* writable() follows */
		uint32_t x = ec->seed_tx;
		for (size_t i = 0; i < n; i++)
			buf[i] = xorshift_byte(&x);
		size_t w = proto_stream_write(ec->st, buf, n);
		/* Advance the generator by what was accepted only. */
		for (size_t i = 0; i < w; i++)
			xorshift_byte(&ec->seed_tx);
		ec->sent += w;
	}
	proto_stream_shutdown(ec->st);
}

static void echo_opened(void *userdata, int err, const struct proto_addr *a, uint16_t port)
{
	struct echo_conn *ec = userdata;
	(void)a;
	(void)port;

	if (err) {
		ec->st = NULL;
		echo_finish(ec, false);
		return;
	}
	echo_pump(ec);
}

static void echo_data(void *userdata, const uint8_t *p, size_t n)
{
	struct echo_conn *ec = userdata;

	for (size_t i = 0; i < n; i++)
		if (p[i] != xorshift_byte(&ec->seed_rx))
			ec->bad = true;
	ec->received += n;
	proto_stream_consumed(ec->st, n);
}

static void echo_shutdown(void *userdata)
{
	struct echo_conn *ec = userdata;

	/* The echo side finished: done when everything came back. */
	if (ec->received == el.bytes && !ec->bad) {
		proto_stream_close(ec->st, 0);
		ec->st = NULL;
		echo_finish(ec, true);
	}
}

static void echo_closed(void *userdata, int err)
{
	struct echo_conn *ec = userdata;

	ec->st = NULL;
	echo_finish(ec, !err && !ec->bad && ec->received == el.bytes);
}

static void echo_writable(void *userdata)
{
	echo_pump(userdata);
}

static const struct proto_stream_ops echo_ops = {
	.opened = echo_opened,
	.data = echo_data,
	.shutdown = echo_shutdown,
	.closed = echo_closed,
	.writable = echo_writable,
};

static int parse_addr(const char *host, struct proto_addr *a);

static int echoload_start(struct dbg *d)
{
	struct proto_addr a;
	unsigned n = (unsigned)strtoul(d->w[3], NULL, 10);

	el.bytes = strtoull(d->w[4], NULL, 10);
	if (parse_addr(d->w[1], &a) < 0 || n == 0 || n > 10000) {
		fail(d, EINVAL, "echoload IP PORT N BYTES");
		return -EINVAL;
	}
	el.n = n;
	el.finished = el.bad = 0;
	el.conns = xcalloc(n, sizeof(*el.conns));
	for (unsigned i = 0; i < n; i++) {
		struct echo_conn *ec = &el.conns[i];
		ec->d = d;
		ec->idx = i;
		ec->seed_tx = ec->seed_rx = 2463534242u + i * 7919u;
		if (proto_stream_open(d->client, PROTO_STREAM_TCP, &a, (uint16_t)atoi(d->w[2]),
				      &echo_ops, ec, &ec->st) < 0)
			echo_finish(ec, false);
	}
	return 0;
}

/* --- tcpsend, pingpong: TCP through the agent (benchmarks) ---------------------
 * tcpsend IP PORT BYTES: BYTES of zeros as fast as credit allows, half-close,
 * wait for the peer's close; MB/s from the stream's opening to that close.
 * pingpong IP PORT N: N sequential 1-byte round trips against an echo server
 * (after 100 not counted); mean, p50 and p99 per round trip. */

static struct {
	struct dbg *d;
	struct proto_stream *st;
	bool ping; /* pingpong, else tcpsend */
	uint64_t total, sent, done;
	uint64_t t0;   /* ns: stream opened / this round trip sent */
	uint64_t *rtt; /* pingpong: ns per counted round trip */
	bool finished;
} tp;

#define TP_WARMUP 100

static uint64_t tp_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int tp_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void tp_finish(int err)
{
	struct dbg *d = tp.d;

	if (tp.finished)
		return;
	tp.finished = true;
	if (tp.st)
		proto_stream_close(tp.st, 0);
	tp.st = NULL;
	if (err) {
		fail(d, err, tp.ping ? "pingpong" : "tcpsend");
	} else if (!tp.ping) {
		double s = (double)(tp_ns() - tp.t0) / 1e9;
		printf("ok bytes=%llu seconds=%.6f MBps=%.1f\n", (unsigned long long)tp.sent, s,
		       (double)tp.sent / s / 1e6);
	} else {
		uint64_t n = tp.total, sum = 0;
		for (uint64_t i = 0; i < n; i++)
			sum += tp.rtt[i];
		qsort(tp.rtt, n, sizeof(*tp.rtt), tp_cmp);
		printf("ok round_trips=%llu mean_us=%.1f p50_us=%.1f p99_us=%.1f\n",
		       (unsigned long long)n, (double)sum / (double)n / 1e3,
		       (double)tp.rtt[n / 2] / 1e3, (double)tp.rtt[n * 99 / 100] / 1e3);
	}
	free(tp.rtt);
	tp.rtt = NULL;
	op_done(d);
}

static void tp_pump(void)
{
	static const uint8_t zeros[65536];

	if (tp.ping) {
		tp.t0 = tp_ns();
		if (proto_stream_write(tp.st, "x", 1) != 1)
			tp_finish(ENOBUFS);
		return;
	}
	while (tp.sent < tp.total) {
		size_t n = MIN(sizeof(zeros), (size_t)(tp.total - tp.sent));
		size_t w = proto_stream_write(tp.st, zeros, n);
		tp.sent += w;
		if (w < n)
			return; /* writable() follows */
	}
	proto_stream_shutdown(tp.st);
}

static void tp_opened(void *userdata, int err, const struct proto_addr *a, uint16_t port)
{
	(void)userdata;
	(void)a;
	(void)port;
	if (err) {
		tp.st = NULL;
		tp_finish(err);
		return;
	}
	tp.t0 = tp_ns();
	tp_pump();
}

static void tp_data(void *userdata, const uint8_t *p, size_t n)
{
	(void)userdata;
	(void)p;
	proto_stream_consumed(tp.st, n);
	if (!tp.ping || tp.finished)
		return;
	for (size_t i = 0; i < n; i++) {
		if (tp.done >= TP_WARMUP)
			tp.rtt[tp.done - TP_WARMUP] = tp_ns() - tp.t0;
		tp.done++;
	}
	if (tp.done >= tp.total + TP_WARMUP)
		tp_finish(0);
	else
		tp_pump();
}

static void tp_shutdown(void *userdata)
{
	(void)userdata;
	/* tcpsend: the sink read everything and closed. */
	tp_finish(tp.ping || tp.sent < tp.total ? ECONNRESET : 0);
}

static void tp_closed(void *userdata, int err)
{
	(void)userdata;
	tp.st = NULL;
	tp_finish(err ? err : tp.ping || tp.sent < tp.total ? ECONNRESET : 0);
}

static void tp_writable(void *userdata)
{
	(void)userdata;
	if (!tp.ping && !tp.finished)
		tp_pump();
}

static const struct proto_stream_ops tp_ops = {
	.opened = tp_opened,
	.data = tp_data,
	.shutdown = tp_shutdown,
	.closed = tp_closed,
	.writable = tp_writable,
};

static int tp_start(struct dbg *d)
{
	struct proto_addr a;

	tp = (typeof(tp)){
		.d = d, .ping = !strcmp(d->w[0], "pingpong"), .total = strtoull(d->w[3], NULL, 10)};
	if (parse_addr(d->w[1], &a) < 0 || tp.total == 0 || (tp.ping && tp.total > 100000000)) {
		fail(d, EINVAL, tp.ping ? "pingpong IP PORT N" : "tcpsend IP PORT BYTES");
		return -EINVAL;
	}
	if (tp.ping)
		tp.rtt = xcalloc(tp.total, sizeof(*tp.rtt));
	int r = proto_stream_open(d->client, PROTO_STREAM_TCP, &a, (uint16_t)atoi(d->w[2]), &tp_ops,
				  NULL, &tp.st);
	if (r < 0) {
		free(tp.rtt);
		tp.rtt = NULL;
		fail(d, -r, "stream");
	}
	return r;
}

/* --- resolve, dnsquery: DNS in the pod ------------------------------------------------
 * DNS_QUERY carries DNS messages both ways: the dns module builds the query
 * and parses the answer (dns/dns.h). */

static void on_resolve(void *userdata, const struct proto_msg *m)
{
	struct dbg *d = userdata;
	struct proto_iter it;
	struct proto_dnsaddr a;
	char text[INET6_ADDRSTRLEN];

	if (m->status) {
		fail(d, m->status, d->w[1]);
		op_done(d);
		return;
	}
	printf("ok %s", m->rep.str);
	proto_iter_init(&it, &m->rep.list);
	while (proto_iter_dnsaddr(&it, &a) > 0)
		printf(" %s ttl=%u",
		       inet_ntop(a.addr.family == PROTO_AF_INET ? AF_INET : AF_INET6, a.addr.bytes,
				 text, sizeof(text)),
		       a.ttl);
	printf("\n");
	op_done(d);
}

static int resolve_start(struct dbg *d)
{
	struct proto_msg m = {.type = PROTO_DNS_RESOLVE};
	const char *op = d->w[0];

	m.req.name = d->w[1];
	m.req.kind = !strcmp(op, "resolve4")   ? PROTO_AF_INET
		     : !strcmp(op, "resolve6") ? PROTO_AF_INET6
					       : PROTO_AF_NONE;
	return send_req(d, &m, on_resolve);
}

static void on_dnsquery(void *userdata, const struct proto_msg *m)
{
	struct dbg *d = userdata;
	struct dns_msg ans;
	struct buf text = {0};

	if (m->status) {
		fail(d, m->status, d->w[1]);
		op_done(d);
		return;
	}
	if (dns_msg_parse(m->rep.data.data, m->rep.data.len, &ans) < 0) {
		fail(d, EBADMSG, "malformed DNS answer");
		op_done(d);
		return;
	}
	if (ans.hdr.id != d->fh || !ans.hdr.qr) {
		fail(d, EBADMSG, "not the answer to our query");
		dns_msg_done(&ans);
		op_done(d);
		return;
	}
	const char *rcode = dns_rcode_name(ans.hdr.rcode);
	printf("ok rcode=%s tc=%d answers=%u\n", rcode ? rcode : "?", ans.hdr.tc, ans.ancount);
	for (unsigned i = 0; i < ans.ancount; i++) {
		const struct dns_rr *rr = &ans.an[i];
		const char *type = dns_type_name(rr->type);

		buf_reset(&text);
		dns_rdata_format(rr, &text);
		/* parsed names carry no trailing dot; the root is "." */
		printf("  %s%s ", rr->name, strcmp(rr->name, ".") ? "." : "");
		if (type)
			printf("%s ", type);
		else
			printf("TYPE%u ", rr->type);
		printf("%.*s ttl=%u\n", (int)buf_len(&text), (const char *)buf_data(&text),
		       rr->ttl);
	}
	buf_done(&text);
	dns_msg_done(&ans);
	op_done(d);
}

static int dnsquery_start(struct dbg *d)
{
	struct proto_msg m = {.type = PROTO_DNS_QUERY};
	struct buf q = {0};
	char *end;
	unsigned long type = strtoul(d->w[2], &end, 10);
	int r;

	if (*end || !*d->w[2] || type > 65535) {
		r = dns_type_parse(d->w[2]);
		type = r > 0 ? (unsigned long)r : 0;
	}
	d->fh = (uint16_t)(now_usec() ^ (uint64_t)getpid() << 8);
	if (type == 0 || dns_query_build(d->fh, d->w[1], (uint16_t)type, true, 0, &q) < 0) {
		buf_done(&q);
		fail(d, EINVAL, "dnsquery NAME TYPE: a DNS name and A, AAAA, SRV... or a number");
		return -EINVAL;
	}
	m.req.data.data = buf_data(&q);
	m.req.data.len = (uint32_t)buf_len(&q);
	r = send_req(d, &m, on_dnsquery);
	buf_done(&q);
	return r;
}

/* --- the operation table -------------------------------------------------------- */

struct op_desc {
	const char *name;
	int nargs; /* words after the name */
	const char *usage;
};

static const struct op_desc op_table[] = {
	{ "stat", 1, "stat PATH" },		{ "lstat", 1, "lstat PATH" },
	{ "cat", 1, "cat PATH" },		{ "readall", 1, "readall PATH (throughput)" },
	{ "readfile", 1, "readfile PATH" },	{ "ls", 1, "ls DIR" },
	{ "lscount", 1, "lscount DIR" },	{ "readlink", 1, "readlink PATH" },
	{ "mkdir", 1, "mkdir PATH" },		{ "rmdir", 1, "rmdir PATH" },
	{ "unlink", 1, "unlink PATH" },		{ "rename", 2, "rename OLD NEW" },
	{ "symlink", 2, "symlink TARGET PATH" }, { "link", 2, "link OLD NEW" },
	{ "chmod", 2, "chmod OCTAL PATH" },	{ "truncate", 2, "truncate PATH SIZE" },
	{ "write", 2, "write PATH TEXT" },	{ "statfs", 1, "statfs PATH" },
	{ "access", 2, "access PATH r|w|x|f" }, { "getxattr", 2, "getxattr PATH NAME" },
	{ "setxattr", 3, "setxattr PATH NAME VALUE" }, { "listxattr", 1, "listxattr PATH" },
	{ "env", 0, "env" },			{ "hostname", 0, "hostname" },
	{ "resolvconf", 0, "resolvconf" },	{ "tcp", 2, "tcp IP PORT (stdin -> stdout)" },
	{ "udp", 2, "udp IP PORT (stdin as one datagram, one reply)" },
	{ "statloop", 3, "statloop PATH N INFLIGHT (ops/s)" },
	{ "echoload", 4, "echoload IP PORT N BYTES (N concurrent echo streams, verified)" },
	{ "resolve", 1, "resolve NAME (DNS_RESOLVE in the pod: canonical name, addresses)" },
	{ "resolve4", 1, "resolve4 NAME (IPv4 only)" },
	{ "resolve6", 1, "resolve6 NAME (IPv6 only)" },
	{ "dnsquery", 2, "dnsquery NAME TYPE (raw DNS_QUERY; TYPE A, AAAA, SRV... or a number)" },
	{ "tcpsend", 3, "tcpsend IP PORT BYTES (zeros, half-close, wait for close; MB/s)" },
	{ "pingpong", 3, "pingpong IP PORT N (1-byte round trips to an echo server; mean/p50/p99 us)" },
};

static int op_start(struct dbg *d)
{
	struct proto_msg m = { 0 };
	const char *op = d->w[0];
	struct proto_req *q = &m.req;

	d->fh = d->off = d->cookie = d->count = 0;
	d->started = now_usec();
	q->path = d->nw > 1 ? d->w[1] : "";
	if (!strcmp(op, "stat") || !strcmp(op, "lstat")) {
		m.type = PROTO_STAT;
		q->flags = op[0] == 'l' ? PROTO_STAT_NOFOLLOW : 0;
	} else if (!strcmp(op, "cat") || !strcmp(op, "readall")) {
		m.type = PROTO_OPEN_READ;
		q->flags = O_RDONLY;
		q->count = PROTO_IO_MAX;
		return send_req(d, &m, on_open_read);
	} else if (!strcmp(op, "readfile")) {
		m.type = PROTO_READFILE;
		q->count = PROTO_IO_MAX;
	} else if (!strcmp(op, "ls") || !strcmp(op, "lscount")) {
		m.type = PROTO_OPENDIR;
		return send_req(d, &m, on_opendir);
	} else if (!strcmp(op, "readlink")) {
		m.type = PROTO_READLINK;
	} else if (!strcmp(op, "mkdir")) {
		m.type = PROTO_MKDIR;
		q->mode = 0755;
	} else if (!strcmp(op, "rmdir")) {
		m.type = PROTO_RMDIR;
	} else if (!strcmp(op, "unlink")) {
		m.type = PROTO_UNLINK;
	} else if (!strcmp(op, "rename")) {
		m.type = PROTO_RENAME;
		q->path2 = d->w[2];
	} else if (!strcmp(op, "symlink")) {
		m.type = PROTO_SYMLINK;
		q->path = d->w[2];
		q->path2 = d->w[1];
	} else if (!strcmp(op, "link")) {
		m.type = PROTO_LINK;
		q->path2 = d->w[2];
	} else if (!strcmp(op, "chmod")) {
		m.type = PROTO_CHMOD;
		q->mode = (uint32_t)strtoul(d->w[1], NULL, 8);
		q->path = d->w[2];
	} else if (!strcmp(op, "truncate")) {
		m.type = PROTO_TRUNCATE;
		q->size = strtoull(d->w[2], NULL, 10);
	} else if (!strcmp(op, "write")) {
		m.type = PROTO_OPEN;
		q->flags = O_WRONLY | O_CREAT | O_TRUNC;
		q->mode = 0644;
		return send_req(d, &m, on_open_write);
	} else if (!strcmp(op, "statfs")) {
		m.type = PROTO_STATFS;
	} else if (!strcmp(op, "access")) {
		m.type = PROTO_ACCESS;
		q->mode = d->w[2][0] == 'r' ? R_OK : d->w[2][0] == 'w' ? W_OK
						   : d->w[2][0] == 'x' ? X_OK : F_OK;
	} else if (!strcmp(op, "getxattr")) {
		m.type = PROTO_GETXATTR;
		q->name = d->w[2];
		q->count = 65536;
	} else if (!strcmp(op, "setxattr")) {
		m.type = PROTO_SETXATTR;
		q->name = d->w[2];
		q->data.data = (const uint8_t *)d->w[3];
		q->data.len = (uint32_t)strlen(d->w[3]);
	} else if (!strcmp(op, "listxattr")) {
		m.type = PROTO_LISTXATTR;
		q->count = 65536;
	} else if (!strcmp(op, "env")) {
		m.type = PROTO_GETENV;
	} else if (!strcmp(op, "hostname")) {
		m.type = PROTO_HOSTNAME;
	} else if (!strcmp(op, "resolvconf")) {
		m.type = PROTO_RESOLVCONF;
	} else if (!strcmp(op, "tcp") || !strcmp(op, "udp")) {
		struct proto_addr a;
		if (parse_addr(d->w[1], &a) < 0) {
			fail(d, EINVAL, "expected a numeric IP address");
			return -EINVAL;
		}
		int r = proto_stream_open(d->client, op[0] == 't' ? PROTO_STREAM_TCP : PROTO_STREAM_UDP,
					  &a, (uint16_t)atoi(d->w[2]), &stream_ops, d, &d->stream);
		if (r < 0)
			fail(d, -r, "stream");
		return r;
	} else if (!strcmp(op, "echoload")) {
		return echoload_start(d);
	} else if (!strncmp(op, "resolve", 7)) {
		return resolve_start(d);
	} else if (!strcmp(op, "dnsquery")) {
		return dnsquery_start(d);
	} else if (!strcmp(op, "tcpsend") || !strcmp(op, "pingpong")) {
		return tp_start(d);
	} else if (!strcmp(op, "statloop")) {
		sl = (struct statloop){ .d = d, .total = strtoull(d->w[2], NULL, 10) };
		unsigned long long inflight = strtoull(d->w[3], NULL, 10);
		if (sl.total == 0 || inflight == 0) {
			fail(d, EINVAL, "N and INFLIGHT must be positive");
			return -EINVAL;
		}
		for (unsigned long long i = 0; i < inflight && sl.sent < sl.total; i++)
			statloop_send();
		return 0;
	}
	return send_req(d, &m, on_simple);
}

static void op_next(struct dbg *d)
{
	while (!d->busy && !d->lost && d->next < d->nops) {
		char *text = d->ops[d->next++], *save = NULL;
		d->nw = 0;
		for (char *t = strtok_r(text, " ", &save); t && d->nw < MAX_WORDS;
		     t = strtok_r(NULL, " ", &save))
			d->w[d->nw++] = t;
		if (d->nw == 0)
			continue;
		const struct op_desc *desc = NULL;
		for (size_t i = 0; i < ARRAY_SIZE(op_table); i++)
			if (!strcmp(op_table[i].name, d->w[0]))
				desc = &op_table[i];
		if (!desc || d->nw != desc->nargs + 1) {
			fail(d, EINVAL, desc ? desc->usage : "unknown operation (see --help)");
			continue;
		}
		d->busy = true;
		if (op_start(d) < 0)
			d->busy = false;
	}
	if (!d->busy && (d->next >= d->nops || d->lost))
		loop_exit(d->loop, 0);
}

static void on_lost(void *userdata, const char *reason)
{
	struct dbg *d = userdata;

	d->lost = true;
	/* Before the link is up, link_wait_ready() reports the reason. */
	if (d->client)
		fprintf(stderr, "podenv: lost the agent: %s\n", reason);
	d->failed = true;
	loop_exit(d->loop, 1);
}

static const struct link_ops dbg_link_ops = { .lost = on_lost };

static void usage(FILE *f)
{
	fputs("Usage: podenv debug agent (-t pid/PID | --connect IP:PORT --token-file F) OP...\n"
	      "\n"
	      "Runs protocol operations against an agent and prints each result.\n"
	      "With --connect, TLS (an agent started with --tls-cert) is verified by\n"
	      "  --tls-ca FILE          a CA that issued the agent's certificate for its IP\n"
	      "  --tls-fingerprint HEX  the SHA-256 of the agent's certificate\n"
	      "Operations (one argument each, words separated by spaces):\n",
	      f);
	for (size_t i = 0; i < ARRAY_SIZE(op_table); i++)
		fprintf(f, "  %s\n", op_table[i].usage);
}

/* Finds podenv-agent: $PODENV_AGENT, else next to this program, else PATH. */
const char *cli_agent_path(void)
{
	static char path[4096];
	const char *env = getenv("PODENV_AGENT");
	ssize_t n;

	if (env && *env)
		return env;
	n = readlink("/proc/self/exe", path, sizeof(path) - 32);
	if (n > 0) {
		path[n] = '\0';
		char *slash = strrchr(path, '/');
		if (slash) {
			snprintf(slash + 1, sizeof(path) - (size_t)(slash + 1 - path), "podenv-agent");
			if (access(path, X_OK) == 0)
				return path;
		}
	}
	return "podenv-agent";
}

int cli_debug_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "target", required_argument, NULL, 't' },
		{ "connect", required_argument, NULL, 'c' },
		{ "token-file", required_argument, NULL, 'k' },
		{ "tls-ca", required_argument, NULL, 'A' },
		{ "tls-fingerprint", required_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *target = NULL, *connect_to = NULL, *token_file = NULL;
	struct link_tls_opts tls = { 0 };
	struct dbg d = { 0 };
	struct err e;
	int c, r;

	if (argc < 2 || strcmp(argv[1], "agent") != 0) {
		fputs("Usage: podenv debug agent ... (see podenv debug agent --help)\n", stderr);
		return 2;
	}
	argc--;
	argv++;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+t:h", longopts, NULL)) != -1) {
		switch (c) {
		case 't':
			target = optarg;
			break;
		case 'c':
			connect_to = optarg;
			break;
		case 'k':
			token_file = optarg;
			break;
		case 'A':
			tls.ca_file = optarg;
			break;
		case 'F':
			tls.fingerprint = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "podenv: debug agent: bad option %s\n", argv[optind - 1]);
			return 2;
		}
	}
	if (!target == !connect_to) {
		fputs("podenv: debug agent: give -t pid/PID or --connect IP:PORT\n", stderr);
		return 2;
	}
	if (target && (tls.ca_file || tls.fingerprint)) {
		fputs("podenv: debug agent: --tls-ca and --tls-fingerprint go with --connect\n",
		      stderr);
		return 2;
	}
	err_clear(&e);
	r = loop_new(&d.loop);
	if (r < 0)
		return 1;
	if (target) {
		char *end;
		long pid = strncmp(target, "pid/", 4) == 0 ? strtol(target + 4, &end, 10) : -1;
		if (pid <= 0 || *end) {
			fprintf(stderr, "podenv: debug agent: target '%s': expected pid/PID\n", target);
			loop_free(d.loop);
			return 2;
		}
		/* The agent logs to our stderr. */
		const char *args[] = { "--log-level", session_agent_log_level(), NULL };
		r = session_check_local_target((pid_t)pid, &e);
		if (r >= 0)
			r = link_spawn_local(d.loop, cli_agent_path(), (pid_t)pid, args,
					     &dbg_link_ops, &d, &d.link, &e);
	} else {
		uint8_t token[PROTO_TOKEN_SIZE];
		char text[256] = "";
		FILE *f = token_file ? fopen(token_file, "r") : NULL;
		if (!f || !fgets(text, sizeof(text), f) || proto_token_parse(text, token) < 0) {
			fprintf(stderr, "podenv: debug agent: --token-file %s: %s\n",
				token_file ? token_file : "(missing)",
				f ? "expected 64 hex digits" : strerror(errno));
			if (f)
				fclose(f);
			loop_free(d.loop);
			return 2;
		}
		fclose(f);
		r = link_connect_tcp(d.loop, connect_to, token,
				     tls.ca_file || tls.fingerprint ? &tls : NULL, &dbg_link_ops,
				     &d, &d.link, &e);
	}
	if (r >= 0)
		r = link_wait_ready(d.link, 10 * USEC_PER_SEC, &e);
	if (r < 0) {
		fprintf(stderr, "podenv: %s\n", e.msg);
		link_free(d.link);
		loop_free(d.loop);
		return 1;
	}
	d.client = link_client(d.link);
	d.ops = argv + optind;
	d.nops = argc - optind;
	signal(SIGPIPE, SIG_IGN);
	op_next(&d);
	r = loop_run(d.loop);
	fflush(stdout);
	link_free(d.link);
	loop_free(d.loop);
	return d.failed || r != 0 ? 1 : 0;
}
