/*
 * Group commit on the delivery writer thread: a batch in one BEGIN
 * IMMEDIATE ... COMMIT (a failing job dropped and the rest redone, busy
 * retried), then each job logged and its spool recycled. workq hands the
 * batch to the loop (delivery.c), which sends the 250s: after the commit.
 */
#include "smtpd/delivery_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "smtpd/bounce.h"
#include "smtpd/dsn.h"
#include "store/queue.h"
#include "store/store.h"

/* Attempts of a batch that fails with SQLITE_BUSY (each already waited the
 * store's busy timeout), then the jobs get 451. */
#define DELIVERY_ATTEMPTS 4
#define DELIVERY_BACKOFF_MS 50

enum delivery_try {
	DELIVERY_TRY_OK,
	DELIVERY_TRY_RETRY,		/* busy/locked: back off, run again */
	DELIVERY_TRY_REDO,		/* a job decided, transaction lost
					 * (flat units): run again at once */
	DELIVERY_TRY_BADJOB,		/* one job failed: drop it, run again */
	DELIVERY_TRY_SPLIT,		/* commit failed: deliver one by one */
	DELIVERY_TRY_FULL,		/* one job's commit found no space */
};

static void delivery_run_batch(struct delivery *, struct delivery_item **,
    size_t);
static enum delivery_try delivery_try_batch(struct delivery *,
    struct delivery_item **, size_t, size_t *);
static void delivery_finish(struct delivery *, struct delivery_item **,
    size_t);
static void delivery_sleep_ms(unsigned);
static void delivery_notify_success(struct delivery *,
    struct delivery_item *, int64_t);
static const char *delivery_result_name(enum delivery_result);

void
delivery_writer_batch(void *const *jobs, size_t n, void *arg)
{
	struct delivery *d = arg;
	struct delivery_item *items[DELIVERY_BATCH_MAX];
	uint64_t now = delivery_now_us();

	for (size_t i = 0; i < n; i++) {
		items[i] = jobs[i];
		items[i]->t_start = now;
	}
	delivery_run_batch(d, items, n);
	now = delivery_now_us();
	for (size_t i = 0; i < n; i++)
		items[i]->t_commit = now;
	delivery_finish(d, items, n);
}

/*
 * Deliver items[0..n) in as few transactions as possible. On return every
 * item has its final res. One failing job never fails the others: it is
 * dropped and the rest is redone; a failed commit falls back to one
 * transaction per job.
 */
static void
delivery_run_batch(struct delivery *d, struct delivery_item **items,
    size_t n)
{
	unsigned attempt = 0;
	uint64_t t0 = util_now_ms();
	size_t bad, ok;

	for (size_t i = 0; i < n; i++)
		items[i]->decided = false;
	for (;;) {
		switch (delivery_try_batch(d, items, n, &bad)) {
		case DELIVERY_TRY_OK:
			ok = 0;
			for (size_t i = 0; i < n; i++)
				if (!items[i]->decided &&
				    items[i]->res == DELIVERY_OK)
					ok++;
			for (size_t i = 0; i < n; i++)
				items[i]->decided = true;
			pthread_mutex_lock(&d->mu);
			d->n_batches++;
			pthread_mutex_unlock(&d->mu);
			log_debug("event=delivery.commit jobs=%zu ms=%" PRIu64,
			    ok, util_now_ms() - t0);
			return;
		case DELIVERY_TRY_REDO:
			/* Ends: each redo decides one more job. */
			continue;
		case DELIVERY_TRY_BADJOB:
			log_warn("event=delivery.fail msgid=%s error=\"%s\"",
			    items[bad]->msgid, store_error(d->st));
			/* Out of space: 452 4.3.1 (the rest may still fit). */
			items[bad]->res = store_error_is_full(d->st) ?
			    DELIVERY_FULL : DELIVERY_TEMPFAIL;
			items[bad]->decided = true;
			continue;
		case DELIVERY_TRY_FULL:
			log_warn("event=delivery.fail jobs=1 error=\"%s\"",
			    store_error(d->st));
			for (size_t i = 0; i < n; i++) {
				if (!items[i]->decided) {
					items[i]->res = DELIVERY_FULL;
					items[i]->decided = true;
				}
			}
			return;
		case DELIVERY_TRY_SPLIT:
			for (size_t i = 0; i < n; i++)
				if (!items[i]->decided)
					delivery_run_batch(d, &items[i], 1);
			return;
		case DELIVERY_TRY_RETRY:
			if (++attempt >= DELIVERY_ATTEMPTS) {
				log_warn("event=delivery.fail jobs=%zu "
				    "error=\"%s\" attempts=%u", n,
				    store_error(d->st), attempt);
				for (size_t i = 0; i < n; i++) {
					if (!items[i]->decided) {
						items[i]->res =
						    DELIVERY_TEMPFAIL;
						items[i]->decided = true;
					}
				}
				return;
			}
			delivery_sleep_ms(DELIVERY_BACKOFF_MS << attempt);
			continue;
		}
	}
}

