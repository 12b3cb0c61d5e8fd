/* Unit tests for common/loop.c: io, timers, signals, children, defers, and
 * freeing sources during dispatch. */
#include <fcntl.h>
#include <pthread.h>
#include <sys/socket.h>

#include "common/loop.h"
#include "tests/unit/tap.h"

struct counter {
	int calls;
	int last;
	struct loop_source *to_free; /* freed by the callback when set */
};

static int on_read(struct loop_source *s, int fd, uint32_t events, void *ud)
{
	struct counter *c = ud;
	char b[64];
	(void)s;
	if (events & EPOLLIN) {
		ssize_t n = read(fd, b, sizeof(b));
		c->last = (int)n;
	}
	c->calls++;
	if (c->to_free) {
		loop_source_free(c->to_free);
		c->to_free = NULL;
	}
	return 0;
}

TEST(loop_io_readiness)
{
	struct loop *l;
	struct counter c = { 0 };
	int sv[2];
	REQUIRE(loop_new(&l) == 0);
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
	CHECK_OK(loop_add_io(l, sv[0], EPOLLIN, on_read, &c, NULL));
	CHECK_OK(loop_run_once(l, 0));
	CHECK_INT(c.calls, ==, 0);
	REQUIRE(write(sv[1], "abc", 3) == 3);
	CHECK_OK(loop_run_once(l, 1000 * USEC_PER_MSEC));
	CHECK_INT(c.calls, ==, 1);
	CHECK_INT(c.last, ==, 3);
	loop_free(l);
	close(sv[0]);
	close(sv[1]);
}

TEST(loop_io_events_can_change)
{
	struct loop *l;
	struct loop_source *s;
	struct counter c = { 0 };
	int sv[2];
	REQUIRE(loop_new(&l) == 0);
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
	CHECK_OK(loop_add_io(l, sv[0], 0, on_read, &c, &s));
	CHECK_OK(loop_run_once(l, 0));
	CHECK_INT(c.calls, ==, 0);
	CHECK_OK(loop_io_events_set(s, EPOLLOUT)); /* writable at once */
	CHECK_OK(loop_run_once(l, 0));
	CHECK_INT(c.calls, ==, 1);
	loop_free(l);
	close(sv[0]);
	close(sv[1]);
}

/* Two sources ready in the same batch; the first frees the second. The
 * freed one must not be called (its memory must stay valid until the batch
 * ends: ASan would catch a use after free). */
TEST(loop_free_sibling_during_dispatch)
{
	struct loop *l;
	struct loop_source *a, *b;
	struct counter ca = { 0 }, cb = { 0 };
	int s1[2], s2[2];
	REQUIRE(loop_new(&l) == 0);
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s1) == 0);
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s2) == 0);
	CHECK_OK(loop_add_io(l, s1[0], EPOLLIN, on_read, &ca, &a));
	CHECK_OK(loop_add_io(l, s2[0], EPOLLIN, on_read, &cb, &b));
	ca.to_free = b;
	cb.to_free = a;
	REQUIRE(write(s1[1], "x", 1) == 1);
	REQUIRE(write(s2[1], "y", 1) == 1);
	CHECK_OK(loop_run_once(l, 1000 * USEC_PER_MSEC));
	CHECK_INT(ca.calls + cb.calls, ==, 1);
	CHECK_OK(loop_run_once(l, 0));
	CHECK_INT(ca.calls + cb.calls, ==, 1);
	loop_free(l);
	close(s1[0]);
	close(s1[1]);
	close(s2[0]);
	close(s2[1]);
}

static int on_self_free(struct loop_source *s, int fd, uint32_t events, void *ud)
{
	struct counter *c = ud;
	(void)fd;
	(void)events;
	c->calls++;
	loop_source_free(s);
	loop_source_free(s); /* twice is harmless */
	return 0;
}

TEST(loop_source_frees_itself)
{
	struct loop *l;
	struct counter c = { 0 };
	int sv[2];
	REQUIRE(loop_new(&l) == 0);
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
	CHECK_OK(loop_add_io(l, sv[0], EPOLLIN, on_self_free, &c, NULL));
	REQUIRE(write(sv[1], "x", 1) == 1);
	CHECK_OK(loop_run_once(l, 1000 * USEC_PER_MSEC));
	CHECK_OK(loop_run_once(l, 0));
	CHECK_INT(c.calls, ==, 1);
	loop_free(l);
	close(sv[0]);
	close(sv[1]);
}

struct timer_log {
	int order[8];
	int n;
	usec_t fired_at;
};

