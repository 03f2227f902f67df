/*
 * [smtpd] milters for one transaction: after the end of data and the
 * inbound checks, each milter in order gets the whole conversation
 * (milter.c) about the message as the previous one left it; its verdict
 * becomes the one reply, its recipient changes go through the local/relay
 * rules, its header/body changes are written to a new spool
 * (milter_apply.c) before the commit that sends the 250.
 */
#include "smtpd/smtpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/config.h"
#include "common/conn.h"
#include "common/log.h"
#include "common/stats.h"
#include "common/util.h"
#include "smtpd/arstrip.h"
#include "smtpd/delivery.h"
#include "smtpd/milter.h"
#include "smtpd/milter_proto.h"
#include "store/store.h"

/* Idle milter connections kept for the next message (all milters). */
#define SMTP_MILTER_IDLE_MAX	64

struct smtp_milter {
	size_t idx;			/* the milter running: milters.v[idx] */
	struct milter_info info;
	char daemon_name[32];
	struct milter_msg msg;
	struct milter_run *run;
	bool quarantined;
};

static const char *const smtp_milter_listener_names[SMTP_LST_COUNT] = {
	"mx", "submission", "submissions"
};

static void smtp_milter_next(struct smtp_session *s);
static void smtp_milter_done(struct milter_run *run, void *arg);
static void smtp_milter_end(struct smtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int smtp_milter_rcpts(struct smtp_session *s,
    const struct milter_result *res);
static int smtp_milter_rewrite(struct smtp_session *s,
    const struct milter_result *res);
static char *smtp_milter_addr(const char *v);
static void smtp_milter_list_add(char ***v, size_t *n, const char *addr);
static void smtp_milter_dsn_add(char ***v, struct dsn_rcpt **dv, size_t *n,
    const char *addr, char **ov, const struct dsn_rcpt *odv, size_t on);
static void smtp_milter_dsn_free(char **v, struct dsn_rcpt *dv, size_t n);
static void smtp_milter_clean_reply(char *t);
static bool smtp_milter_may_send(struct smtp_session *s);

bool
smtp_milter_wanted(const struct smtp_session *s)
{
	const struct cfg_strlist *l = &s->lst->srv->cfg->smtpd.milter_listeners;
	size_t i;

	if (s->lst->srv->cfg->smtpd.milters.n == 0)
		return false;
	for (i = 0; i < l->n; i++)
		if (strcmp(l->v[i], smtp_milter_listener_names[s->lst->kind])
		    == 0)
			return true;
	return false;
}

void
smtp_milter_start(struct smtp_session *s)
{
	const struct cfg *cfg = s->lst->srv->cfg;
	struct smtp_tx *tx = s->tx;
	struct smtp_milter *m;
	struct milter_info *in;
	const char *ip = conn_peer_ip(s->conn);
	const struct sockaddr *sa;
	socklen_t salen;

	m = xcalloc(1, sizeof(*m));
	tx->milter = m;
	tx->step = SMTP_TX_STEP_MILTER;
	tx->token = 1;		/* "a step is pending" for session.c */
	in = &m->info;
	snprintf(m->daemon_name, sizeof(m->daemon_name), "carteiro-%s",
	    smtp_milter_listener_names[s->lst->kind]);
	in->hostname = smtp_session_hostname(s);
	in->daemon_name = m->daemon_name;
	in->client_addr = ip;
	/* No reverse lookup in carteiro: Postfix's name for that case. */
	in->client_name = "unknown";
	in->family = strchr(ip, ':') != NULL ? '6' : strchr(ip, '.') != NULL ?
	    '4' : 'U';
	sa = conn_peer_addr(s->conn, &salen);
	if (sa != NULL && sa->sa_family == AF_INET)
		in->client_port = ntohs(((const struct sockaddr_in *)sa)->
		    sin_port);
	else if (sa != NULL && sa->sa_family == AF_INET6)
		in->client_port = ntohs(((const struct sockaddr_in6 *)sa)->
		    sin6_port);
	in->helo = s->helo;
	in->tls_version = conn_tls_version(s->conn);
	in->cipher = conn_tls_cipher(s->conn);
	in->auth_type = s->auth_user != NULL ? s->auth_mech : NULL;
	in->auth_authen = s->auth_user;
	in->queue_id = tx->msgid;
	in->max_body = cfg->smtpd.max_message_size;
	in->connect_timeout_ms = (int)cfg->smtpd.milter_connect_timeout * 1000;
	in->command_timeout_ms = (int)cfg->smtpd.milter_command_timeout * 1000;
	in->content_timeout_ms = (int)cfg->smtpd.milter_content_timeout * 1000;
	/* The commit stores the fields the milters saw, byte for byte. */
	if (tx->prefix == NULL)
		tx->prefix = smtp_tx_prefix(s);
	m->idx = 0;
	smtp_milter_next(s);
}

void
smtp_milter_cancel(struct smtp_session *s)
{
	struct smtp_milter *m = s->tx != NULL ? s->tx->milter : NULL;

	if (m == NULL)
		return;
	milter_run_free(m->run);
	milter_msg_clear(&m->msg);
	free(m);
	s->tx->milter = NULL;
}

/* Start milters.v[m->idx] on the message as it stands, or commit. */
static void
smtp_milter_next(struct smtp_session *s)
{
	struct smtp_server *srv = s->lst->srv;
	struct smtp_tx *tx = s->tx;
	struct smtp_milter *m = tx->milter;
	struct milter_info *in = &m->info;

	if (m->idx >= srv->cfg->smtpd.milters.n) {
		if (m->quarantined)
			log_info("event=smtp.milter sid=%s msgid=%s "
			    "action=quarantine", s->sid, tx->msgid);
		smtp_milter_cancel(s);
		tx->token = 0;
		smtp_tx_commit(s);
		return;
	}
	in->mail_from = tx->mail_from;
	in->rcpts = (const char *const *)tx->rcpt_addrs;
	in->nrcpts = tx->nrcpt_addrs;
	milter_msg_clear(&m->msg);
	if (milter_msg_load(&m->msg, tx->prefix,
	    tx->spool_fd, tx->spool_in_mem ? tx->spool_mem : NULL, tx->size,
	    ARSTRIP_MAX_HEADER) != 0) {
		log_warn("event=smtp.milter sid=%s msgid=%s error=\"%s\"",
		    s->sid, tx->msgid, strerror(errno));
		smtp_milter_end(s, "451 4.3.0 Temporary storage failure");
		return;
	}
	if (srv->milter_pool == NULL)
		srv->milter_pool = milter_pool_new(srv->base,
		    SMTP_MILTER_IDLE_MAX, in->command_timeout_ms);
	m->run = milter_run_start(srv->milter_pool,
	    srv->cfg->smtpd.milters.v[m->idx],
	    s->sid, in, &m->msg, smtp_milter_done, s);
	if (m->run == NULL)
		smtp_milter_done(NULL, s);	/* as if it had failed */
}

/* A milter's reply text goes to the client as is (libmilter's multi-line
 * replies are "550-...\r\n550 ..."), except control characters and a CR
 * or LF that is not part of a CRLF. */
static void
smtp_milter_clean_reply(char *t)
{
	for (; *t; t++) {
		if (t[0] == '\r' && t[1] == '\n') {
			t++;
			continue;
		}
		if ((unsigned char)*t < 32 || *t == 127)
			*t = '?';
	}
}

/* The one reply for the message without a commit; ends the tx. */
static void
smtp_milter_end(struct smtp_session *s, const char *fmt, ...)
{
	struct smtp_tx *tx = s->tx;
	va_list ap;
	char *t;

	va_start(ap, fmt);
	if (vasprintf(&t, fmt, ap) == -1)
		abort();
	va_end(ap);
	smtp_milter_clean_reply(t);
	/* "refused after the data" (a discard's 250 is not counted as
	 * accepted either: nothing was kept). */
	if (t[0] == '4')
		stats_inc(STATS_SMTP_REFUSED_4XX);
	else if (t[0] == '5')
		stats_inc(STATS_SMTP_REFUSED_5XX);
	tx->token = 0;
	smtp_session_set_cmd(s, tx->bdat ? "BDAT" : "DATA", 4);
	smtp_reply(s, "%s", t);
	free(t);
	smtp_tx_reset(s);
	smtp_session_enter(s, SMTP_ST_READY);
	smtp_session_resume(s);
}

static void
smtp_milter_done(struct milter_run *run, void *arg)
{
	struct smtp_session *s = arg;
	struct smtp_tx *tx = s->tx;
	struct smtp_milter *m = tx->milter;
	const char *spec = s->lst->srv->cfg->smtpd.milters.v[m->idx];
	const char *def = s->lst->srv->cfg->smtpd.milter_default_action;
	struct milter_result failed, *res;
	char esc[LOG_ESCAPE_MAX];

	memset(&failed, 0, sizeof(failed));
	failed.verdict = MILTER_V_FAILED;
	failed.error = "bad_address";
	res = run != NULL ? milter_run_result(run) : &failed;
	if (res->reply != NULL)
		log_escape(esc, sizeof(esc), res->reply, strlen(res->reply));
	else
		snprintf(esc, sizeof(esc), "-");
	switch (res->verdict) {
	case MILTER_V_FAILED:
		log_warn("event=smtp.milter sid=%s msgid=%s milter=%s "
		    "result=failed error=%s default=%s", s->sid, tx->msgid,
		    LOG_VALUE(spec), res->error, def);
		if (strcmp(def, "accept") == 0)
			break;
		if (strcmp(def, "reject") == 0)
			smtp_milter_end(s, "550 5.7.1 Message rejected by "
			    "content filter");
		else
			smtp_milter_end(s, "451 4.7.1 Service unavailable - "
			    "try again later");
		return;
	case MILTER_V_REJECT:
		log_info("event=smtp.milter sid=%s msgid=%s milter=%s "
		    "action=reject reply=%s", s->sid, tx->msgid,
		    LOG_VALUE(spec), esc);
		smtp_milter_end(s, "%s", res->reply != NULL ? res->reply :
		    "550 5.7.1 Command rejected");
		return;
	case MILTER_V_TEMPFAIL:
		log_info("event=smtp.milter sid=%s msgid=%s milter=%s "
		    "action=tempfail reply=%s", s->sid, tx->msgid,
		    LOG_VALUE(spec), esc);
		smtp_milter_end(s, "%s", res->reply != NULL ? res->reply :
		    "451 4.7.1 Service unavailable - try again later");
		return;
	case MILTER_V_DISCARD:
		/* The client is told it was taken (RFC 5321 6.1 allows
		 * dropping); only the log knows. */
		log_info("event=smtp.milter sid=%s msgid=%s milter=%s "
		    "action=discard", s->sid, tx->msgid, LOG_VALUE(spec));
		smtp_milter_end(s, "250 2.0.0 Ok: queued as %s", tx->msgid);
		return;
	case MILTER_V_CONTINUE:
		if (smtp_milter_rcpts(s, res) != 0) {
			smtp_milter_end(s, "%s", res->reply != NULL ?
			    res->reply : "550 5.7.1 No recipients left after "
			    "content filter");
			return;
		}
		if (res->quarantine != NULL) {
			log_escape(esc, sizeof(esc), res->quarantine,
			    strlen(res->quarantine));
			log_info("event=smtp.milter sid=%s msgid=%s milter=%s "
			    "quarantine=%s", s->sid, tx->msgid,
			    LOG_VALUE(spec), esc);
			m->quarantined = true;
		}
		if (milter_result_rewrites(res) &&
		    smtp_milter_rewrite(s, res) != 0) {
			log_warn("event=smtp.milter sid=%s msgid=%s "
			    "error=\"rewrite: %s\"", s->sid, tx->msgid,
			    strerror(errno));
			smtp_milter_end(s, "451 4.3.0 Temporary storage "
			    "failure");
			return;
		}
		break;
	}
	milter_run_free(run);
	m->run = NULL;
	m->idx++;
	smtp_milter_next(s);
}

/* The new message replaces the spool; it already holds our prefix. */
static int
smtp_milter_rewrite(struct smtp_session *s, const struct milter_result *res)
{
	struct smtp_tx *tx = s->tx;
	struct smtp_milter *m = tx->milter;
	unsigned char *mem;
	uint64_t size;
	int fd;

	if (milter_apply(&m->msg, res, s->lst->srv->spool_dir,
	    DELIVERY_SPOOL_MEM_MAX, &fd, &mem, &size) != 0)
		return -1;
	milter_msg_clear(&m->msg);
	if (tx->spool_fd != -1)
		close(tx->spool_fd);
	free(tx->spool_mem);
	tx->spool_fd = fd;
	tx->spool_mem = mem;
	tx->spool_in_mem = fd < 0;
	tx->spool_cap = fd < 0 ? (size_t)size : 0;
	tx->size = size;
	free(tx->prefix);
	tx->prefix = xstrdup("");	/* in the spool now */
	log_info("event=smtp.milter sid=%s msgid=%s action=rewrite mods=%zu "
	    "body=%s bytes=%llu", s->sid, tx->msgid, res->nmods,
	    res->body_replaced ? "replaced" : "kept",
	    (unsigned long long)size);
	return 0;
}

/* "<a@b>" or "a@b" from a milter, normalised like RCPT; NULL if bad. */
static char *
smtp_milter_addr(const char *v)
{
	struct smtp_path p;
	const char *error;
	char *args, *r = NULL;

	args = xasprintf(v[0] == '<' ? "TO:%s" : "TO:<%s>", v);
	if (smtp_path_parse(args, SMTP_PATH_RCPT, true, &p, &error) ==
	    SMTP_PATH_OK && !p.null && !p.postmaster) {
		r = p.addr;
		p.addr = NULL;
	}
	smtp_path_clear(&p);
	free(args);
	return r;
}

static void
smtp_milter_list_add(char ***v, size_t *n, const char *addr)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if (strcasecmp((*v)[i], addr) == 0)
			return;
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[(*n)++] = xstrdup(addr);
}

