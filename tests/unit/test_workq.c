/*
 * common/workq.c: the pool and the batch writer on a real libevent loop;
 * every job's done() exactly once, in the promised order, cancel, hold,
 * flush, jobs without done(), and workq_free with jobs still queued.
 */
#include "common/workq.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/log.h"
#include "common/util.h"
#include "t.h"

#define NJOBS 200

static struct event_base *base;

struct job {
	unsigned id;
	unsigned value;			/* worker: id * 3 */
	bool worked;			/* worker */
	bool done;			/* loop */
	bool cancelled;			/* what done() was told */
	unsigned done_seq;		/* order of done() calls */
	unsigned batch_no;		/* batch mode: which pass */
};

static struct job jobs[NJOBS];
static unsigned ndone;
static unsigned done_seq;
static unsigned done_order[NJOBS];

/* Worker side: a gate that holds the pool's workers, and batch sizes. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static bool gate_closed;
static unsigned gate_waiting;
static unsigned nbatches;
static size_t batch_sizes[NJOBS];
static unsigned nworked;
static unsigned nafter;
static unsigned nnodone;

static void
reset(void)
{
	memset(jobs, 0, sizeof(jobs));
	for (unsigned i = 0; i < NJOBS; i++)
		jobs[i].id = i;
	ndone = done_seq = 0;
	memset(done_order, 0, sizeof(done_order));
	pthread_mutex_lock(&mu);
	gate_closed = false;
	gate_waiting = nbatches = nworked = nafter = nnodone = 0;
	memset(batch_sizes, 0, sizeof(batch_sizes));
	pthread_mutex_unlock(&mu);
}

static void
gate_pass(void)
{
	pthread_mutex_lock(&mu);
	gate_waiting++;
	pthread_cond_broadcast(&cv);
	while (gate_closed)
		pthread_cond_wait(&cv, &mu);
	gate_waiting--;
	pthread_mutex_unlock(&mu);
}

static void
gate_set(bool closed)
{
	pthread_mutex_lock(&mu);
	gate_closed = closed;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

/* Wait until n worker threads sit at the closed gate. */
static void
gate_wait_for(unsigned n)
{
	pthread_mutex_lock(&mu);
	while (gate_waiting < n)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
}

static void
work(void *arg, void *ctx)
{
	struct job *j = arg;

	t_assert(ctx == (void *)&jobs);
	gate_pass();
	j->value = j->id * 3;
	j->worked = true;
	pthread_mutex_lock(&mu);
	nworked++;
	pthread_mutex_unlock(&mu);
}

static void
batch(void *const *v, size_t n, void *ctx)
{
	unsigned no;

	t_assert(ctx == (void *)&jobs);
	gate_pass();
	pthread_mutex_lock(&mu);
	no = nbatches++;
	batch_sizes[no] = n;
	nworked += (unsigned)n;
	pthread_mutex_unlock(&mu);
	for (size_t i = 0; i < n; i++) {
		struct job *j = v[i];

		j->value = j->id * 3;
		j->worked = true;
		j->batch_no = no;
	}
}

static void
after(void *ctx)
{
	pthread_mutex_lock(&mu);
	nafter++;
	pthread_mutex_unlock(&mu);
}

static void
done(void *arg, bool cancelled)
{
	struct job *j = arg;

	t_assert(!j->done);
	j->done = true;
	j->cancelled = cancelled;
	j->done_seq = done_seq;
	if (done_seq < NJOBS)
		done_order[done_seq] = j->id;
	done_seq++;
	ndone++;
}

static void
nodone_work(void *arg, void *ctx)
{
	pthread_mutex_lock(&mu);
	nnodone++;
	pthread_mutex_unlock(&mu);
}

static void
tick(evutil_socket_t fd, short what, void *arg)
{
}

/* Run the loop until want done() calls arrived (10 s at most). */
static void
run_until(unsigned want)
{
	uint64_t deadline = util_now_ms() + 10000;
	struct timeval tv = { 0, 20000 };
	struct event *t = event_new(base, -1, EV_PERSIST, tick, NULL);

	event_add(t, &tv);
	while (ndone < want && util_now_ms() < deadline)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
	t_assert_int(ndone, want);
}

static void *
thread_init(void *arg)
{
	return arg;
}

static void
test_pool(void)
{
	struct workq *q;

	t_begin("workq: pool works every job, done() once each");
	reset();
	q = workq_new(base, 4, NJOBS, thread_init, NULL, jobs);
	for (unsigned i = 0; i < NJOBS; i++)
		t_assert(workq_submit(q, &jobs[i], work, done) != 0);
	/* Full: max_pending jobs are in. */
	t_assert(workq_submit(q, &jobs[0], work, done) == 0);
	run_until(NJOBS);
	for (unsigned i = 0; i < NJOBS; i++) {
		t_assert(jobs[i].worked && jobs[i].done);
		t_assert(!jobs[i].cancelled);
		t_assert_int(jobs[i].value, i * 3);
	}
	t_assert_int(workq_pending(q), 0);
	workq_free(q);
	t_end();
}

