/*
 * Worker threads with results delivered on the event loop (workq.h): the
 * pool and the single batch writer share one implementation. Owns the
 * threads, the pending / running / finished lists (one mutex) and the
 * wake-up pipe; does not own the jobs (done() frees them).
 */
#include "common/workq.h"
#include "common/log.h"
#include "common/util.h"

#include <assert.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct workq_job {
	struct workq_job *next;
	uint64_t token;
	bool cancelled;			/* under mu until the loop takes it */
	void *job;
	workq_work_fn *work;
	workq_done_fn *done;
};

struct workq {
	pthread_mutex_t mu;
	pthread_cond_t cv;		/* pending grew, hold lifted, stopping */
	pthread_cond_t idle_cv;		/* a thread ended a pass */
	struct workq_job *pending, **pending_tail;
	/* FIFO: done() runs in the order the passes ended, and a batch in
	 * submission order. */
	struct workq_job *finished, **finished_tail;
	struct workq_job **running;	/* per thread: the jobs of its pass */
	/* Loop thread only: what workq_drain has taken and not yet reported
	 * (a done() may cancel a later job of the same drain). */
	struct workq_job *draining;
	unsigned nbusy;			/* threads inside a pass */
	unsigned npending;		/* queued + running + finished */
	unsigned max_pending;
	size_t nreport;			/* jobs with a done() not yet run */
	unsigned max_batch;		/* 1 in pool mode */
	workq_batch_fn *batch;		/* NULL in pool mode */
	workq_after_fn *after;		/* batch mode, may be NULL */
	bool stopping;
	bool hold;
	uint64_t next_token;
	pthread_t *threads;
	unsigned nthreads;
	void *(*thread_init)(void *);
	void (*thread_fini)(void *);
	void *init_arg;
	int pipefd[2];
	struct event *ev;
};

struct workq_thread_arg {
	struct workq *q;
	unsigned idx;
};

static struct workq *workq_create(struct event_base *, unsigned, unsigned,
    unsigned, workq_batch_fn *, workq_after_fn *, void *(*)(void *),
    void (*)(void *), void *);
static void *workq_thread(void *);
static void workq_pass_end(struct workq *, struct workq_job *);
static void workq_drain(evutil_socket_t, short, void *);

static void *
workq_thread(void *arg)
{
	struct workq_thread_arg *me = arg;
	struct workq *q = me->q;
	void **jobs = xcalloc(q->max_batch, sizeof(*jobs));
	void *ctx;

	ctx = q->thread_init != NULL ? q->thread_init(q->init_arg) :
	    q->init_arg;
	pthread_mutex_lock(&q->mu);
	for (;;) {
		while ((q->pending == NULL || q->hold) && !q->stopping)
			pthread_cond_wait(&q->cv, &q->mu);
		if (q->pending == NULL)
			break;		/* stopping and nothing left */
		/* Everything waiting now (up to max_batch) is one pass. */
		struct workq_job *head = q->pending, *last = head;
		size_t n = 1;

		jobs[0] = head->job;
		while (n < q->max_batch && last->next != NULL) {
			last = last->next;
			jobs[n++] = last->job;
		}
		q->pending = last->next;
		if (q->pending == NULL)
			q->pending_tail = &q->pending;
		last->next = NULL;
		q->running[me->idx] = head;
		q->nbusy++;
		/* Read under the lock: workq_cancel writes it. */
		bool skip = q->batch == NULL && head->cancelled;
		pthread_mutex_unlock(&q->mu);

		if (q->batch != NULL)
			q->batch(jobs, n, ctx);
		else if (!skip)
			head->work(head->job, ctx);

		pthread_mutex_lock(&q->mu);
		q->running[me->idx] = NULL;
		q->nbusy--;
		workq_pass_end(q, head);
		if (q->after != NULL) {
			pthread_mutex_unlock(&q->mu);
			q->after(ctx);
			pthread_mutex_lock(&q->mu);
		}
	}
	pthread_mutex_unlock(&q->mu);
	if (q->thread_fini != NULL)
		q->thread_fini(ctx);
	free(jobs);
	free(me);
	return NULL;
}

/*
 * Under mu: a pass is over. Jobs without done() are dropped here; the
 * others go to the loop. One pipe byte when the finished list goes from
 * empty to not empty: the loop reads the pipe before it takes the list,
 * so a list that is not empty always has a byte or a drain coming.
 */
static void
workq_pass_end(struct workq *q, struct workq_job *list)
{
	bool was_empty = q->finished == NULL;
	struct workq_job *j;

	while ((j = list) != NULL) {
		list = j->next;
		j->next = NULL;
		if (j->done == NULL) {
			q->npending--;
			free(j);
			continue;
		}
		*q->finished_tail = j;
		q->finished_tail = &j->next;
	}
	if (was_empty && q->finished != NULL) {
		char b = 1;
		ssize_t w = write(q->pipefd[1], &b, 1);

		(void)w;	/* full pipe: a byte is there already */
	}
	pthread_cond_broadcast(&q->idle_cv);
}

