/*
 * One mail transaction, MAIL and RCPT: its lifetime (free, reset), sender
 * and recipient policy (local domains on MX, owned senders and the daily
 * limit on submission, quotas) and recipient resolution through the store.
 * DATA/BDAT streaming is tx_data.c's; what follows the end of data (the
 * checks, the Received header, the hand-off to delivery.c) is tx_end.c's.
 */
#include "smtpd/smtpd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "smtpd/delivery.h"
#include "smtpd/forward.h"
#include "smtpd/inbound.h"
#include "smtpd/milter.h"
#include "smtpd/signer.h"
#include "smtpd/tx_suppress.h"
#include "store/store.h"

#define SMTP_DAY	(24 * 60 * 60)

void
smtp_tx_free(struct smtp_tx *tx)
{
	size_t i;

	if (tx == NULL)
		return;
	free(tx->mail_from);
	free(tx->first_rcpt);
	free(tx->queue_from);
	free(tx->fwd_domain);
	for (i = 0; i < tx->nlocal; i++) {
		free(tx->local[i]);
		dsn_rcpt_clear(&tx->local_dsn[i]);
	}
	free(tx->local);
	free(tx->local_dsn);
	for (i = 0; i < tx->nremote; i++) {
		free(tx->remote[i]);
		dsn_rcpt_clear(&tx->remote_dsn[i]);
	}
	free(tx->remote);
	free(tx->remote_dsn);
	dsn_mail_clear(&tx->dsn);
	if (tx->spool_fd != -1)
		close(tx->spool_fd);
	free(tx->spool_mem);
	free(tx->extra);
	free(tx->prefix);
	for (i = 0; i < tx->nrcpt_addrs; i++)
		free(tx->rcpt_addrs[i]);
	free(tx->rcpt_addrs);
	free(tx);
}

void
smtp_tx_reset(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;

	if (tx == NULL)
		return;
	if (tx->token != 0) {
		switch (tx->step) {
		case SMTP_TX_STEP_SIGN:
			signer_cancel(s->lst->srv->signer, tx->token);
			break;
		case SMTP_TX_STEP_INBOUND:
			inbound_cancel(s->lst->srv->inbound, tx->token);
			break;
		case SMTP_TX_STEP_COMMIT:
			/* The commit itself still completes. */
			delivery_cancel(s->lst->srv->delivery, tx->token);
			break;
		}
	}
	smtp_milter_cancel(s);
	s->tx = NULL;
	smtp_tx_free(tx);
}

/* Add addr to a deduplicated list (case-insensitive), with its DSN
 * parameters in the parallel list dv (the first RCPT naming it wins). */
static void
smtp_tx_list_add(char ***v, struct dsn_rcpt **dv, size_t *n,
    const char *addr, const struct dsn_rcpt *dsn)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if (strcasecmp((*v)[i], addr) == 0)
			return;
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	*dv = xrealloc(*dv, (*n + 1) * sizeof(**dv));
	dsn_rcpt_copy(&(*dv)[*n], dsn);
	(*v)[(*n)++] = xstrdup(addr);
}

static bool
smtp_tx_list_has(char **v, size_t n, const char *addr)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcasecmp(v[i], addr) == 0)
			return true;
	return false;
}

/* Reply for a parser error; is_mail picks the address code. */
static void
smtp_tx_path_error(struct smtp_session *s, enum smtp_path_err err,
    const char *error, bool is_mail)
{
	switch (err) {
	case SMTP_PATH_OK:
		break;
	case SMTP_PATH_ERR_SYNTAX:
	case SMTP_PATH_ERR_BRACKETS:
	case SMTP_PATH_ERR_VALUE:
		smtp_reply(s, "501 5.5.4 %s", error);
		break;
	case SMTP_PATH_ERR_ADDRESS:
		smtp_reply(s, "501 %s Bad %s address syntax: %s",
		    is_mail ? "5.1.7" : "5.1.3",
		    is_mail ? "sender" : "recipient", error);
		break;
	case SMTP_PATH_ERR_PARAM:
		smtp_reply(s, "555 5.5.4 %s", error);
		break;
	case SMTP_PATH_ERR_UTF8:
		smtp_reply(s, "553 5.6.7 %s", error);
		break;
	}
}

/* Submission: MAIL FROM must be the user or deliver to the user. 1 yes,
 * 0 no, -1 store error. */
