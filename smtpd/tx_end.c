/*
 * The end of one transaction's data: exactly one reply. The steps after
 * the final dot (DKIM signing on submission, SPF/DKIM/DMARC on MX; the
 * checks themselves live in signer.c and inbound.c, this file only
 * sequences them), the Received trace header, and the hand-off to
 * delivery.c whose callback sends the 250.
 */
#include "smtpd/smtpd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/conn.h"
#include "common/log.h"
#include "common/stats.h"
#include "common/util.h"
#include "smtpd/delivery.h"
#include "smtpd/inbound.h"
#include "smtpd/signer.h"

static void smtp_tx_ip_literal(struct smtp_session *s, char *buf,
    size_t size);
static void smtp_tx_clean(char *s);
static char *smtp_tx_prefix(struct smtp_session *s);
static const char *smtp_tx_error_name(enum smtp_tx_err e);
static void smtp_tx_extra_add(struct smtp_tx *tx, const char *headers);
static void smtp_tx_done(uint64_t token, enum delivery_result res,
    int64_t queue_id, void *arg);
static void smtp_tx_signed(uint64_t token, const char *headers,
    const char *domain, void *arg);
static void smtp_tx_checked(uint64_t token, struct inbound_result *res,
    void *arg);
static void smtp_tx_commit(struct smtp_session *s);
static void smtp_tx_strip(struct smtp_session *s);

/* "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 4.1.3). */
static void
smtp_tx_ip_literal(struct smtp_session *s, char *buf, size_t size)
{
	const char *ip = conn_peer_ip(s->conn);

	snprintf(buf, size, "[%s%s]", strchr(ip, ':') ? "IPv6:" : "", ip);
}

/* Printable ASCII only, for text that goes into our own header. */
static void
smtp_tx_clean(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 33 || (unsigned char)*s > 126 ||
		    *s == '(' || *s == ')')
			*s = '?';
}

/* Received (RFC 5321 4.4; RFC 3848/6531 WITH types), then our checks'
 * fields. The Return-Path is not ours to write: the store keeps the
 * envelope sender in the mailbox row and shows it to RETR. Caller frees. */
static char *
smtp_tx_prefix(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	char ip[64], date[64], *helo, *tls = NULL, *auth = NULL, *r;
	const char *proto;
	bool t = conn_is_tls(s->conn), a = s->auth_user != NULL;

	smtp_tx_ip_literal(s, ip, sizeof(ip));
	util_rfc5322_date(date, sizeof(date), util_time());
	helo = xstrdup(s->helo != NULL ? s->helo : "unknown");
	smtp_tx_clean(helo);
	if (tx->smtputf8)
		proto = t ? (a ? "UTF8SMTPSA" : "UTF8SMTPS") :
		    (a ? "UTF8SMTPA" : "UTF8SMTP");
	else if (!s->esmtp)
		proto = "SMTP";
	else
		proto = t ? (a ? "ESMTPSA" : "ESMTPS") :
		    (a ? "ESMTPA" : "ESMTP");
	if (t)
		tls = xasprintf("\t(using %s with cipher %s)\r\n",
		    conn_tls_version(s->conn), conn_tls_cipher(s->conn));
	if (a)
		auth = xasprintf("\t(authenticated as %s)\r\n", s->auth_user);
	if (tx->nrcpt == 1)
		r = xasprintf("Received: from %s (%s)\r\n%s%s"
		    "\tby %s (carteiro) with %s id %s\r\n"
		    "\tfor <%s>; %s\r\n", helo, ip,
		    tls ? tls : "", auth ? auth : "",
		    smtp_session_hostname(s), proto, tx->msgid,
		    tx->first_rcpt, date);
	else
		r = xasprintf("Received: from %s (%s)\r\n%s%s"
		    "\tby %s (carteiro) with %s id %s;\r\n"
		    "\t%s\r\n", helo, ip,
		    tls ? tls : "", auth ? auth : "",
		    smtp_session_hostname(s), proto, tx->msgid, date);
	free(helo);
	free(tls);
	free(auth);
	if (tx->extra != NULL) {
		/* Our checks' fields (Authentication-Results, DKIM-Signature)
		 * follow the trace fields of this hop. */
		char *both = xasprintf("%s%s", r, tx->extra);
		free(r);
		r = both;
	}
	return r;
}

static const char *
smtp_tx_error_name(enum smtp_tx_err e)
{
	switch (e) {
	case SMTP_TX_OK:
		return "ok";
	case SMTP_TX_ERR_SIZE:
		return "too_big";
	case SMTP_TX_ERR_BARE:
		return "bare_newline";
	case SMTP_TX_ERR_IO:
		return "spool_error";
	case SMTP_TX_ERR_HEADER:
		return "header_too_large";
	case SMTP_TX_ERR_FULL:
		return "no_space";
	}
	return "?";
}

