/*
 * The one bridge from worker threads to the libevent loop: work() on a
 * thread, then done() on the loop. A pool (one job per thread at a time)
 * or a single writer taking every waiting job as one batch (group commit).
 * One pipe byte per pass at most; no libevent thread support needed.
 */
#ifndef CARTEIRO_WORKQ_H
#define CARTEIRO_WORKQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct workq;

/* thread_ctx: what thread_init returned for this thread, or init_arg when
 * there is no thread_init. */
typedef void workq_work_fn(void *job, void *thread_ctx);
/* Batch mode: jobs[0..n) in submission order, 1 <= n <= max_batch. */
typedef void workq_batch_fn(void *const *jobs, size_t n, void *thread_ctx);
/* Batch mode, optional: on the thread after each pass has been handed to
 * the loop (housekeeping that must not delay the results). */
typedef void workq_after_fn(void *thread_ctx);
/* On the loop thread. cancelled: workq_cancel() came first, or the queue
 * is being freed. Must free the job. */
typedef void workq_done_fn(void *job, bool cancelled);

/*
 * Pool mode: nthreads workers (0 means 1). A job cancelled before a worker
 * takes it is not worked. At most max_pending jobs are queued, running or
 * waiting for their done(). log_fatal when the threads cannot start.
 */
struct workq *workq_new(struct event_base *base, unsigned nthreads,
    unsigned max_pending, void *(*thread_init)(void *arg),
    void (*thread_fini)(void *ctx), void *init_arg);
/*
 * Batch mode: one thread. Each time it wakes it takes every waiting job
 * (at most max_batch) and calls batch() once with all of them, then hands
 * the whole batch to the loop with one wake-up; done() runs in submission
 * order; after (may be NULL) runs next, on the thread. Every submitted
 * job is worked, even a cancelled one (cancel only tells done()), and
 * workq_free works every queued job before it returns.
 */
struct workq *workq_new_batch(struct event_base *base, unsigned max_pending,
    unsigned max_batch, workq_batch_fn *batch, workq_after_fn *after,
    void *(*thread_init)(void *arg), void (*thread_fini)(void *ctx),
    void *init_arg);
/*
 * Pool mode: stops the workers (running jobs finish; queued ones are not
 * worked). Batch mode: works every queued job first. Then done(cancelled)
 * for every job not yet reported, and joins. Loop thread; accepts NULL.
 */
void workq_free(struct workq *q);
/*
 * A token (never 0), or 0 if max_pending jobs are already in (or the queue
 * is stopping). work: pool mode only (NULL in batch mode). done: NULL when
 * nothing goes back to the loop (the job is dropped after its work, on the
 * worker thread, and costs the loop no wake-up). Any thread.
 */
uint64_t workq_submit(struct workq *q, void *job, workq_work_fn *work,
    workq_done_fn *done);
/* done() will get cancelled = true; the work may still run. Loop thread. */
void workq_cancel(struct workq *q, uint64_t token);
/* Jobs submitted with a done() that has not run yet. */
size_t workq_pending(struct workq *q);
/*
 * Waits until every job submitted so far has been worked, then runs the
 * done() of every finished job here, on the loop thread (shutdown paths
 * that must see results before they go on). Not while held.
 */
void workq_flush(struct workq *q);
/* The number of CPUs online (at least 1): the size of a CPU-bound pool. */
unsigned workq_ncpu(void);
/* Tests and benchmarks: while held no thread takes a job (batch mode: so
 * that jobs submitted meanwhile make one batch). workq_free lifts it. */
void workq_hold(struct workq *q, bool hold);

#endif
