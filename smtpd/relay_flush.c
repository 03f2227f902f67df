/*
 * Storing what the relay learnt, on its writer thread (a batch workq with
 * its own connection; the loop only reads): recipient results in one
 * transaction, then each finished attempt (DSNs, reschedule with doubling
 * back-off, or delete) in a savepoint of its own.
 */
#include "smtpd/relay_int.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/log.h"
#include "common/notify.h"
#include "common/util.h"
#include "common/workq.h"
#include "smtpd/bounce.h"
#include "smtpd/dsn.h"
#include "smtpd/forward.h"
#include "store/store.h"
#include "store/suppress.h"
#include "store/throttle.h"

/* One recipient result to store (phase 1 of a flush). */
struct relay_upd {
	struct relay_msg *rm;
	size_t idx;			/* in rm->q.rcpts */
	int64_t rcpt_id;
	int status;
	char *error;			/* owned copy */
	char *suppress;			/* hard bounce: the address to put
					 * on the suppress list, or NULL */
};

/*
 * One batch of store writes, done by the writer thread with its own
 * connection so that no fsync ever runs on the event loop. While a batch
 * is out, the loop does not touch the messages in fin[] (no sessions run
 * for them) and keeps the upd[] messages alive.
 */
struct relay_batch {
	struct relay *r;
	struct relay_upd *upd;
	size_t nupd;
	struct relay_msg **fin;		/* attempts to finish (phase 2) */
	size_t nfin;
	bool gc;			/* also run store_gc */
	/* relay_throttle rows: set (concurrency > 0) or delete (0). */
	struct store_throttle *thr;
	size_t nthr;
	bool thr_reset;			/* delete every row first */
	struct relay_claim_req claim;	/* after the finishes */
	/* results */
	bool upd_ok;
	bool kick;			/* a DSN was queued */
};

static struct relay_batch *relay_batch_make(struct relay *);
static void relay_batch_throttle(struct relay *, struct relay_batch *);
static int relay_suppress(struct store *, const struct relay_upd *,
    int64_t);
static void relay_batch_run_throttle(struct store *, struct relay_batch *);
static void relay_batch_run(struct relay *, struct store *,
    struct relay_batch *);
static void relay_batch_apply(struct relay *, struct relay_batch *);
static void relay_batch_free(struct relay_batch *);
static void relay_writer_done(void *, bool);
static int relay_msg_finish(struct relay_msg *, struct store *, bool *);
static int64_t relay_next_delay(const struct cfg *, unsigned);
static void relay_defer_full(struct relay *, struct store *,
    struct relay_batch *, const bool *, int64_t);

void
relay_flush_add(struct relay_msg *rm)
{
	struct relay *r = rm->r;

	if (!rm->flushing) {
		rm->flushing = true;
		TAILQ_INSERT_TAIL(&r->flushq, rm, fentry);
	}
	if (!r->busy && !evtimer_pending(r->flush_retry, NULL))
		event_active(r->flush, EV_TIMEOUT, 1);
}

void
relay_flush_event(evutil_socket_t fd, short what, void *arg)
{
	relay_flush(arg);
}

/*
 * Take what is on the flush queue: a snapshot of every unstored recipient
 * result (phase 1) and the messages whose sessions are all over (phase 2,
 * handed to the batch). NULL if there is nothing to do.
 */
