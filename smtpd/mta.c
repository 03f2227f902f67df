/*
 * The relay's SMTP client dialogue: the struct mta settings, the reply
 * reader and the per-state reply table, one handler per reply (EHLO/HELO,
 * STARTTLS, AUTH, MAIL, RCPT with PIPELINING, DATA) and the dot-stuffed
 * body pump. Does not own: host and address choice (mta_route.c), the
 * session's lifetime and results (mta_session.c), the queue (relay.c).
 */
#include "smtpd/mta_internal.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/auth.h"
#include "common/conn.h"
#include "common/log.h"
#include "common/util.h"
#include "mailauth/dns.h"
#include "smtpd/dsn.h"

#define MTA_LINE_MAX	4096		/* reply line limit (RFC: 512) */
#define MTA_CHUNK	(64 * 1024)	/* body read size */
#define MTA_OUT_HIGH	(256 * 1024)	/* stop filling output above this */
#define MTA_OUT_LOWAT	(64 * 1024)

const char *const mta_state_names[MTA_S_COUNT] = {
	"new", "mx", "addr", "connect", "greeting", "ehlo", "helo",
	"starttls", "tls", "auth", "auth-user", "auth-pass", "rset", "mail",
	"rcpt",
	"data", "body", "dot", "quit",
};

typedef void mta_reply_fn(struct mta_session *);