static int on_timer(struct loop_source *s, usec_t now, void *ud)
{
	struct timer_log *t = ud;
	(void)s;
	t->order[t->n++] = (int)(intptr_t)0;
	t->fired_at = now;
	return 0;
}

struct ordered {
	struct timer_log *log;
	int id;
};

static int on_ordered(struct loop_source *s, usec_t now, void *ud)
{
	struct ordered *o = ud;
	(void)s;
	(void)now;
	o->log->order[o->log->n++] = o->id;
	return 0;
}

TEST(loop_timers_fire_in_deadline_order)
{
	struct loop *l;
	struct timer_log log = { 0 };
	struct ordered o[5];
	usec_t base = now_usec();
	int deadlines[5] = { 30, 10, 50, 20, 40 };
	REQUIRE(loop_new(&l) == 0);
	for (int i = 0; i < 5; i++) {
		o[i] = (struct ordered){ &log, deadlines[i] };
		CHECK_OK(loop_add_timer(l, base + (usec_t)deadlines[i] * USEC_PER_MSEC, on_ordered,
					&o[i], NULL));
	}
	while (log.n < 5)
		CHECK_OK(loop_run_once(l, USEC_INFINITY));
	for (int i = 0; i < 5; i++)
		CHECK_INT(log.order[i], ==, (i + 1) * 10);
	CHECK(now_usec() - base >= 50 * USEC_PER_MSEC);
	loop_free(l);
}

TEST(loop_timer_rearm_and_disarm)
{
	struct loop *l;
	struct loop_source *t;
	struct timer_log log = { 0 };
	REQUIRE(loop_new(&l) == 0);
	usec_t start = now_usec();
	CHECK_OK(loop_add_timer(l, start + 5 * USEC_PER_SEC, on_timer, &log, &t));
	CHECK_OK(loop_timer_set(t, start + 20 * USEC_PER_MSEC)); /* earlier */
	CHECK_OK(loop_run_once(l, USEC_INFINITY));
	CHECK_INT(log.n, ==, 1);
	CHECK(log.fired_at >= start + 20 * USEC_PER_MSEC);
	CHECK(log.fired_at < start + USEC_PER_SEC);
	/* fired timers are disarmed until set again */
	CHECK_OK(loop_run_once(l, 30 * USEC_PER_MSEC));
	CHECK_INT(log.n, ==, 1);
	CHECK_OK(loop_timer_set(t, now_usec()));
	CHECK_OK(loop_timer_set(t, USEC_INFINITY));
	CHECK_OK(loop_run_once(l, 10 * USEC_PER_MSEC));
	CHECK_INT(log.n, ==, 1);
	loop_free(l);
}

struct heap_check {
	int fired;
	usec_t last_deadline;
	bool out_of_order;
};


struct heap_timer {
	struct heap_check *h;
	usec_t deadline;
};

static int on_heap_ordered(struct loop_source *s, usec_t now, void *ud)
{
	struct heap_timer *t = ud;
	(void)s;
	(void)now;
	if (t->deadline < t->h->last_deadline)
		t->h->out_of_order = true;
	t->h->last_deadline = t->deadline;
	t->h->fired++;
	return 0;
}

/* 200 timers with shuffled deadlines, half removed from the middle of the
 * heap: the rest must fire exactly once each, in deadline order. */
TEST(loop_many_timers_heap_stays_ordered)
{
	struct loop *l;
	struct heap_check h = { 0 };
	struct heap_timer t[200];
	struct loop_source *src[200];
	REQUIRE(loop_new(&l) == 0);
	usec_t base = now_usec() + 20 * USEC_PER_MSEC;
	for (int i = 0; i < 200; i++) {
		t[i] = (struct heap_timer){ &h, base + (usec_t)((i * 7919) % 200) * 100 };
		CHECK_OK(loop_add_timer(l, t[i].deadline, on_heap_ordered, &t[i], &src[i]));
	}
	for (int i = 0; i < 200; i += 2)
		loop_source_free(src[i]);
	while (h.fired < 100)
		CHECK_OK(loop_run_once(l, USEC_PER_SEC));
	CHECK_OK(loop_run_once(l, 10 * USEC_PER_MSEC));
	CHECK_INT(h.fired, ==, 100);
	CHECK(!h.out_of_order);
	loop_free(l);
}

static int on_signal(struct loop_source *s, const struct signalfd_siginfo *si, void *ud)
{
	struct counter *c = ud;
	(void)s;
	c->calls++;
	c->last = (int)si->ssi_signo;
	return 0;
}