static struct relay_batch *
relay_batch_make(struct relay *r)
{
	struct relay_batch *b;
	struct relay_msg *rm;
	size_t i, nupd = 0, nfin = 0;

	TAILQ_FOREACH(rm, &r->flushq, fentry) {
		for (i = 0; i < rm->q.nrcpts; i++)
			nupd += rm->dirty[i];
		nfin += rm->left == 0;
	}
	if (nupd == 0 && nfin == 0 && !r->gc_due && !r->throttle_dirty &&
	    !r->throttle_reset && !r->claim_due && (r->nmsgs == 0 ||
	    util_time() < r->renew_at))
		return NULL;
	b = xcalloc(1, sizeof(*b));
	b->r = r;
	relay_batch_throttle(r, b);
	b->upd = xcalloc(nupd + 1, sizeof(*b->upd));
	b->fin = xcalloc(nfin + 1, sizeof(*b->fin));
	b->gc = r->gc_due;
	r->gc_due = false;
	while ((rm = TAILQ_FIRST(&r->flushq)) != NULL) {
		TAILQ_REMOVE(&r->flushq, rm, fentry);
		rm->flushing = false;
		for (i = 0; i < rm->q.nrcpts; i++) {
			struct relay_upd *u;

			if (!rm->dirty[i])
				continue;
			rm->dirty[i] = false;
			u = &b->upd[b->nupd++];
			u->rm = rm;
			u->idx = i;
			u->rcpt_id = rm->q.rcpts[i].id;
			u->status = rm->q.rcpts[i].status;
			u->error = xstrdup(rm->q.rcpts[i].last_error ?
			    rm->q.rcpts[i].last_error : "");
			if (r->cfg->relay.suppress_days > 0 && (u->status ==
			    STORE_QUEUE_RCPT_BOUNCED || u->status ==
			    STORE_QUEUE_RCPT_FAILED) &&
			    mta_reply_is_hard_bounce(u->error))
				u->suppress = xstrdup(
				    rm->q.rcpts[i].address);
		}
		if (rm->left == 0)
			b->fin[b->nfin++] = rm;
	}
	relay_claim_make(r, &b->claim, b->fin, b->nfin);
	return b;
}

/* The throttle rows that changed since the last batch (a snapshot: the
 * writer never reads struct relay_domain). */
static void
relay_batch_throttle(struct relay *r, struct relay_batch *b)
{
	struct relay_domain *d;
	struct store_throttle *t;
	size_t n = 0;
	int64_t now = util_time();
	uint64_t now_ms = util_now_ms();

	b->thr_reset = r->throttle_reset;
	r->throttle_reset = false;
	if (!r->throttle_dirty)
		return;
	r->throttle_dirty = false;
	for (d = r->domains; d != NULL; d = d->next)
		n += d->dirty;
	b->thr = xcalloc(n + 1, sizeof(*b->thr));
	for (d = r->domains; d != NULL; d = d->next) {
		if (!d->dirty)
			continue;
		d->dirty = false;
		t = &b->thr[b->nthr++];
		t->domain = xstrdup(d->name);
		t->concurrency = d->limit;
		t->held_until = now + (d->held_until_ms > now_ms ?
		    (int64_t)((d->held_until_ms - now_ms + 999) / 1000) : 0);
		t->since = d->since;
		t->reason = xstrdup(d->reason != NULL ? d->reason : "");
	}
}

/* Writer thread: the throttle report, one transaction; a failure only
 * leaves carteiroctl's view stale. */
static void
relay_batch_run_throttle(struct store *st, struct relay_batch *b)
{
	bool ok;
	size_t i;

	if (!b->thr_reset && b->nthr == 0)
		return;
	ok = store_begin(st) == 0;
	if (ok && b->thr_reset)
		ok = store_throttle_del(st, NULL) == 0;
	for (i = 0; ok && i < b->nthr; i++)
		ok = (b->thr[i].concurrency > 0 ? store_throttle_set(st,
		    &b->thr[i]) : store_throttle_del(st, b->thr[i].domain)) ==
		    0;
	if (ok && store_commit(st) == 0)
		return;
	store_rollback(st);
	log_warn("event=relay.throttle result=fail error=\"%s\"",
	    store_error(st));
}

/* A hard bounce: its address goes on the suppress list, in the same
 * transaction as the result (smtpd refuses it at RCPT from then on). */
