/*
 * RCPT TO: the checks that need no store on the loop, then the recipient
 * policy lookups (SRS, resolution with the quota of the users it finds,
 * the forwarding sender, suppression, the daily limit) as one job that knows nothing of the session,
 * then the reply and the transaction's update on the loop.
 *
 * Where the job runs depends on the store. On SQLite the lookups are a
 * few microseconds of local reads and run inline, on the loop's own
 * connection (a thread hop would cost more than the work). On PostgreSQL
 * each lookup is a round trip to the server, five or more per RCPT; on
 * the loop they would stall every other session for as long as the
 * network and the server take, so they go to srv->lookup, a small pool
 * of threads with a connection each, and the session waits
 * (SMTP_MODE_WAIT) as it does for an AUTH check.
 */
#include "smtpd/smtpd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/conn.h"
#include "common/log.h"
#include "common/util.h"
#include "common/workq.h"
#include "mailauth/srs.h"
#include "smtpd/delivery.h"
#include "smtpd/forward.h"
#include "smtpd/tx_suppress.h"
#include "store/store.h"

/* PostgreSQL: lookup threads (one connection each) and jobs queued at
 * most; past that an RCPT gets 451 at once rather than waiting. */
#define SMTP_RCPT_THREADS	4
#define SMTP_RCPT_PENDING	4096

enum smtp_rcpt_accept {
	SMTP_RCPT_REFUSED,	/* reply says why (or a 451) */
	SMTP_RCPT_TO_LOCAL,	/* local[] (and an alias's remote[]) */
	SMTP_RCPT_TO_REMOTE,	/* the address itself, or the SRS original */
};

/* One RCPT's lookups: copies in, results out; no pointer to the session
 * is followed off the loop. */
struct smtp_rcpt_job {
	struct smtp_session *s;		/* loop side only */
	struct smtp_path p;		/* parsed on the loop; addr, DSN */
	/* In. */
	char sid[17];
	char *mail_from;
	char *auth_user;		/* NULL: no daily limit */
	const struct cfg *cfg;
	const struct srs *srs;		/* NULL: no SRS */
	bool mx;
	bool snapshot;			/* the lookups share one read snapshot */
	bool fwd_fixed;			/* the tx's forwarding sender is set */
	size_t tx_nremote;
	/* In and out: the tx's sent count of the last day, -1 unknown. */
	int64_t sent_base;
	/* Out. */
	enum smtp_rcpt_accept accept;
	const char *result;		/* for the log */
	char reply[1024];
	char **local, **remote;
	size_t nlocal, nremote;
	char *orig;			/* the sender behind a verified SRS
					 * rcpt, or NULL */
	bool fwd_set;			/* fwd_domain, queue_from are new */
	char *fwd_domain;
	char *queue_from;
};

static void smtp_rcpt_lookup(struct store *, struct smtp_rcpt_job *);
static int smtp_rcpt_forwarding(struct store *, struct smtp_rcpt_job *,
    bool);
static int smtp_rcpt_check_limit(struct store *, struct smtp_rcpt_job *);
static void smtp_rcpt_apply(struct smtp_session *, struct smtp_rcpt_job *);
static void smtp_rcpt_job_free(struct smtp_rcpt_job *);
static void smtp_rcpt_work(void *, void *);
static void smtp_rcpt_done(void *, bool);
static void *smtp_rcpt_thread_init(void *);
static void smtp_rcpt_thread_fini(void *);

/* ---- the pool ---- */

void
smtp_rcpt_pool_start(struct smtp_server *srv)
{
	if (store_locator_is_server(srv->cfg->store.locator))
		srv->lookup = workq_new(srv->base, SMTP_RCPT_THREADS,
		    SMTP_RCPT_PENDING, smtp_rcpt_thread_init,
		    smtp_rcpt_thread_fini, (void *)srv->cfg);
}

void
smtp_rcpt_pool_stop(struct smtp_server *srv)
{
	workq_free(srv->lookup);
	srv->lookup = NULL;
}

void
smtp_rcpt_cancel(struct smtp_session *s)
{
	if (s->rcpt_token != 0)
		workq_cancel(s->lst->srv->lookup, s->rcpt_token);
	s->rcpt_token = 0;
}

/* A thread's connection. NULL when it cannot be opened: every lookup on
 * that thread then answers 451, and the next thread may do better. */
