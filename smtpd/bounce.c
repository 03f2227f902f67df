/*
 * RFC 3464 DSNs: builds the multipart/report text (failed, delayed, and
 * the RFC 3461 success notices relayed and delivered, with ENVID, ORCPT
 * and RET honoured) and hands it to the store (local mailbox or the
 * outbound queue with the null sender). Does not decide when a DSN is
 * owed (relay_flush.c and delivery_writer.c do) and never bounces a
 * bounce: a null-sender message gets no DSN at all.
 */
#include "smtpd/bounce.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/stats.h"
#include "common/util.h"
#include "smtpd/dsn.h"
#include "store/queue.h"
#include "store/store.h"

#define BOUNCE_REPLY_MAX	900		/* keeps lines < 998 octets */

static char *bounce_read_headers(struct store *, int64_t, size_t *);
static char *bounce_read_full(struct store *, int64_t, size_t *, bool *);
static const char *bounce_kind_name(enum bounce_kind);

size_t
bounce_quote_len(const char *buf, size_t len)
{
	const char *end;

	if (buf == NULL)
		return 0;
	if (len > BOUNCE_QUOTE_MAX)
		len = BOUNCE_QUOTE_MAX;
	/* A message without a header section: nothing of it is quoted. */
	if (len >= 2 && buf[0] == '\r' && buf[1] == '\n')
		return 0;
	end = memmem(buf, len, "\r\n\r\n", 4);
	if (end != NULL)
		return (size_t)(end - buf) + 2;
	/* Cut at the last complete line. */
	while (len > 0 && buf[len - 1] != '\n')
		len--;
	return len;
}

const char *
bounce_status(const char *reply, char *buf, size_t size)
{
	const char *p;
	size_t a, b, c;

	if (reply != NULL && strlen(reply) > 4 && (reply[0] == '4' ||
	    reply[0] == '5')) {
		/* "550 5.1.1 text": class, subject, detail (RFC 3463). */
		p = reply + 4;
		a = strspn(p, "0123456789");
		if (a == 1 && p[0] == reply[0] && p[1] == '.') {
			b = strspn(p + 2, "0123456789");
			if (b >= 1 && b <= 3 && p[2 + b] == '.') {
				c = strspn(p + 3 + b, "0123456789");
				if (c >= 1 && c <= 3 && (p[3 + b + c] == ' ' ||
				    p[3 + b + c] == '\0')) {
					snprintf(buf, size, "%.*s",
					    (int)(3 + b + c), p);
					return buf;
				}
			}
		}
	}
	snprintf(buf, size, "%c.0.0", reply != NULL && reply[0] == '4' ? '4' :
	    '5');
	return buf;
}

/* Copy of s for one header/field line: CR/LF and controls become spaces,
 * length capped. */
static void
bounce_add_clean(struct evbuffer *b, const char *s, size_t max)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i < max; i++) {
		unsigned char ch = (unsigned char)s[i];

		evbuffer_add(b, ch < 0x20 || ch == 0x7f ? " " : &s[i], 1);
	}
}

/* Per kind: Subject, the text part's opening, Action, the third part's
 * description. */
static const struct bounce_kind_text {
	const char *subject, *intro, *action, *part;
} bounce_kinds[] = {
	[BOUNCE_FAILED] = { "Undelivered Mail Returned to Sender",
	    "Your message could not be delivered to one or more\r\n"
	    "recipients. It is attached below.\r\n\r\n",
	    "failed", "Undelivered Message" },
	[BOUNCE_DELAYED] = { "Delayed Mail (still being retried)",
	    "Your message could not be delivered yet to one or more\r\n"
	    "recipients. The mail system will keep trying; you do not\r\n"
	    "need to send it again.\r\n\r\n",
	    "delayed", "Delayed Message" },
	[BOUNCE_RELAYED] = { "Successful Mail Delivery Report",
	    "Your message was relayed to the mail server of the\r\n"
	    "recipients below. That server does not offer delivery\r\n"
	    "notifications, so this is the last notice you get.\r\n\r\n",
	    "relayed", "Relayed Message" },
	[BOUNCE_DELIVERED] = { "Successful Mail Delivery Report",
	    "Your message was delivered to the mailbox of the\r\n"
	    "recipients below.\r\n\r\n",
	    "delivered", "Delivered Message" },
};

/* An RFC 3461 xtext value decoded for a DSN field (RFC 3464 2.2.1,
 * 2.3.1); the parser checked it, so a bad one is just left out. */