TEST(loop_signals_via_signalfd)
{
	struct loop *l;
	struct counter a = { 0 }, b = { 0 };
	REQUIRE(loop_new(&l) == 0);
	CHECK_OK(loop_add_signal(l, SIGUSR1, on_signal, &a, NULL));
	CHECK_OK(loop_add_signal(l, SIGUSR1, on_signal, &b, NULL));
	CHECK_INT(loop_add_signal(l, 0, on_signal, &b, NULL), ==, -EINVAL);
	kill(getpid(), SIGUSR1);
	CHECK_OK(loop_run_once(l, 1000 * USEC_PER_MSEC));
	CHECK_INT(a.calls, ==, 1);
	CHECK_INT(b.calls, ==, 1);
	CHECK_INT(a.last, ==, SIGUSR1);
	loop_free(l);
}

static int on_child(struct loop_source *s, const siginfo_t *si, void *ud)
{
	struct counter *c = ud;
	(void)s;
	c->calls++;
	c->last = si->si_code == CLD_EXITED ? si->si_status : 1000 + si->si_status;
	return 0;
}

TEST(loop_child_exit_via_pidfd)
{
	struct loop *l;
	struct counter c = { 0 }, k = { 0 };
	REQUIRE(loop_new(&l) == 0);
	pid_t p = fork();
	if (p == 0)
		_exit(7);
	pid_t q = fork();
	if (q == 0) {
		pause();
		_exit(0);
	}
	CHECK_OK(loop_add_child(l, p, on_child, &c, NULL));
	CHECK_OK(loop_add_child(l, q, on_child, &k, NULL));
	kill(q, SIGKILL);
	while (c.calls == 0 || k.calls == 0)
		CHECK_OK(loop_run_once(l, USEC_INFINITY));
	CHECK_INT(c.last, ==, 7);
	CHECK_INT(k.last, ==, 1000 + SIGKILL);
	/* reaped: no zombie left */
	CHECK_INT(waitpid(p, NULL, WNOHANG), ==, -1);
	loop_free(l);
}

struct defer_state {
	int calls;
	struct loop_source *self;
	int rearm;
};

static int on_defer(struct loop_source *s, void *ud)
{
	struct defer_state *d = ud;
	d->calls++;
	if (d->rearm-- > 0)
		loop_defer_arm(s);
	return 0;
}

TEST(loop_defer_runs_once_per_arm)
{
	struct loop *l;
	struct defer_state d = { .rearm = 2 };
	REQUIRE(loop_new(&l) == 0);
	CHECK_OK(loop_add_defer(l, on_defer, &d, &d.self));
	CHECK_OK(loop_run_once(l, 0));
	CHECK_INT(d.calls, ==, 1); /* rearmed from the callback: next iteration */
	CHECK_OK(loop_run_once(l, 0));
	CHECK_OK(loop_run_once(l, 0));
	CHECK_OK(loop_run_once(l, 0));
	CHECK_INT(d.calls, ==, 3);
	loop_defer_arm(d.self);
	loop_source_free(d.self);
	CHECK_OK(loop_run_once(l, 0));
	CHECK_INT(d.calls, ==, 3);
	loop_free(l);
}

static int on_fail(struct loop_source *s, void *ud)
{
	(void)s;
	(void)ud;
	return -ECONNRESET;
}

static int on_exit_timer(struct loop_source *s, usec_t now, void *ud)
{
	(void)now;
	(void)ud;
	loop_exit(loop_source_loop(s), 42);
	return 0;
}

TEST(loop_run_returns_exit_code_or_error)
{
	struct loop *l;
	REQUIRE(loop_new(&l) == 0);
	CHECK_OK(loop_add_timer(l, now_usec() + 1000, on_exit_timer, NULL, NULL));
	CHECK_INT(loop_run(l), ==, 42);
	CHECK(loop_exiting(l));
	loop_free(l);

	REQUIRE(loop_new(&l) == 0);
	CHECK_OK(loop_add_defer(l, on_fail, NULL, NULL));
	CHECK_INT(loop_run(l), ==, -ECONNRESET);
	loop_free(l);
}

static void *waker(void *arg)
{
	usleep(20000);
	loop_wake(arg);
	return NULL;
}

TEST(loop_wake_from_another_thread)
{
	struct loop *l;
	pthread_t t;
	REQUIRE(loop_new(&l) == 0);
	usec_t start = now_usec();
	REQUIRE(pthread_create(&t, NULL, waker, l) == 0);
	CHECK_OK(loop_run_once(l, 5 * USEC_PER_SEC));
	CHECK(now_usec() - start < 4 * USEC_PER_SEC);
	pthread_join(t, NULL);
	loop_free(l);
}

TAP_MAIN()