static void mta_read(struct mta_session *);
static void mta_arm_deadline(struct mta_session *);
static void mta_send(struct mta_session *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
static void mta_after_ehlo(struct mta_session *);
static void mta_start_mail(struct mta_session *);
static void mta_send_rcpt(struct mta_session *, size_t);
static void mta_pump(struct mta_session *);
static void mta_ehlo_line(struct mta_session *, const char *);
static void mta_on_greeting(struct mta_session *);
static void mta_on_ehlo(struct mta_session *);
static void mta_on_helo(struct mta_session *);
static void mta_on_starttls(struct mta_session *);
static void mta_on_auth(struct mta_session *);
static void mta_on_auth_user(struct mta_session *);
static void mta_on_auth_pass(struct mta_session *);
static void mta_on_rset(struct mta_session *);
static void mta_on_mail(struct mta_session *);
static void mta_on_rcpt(struct mta_session *);
static void mta_on_data(struct mta_session *);
static void mta_on_dot(struct mta_session *);
static void mta_on_quit(struct mta_session *);

/* Which handler takes a complete reply in each state (NULL: none is
 * expected; a reply there is a protocol error). */
static mta_reply_fn *const mta_reply_table[MTA_S_COUNT] = {
	[MTA_S_GREETING] = mta_on_greeting,
	[MTA_S_EHLO] = mta_on_ehlo,
	[MTA_S_HELO] = mta_on_helo,
	[MTA_S_STARTTLS] = mta_on_starttls,
	[MTA_S_AUTH] = mta_on_auth,
	[MTA_S_AUTH_USER] = mta_on_auth_user,
	[MTA_S_AUTH_PASS] = mta_on_auth_pass,
	[MTA_S_RSET] = mta_on_rset,
	[MTA_S_MAIL] = mta_on_mail,
	[MTA_S_RCPT] = mta_on_rcpt,
	[MTA_S_DATA] = mta_on_data,
	[MTA_S_DOT] = mta_on_dot,
	[MTA_S_QUIT] = mta_on_quit,
};

/* ---- struct mta ---- */

struct mta *
mta_new(const struct mta_params *p)
{
	struct mta *m;
	const char *colon;

	m = xcalloc(1, sizeof(*m));
	m->base = p->base;
	m->dns = p->dns;
	m->tls = p->tls;
	m->sts = p->smarthost == NULL ? p->sts : NULL;
	m->helo = xstrdup(p->helo != NULL ? p->helo : "localhost");
	m->port = p->port ? p->port : 25;
	if (p->smarthost != NULL) {
		colon = strrchr(p->smarthost, ':');
		if (colon != NULL && strchr(colon, ']') == NULL) {
			m->smarthost_host = xstrndup(p->smarthost,
			    (size_t)(colon - p->smarthost));
			m->smarthost_port = (unsigned)strtoul(colon + 1, NULL,
			    10);
		} else {
			m->smarthost_host = xstrdup(p->smarthost);
			m->smarthost_port = 25;
		}
	}
	if (p->auth_user != NULL)
		m->auth_user = xstrdup(p->auth_user);
	if (p->auth_pass != NULL)
		m->auth_pass = xstrdup(p->auth_pass);
	m->connect_timeout_ms = p->connect_timeout_ms > 0 ?
	    p->connect_timeout_ms : 30 * 1000;
	m->greeting_timeout_ms = p->greeting_timeout_ms > 0 ?
	    p->greeting_timeout_ms : 300 * 1000;
	m->reply_timeout_ms = p->reply_timeout_ms > 0 ?
	    p->reply_timeout_ms : 300 * 1000;
	m->data_init_timeout_ms = p->data_init_timeout_ms > 0 ?
	    p->data_init_timeout_ms : 120 * 1000;
	m->block_timeout_ms = p->block_timeout_ms > 0 ?
	    p->block_timeout_ms : 180 * 1000;
	m->data_timeout_ms = p->data_timeout_ms > 0 ?
	    p->data_timeout_ms : 600 * 1000;
	m->max_msgs = p->max_msgs_per_conn > 0 ? p->max_msgs_per_conn : 1;
	m->reuse_ms = p->reuse_time_ms > 0 ? p->reuse_time_ms : 300 * 1000;
	m->idle_max = p->idle_max > 0 ? p->idle_max : 100;
	m->idle_ms = p->idle_ms > 0 ? p->idle_ms : 2000;
	m->tlsrpt = p->tlsrpt;
	return m;
}

void
mta_free(struct mta *m)
{
	if (m == NULL)
		return;
	while (m->sessions != NULL)
		mta_session_free(m->sessions);
	mta_pool_free(m);
	free(m->helo);
	free(m->smarthost_host);
	free(m->auth_user);
	if (m->auth_pass != NULL) {
		util_wipe(m->auth_pass, strlen(m->auth_pass));
		free(m->auth_pass);
	}
	free(m);
}

size_t
mta_session_count(struct mta *m)
{
	return m->nsessions;
}

/* ---- states ---- */

/* STYLE 4: one function enters a state and traces old -> new. The session
 * id ties the line to the relay.* lines of the same session (msgid is gone
 * by the time a session says QUIT). */
void
mta_enter(struct mta_session *s, enum mta_state st)
{
	log_debug("event=relay.state sid=%s from=%s to=%s", s->sid,
	    mta_state_names[s->state], mta_state_names[st]);
	s->state = st;
	if (s->c != NULL && st >= MTA_S_GREETING)
		mta_arm_deadline(s);
}

/* The deadline of the phase we are in (RFC 5321 4.5.3.2), from now. */
static void
mta_arm_deadline(struct mta_session *s)
{
	struct mta *m = s->m;

	switch (s->state) {
	case MTA_S_GREETING:
		s->deadline_ms = m->greeting_timeout_ms;
		break;
	case MTA_S_DATA:
		s->deadline_ms = m->data_init_timeout_ms;
		break;
	case MTA_S_BODY:
		s->deadline_ms = m->block_timeout_ms;
		break;
	case MTA_S_DOT:
		s->deadline_ms = m->data_timeout_ms;
		break;
	default:
		s->deadline_ms = m->reply_timeout_ms;
		break;
	}
	conn_set_deadline(s->c, s->deadline_ms);
}

/* ---- I/O ---- */

static void
mta_send(struct mta_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(conn_output(s->c), fmt, ap);
	va_end(ap);
	conn_write(s->c, "", 0);
}

void
mta_conn_cb(struct conn *c, enum conn_event ev, void *arg)
{
	struct mta_session *s = arg;

	s->depth++;
	switch (ev) {
	case CONN_EV_CONNECTED:
		mta_enter(s, MTA_S_GREETING);
		conn_set_timeout(c, s->m->reply_timeout_ms);
		log_debug("event=relay.connect sid=%s msgid=%s mx=%s",
		    s->sid, s->msg->id, LOG_VALUE(s->label));
		break;
	case CONN_EV_INPUT:
		mta_read(s);
		break;
	case CONN_EV_LOWAT:
		if (s->state == MTA_S_QUIT)
			mta_session_release(s);
		else if (s->state == MTA_S_BODY)
			mta_pump(s);
		break;
	case CONN_EV_TLS_READY:
		s->tls_on = true;
		log_info("event=relay.tls sid=%s msgid=%s mx=%s tls=yes "
		    "version=%s cipher=%s", s->sid, s->msg->id,
		    LOG_VALUE(s->label),
		    conn_tls_version(c) ? conn_tls_version(c) : "?",
		    conn_tls_cipher(c) ? conn_tls_cipher(c) : "?");
		if (!mta_dane_check(s))
			break;
		s->ext = 0;
		s->ext_size = 0;
		mta_enter(s, MTA_S_EHLO);
		mta_send(s, "EHLO %s\r\n", mta_helo(s));
		break;
	case CONN_EV_EOF:
	case CONN_EV_ERROR:
	case CONN_EV_TIMEOUT:
		if (s->state == MTA_S_QUIT) {
			mta_session_release(s);
			break;
		}
		if (ev == CONN_EV_TIMEOUT && conn_deadline_passed(c) &&
		    s->state == MTA_S_BODY)
			mta_host_fail(s, "timeout: a data block not taken "
			    "within %d ms", s->deadline_ms);
		else if (ev == CONN_EV_TIMEOUT && conn_deadline_passed(c))
			mta_host_fail(s, "timeout: no complete %s reply "
			    "within %d ms", mta_state_names[s->state],
			    s->deadline_ms);
		else
			mta_host_fail(s, "%s", ev == CONN_EV_TIMEOUT ?
			    "timeout" : ev == CONN_EV_EOF ?
			    "connection closed" : conn_error(c) ?
			    conn_error(c) : "I/O error");
		break;
	}
	if (--s->depth == 0 && s->dead)
		mta_session_free(s);
}

/* Assemble replies line by line; dispatch each complete one. */
static void
mta_read(struct mta_session *s)
{
	struct conn *c = s->c;
	enum conn_line lr;
	char *line;
	size_t len;
	int code, r;
	bool fresh;

	while (!s->dead && s->c == c) {
		lr = conn_getline(c, MTA_LINE_MAX, &line, &len, NULL);
		if (lr == CONN_LINE_NONE)
			return;
		if (lr == CONN_LINE_TOO_LONG) {
			mta_host_fail(s, "reply line too long");
			return;
		}
		if (s->state == MTA_S_QUIT)
			continue;
		fresh = s->code == 0;	/* the first line of a reply */
		r = mta_reply_line(&s->code, s->reply, sizeof(s->reply),
		    &s->replylen, line, len);
		if (r == MTA_REPLY_MALFORMED) {
			mta_host_fail(s, "malformed reply");
			return;
		}
		if (r == MTA_REPLY_INCONSISTENT) {
			mta_host_fail(s, "inconsistent multi-line reply");
			return;
		}
		/* A reply's lines and bytes are capped; the counts start
		 * again with each reply. */
		if (fresh) {
			s->reply_lines = 0;
			s->reply_bytes = 0;
		}
		s->reply_lines++;
		s->reply_bytes += len + 2;
		if (s->reply_lines > MTA_REPLY_MAX_LINES ||
		    s->reply_bytes > MTA_REPLY_MAX_BYTES) {
			mta_host_fail(s, "451 4.5.0 reply in state %s longer "
			    "than %d lines or %d bytes",
			    mta_state_names[s->state], MTA_REPLY_MAX_LINES,
			    MTA_REPLY_MAX_BYTES);
			return;
		}
		code = r > 0 ? r : s->code;
		if (s->state == MTA_S_EHLO && code / 100 == 2)
			mta_ehlo_line(s, len > 4 ? line + 4 : "");
		if (r == 0)
			continue;
		if (log_enabled(LOG_LVL_DEBUG)) {
			char esc[LOG_ESCAPE_MAX];

			log_debug("event=relay.reply sid=%s state=%s reply=%s",
			    s->sid, mta_state_names[s->state],
			    log_escape(esc, sizeof(esc), s->reply, s->replylen));
		}
		if (mta_reply_table[s->state] == NULL) {
			mta_host_fail(s, "unexpected reply in state %s",
			    mta_state_names[s->state]);
			return;
		}
		/* RFC 5321 3.8: 421 means the server is going away. */
		if (code == 421 && s->state < MTA_S_DOT) {
			mta_host_fail(s, "%s", s->reply);
			return;
		}
		mta_reply_table[s->state](s);
	}
}

static int
mta_code(struct mta_session *s)
{
	return (s->reply[0] - '0') * 100 + (s->reply[1] - '0') * 10 +
	    (s->reply[2] - '0');
}

/* ---- reply handlers ---- */

static void
mta_on_greeting(struct mta_session *s)
{
	if (s->reply[0] != '2') {
		/* 4xx or 5xx greeting: this host won't talk to us now. */
		mta_host_fail(s, "%s", s->reply);
		return;
	}
	mta_enter(s, MTA_S_EHLO);
	mta_send(s, "EHLO %s\r\n", mta_helo(s));
}

static void
mta_ehlo_line(struct mta_session *s, const char *kw)
{
	static const struct {
		const char *name;
		unsigned flag;
	} exts[] = {
		{ "STARTTLS", MTA_EXT_STARTTLS },
		{ "PIPELINING", MTA_EXT_PIPELINING },
		{ "8BITMIME", MTA_EXT_8BITMIME },
		{ "SMTPUTF8", MTA_EXT_SMTPUTF8 },
		{ "DSN", MTA_EXT_DSN },
	};
	size_t i, n;

	n = strcspn(kw, " =");
	for (i = 0; i < nitems(exts); i++)
		if (n == strlen(exts[i].name) &&
		    strncasecmp(kw, exts[i].name, n) == 0)
			s->ext |= exts[i].flag;
	if (n == 4 && strncasecmp(kw, "SIZE", 4) == 0) {
		s->ext |= MTA_EXT_SIZE;
		if (kw[4] == ' ')
			s->ext_size = strtoull(kw + 5, NULL, 10);
	}
	if (n == 4 && strncasecmp(kw, "AUTH", 4) == 0) {
		const char *p = kw + 4;

		while (*p == ' ' || *p == '=') {
			p++;
			n = strcspn(p, " ");
			if (n == 5 && strncasecmp(p, "PLAIN", 5) == 0)
				s->ext |= MTA_EXT_AUTH_PLAIN;
			if (n == 5 && strncasecmp(p, "LOGIN", 5) == 0)
				s->ext |= MTA_EXT_AUTH_LOGIN;
			p += n;
		}
	}
}

static void
mta_on_ehlo(struct mta_session *s)
{
	if (s->reply[0] == '5' && !s->tls_on) {
		/* RFC 5321 3.2: an old server; try HELO. */
		mta_enter(s, MTA_S_HELO);
		mta_send(s, "HELO %s\r\n", mta_helo(s));
		return;
	}
	if (s->reply[0] != '2') {
		mta_host_fail(s, "%s", s->reply);
		return;
	}
	mta_after_ehlo(s);
}

static void
mta_on_helo(struct mta_session *s)
{
	if (s->reply[0] != '2') {
		mta_host_fail(s, "%s", s->reply);
		return;
	}
	s->ext = 0;
	mta_after_ehlo(s);
}

/* Greeted: STARTTLS if we can, then AUTH (smarthost), then MAIL. */
static void
mta_after_ehlo(struct mta_session *s)
{
	struct mta *m = s->m;
	bool smarthost = m->smarthost_host != NULL;

	if (!s->tls_on && (s->ext & MTA_EXT_STARTTLS) && m->tls != NULL &&
	    !s->tls_failed_here) {
		mta_enter(s, MTA_S_STARTTLS);
		mta_send(s, "STARTTLS\r\n");
		return;
	}
	if (!s->tls_on && mta_dane_required(s)) {
		/* RFC 7672 2.2: never in clear to a host with TLSA
		 * (RFC 8460: starttls-not-supported). */
		mta_dane_count(s, "starttls-not-supported");
		mta_host_fail(s, "451 4.7.5 %s has DANE TLSA records but "
		    "STARTTLS %s", s->label, s->tls_failed_here ? "failed" :
		    "is not offered");
		return;
	}
	if (!s->tls_on) {
		log_info("event=relay.tls sid=%s msgid=%s mx=%s tls=no",
		    s->sid, s->msg->id, LOG_VALUE(s->label));
		if (smarthost) {
			mta_host_fail(s, "451 4.7.5 smarthost %s does not "
			    "offer STARTTLS (required)", s->label);
			return;
		}
	} else if (smarthost && !conn_tls_verified(s->c)) {
		/* Neither the password nor the mail goes to a smarthost
		 * that could be anyone on the path. */
		mta_host_fail(s, "451 4.7.5 smarthost %s certificate not "
		    "verified (see [relay] smarthost_ca)", s->label);
		return;
	}
	if (!mta_route_sts_tls(s))
		return;
	if (smarthost && m->auth_user != NULL && !s->authed) {
		size_t ul = strlen(m->auth_user), pl = strlen(m->auth_pass ?
		    m->auth_pass : "");
		unsigned char *raw;
		char *b64;

		if (s->ext & MTA_EXT_AUTH_PLAIN) {
			/* RFC 4616: authzid NUL authcid NUL passwd */
			raw = xmalloc(ul + pl + 2);
			raw[0] = '\0';
			memcpy(raw + 1, m->auth_user, ul);
			raw[ul + 1] = '\0';
			memcpy(raw + ul + 2, m->auth_pass ? m->auth_pass : "",
			    pl);
			b64 = auth_base64_encode(raw, ul + pl + 2);
			mta_enter(s, MTA_S_AUTH);
			mta_send(s, "AUTH PLAIN %s\r\n", b64);
			util_wipe(raw, ul + pl + 2);
			util_wipe(b64, strlen(b64));
			free(raw);
			free(b64);
			return;
		}
		if (s->ext & MTA_EXT_AUTH_LOGIN) {
			mta_enter(s, MTA_S_AUTH_USER);
			mta_send(s, "AUTH LOGIN\r\n");
			return;
		}
		mta_host_fail(s, "451 4.7.0 smarthost %s offers no AUTH "
		    "PLAIN or LOGIN", s->label);
		return;
	}
	mta_start_mail(s);
}

static void
mta_on_starttls(struct mta_session *s)
{
	if (s->reply[0] != '2') {
		/* Opportunistic: go on in clear (smarthost: fail). */
		s->tls_failed_here = true;
		mta_after_ehlo(s);
		return;
	}
	mta_enter(s, MTA_S_TLS);
	if (conn_starttls_client(s->c, s->m->tls,
	    s->hosts[s->host_idx].host) < 0)
		mta_host_fail(s, "cannot start TLS");
}

static void
mta_on_auth(struct mta_session *s)
{
	if (s->reply[0] != '2') {
		mta_host_fail(s, "451 4.7.0 smarthost AUTH failed: %s",
		    s->reply);
		return;
	}
	s->authed = true;
	log_info("event=relay.auth sid=%s msgid=%s mx=%s user=%s result=ok",
	    s->sid, s->msg->id, LOG_VALUE(s->label),
	    LOG_VALUE(s->m->auth_user));
	mta_start_mail(s);
}

static void
mta_send_b64(struct mta_session *s, const char *v)
{
	char *b64 = auth_base64_encode(v, strlen(v));

	mta_send(s, "%s\r\n", b64);
	util_wipe(b64, strlen(b64));
	free(b64);
}

static void
mta_on_auth_user(struct mta_session *s)
{
	if (mta_code(s) != 334) {
		mta_on_auth(s);
		return;
	}
	mta_enter(s, MTA_S_AUTH_PASS);
	mta_send_b64(s, s->m->auth_user);
}

static void
mta_on_auth_pass(struct mta_session *s)
{
	if (mta_code(s) != 334) {
		mta_on_auth(s);
		return;
	}
	mta_enter(s, MTA_S_AUTH);
	mta_send_b64(s, s->m->auth_pass ? s->m->auth_pass : "");
}

/* MAIL FROM (+ every RCPT TO at once with PIPELINING, RFC 2920). */
static void
mta_start_mail(struct mta_session *s)
{
	struct mta_msg *msg = s->msg;
	char buf[600];
	size_t i;

	if ((s->ext & MTA_EXT_SIZE) && s->ext_size > 0 &&
	    msg->size > s->ext_size) {
		snprintf(buf, sizeof(buf), "552 5.3.4 message size %" PRIu64
		    " exceeds the limit of %s (SIZE %" PRIu64 ")", msg->size,
		    s->label, s->ext_size);
		mta_fail_all(s, MTA_PERM, buf, false);
		mta_finish(s);
		return;
	}
	if (msg->smtputf8 && !(s->ext & MTA_EXT_SMTPUTF8)) {
		/* RFC 6531 3.4: no downgrade; the sender must know. */
		snprintf(buf, sizeof(buf), "553 5.6.7 the message needs "
		    "SMTPUTF8 (international addresses or headers) and %s "
		    "does not support it", s->label);
		mta_fail_all(s, MTA_PERM, buf, false);
		mta_finish(s);
		return;
	}
	s->nactive = 0;
	s->naccepted = 0;
	s->cursor = 0;
	for (i = 0; i < msg->nrcpts; i++) {
		s->accepted[i] = false;
		if (msg->rcpts[i].result == MTA_UNSET)
			s->active[s->nactive++] = i;
	}
	if (s->nactive == 0) {
		mta_finish(s);
		return;
	}
	evbuffer_add_printf(conn_output(s->c), "MAIL FROM:<%s>",
	    msg->mail_from);
	if (s->ext & MTA_EXT_SIZE)
		evbuffer_add_printf(conn_output(s->c), " SIZE=%" PRIu64,
		    msg->size);
	if (s->ext & MTA_EXT_8BITMIME)
		evbuffer_add_printf(conn_output(s->c), " BODY=8BITMIME");
	if (msg->smtputf8)
		evbuffer_add_printf(conn_output(s->c), " SMTPUTF8");
	/* RFC 3461 5.2: the DSN parameters go on, as received. */
	if ((s->ext & MTA_EXT_DSN) && dsn_ret_str(msg->dsn_ret) != NULL)
		evbuffer_add_printf(conn_output(s->c), " RET=%s",
		    dsn_ret_str(msg->dsn_ret));
	if ((s->ext & MTA_EXT_DSN) && msg->dsn_envid != NULL)
		evbuffer_add_printf(conn_output(s->c), " ENVID=%s",
		    msg->dsn_envid);
	mta_enter(s, MTA_S_MAIL);
	mta_send(s, "\r\n");
	if (s->ext & MTA_EXT_PIPELINING)
		for (i = 0; i < s->nactive; i++)
			mta_send_rcpt(s, s->active[i]);
}

static void
mta_send_rcpt(struct mta_session *s, size_t i)
{
	const struct mta_rcpt *r = &s->msg->rcpts[i];
	char notify[32];

	evbuffer_add_printf(conn_output(s->c), "RCPT TO:<%s>", r->address);
	if ((s->ext & MTA_EXT_DSN) && r->dsn_notify != 0)
		evbuffer_add_printf(conn_output(s->c), " NOTIFY=%s",
		    dsn_notify_str(r->dsn_notify, notify, sizeof(notify)));
	if ((s->ext & MTA_EXT_DSN) && r->dsn_orcpt != NULL)
		evbuffer_add_printf(conn_output(s->c), " ORCPT=%s",
		    r->dsn_orcpt);
	mta_send(s, "\r\n");
}

/* A reused connection said yes to RSET: the next transaction. Anything
 * else: this connection is no good any more; a fresh one to the same
 * peer (mta_host_fail does that for MTA_S_RSET). */
static void
mta_on_rset(struct mta_session *s)
{
	if (s->reply[0] != '2') {
		mta_host_fail(s, "%s", s->reply);
		return;
	}
	mta_start_mail(s);
}

static void
mta_on_mail(struct mta_session *s)
{
	if (s->reply[0] == '4') {
		/* The issue: 4xx to MAIL tries the next MX. */
		mta_host_fail(s, "%s", s->reply);
		return;
	}
	if (s->reply[0] != '2') {
		mta_fail_all(s, MTA_PERM, s->reply, true);
		mta_finish(s);
		return;
	}
	mta_enter(s, MTA_S_RCPT);
	if (!(s->ext & MTA_EXT_PIPELINING))
		mta_send_rcpt(s, s->active[0]);
}

static void
mta_on_rcpt(struct mta_session *s)
{
	size_t i = s->active[s->cursor++];

	if (s->reply[0] == '2') {
		s->accepted[i] = true;
		s->naccepted++;
	} else
		mta_rcpt_final(s, i, s->reply[0] == '4' ? MTA_TEMP : MTA_PERM,
		    s->reply, true);
	if (s->cursor < s->nactive) {
		mta_arm_deadline(s);	/* the next RCPT's reply */
		if (!(s->ext & MTA_EXT_PIPELINING))
			mta_send_rcpt(s, s->active[s->cursor]);
		return;
	}
	if (s->naccepted == 0) {
		mta_finish(s);
		return;
	}
	mta_enter(s, MTA_S_DATA);
	mta_send(s, "DATA\r\n");
}

/* Result for every recipient the server accepted at RCPT. */
static void
mta_accepted_final(struct mta_session *s, enum mta_result res)
{
	size_t i;

	for (i = 0; i < s->msg->nrcpts; i++)
		if (s->accepted[i])
			mta_rcpt_final(s, i, res, s->reply, true);
}

static void
mta_on_data(struct mta_session *s)
{
	if (mta_code(s) != 354) {
		mta_accepted_final(s, s->reply[0] == '5' ? MTA_PERM : MTA_TEMP);
		mta_finish(s);
		return;
	}
	mta_enter(s, MTA_S_BODY);
	s->off = 0;
	s->stuff = 0;
	if (s->inbuf == NULL) {
		s->inbuf = xmalloc(MTA_CHUNK);
		s->outbuf = xmalloc(2 * MTA_CHUNK + 8);
	}
	conn_set_lowat(s->c, MTA_OUT_LOWAT);
	mta_pump(s);
}

/* Fill the output up to MTA_OUT_HIGH; LOWAT calls us again. */
static void
mta_pump(struct mta_session *s)
{
	struct mta_msg *msg = s->msg;
	ssize_t n;
	size_t o;

	/* Called at the start and whenever a block has drained. */
	mta_arm_deadline(s);
	while (conn_output_len(s->c) < MTA_OUT_HIGH) {
		n = msg->read(msg->read_arg, s->off, s->inbuf, MTA_CHUNK);
		if (n < 0) {
			/* Can't finish the DATA cleanly: drop the line so
			 * the server discards the partial message. */
			mta_set_error(s, "451 4.3.0 local error reading the "
			    "queued message");
			mta_close_conn(s);
			mta_finish(s);
			return;
		}
		if (n == 0) {
			o = mta_stuff_end(&s->stuff, s->outbuf);
			conn_write(s->c, s->outbuf, o);
			mta_enter(s, MTA_S_DOT);
			conn_set_timeout(s->c, s->m->data_timeout_ms);
			return;
		}
		s->off += (uint64_t)n;
		o = mta_stuff(&s->stuff, s->inbuf, (size_t)n, s->outbuf);
		conn_write(s->c, s->outbuf, o);
	}
}

static void
mta_on_dot(struct mta_session *s)
{
	enum mta_result res;

	res = s->reply[0] == '2' ? MTA_OK : s->reply[0] == '5' ? MTA_PERM :
	    MTA_TEMP;
	mta_accepted_final(s, res);
	mta_finish(s);
}

static void
mta_on_quit(struct mta_session *s)
{
}