static void
bounce_add_xtext(struct evbuffer *b, const char *field, const char *type,
    const char *x)
{
	char *t = dsn_xtext_decode(x, strlen(x), 32);

	if (t == NULL)
		return;
	evbuffer_add_printf(b, "%s: %s%s%s\r\n", field, type ? type : "",
	    type ? ";" : "", t);
	free(t);
}

/* Original-Recipient from ORCPT "addr-type;xtext". */
static void
bounce_add_orcpt(struct evbuffer *b, const char *orcpt)
{
	const char *semi = strchr(orcpt, ';');
	char type[64];

	if (semi == NULL || (size_t)(semi - orcpt) >= sizeof(type))
		return;
	snprintf(type, sizeof(type), "%.*s", (int)(semi - orcpt), orcpt);
	bounce_add_xtext(b, "Original-Recipient", type, semi + 1);
}

char *
bounce_build(const struct bounce_info *bi, size_t *len_r)
{
	struct evbuffer *b = evbuffer_new();
	const struct bounce_kind_text *kt = &bounce_kinds[bi->kind];
	char date[64], boundary[64], st[16];
	bool failed = bi->kind == BOUNCE_FAILED;
	bool success = bi->kind == BOUNCE_RELAYED ||
	    bi->kind == BOUNCE_DELIVERED;
	bool full = failed && bi->full != NULL;
	size_t i, len;
	char *out;

	snprintf(boundary, sizeof(boundary), "%016" PRIx64 "/%s",
	    util_random64(), bi->hostname);
	util_rfc5322_date(date, sizeof(date), util_time());
	evbuffer_add_printf(b,
	    "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
	    "To: <%s>\r\n"
	    "Subject: %s\r\n"
	    "Date: %s\r\n"
	    "Message-ID: <dsn.%" PRId64 ".%016" PRIx64 "@%s>\r\n"
	    "Auto-Submitted: auto-replied\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	    "\tboundary=\"%s\"\r\n"
	    "\r\n"
	    "This is a MIME-encapsulated message.\r\n"
	    "\r\n"
	    "--%s\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Description: Notification\r\n"
	    "\r\n"
	    "This is the mail system at host %s.\r\n"
	    "\r\n",
	    bi->hostname, bi->mail_from, kt->subject,
	    date, bi->queue_id, util_random64(), bi->hostname, boundary,
	    boundary, bi->hostname);
	evbuffer_add_printf(b, "%s", kt->intro);
	if (failed && bi->full_cut)
		evbuffer_add_printf(b,
		    "The message was too large to return in full; its\r\n"
		    "headers are attached instead.\r\n\r\n");
	for (i = 0; i < bi->nrcpts; i++) {
		const struct bounce_rcpt *r = &bi->rcpts[i];

		evbuffer_add_printf(b, "<%s>: ", r->address);
		if (bi->kind == BOUNCE_DELIVERED && r->reply == NULL) {
			evbuffer_add_printf(b, "delivered to mailbox\r\n\r\n");
			continue;
		}
		if (r->remote_mta != NULL)
			evbuffer_add_printf(b, "host %s said: ", r->remote_mta);
		bounce_add_clean(b, r->reply ? r->reply : "unknown error",
		    BOUNCE_REPLY_MAX);
		evbuffer_add_printf(b, "\r\n\r\n");
	}

	util_rfc5322_date(date, sizeof(date), bi->arrival);
	evbuffer_add_printf(b,
	    "--%s\r\n"
	    "Content-Type: message/%sdelivery-status\r\n"
	    "Content-Description: Delivery report\r\n"
	    "\r\n",
	    boundary, bi->utf8 ? "global-" : "");
	/* RFC 3464 2.2: Original-Envelope-Id comes first. */
	if (bi->envid != NULL)
		bounce_add_xtext(b, "Original-Envelope-Id", NULL, bi->envid);
	evbuffer_add_printf(b, "Reporting-MTA: dns; %s\r\n", bi->hostname);
	if (bi->queue_id > 0)
		evbuffer_add_printf(b, "X-Carteiro-Queue-ID: %" PRId64 "\r\n",
		    bi->queue_id);
	evbuffer_add_printf(b, "Arrival-Date: %s\r\n", date);
	util_rfc5322_date(date, sizeof(date), util_time());
	for (i = 0; i < bi->nrcpts; i++) {
		const struct bounce_rcpt *r = &bi->rcpts[i];

		if (success) {
			snprintf(st, sizeof(st), "2.0.0");
		} else {
			bounce_status(r->reply, st, sizeof(st));
			/* A delay is transient whatever the last reply
			 * said. */
			st[0] = failed ? '5' : '4';
		}
		evbuffer_add_printf(b, "\r\n");
		/* RFC 3464 2.3: Original-Recipient before Final-. */
		if (r->orcpt != NULL)
			bounce_add_orcpt(b, r->orcpt);
		evbuffer_add_printf(b,
		    "Final-Recipient: rfc822; %s\r\n"
		    "Action: %s\r\n"
		    "Status: %s\r\n",
		    r->address, kt->action, st);
		if (r->remote_mta != NULL) {
			/* "host[ip]" -> the host name for the dns type. */
			len = strcspn(r->remote_mta, "[");
			evbuffer_add_printf(b, "Remote-MTA: dns; %.*s\r\n",
			    (int)len, r->remote_mta);
		}
		if (r->reply != NULL) {
			evbuffer_add_printf(b, "Diagnostic-Code: smtp; ");
			bounce_add_clean(b, r->reply, BOUNCE_REPLY_MAX);
			evbuffer_add_printf(b, "\r\n");
		}
		evbuffer_add_printf(b, "Last-Attempt-Date: %s\r\n", date);
		if (bi->kind == BOUNCE_DELAYED && bi->retry_until > 0) {
			char until[64];

			util_rfc5322_date(until, sizeof(until),
			    bi->retry_until);
			evbuffer_add_printf(b, "Will-Retry-Until: %s\r\n",
			    until);
		}
	}
	/* RFC 3461 4.3: RET=FULL returns the message, else its headers. */
	evbuffer_add_printf(b,
	    "\r\n"
	    "--%s\r\n"
	    "Content-Type: %s\r\n"
	    "Content-Description: %s%s\r\n"
	    "\r\n",
	    boundary, full ? (bi->utf8 ? "message/global" : "message/rfc822") :
	    bi->utf8 ? "message/global-headers" : "text/rfc822-headers",
	    kt->part, full ? "" : " Headers");
	if (full) {
		evbuffer_add(b, bi->full, bi->full_len);
		if (bi->full_len < 2 ||
		    memcmp(bi->full + bi->full_len - 2, "\r\n", 2) != 0)
			evbuffer_add(b, "\r\n", 2);
	} else if ((len = bounce_quote_len(bi->headers,
	    bi->headers_len)) > 0) {
		/* Ends at a line end: bounce_quote_len cuts there. */
		evbuffer_add(b, bi->headers, len);
	}
	evbuffer_add_printf(b, "\r\n--%s--\r\n", boundary);

	len = evbuffer_get_length(b);
	out = xmalloc(len + 1);
	evbuffer_remove(b, out, len);
	out[len] = '\0';
	evbuffer_free(b);
	*len_r = len;
	return out;
}