static void *
smtp_rcpt_thread_init(void *arg)
{
	const struct cfg *cfg = arg;
	const char *error = NULL;
	struct store *st;

	if ((st = store_open(cfg->store.locator, &error)) == NULL)
		log_error("event=smtp.lookup error=\"store: %s\"",
		    error != NULL ? error : "unknown");
	return st;
}

static void
smtp_rcpt_thread_fini(void *ctx)
{
	store_close(ctx);
}

static void
smtp_rcpt_work(void *job, void *ctx)
{
	smtp_rcpt_lookup(ctx, job);
}

static void
smtp_rcpt_done(void *job, bool cancelled)
{
	struct smtp_rcpt_job *j = job;
	struct smtp_session *s = j->s;

	if (!cancelled) {
		s->rcpt_token = 0;
		/* The session's current command is still this RCPT: it
		 * reads no other while it waits. */
		if (!conn_is_closing(s->conn))
			smtp_rcpt_apply(s, j);
		smtp_session_resume(s);
	}
	smtp_rcpt_job_free(j);
}

/* ---- the command ---- */

void
smtp_cmd_rcpt(struct smtp_session *s, const char *args)
{
	struct smtp_server *srv = s->lst->srv;
	struct smtp_tx *tx = s->tx;
	struct smtp_rcpt_job *j;
	const char *error, *result = "reject";
	enum smtp_path_err err;
	char esc[LOG_ESCAPE_MAX];
	struct smtp_path p;
	bool mx = !smtp_session_is_submission(s);

	err = smtp_path_parse(args, SMTP_PATH_RCPT, tx->smtputf8, &p, &error);
	if (err != SMTP_PATH_OK) {
		smtp_tx_path_error(s, err, error, false);
		return;
	}
	if (tx->nrcpt >= srv->cfg->smtpd.max_recipients) {
		smtp_reply(s, "452 4.5.3 Error: too many recipients");
		goto refused;
	}
	if (p.literal) {
		smtp_reply(s, "550 5.7.1 <%s>: address literals not accepted",
		    p.addr);
		goto refused;
	}
	if (mx && p.percent) {
		smtp_reply(s, "550 5.7.1 <%s>: Relay access denied", p.addr);
		goto refused;
	}
	/* A message now could not be stored (delivery.h): say so before
	 * the client sends it. */
	if (delivery_is_full(srv->delivery)) {
		smtp_reply(s, SMTP_REPLY_FULL);
		result = "full";
		goto refused;
	}

	j = xcalloc(1, sizeof(*j));
	j->s = s;
	j->p = p;
	memcpy(j->sid, s->sid, sizeof(j->sid));
	j->mail_from = xstrdup(tx->mail_from);
	j->auth_user = s->auth_user != NULL ? xstrdup(s->auth_user) : NULL;
	j->cfg = srv->cfg;
	j->srs = srv->srs;
	j->mx = mx;
	/* SQLite: one WAL read lock for all the lookups instead of one
	 * each. PostgreSQL: BEGIN and COMMIT would be two round trips on
	 * top of the three lookups, for nothing a recipient needs (each
	 * statement sees what was committed; a user deleted between two of
	 * them is the same race as one deleted just after the RCPT). */
	j->snapshot = srv->lookup == NULL;
	j->fwd_fixed = tx->fwd_domain != NULL;
	j->tx_nremote = tx->nremote;
	j->sent_base = tx->sent_base;
	if (srv->lookup == NULL) {
		smtp_rcpt_lookup(srv->store, j);
		smtp_rcpt_apply(s, j);
		smtp_rcpt_job_free(j);
		return;
	}
	s->rcpt_token = workq_submit(srv->lookup, j, smtp_rcpt_work,
	    smtp_rcpt_done);
	if (s->rcpt_token == 0) {
		log_warn("event=smtp.lookup sid=%s error=\"pool full\"",
		    s->sid);
		snprintf(j->reply, sizeof(j->reply),
		    "451 4.3.0 Temporary lookup failure");
		j->accept = SMTP_RCPT_REFUSED;
		j->result = "tempfail";
		smtp_rcpt_apply(s, j);
		smtp_rcpt_job_free(j);
		return;
	}
	smtp_session_wait(s);
	return;

refused:
	log_info("event=smtp.rcpt sid=%s msgid=%s to=%s result=%s "
	    "local=0 remote=0", s->sid, tx->msgid, log_escape(esc,
	    sizeof(esc), p.addr, strlen(p.addr)), result);
	smtp_path_clear(&p);
}

