/*
 * One delivery attempt of the relay: a job (one message, one destination
 * domain) runs one SMTP client session (mta.c) that reads the body from
 * the store; its replies become recipient states in memory, handed to
 * relay_flush.c. Does not own scheduling (relay.c) or any store write.
 */
#include "smtpd/relay_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/config.h"
#include "common/log.h"
#include "common/stats.h"
#include "common/util.h"
#include "smtpd/dsn.h"
#include "store/store.h"

static ssize_t relay_body_read(void *, uint64_t, void *, size_t);
static void relay_job_rcpt(struct mta_session *, struct mta_rcpt *, void *);
static void relay_job_done(struct mta_session *, void *);

void
relay_job_try_start(struct relay_job *job)
{
	struct relay_msg *rm = job->rm;
	struct relay *r = rm->r;
	struct relay_domain *d = relay_domain(r, job->domain, true);
	uint64_t size = 0;

	if (r->sessions >= r->cfg->relay.max_connections ||
	    !relay_domain_can_start(r, d)) {
		TAILQ_INSERT_TAIL(&r->waiting, job, wait);
		job->s = NULL;
		return;
	}
	job->body = store_body_open(r->st, rm->q.body_id, &size);
	/* RFC 5321 4.4: Return-Path is added at final delivery only. It is
	 * a column of the mailbox row, never bytes of the body, so the body
	 * goes out as stored. */
	if (job->body == NULL)
		log_warn("event=relay.body qid=%s result=fail error=\"%s\"",
		    rm->id, store_error(r->st));
	job->mm.id = rm->id;
	job->mm.domain = job->domain;
	job->mm.mail_from = rm->q.mail_from;
	job->mm.smtputf8 = rm->q.smtputf8;
	job->mm.dsn_ret = rm->q.dsn_ret;
	job->mm.dsn_envid = rm->q.dsn_envid;
	job->mm.size = size;
	job->mm.read = relay_body_read;
	job->mm.read_arg = job;
	job->mm.rcpts = job->rcpts;
	job->mm.nrcpts = job->n;
	job->mm.source = rm->source != NULL ? rm->source : r->source;
	job->mm.helo = rm->helo;
	r->sessions++;
	d->sessions++;
	log_debug("event=relay.session qid=%s domain=%s rcpts=%zu sessions=%u "
	    "domain_sessions=%u", rm->id, LOG_VALUE(job->domain), job->n, r->sessions,
	    d->sessions);
	job->s = mta_session_start(r->mta, &job->mm, relay_job_rcpt,
	    relay_job_done, job);
}

void
relay_start_waiting(struct relay *r)
{
	struct relay_job *job, *next;
	struct relay_domain *d;

	for (job = TAILQ_FIRST(&r->waiting); job != NULL &&
	    r->sessions < r->cfg->relay.max_connections; job = next) {
		next = TAILQ_NEXT(job, wait);
		d = relay_domain(r, job->domain, true);
		if (!relay_domain_can_start(r, d))
			continue;
		TAILQ_REMOVE(&r->waiting, job, wait);
		relay_job_try_start(job);
	}
}

static ssize_t
relay_body_read(void *arg, uint64_t off, void *buf, size_t len)
{
	struct relay_job *job = arg;

	if (job->body == NULL)
		return -1;
	return store_body_read(job->body, off, buf, len);
}

/* Results are collected in relay_job_done, which mta.c calls right after
 * the last one (same call stack). */
static void
relay_job_rcpt(struct mta_session *s, struct mta_rcpt *mr, void *arg)
{
}

/*
 * A session is over: its results go into memory now and into the store
 * from relay_flush, in one transaction with every other session that
 * ended in this loop iteration (one fsync per burst, not per session; a
 * burst of 100 fsyncs would stall the listener). Nothing else reaches the
 * network before that commit.
 */
static void
relay_job_done(struct mta_session *s, void *arg)
{
	struct relay_job *job = arg;
	struct relay_msg *rm = job->rm;
	struct relay *r = rm->r;
	struct relay_domain *d = relay_domain(r, job->domain, false);
	struct store_queue_rcpt *qr;
	struct mta_rcpt *mr;
	char esc[LOG_ESCAPE_MAX];
	bool no_dsn = rm->q.mail_from[0] == '\0' || rm->q.is_bounce;
	bool fail_dsn, success_dsn;
	enum store_queue_rcpt_status st;
	size_t i, k;

	job->s = NULL;
	job->done = true;
	r->sessions--;
	if (d != NULL)
		d->sessions--;
	store_body_close(job->body);
	job->body = NULL;

	for (i = 0; i < job->n; i++) {
		mr = &job->rcpts[i];
		k = job->qidx[i];
		qr = &rm->q.rcpts[k];
		/* RFC 3461 4.1: NOTIFY picks the notices we owe; a next hop
		 * that offers DSN took the success one over (5.2.2). */
		fail_dsn = !no_dsn && dsn_notify_wants(qr->dsn_notify,
		    DSN_NOTIFY_FAILURE);
		success_dsn = !no_dsn && !mr->dsn_passed &&
		    dsn_notify_wants(qr->dsn_notify, DSN_NOTIFY_SUCCESS);
		st = mr->result == MTA_OK ? (success_dsn ?
		    STORE_QUEUE_RCPT_RELAYED : STORE_QUEUE_RCPT_DELIVERED) :
		    mr->result == MTA_PERM ? (fail_dsn ?
		    STORE_QUEUE_RCPT_FAILED : STORE_QUEUE_RCPT_BOUNCED) :
		    STORE_QUEUE_RCPT_PENDING;
		qr->status = st;
		free(rm->mx[k]);
		rm->mx[k] = mr->mx != NULL ? xstrdup(mr->mx) : NULL;
		free(qr->last_error);
		qr->last_error = xstrdup(mr->reply ? mr->reply : "");
		rm->dirty[k] = true;
		stats_inc(st == STORE_QUEUE_RCPT_DELIVERED ? STATS_RELAY_SENT :
		    st == STORE_QUEUE_RCPT_PENDING ? STATS_RELAY_DEFERRED :
		    STATS_RELAY_BOUNCED);
		log_info("event=relay.delivery qid=%s rcpt=%s domain=%s "
		    "mx=%s status=%s attempt=%u reply=%s", rm->id,
		    LOG_VALUE(qr->address), LOG_VALUE(job->domain),
		    LOG_VALUE(mr->mx),
		    st == STORE_QUEUE_RCPT_DELIVERED ||
		    st == STORE_QUEUE_RCPT_RELAYED ? "sent" : st ==
		    STORE_QUEUE_RCPT_PENDING ? "deferred" : "bounced",
		    rm->q.attempts + 1, log_escape(esc, sizeof(esc),
		    qr->last_error, strlen(qr->last_error)));
	}
	if (d != NULL)
		relay_throttle_job(r, d, job);
	rm->left--;
	relay_flush_add(rm);
	relay_start_waiting(r);
}