static int
relay_suppress(struct store *st, const struct relay_upd *u, int64_t now)
{
	char esc[LOG_ESCAPE_MAX];

	if (u->suppress == NULL)
		return 0;
	if (store_suppress_add(st, u->suppress, now, u->error, "bounce") < 0)
		return -1;
	log_info("event=relay.suppress rcpt=%s reason=%s",
	    LOG_VALUE(u->suppress), log_escape(esc, sizeof(esc), u->error,
	    strlen(u->error)));
	return 0;
}

/*
 * Writer thread (or the loop at shutdown, when the writer is idle).
 * Phase 1: every recipient result, one transaction. Phase 2 only if that
 * committed: each finished attempt in its own SAVEPOINT inside one
 * transaction (DSNs, reschedule or delete); one that fails is undone
 * alone and stays due in the store, to be tried again.
 */
static void
relay_batch_run(struct relay *r, struct store *st, struct relay_batch *b)
{
	int64_t now = util_time();
	uint64_t t0 = util_now_ms();
	bool ok;
	size_t i;

	b->upd_ok = true;
	relay_batch_run_throttle(st, b);
	if (b->nupd > 0) {
		ok = store_begin(st) == 0;
		for (i = 0; ok && i < b->nupd; i++)
			if (store_queue_rcpt_set(st, b->upd[i].rcpt_id,
			    (enum store_queue_rcpt_status)b->upd[i].status,
			    b->upd[i].error, now) < 0 ||
			    relay_suppress(st, &b->upd[i], now) < 0)
				ok = false;
		if (ok && store_commit(st) < 0)
			ok = false;
		if (!ok) {
			store_rollback(st);
			log_error("event=relay.store result=fail error=\"%s\" "
			    "retry=1s", store_error(st));
			b->upd_ok = false;
			return;
		}
	}
	if (b->nfin > 0) {
		bool *undone = xcalloc(b->nfin, sizeof(*undone)), full = false;

		if (store_begin(st) < 0) {
			log_error("event=relay.store result=fail error=\"%s\"",
			    store_error(st));
			free(undone);
			return;
		}
		for (i = 0; i < b->nfin; i++) {
			if (store_begin(st) < 0)
				break;
			if (relay_msg_finish(b->fin[i], st, &b->kick) < 0) {
				log_error("event=relay.store qid=%s result=fail "
				    "error=\"%s\"", b->fin[i]->id,
				    store_error(st));
				full |= store_error_is_full(st);
				undone[i] = true;
				store_rollback(st);
			} else if (store_commit(st) < 0)
				break;
		}
		/* The ones not reached (the transaction is gone). */
		for (; i < b->nfin; i++)
			undone[i] = true;
		if (store_commit(st) < 0) {
			full |= store_error_is_full(st);
			store_rollback(st);
			log_error("event=relay.store result=fail error=\"%s\"",
			    store_error(st));
			for (i = 0; i < b->nfin; i++)
				undone[i] = true;
		}
		if (full)
			relay_defer_full(r, st, b, undone, now);
		free(undone);
	}
	relay_claim_run(r, st, &b->claim);
	if (b->gc && store_gc(st, RELAY_GC_BODIES, NULL) < 0)
		log_warn("event=relay.gc result=fail error=\"%s\"",
		    store_error(st));
	log_debug("event=relay.flush rcpts=%zu finished=%zu ms=%" PRIu64,
	    b->nupd, b->nfin, util_now_ms() - t0);
}

/*
 * The store had no room for what finished attempts left to write (a DSN
 * above all): the undone ones would stay due and be picked up again at
 * the next scan, every second. Defer them to their next retry instead
 * (attempts unchanged): the recipient results are stored, and the DSN is
 * written when the message finishes next time, once there is space. An
 * UPDATE in place needs no new page; if even that fails the message just
 * stays due.
 */