/* ---- the lookups (loop or lookup thread) ---- */

static void
smtp_rcpt_lookup(struct store *st, struct smtp_rcpt_job *j)
{
	enum store_rcpt_kind kind;
	enum srs_result res;
	const char *addr;
	bool snap = false, full = false;
	int rc;

	j->accept = SMTP_RCPT_REFUSED;
	j->result = "reject";
	if (st == NULL || (j->snapshot && !(snap = store_read_begin(st) == 0)))
		goto tempfail;
	if (j->srs != NULL) {
		rc = forward_rcpt(st, j->srs, j->p.addr, util_time(),
		    &j->orig, &res);
		if (rc < 0)
			goto tempfail;
		if (rc == 2) {
			log_info("event=smtp.srs sid=%s result=%s", j->sid,
			    srs_result_str(res));
			snprintf(j->reply, sizeof(j->reply), "550 5.1.1 <%s>: "
			    "Recipient address rejected: %s", j->p.addr,
			    res == SRS_EXPIRED ? "SRS address has expired" :
			    "SRS address does not verify");
			j->result = "srs-invalid";
			goto out;
		}
	}
	addr = j->orig != NULL ? j->orig : j->p.addr;
	if (store_resolve_quota(st, addr, j->cfg->server.postmaster, &kind,
	    &j->local, &j->nlocal, &j->remote, &j->nremote, &full) != 0 ||
	    smtp_rcpt_forwarding(st, j, (kind == STORE_RCPT_REMOTE &&
	    j->orig != NULL) || (kind == STORE_RCPT_LOCAL &&
	    j->nremote > 0)) != 0)
		goto tempfail;
	switch (kind) {
	case STORE_RCPT_NOUSER:
		snprintf(j->reply, sizeof(j->reply), "550 5.1.1 <%s>: "
		    "Recipient address rejected: User unknown", j->p.addr);
		goto out;
	case STORE_RCPT_REMOTE:
		/* A verified SRS address forwards a bounce back out. */
		if (j->mx && j->orig == NULL) {
			snprintf(j->reply, sizeof(j->reply), "550 5.7.1 "
			    "<%s>: Relay access denied", j->p.addr);
			goto out;
		}
		if ((rc = smtp_tx_suppressed(st, j->cfg->relay.suppress_days,
		    addr, j->reply, sizeof(j->reply))) != 0) {
			if (rc < 0)
				goto tempfail;
			j->result = "suppressed";
			goto out;
		}
		if ((rc = smtp_rcpt_check_limit(st, j)) != 0) {
			if (rc < 0)
				goto tempfail;
			j->result = "limit";
			goto out;
		}
		j->accept = SMTP_RCPT_TO_REMOTE;
		break;
	case STORE_RCPT_LOCAL:
		/* Quota at RCPT time: a mailbox already full. */
		if (full) {
			snprintf(j->reply, sizeof(j->reply),
			    "452 4.2.2 Mailbox full");
			j->result = "quota";
			goto out;
		}
		j->accept = SMTP_RCPT_TO_LOCAL;
		break;
	}
	j->result = "ok";
	snprintf(j->reply, sizeof(j->reply), "250 2.1.5 Ok");
out:
	if (snap)
		store_read_end(st);
	return;
tempfail:
	log_warn("event=smtp.store sid=%s error=\"%s\"", j->sid,
	    st != NULL ? store_error(st) : "no connection");
	j->accept = SMTP_RCPT_REFUSED;
	j->result = "tempfail";
	snprintf(j->reply, sizeof(j->reply),
	    "451 4.3.0 Temporary lookup failure");
	goto out;
}

/*
 * An accepted rcpt forwards to remote recipients: the first one fixes the
 * queue row's sender (SRS at the domain of rcpt, forward.h). 0, or -1 on
 * a store error.
 */
static int
smtp_rcpt_forwarding(struct store *st, struct smtp_rcpt_job *j,
    bool forwards)
{
	const char *domain = strrchr(j->p.addr, '@');

	if (!forwards || j->fwd_fixed || j->srs == NULL || domain == NULL)
		return 0;
	if (forward_sender(st, j->srs, j->mail_from, domain + 1, util_time(),
	    &j->queue_from) < 0)
		return -1;
	j->fwd_domain = xstrdup(domain + 1);
	j->fwd_set = true;
	return 0;
}