/* Forged Authentication-Results out (inbound.h), before anything reads
 * the message, on every listener and path; latches the error. */
static void
smtp_tx_strip(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	unsigned removed = 0;
	int rc;

	rc = inbound_strip(smtp_session_hostname(s), tx->spool_fd,
	    tx->spool_in_mem ? tx->spool_mem : NULL, &tx->size, &removed);
	if (rc < 0) {
		smtp_tx_spool_failed(s, errno);
	} else if (rc > 0) {
		tx->error = SMTP_TX_ERR_HEADER;
	} else if (removed > 0) {
		log_info("event=smtp.ar_strip sid=%s msgid=%s removed=%u",
		    s->sid, tx->msgid, removed);
	}
}

/* End of data (or a failed BDAT chunk): exactly one reply, now or from
 * the delivery callback. */
void
smtp_tx_end(struct smtp_session *s)
{
	struct smtp_server *srv = s->lst->srv;
	struct smtp_tx *tx = s->tx;
	bool sign, check;

	tx->end_ms = util_now_ms();
	conn_set_timeout(s->conn, srv->timeout_cmd_ms);
	s->mode = SMTP_MODE_CMD;
	smtp_session_set_cmd(s, tx->bdat ? "BDAT" : "DATA", 4);
	if (tx->error == SMTP_TX_OK)
		smtp_tx_strip(s);
	log_info("event=smtp.data sid=%s msgid=%s result=%s bytes=%llu",
	    s->sid, tx->msgid, smtp_tx_error_name(tx->error),
	    (unsigned long long)tx->size);
	if (tx->error != SMTP_TX_OK) {
		switch (tx->error) {
		case SMTP_TX_ERR_SIZE:
			smtp_reply(s, "552 5.3.4 Message size exceeds fixed "
			    "limit");
			break;
		case SMTP_TX_ERR_BARE:
			smtp_reply(s, "550 5.5.2 Message contains bare CR or "
			    "LF, not allowed");
			break;
		case SMTP_TX_ERR_HEADER:
			smtp_reply(s, "552 5.3.4 Message header section "
			    "exceeds fixed limit");
			break;
		case SMTP_TX_ERR_FULL:
			smtp_reply(s, SMTP_REPLY_FULL);
			break;
		default:
			smtp_reply(s, "451 4.3.0 Temporary storage failure");
			break;
		}
		smtp_tx_reset(s);
		smtp_session_enter(s, SMTP_ST_READY);
		return;
	}
	sign = smtp_session_is_submission(s) && srv->signer != NULL &&
	    s->auth_user != NULL;
	check = !smtp_session_is_submission(s) && srv->inbound != NULL &&
	    !s->exempt;
	smtp_session_wait(s);
	if (sign) {
		tx->step = SMTP_TX_STEP_SIGN;
		tx->token = signer_submit(srv->signer, tx->spool_fd,
		    tx->spool_in_mem ? tx->spool_mem : NULL, tx->size,
		    smtp_tx_signed, s);
		if (tx->token != 0)
			return;
		log_warn("event=smtp.dkim sid=%s msgid=%s result=skipped "
		    "error=pool_full", s->sid, tx->msgid);
	} else if (check) {
		struct inbound_req req;

		memset(&req, 0, sizeof(req));
		req.ip = conn_peer_ip(s->conn);
		req.helo = s->helo;
		req.mail_from = tx->mail_from;
		req.spool_fd = tx->spool_fd;
		req.mem = tx->spool_in_mem ? tx->spool_mem : NULL;
		req.data_size = tx->size;
		tx->step = SMTP_TX_STEP_INBOUND;
		tx->token = inbound_submit(srv->inbound, &req, smtp_tx_checked,
		    s);
		if (tx->token != 0)
			return;
		log_warn("event=smtp.inbound sid=%s msgid=%s result=skipped "
		    "error=pool_full", s->sid, tx->msgid);
	}
	smtp_tx_commit(s);
}

static void
smtp_tx_extra_add(struct smtp_tx *tx, const char *headers)
{
	char *t;

	if (headers == NULL || *headers == '\0')
		return;
	t = xasprintf("%s%s", tx->extra ? tx->extra : "", headers);
	free(tx->extra);
	tx->extra = t;
}

