/* Unit tests for agent/pool.c. */
#include "agent/pool.h"
#include "tests/unit/tap.h"

struct work {
	struct agent_job job;
	int input, output;
	int *done_count;
};

static void square(struct agent_job *j)
{
	struct work *w = (struct work *)j;
	usleep(100);
	w->output = w->input * w->input;
}

static void count(struct agent_job *j)
{
	struct work *w = (struct work *)j;
	(*w->done_count)++;
}

TEST(pool_runs_every_job_and_reports_on_loop)
{
	struct loop *l;
	struct agent_pool *p;
	static struct work w[500];
	int done = 0;
	REQUIRE(loop_new(&l) == 0);
	REQUIRE(agent_pool_new(l, 4, &p) == 0);
	for (int i = 0; i < 500; i++) {
		w[i] = (struct work){ { square, count, NULL }, i, -1, &done };
		agent_pool_submit(p, &w[i].job);
	}
	CHECK_UINT(agent_pool_pending(p), ==, 500);
	usec_t deadline = now_usec() + 10 * USEC_PER_SEC;
	while (done < 500 && now_usec() < deadline)
		CHECK_OK(loop_run_once(l, USEC_PER_SEC));
	CHECK_INT(done, ==, 500);
	CHECK_UINT(agent_pool_pending(p), ==, 0);
	for (int i = 0; i < 500; i++)
		if (w[i].output != i * i)
			TAP_FAIL("job %d: %d", i, w[i].output);
	agent_pool_free(p);
	loop_free(l);
}

TEST(pool_free_completes_queued_jobs)
{
	struct loop *l;
	struct agent_pool *p;
	static struct work w[50];
	int done = 0;
	REQUIRE(loop_new(&l) == 0);
	REQUIRE(agent_pool_new(l, 2, &p) == 0);
	for (int i = 0; i < 50; i++) {
		w[i] = (struct work){ { square, count, NULL }, i, -1, &done };
		agent_pool_submit(p, &w[i].job);
	}
	agent_pool_free(p);
	CHECK_INT(done, ==, 50);
	CHECK_INT(w[49].output, ==, 49 * 49);
	loop_free(l);
}

TAP_MAIN()