/* Daily limit: 0 ok (room for one more remote recipient), 1 refused
 * (reply set), -1 store error. */
static int
smtp_rcpt_check_limit(struct store *st, struct smtp_rcpt_job *j)
{
	unsigned limit = j->cfg->smtpd.daily_send_limit;
	int64_t now = util_time(), oldest;
	char date[64];

	if (limit == 0 || j->auth_user == NULL)
		return 0;
	if (j->sent_base < 0) {
		j->sent_base = store_sent_count(st, j->auth_user,
		    now - SMTP_SEND_WINDOW);
		if (j->sent_base < 0)
			return -1;
	}
	if ((uint64_t)j->sent_base + j->tx_nremote + 1 <= limit)
		return 0;
	oldest = store_sent_oldest(st, j->auth_user, now - SMTP_SEND_WINDOW);
	util_rfc5322_date(date, sizeof(date), (oldest > 0 ? oldest : now) +
	    SMTP_SEND_WINDOW);
	snprintf(j->reply, sizeof(j->reply), "450 4.7.1 Daily sending limit "
	    "of %u recipients reached; capacity frees up at %s", limit, date);
	return 1;
}

/* ---- back on the loop ---- */

static void
smtp_rcpt_apply(struct smtp_session *s, struct smtp_rcpt_job *j)
{
	struct smtp_tx *tx = s->tx;
	char esc[LOG_ESCAPE_MAX];
	const char *to;
	size_t i;

	if (j->sent_base >= 0)
		tx->sent_base = j->sent_base;
	if (j->fwd_set && tx->fwd_domain == NULL) {
		tx->fwd_domain = j->fwd_domain;
		tx->queue_from = j->queue_from;
		j->fwd_domain = j->queue_from = NULL;
		if (tx->queue_from != NULL)
			log_info("event=smtp.forward sid=%s msgid=%s "
			    "srs_from=%s", s->sid, tx->msgid,
			    log_escape(esc, sizeof(esc), tx->queue_from,
			    strlen(tx->queue_from)));
	}
	switch (j->accept) {
	case SMTP_RCPT_REFUSED:
		break;
	case SMTP_RCPT_TO_REMOTE:
		to = j->orig != NULL ? j->orig : j->p.addr;
		smtp_tx_list_add(&tx->remote, &tx->remote_dsn, &tx->nremote,
		    to, &j->p.dsn_rcpt);
		break;
	case SMTP_RCPT_TO_LOCAL:
		for (i = 0; i < j->nlocal; i++)
			smtp_tx_list_add(&tx->local, &tx->local_dsn,
			    &tx->nlocal, j->local[i], &j->p.dsn_rcpt);
		/* An alias may forward outside: queued like submission. */
		for (i = 0; i < j->nremote; i++)
			smtp_tx_list_add(&tx->remote, &tx->remote_dsn,
			    &tx->nremote, j->remote[i], &j->p.dsn_rcpt);
		break;
	}
	if (j->accept != SMTP_RCPT_REFUSED) {
		tx->nrcpt++;
		tx->rcpt_addrs = xrealloc(tx->rcpt_addrs,
		    (tx->nrcpt_addrs + 1) * sizeof(*tx->rcpt_addrs));
		tx->rcpt_addrs[tx->nrcpt_addrs++] = xstrdup(j->p.addr);
		if (tx->first_rcpt == NULL)
			tx->first_rcpt = xstrdup(j->p.addr);
		smtp_session_enter(s, SMTP_ST_RCPT);
	}
	smtp_reply(s, "%s", j->reply);
	log_info("event=smtp.rcpt sid=%s msgid=%s to=%s result=%s "
	    "local=%zu remote=%zu", s->sid, tx->msgid, log_escape(esc,
	    sizeof(esc), j->p.addr, strlen(j->p.addr)), j->result, j->nlocal,
	    j->nremote);
}

static void
smtp_rcpt_job_free(struct smtp_rcpt_job *j)
{
	smtp_path_clear(&j->p);
	free(j->mail_from);
	free(j->auth_user);
	store_rcpt_free_list(j->local, j->nlocal);
	store_rcpt_free_list(j->remote, j->nremote);
	free(j->orig);
	free(j->fwd_domain);
	free(j->queue_from);
	free(j);
}