static void
test_pool_order(void)
{
	struct workq *q;

	t_begin("workq: one worker reports in submission order");
	reset();
	q = workq_new(base, 1, NJOBS, NULL, NULL, jobs);
	for (unsigned i = 0; i < 50; i++)
		workq_submit(q, &jobs[i], work, done);
	run_until(50);
	for (unsigned i = 0; i < 50; i++)
		t_assert_int(done_order[i], i);
	workq_free(q);
	t_end();
}

static void
test_pool_cancel(void)
{
	struct workq *q;
	uint64_t t0, t1, t2;

	t_begin("workq: pool cancel, running and queued");
	reset();
	gate_set(true);
	q = workq_new(base, 1, NJOBS, thread_init, NULL, jobs);
	t0 = workq_submit(q, &jobs[0], work, done);
	t1 = workq_submit(q, &jobs[1], work, done);
	t2 = workq_submit(q, &jobs[2], work, done);
	t_assert(t0 != 0 && t1 != 0 && t2 != 0 && t0 != t1 && t1 != t2);
	gate_wait_for(1);		/* job 0 is running */
	workq_cancel(q, t0);		/* running: runs, done learns */
	workq_cancel(q, t1);		/* queued: never runs */
	workq_cancel(q, 999999);	/* unknown: ignored */
	t_assert_int(workq_pending(q), 3);
	gate_set(false);
	run_until(3);
	t_assert(jobs[0].worked && jobs[0].cancelled);
	t_assert(!jobs[1].worked && jobs[1].cancelled);
	t_assert(jobs[2].worked && !jobs[2].cancelled);
	t_assert_int(workq_pending(q), 0);
	workq_free(q);
	t_end();
}

static void *
gate_opener(void *arg)
{
	usleep(50000);
	gate_set(false);
	return NULL;
}

static void
test_pool_free_pending(void)
{
	struct workq *q;
	pthread_t th;

	t_begin("workq: pool free with jobs queued");
	reset();
	gate_set(true);
	q = workq_new(base, 1, NJOBS, thread_init, NULL, jobs);
	for (unsigned i = 0; i < 10; i++)
		workq_submit(q, &jobs[i], work, done);
	gate_wait_for(1);		/* one running, nine queued */
	/* The gate opens while workq_free waits for the worker. */
	pthread_create(&th, NULL, gate_opener, NULL);
	workq_free(q);
	pthread_join(th, NULL);
	/* Every done() ran inside workq_free, all cancelled; the running
	 * job finished, the queued ones were never worked. */
	t_assert_int(ndone, 10);
	for (unsigned i = 0; i < 10; i++)
		t_assert(jobs[i].done && jobs[i].cancelled);
	t_assert_int(nworked, 1);
	t_assert(jobs[0].worked && !jobs[1].worked);
	t_end();
}

static void
test_batch(void)
{
	struct workq *q;

	t_begin("workq: batch takes every waiting job in one pass");
	reset();
	q = workq_new_batch(base, NJOBS, 256, batch, after, thread_init, NULL,
	    jobs);
	workq_hold(q, true);
	for (unsigned i = 0; i < 50; i++)
		t_assert(workq_submit(q, &jobs[i], NULL, done) != 0);
	t_assert_int(nbatches, 0);
	workq_hold(q, false);
	run_until(50);
	t_assert_int(nbatches, 1);
	t_assert_int(batch_sizes[0], 50);
	for (unsigned i = 0; i < 50; i++) {
		t_assert(jobs[i].worked && !jobs[i].cancelled);
		t_assert_int(jobs[i].value, i * 3);
		t_assert_int(done_order[i], i);
	}
	workq_free(q);
	t_assert_int(nafter, 1);
	t_end();
}

static void
test_batch_max(void)
{
	struct workq *q;

	t_begin("workq: batch size capped, results in submission order");
	reset();
	q = workq_new_batch(base, NJOBS, 4, batch, NULL, thread_init, NULL,
	    jobs);
	workq_hold(q, true);
	for (unsigned i = 0; i < 10; i++)
		workq_submit(q, &jobs[i], NULL, done);
	workq_hold(q, false);
	run_until(10);
	t_assert_int(nbatches, 3);
	t_assert_int(batch_sizes[0], 4);
	t_assert_int(batch_sizes[1], 4);
	t_assert_int(batch_sizes[2], 2);
	for (unsigned i = 0; i < 10; i++) {
		t_assert_int(done_order[i], i);
		t_assert_int(jobs[i].batch_no, i / 4);
	}
	workq_free(q);
	t_end();
}