/* [smtpd] daily_send_limit leaves room for one more remote recipient
 * (as at RCPT, tx.c); a store error counts as no room. */
static bool
smtp_milter_may_send(struct smtp_session *s)
{
	struct smtp_server *srv = s->lst->srv;
	struct smtp_tx *tx = s->tx;
	unsigned limit = srv->cfg->smtpd.daily_send_limit;

	if (limit == 0 || s->auth_user == NULL)
		return true;
	if (tx->sent_base < 0)
		tx->sent_base = store_sent_count(srv->store, s->auth_user,
		    util_time() - SMTP_SEND_WINDOW);
	return tx->sent_base >= 0 &&
	    (uint64_t)tx->sent_base + tx->nremote + 1 <= limit;
}

/*
 * Add addr to a deduplicated local/remote list with its parallel DSN
 * parameters (RFC 3461, tx.c): those it had in the old list ov/odv, else
 * none (a recipient a milter added asked for nothing).
 */
static void
smtp_milter_dsn_add(char ***v, struct dsn_rcpt **dv, size_t *n,
    const char *addr, char **ov, const struct dsn_rcpt *odv, size_t on)
{
	static const struct dsn_rcpt none;
	const struct dsn_rcpt *d = &none;
	size_t i;

	for (i = 0; i < *n; i++)
		if (strcasecmp((*v)[i], addr) == 0)
			return;
	for (i = 0; i < on; i++)
		if (strcasecmp(ov[i], addr) == 0)
			d = &odv[i];
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	*dv = xrealloc(*dv, (*n + 1) * sizeof(**dv));
	(*v)[*n] = xstrdup(addr);
	dsn_rcpt_copy(&(*dv)[*n], d);
	(*n)++;
}

