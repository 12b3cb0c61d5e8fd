/* The epoll event loop (after redis ae.c and sd-event): io, timers on a
 * min-heap, signals on one signalfd, child exits on pidfds, deferred calls.
 *
 * Deletion during dispatch: epoll hands back pointers to sources; a source
 * freed by a callback is marked dead and put on a list that is released
 * only after the whole batch of events has been dispatched, so later events
 * of the same batch that point at it are recognised and skipped.
 */
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/loop.h"
#include "common/macro.h"

enum source_type { SRC_IO, SRC_TIMER, SRC_SIGNAL, SRC_CHILD, SRC_DEFER };

struct loop_source {
	struct loop *loop;
	enum source_type type;
	bool dead;
	void *userdata;
	/* SRC_IO: the borrowed fd; SRC_CHILD: our pidfd. */
	int fd;
	uint32_t events;
	union {
		loop_io_fn io;
		loop_time_fn timer;
		loop_signal_fn signal;
		loop_child_fn child;
		loop_defer_fn defer;
	} fn;
	usec_t when;	 /* SRC_TIMER */
	size_t heap_idx; /* SRC_TIMER, SIZE_MAX when not in the heap */
	int sig;	 /* SRC_SIGNAL */
	pid_t pid;	 /* SRC_CHILD */
	bool armed;	 /* SRC_DEFER, SRC_CHILD (not yet fired) */
	/* Every live source is on the loop's list; dead ones on `dead`. */
	struct loop_source *prev, *next;
};

struct loop {
	int epfd;
	int sigfd; /* -1 until the first signal source */
	int wakefd;
	sigset_t sigmask;
	struct loop_source *sources; /* all live sources */
	struct loop_source *dead;    /* freed, released after the iteration */
	struct loop_source **heap;   /* timers, min-heap on `when` */
	size_t nheap, heapcap;
	size_t ndefer_armed;
	bool exiting;
	int exit_code;
};

/* Tags for the loop's own fds in epoll data (sources are pointers, which
 * are never this small). */
#define TAG_SIGNAL ((void *)1)
#define TAG_WAKE ((void *)2)

usec_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (usec_t)ts.tv_sec * USEC_PER_SEC + (usec_t)ts.tv_nsec / 1000;
}

int loop_new(struct loop **ret)
{
	struct loop *l = xcalloc(1, sizeof(*l));
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = TAG_WAKE };

	l->sigfd = -1;
	sigemptyset(&l->sigmask);
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		goto fail;
	l->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->wakefd < 0)
		goto fail_ep;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wakefd, &ev) < 0)
		goto fail_wake;
	*ret = l;
	return 0;

fail_wake:
	close(l->wakefd);
fail_ep:
	close(l->epfd);
fail: {
	int r = -errno;
	free(l);
	return r;
}
}

/* --- timer heap ------------------------------------------------------------ */

static void heap_swap(struct loop *l, size_t a, size_t b)
{
	struct loop_source *t = l->heap[a];
	l->heap[a] = l->heap[b];
	l->heap[b] = t;
	l->heap[a]->heap_idx = a;
	l->heap[b]->heap_idx = b;
}

static void heap_up(struct loop *l, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (l->heap[p]->when <= l->heap[i]->when)
			break;
		heap_swap(l, i, p);
		i = p;
	}
}

static void heap_down(struct loop *l, size_t i)
{
	for (;;) {
		size_t c = 2 * i + 1, m = i;
		if (c < l->nheap && l->heap[c]->when < l->heap[m]->when)
			m = c;
		if (c + 1 < l->nheap && l->heap[c + 1]->when < l->heap[m]->when)
			m = c + 1;
		if (m == i)
			break;
		heap_swap(l, i, m);
		i = m;
	}
}

