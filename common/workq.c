/*
 * Worker-thread pool with results delivered on the event loop (workq.h).
 * Owns the threads, the pending and finished lists (one mutex), and the
 * wake-up pipe.
 */
#include "common/workq.h"
#include "common/log.h"
#include "common/util.h"

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
	bool cancelled;
	void *job;
	workq_work_fn *work;
	workq_done_fn *done;
};

struct workq {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct workq_job *pending, **pending_tail;
	struct workq_job *finished;	/* LIFO is fine: order not promised */
	struct workq_job **current;	/* per worker: job being worked on */
	unsigned npending;		/* queued + running + finished */
	unsigned max_pending;
	bool stopping;
	uint64_t next_token;
	pthread_t *threads;
	unsigned nthreads;
	void *(*thread_init)(void *);
	void (*thread_fini)(void *);
	void *init_arg;
	int pipefd[2];
	struct event *ev;
};

static void *workq_thread(void *);
static void workq_drain(evutil_socket_t, short, void *);

struct workq_worker {
	struct workq *q;
	unsigned idx;
};

static void *
workq_thread(void *arg)
{
	struct workq_worker *me = arg;
	struct workq *q = me->q;
	sigset_t all;
	void *ctx = NULL;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	if (q->thread_init != NULL)
		ctx = q->thread_init(q->init_arg);
	pthread_mutex_lock(&q->mu);
	for (;;) {
		while (q->pending == NULL && !q->stopping)
			pthread_cond_wait(&q->cv, &q->mu);
		if (q->pending == NULL && q->stopping)
			break;
		struct workq_job *j = q->pending;
		q->pending = j->next;
		if (q->pending == NULL)
			q->pending_tail = &q->pending;
		q->current[me->idx] = j;
		/* Read under the lock: workq_cancel writes it. */
		bool skip = j->cancelled;
		pthread_mutex_unlock(&q->mu);

		if (!skip)
			j->work(j->job, ctx);

		pthread_mutex_lock(&q->mu);
		q->current[me->idx] = NULL;
		j->next = q->finished;
		q->finished = j;
		char b = 1;
		ssize_t w = write(q->pipefd[1], &b, 1);	/* full pipe: fine */
		(void)w;
	}
	pthread_mutex_unlock(&q->mu);
	if (q->thread_fini != NULL)
		q->thread_fini(ctx);
	free(me);
	return NULL;
}

static void
workq_drain(evutil_socket_t fd, short what, void *arg)
{
	struct workq *q = arg;
	char buf[256];
	struct workq_job *list;

	(void)what;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&q->mu);
	list = q->finished;
	q->finished = NULL;
	pthread_mutex_unlock(&q->mu);
	while (list != NULL) {
		struct workq_job *j = list;
		list = j->next;
		pthread_mutex_lock(&q->mu);
		bool cancelled = j->cancelled;
		q->npending--;
		pthread_mutex_unlock(&q->mu);
		j->done(j->job, cancelled);
		free(j);
	}
}

struct workq *
workq_new(struct event_base *base, unsigned nthreads, unsigned max_pending,
    void *(*thread_init)(void *), void (*thread_fini)(void *),
    void *init_arg)
{
	struct workq *q = xcalloc(1, sizeof(*q));

	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	q->pending_tail = &q->pending;
	q->max_pending = max_pending;
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
	q->current = xcalloc(q->nthreads, sizeof(*q->current));
	for (unsigned i = 0; i < q->nthreads; i++) {
		struct workq_worker *w = xmalloc(sizeof(*w));
		w->q = q;
		w->idx = i;
		if (pthread_create(&q->threads[i], NULL, workq_thread, w) != 0)
			log_fatal("event=workq.thread error=\"cannot start\"");
	}
	return q;
}

void
workq_free(struct workq *q)
{
	if (q == NULL)
		return;
	pthread_mutex_lock(&q->mu);
	q->stopping = true;
	for (struct workq_job *j = q->pending; j != NULL; j = j->next)
		j->cancelled = true;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	for (unsigned i = 0; i < q->nthreads; i++)
		pthread_join(q->threads[i], NULL);
	/* Every job is in finished now. */
	pthread_mutex_lock(&q->mu);
	for (struct workq_job *j = q->finished; j != NULL; j = j->next)
		j->cancelled = true;
	pthread_mutex_unlock(&q->mu);
	workq_drain(q->pipefd[0], 0, q);
	event_free(q->ev);
	close(q->pipefd[0]);
	close(q->pipefd[1]);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
	free(q->threads);
	free(q->current);
	free(q);
}

uint64_t
workq_submit(struct workq *q, void *job, workq_work_fn *work,
    workq_done_fn *done)
{
	struct workq_job *j;
	uint64_t token;

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
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
	return token;
}

void
workq_cancel(struct workq *q, uint64_t token)
{
	/* A job is queued, running on a worker, or finished: look in all. */
	pthread_mutex_lock(&q->mu);
	for (unsigned i = 0; i < q->nthreads; i++)
		if (q->current[i] != NULL && q->current[i]->token == token)
			q->current[i]->cancelled = true;
	for (struct workq_job *j = q->pending; j != NULL; j = j->next)
		if (j->token == token)
			j->cancelled = true;
	for (struct workq_job *j = q->finished; j != NULL; j = j->next)
		if (j->token == token)
			j->cancelled = true;
	pthread_mutex_unlock(&q->mu);
}
