/*
 * A small bounded pool of worker threads for blocking work (DNS-heavy
 * message checks) whose results come back on the libevent loop. Each job
 * runs work() on a worker thread, then done() on the loop thread; done()
 * learns whether the job was cancelled meanwhile (its owner is gone) and
 * always frees the job. Results cross threads through a pipe watched by an
 * event, so the loop needs no libevent thread support.
 */
#ifndef CARTEIRO_WORKQ_H
#define CARTEIRO_WORKQ_H

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct workq;

/* thread_ctx: what thread_init returned for this worker (NULL if none). */
typedef void workq_work_fn(void *job, void *thread_ctx);
/* On the loop thread. cancelled: workq_cancel() came first, or the pool
 * is being freed. Must free the job. */
typedef void workq_done_fn(void *job, bool cancelled);

struct workq *workq_new(struct event_base *base, unsigned nthreads,
    unsigned max_pending, void *(*thread_init)(void *arg),
    void (*thread_fini)(void *ctx), void *init_arg);
/* Stops the workers (the running jobs finish), calls done(cancelled) for
 * every job not yet reported, joins. */
void workq_free(struct workq *q);
/* A token (never 0), or 0 if max_pending jobs are already queued. */
uint64_t workq_submit(struct workq *q, void *job, workq_work_fn *work,
    workq_done_fn *done);
/* done() will get cancelled = true; the work may still run. */
void workq_cancel(struct workq *q, uint64_t token);

#endif