static void
relay_defer_full(struct relay *r, struct store *st, struct relay_batch *b,
    const bool *undone, int64_t now)
{
	for (size_t i = 0; i < b->nfin; i++) {
		struct store_queue_msg *q = &b->fin[i]->q;
		int64_t next = now + relay_next_delay(r->cfg, q->attempts);

		if (!undone[i])
			continue;
		if (store_begin(st) < 0 || store_queue_reschedule(st, q->id,
		    next, q->attempts) < 0 || store_commit(st) < 0) {
			store_rollback(st);
			log_error("event=relay.defer qid=%s result=fail "
			    "reason=store_full error=\"%s\"", b->fin[i]->id,
			    store_error(st));
			continue;
		}
		log_warn("event=relay.defer qid=%s reason=store_full "
		    "next_in=%" PRId64 "s", b->fin[i]->id, next - now);
	}
}

/* Loop thread: the batch is back; free what it finished. */
static void
relay_batch_apply(struct relay *r, struct relay_batch *b)
{
	struct timeval tv = { 1, 0 };
	size_t i;

	for (i = 0; i < b->nupd; i++) {
		if (!b->upd_ok) {
			/* Store them with the next batch. */
			b->upd[i].rm->dirty[b->upd[i].idx] = true;
			relay_flush_add(b->upd[i].rm);
		}
	}
	for (i = 0; i < b->nfin; i++) {
		if (b->upd_ok)
			relay_msg_free(b->fin[i]);	/* done, or due again */
		else
			relay_flush_add(b->fin[i]);
	}
	if (!b->upd_ok)
		evtimer_add(r->flush_retry, &tv);
	relay_claim_apply(r, &b->claim);
	/* A DSN went into the queue: the same signal as any new mail. */
	if (b->kick)
		notify_post(r->queue_changed);
	/* Room for more messages: look again now. */
	if (b->nfin > 0 && r->nmsgs + b->nfin >= RELAY_MAX_MSGS)
		relay_kick(r);
	relay_batch_free(b);
}

static void
relay_batch_free(struct relay_batch *b)
{
	for (size_t i = 0; i < b->nupd; i++) {
		free(b->upd[i].error);
		free(b->upd[i].suppress);
	}
	free(b->upd);
	free(b->fin);
	relay_claim_clear(&b->claim);
	store_throttle_free(b->thr, b->nthr);
	free(b);
}

void
relay_flush(struct relay *r)
{
	struct relay_batch *b;
	uint64_t tok;

	if (r->busy || r->stopping || evtimer_pending(r->flush_retry, NULL))
		return;
	if ((b = relay_batch_make(r)) == NULL)
		return;
	r->busy = true;
	/* Never full: busy was false, so nothing is in the queue. */
	tok = workq_submit(r->writer, b, NULL, relay_writer_done);
	assert(tok != 0);
	(void)tok;
}

/* Writer thread: one relay_batch per pass (r->busy). */
void
relay_writer_batch(void *const *jobs, size_t n, void *arg)
{
	struct relay *r = arg;

	for (size_t i = 0; i < n; i++)
		relay_batch_run(r, r->wst, jobs[i]);
}

/* Loop: the batch is back. Cancelled only by workq_free, after the
 * shutdown flush, when its messages may be gone: just free it. */
static void
relay_writer_done(void *job, bool cancelled)
{
	struct relay_batch *b = job;
	struct relay *r = b->r;

	r->busy = false;
	if (cancelled) {
		relay_batch_free(b);
		return;
	}
	relay_batch_apply(r, b);
	relay_flush(r);
}

/*
 * Shutdown: wait for the batch that is out, then store whatever results
 * are left before returning, so mail delivered before SIGTERM is never
 * sent again.
 */
void
relay_flush_sync(struct relay *r)
{
	struct relay_batch *b;
	uint64_t tok;

	if (r->writer == NULL)
		return;
	workq_flush(r->writer);
	if (r->flush_retry != NULL)	/* NULL: relay_new failed early */
		evtimer_del(r->flush_retry);
	if ((b = relay_batch_make(r)) != NULL) {
		r->busy = true;
		tok = workq_submit(r->writer, b, NULL, relay_writer_done);
		assert(tok != 0);
		(void)tok;
		workq_flush(r->writer);
	}
}