/*
 * The header block of a stored body as bounce_quote_len bounds it.
 * Caller frees; NULL if the body cannot be read (the DSN goes without
 * headers).
 */
static char *
bounce_read_headers(struct store *st, int64_t body_id, size_t *len_r)
{
	struct store_body *sb;
	uint64_t size;
	char *buf;
	ssize_t n;
	size_t have = 0;

	*len_r = 0;
	sb = store_body_open(st, body_id, &size);
	if (sb == NULL)
		return NULL;
	buf = xmalloc(BOUNCE_QUOTE_MAX + 1);
	while (have < BOUNCE_QUOTE_MAX) {
		n = store_body_read(sb, have, buf + have,
		    BOUNCE_QUOTE_MAX - have);
		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = '\0';
		if (memmem(buf, have, "\r\n\r\n", 4) != NULL)
			break;
	}
	store_body_close(sb);
	buf[have] = '\0';
	have = bounce_quote_len(buf, have);
	/* Received: lines we prepended stay: they are the
	 * trace the sender's admin wants to see. */
	*len_r = have;
	return buf;
}

/* RFC 3461 RET=FULL: the whole stored body, or NULL (*cut_r when it is
 * larger than BOUNCE_FULL_MAX, else unreadable). Caller frees. */
static char *
bounce_read_full(struct store *st, int64_t body_id, size_t *len_r,
    bool *cut_r)
{
	struct store_body *sb;
	uint64_t size;
	size_t have = 0;
	ssize_t n;
	char *buf;

	*len_r = 0;
	*cut_r = false;
	sb = store_body_open(st, body_id, &size);
	if (sb == NULL)
		return NULL;
	if (size > BOUNCE_FULL_MAX) {
		store_body_close(sb);
		*cut_r = true;
		return NULL;
	}
	buf = xmalloc((size_t)size + 1);
	while (have < size) {
		n = store_body_read(sb, have, buf + have, (size_t)size - have);
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	store_body_close(sb);
	if (have != size) {
		free(buf);
		return NULL;
	}
	buf[have] = '\0';
	*len_r = have;
	return buf;
}

static const char *
bounce_kind_name(enum bounce_kind kind)
{
	return bounce_kinds[kind].action;
}

int
bounce_send(struct store *st, const char *hostname, const char *postmaster,
    const struct store_queue_msg *m, enum bounce_kind kind, int64_t retry_until,
    const struct bounce_rcpt *rcpts, size_t n)
{
	struct bounce_info bi;
	struct store_delivery d;
	enum store_rcpt_kind rk;
	char **local = NULL, **remote = NULL, *text, *hdrs, *full = NULL;
	const char *one[1];
	size_t nlocal = 0, nremote = 0, len, hlen;
	int64_t body_id, qid = 0;
	int ret;

	/* RFC 3464 / RFC 5321 6.2: never a DSN for a DSN. */
	if (m->mail_from[0] == '\0' || m->is_bounce || n == 0)
		return 1;
	if (store_resolve(st, m->mail_from, postmaster, &rk, &local, &nlocal,
	    &remote, &nremote) < 0)
		return -1;
	if (rk == STORE_RCPT_NOUSER) {
		log_warn("event=relay.bounce qid=%" PRId64 " from=%s "
		    "result=dropped reason=\"sender is a local address "
		    "without mailbox\"", m->id, LOG_VALUE(m->mail_from));
		ret = 1;
		goto out;
	}
	hdrs = bounce_read_headers(st, m->body_id, &hlen);
	memset(&bi, 0, sizeof(bi));
	/* RET=FULL is honoured for our own authenticated submitters only:
	 * mail taken on the MX listener has a sender nobody verified, and
	 * returning it whole would make us a backscatter amplifier (issue
	 * #11 item 10); it gets at most BOUNCE_QUOTE_MAX of headers. */
	if (kind == BOUNCE_FAILED && m->dsn_ret == DSN_RET_FULL &&
	    m->auth_user != NULL)
		full = bounce_read_full(st, m->body_id, &bi.full_len,
		    &bi.full_cut);
	bi.full = full;
	bi.envid = m->dsn_envid;
	bi.kind = kind;
	bi.hostname = hostname;
	bi.mail_from = m->mail_from;
	bi.queue_id = m->id;
	bi.arrival = m->created;
	bi.retry_until = retry_until;
	bi.rcpts = rcpts;
	bi.nrcpts = n;
	bi.headers = hdrs;
	bi.headers_len = hlen;
	bi.utf8 = m->smtputf8;
	text = bounce_build(&bi, &len);
	free(hdrs);
	free(full);

	memset(&d, 0, sizeof(d));
	d.mail_from = "";
	d.is_bounce = true;
	d.smtputf8 = m->smtputf8;
	if (rk == STORE_RCPT_LOCAL) {
		d.local = (const char *const *)local;
		d.nlocal = nlocal;
		d.remote = (const char *const *)remote;
		d.nremote = nremote;
	} else {
		one[0] = m->mail_from;
		d.remote = one;
		d.nremote = 1;
	}
	/* mail_from "": the mailbox copies show "Return-Path: <>". */
	d.prefix = "";
	d.fd = -1;
	ret = store_deliver_mem(st, &d, text, len, &body_id, &qid);
	free(text);
	if (ret == 0)
		stats_inc(kind == BOUNCE_FAILED ? STATS_DSN_FAILED :
		    STATS_DSN_DELAYED);
	if (ret == 0)
		log_info("event=relay.bounce qid=%" PRId64 " from=%s kind=%s "
		    "rcpts=%zu result=%s dsn_qid=%" PRId64, m->id,
		    LOG_VALUE(m->mail_from), bounce_kind_name(kind),
		    n, rk == STORE_RCPT_LOCAL && nremote == 0 ? "mailbox" :
		    "queued", qid);
out:
	store_rcpt_free_list(local, nlocal);
	store_rcpt_free_list(remote, nremote);
	return ret;
}
