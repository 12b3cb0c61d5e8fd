/* Worker pool: a mutex-protected FIFO of pending jobs, a FIFO of finished
 * ones, and an eventfd that wakes the loop when the finished list becomes
 * non-empty.
 */
#include <pthread.h>
#include <sys/eventfd.h>

#include "agent/pool.h"
#include "common/macro.h"

struct agent_pool {
	struct loop *loop;
	struct loop_source *src;
	int efd;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct agent_job *todo, **todo_tail;
	struct agent_job *finished, **finished_tail;
	bool stopping;
	unsigned pending;
	unsigned nthreads;
	pthread_t *threads;
};

static void *worker(void *arg)
{
	struct agent_pool *p = arg;

	for (;;) {
		struct agent_job *job;
		bool wake;

		pthread_mutex_lock(&p->lock);
		while (!p->todo && !p->stopping)
			pthread_cond_wait(&p->cond, &p->lock);
		job = p->todo;
		if (!job) {
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		p->todo = job->next;
		if (!p->todo)
			p->todo_tail = &p->todo;
		pthread_mutex_unlock(&p->lock);

		job->run(job);

		pthread_mutex_lock(&p->lock);
		job->next = NULL;
		wake = !p->finished;
		*p->finished_tail = job;
		p->finished_tail = &job->next;
		pthread_mutex_unlock(&p->lock);
		if (wake) {
			uint64_t one = 1;
			if (write(p->efd, &one, sizeof(one)) < 0) {
				/* counter saturated: a wake is pending anyway */
			}
		}
	}
}

static void report_finished(struct agent_pool *p)
{
	struct agent_job *list;

	pthread_mutex_lock(&p->lock);
	list = p->finished;
	p->finished = NULL;
	p->finished_tail = &p->finished;
	pthread_mutex_unlock(&p->lock);
	while (list) {
		struct agent_job *job = list;
		list = job->next;
		p->pending--;
		job->done(job);
	}
}

static int on_event(struct loop_source *s, int fd, uint32_t events, void *userdata)
{
	uint64_t v;
	(void)s;
	(void)events;

	if (read(fd, &v, sizeof(v)) < 0) {
		/* EAGAIN: already drained */
	}
	report_finished(userdata);
	return 0;
}

int agent_pool_new(struct loop *l, unsigned nthreads, struct agent_pool **ret)
{
	struct agent_pool *p = xcalloc(1, sizeof(*p));
	int r;

	p->loop = l;
	p->todo_tail = &p->todo;
	p->finished_tail = &p->finished;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->efd < 0) {
		r = -errno;
		goto fail;
	}
	r = loop_add_io(l, p->efd, EPOLLIN, on_event, p, &p->src);
	if (r < 0)
		goto fail;
	p->threads = xcalloc(nthreads ? nthreads : 1, sizeof(*p->threads));
	for (unsigned i = 0; i < nthreads; i++) {
		r = -pthread_create(&p->threads[i], NULL, worker, p);
		if (r < 0)
			goto fail;
		p->nthreads++;
	}
	*ret = p;
	return 0;
fail:
	agent_pool_free(p);
	return r;
}

void agent_pool_submit(struct agent_pool *p, struct agent_job *job)
{
	job->next = NULL;
	p->pending++;
	pthread_mutex_lock(&p->lock);
	*p->todo_tail = job;
	p->todo_tail = &job->next;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

unsigned agent_pool_pending(const struct agent_pool *p)
{
	return p->pending;
}

void agent_pool_free(struct agent_pool *p)
{
	if (!p)
		return;
	/* Workers drain the queue before they see `stopping` with nothing to
	 * do, so every submitted job runs; then report them all. */
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	report_finished(p);
	loop_source_free(p->src);
	if (p->efd >= 0)
		close(p->efd);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p->threads);
	free(p);
}