static void
smtp_milter_dsn_free(char **v, struct dsn_rcpt *dv, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i]);
		dsn_rcpt_clear(&dv[i]);
	}
	free(v);
	free(dv);
}

/*
 * Recipients the milter refused at RCPT, deleted or added. Added ones go
 * through the RCPT rules (user known, no relaying from MX, max_recipients,
 * daily_send_limit);
 * when any is gone the whole set is resolved again. 0, or -1 when none
 * is left (or the store failed: then the tempfail is logged).
 */
static int
smtp_milter_rcpts(struct smtp_session *s, const struct milter_result *res)
{
	struct smtp_server *srv = s->lst->srv;
	struct smtp_tx *tx = s->tx;
	char **want = NULL, **local = NULL, **remote = NULL, *a;
	size_t nwant = 0, i, j, k, nlocal, nremote, norig = tx->nrcpt_addrs;
	bool removed = res->nrcpt_rejected > 0, mx =
	    !smtp_session_is_submission(s);
	enum store_rcpt_kind kind;
	char esc[LOG_ESCAPE_MAX];
	/* The lists before a rebuild (their DSN parameters carry over). */
	char **ol = NULL, **orm = NULL;
	struct dsn_rcpt *old = NULL, *ord = NULL;
	size_t onl = 0, onr = 0;
	int rc = -1;

	for (i = 0; i < tx->nrcpt_addrs; i++)
		smtp_milter_list_add(&want, &nwant, tx->rcpt_addrs[i]);
	for (i = 0; i < res->nmods; i++) {
		const struct milter_mod *d = &res->mods[i];

		if (d->cmd != MILTER_R_ADDRCPT && d->cmd != MILTER_R_DELRCPT &&
		    d->cmd != MILTER_R_CHGFROM)
			continue;
		if ((a = smtp_milter_addr(d->value)) == NULL) {
			if (d->cmd == MILTER_R_CHGFROM &&
			    strcmp(d->value, "<>") == 0)
				a = xstrdup("");
			else
				continue;
		}
		log_escape(esc, sizeof(esc), a, strlen(a));
		if (d->cmd == MILTER_R_CHGFROM) {
			log_info("event=smtp.milter sid=%s msgid=%s "
			    "action=chgfrom from=%s", s->sid, tx->msgid, esc);
			free(tx->mail_from);
			tx->mail_from = a;
			continue;
		}
		if (d->cmd == MILTER_R_ADDRCPT) {
			smtp_milter_list_add(&want, &nwant, a);
		} else {
			for (j = 0; j < nwant; j++)
				if (strcasecmp(want[j], a) == 0)
					break;
			if (j < nwant) {
				free(want[j]);
				want[j] = want[--nwant];
				removed = true;
			}
		}
		log_info("event=smtp.milter sid=%s msgid=%s action=%s to=%s",
		    s->sid, tx->msgid, d->cmd == MILTER_R_ADDRCPT ?
		    "addrcpt" : "delrcpt", esc);
		free(a);
	}
	for (i = 0; i < res->nrcpt_rejected; i++)
		for (j = 0; j < nwant; j++)
			if (strcasecmp(want[j], res->rcpt_rejected[i]) == 0) {
				free(want[j]);
				want[j] = want[--nwant];
				break;
			}
	if (!removed && nwant == norig) {
		store_rcpt_free_list(want, nwant);
		return 0;
	}
	if (removed) {
		/* Start over from the recipients that are left; each keeps
		 * its DSN parameters. */
		ol = tx->local;
		old = tx->local_dsn;
		onl = tx->nlocal;
		orm = tx->remote;
		ord = tx->remote_dsn;
		onr = tx->nremote;
		tx->local = tx->remote = NULL;
		tx->local_dsn = tx->remote_dsn = NULL;
		tx->nlocal = tx->nremote = 0;
		tx->nrcpt = 0;
	}
	for (i = 0; i < nwant; i++) {
		bool orig = false;

		for (j = 0; j < norig; j++)
			if (strcasecmp(want[i], tx->rcpt_addrs[j]) == 0)
				orig = true;
		if (orig && !removed)
			continue;	/* resolved at RCPT already */
		log_escape(esc, sizeof(esc), want[i], strlen(want[i]));
		if (!orig && tx->nrcpt >= srv->cfg->smtpd.max_recipients) {
			log_info("event=smtp.milter sid=%s msgid=%s to=%s "
			    "result=too_many", s->sid, tx->msgid, esc);
			continue;
		}
		if (store_resolve(srv->store, want[i],
		    srv->cfg->server.postmaster, &kind, &local, &nlocal,
		    &remote, &nremote) != 0) {
			log_warn("event=smtp.store sid=%s error=\"%s\"",
			    s->sid, store_error(srv->store));
			store_rcpt_free_list(want, nwant);
			goto out;
		}
		if (kind == STORE_RCPT_NOUSER ||
		    (kind == STORE_RCPT_REMOTE && mx && !orig)) {
			log_info("event=smtp.milter sid=%s msgid=%s to=%s "
			    "result=%s", s->sid, tx->msgid, esc,
			    kind == STORE_RCPT_NOUSER ? "unknown" :
			    "relay_denied");
		} else if (kind == STORE_RCPT_REMOTE && !orig &&
		    !smtp_milter_may_send(s)) {
			log_info("event=smtp.milter sid=%s msgid=%s to=%s "
			    "result=limit", s->sid, tx->msgid, esc);
		} else if (kind == STORE_RCPT_REMOTE) {
			smtp_milter_dsn_add(&tx->remote, &tx->remote_dsn,
			    &tx->nremote, want[i], orm, ord, onr);
			tx->nrcpt++;
		} else {
			for (k = 0; k < nlocal; k++)
				smtp_milter_dsn_add(&tx->local,
				    &tx->local_dsn, &tx->nlocal, local[k],
				    ol, old, onl);
			for (k = 0; k < nremote; k++)
				smtp_milter_dsn_add(&tx->remote,
				    &tx->remote_dsn, &tx->nremote,
				    remote[k], orm, ord, onr);
			tx->nrcpt++;
		}
		store_rcpt_free_list(local, nlocal);
		store_rcpt_free_list(remote, nremote);
		local = remote = NULL;
	}
	/* The next milter sees the recipients as they are now. */
	for (i = 0; i < tx->nrcpt_addrs; i++)
		free(tx->rcpt_addrs[i]);
	free(tx->rcpt_addrs);
	tx->rcpt_addrs = want;
	tx->nrcpt_addrs = nwant;
	rc = tx->nlocal + tx->nremote > 0 ? 0 : -1;
out:
	smtp_milter_dsn_free(ol, old, onl);
	smtp_milter_dsn_free(orm, ord, onr);
	return rc;
}
