/*
 * Group-commit delivery, the loop side: delivery_new/free, copying a job
 * in, and each result back as the caller's callback (never for a cancelled
 * token) plus a "queue changed" post when remote mail was queued. Writer:
 * delivery_writer.c; checkpoints: delivery_ckpt.c; spools: delivery_spool.c.
 */
#include "smtpd/delivery.h"
#include "smtpd/delivery_int.h"

#include <assert.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "common/notify.h"
#include "common/util.h"
#include "common/workq.h"
#include "smtpd/dsn.h"
#include "store/store.h"

static void delivery_item_done(void *, bool);
static void delivery_item_free(struct delivery_item *);
static char **delivery_strv_dup(const char *const *, size_t);
static void delivery_strv_free(char **, size_t);
static void delivery_dsn_dup(const struct dsn_rcpt *, size_t, unsigned **,
    char ***);

/* ---- setup and teardown ---- */

struct delivery *
delivery_new(struct event_base *base, const struct cfg *cfg)
{
	struct delivery *d;
	const char *err = NULL;

	d = xcalloc(1, sizeof(*d));
	d->base = base;
	d->cfg = cfg;
	pthread_mutex_init(&d->mu, NULL);

	d->st = store_open(cfg->store.locator, &err);
	if (d->st == NULL) {
		log_error("event=delivery.open path=%s error=\"%s\"",
		    cfg->store.path, err ? err : "unknown");
		goto fail;
	}
	if (store_check_schema(d->st) != 0) {
		log_error("event=delivery.open path=%s error=\"%s\"",
		    cfg->store.path, store_error(d->st));
		goto fail;
	}
	d->ckpt_st = store_open(cfg->store.locator, &err);
	if (d->ckpt_st == NULL) {
		log_error("event=delivery.open path=%s error=\"%s\"",
		    cfg->store.path, err ? err : "unknown");
		goto fail;
	}
	store_set_autocheckpoint(d->st, 0);
	d->flat_units = store_set_flat_units(d->st, true);
	if (delivery_ckpt_start(d) != 0)
		goto fail;
	/* No limit on queued jobs: each one is a transaction the client
	 * already sent in full; flow control is the sessions' business. */
	d->writer = workq_new_batch(base, UINT_MAX, DELIVERY_BATCH_MAX,
	    delivery_writer_batch, delivery_ckpt_after, NULL, NULL, d);
	return d;

fail:
	delivery_free(d);
	return NULL;
}

void
delivery_free(struct delivery *d)
{
	if (d == NULL)
		return;
	/* SIGTERM must not lose accepted mail: the writer commits the whole
	 * queue before it leaves; the results go nowhere (done() learns it
	 * is cancelled), the callers are going away with us. */
	d->freeing = true;
	workq_free(d->writer);
	/* Jobs per commit: how well group commit worked (the bench reads
	 * it). */
	log_info("event=delivery.stats batches=%" PRIu64 " jobs=%" PRIu64
	    " wait_us=%" PRIu64 " batch_us=%" PRIu64 " return_us=%" PRIu64,
	    d->n_batches, d->n_jobs,
	    d->n_jobs != 0 ? d->us_wait / d->n_jobs : 0,
	    d->n_jobs != 0 ? d->us_batch / d->n_jobs : 0,
	    d->n_jobs != 0 ? d->us_return / d->n_jobs : 0);
	delivery_ckpt_stop(d);
	/* The last connection to close checkpoints what is left. */
	store_close(d->ckpt_st);
	store_close(d->st);
	delivery_spool_pool_drain();
	pthread_mutex_destroy(&d->mu);
	free(d);
}

void
delivery_set_notify(struct delivery *d, struct notify *queued)
{
	d->queued = queued;
}

/* ---- loop side ---- */

uint64_t
delivery_submit(struct delivery *d, const struct delivery_job *job,
    delivery_done_cb *cb, void *arg)
{
	struct delivery_item *it;

	it = xcalloc(1, sizeof(*it));
	it->d = d;
	it->cb = cb;
	it->arg = arg;
	it->spool_fd = job->spool_fd;
	it->mem = job->mem;
	it->data_size = job->data_size;
	it->prefix_len = job->prefix != NULL ? job->prefix_len : 0;
	it->prefix = xmalloc(it->prefix_len + 1);
	if (it->prefix_len > 0)
		memcpy(it->prefix, job->prefix, it->prefix_len);
	it->prefix[it->prefix_len] = '\0';
	it->mail_from = xstrdup(job->mail_from != NULL ? job->mail_from : "");
	it->queue_mail_from = job->queue_mail_from != NULL ?
	    xstrdup(job->queue_mail_from) : NULL;
	it->local = delivery_strv_dup(job->local, job->nlocal);
	it->nlocal = job->nlocal;
	it->remote = delivery_strv_dup(job->remote, job->nremote);
	it->nremote = job->nremote;
	it->auth_user = job->auth_user != NULL ? xstrdup(job->auth_user) :
	    NULL;
	it->smtputf8 = job->smtputf8;
	it->count_sent = job->count_sent && it->auth_user != NULL &&
	    it->nremote > 0;
	it->msgid = xstrdup(job->msgid != NULL ? job->msgid : "-");
	delivery_dsn_dup(job->local_dsn, job->nlocal, &it->local_notify,
	    &it->local_orcpt);
	delivery_dsn_dup(job->remote_dsn, job->nremote, &it->remote_notify,
	    &it->remote_orcpt);
	if (job->dsn != NULL) {
		it->dsn_ret = (int)job->dsn->ret;
		it->dsn_envid = job->dsn->envid != NULL ?
		    xstrdup(job->dsn->envid) : NULL;
	}
	it->res = DELIVERY_TEMPFAIL;
	it->t_submit = delivery_now_us();
	/* The result comes back on this thread, so the token is set before
	 * delivery_item_done can read it. */
	it->token = workq_submit(d->writer, it, NULL, delivery_item_done);
	assert(it->token != 0);
	return it->token;
}

