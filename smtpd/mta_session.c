/*
 * A relay SMTP client session's lifetime and results: start, abort, free
 * (deferred while a callback frame runs), per-recipient results through the
 * owner's callbacks, and the finish (done, then QUIT). Not here: the SMTP
 * dialogue (mta.c), the choice of hosts (mta_route.c).
 */
#include "smtpd/mta_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/conn.h"
#include "common/util.h"
#include "mailauth/dns.h"
#include "smtpd/mta_sts.h"

/* ---- session lifecycle ---- */

struct mta_session *
mta_session_start(struct mta *m, struct mta_msg *msg, mta_rcpt_cb *rcpt_cb,
    mta_done_cb *done_cb, void *arg)
{
	struct mta_session *s;
	size_t i;

	s = xcalloc(1, sizeof(*s));
	s->m = m;
	s->msg = msg;
	s->rcpt_cb = rcpt_cb;
	s->done_cb = done_cb;
	s->arg = arg;
	util_session_id(s->sid);
	s->accepted = xcalloc(msg->nrcpts, sizeof(*s->accepted));
	s->replies = xcalloc(msg->nrcpts, sizeof(*s->replies));
	s->mxs = xcalloc(msg->nrcpts, sizeof(*s->mxs));
	s->active = xcalloc(msg->nrcpts, sizeof(*s->active));
	s->nrcpts = msg->nrcpts;
	for (i = 0; i < msg->nrcpts; i++) {
		msg->rcpts[i].result = MTA_UNSET;
		msg->rcpts[i].reply = NULL;
		msg->rcpts[i].mx = NULL;
		msg->rcpts[i].remote = false;
	}
	s->next = m->sessions;
	if (m->sessions != NULL)
		m->sessions->prev = s;
	m->sessions = s;
	m->nsessions++;

	mta_route_start(s);
	return s;
}

void
mta_session_abort(struct mta_session *s)
{
	if (s == NULL)
		return;
	s->msg = NULL;
	mta_session_release(s);
}

/* Free now, or when the callback frame we are in unwinds. */
void
mta_session_release(struct mta_session *s)
{
	s->dead = true;
	s->msg = NULL;
	if (s->depth == 0)
		mta_session_free(s);
}

void
mta_session_free(struct mta_session *s)
{
	struct mta *m = s->m;
	size_t i;

	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		m->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	m->nsessions--;
	dns_cancel(s->dreq);
	mta_sts_cancel(s->sts_req);
	mta_sts_policy_unref(s->sts);
	conn_free(s->c);
	for (i = 0; i < s->nhosts; i++)
		free(s->hosts[i].host);
	free(s->hosts);
	free(s->addrs);
	for (i = 0; i < s->nrcpts; i++) {
		free(s->replies[i]);
		free(s->mxs[i]);
	}
	free(s->replies);
	free(s->mxs);
	free(s->accepted);
	free(s->active);
	free(s->inbuf);
	free(s->outbuf);
	mta_dane_clear(s);
	free(s->last_error);
	free(s->source);
	free(s);
}

void
mta_set_error(struct mta_session *s, const char *fmt, ...)
{
	va_list ap;
	char *e;

	va_start(ap, fmt);
	if (vasprintf(&e, fmt, ap) == -1)
		abort();
	va_end(ap);
	free(s->last_error);
	s->last_error = e;
}

/* A recipient's result for this attempt is final: report it. */
void
mta_rcpt_final(struct mta_session *s, size_t i, enum mta_result res,
    const char *text, bool remote)
{
	struct mta_rcpt *r = &s->msg->rcpts[i];

	if (r->result != MTA_UNSET)
		return;
	r->result = res;
	free(s->replies[i]);
	s->replies[i] = xstrdup(text);
	r->reply = s->replies[i];
	r->remote = remote;
	r->dsn_passed = res == MTA_OK && (s->ext & MTA_EXT_DSN);
	if (remote && s->c != NULL) {
		free(s->mxs[i]);
		s->mxs[i] = xstrdup(s->label);
		r->mx = s->mxs[i];
	}
	s->rcpt_cb(s, r, s->arg);
}

void
mta_fail_all(struct mta_session *s, enum mta_result res, const char *text,
    bool remote)
{
	size_t i;

	for (i = 0; i < s->msg->nrcpts; i++)
		mta_rcpt_final(s, i, res, text, remote);
}

/*
 * Every recipient without a result gets the last temporary error, the
 * owner hears done, and the connection (if any) says QUIT on its own.
 */
void
mta_finish(struct mta_session *s)
{
	mta_fail_all(s, MTA_TEMP, s->last_error != NULL ? s->last_error :
	    "451 4.4.0 delivery not completed", false);
	/* The connection goes back to the pool first, so that the owner's
	 * next message to this peer (started from done_cb) finds it. */
	if (s->c != NULL && !conn_is_closing(s->c) && (s->state ==
	    MTA_S_DOT || s->state == MTA_S_DATA || (s->state == MTA_S_RCPT &&
	    s->cursor >= s->nactive)))
		(void)mta_pool_put(s);
	s->done_cb(s, s->arg);
	/* The owner may have freed the message in done_cb. */
	s->msg = NULL;
	if (s->c != NULL && !conn_is_closing(s->c) && s->state != MTA_S_BODY &&
	    s->state != MTA_S_TLS && s->state >= MTA_S_GREETING) {
		conn_write(s->c, "QUIT\r\n", 6);
		conn_close_after_flush(s->c);
		mta_enter(s, MTA_S_QUIT);
		return;
	}
	mta_session_release(s);
}