static void
smtp_tx_signed(uint64_t token, const char *headers, const char *domain,
    void *arg)
{
	struct smtp_session *s = arg;
	struct smtp_tx *tx = s->tx;

	tx->token = 0;
	if (headers != NULL && *headers != '\0') {
		log_info("event=smtp.dkim sid=%s msgid=%s result=signed "
		    "domain=%s", s->sid, tx->msgid, LOG_VALUE(domain));
		smtp_tx_extra_add(tx, headers);
	}
	smtp_tx_commit(s);
}

static void
smtp_tx_checked(uint64_t token, struct inbound_result *res, void *arg)
{
	struct smtp_session *s = arg;
	struct smtp_tx *tx = s->tx;

	tx->token = 0;
	log_info("event=smtp.inbound sid=%s msgid=%s %s%s", s->sid, tx->msgid,
	    res->summary ? res->summary : "",
	    res->reject ? " action=reject" : "");
	if (res->reject) {
		smtp_session_set_cmd(s, tx->bdat ? "BDAT" : "DATA", 4);
		smtp_reply(s, "550 5.7.1 %s", res->reject_text ?
		    res->reject_text : "Message rejected by DMARC policy");
		smtp_tx_reset(s);
		smtp_session_enter(s, SMTP_ST_READY);
		smtp_session_resume(s);
		return;
	}
	smtp_tx_extra_add(tx, res->headers);
	smtp_tx_commit(s);
}

/* Hand the message to the group-commit writer; its callback replies. */
static void
smtp_tx_commit(struct smtp_session *s)
{
	struct smtp_server *srv = s->lst->srv;
	struct smtp_tx *tx = s->tx;
	struct delivery_job job;
	char *prefix;

	prefix = smtp_tx_prefix(s);
	memset(&job, 0, sizeof(job));
	job.spool_fd = tx->spool_fd;
	job.mem = tx->spool_in_mem ? tx->spool_mem : NULL;
	job.data_size = tx->size;
	job.prefix = prefix;
	job.prefix_len = strlen(prefix);
	job.mail_from = tx->mail_from;
	job.queue_mail_from = tx->queue_from;
	job.local = (const char *const *)tx->local;
	job.nlocal = tx->nlocal;
	job.remote = (const char *const *)tx->remote;
	job.nremote = tx->nremote;
	job.auth_user = s->auth_user;
	job.smtputf8 = tx->smtputf8;
	/* Remote recipients count against daily_send_limit in the same
	 * commit (recorded even without a limit, so that setting one later
	 * sees the real history). */
	job.count_sent = true;
	job.msgid = tx->msgid;
	job.local_dsn = tx->local_dsn;
	job.remote_dsn = tx->remote_dsn;
	job.dsn = &tx->dsn;
	tx->spool_fd = -1;	/* delivery owns it now */
	tx->spool_mem = NULL;
	tx->spool_in_mem = false;
	tx->step = SMTP_TX_STEP_COMMIT;
	tx->token = delivery_submit(srv->delivery, &job, smtp_tx_done, s);
	free(prefix);
}

static void
smtp_tx_done(uint64_t token, enum delivery_result res, int64_t queue_id,
    void *arg)
{
	struct smtp_session *s = arg;
	struct smtp_tx *tx = s->tx;

	tx->token = 0;
	smtp_session_set_cmd(s, tx->bdat ? "BDAT" : "DATA", 4);
	switch (res) {
	case DELIVERY_OK:
		log_info("event=smtp.accept sid=%s msgid=%s rcpts=%u local=%zu "
		    "remote=%zu size=%llu queue_id=%lld", s->sid, tx->msgid,
		    tx->nrcpt, tx->nlocal, tx->nremote,
		    (unsigned long long)tx->size, (long long)queue_id);
		smtp_reply(s, "250 2.0.0 Ok: queued as %s", tx->msgid);
		stats_inc(STATS_SMTP_ACCEPTED);
		stats_add(STATS_SMTP_ACCEPTED_BYTES, tx->size);
		/* Checks, signing and the durable commit: the wait a
		 * client sees between its final dot and our 250. */
		stats_observe_ms(STATS_SMTP_EOD_LE_50MS,
		    util_now_ms() - tx->end_ms);
		break;
	case DELIVERY_QUOTA:
		stats_inc(STATS_SMTP_REFUSED_5XX);
		smtp_reply(s, "552 5.2.2 Mailbox full: message would exceed "
		    "quota");
		break;
	case DELIVERY_TEMPFAIL:
		stats_inc(STATS_SMTP_REFUSED_4XX);
		smtp_reply(s, "451 4.3.0 Temporary storage failure, try "
		    "again later");
		break;
	case DELIVERY_FULL:
		smtp_reply(s, SMTP_REPLY_FULL);
		break;
	}
	smtp_tx_reset(s);
	smtp_session_enter(s, SMTP_ST_READY);
	smtp_session_resume(s);
}