static int
smtp_tx_sender_owned(struct smtp_session *s, const char *from)
{
	struct smtp_server *srv = s->lst->srv;
	enum store_rcpt_kind kind;
	char **local = NULL, **remote = NULL;
	size_t nlocal = 0, nremote = 0;
	int owned;

	if (strcasecmp(from, s->auth_user) == 0)
		return 1;
	if (store_resolve(srv->store, from, srv->cfg->server.postmaster, &kind,
	    &local, &nlocal, &remote, &nremote) != 0)
		return -1;
	owned = kind == STORE_RCPT_LOCAL &&
	    smtp_tx_list_has(local, nlocal, s->auth_user);
	store_rcpt_free_list(local, nlocal);
	store_rcpt_free_list(remote, nremote);
	return owned;
}

void
smtp_cmd_mail(struct smtp_session *s, const char *args)
{
	struct smtp_server *srv = s->lst->srv;
	char esc[LOG_ESCAPE_MAX];
	struct smtp_path p;
	struct smtp_tx *tx;
	const char *error;
	enum smtp_path_err err;
	int owned;

	if (smtp_session_is_submission(s) && s->auth_user == NULL) {
		smtp_reply(s, "530 5.7.0 Authentication required");
		return;
	}
	err = smtp_path_parse(args, SMTP_PATH_MAIL, false, &p, &error);
	if (err != SMTP_PATH_OK) {
		smtp_tx_path_error(s, err, error, true);
		return;
	}
	if (p.has_size && p.size > srv->cfg->smtpd.max_message_size) {
		smtp_reply(s, "552 5.3.4 Message size exceeds fixed limit");
		goto out;
	}
	if (smtp_session_is_submission(s)) {
		if (p.null) {
			smtp_reply(s, "553 5.7.1 Null sender not allowed "
			    "for submission");
			goto out;
		}
		if ((owned = smtp_tx_sender_owned(s, p.addr)) < 0) {
			log_warn("event=smtp.store sid=%s error=\"%s\"",
			    s->sid, store_error(srv->store));
			smtp_reply(s, "451 4.3.0 Temporary lookup failure");
			goto out;
		}
		if (!owned) {
			smtp_reply(s, "553 5.7.1 Sender address rejected: "
			    "not owned by user %s", s->auth_user);
			goto out;
		}
	}
	tx = xcalloc(1, sizeof(*tx));
	tx->spool_fd = -1;
	/* Every message starts in memory: a small one never touches a
	 * file (tx_data.c). */
	tx->spool_in_mem = true;
	tx->sent_base = -1;
	snprintf(tx->msgid, sizeof(tx->msgid), "%016llx",
	    (unsigned long long)util_unique_id64());
	tx->mail_from = p.addr;
	p.addr = NULL;
	tx->smtputf8 = p.smtputf8;
	tx->body8bit = p.body == SMTP_BODY_8BITMIME;
	tx->declared_size = p.has_size ? p.size : 0;
	tx->dsn = p.dsn_mail;		/* RFC 3461 RET, ENVID: moved */
	memset(&p.dsn_mail, 0, sizeof(p.dsn_mail));
	s->tx = tx;
	smtp_session_enter(s, SMTP_ST_MAIL);
	log_info("event=smtp.mail sid=%s msgid=%s from=%s size=%llu%s", s->sid,
	    tx->msgid, log_escape(esc, sizeof(esc), tx->mail_from,
	    strlen(tx->mail_from)), (unsigned long long)tx->declared_size,
	    tx->smtputf8 ? " smtputf8=yes" : "");
	smtp_reply(s, "250 2.1.0 Ok");
out:
	smtp_path_clear(&p);
}

/* Daily limit: 0 ok (room for one more remote recipient), 1 refused
 * (reply sent), -1 store error. */
static int
smtp_tx_check_limit(struct smtp_session *s)
{
	struct smtp_server *srv = s->lst->srv;
	struct smtp_tx *tx = s->tx;
	unsigned limit = srv->cfg->smtpd.daily_send_limit;
	int64_t now = util_time(), oldest;
	char date[64];

	if (limit == 0 || s->auth_user == NULL)
		return 0;
	if (tx->sent_base < 0) {
		tx->sent_base = store_sent_count(srv->store, s->auth_user,
		    now - SMTP_DAY);
		if (tx->sent_base < 0)
			return -1;
	}
	if ((uint64_t)tx->sent_base + tx->nremote + 1 <= limit)
		return 0;
	oldest = store_sent_oldest(srv->store, s->auth_user, now - SMTP_DAY);
	util_rfc5322_date(date, sizeof(date), (oldest > 0 ? oldest : now) +
	    SMTP_DAY);
	smtp_reply(s, "450 4.7.1 Daily sending limit of %u recipients "
	    "reached; capacity frees up at %s", limit, date);
	return 1;
}