static void heap_remove(struct loop *l, struct loop_source *s)
{
	size_t i = s->heap_idx;

	if (i == SIZE_MAX)
		return;
	s->heap_idx = SIZE_MAX;
	l->nheap--;
	if (i == l->nheap)
		return;
	l->heap[i] = l->heap[l->nheap];
	l->heap[i]->heap_idx = i;
	heap_up(l, i);
	heap_down(l, l->heap[i]->heap_idx);
}

static void heap_insert(struct loop *l, struct loop_source *s)
{
	if (l->nheap == l->heapcap) {
		l->heapcap = l->heapcap ? l->heapcap * 2 : 16;
		l->heap = xrealloc(l->heap, l->heapcap * sizeof(*l->heap));
	}
	s->heap_idx = l->nheap;
	l->heap[l->nheap++] = s;
	heap_up(l, s->heap_idx);
}

/* --- sources --------------------------------------------------------------- */

static struct loop_source *source_new(struct loop *l, enum source_type type, void *userdata)
{
	struct loop_source *s = xcalloc(1, sizeof(*s));

	s->loop = l;
	s->type = type;
	s->userdata = userdata;
	s->fd = -1;
	s->heap_idx = SIZE_MAX;
	s->next = l->sources;
	if (l->sources)
		l->sources->prev = s;
	l->sources = s;
	return s;
}

static void source_unlink(struct loop_source *s)
{
	struct loop *l = s->loop;

	if (s->prev)
		s->prev->next = s->next;
	else
		l->sources = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
}

void *loop_source_userdata(struct loop_source *s)
{
	return s->userdata;
}

struct loop *loop_source_loop(struct loop_source *s)
{
	return s->loop;
}

int loop_add_io(struct loop *l, int fd, uint32_t events, loop_io_fn fn, void *userdata,
		struct loop_source **ret)
{
	struct loop_source *s = source_new(l, SRC_IO, userdata);
	struct epoll_event ev = { .events = events, .data.ptr = s };

	s->fd = fd;
	s->events = events;
	s->fn.io = fn;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int r = -errno;
		source_unlink(s);
		free(s);
		return r;
	}
	if (ret)
		*ret = s;
	return 0;
}

int loop_io_events_set(struct loop_source *s, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = s };

	if (s->type != SRC_IO || s->dead)
		return -EINVAL;
	if (s->events == events)
		return 0;
	if (epoll_ctl(s->loop->epfd, EPOLL_CTL_MOD, s->fd, &ev) < 0)
		return -errno;
	s->events = events;
	return 0;
}

int loop_add_timer(struct loop *l, usec_t when, loop_time_fn fn, void *userdata,
		   struct loop_source **ret)
{
	struct loop_source *s = source_new(l, SRC_TIMER, userdata);

	s->fn.timer = fn;
	s->when = when;
	if (when != USEC_INFINITY)
		heap_insert(l, s);
	if (ret)
		*ret = s;
	return 0;
}

int loop_timer_set(struct loop_source *s, usec_t when)
{
	if (s->type != SRC_TIMER || s->dead)
		return -EINVAL;
	heap_remove(s->loop, s);
	s->when = when;
	if (when != USEC_INFINITY)
		heap_insert(s->loop, s);
	return 0;
}

static int sigfd_update(struct loop *l)
{
	int fd;

	if (sigprocmask(SIG_BLOCK, &l->sigmask, NULL) < 0)
		return -errno;
	fd = signalfd(l->sigfd, &l->sigmask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (l->sigfd < 0) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = TAG_SIGNAL };
		if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			int r = -errno;
			close(fd);
			return r;
		}
		l->sigfd = fd;
	}
	return 0;
}

int loop_add_signal(struct loop *l, int sig, loop_signal_fn fn, void *userdata,
		    struct loop_source **ret)
{
	struct loop_source *s;
	int r;

	if (sig <= 0 || sig >= NSIG)
		return -EINVAL;
	if (!sigismember(&l->sigmask, sig)) {
		sigaddset(&l->sigmask, sig);
		r = sigfd_update(l);
		if (r < 0) {
			sigdelset(&l->sigmask, sig);
			return r;
		}
	}
	s = source_new(l, SRC_SIGNAL, userdata);
	s->sig = sig;
	s->fn.signal = fn;
	if (ret)
		*ret = s;
	return 0;
}

