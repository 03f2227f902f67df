/*
 * One SMTP connection: accept-time limits (max_clients, per IP) and the
 * DNSBL check before the greeting, the conn callback, the input loop that
 * checks the input mode before any verb lookup, the single reply function,
 * closing and the SIGTERM drain. Verbs live in commands.c, sasl.c and
 * tx.c; the transaction in tx.c.
 */
#include "smtpd/smtpd.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "common/auth.h"
#include "common/clientkey.h"
#include "common/config.h"
#include "common/conn.h"
#include "common/ipcount.h"
#include "common/log.h"
#include "common/stats.h"
#include "common/util.h"
#include "mailauth/dnsbl.h"

/*
 * Connect-rate accounting ([smtpd] max_connect_rate_per_ip): one slot per
 * hash of the client key (IPv4 address, IPv6 /64), a one-minute window
 * each. Fixed size, so a flood of distinct addresses costs no memory; two
 * clients sharing a slot reset each other's window, which errs on the side
 * of accepting.
 */
#define SMTP_RATE_SLOTS		4096
#define SMTP_RATE_WINDOW_MS	60000

struct smtp_rate {
	struct client_key key;
	uint64_t window_start;
	unsigned count;
};

static void smtp_session_io(struct conn *c, enum conn_event ev, void *arg);
static void smtp_session_input(struct smtp_session *s);
static void smtp_session_greet(struct smtp_session *s);
static bool smtp_session_check_exempt(struct smtp_session *s);
static bool smtp_session_is_trusted(struct smtp_session *s);
static void smtp_session_greet_hold_done(struct smtp_session *s);
static void smtp_session_greet_timer(evutil_socket_t fd, short what,
    void *arg);
static bool smtp_session_rate_exceeded(struct smtp_server *srv,
    const struct client_key *k);
static void smtp_session_dnsbl_done(const char *zone, const char *reason,
    void *arg);
static void smtp_session_free(struct smtp_session *s, const char *reason);
static void smtp_session_tls_ready(struct smtp_session *s);
static void smtp_session_skip(struct smtp_session *s);
static void smtp_session_unpause(struct smtp_session *s);

static const char *const smtp_listener_names[SMTP_LST_COUNT] = {
	"mx", "submission", "submissions",
};

/* /metrics: sessions by listener (common/stats.h). */
static const enum stats_id smtp_listener_stats[SMTP_LST_COUNT] = {
	[SMTP_LST_MX] = STATS_SMTP_CONN_MX,
	[SMTP_LST_SUBMISSION] = STATS_SMTP_CONN_SUBMISSION,
	[SMTP_LST_SUBMISSIONS] = STATS_SMTP_CONN_SUBMISSIONS,
};

static const char *const smtp_state_names[SMTP_ST_COUNT] = {
	"init", "ready", "mail", "rcpt", "bdat",
};

static bool
smtp_session_rate_exceeded(struct smtp_server *srv,
    const struct client_key *k)
{
	unsigned limit = srv->cfg->smtpd.max_connect_rate_per_ip;
	struct smtp_rate *r;
	uint64_t now = util_now_ms();

	if (limit == 0)
		return false;
	if (srv->rates == NULL)
		srv->rates = xcalloc(SMTP_RATE_SLOTS, sizeof(*srv->rates));
	r = &srv->rates[client_key_hash(k) % SMTP_RATE_SLOTS];
	if (!client_key_equal(&r->key, k) ||
	    now - r->window_start >= SMTP_RATE_WINDOW_MS) {
		r->key = *k;
		r->window_start = now;
		r->count = 0;
	}
	return ++r->count > limit;
}