static void
workq_drain(evutil_socket_t fd, short what, void *arg)
{
	struct workq *q = arg;
	char buf[64];
	struct workq_job *j, **tail;

	(void)what;
	while (read(q->pipefd[0], buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&q->mu);
	/* Re-entered from a done() (workq_flush): go on with one list. */
	tail = &q->draining;
	while (*tail != NULL)
		tail = &(*tail)->next;
	*tail = q->finished;
	q->finished = NULL;
	q->finished_tail = &q->finished;
	pthread_mutex_unlock(&q->mu);
	while ((j = q->draining) != NULL) {
		q->draining = j->next;
		pthread_mutex_lock(&q->mu);
		q->npending--;
		q->nreport--;
		pthread_mutex_unlock(&q->mu);
		j->done(j->job, j->cancelled);
		free(j);
	}
}

static struct workq *
workq_create(struct event_base *base, unsigned nthreads,
    unsigned max_pending, unsigned max_batch, workq_batch_fn *batch,
    workq_after_fn *after, void *(*thread_init)(void *),
    void (*thread_fini)(void *), void *init_arg)
{
	struct workq *q = xcalloc(1, sizeof(*q));
	sigset_t all, old;

	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	pthread_cond_init(&q->idle_cv, NULL);
	q->pending_tail = &q->pending;
	q->finished_tail = &q->finished;
	q->max_pending = max_pending;
	q->max_batch = max_batch ? max_batch : 1;
	q->batch = batch;
	q->after = after;
	q->thread_init = thread_init;
	q->thread_fini = thread_fini;
	q->init_arg = init_arg;
	q->next_token = 1;
	if (pipe2(q->pipefd, O_NONBLOCK | O_CLOEXEC) < 0)
		log_fatal("event=workq.pipe error=\"%s\"", strerror(errno));
	q->ev = event_new(base, q->pipefd[0], EV_READ | EV_PERSIST,
	    workq_drain, q);
	event_add(q->ev, NULL);
	q->nthreads = nthreads ? nthreads : 1;
	q->threads = xcalloc(q->nthreads, sizeof(pthread_t));
	q->running = xcalloc(q->nthreads, sizeof(*q->running));
	/* Signals belong to the loop thread (libevent's handlers): the
	 * threads start with all of them blocked. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned i = 0; i < q->nthreads; i++) {
		struct workq_thread_arg *w = xmalloc(sizeof(*w));

		w->q = q;
		w->idx = i;
		if (pthread_create(&q->threads[i], NULL, workq_thread, w) != 0)
			log_fatal("event=workq.thread error=\"cannot start\"");
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return q;
}

struct workq *
workq_new(struct event_base *base, unsigned nthreads, unsigned max_pending,
    void *(*thread_init)(void *), void (*thread_fini)(void *),
    void *init_arg)
{
	return workq_create(base, nthreads, max_pending, 1, NULL, NULL,
	    thread_init, thread_fini, init_arg);
}

struct workq *
workq_new_batch(struct event_base *base, unsigned max_pending,
    unsigned max_batch, workq_batch_fn *batch, workq_after_fn *after,
    void *(*thread_init)(void *), void (*thread_fini)(void *),
    void *init_arg)
{
	assert(batch != NULL);
	return workq_create(base, 1, max_pending, max_batch, batch, after,
	    thread_init, thread_fini, init_arg);
}

void
workq_free(struct workq *q)
{
	if (q == NULL)
		return;
	pthread_mutex_lock(&q->mu);
	q->stopping = true;
	q->hold = false;
	for (struct workq_job *j = q->pending; j != NULL; j = j->next)
		j->cancelled = true;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	for (unsigned i = 0; i < q->nthreads; i++)
		pthread_join(q->threads[i], NULL);
	/* Every job with a done() is in finished now. */
	for (struct workq_job *j = q->finished; j != NULL; j = j->next)
		j->cancelled = true;
	workq_drain(q->pipefd[0], 0, q);
	event_free(q->ev);
	close(q->pipefd[0]);
	close(q->pipefd[1]);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
	pthread_cond_destroy(&q->idle_cv);
	free(q->threads);
	free(q->running);
	free(q);
}

uint64_t
workq_submit(struct workq *q, void *job, workq_work_fn *work,
    workq_done_fn *done)
{
	struct workq_job *j;
	uint64_t token;

	assert((q->batch == NULL) == (work != NULL));
	pthread_mutex_lock(&q->mu);
	if (q->npending >= q->max_pending || q->stopping) {
		pthread_mutex_unlock(&q->mu);
		return 0;
	}
	j = xcalloc(1, sizeof(*j));
	j->job = job;
	j->work = work;
	j->done = done;
	token = j->token = q->next_token++;
	*q->pending_tail = j;
	q->pending_tail = &j->next;
	q->npending++;
	if (done != NULL)
		q->nreport++;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
	return token;
}

void
workq_cancel(struct workq *q, uint64_t token)
{
	/* A job is queued, in a thread's pass, finished, or being drained
	 * right now: look in all. */
	pthread_mutex_lock(&q->mu);
	for (unsigned i = 0; i < q->nthreads; i++)
		for (struct workq_job *j = q->running[i]; j != NULL;
		    j = j->next)
			if (j->token == token)
				j->cancelled = true;
	for (struct workq_job *j = q->pending; j != NULL; j = j->next)
		if (j->token == token)
			j->cancelled = true;
	for (struct workq_job *j = q->finished; j != NULL; j = j->next)
		if (j->token == token)
			j->cancelled = true;
	pthread_mutex_unlock(&q->mu);
	for (struct workq_job *j = q->draining; j != NULL; j = j->next)
		if (j->token == token)
			j->cancelled = true;
}

size_t
workq_pending(struct workq *q)
{
	size_t n;

	pthread_mutex_lock(&q->mu);
	n = q->nreport;
	pthread_mutex_unlock(&q->mu);
	return n;
}

void
workq_flush(struct workq *q)
{
	pthread_mutex_lock(&q->mu);
	assert(!q->hold);
	while (q->pending != NULL || q->nbusy > 0)
		pthread_cond_wait(&q->idle_cv, &q->mu);
	pthread_mutex_unlock(&q->mu);
	workq_drain(q->pipefd[0], 0, q);
}

void
workq_hold(struct workq *q, bool hold)
{
	pthread_mutex_lock(&q->mu);
	q->hold = hold;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

unsigned
workq_ncpu(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : (unsigned)n;
}
