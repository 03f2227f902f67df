/*
 * One mail transaction: its lifetime (free, reset) and MAIL with its
 * sender policy (owned senders on submission). RCPT and the recipient
 * policy are rcpt.c's; DATA/BDAT streaming is tx_data.c's; what follows
 * the end of data (the checks, the Received header, the hand-off to
 * delivery.c) is tx_end.c's.
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
#include "smtpd/inbound.h"
#include "smtpd/milter.h"
#include "smtpd/signer.h"
#include "store/store.h"


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

void
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

void
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
