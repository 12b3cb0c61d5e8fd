/* The event loop: one per process (DESIGN.md, "nothing blocks it").
 *
 * Sources: fd readiness (epoll), timers (a min-heap on the monotonic clock,
 * microseconds), signals (one signalfd), child exit (pidfd), and deferred
 * calls (run once at the start of the next iteration, before waiting).
 *
 * Every callback returns 0 to go on or a negative errno to stop: loop_run()
 * then returns that value. A callback may free any source, itself included;
 * a freed source never fires again, and its memory is released after the
 * current iteration, so events already fetched for it are dropped safely.
 *
 * The loop never closes fds it did not create: an io source borrows its fd,
 * and the caller closes it after loop_source_free(). Single-threaded: every
 * call here must come from the thread that runs the loop, except
 * loop_wake(), which is safe from any thread.
 */
#ifndef PODENV_COMMON_LOOP_H
#define PODENV_COMMON_LOOP_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/types.h>

typedef uint64_t usec_t;
#define USEC_PER_SEC ((usec_t)1000000)
#define USEC_PER_MSEC ((usec_t)1000)
#define USEC_INFINITY ((usec_t)UINT64_MAX)

/* CLOCK_MONOTONIC in microseconds. */
usec_t now_usec(void);

struct loop;
struct loop_source;

typedef int (*loop_io_fn)(struct loop_source *s, int fd, uint32_t events, void *userdata);
typedef int (*loop_time_fn)(struct loop_source *s, usec_t now, void *userdata);
typedef int (*loop_signal_fn)(struct loop_source *s, const struct signalfd_siginfo *si,
			      void *userdata);
/* si is from waitid(): si_code CLD_EXITED/CLD_KILLED/CLD_DUMPED, si_status. */
typedef int (*loop_child_fn)(struct loop_source *s, const siginfo_t *si, void *userdata);
typedef int (*loop_defer_fn)(struct loop_source *s, void *userdata);

int loop_new(struct loop **ret);
/* Frees every remaining source, then the loop. Accepts NULL. */
void loop_free(struct loop *l);

/* Watch fd (borrowed) for EPOLLIN/EPOLLOUT/…; EPOLLERR and EPOLLHUP are
 * always reported. */
int loop_add_io(struct loop *l, int fd, uint32_t events, loop_io_fn fn, void *userdata,
		struct loop_source **ret);
int loop_io_events_set(struct loop_source *s, uint32_t events);

/* Fire once at monotonic time `when` (USEC_INFINITY: disarmed). Rearm from
 * the callback with loop_timer_set(). */
int loop_add_timer(struct loop *l, usec_t when, loop_time_fn fn, void *userdata,
		   struct loop_source **ret);
int loop_timer_set(struct loop_source *s, usec_t when);

/* Blocks sig in this thread and delivers it through the loop. Several
 * sources may watch the same signal; all are called. */
int loop_add_signal(struct loop *l, int sig, loop_signal_fn fn, void *userdata,
		    struct loop_source **ret);

/* Calls fn once when child `pid` exits, after reaping it. The source is
 * disabled afterwards. Needs pidfd_open (Linux 5.3). */
int loop_add_child(struct loop *l, pid_t pid, loop_child_fn fn, void *userdata,
		   struct loop_source **ret);

/* Calls fn once, at the start of the next iteration. Re-arm from anywhere
 * with loop_defer_arm(). */
int loop_add_defer(struct loop *l, loop_defer_fn fn, void *userdata, struct loop_source **ret);
void loop_defer_arm(struct loop_source *s);

/* Safe at any time, including from the source's own callback. NULL is fine. */
void loop_source_free(struct loop_source *s);
void *loop_source_userdata(struct loop_source *s);
struct loop *loop_source_loop(struct loop_source *s);

/* Runs until loop_exit() or a callback error; returns the exit code or the
 * error. */
int loop_run(struct loop *l);
/* One iteration, waiting at most `timeout` (USEC_INFINITY: no limit).
 * Returns 0, or a callback's error. */
int loop_run_once(struct loop *l, usec_t timeout);
/* loop_run() returns `code` after the current iteration. */
void loop_exit(struct loop *l, int code);
bool loop_exiting(struct loop *l);
/* Interrupts a waiting loop from another thread (an eventfd write). */
void loop_wake(struct loop *l);

#endif