void
smtp_session_accept(struct smtp_listener *lst, int fd,
    const struct sockaddr *sa, socklen_t salen)
{
	struct smtp_server *srv = lst->srv;
	const struct cfg *cfg = srv->cfg;
	struct smtp_session *s;
	const char *ip;
	bool full, trusted;

	s = xcalloc(1, sizeof(*s));
	s->lst = lst;
	s->start_ms = util_now_ms();
	util_session_id(s->sid);
	s->conn = sa != NULL ?
	    conn_new_peer(srv->base, fd, sa, salen, smtp_session_io, s) :
	    conn_new(srv->base, fd, smtp_session_io, s);
	ip = conn_peer_ip(s->conn);
	client_key_from_sockaddr(&s->key, conn_peer_addr(s->conn, NULL));
	sasl_init(&s->sasl, srv->base, srv->auth);
	s->exempt = smtp_session_check_exempt(s);
	trusted = smtp_session_is_trusted(s);
	/* Counted against the limits before this session joins them.
	 * max_clients protects our fds and holds for everyone; the
	 * per-client limits do not hold for trusted_networks. */
	full = srv->nsessions >= cfg->smtpd.max_clients;
	s->ipc = ipcount_ref(srv->ipcount, &s->key);
	if (!full && !trusted &&
	    ipcount_n(s->ipc) > cfg->smtpd.max_clients_per_ip)
		full = true;
	if (!full && !trusted && smtp_session_rate_exceeded(srv, &s->key))
		full = true;
	TAILQ_INSERT_TAIL(&srv->sessions, s, entry);
	srv->nsessions++;
	conn_set_timeout(s->conn, srv->timeout_cmd_ms);
	log_info("event=smtp.connect sid=%s ip=%s listener=%s%s", s->sid, ip,
	    smtp_listener_names[lst->kind], full ? " result=refused" : "");
	stats_inc(full ? STATS_SMTP_CONN_REFUSED :
	    smtp_listener_stats[lst->kind]);
	if (full && lst->kind == SMTP_LST_SUBMISSIONS) {
		/* Implicit TLS: the client's first read expects a
		 * ServerHello, and a cleartext 421 shows up as "wrong version
		 * number". Close instead; a refused client costs no
		 * handshake. */
		smtp_session_free(s, "too_many_connections");
		return;
	}
	if (full) {
		s->greeted = true;
		smtp_reply(s, "421 4.7.0 %s Error: too many connections, "
		    "try again later", smtp_session_hostname(s));
		smtp_session_close(s, "too_many_connections");
		return;
	}
	smtp_deadline_start(s);
	if (lst->kind == SMTP_LST_SUBMISSIONS) {
		/* Implicit TLS (RFC 8314): greet after the handshake. */
		smtp_session_wait(s);
		if (srv->tls == NULL || conn_starttls(s->conn, srv->tls) != 0) {
			log_warn("event=smtp.tls sid=%s result=fail "
			    "error=\"%s\"", s->sid, srv->tls ?
			    conn_error(s->conn) :
			    "no_tls_configured");
			smtp_session_free(s, "tls_error");
		}
		return;
	}
	if (lst->kind == SMTP_LST_MX && !s->exempt &&
	    ((srv->dns != NULL && cfg->smtpd.dnsbl.n > 0) ||
	    (cfg->smtpd.greet_pause > 0 && !trusted))) {
		/* The greeting waits for the DNSBL verdict (RFC 5782) and
		 * the greet pause (not for trusted_networks: our own
		 * applications are no spam engines); a client that talks
		 * meanwhile is an early talker. */
		smtp_session_wait(s);
		if (cfg->smtpd.greet_pause > 0 && !trusted) {
			struct timeval tv = { (time_t)cfg->smtpd.greet_pause,
			    0 };
			s->greet_timer = evtimer_new(srv->base,
			    smtp_session_greet_timer, s);
			evtimer_add(s->greet_timer, &tv);
			s->greet_holds++;
		}
		if (srv->dns != NULL && cfg->smtpd.dnsbl.n > 0) {
			s->greet_holds++;
			s->dnsbl = dnsbl_check_start(srv->base, srv->dns,
			    &cfg->smtpd.dnsbl, ip, smtp_session_dnsbl_done, s);
		}
		return;
	}
	smtp_session_greet(s);
}

static void
smtp_session_greet_timer(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	(void)fd;
	(void)what;
	smtp_session_greet_hold_done(s);
}

/* One of the things holding the greeting back finished. */
static void
smtp_session_greet_hold_done(struct smtp_session *s)
{
	if (--s->greet_holds > 0)
		return;
	if (evbuffer_get_length(conn_input(s->conn)) > 0) {
		/* RFC 5321 3.1: the client waits for the greeting. One that
		 * talks first is a spam engine (Postfix postscreen's pregreet
		 * test). */
		log_info("event=smtp.pregreet sid=%s ip=%s", s->sid,
		    conn_peer_ip(s->conn));
		s->greeted = true;
		smtp_session_set_cmd(s, "(pregreet)", 10);
		smtp_reply(s, "554 5.5.1 Error: SMTP protocol synchronization");
		smtp_session_close(s, "pregreet");
		return;
	}
	smtp_session_greet(s);
	smtp_session_resume(s);
}