int loop_add_child(struct loop *l, pid_t pid, loop_child_fn fn, void *userdata,
		   struct loop_source **ret)
{
	struct loop_source *s;
	int pidfd, r;

	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return -errno;
	/* pidfd_open has no CLOEXEC flag: pidfds are always close-on-exec. */
	s = source_new(l, SRC_CHILD, userdata);
	s->fd = pidfd;
	s->pid = pid;
	s->armed = true;
	s->fn.child = fn;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = s };
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, pidfd, &ev) < 0) {
		r = -errno;
		source_unlink(s);
		close(pidfd);
		free(s);
		return r;
	}
	if (ret)
		*ret = s;
	return 0;
}

int loop_add_defer(struct loop *l, loop_defer_fn fn, void *userdata, struct loop_source **ret)
{
	struct loop_source *s = source_new(l, SRC_DEFER, userdata);

	s->fn.defer = fn;
	s->armed = true;
	l->ndefer_armed++;
	if (ret)
		*ret = s;
	return 0;
}

void loop_defer_arm(struct loop_source *s)
{
	if (s->type != SRC_DEFER || s->dead || s->armed)
		return;
	s->armed = true;
	s->loop->ndefer_armed++;
}

static void source_release(struct loop_source *s)
{
	if (s->type == SRC_CHILD && s->fd >= 0)
		close(s->fd);
	free(s);
}

void loop_source_free(struct loop_source *s)
{
	struct loop *l;

	if (!s || s->dead)
		return;
	l = s->loop;
	s->dead = true;
	switch (s->type) {
	case SRC_IO:
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, s->fd, NULL);
		break;
	case SRC_CHILD:
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, s->fd, NULL);
		break;
	case SRC_TIMER:
		heap_remove(l, s);
		break;
	case SRC_DEFER:
		if (s->armed)
			l->ndefer_armed--;
		s->armed = false;
		break;
	case SRC_SIGNAL:
		/* The signal stays blocked and in the signalfd mask: unblocking
		 * it could let a pending signal kill the process. */
		break;
	}
	source_unlink(s);
	s->next = l->dead;
	l->dead = s;
}

static void release_dead(struct loop *l)
{
	while (l->dead) {
		struct loop_source *s = l->dead;
		l->dead = s->next;
		source_release(s);
	}
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	while (l->sources)
		loop_source_free(l->sources);
	release_dead(l);
	if (l->sigfd >= 0)
		close(l->sigfd);
	close(l->wakefd);
	close(l->epfd);
	free(l->heap);
	free(l);
}

/* --- dispatch -------------------------------------------------------------- */

/* Collects the live sources of one type matching `sig` (any when 0): the
 * callbacks that follow may free or add sources, so the list is walked
 * before any of them runs. Caller frees the array. */
static size_t collect(struct loop *l, enum source_type type, int sig, struct loop_source ***ret)
{
	size_t n = 0, cap = 0;
	struct loop_source **list = NULL;

	for (struct loop_source *s = l->sources; s; s = s->next) {
		if (s->type != type || (sig && s->sig != sig))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			list = xrealloc(list, cap * sizeof(*list));
		}
		list[n++] = s;
	}
	*ret = list;
	return n;
}

static int dispatch_signals(struct loop *l)
{
	struct signalfd_siginfo si;
	struct loop_source **list;
	int r = 0;

	while (r >= 0 && read(l->sigfd, &si, sizeof(si)) == sizeof(si)) {
		size_t n = collect(l, SRC_SIGNAL, (int)si.ssi_signo, &list);
		for (size_t i = 0; i < n && r >= 0; i++)
			if (!list[i]->dead)
				r = list[i]->fn.signal(list[i], &si, list[i]->userdata);
		free(list);
	}
	return r;
}