void
delivery_cancel(struct delivery *d, uint64_t token)
{
	/* Cancels are rare (a client vanished while its mail was being
	 * committed); the job itself still completes. */
	workq_cancel(d->writer, token);
}

size_t
delivery_pending(const struct delivery *d)
{
	return workq_pending(d->writer);
}

void
delivery_stats(struct delivery *d, uint64_t *batches_r, uint64_t *jobs_r)
{
	pthread_mutex_lock(&d->mu);
	if (batches_r != NULL)
		*batches_r = d->n_batches;
	if (jobs_r != NULL)
		*jobs_r = d->n_jobs;
	pthread_mutex_unlock(&d->mu);
}

void
delivery_full_update(struct delivery *d, bool full)
{
	uint64_t now = util_now_ms();
	bool was;

	pthread_mutex_lock(&d->mu);
	was = d->full_until != 0;
	if (full)
		d->full_until = now + DELIVERY_FULL_HOLD_MS;
	else
		d->full_until = 0;
	pthread_mutex_unlock(&d->mu);
	/* An operator must act: once per episode, not per refused message. */
	if (full && !was)
		log_error("event=store.full result=fail hold_ms=%d",
		    DELIVERY_FULL_HOLD_MS);
	else if (!full && was)
		log_info("event=store.full result=ok");
}

bool
delivery_is_full(struct delivery *d)
{
	uint64_t until;

	pthread_mutex_lock(&d->mu);
	until = d->full_until;
	pthread_mutex_unlock(&d->mu);
	return until != 0 && util_now_ms() < until;
}

void
delivery_note_full(struct delivery *d)
{
	delivery_full_update(d, true);
}

void
delivery_hold(struct delivery *d, bool hold)
{
	workq_hold(d->writer, hold);
}

/*
 * On the loop, once per job, in submission order; a whole batch comes in
 * one wake-up. A callback may cancel a later token of the same batch or
 * submit new jobs (they go to the queue, not here).
 */
static void
delivery_item_done(void *job, bool cancelled)
{
	struct delivery_item *it = job;
	struct delivery *d = it->d;

	if (it->t_commit != 0)
		d->us_return += delivery_now_us() - it->t_commit;
	if (!cancelled && it->cb != NULL)
		it->cb(it->token, it->res, it->queue_id, it->arg);
	/* Whoever sends the queue on hears it now, not at its next tick. */
	if (it->res == DELIVERY_OK && (it->queue_id != 0 ||
	    it->notice_queued) && !d->freeing)
		notify_post(d->queued);
	delivery_item_free(it);
}

/* ---- helpers ---- */

uint64_t
delivery_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void
delivery_item_free(struct delivery_item *it)
{
	if (it->spool_fd != -1)
		close(it->spool_fd);
	free(it->mem);
	free(it->prefix);
	free(it->mail_from);
	free(it->queue_mail_from);
	delivery_strv_free(it->local, it->nlocal);
	delivery_strv_free(it->remote, it->nremote);
	free(it->auth_user);
	free(it->msgid);
	free(it->local_notify);
	delivery_strv_free(it->local_orcpt, it->local_orcpt ? it->nlocal : 0);
	free(it->remote_notify);
	delivery_strv_free(it->remote_orcpt, it->remote_orcpt ?
	    it->nremote : 0);
	free(it->dsn_envid);
	free(it);
}

static char **
delivery_strv_dup(const char *const *v, size_t n)
{
	char **r;

	if (n == 0)
		return NULL;
	r = xcalloc(n, sizeof(*r));
	for (size_t i = 0; i < n; i++)
		r[i] = xstrdup(v[i]);
	return r;
}

/* The DSN parameters of n recipients as two arrays (both NULL when no
 * recipient has any). */
static void
delivery_dsn_dup(const struct dsn_rcpt *v, size_t n, unsigned **notify_r,
    char ***orcpt_r)
{
	size_t i;
	bool any = false;

	*notify_r = NULL;
	*orcpt_r = NULL;
	for (i = 0; v != NULL && i < n; i++)
		any |= v[i].notify != 0 || v[i].orcpt != NULL;
	if (!any)
		return;
	*notify_r = xcalloc(n, sizeof(**notify_r));
	*orcpt_r = xcalloc(n, sizeof(**orcpt_r));
	for (i = 0; i < n; i++) {
		(*notify_r)[i] = v[i].notify;
		(*orcpt_r)[i] = v[i].orcpt != NULL ? xstrdup(v[i].orcpt) :
		    NULL;
	}
}

static void
delivery_strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}