/* Delay before attempt number attempts+1: retry_first doubling, capped. */
static int64_t
relay_next_delay(const struct cfg *cfg, unsigned attempts)
{
	int64_t d = cfg->relay.retry_first;
	unsigned i;

	for (i = 1; i < attempts && d < (int64_t)cfg->relay.retry_max; i++)
		d *= 2;
	if (d > (int64_t)cfg->relay.retry_max)
		d = cfg->relay.retry_max;
	return d;
}

/*
 * The message as its DSNs see it: a forwarded copy queued with our SRS
 * sender is reported to the sender behind it (forward.h). 0 and *dq (a
 * shallow copy of rm->q; *orig_r, owned, replaces its sender), 1 if no
 * DSN can go anywhere (the SRS sender does not verify), -1 store error.
 */
static int
relay_dsn_msg(struct relay_msg *rm, struct store *st,
    struct store_queue_msg *dq, char **orig_r)
{
	const struct store_queue_msg *q = &rm->q;
	enum srs_result res;
	int rc;

	*dq = *q;
	*orig_r = NULL;
	if (rm->r->srs == NULL)
		return 0;
	rc = forward_dsn_rcpt(st, rm->r->srs, q->mail_from, q->created,
	    orig_r, &res);
	if (rc < 0)
		return -1;
	if (rc == 2) {
		log_warn("event=relay.bounce qid=%s from=%s result=dropped "
		    "reason=\"SRS sender does not verify: %s\"", rm->id,
		    LOG_VALUE(q->mail_from), srs_result_str(res));
		return 1;
	}
	if (rc == 1)
		dq->mail_from = *orig_r;
	return 0;
}

/*
 * The attempt is over for every domain: DSNs for new permanent failures
 * (and expired recipients), a delay warning if due, then reschedule or
 * delete. Runs inside relay_flush's transaction; *kick_r is set when a
 * DSN was queued. 0 or -1 (store error: the caller rolls this back).
 */