/* One transaction over the undecided items. Quota results are tentative
 * until the commit (they depend on what the transaction saw). */
static enum delivery_try
delivery_try_batch(struct delivery *d, struct delivery_item **items,
    size_t n, size_t *bad_r)
{
	size_t delivered = 0, undecided = 0;

	for (size_t i = 0; i < n; i++)
		if (!items[i]->decided)
			undecided++;
	if (undecided == 0)
		return DELIVERY_TRY_OK;
	if (store_begin(d->st) != 0)
		return DELIVERY_TRY_RETRY;
	for (size_t i = 0; i < n; i++) {
		struct delivery_item *it = items[i];
		struct store_delivery sd;
		int64_t body_id = 0, queue_id = 0;

		if (it->decided)
			continue;
		it->queue_id = 0;
		memset(&sd, 0, sizeof(sd));
		sd.prefix = it->prefix;
		sd.prefix_len = it->prefix_len;
		sd.fd = it->spool_fd;
		sd.data_size = it->data_size;
		sd.mail_from = it->mail_from;
		sd.queue_mail_from = it->queue_mail_from;
		sd.local = (const char *const *)it->local;
		sd.nlocal = it->nlocal;
		sd.remote = (const char *const *)it->remote;
		sd.nremote = it->nremote;
		sd.auth_user = it->auth_user;
		sd.smtputf8 = it->smtputf8;
		sd.dsn_ret = it->dsn_ret;
		sd.dsn_envid = it->dsn_envid;
		sd.remote_notify = it->remote_notify;
		sd.remote_orcpt = (const char *const *)it->remote_orcpt;
		/* Checked inside the transaction by the same statement that
		 * counts the message; a refused job leaves nothing (its own
		 * savepoint) and the other jobs of the batch are untouched. */
		sd.check_quota = true;
		if ((it->mem != NULL ? store_deliver_mem(d->st, &sd, it->mem,
		    (size_t)it->data_size, &body_id, &queue_id) :
		    store_deliver(d->st, &sd, &body_id, &queue_id)) != 0 ||
		    (it->count_sent && store_sent_add(d->st, it->auth_user,
		    util_time(), (unsigned)it->nremote) != 0)) {
			if (store_error_is_quota(d->st)) {
				it->res = DELIVERY_QUOTA;
				if (!d->flat_units)
					continue;
				/* Without its savepoint the refused job's
				 * first rows are still in the transaction. */
				it->decided = true;
				store_rollback(d->st);
				return DELIVERY_TRY_REDO;
			}
			store_rollback(d->st);
			if (store_error_is_busy(d->st))
				return DELIVERY_TRY_RETRY;
			*bad_r = i;
			return DELIVERY_TRY_BADJOB;
		}
		it->res = DELIVERY_OK;
		it->queue_id = queue_id;
		delivered++;
		delivery_notify_success(d, it, body_id);
	}
	if (store_commit(d->st) != 0) {
		/* store_commit has rolled back. In WAL mode the pages are
		 * written at the commit, so that is where ENOSPC shows. */
		if (store_error_is_full(d->st) && delivered <= 1)
			return DELIVERY_TRY_FULL;
		if (store_error_is_busy(d->st) || delivered <= 1)
			return DELIVERY_TRY_RETRY;
		return DELIVERY_TRY_SPLIT;
	}
	return DELIVERY_TRY_OK;
}