/* Quota at RCPT time: 1 when a mailbox is already full (reply sent). */
static int
smtp_tx_check_quota(struct smtp_session *s, char **local, size_t nlocal)
{
	struct smtp_server *srv = s->lst->srv;
	struct store_user u;
	size_t i;
	int rc, full = 0;

	for (i = 0; i < nlocal && !full; i++) {
		memset(&u, 0, sizeof(u));
		rc = store_user_get(srv->store, local[i], &u);
		if (rc < 0)
			return -1;
		if (rc == 0 && u.quota != 0 && u.used >= u.quota)
			full = 1;
		store_user_clear(&u);
	}
	if (full)
		smtp_reply(s, "452 4.2.2 Mailbox full");
	return full;
}

/*
 * RCPT of an SRS address at a local domain (forward.h): 0 with *orig_r
 * set when it verifies (or NULL when it is no SRS address of ours), 1
 * refused with 550 (reply sent), -1 store error (reply sent).
 */
static int
smtp_tx_rcpt_srs(struct smtp_session *s, const char *addr, char **orig_r)
{
	struct smtp_server *srv = s->lst->srv;
	enum srs_result res;
	int rc;

	*orig_r = NULL;
	if (srv->srs == NULL)
		return 0;
	rc = forward_rcpt(srv->store, srv->srs, addr, util_time(), orig_r,
	    &res);
	if (rc < 0) {
		smtp_reply(s, "451 4.3.0 Temporary lookup failure");
		return -1;
	}
	if (rc == 2) {
		log_info("event=smtp.srs sid=%s msgid=%s result=%s",
		    s->sid, s->tx->msgid, srs_result_str(res));
		smtp_reply(s, "550 5.1.1 <%s>: Recipient address rejected: "
		    "%s", addr, res == SRS_EXPIRED ? "SRS address has expired" :
		    "SRS address does not verify");
		return 1;
	}
	return 0;
}

/*
 * An accepted rcpt forwards to remote recipients: the first one fixes the
 * queue row's sender (SRS at the domain of rcpt, forward.h). 0, or -1 on
 * a store error (nothing changed).
 */
static int
smtp_tx_forwarding(struct smtp_session *s, const char *rcpt, bool forwards)
{
	struct smtp_server *srv = s->lst->srv;
	struct smtp_tx *tx = s->tx;
	const char *domain = strrchr(rcpt, '@');
	char esc[LOG_ESCAPE_MAX], *sender;

	if (!forwards || tx->fwd_domain != NULL || srv->srs == NULL ||
	    domain == NULL)
		return 0;
	if (forward_sender(srv->store, srv->srs, tx->mail_from, domain + 1,
	    util_time(), &sender) < 0)
		return -1;
	tx->fwd_domain = xstrdup(domain + 1);
	tx->queue_from = sender;
	if (sender != NULL)
		log_info("event=smtp.forward sid=%s msgid=%s srs_from=%s",
		    s->sid, tx->msgid, log_escape(esc, sizeof(esc), sender,
		    strlen(sender)));
	return 0;
}