static int
relay_msg_finish(struct relay_msg *rm, struct store *st, bool *kick_r)
{
	struct relay *r = rm->r;
	const struct cfg *cfg = r->cfg;
	struct store_queue_msg *q = &rm->q;
	struct bounce_rcpt *fail, *delay, *relayed;
	struct store_queue_msg dq;
	char *orig = NULL;
	bool dsn_ok = true;
	size_t nfail = 0, ndelay = 0, nrelayed = 0, npending = 0, i;
	int64_t now = util_time(), expires, next;
	unsigned attempts = q->attempts + 1;
	bool expired, warn;
	int rc, ret = -1;

	expires = q->created + (int64_t)cfg->relay.queue_lifetime;
	expired = now >= expires;
	warn = !expired && !q->warned && cfg->relay.delay_warning > 0 &&
	    now >= q->created + (int64_t)cfg->relay.delay_warning;
	fail = xcalloc(q->nrcpts + 1, sizeof(*fail));
	delay = xcalloc(q->nrcpts + 1, sizeof(*delay));
	relayed = xcalloc(q->nrcpts + 1, sizeof(*relayed));
	/* RFC 3461 4.1: FAILED and RELAYED rows already owe their notice
	 * (relay_attempt.c asked NOTIFY); an expiry or a delay asks here. */
	for (i = 0; i < q->nrcpts; i++) {
		struct store_queue_rcpt *qr = &q->rcpts[i];

		if (qr->status == STORE_QUEUE_RCPT_FAILED ||
		    (qr->status == STORE_QUEUE_RCPT_PENDING && expired &&
		    dsn_notify_wants(qr->dsn_notify, DSN_NOTIFY_FAILURE))) {
			fail[nfail].address = qr->address;
			fail[nfail].reply = qr->last_error != NULL &&
			    qr->last_error[0] != '\0' ? qr->last_error :
			    "451 4.4.7 delivery time expired";
			fail[nfail].remote_mta = rm->mx[i];
			fail[nfail].orcpt = qr->dsn_orcpt;
			nfail++;
		} else if (qr->status == STORE_QUEUE_RCPT_RELAYED) {
			relayed[nrelayed].address = qr->address;
			relayed[nrelayed].reply = qr->last_error;
			relayed[nrelayed].remote_mta = rm->mx[i];
			relayed[nrelayed].orcpt = qr->dsn_orcpt;
			nrelayed++;
		} else if (qr->status == STORE_QUEUE_RCPT_PENDING) {
			npending++;
			if (!dsn_notify_wants(qr->dsn_notify,
			    DSN_NOTIFY_DELAY))
				continue;
			delay[ndelay].address = qr->address;
			delay[ndelay].reply = qr->last_error;
			delay[ndelay].remote_mta = rm->mx[i];
			delay[ndelay].orcpt = qr->dsn_orcpt;
			ndelay++;
		}
	}

	if (nfail > 0 || nrelayed > 0 || (warn && ndelay > 0)) {
		if ((rc = relay_dsn_msg(rm, st, &dq, &orig)) < 0)
			goto out;
		dsn_ok = rc == 0;
	}
	if (nfail > 0) {
		rc = !dsn_ok ? 1 : bounce_send(st, cfg->server.hostname,
		    cfg->server.postmaster, &dq, BOUNCE_FAILED, 0, fail, nfail);
		if (rc < 0)
			goto out;
		*kick_r |= rc == 0;
	}
	if (nfail > 0 || expired) {
		/* NOTIFY without FAILURE expires quietly. */
		for (i = 0; i < q->nrcpts; i++) {
			struct store_queue_rcpt *qr = &q->rcpts[i];

			if (qr->status == STORE_QUEUE_RCPT_FAILED ||
			    (qr->status == STORE_QUEUE_RCPT_PENDING && expired)) {
				if (store_queue_rcpt_set(st, qr->id,
				    STORE_QUEUE_RCPT_BOUNCED, NULL, now) < 0)
					goto out;
				if (qr->status == STORE_QUEUE_RCPT_PENDING)
					log_info("event=relay.expire qid=%s "
					    "rcpt=%s status=bounced", rm->id,
					    LOG_VALUE(qr->address));
			}
		}
	}
	if (nrelayed > 0) {
		rc = !dsn_ok ? 1 : bounce_send(st, cfg->server.hostname,
		    cfg->server.postmaster, &dq, BOUNCE_RELAYED, 0, relayed,
		    nrelayed);
		if (rc < 0)
			goto out;
		*kick_r |= rc == 0;
		for (i = 0; i < q->nrcpts; i++)
			if (q->rcpts[i].status == STORE_QUEUE_RCPT_RELAYED &&
			    store_queue_rcpt_set(st, q->rcpts[i].id,
			    STORE_QUEUE_RCPT_DELIVERED, NULL, now) < 0)
				goto out;
	}
	if (warn && npending > 0) {
		if (ndelay > 0) {
			rc = !dsn_ok ? 1 : bounce_send(st,
			    cfg->server.hostname, cfg->server.postmaster, &dq,
			    BOUNCE_DELAYED, expires,
			    delay, ndelay);
			if (rc < 0)
				goto out;
			*kick_r |= rc == 0;
		}
		if (store_queue_set_warned(st, q->id) < 0)
			goto out;
	}
	if (npending == 0 || expired) {
		if (store_queue_delete(st, q->id) < 0)
			goto out;
		log_info("event=relay.done qid=%s attempts=%u", rm->id,
		    attempts);
	} else {
		next = now + relay_next_delay(cfg, attempts);
		/* The last retry lands on the expiry, not days after it. */
		if (next > expires)
			next = expires;
		if (store_queue_reschedule(st, q->id, next, attempts) < 0)
			goto out;
		log_info("event=relay.retry qid=%s attempts=%u pending=%zu "
		    "next_in=%" PRId64 "s", rm->id, attempts, npending,
		    next - now);
	}
	ret = 0;
out:
	free(orig);
	free(fail);
	free(delay);
	free(relayed);
	return ret;
}