/* [smtpd] inbound_checks_exempt: networks that skip DNSBL/SPF/...
 * Decided once per connection (smtp_session_accept). */
static bool
smtp_session_check_exempt(struct smtp_session *s)
{
	const struct sockaddr *sa = conn_peer_addr(s->conn, NULL);

	return sa != NULL && cfg_cidrlist_match(
	    &s->lst->srv->cfg->smtpd.inbound_checks_exempt, sa);
}

/* [smtpd] trusted_networks: exempt from the per-client limits and the
 * greet pause (smtp_session_accept). */
static bool
smtp_session_is_trusted(struct smtp_session *s)
{
	const struct sockaddr *sa = conn_peer_addr(s->conn, NULL);

	return sa != NULL && cfg_cidrlist_match(
	    &s->lst->srv->cfg->smtpd.trusted_networks, sa);
}

static void
smtp_session_dnsbl_done(const char *zone, const char *reason, void *arg)
{
	struct smtp_session *s = arg;
	char esc[LOG_ESCAPE_MAX], text[201], *p;

	s->dnsbl = NULL;	/* freed by dnsbl.c after this call */
	if (zone == NULL) {
		smtp_session_greet_hold_done(s);
		return;
	}
	if (s->greet_timer != NULL)
		evtimer_del(s->greet_timer);
	reason = reason != NULL ? reason : "listed";
	stats_inc(STATS_SMTP_DNSBL_LISTED);
	/* The zone comes from our config; the reason from the DNS. */
	log_info("event=smtp.dnsbl sid=%s ip=%s result=listed zone=%s "
	    "reason=%s", s->sid, conn_peer_ip(s->conn), zone,
	    log_escape(esc, sizeof(esc), reason, strlen(reason)));
	/* TXT text goes into our reply line: printable ASCII only. */
	util_strlcpy(text, reason, sizeof(text));
	for (p = text; *p != '\0'; p++)
		if ((unsigned char)*p < 32 || (unsigned char)*p > 126)
			*p = '?';
	s->greeted = true;
	smtp_session_set_cmd(s, "(connect)", 9);
	smtp_reply(s, "554 5.7.1 Service unavailable; client [%s] blocked "
	    "using %s; %s", conn_peer_ip(s->conn), zone, text);
	smtp_session_close(s, "dnsbl");
}

static void
smtp_session_greet(struct smtp_session *s)
{
	s->greeted = true;
	smtp_reply(s, "220 %s ESMTP carteiro", smtp_session_hostname(s));
	smtp_deadline_line(s);
}

const char *
smtp_session_hostname(const struct smtp_session *s)
{
	return s->lst->srv->cfg->server.hostname;
}

bool
smtp_session_is_submission(const struct smtp_session *s)
{
	return s->lst->kind != SMTP_LST_MX;
}

void
smtp_session_enter(struct smtp_session *s, enum smtp_state st)
{
	if (s->state != st)
		log_debug("event=smtp.state sid=%s from=%s to=%s", s->sid,
		    smtp_state_names[s->state], smtp_state_names[st]);
	s->state = (uint8_t)st;
}

void
smtp_session_wait(struct smtp_session *s)
{
	/* Not conn_pause_read: see smtp_session_unpause. Input that
	 * arrives meanwhile is buffered, and bounded in smtp_session_input. */
	s->mode = SMTP_MODE_WAIT;
	smtp_deadline_clear(s);
}

/*
 * Undo conn_pause_read. conn_resume_read() with input still buffered calls
 * event_active() on the read event before event_add(), and libevent then
 * never inserts the event: the session would stall (conn.c bug, reported).
 * So resume with an empty buffer and process what was buffered ourselves.
 */
static void
smtp_session_unpause(struct smtp_session *s)
{
	struct evbuffer *in = conn_input(s->conn), *tmp;

	if (!s->paused)
		return;
	s->paused = false;
	if (evbuffer_get_length(in) == 0) {
		conn_resume_read(s->conn);
		return;
	}
	if ((tmp = evbuffer_new()) == NULL)
		log_fatal("event=oom where=smtp_session_unpause");
	evbuffer_add_buffer(tmp, in);
	conn_resume_read(s->conn);
	evbuffer_prepend_buffer(in, tmp);
	evbuffer_free(tmp);
}

