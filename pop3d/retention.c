/*
 * RFC 2449 retention policies in pop3d (issue 14): EXPIRE (the CAPA
 * lines, first-retrieved times and EXPIRE 0 at QUIT, and the expiry
 * sweep: a timer that deletes due messages in bounded batches off the
 * POP3 path, never waiting for the write lock) and LOGIN-DELAY (the CAPA
 * line and the check at login). A message nobody has retrieved is never
 * expired: the clock starts at the first whole RETR.
 */
#include "pop3d/pop3d.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "store/retention.h"

/* Messages one sweep step looks at (and deletes) at most. */
#define POP3_EXPIRE_BATCH	64
/* Between sweep passes, and between the steps of one pass. */
#define POP3_EXPIRE_INTERVAL_MS	(60 * 1000)
#define POP3_EXPIRE_STEP_MS	10
/* The store's usual busy wait, restored after a sweep step. */
#define POP3_STORE_BUSY_MS	5000

/* The last successful login of a user ([pop3d] login_delay). */
struct pop3_login_time {
	char *address;			/* owned */
	uint64_t at_ms;
};

static int64_t pop3_retention_default(const struct pop3_server *srv);
static void pop3_retention_days(char *buf, size_t size, int64_t seconds);
static void pop3_retention_schedule(struct pop3_server *srv, unsigned ms);
static void pop3_retention_sweep_cb(evutil_socket_t fd, short what,
    void *arg);
static bool pop3_retention_in_session(struct pop3_server *srv,
    const char *address);
static void pop3_retention_sweep(struct pop3_server *srv);

/* [pop3d] expire in seconds, -1 = never. */
static int64_t
pop3_retention_default(const struct pop3_server *srv)
{
	unsigned e = srv->cfg->pop3d.expire;

	if (e == CFG_EXPIRE_NEVER)
		return -1;
	return e == CFG_EXPIRE_AT_QUIT ? 0 : (int64_t)e;
}

/* RFC 2449 6.7: the EXPIRE value in days, or NEVER. A period under a
 * day (a test setting) shows as 1: 0 means "deleted at QUIT". */
static void
pop3_retention_days(char *buf, size_t size, int64_t seconds)
{
	int64_t d;

	if (seconds < 0) {
		util_strlcpy(buf, "NEVER", size);
		return;
	}
	d = seconds / 86400;
	if (d == 0 && seconds > 0)
		d = 1;
	snprintf(buf, size, "%lld", (long long)d);
}

void
pop3_retention_capa(struct pop3_session *s)
{
	const struct cfg *cfg = s->srv->cfg;
	char days[32];

	if (s->state == POP3_ST_AUTH) {
		/* USER: a user may have an expire of their own (carteiroctl
		 * user set); the value after login is theirs. */
		pop3_retention_days(days, sizeof(days),
		    pop3_retention_default(s->srv));
		pop3_reply_line(s, "EXPIRE %s USER", days);
	} else {
		pop3_retention_days(days, sizeof(days), s->expire_s);
		pop3_reply_line(s, "EXPIRE %s", days);
	}
	if (cfg->pop3d.login_delay > 0)
		pop3_reply_line(s, "LOGIN-DELAY %u", cfg->pop3d.login_delay);
}

int
pop3_retention_login_check(struct pop3_session *s, const char *canonical)
{
	struct pop3_server *srv = s->srv;
	uint64_t now = util_now_ms(), delay_ms;
	struct pop3_login_time *t = NULL;
	size_t i, o;

	if (srv->cfg->pop3d.login_delay == 0)
		return 0;
	delay_ms = (uint64_t)srv->cfg->pop3d.login_delay * 1000;
	/* Forget logins older than the delay (bounds the table). */
	for (i = o = 0; i < srv->nlogins; i++) {
		if (now - srv->logins[i].at_ms >= delay_ms) {
			free(srv->logins[i].address);
			continue;
		}
		srv->logins[o++] = srv->logins[i];
	}
	srv->nlogins = o;
	for (i = 0; i < srv->nlogins; i++) {
		if (strcasecmp(srv->logins[i].address, canonical) == 0) {
			t = &srv->logins[i];
			break;
		}
	}
	if (t != NULL) {
		/* RFC 2449 8.1.1: too soon after the last login. */
		log_info("event=pop3.login sid=%s ip=%s user=%s mech=%s "
		    "result=login-delay wait_ms=%llu", s->sid, s->ip,
		    canonical, s->auth_mech,
		    (unsigned long long)(delay_ms - (now - t->at_ms)));
		pop3_reply(s, "-ERR [LOGIN-DELAY] Minimum time between logins "
		    "is %u seconds.", srv->cfg->pop3d.login_delay);
		return -1;
	}
	if (srv->nlogins == srv->logins_cap) {
		srv->logins_cap = srv->logins_cap ? srv->logins_cap * 2 : 16;
		srv->logins = xrealloc(srv->logins, srv->logins_cap *
		    sizeof(*srv->logins));
	}
	srv->logins[srv->nlogins].address = xstrdup(canonical);
	srv->logins[srv->nlogins++].at_ms = now;
	return 0;
}