/*
 * RFC 3461 5.2.2/6.2: the local recipients whose NOTIFY has SUCCESS get
 * one "delivered" DSN, committed with the delivery itself. A notice that
 * cannot be stored is logged and the mail still delivered: the sender's
 * receipt is worth less than the message.
 */
static void
delivery_notify_success(struct delivery *d, struct delivery_item *it,
    int64_t body_id)
{
	struct store_queue_msg m;
	struct bounce_rcpt *br;
	size_t i, n = 0;
	int rc;

	if (it->local_notify == NULL || it->mail_from[0] == '\0')
		return;
	br = xcalloc(it->nlocal, sizeof(*br));
	for (i = 0; i < it->nlocal; i++) {
		if (!dsn_notify_wants(it->local_notify[i], DSN_NOTIFY_SUCCESS))
			continue;
		br[n].address = it->local[i];
		br[n].orcpt = it->local_orcpt[i];
		n++;
	}
	if (n > 0) {
		bool flat = store_set_flat_units(d->st, false);

		/* Not a queued message: id 0 (no queue id in the report);
		 * the strings stay owned by the item. A real savepoint
		 * around it: a notice that fails must not take the
		 * delivery with it. */
		memset(&m, 0, sizeof(m));
		m.mail_from = it->mail_from;
		m.body_id = body_id;
		m.created = util_time();
		m.smtputf8 = it->smtputf8;
		m.dsn_ret = it->dsn_ret;
		m.dsn_envid = it->dsn_envid;
		rc = bounce_send(d->st, d->cfg->server.hostname,
		    d->cfg->server.postmaster, &m, BOUNCE_DELIVERED, 0, br, n);
		if (rc < 0)
			log_warn("event=delivery.notify msgid=%s result=fail "
			    "error=\"%s\"", it->msgid, store_error(d->st));
		else if (rc == 0)
			it->notice_queued = true;
		store_set_flat_units(d->st, flat);
	}
	free(br);
}

/* Log each job and recycle its spool before the batch goes to the loop. */
static void
delivery_finish(struct delivery *d, struct delivery_item **items, size_t n)
{
	bool full = false, stored = false;

	for (size_t i = 0; i < n; i++) {
		struct delivery_item *it = items[i];

		full |= it->res == DELIVERY_FULL;
		stored |= it->res == DELIVERY_OK;

		log_info("event=smtp.deliver msgid=%s rcpts=%zu bytes=%" PRIu64
		    " result=%s queue_id=%" PRId64, it->msgid,
		    it->nlocal + it->nremote, it->prefix_len + it->data_size,
		    delivery_result_name(it->res), it->queue_id);
		if (it->spool_fd != -1) {
			delivery_spool_recycle(it->spool_fd);
			it->spool_fd = -1;
		}
		free(it->mem);
		it->mem = NULL;
	}
	pthread_mutex_lock(&d->mu);
	d->n_jobs += n;
	for (size_t i = 0; i < n; i++) {
		d->us_wait += items[i]->t_start - items[i]->t_submit;
		d->us_batch += items[i]->t_commit - items[i]->t_start;
	}
	pthread_mutex_unlock(&d->mu);
	/* Before the results reach the loop: the next RCPT already knows. */
	if (full)
		delivery_full_update(d, true);
	else if (stored)
		delivery_full_update(d, false);
}

static void
delivery_sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
	    .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static const char *
delivery_result_name(enum delivery_result res)
{
	switch (res) {
	case DELIVERY_OK:
		return "ok";
	case DELIVERY_TEMPFAIL:
		return "tempfail";
	case DELIVERY_QUOTA:
		return "quota";
	case DELIVERY_FULL:
		return "full";
	}
	return "unknown";
}