void
smtp_session_resume(struct smtp_session *s)
{
	struct smtp_server *srv = s->lst->srv;

	s->mode = SMTP_MODE_CMD;
	if (conn_is_closing(s->conn))
		return;
	if (s->errors >= SMTP_MAX_ERRORS) {
		smtp_reply(s, "421 4.7.0 %s Error: too many errors",
		    smtp_session_hostname(s));
		smtp_session_close(s, "too_many_errors");
		return;
	}
	if (srv->stopping) {
		smtp_reply(s, "421 4.3.2 %s Service shutting down",
		    smtp_session_hostname(s));
		smtp_session_close(s, "shutdown");
		return;
	}
	if (smtp_deadline_expired(s))
		return;
	smtp_session_unpause(s);
	/* Input already buffered gets no new event: process it now. */
	smtp_session_input(s);
	if (s->peer_eof && !conn_is_closing(s->conn) &&
	    s->mode != SMTP_MODE_WAIT) {
		/* The conn reports nothing after EOF: the client's last
		 * commands are answered, then we close. */
		smtp_session_close(s, "eof");
	}
}

void
smtp_session_set_cmd(struct smtp_session *s, const char *line, size_t len)
{
	size_t n = len;
	const char *sp;

	/* Never log AUTH data: keep "AUTH <mechanism>" only. */
	if (len >= 4 && strncasecmp(line, "AUTH", 4) == 0 &&
	    (len == 4 || line[4] == ' ')) {
		sp = len > 5 ? memchr(line + 5, ' ', len - 5) : NULL;
		if (sp != NULL)
			n = (size_t)(sp - line);
	}
	/* log_escape shows no more than the first 200 bytes anyway. */
	if (n > sizeof(s->cur_cmd))
		n = sizeof(s->cur_cmd);
	memcpy(s->cur_cmd, line, n);
	s->cur_cmd_len = (uint8_t)n;
}

void
smtp_reply(struct smtp_session *s, const char *fmt, ...)
{
	char buf[1024], esc[LOG_ESCAPE_MAX], cmd[LOG_ESCAPE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(buf) - 3)
		n = (int)(sizeof(buf) - 3);
	buf[n] = '\r';
	buf[n + 1] = '\n';
	conn_write(s->conn, buf, (size_t)n + 2);
	buf[n] = '\0';
	if (buf[0] >= '4') {
		char code[4] = { buf[0], buf[1], buf[2], '\0' };

		stats_inc_word(STATS_SMTP_REPLY_421, STATS_SMTP_REPLY_OTHER,
		    code);
		/* STYLE 7: every failed command logs itself and our reply. */
		log_info("event=smtp.cmd sid=%s result=fail cmd=%s reply=%s",
		    s->sid, s->cur_cmd_len > 0 ? log_escape(cmd, sizeof(cmd),
		    s->cur_cmd, s->cur_cmd_len) : "\"\"",
		    log_escape(esc, sizeof(esc), buf, (size_t)n));
		/* Syntax and sequence errors (and failed AUTH) count toward
		 * the hang-up limit; policy refusals do not. */
		if (strncmp(buf, "50", 2) == 0 ||
		    strncmp(buf, "555", 3) == 0 || strncmp(buf, "535", 3) == 0)
			s->errors++;
	}
}

void
smtp_session_close(struct smtp_session *s, const char *reason)
{
	if (s->close_reason == NULL)
		s->close_reason = reason;
	conn_close_after_flush(s->conn);
}

static void
smtp_session_free(struct smtp_session *s, const char *reason)
{
	struct smtp_server *srv = s->lst->srv;

	if (s->close_reason != NULL)
		reason = s->close_reason;
	log_info("event=smtp.disconnect sid=%s ip=%s reason=%s "
	    "duration_ms=%llu bytes_in=%zu bytes_out=%zu", s->sid,
	    conn_peer_ip(s->conn), reason,
	    (unsigned long long)(util_now_ms() - s->start_ms),
	    conn_bytes_in(s->conn), conn_bytes_out(s->conn));
	smtp_rcpt_cancel(s);
	smtp_tx_reset(s);
	sasl_clear(&s->sasl);
	dnsbl_check_cancel(s->dnsbl);
	if (s->greet_timer != NULL)
		event_free(s->greet_timer);
	smtp_deadline_stop(s);
	conn_free(s->conn);
	free(s->helo);
	free(s->auth_user);
	ipcount_unref(srv->ipcount, s->ipc);
	TAILQ_REMOVE(&srv->sessions, s, entry);
	srv->nsessions--;
	free(s);
	if (srv->stopping && srv->nsessions == 0 && srv->on_drained != NULL)
		srv->on_drained(srv);
}

