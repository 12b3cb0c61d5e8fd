/* A small worker pool that keeps slow disk work off the agent's event loop.
 *
 * A job is embedded in the caller's own struct (container_of). run() is
 * called on a worker thread and must touch only the job's own data; done()
 * is called later on the loop thread, in completion order. Submitting and
 * freeing happen on the loop thread only.
 */
#ifndef PODENV_AGENT_POOL_H
#define PODENV_AGENT_POOL_H

#include "common/loop.h"

struct agent_job {
	void (*run)(struct agent_job *job);  /* worker thread */
	void (*done)(struct agent_job *job); /* loop thread; may free the job */
	struct agent_job *next;		     /* owned by the pool while queued */
};

struct agent_pool;

/* Starts nthreads workers that report completions through loop l.
 * Call after every clone/unshare/setns the process will do (STYLE.md). */
int agent_pool_new(struct loop *l, unsigned nthreads, struct agent_pool **ret);

/* Queues job; job->run and job->done must be set. The pool borrows the job
 * until done() is called. */
void agent_pool_submit(struct agent_pool *p, struct agent_job *job);

/* Number of jobs submitted whose done() has not run yet. */
unsigned agent_pool_pending(const struct agent_pool *p);

/* Stops the workers after the jobs already running; queued jobs and
 * finished-but-unreported jobs get their done() called before this returns.
 * Accepts NULL. */
void agent_pool_free(struct agent_pool *p);

#endif
