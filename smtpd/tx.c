/*
 * One mail transaction, MAIL to end of data: sender and recipient policy
 * (local domains on MX, owned senders and the daily limit on submission,
 * quotas), DATA/BDAT streaming into the spool with a latched error, the
 * steps after the end of data (DKIM signing on submission, SPF/DKIM/DMARC
 * on MX), the Return-Path/Received prefix, and the hand-off to delivery.c
 * whose callback sends the 250. The checks themselves live in signer.c and
 * inbound.c; this file only sequences them.
 */
#include "smtpd/smtpd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "common/config.h"
#include "common/conn.h"
#include "common/log.h"
#include "common/util.h"
#include "smtpd/delivery.h"
#include "smtpd/inbound.h"
#include "smtpd/signer.h"
#include "store/store.h"

/* Input decoded per step; the output buffer is shared (one loop thread). */
#define SMTP_TX_STEP	(64 * 1024)
#define SMTP_DAY	(24 * 60 * 60)

static char smtp_tx_out[SMTP_TX_STEP + 2];

static void smtp_tx_write(struct smtp_session *s, const char *buf,
    size_t len);
static void smtp_tx_end(struct smtp_session *s);
static void smtp_tx_done(uint64_t token, enum delivery_result res,
    int64_t queue_id, void *arg);
static void smtp_tx_signed(uint64_t token, const char *headers,
    const char *domain, void *arg);
static void smtp_tx_checked(uint64_t token, struct inbound_result *res,
    void *arg);
static void smtp_tx_commit(struct smtp_session *s);
static bool smtp_tx_open_spool(struct smtp_session *s);

void
smtp_tx_free(struct smtp_tx *tx)
{
	size_t i;

	if (tx == NULL)
		return;
	free(tx->mail_from);
	free(tx->first_rcpt);
	for (i = 0; i < tx->nlocal; i++)
		free(tx->local[i]);
	free(tx->local);
	for (i = 0; i < tx->nremote; i++)
		free(tx->remote[i]);
	free(tx->remote);
	if (tx->spool_fd != -1)
		close(tx->spool_fd);
	free(tx->spool_mem);
	free(tx->extra);
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
	s->tx = NULL;
	smtp_tx_free(tx);
}

/* Add addr to a deduplicated list (case-insensitive). */
static void
smtp_tx_list_add(char ***v, size_t *n, const char *addr)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if (strcasecmp((*v)[i], addr) == 0)
			return;
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
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
	tx->sent_base = -1;
	snprintf(tx->msgid, sizeof(tx->msgid), "%016llx",
	    (unsigned long long)util_unique_id64());
	tx->mail_from = p.addr;
	p.addr = NULL;
	tx->smtputf8 = p.smtputf8;
	tx->body8bit = p.body == SMTP_BODY_8BITMIME;
	tx->declared_size = p.has_size ? p.size : 0;
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
	/* One snapshot for the lookups of this RCPT (domain, aliases,
	 * users, quota). */
	if (store_read_begin(srv->store, &snap) != 0 ||
	    store_resolve(srv->store, p.addr, srv->cfg->server.postmaster,
	    &kind, &local, &nlocal, &remote, &nremote) != 0) {
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
		if (mx) {
			smtp_reply(s, "550 5.7.1 <%s>: Relay access denied",
			    p.addr);
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
		smtp_tx_list_add(&tx->remote, &tx->nremote, p.addr);
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
			smtp_tx_list_add(&tx->local, &tx->nlocal, local[i]);
		/* An alias may forward outside: queued like submission. */
		for (i = 0; i < nremote; i++)
			smtp_tx_list_add(&tx->remote, &tx->nremote, remote[i]);
		break;
	}
	tx->nrcpt++;
	if (tx->first_rcpt == NULL)
		tx->first_rcpt = xstrdup(p.addr);
	result = "ok";
	smtp_session_enter(s, SMTP_ST_RCPT);
	smtp_reply(s, "250 2.1.5 Ok");
out:
	store_read_end(srv->store, snap);
	log_info("event=smtp.rcpt sid=%s msgid=%s to=%s result=%s "
	    "local=%zu remote=%zu", s->sid, tx->msgid, esc, result, nlocal,
	    nremote);
	store_rcpt_free_list(local, nlocal);
	store_rcpt_free_list(remote, nremote);
	smtp_path_clear(&p);
}

/* Every message starts in memory: a small one never touches a file. */
static bool
smtp_tx_open_spool(struct smtp_session *s)
{
	s->tx->spool_in_mem = true;
	return true;
}

/* Write all of buf to fd; false (errno set) on failure. */
static bool
smtp_tx_write_fd(int fd, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return false;
		}
		p += n;
		len -= (size_t)n;
	}
	return true;
}

/*
 * Move the in-memory bytes to a disk spool: the message outgrew memory.
 * False (reply left to the caller) on failure.
 */