static void
smtp_session_io(struct conn *c, enum conn_event ev, void *arg)
{
	struct smtp_session *s = arg;

	switch (ev) {
	case CONN_EV_INPUT:
		smtp_session_input(s);
		break;
	case CONN_EV_LOWAT:
		if (conn_is_closing(c)) {
			smtp_session_free(s, "close");
		} else if (s->out_blocked) {
			s->out_blocked = false;
			if (s->mode != SMTP_MODE_WAIT) {
				smtp_session_unpause(s);
				smtp_session_input(s);
			}
		}
		break;
	case CONN_EV_TLS_READY:
		smtp_session_tls_ready(s);
		break;
	case CONN_EV_EOF:
		if (s->mode == SMTP_MODE_WAIT && !conn_is_closing(c) &&
		    s->tx != NULL && s->tx->token != 0) {
			/* A commit is pending: the client still gets its
			 * reply (it may have half-closed after QUIT). */
			s->peer_eof = true;
			break;
		}
		smtp_session_free(s, s->mode == SMTP_MODE_DATA ||
		    s->mode == SMTP_MODE_BDAT ? "eof_in_data" : "eof");
		break;
	case CONN_EV_ERROR: {
		/* The reason words are conn's, the same in pop3d. */
		const char *reason = conn_error_reason(c);

		log_info("event=%s sid=%s ip=%s result=fail reason=%s error=%s",
		    strcmp(reason, "tls_handshake") == 0 ? "smtp.tls" :
		    "smtp.io", s->sid, conn_peer_ip(c), reason,
		    LOG_VALUE(conn_error(c)));
		smtp_session_free(s, reason);
		break;
	}
	case CONN_EV_CONNECTED:
		break;	/* server side: never */
	case CONN_EV_TIMEOUT:
		if (conn_is_closing(c)) {
			smtp_session_free(s, "timeout");
			break;
		}
		smtp_deadline_timeout(s);
		break;
	}
}

static void
smtp_session_tls_ready(struct smtp_session *s)
{
	log_info("event=smtp.tls sid=%s ip=%s version=%s cipher=%s", s->sid,
	    conn_peer_ip(s->conn), conn_tls_version(s->conn),
	    conn_tls_cipher(s->conn));
	stats_inc_word(STATS_SMTP_TLS_13, STATS_SMTP_TLS_OTHER,
	    conn_tls_version(s->conn));
	if (!s->greeted) {
		smtp_session_greet(s);
	} else {
		/* RFC 3207 4.2: forget everything learnt before TLS. */
		smtp_tx_reset(s);
		free(s->helo);
		s->helo = NULL;
		free(s->auth_user);
		s->auth_user = NULL;
		s->esmtp = false;
		smtp_session_enter(s, SMTP_ST_INIT);
	}
	/* conn.c reports TLS_READY and then calls event_active() on the
	 * read event, which libevent never inserts unless conn_update ran
	 * first (see smtp_session_unpause): a pause/resume cycle does that. */
	conn_pause_read(s->conn);
	s->paused = true;
	smtp_session_resume(s);
}

static void
smtp_session_skip(struct smtp_session *s)
{
	struct evbuffer *in = conn_input(s->conn);
	size_t n = evbuffer_get_length(in);

	if (n > s->skip_left)
		n = (size_t)s->skip_left;
	evbuffer_drain(in, n);
	smtp_deadline_bytes(s, n);
	s->skip_left -= n;
	if (s->skip_left == 0)
		s->mode = SMTP_MODE_CMD;
}

/* Process every complete unit of input already buffered (PIPELINING: the
 * replies of a group go out together when the loop flushes). Never frees
 * the session; closing goes through conn_close_after_flush. */