void
smtp_cmd_rcpt(struct smtp_session *s, const char *args)
{
	struct smtp_server *srv = s->lst->srv;
	struct smtp_tx *tx = s->tx;
	enum store_rcpt_kind kind;
	char **local = NULL, **remote = NULL;
	size_t nlocal = 0, nremote = 0, i;
	char esc[LOG_ESCAPE_MAX];
	struct smtp_path p;
	const char *error, *result = "reject";
	enum smtp_path_err err;
	bool mx = !smtp_session_is_submission(s);
	bool snap = false;
	char *orig = NULL;	/* the sender behind a verified SRS rcpt */
	int rc;

	err = smtp_path_parse(args, SMTP_PATH_RCPT, tx->smtputf8, &p, &error);
	if (err != SMTP_PATH_OK) {
		smtp_tx_path_error(s, err, error, false);
		return;
	}
	log_escape(esc, sizeof(esc), p.addr, strlen(p.addr));
	if (tx->nrcpt >= srv->cfg->smtpd.max_recipients) {
		smtp_reply(s, "452 4.5.3 Error: too many recipients");
		goto out;
	}
	if (p.literal) {
		smtp_reply(s, "550 5.7.1 <%s>: address literals not accepted",
		    p.addr);
		goto out;
	}
	if (mx && p.percent) {
		smtp_reply(s, "550 5.7.1 <%s>: Relay access denied", p.addr);
		goto out;
	}
	/* A message now could not be stored (delivery.h): say so before
	 * the client sends it. */
	if (delivery_is_full(srv->delivery)) {
		smtp_reply(s, SMTP_REPLY_FULL);
		result = "full";
		goto out;
	}
	/* One snapshot for the lookups of this RCPT (domain, aliases,
	 * users, quota). */
	snap = store_read_begin(srv->store) == 0;
	if (snap && (rc = smtp_tx_rcpt_srs(s, p.addr, &orig)) != 0) {
		result = rc < 0 ? "tempfail" : "srs-invalid";
		goto out;
	}
	if (!snap || store_resolve(srv->store, orig != NULL ? orig : p.addr,
	    srv->cfg->server.postmaster, &kind, &local, &nlocal, &remote,
	    &nremote) != 0 || smtp_tx_forwarding(s, p.addr,
	    (kind == STORE_RCPT_REMOTE && orig != NULL) ||
	    (kind == STORE_RCPT_LOCAL && nremote > 0)) != 0) {
		log_warn("event=smtp.store sid=%s error=\"%s\"", s->sid,
		    store_error(srv->store));
		smtp_reply(s, "451 4.3.0 Temporary lookup failure");
		result = "tempfail";
		goto out;
	}
	switch (kind) {
	case STORE_RCPT_NOUSER:
		smtp_reply(s, "550 5.1.1 <%s>: Recipient address rejected: "
		    "User unknown", p.addr);
		goto out;
	case STORE_RCPT_REMOTE:
		/* A verified SRS address forwards a bounce back out. */
		if (mx && orig == NULL) {
			smtp_reply(s, "550 5.7.1 <%s>: Relay access denied",
			    p.addr);
			goto out;
		}
		if ((rc = smtp_tx_suppressed(s, orig != NULL ? orig :
		    p.addr)) != 0) {
			if (rc < 0)
				smtp_reply(s, "451 4.3.0 Temporary lookup "
				    "failure");
			result = rc < 0 ? "tempfail" : "suppressed";
			goto out;
		}
		if ((rc = smtp_tx_check_limit(s)) != 0) {
			if (rc < 0) {
				smtp_reply(s, "451 4.3.0 Temporary lookup "
				    "failure");
				result = "tempfail";
			} else {
				result = "limit";
			}
			goto out;
		}
		smtp_tx_list_add(&tx->remote, &tx->remote_dsn, &tx->nremote,
		    orig != NULL ? orig : p.addr, &p.dsn_rcpt);
		break;
	case STORE_RCPT_LOCAL:
		if ((rc = smtp_tx_check_quota(s, local, nlocal)) != 0) {
			if (rc < 0)
				smtp_reply(s, "451 4.3.0 Temporary lookup "
				    "failure");
			result = rc < 0 ? "tempfail" : "quota";
			goto out;
		}
		for (i = 0; i < nlocal; i++)
			smtp_tx_list_add(&tx->local, &tx->local_dsn,
			    &tx->nlocal, local[i], &p.dsn_rcpt);
		/* An alias may forward outside: queued like submission. */
		for (i = 0; i < nremote; i++)
			smtp_tx_list_add(&tx->remote, &tx->remote_dsn,
			    &tx->nremote, remote[i], &p.dsn_rcpt);
		break;
	}
	tx->nrcpt++;
	tx->rcpt_addrs = xrealloc(tx->rcpt_addrs, (tx->nrcpt_addrs + 1) *
	    sizeof(*tx->rcpt_addrs));
	tx->rcpt_addrs[tx->nrcpt_addrs++] = xstrdup(p.addr);
	if (tx->first_rcpt == NULL)
		tx->first_rcpt = xstrdup(p.addr);
	result = "ok";
	smtp_session_enter(s, SMTP_ST_RCPT);
	smtp_reply(s, "250 2.1.5 Ok");
out:
	if (snap)
		store_read_end(srv->store);
	log_info("event=smtp.rcpt sid=%s msgid=%s to=%s result=%s "
	    "local=%zu remote=%zu", s->sid, tx->msgid, esc, result, nlocal,
	    nremote);
	store_rcpt_free_list(local, nlocal);
	store_rcpt_free_list(remote, nremote);
	free(orig);
	smtp_path_clear(&p);
}