static bool
smtp_tx_spool_to_file(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	size_t len = tx->spool_in_mem ? (size_t)tx->size : 0;
	int fd;

	if (!tx->spool_in_mem)
		return tx->spool_fd != -1;
	fd = delivery_spool_open(s->lst->srv->spool_dir);
	if (fd == -1 || !smtp_tx_write_fd(fd, tx->spool_mem, len)) {
		log_error("event=smtp.spool sid=%s error=\"%s\"", s->sid,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		return false;
	}
	tx->spool_fd = fd;
	tx->spool_in_mem = false;
	free(tx->spool_mem);
	tx->spool_mem = NULL;
	tx->spool_cap = 0;
	return true;
}

void
smtp_cmd_data(struct smtp_session *s, const char *args)
{
	struct smtp_server *srv = s->lst->srv;
	struct smtp_tx *tx = s->tx;

	if (!smtp_tx_open_spool(s)) {
		smtp_reply(s, "451 4.3.0 Temporary storage failure");
		return;
	}
	smtp_data_init(&tx->parser, true);
	smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	s->mode = SMTP_MODE_DATA;
	conn_set_timeout(s->conn, srv->timeout_data_ms);
}

int
smtp_tx_parse_bdat(const char *args, uint64_t *size_r, bool *last_r)
{
	uint64_t n = 0;
	const char *p = args;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > (UINT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	*last_r = false;
	if (*p == ' ') {
		while (*p == ' ')
			p++;
		if (strcasecmp(p, "LAST") != 0)
			return -1;
		*last_r = true;
	} else if (*p != '\0') {
		return -1;
	}
	*size_r = n;
	return 0;
}

/* The chunk has been read in full. */
static void
smtp_tx_chunk_done(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;

	if (tx->bdat_last) {
		smtp_tx_write(s, smtp_tx_out,
		    smtp_data_finish(&tx->parser, smtp_tx_out));
		smtp_tx_end(s);
		return;
	}
	s->mode = SMTP_MODE_CMD;
	conn_set_timeout(s->conn, s->lst->srv->timeout_cmd_ms);
	if (tx->error == SMTP_TX_ERR_SIZE || tx->error == SMTP_TX_ERR_IO) {
		/* RFC 3030 2: a failed chunk fails the transaction; later
		 * chunks get 503 and are skipped. */
		smtp_tx_end(s);
		return;
	}
	smtp_reply(s, "250 2.0.0 %llu octets received",
	    (unsigned long long)tx->size);
}

void
smtp_cmd_bdat(struct smtp_session *s, const char *args)
{
	struct smtp_server *srv = s->lst->srv;
	struct smtp_tx *tx = s->tx;
	uint64_t size;
	bool last;

	if (smtp_tx_parse_bdat(args, &size, &last) != 0) {
		/* The chunk length is unknown: its bytes would be read as
		 * commands. Hang up instead. */
		smtp_reply(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		smtp_session_close(s, "bad_bdat");
		return;
	}
	if (!tx->bdat) {
		tx->bdat = true;
		smtp_data_init(&tx->parser, false);
		if (!smtp_tx_open_spool(s))
			tx->error = SMTP_TX_ERR_IO;
	}
	tx->bdat_left = size;
	tx->bdat_last = last;
	smtp_session_enter(s, SMTP_ST_BDAT);
	s->mode = SMTP_MODE_BDAT;
	conn_set_timeout(s->conn, srv->timeout_data_ms);
	if (size == 0)
		smtp_tx_chunk_done(s);
}

void
smtp_cmd_bdat_reject(struct smtp_session *s, const char *args)
{
	uint64_t size;
	bool last;

	if (smtp_tx_parse_bdat(args, &size, &last) != 0) {
		smtp_session_close(s, "bad_bdat");
		return;
	}
	/* The reply is out; the chunk must still not be read as commands. */
	s->skip_left = size;
	if (size > 0)
		s->mode = SMTP_MODE_SKIP;
}

/* Decoded message bytes: count, enforce the size, write the spool. */
static void
smtp_tx_write(struct smtp_session *s, const char *buf, size_t len)
{
	struct smtp_tx *tx = s->tx;
	bool ok;

	tx->size += len;
	if (tx->error != SMTP_TX_OK && tx->error != SMTP_TX_ERR_BARE)
		return;
	if (tx->size > s->lst->srv->cfg->smtpd.max_message_size) {
		tx->error = SMTP_TX_ERR_SIZE;
		return;
	}
	if (tx->error == SMTP_TX_ERR_BARE)
		return;	/* rejected at the end anyway: store nothing */
	if (len == 0)
		return;	/* (spool_mem may not exist yet) */
	if (tx->spool_in_mem && tx->size <= DELIVERY_SPOOL_MEM_MAX) {
		size_t have = (size_t)tx->size - len;

		if (tx->size > tx->spool_cap) {
			/* Doubling from 4 KB, never past the limit. */
			size_t cap = tx->spool_cap ? tx->spool_cap : 4096;

			while (cap < tx->size)
				cap *= 2;
			if (cap > DELIVERY_SPOOL_MEM_MAX)
				cap = DELIVERY_SPOOL_MEM_MAX;
			tx->spool_mem = xrealloc(tx->spool_mem, cap);
			tx->spool_cap = cap;
		}
		memcpy(tx->spool_mem + have, buf, len);
		return;
	}
	if (tx->spool_in_mem) {
		/* Too big to keep in memory: move what came so far to a
		 * disk spool (tx->size counts this write already). */
		tx->size -= len;
		ok = smtp_tx_spool_to_file(s);
		tx->size += len;
		if (!ok) {
			tx->error = SMTP_TX_ERR_IO;
			return;
		}
	}
	if (!smtp_tx_write_fd(tx->spool_fd, buf, len)) {
		log_error("event=smtp.spool sid=%s error=\"%s\"", s->sid,
		    strerror(errno));
		tx->error = SMTP_TX_ERR_IO;
	}
}

void
smtp_tx_input(struct smtp_session *s)
{
	struct evbuffer *in = conn_input(s->conn);
	struct smtp_tx *tx = s->tx;
	struct evbuffer_iovec v;
	size_t avail, take, used, olen;

	while (s->mode == SMTP_MODE_DATA || s->mode == SMTP_MODE_BDAT) {
		if (s->mode == SMTP_MODE_BDAT && tx->bdat_left == 0) {
			smtp_tx_chunk_done(s);
			return;
		}
		if ((avail = evbuffer_get_length(in)) == 0)
			return;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			return;
		take = v.iov_len < SMTP_TX_STEP ? v.iov_len : SMTP_TX_STEP;
		if (s->mode == SMTP_MODE_BDAT && take > tx->bdat_left)
			take = (size_t)tx->bdat_left;
		used = smtp_data_feed(&tx->parser, v.iov_base, take,
		    smtp_tx_out, &olen);
		if (tx->parser.bare && tx->error == SMTP_TX_OK)
			tx->error = SMTP_TX_ERR_BARE;
		smtp_tx_write(s, smtp_tx_out, olen);
		evbuffer_drain(in, used);
		if (s->mode == SMTP_MODE_BDAT) {
			tx->bdat_left -= used;
		} else if (smtp_data_is_done(&tx->parser)) {
			smtp_tx_end(s);
			return;
		}
	}
}

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

/* Return-Path and Received (RFC 5321 4.4; RFC 3848/6531 WITH types).
 * Caller frees. */
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
		r = xasprintf("Return-Path: <%s>\r\n"
		    "Received: from %s (%s)\r\n%s%s"
		    "\tby %s (carteiro) with %s id %s\r\n"
		    "\tfor <%s>; %s\r\n", tx->mail_from, helo, ip,
		    tls ? tls : "", auth ? auth : "",
		    smtp_session_hostname(s), proto, tx->msgid,
		    tx->first_rcpt, date);
	else
		r = xasprintf("Return-Path: <%s>\r\n"
		    "Received: from %s (%s)\r\n%s%s"
		    "\tby %s (carteiro) with %s id %s;\r\n"
		    "\t%s\r\n", tx->mail_from, helo, ip,
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
	}
	return "?";
}

/* End of data (or a failed BDAT chunk): exactly one reply, now or from
 * the delivery callback. */
static void
smtp_tx_end(struct smtp_session *s)
{
	struct smtp_server *srv = s->lst->srv;
	struct smtp_tx *tx = s->tx;
	bool sign, check;

	conn_set_timeout(s->conn, srv->timeout_cmd_ms);
	s->mode = SMTP_MODE_CMD;
	smtp_session_set_cmd(s, tx->bdat ? "BDAT" : "DATA", 4);
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
		    "domain=%s", s->sid, tx->msgid, domain ? domain : "-");
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
	if (res->spool_fd != -1) {
		/* Forged Authentication-Results removed: a new spool. */
		if (tx->spool_fd != -1)
			close(tx->spool_fd);
		free(tx->spool_mem);
		tx->spool_mem = NULL;
		tx->spool_cap = 0;
		tx->spool_in_mem = false;
		tx->spool_fd = res->spool_fd;
		res->spool_fd = -1;
		tx->size = res->data_size;
	}
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
		break;
	case DELIVERY_QUOTA:
		smtp_reply(s, "552 5.2.2 Mailbox full: message would exceed "
		    "quota");
		break;
	case DELIVERY_TEMPFAIL:
		smtp_reply(s, "451 4.3.0 Temporary storage failure, try "
		    "again later");
		break;
	}
	smtp_tx_reset(s);
	smtp_session_enter(s, SMTP_ST_READY);
	smtp_session_resume(s);
}
