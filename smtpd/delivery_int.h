/*
 * Internals shared by the delivery files: delivery.c (lifecycle and the
 * loop side), delivery_writer.c (group commit on the writer thread),
 * delivery_ckpt.c (WAL checkpoints) and delivery_spool.c (spool files).
 * Nothing outside smtpd/delivery*.c includes this.
 */
#ifndef CARTEIRO_DELIVERY_INT_H
#define CARTEIRO_DELIVERY_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtpd/delivery.h"

struct event;
struct notify;
struct store;
struct workq;

/* Jobs per transaction: bounds the time the write lock is held and the
 * latency the first job of a batch sees. */
#define DELIVERY_BATCH_MAX 256

struct delivery_item {
	struct delivery *d;
	uint64_t token;			/* the writer queue's, set on the loop */
	delivery_done_cb *cb;
	void *arg;

	/* The job, deep-copied; every pointer is owned here. */
	int spool_fd;
	unsigned char *mem;		/* instead of spool_fd */
	uint64_t data_size;
	char *prefix;
	size_t prefix_len;
	char *mail_from;
	char *queue_mail_from;		/* or NULL: mail_from */
	char **local;
	size_t nlocal;
	char **remote;
	size_t nremote;
	char *auth_user;
	bool smtputf8;
	bool count_sent;
	char *msgid;
	/* RFC 3461 (NULL arrays: none): per local[i] / remote[i]. */
	unsigned *local_notify;
	char **local_orcpt;
	unsigned *remote_notify;
	char **remote_orcpt;
	int dsn_ret;
	char *dsn_envid;
	bool notice_queued;		/* a success DSN went to the queue */

	/* Writer thread while in a batch, then read by the loop. */
	enum delivery_result res;
	int64_t queue_id;
	bool decided;			/* res is final (failed before commit) */

	/* Latency (delivery_now_us): submitted on the loop, its batch taken
	 * by the writer, that batch's commit returned. */
	uint64_t t_submit, t_start, t_commit;
};

struct delivery {
	struct event_base *base;
	const struct cfg *cfg;		/* borrowed: hostname, postmaster */
	/* Batch mode: every job waiting when the writer wakes is one
	 * transaction; the results come back to the loop in one wake-up. */
	struct workq *writer;
	struct store *st;		/* writer thread only once started */
	/* st has flat units (PostgreSQL): a job that fails takes the
	 * batch's transaction with it, so the batch is redone without it. */
	bool flat_units;
	/*
	 * The writer's connection never checkpoints (that would put the copy
	 * from the WAL into the database on the commit path, in front of the
	 * 250s): delivery_ckpt.c runs PASSIVE checkpoints on a thread of
	 * its own, with its own connection.
	 */
	struct workq *ckpt;
	struct store *ckpt_st;		/* checkpoint thread only */
	struct event *ckpt_tick;	/* loop: a pass every DELIVERY_CKPT_MS */
	struct notify *queued;		/* borrowed, may be NULL */
	bool freeing;			/* loop: delivery_free has begun */

	pthread_mutex_t mu;		/* the counters and full_until */
	uint64_t n_batches;		/* committed transactions */
	uint64_t n_jobs;		/* jobs finished (any result) */
	/* Sums over finished jobs, microseconds: waiting for the writer
	 * (mostly the batch before, in its commit), the job's own batch up
	 * to the end of its commit (fsync included), and from there to its
	 * result on the loop. Logged by delivery_free. */
	uint64_t us_wait, us_batch;
	uint64_t us_return;		/* loop thread only */
	/* util_now_ms() until which the store counts as full (delivery.h),
	 * 0 when it is not. */
	uint64_t full_until;
};

/* delivery.c: CLOCK_MONOTONIC in microseconds. */
uint64_t delivery_now_us(void);

/* delivery_writer.c: the writer queue's batch function (arg: d). */
void delivery_writer_batch(void *const *jobs, size_t n, void *arg);

/* delivery_ckpt.c */
/* The checkpoint thread and its timer. 0, or -1 logged. */
int delivery_ckpt_start(struct delivery *d);
/* Stops both (a pass in progress finishes). Accepts a failed start. */
void delivery_ckpt_stop(struct delivery *d);
/* The writer queue's after function (arg: d): between two batches, asks
 * for a background pass or checkpoints itself when the WAL is long. */
void delivery_ckpt_after(void *arg);

/* delivery.c: the full state, from either thread (takes d->mu). full:
 * a job failed for lack of space; else a job committed. */
void delivery_full_update(struct delivery *d, bool full);

/* delivery_spool.c */
/* A finished job's spool file: truncated and kept for the next
 * delivery_spool_open, or closed. Any thread. */
void delivery_spool_recycle(int fd);
/* Close every pooled spool file (delivery_free). */
void delivery_spool_pool_drain(void);

#endif
