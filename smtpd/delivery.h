/*
 * Durable hand-off of finished transactions to the store, with group
 * commit: a writer thread (a batch workq) with its own store connection
 * takes every job waiting when it wakes up, delivers them all inside one
 * transaction (store_begin / store_deliver ... / store_commit) and reports
 * each job's result back on the event loop. The 250 after DATA/BDAT is sent from that
 * callback, so it always means "fsync'd". SQLite lock waits happen on the
 * writer thread, never on the loop.
 *
 * Also the spool: a message body is streamed to an unlinked temporary file
 * (O_TMPFILE next to the database) while it is received.
 */
#ifndef CARTEIRO_DELIVERY_H
#define CARTEIRO_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct cfg;
struct delivery;
struct dsn_mail;
struct dsn_rcpt;

enum delivery_result {
	DELIVERY_OK,		/* committed: send 250 */
	DELIVERY_TEMPFAIL,	/* store error: 451 4.3.0, nothing kept */
	DELIVERY_QUOTA,		/* a local recipient would pass its quota: 552 5.2.2 */
	DELIVERY_FULL,		/* the store could not grow: 452 4.3.1,
				 * nothing kept */
};

/*
 * One finished transaction. delivery_submit copies every string and list
 * and takes ownership of spool_fd (closed when the job is done).
 */
struct delivery_job {
	int spool_fd;			/* data, from offset 0, or -1 */
	/* Or the data itself (spool_fd -1): malloc'd, data_size bytes, and
	 * owned by delivery from delivery_submit on. */
	unsigned char *mem;
	uint64_t data_size;
	const char *prefix;		/* Received line(s), CRLF; no Return-Path */
	size_t prefix_len;
	const char *mail_from;		/* "" for <> */
	/* The queue row's sender instead (SRS for forwarded copies), or
	 * NULL: mail_from. */
	const char *queue_mail_from;
	const char *const *local;	/* resolved local mailboxes */
	size_t nlocal;
	const char *const *remote;	/* remote recipients (queued) */
	size_t nremote;
	const char *auth_user;		/* NULL unless authenticated */
	bool smtputf8;
	const char *msgid;		/* carteiro's id, for logs */
	/* Added: record nremote in the sending log (store_sent_add for
	 * auth_user, daily_send_limit) inside the delivery's own transaction,
	 * so the count is atomic with the 250 and costs no write on the loop.
	 * Ignored without auth_user or remote recipients. */
	bool count_sent;
	/* RFC 3461: per local[i] / remote[i], or NULL (none for any); the
	 * MAIL's RET and ENVID, or NULL. Local recipients whose NOTIFY has
	 * SUCCESS get a "delivered" DSN in the same commit. */
	const struct dsn_rcpt *local_dsn;
	const struct dsn_rcpt *remote_dsn;
	const struct dsn_mail *dsn;
};

/* done runs on the loop thread. queue_id is the outbound queue row or 0. */
typedef void delivery_done_cb(uint64_t token, enum delivery_result res,
    int64_t queue_id, void *arg);

/* Opens its own store connection from cfg->store.path. NULL + log on error. */
struct delivery *delivery_new(struct event_base *base, const struct cfg *cfg);
/* Waits for queued jobs to finish (SIGTERM: accepted mail is committed). */
void delivery_free(struct delivery *d);
/* Returns a token (never 0). cb runs later unless delivery_cancel(token)
 * came first (the job itself still completes: mail is never half-kept). */
uint64_t delivery_submit(struct delivery *d, const struct delivery_job *job,
    delivery_done_cb *cb, void *arg);
void delivery_cancel(struct delivery *d, uint64_t token);

/* A new spool file for one message (O_TMPFILE in dir, or an unlinked
 * mkstemp file). -1 + errno on failure. */
int delivery_spool_open(const char *dir);
/*
 * Small messages are spooled in memory, a malloc'd buffer handed to the
 * job (no file at all; workers get a copy, see spool.h); past
 * DELIVERY_SPOOL_MEM_MAX bytes a message goes to a disk spool.
 */
#define DELIVERY_SPOOL_MEM_MAX	(128 * 1024)

/* ---- additions (delivery.c) ---- */
/*
 * Spool files are recycled: when a job is done its file is truncated,
 * rewound and handed out again by delivery_spool_open (same filesystem),
 * because an inode per message is the most expensive part of a small
 * message. A spool fd that never reached delivery_submit is just closed.
 */
/*
 * delivery_free runs on the loop thread, never from a callback: it commits
 * every queued job, then drops the results without calling their callbacks
 * (the callers are going away too). Use delivery_pending to drain first.
 */

struct notify;
/* Posted on the loop after a commit that queued mail for remote
 * recipients (whoever sends the queue on subscribes). queued is borrowed;
 * NULL turns it off. */
void delivery_set_notify(struct delivery *d, struct notify *queued);
/* Jobs submitted whose callback has not run yet (cancelled ones included):
 * SIGTERM can run the loop until this is 0 before delivery_free. */
size_t delivery_pending(const struct delivery *d);
/* Counters since delivery_new: committed transactions and finished jobs.
 * jobs / batches is the group-commit factor. Either pointer may be NULL. */
void delivery_stats(struct delivery *d, uint64_t *batches_r,
    uint64_t *jobs_r);
/*
 * A full store. After a job failed for lack of space (DELIVERY_FULL) or a
 * spool could not grow (delivery_note_full), delivery_is_full is true for
 * DELIVERY_FULL_HOLD_MS, so that RCPT can answer 452 4.3.1 before the
 * client sends a message that cannot be stored. The next committed job
 * ends it; so does the hold running out, after which the next message
 * finds out whether space has come back (there is no restart and no probe:
 * a write is the only reliable test, e.g. under a filesystem quota).
 * Loop thread; the writer thread updates the state under the mutex.
 */
#define DELIVERY_FULL_HOLD_MS	5000
bool delivery_is_full(struct delivery *d);
void delivery_note_full(struct delivery *d);

/* Tests and benchmarks: while held, the writer takes no new jobs (so that
 * jobs submitted meanwhile share one transaction). delivery_free lifts it. */
void delivery_hold(struct delivery *d, bool hold);

#endif