static void
test_batch_one_wakeup(void)
{
	struct workq *q;

	t_begin("workq: a batch reaches the loop in one wake-up");
	reset();
	q = workq_new_batch(base, NJOBS, 256, batch, NULL, thread_init, NULL,
	    jobs);
	workq_hold(q, true);
	for (unsigned i = 0; i < 100; i++)
		workq_submit(q, &jobs[i], NULL, done);
	workq_hold(q, false);
	/* Wait for the pass on the thread, without running the loop. */
	for (int i = 0; i < 10000; i++) {
		pthread_mutex_lock(&mu);
		bool w = nworked == 100;
		pthread_mutex_unlock(&mu);
		if (w)
			break;
		usleep(1000);
	}
	/* One loop iteration, one event: all 100 results. */
	event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	t_assert_int(ndone, 100);
	workq_free(q);
	t_end();
}

static void
test_batch_cancel(void)
{
	struct workq *q;
	uint64_t t0;

	t_begin("workq: batch cancel still works the job");
	reset();
	q = workq_new_batch(base, NJOBS, 256, batch, NULL, thread_init, NULL,
	    jobs);
	workq_hold(q, true);
	t0 = workq_submit(q, &jobs[0], NULL, done);
	workq_submit(q, &jobs[1], NULL, done);
	workq_cancel(q, t0);
	workq_hold(q, false);
	run_until(2);
	t_assert(jobs[0].worked && jobs[0].cancelled);
	t_assert(jobs[1].worked && !jobs[1].cancelled);
	workq_free(q);
	t_end();
}

/* done() of job 0 cancels job 1, delivered in the same drain. */
static struct workq *cancel_q;
static uint64_t cancel_tok;

static void
done_cancels_next(void *arg, bool cancelled)
{
	done(arg, cancelled);
	workq_cancel(cancel_q, cancel_tok);
}

static void
test_cancel_in_drain(void)
{
	t_begin("workq: a done() cancels a later job of the same pass");
	reset();
	cancel_q = workq_new_batch(base, NJOBS, 256, batch, NULL, thread_init,
	    NULL, jobs);
	workq_hold(cancel_q, true);
	workq_submit(cancel_q, &jobs[0], NULL, done_cancels_next);
	cancel_tok = workq_submit(cancel_q, &jobs[1], NULL, done);
	workq_hold(cancel_q, false);
	run_until(2);
	t_assert_int(nbatches, 1);
	t_assert(!jobs[0].cancelled);
	t_assert(jobs[1].worked && jobs[1].cancelled);
	workq_free(cancel_q);
	t_end();
}

static void
test_batch_free_pending(void)
{
	struct workq *q;

	t_begin("workq: batch free works every queued job");
	reset();
	q = workq_new_batch(base, NJOBS, 256, batch, NULL, thread_init, NULL,
	    jobs);
	workq_hold(q, true);
	for (unsigned i = 0; i < 30; i++)
		workq_submit(q, &jobs[i], NULL, done);
	workq_free(q);			/* lifts the hold */
	t_assert_int(nworked, 30);
	t_assert_int(ndone, 30);
	for (unsigned i = 0; i < 30; i++) {
		t_assert(jobs[i].worked && jobs[i].done && jobs[i].cancelled);
		t_assert_int(done_order[i], i);
	}
	t_end();
}

static void
test_flush_and_nodone(void)
{
	struct workq *q;

	t_begin("workq: flush runs done() at once; jobs without done()");
	reset();
	q = workq_new_batch(base, 3, 256, batch, NULL, thread_init, NULL,
	    jobs);
	workq_submit(q, &jobs[0], NULL, done);
	workq_submit(q, &jobs[1], NULL, NULL);
	t_assert_int(workq_pending(q), 1);
	workq_flush(q);
	t_assert_int(ndone, 1);
	t_assert(jobs[0].done && !jobs[0].cancelled);
	t_assert(jobs[1].worked && !jobs[1].done);
	t_assert_int(workq_pending(q), 0);
	/* The job without done() is gone too: max_pending 3 admits 3. */
	t_assert(workq_submit(q, &jobs[2], NULL, done) != 0);
	t_assert(workq_submit(q, &jobs[3], NULL, done) != 0);
	t_assert(workq_submit(q, &jobs[4], NULL, done) != 0);
	workq_flush(q);
	t_assert_int(ndone, 4);
	workq_free(q);

	q = workq_new(base, 2, NJOBS, thread_init, NULL, jobs);
	for (unsigned i = 0; i < 20; i++)
		workq_submit(q, &jobs[i], nodone_work, NULL);
	workq_flush(q);
	t_assert_int(nnodone, 20);
	t_assert_int(ndone, 4);
	workq_free(q);
	t_end();
}

int
main(void)
{
	log_init("test_workq", 1, LOG_LVL_ERROR);
	base = event_base_new();
	test_pool();
	test_pool_order();
	test_pool_cancel();
	test_pool_free_pending();
	test_batch();
	test_batch_max();
	test_batch_one_wakeup();
	test_batch_cancel();
	test_cancel_in_drain();
	test_batch_free_pending();
	test_flush_and_nodone();
	event_base_free(base);
	return t_exit();
}
