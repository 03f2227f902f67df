/*
 * The login's second half, once the credentials are checked: LOGIN-DELAY,
 * the maildrop lock (lock_session), then the snapshot of the maildrop
 * (every message's id, size and UIDL, in arrival order) and the user's
 * EXPIRE, then TRANSACTION. The snapshot is read on a readq thread
 * (readq.c): for a maildrop of 10,000 messages it is that many rows, and
 * on the loop a storm of polling clients would keep every other session
 * waiting. The lock stays on the loop's connection, whose locks lock.c
 * keeps.
 */
#include "pop3d/pop3d.h"

#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/log.h"
#include "common/stats.h"
#include "common/util.h"
#include "store/maildrop_lock.h"
#include "store/retention.h"
#include "store/store.h"

/* The snapshot, read on a readq thread. */
struct pop3_login_job {
	struct pop3_session *s;		/* loop side only */
	char *maildrop;
	/* Out: store_mailbox_list's and store_user_get_expire's. */
	struct pop3_login_read {
		int list_rc;		/* 0, 1 no such user, -1 error */
		struct store_msg *msgs;
		size_t nmsgs;
		int expire_rc;		/* 0, -1 error */
		int64_t expire;
		char error[256];	/* of the failed call */
	} r;
	bool reconnected;		/* see fetch.c */
};

static void pop3_login_read(struct store *, const char *,
    struct pop3_login_read *);
static void pop3_login_work(void *, void *);
static void pop3_login_done(void *, bool);
static void pop3_login_listed(struct pop3_session *,
    struct pop3_login_read *);

void
pop3_session_login(struct pop3_session *s, const char *canonical)
{
	struct pop3_server *srv = s->srv;
	struct pop3_login_job *job;
	struct pop3_login_read r;
	int rc;

	s->input = POP3_IN_CMD;
	sasl_reset(&s->sasl);
	if (s->user != NULL) {
		free(s->user);
		s->user = NULL;
	}
	if (pop3_retention_login_check(s, canonical) < 0)
		return;
	if (srv->cfg->pop3d.lock_session) {
		if ((rc = pop3_lock_take(srv, canonical)) == -2) {
			pop3_reply(s, "-ERR [SYS/TEMP] Couldn't open the "
			    "mailbox, try again later.");
			return;
		}
		if (rc < 0) {
			log_info("event=pop3.login sid=%s ip=%s user=%s "
			    "mech=%s result=in-use", s->sid, s->ip, canonical,
			    s->auth_mech);
			pop3_reply(s, "-ERR [IN-USE] Mailbox is locked by "
			    "another POP3 session.");
			return;
		}
		s->locked = true;
	}
	s->maildrop = xstrdup(canonical);
	if (srv->readq[POP3_READQ_LOGIN] == NULL) {
		pop3_login_read(srv->store, canonical, &r);
		pop3_login_listed(s, &r);
		return;
	}
	job = xcalloc(1, sizeof(*job));
	job->s = s;
	job->maildrop = xstrdup(canonical);
	if (pop3_readq_submit(s, POP3_READQ_LOGIN, job, pop3_login_work,
	    pop3_login_done))
		return;
	free(job->maildrop);
	free(job);
	memset(&r, 0, sizeof(r));
	r.list_rc = -1;
	util_strlcpy(r.error, "read queue full", sizeof(r.error));
	pop3_login_listed(s, &r);
}

/* On the loop (SQLite) or a readq thread. */
static void
pop3_login_read(struct store *st, const char *maildrop,
    struct pop3_login_read *r)
{
	memset(r, 0, sizeof(*r));
	if (st == NULL) {
		r->list_rc = -1;
		util_strlcpy(r->error, "no store connection", sizeof(r->error));
		return;
	}
	r->list_rc = store_mailbox_list(st, maildrop, &r->msgs, &r->nmsgs);
	if (r->list_rc != 0) {
		util_strlcpy(r->error, r->list_rc < 0 ? store_error(st) :
		    "no such user", sizeof(r->error));
		return;
	}
	r->expire_rc = store_user_get_expire(st, maildrop, &r->expire);
	if (r->expire_rc < 0)
		util_strlcpy(r->error, store_error(st), sizeof(r->error));
}

static void
pop3_login_work(void *arg, void *ctx)
{
	struct pop3_login_job *job = arg;
	unsigned epoch = ctx != NULL ? store_maildrop_lock_epoch(ctx) : 0;

	pop3_login_read(ctx, job->maildrop, &job->r);
	job->reconnected = ctx != NULL &&
	    store_maildrop_lock_epoch(ctx) != epoch;
}

/* Runs on the loop; cancelled after pop3_readq_cancel (pop3_session_free,
 * which also lets the lock go). */
static void
pop3_login_done(void *arg, bool cancelled)
{
	struct pop3_login_job *job = arg;
	struct pop3_session *s = job->s;

	if (!cancelled) {
		pop3_readq_done(s, job->reconnected);
		if (!conn_is_closing(s->conn)) {
			pop3_login_listed(s, &job->r);
			job->r.msgs = NULL;	/* the session's now */
		}
	}
	free(job->r.msgs);
	free(job->maildrop);
	free(job);
	if (!cancelled)
		pop3_session_kick(s);	/* pipelined commands: STAT, ... */
}

/* The snapshot is read (r->msgs becomes the session's) or failed. */
static void
pop3_login_listed(struct pop3_session *s, struct pop3_login_read *r)
{
	struct pop3_server *srv = s->srv;

	if (r->list_rc != 0) {
		/* Never an empty maildrop on a store error: clients forget
		 * every UIDL when STAT says 0. */
		log_error("event=pop3.login sid=%s ip=%s user=%s mech=%s "
		    "result=tempfail error=\"%s\"", s->sid, s->ip, s->maildrop,
		    s->auth_mech, r->error);
		if (s->locked)
			pop3_lock_release(srv, s->maildrop);
		s->locked = false;
		free(s->maildrop);
		s->maildrop = NULL;
		free(r->msgs);
		r->msgs = NULL;
		pop3_reply(s, "-ERR [SYS/TEMP] Couldn't open the mailbox, try "
		    "again later.");
		return;
	}
	s->msgs = r->msgs;
	s->nmsgs = r->nmsgs;
	s->deleted = xcalloc(s->nmsgs ? s->nmsgs : 1, 1);
	pop3_retention_login(s, r->expire_rc, r->expire, r->error);
	pop3_session_enter(s, POP3_ST_TRANS);
	log_info("event=pop3.login sid=%s ip=%s user=%s mech=%s result=ok "
	    "tls=%s messages=%zu", s->sid, s->ip, s->maildrop, s->auth_mech,
	    conn_is_tls(s->conn) ? "yes" : "no", s->nmsgs);
	stats_inc(STATS_POP3_LOGIN_OK);
	pop3_reply(s, "+OK Logged in.");
}