void
pop3_retention_login(struct pop3_session *s, int expire_rc, int64_t expire,
    const char *error)
{
	s->retrieved_msg = xcalloc(s->nmsgs ? s->nmsgs : 1, 1);
	s->expire_s = pop3_retention_default(s->srv);
	if (expire_rc < 0)
		log_warn("event=pop3.expire sid=%s user=%s error=\"%s\"",
		    s->sid, s->maildrop, error);
	else if (expire != STORE_EXPIRE_DEFAULT)
		s->expire_s = expire;
}

void
pop3_retention_retrieved(struct pop3_session *s)
{
	if (s->retrieved_msg != NULL && s->fetch_idx < s->nmsgs)
		s->retrieved_msg[s->fetch_idx] = 1;
}

int
pop3_retention_quit(struct pop3_session *s, size_t *deleted_r,
    size_t *expired_r)
{
	struct pop3_server *srv = s->srv;
	int64_t *del, *ret;
	size_t ndel = 0, nret = 0, expired = 0;
	int r = -1;

	*deleted_r = *expired_r = 0;
	del = xcalloc(s->nmsgs + 1, sizeof(*del));
	ret = xcalloc(s->nmsgs + 1, sizeof(*ret));
	for (size_t i = 0; i < s->nmsgs; i++) {
		bool got = s->retrieved_msg != NULL && s->retrieved_msg[i];

		if (s->deleted[i])
			del[ndel++] = s->msgs[i].id;
		else if (got && s->expire_s == 0) {
			/* RFC 2449 6.7, EXPIRE 0: retrieved mail does not
			 * stay, DELE or not. */
			del[ndel++] = s->msgs[i].id;
			expired++;
		} else if (got)
			ret[nret++] = s->msgs[i].id;
	}
	if (ndel == 0 && nret == 0) {
		r = 0;
		goto out;
	}
	/* One transaction: the marks and the first-retrieved times. */
	if (store_begin(srv->store) < 0)
		goto fail;
	if (store_mailbox_retrieved(srv->store, s->maildrop, ret, nret,
	    util_time()) < 0 || store_mailbox_delete(srv->store, s->maildrop,
	    del, ndel, deleted_r) < 0) {
		store_rollback(srv->store);
		goto fail;
	}
	if (store_commit(srv->store) < 0)
		goto fail;
	for (size_t i = 0; expired > 0 && i < s->nmsgs; i++) {
		if (!s->deleted[i] && s->retrieved_msg[i])
			log_info("event=pop3.expire sid=%s user=%s uidl=%s "
			    "reason=expire_0", s->sid, s->maildrop,
			    s->msgs[i].uidl);
	}
	*expired_r = expired;
	*deleted_r -= expired < *deleted_r ? expired : *deleted_r;
	r = 0;
	goto out;
fail:
	/* Nothing to delete, only first-retrieved times: those are not
	 * worth a failed QUIT; a later session records them (and until
	 * then the messages only stay longer). */
	if (ndel == 0) {
		log_warn("event=pop3.expire sid=%s user=%s error=\"%s\"",
		    s->sid, s->maildrop, store_error(srv->store));
		r = 0;
	}
out:
	free(del);
	free(ret);
	return r;
}

/* ---- the sweep ---- */