static int dispatch_child(struct loop_source *s)
{
	siginfo_t si = { 0 };

	if (!s->armed)
		return 0;
	if (waitid(P_PIDFD, (id_t)s->fd, &si, WEXITED | WNOHANG) < 0)
		return -errno;
	if (si.si_pid == 0)
		return 0; /* spurious */
	s->armed = false;
	epoll_ctl(s->loop->epfd, EPOLL_CTL_DEL, s->fd, NULL);
	return s->fn.child(s, &si, s->userdata);
}

static int dispatch_defers(struct loop *l)
{
	struct loop_source **list;
	size_t n;
	int r = 0;

	if (l->ndefer_armed == 0)
		return 0;
	/* Disarm first: a source armed again by a callback runs in the next
	 * iteration, never twice in this one. */
	n = collect(l, SRC_DEFER, 0, &list);
	for (size_t i = 0; i < n; i++) {
		if (!list[i]->armed)
			list[i] = NULL;
		else {
			list[i]->armed = false;
			l->ndefer_armed--;
		}
	}
	for (size_t i = 0; i < n && r >= 0; i++)
		if (list[i] && !list[i]->dead)
			r = list[i]->fn.defer(list[i], list[i]->userdata);
	free(list);
	return r;
}

static int dispatch_timers(struct loop *l)
{
	usec_t now = now_usec();
	int r;

	while (l->nheap > 0 && l->heap[0]->when <= now) {
		struct loop_source *s = l->heap[0];
		heap_remove(l, s);
		s->when = USEC_INFINITY;
		r = s->fn.timer(s, now, s->userdata);
		if (r < 0)
			return r;
	}
	return 0;
}

int loop_run_once(struct loop *l, usec_t timeout)
{
	struct epoll_event evs[64];
	struct timespec ts, *tsp = NULL;
	usec_t wait = timeout;
	int n, r;

	r = dispatch_defers(l);
	if (r < 0)
		goto out;
	if (l->exiting)
		goto out;

	if (l->ndefer_armed > 0)
		wait = 0;
	if (l->nheap > 0) {
		usec_t now = now_usec(), when = l->heap[0]->when;
		wait = MIN(wait, when > now ? when - now : 0);
	}
	if (wait != USEC_INFINITY) {
		ts.tv_sec = (time_t)(wait / USEC_PER_SEC);
		ts.tv_nsec = (long)(wait % USEC_PER_SEC) * 1000;
		tsp = &ts;
	}
	n = epoll_pwait2(l->epfd, evs, (int)ARRAY_SIZE(evs), tsp, NULL);
	if (n < 0) {
		r = errno == EINTR ? 0 : -errno;
		goto out;
	}
	for (int i = 0; i < n && r >= 0; i++) {
		void *p = evs[i].data.ptr;
		if (p == TAG_WAKE) {
			uint64_t v;
			if (read(l->wakefd, &v, sizeof(v)) < 0) {
				/* EAGAIN: another wake consumed it */
			}
			continue;
		}
		if (p == TAG_SIGNAL) {
			r = dispatch_signals(l);
			continue;
		}
		struct loop_source *s = p;
		if (s->dead)
			continue;
		if (s->type == SRC_CHILD)
			r = dispatch_child(s);
		else
			r = s->fn.io(s, s->fd, evs[i].events, s->userdata);
	}
	if (r >= 0)
		r = dispatch_timers(l);
out:
	release_dead(l);
	return r < 0 ? r : 0;
}

int loop_run(struct loop *l)
{
	int r;

	while (!l->exiting) {
		r = loop_run_once(l, USEC_INFINITY);
		if (r < 0)
			return r;
	}
	return l->exit_code;
}

void loop_exit(struct loop *l, int code)
{
	l->exiting = true;
	l->exit_code = code;
}

bool loop_exiting(struct loop *l)
{
	return l->exiting;
}

void loop_wake(struct loop *l)
{
	uint64_t one = 1;

	if (write(l->wakefd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is saturated, a wake is pending anyway */
	}
}