static void
smtp_session_input(struct smtp_session *s)
{
	enum conn_line r;
	char *line;
	size_t len;
	bool bare;
	uint8_t mode;

	while (!conn_is_closing(s->conn)) {
		if (conn_output_len(s->conn) > SMTP_OUTPUT_MAX) {
			/* A pipelining client that does not read its
			 * replies: stop reading until they drain. */
			if (!s->paused) {
				conn_pause_read(s->conn);
				s->paused = true;
			}
			s->out_blocked = true;
			conn_set_lowat(s->conn, SMTP_OUTPUT_MAX / 4);
			/* The next line's deadline starts when its reply
			 * could be sent; the idle timeout (and
			 * max_session_time) hold a client that never
			 * reads. */
			smtp_deadline_clear(s);
			return;
		}
		if (s->errors >= SMTP_MAX_ERRORS) {
			smtp_reply(s, "421 4.7.0 %s Error: too many errors",
			    smtp_session_hostname(s));
			smtp_session_close(s, "too_many_errors");
			return;
		}
		mode = s->mode;
		switch (mode) {
		case SMTP_MODE_WAIT:
			if (!s->paused && evbuffer_get_length(
			    conn_input(s->conn)) > SMTP_WAIT_BUFFER_MAX) {
				conn_pause_read(s->conn);
				s->paused = true;
			}
			return;
		case SMTP_MODE_DATA:
		case SMTP_MODE_BDAT:
			smtp_deadline_data(s);
			smtp_tx_input(s);
			if (s->mode == mode)
				return;	/* needs more input */
			continue;
		case SMTP_MODE_SKIP:
			smtp_deadline_data(s);
			smtp_session_skip(s);
			if (s->mode == mode)
				return;
			continue;
		case SMTP_MODE_SASL:
		case SMTP_MODE_CMD:
			break;
		}
		r = conn_getline(s->conn, mode == SMTP_MODE_SASL ?
		    SMTP_SASL_LINE_MAX : SMTP_RCPT_LINE_MAX, &line, &len,
		    &bare);
		if (r == CONN_LINE_NONE) {
			/* Counted from the previous reply, not from each
			 * byte of the line. */
			smtp_deadline_line(s);
			return;
		}
		smtp_deadline_line_taken(s);
		if (r == CONN_LINE_TOO_LONG) {
			smtp_session_set_cmd(s, "(line too long)", 15);
			if (mode == SMTP_MODE_SASL) {
				smtp_sasl_free(s);
				s->mode = SMTP_MODE_CMD;
			}
			smtp_reply(s, "500 5.5.2 Error: line too long");
			continue;
		}
		/* line is the conn's (valid until the next conn_getline):
		 * handlers may call other conn_* functions. */
		if (mode == SMTP_MODE_SASL) {
			smtp_session_set_cmd(s, "AUTH (continuation)", 19);
			smtp_sasl_line(s, line, len);
			/* It held a password or its base64. */
			conn_wipe_line(s->conn);
			continue;
		}
		smtp_session_set_cmd(s, line, len);
		if (bare) {
			/* RFC 5321 2.3.8: only CRLF ends a line. */
			smtp_reply(s, "500 5.5.2 Error: bare LF in command "
			    "line not allowed");
		} else if (strlen(line) != len) {
			smtp_reply(s, "500 5.5.2 Error: NUL byte in command "
			    "line");
		} else {
			smtp_cmd_dispatch(s, line, len);
		}
		/* AUTH's initial response held credentials. */
		if (len >= 4 && strncasecmp(line, "AUTH", 4) == 0)
			conn_wipe_line(s->conn);
	}
}

void
smtp_session_shutdown_all(struct smtp_server *srv)
{
	struct smtp_session *s, *next;

	for (s = TAILQ_FIRST(&srv->sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		if (conn_is_closing(s->conn))
			continue;
		if (s->mode == SMTP_MODE_WAIT && s->tx != NULL &&
		    s->tx->token != 0)
			continue;	/* gets its 250, then 421 (resume) */
		if (!s->greeted) {
			smtp_session_free(s, "shutdown");
			continue;
		}
		smtp_session_set_cmd(s, "(shutdown)", 10);
		smtp_reply(s, "421 4.3.2 %s Service shutting down",
		    smtp_session_hostname(s));
		smtp_session_close(s, "shutdown");
	}
}

void
smtp_session_free_all(struct smtp_server *srv)
{
	srv->on_drained = NULL;
	while (!TAILQ_EMPTY(&srv->sessions))
		smtp_session_free(TAILQ_FIRST(&srv->sessions), "shutdown");
}