static void
pop3_retention_schedule(struct pop3_server *srv, unsigned ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(srv->expire_ev, &tv);
}

/* A logged-in session holds a snapshot of that maildrop: leave it be
 * (RFC 1939: the maildrop does not change under a session). */
static bool
pop3_retention_in_session(struct pop3_server *srv, const char *address)
{
	for (struct pop3_session *s = srv->sessions; s != NULL; s = s->next) {
		if (s->maildrop != NULL && strcasecmp(s->maildrop, address)
		    == 0)
			return true;
	}
	return false;
}

/* One step: at most POP3_EXPIRE_BATCH due messages, deleted per user in
 * short transactions. The next step comes soon if this one was full. */
static void
pop3_retention_sweep(struct pop3_server *srv)
{
	struct store_expired *v = NULL;
	struct store *st = srv->store;
	int64_t ids[POP3_EXPIRE_BATCH], now = util_time();
	size_t n = 0, deleted;
	bool done[POP3_EXPIRE_BATCH] = { false };
	unsigned freed;

	/* Never wait for smtpd's write lock on the loop: busy = next time. */
	store_set_busy_timeout(st, 0);
	if (store_expire_candidates(st, pop3_retention_default(srv), now,
	    srv->expire_cursor, POP3_EXPIRE_BATCH, &v, &n) < 0) {
		if (!store_error_is_busy(st))
			log_warn("event=pop3.expire error=\"%s\"",
			    store_error(st));
		n = 0;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		size_t k = 0;

		if (done[i])
			continue;
		for (size_t j = i; j < n; j++) {
			if (!done[j] && strcmp(v[j].address, v[i].address)
			    == 0) {
				ids[k++] = v[j].id;
				done[j] = true;
			}
		}
		if (pop3_retention_in_session(srv, v[i].address))
			continue;
		if (store_mailbox_delete(st, v[i].address, ids, k,
		    &deleted) < 0) {
			if (!store_error_is_busy(st))
				log_warn("event=pop3.expire user=%s error="
				    "\"%s\"", v[i].address, store_error(st));
			break;
		}
		for (size_t j = i; j < n; j++) {
			if (strcmp(v[j].address, v[i].address) != 0)
				continue;
			log_info("event=pop3.expire user=%s uidl=%s "
			    "first_retrieved=%lld age_s=%lld reason=expire",
			    v[j].address, v[j].uidl,
			    (long long)v[j].first_retrieved,
			    (long long)(now - v[j].first_retrieved));
		}
	}
	/* Bodies of expired (and QUIT-deleted) mail, a batch per step. */
	if (store_gc(st, POP3_EXPIRE_BATCH, &freed) < 0 &&
	    !store_error_is_busy(st))
		log_warn("event=pop3.gc error=\"%s\"", store_error(st));
out:
	store_set_busy_timeout(st, POP3_STORE_BUSY_MS);
	if (n == POP3_EXPIRE_BATCH) {
		srv->expire_cursor = v[n - 1].id;
		pop3_retention_schedule(srv, POP3_EXPIRE_STEP_MS);
	} else {
		srv->expire_cursor = 0;
		pop3_retention_schedule(srv, srv->expire_interval_ms);
	}
	free(v);
}

static void
pop3_retention_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pop3_server *srv = arg;

	if (!srv->stopping)
		pop3_retention_sweep(srv);
}

void
pop3_retention_start(struct pop3_server *srv, unsigned interval_ms)
{
	srv->expire_interval_ms = interval_ms > 0 ? interval_ms :
	    POP3_EXPIRE_INTERVAL_MS;
	srv->expire_ev = evtimer_new(srv->base, pop3_retention_sweep_cb, srv);
	if (srv->expire_ev == NULL)
		log_fatal("event=pop3.fatal reason=\"expiry timer\"");
	pop3_retention_schedule(srv, srv->expire_interval_ms);
}

void
pop3_retention_stop(struct pop3_server *srv)
{
	if (srv->expire_ev != NULL)
		event_free(srv->expire_ev);
	srv->expire_ev = NULL;
	for (size_t i = 0; i < srv->nlogins; i++)
		free(srv->logins[i].address);
	free(srv->logins);
	srv->logins = NULL;
	srv->nlogins = srv->logins_cap = 0;
}
