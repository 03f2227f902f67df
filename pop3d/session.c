/*
 * One POP3 session: the connection, its state and input mode, the replies
 * and their logs, the asynchronous login (auth pool after the failure
 * penalty, [pop3d] max_auth_failures), the maildrop snapshot (its locks:
 * lock.c), and the long-output driver. The verb table
 * and the handlers live in commands.c; the pure parsers in parse.c.
 */
#include "pop3d/pop3d.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "common/auth.h"
#include "common/clientkey.h"
#include "common/config.h"
#include "common/ipcount.h"
#include "common/log.h"
#include "common/stats.h"
#include "common/sasl.h"
#include "common/util.h"

static void pop3_session_conn_cb(struct conn *, enum conn_event, void *);
static void pop3_session_conn_ev(struct conn *, enum conn_event, void *);
static void pop3_session_input(struct pop3_session *);
static void pop3_session_auth_done(uint64_t, enum auth_result, const char *,
    void *);
static void pop3_session_auth_fail(struct pop3_session *);
static void pop3_session_log_cmd(struct pop3_session *, bool, const char *);
static size_t pop3_format_line(char *, size_t, const char *, va_list)
    __attribute__((format(printf, 3, 0)));
static void pop3_session_greet(struct pop3_session *);
static const char *pop3_session_user(struct pop3_session *);
static const char *pop3_session_state_name(enum pop3_state);

static const char pop3_greeting[] = "+OK carteiro ready.";

void
pop3_session_accept(struct pop3_server *srv, int fd, bool implicit_tls)
{
	struct pop3_session *s;
	const struct cfg *cfg = srv->cfg;
	const struct sockaddr *sa;
	bool trusted;

	s = xcalloc(1, sizeof(*s));
	s->srv = srv;
	s->state = POP3_ST_AUTH;
	s->input = POP3_IN_CMD;
	s->implicit_tls = implicit_tls;
	s->started_ms = util_now_ms();
	util_session_id(s->sid);
	s->conn = conn_new(srv->base, fd, pop3_session_conn_cb, s);
	util_strlcpy(s->ip, conn_peer_ip(s->conn) ? conn_peer_ip(s->conn) : "?",
	    sizeof(s->ip));
	sa = conn_peer_addr(s->conn, NULL);
	client_key_from_sockaddr(&s->key, sa);
	/* [pop3d] trusted_networks (a webmail on this host) are exempt from
	 * max_clients_per_ip; max_clients holds for everyone. */
	trusted = sa != NULL &&
	    cfg_cidrlist_match(&cfg->pop3d.trusted_networks, sa);
	sasl_init(&s->sasl, srv->base, srv->auth);
	s->ipc = ipcount_ref(srv->ipcount, &s->key);
	s->next = srv->sessions;
	if (srv->sessions != NULL)
		srv->sessions->prev = s;
	srv->sessions = s;
	srv->nsessions++;

	log_info("event=pop3.connect sid=%s ip=%s tls=%s", s->sid, s->ip,
	    implicit_tls ? "implicit" : "no");

	if (srv->stopping) {
		pop3_session_free(s, "shutdown");
		return;
	}
	if ((cfg->pop3d.max_clients > 0 &&
	    srv->nsessions > cfg->pop3d.max_clients) ||
	    (cfg->pop3d.max_clients_per_ip > 0 && !trusted &&
	    ipcount_n(s->ipc) > cfg->pop3d.max_clients_per_ip)) {
		/* Implicit TLS: the client expects a ServerHello, a
		 * cleartext -ERR reads as "wrong version number"; close. */
		if (implicit_tls) {
			pop3_session_free(s, "too_many_connections");
			return;
		}
		pop3_reply(s, "-ERR [SYS/TEMP] Too many connections, try "
		    "again later.");
		pop3_session_close(s, "too_many_connections");
		return;
	}
	conn_set_timeout(s->conn, srv->timeout_ms);
	conn_set_lowat(s->conn, POP3_OUT_LOWAT);
	pop3_deadline_start(s);
	if (implicit_tls) {
		s->tls_pending = true;
		if (conn_starttls(s->conn, srv->tls) < 0) {
			pop3_session_free(s, "tls_error");
			return;
		}
	} else
		pop3_session_greet(s);
}

static void
pop3_session_greet(struct pop3_session *s)
{
	pop3_reply(s, "%s", pop3_greeting);
	pop3_deadline_line(s);
}

void
pop3_session_free(struct pop3_session *s, const char *reason)
{
	struct pop3_server *srv;

	if (s == NULL)
		return;
	srv = s->srv;
	log_info("event=pop3.disconnect sid=%s ip=%s user=%s reason=%s "
	    "retrieved=%u retrieved_bytes=%llu bytes=%llu duration_ms=%llu",
	    s->sid, s->ip, LOG_VALUE(pop3_session_user(s)), reason,
	    s->retrieved, (unsigned long long)s->retrieved_bytes,
	    (unsigned long long)conn_bytes_out(s->conn),
	    (unsigned long long)(util_now_ms() - s->started_ms));
	sasl_clear(&s->sasl);
	pop3_deadline_stop(s);
	if (s->body != NULL)
		store_body_close(s->body);
	pop3_readq_cancel(s);
	pop3_fetch_readahead_free(s);
	if (s->locked)
		pop3_lock_release(srv, s->maildrop);
	conn_free(s->conn);
	if (s->user != NULL) {
		util_wipe(s->user, strlen(s->user));
		free(s->user);
	}
	free(s->retrieved_msg);
	free(s->maildrop);
	free(s->msgs);
	free(s->deleted);

	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	srv->nsessions--;
	ipcount_unref(srv->ipcount, s->ipc);
	free(s);
	if (srv->stopping && srv->nsessions == 0)
		event_base_loopexit(srv->base, NULL);
}

void
pop3_session_close(struct pop3_session *s, const char *reason)
{
	if (conn_is_closing(s->conn))
		return;
	s->close_reason = reason;
	/* No late login reply after the goodbye. */
	sasl_reset(&s->sasl);
	/* The maildrop is free before the goodbye goes out: a client that
	 * logs in again at once, here or on another node, finds it so. */
	if (s->locked) {
		pop3_lock_release(s->srv, s->maildrop);
		s->locked = false;
	}
	conn_close_after_flush(s->conn);
}

static const char *
pop3_session_user(struct pop3_session *s)
{
	return s->maildrop != NULL ? s->maildrop : "-";
}

/*
 * The connection's one callback: the events, then the end of the read
 * snapshot RETR/TOP may have opened (pop3_store_snapshot), so that none
 * outlives the callback.
 */
static void
pop3_session_conn_cb(struct conn *c, enum conn_event ev, void *arg)
{
	struct pop3_server *srv = ((struct pop3_session *)arg)->srv;

	pop3_session_conn_ev(c, ev, arg);
	pop3_store_snapshot_end(srv);
}

/* The session may be freed here; nothing touches it after
 * pop3_session_free. */
static void
pop3_session_conn_ev(struct conn *c, enum conn_event ev, void *arg)
{
	struct pop3_session *s = arg;

	switch (ev) {
	case CONN_EV_INPUT:
		pop3_session_input(s);
		break;
	case CONN_EV_LOWAT:
		if (conn_is_closing(c)) {
			if (conn_output_len(c) == 0)
				pop3_session_free(s, s->close_reason ?
				    s->close_reason : "closed");
			return;
		}
		if (s->cont != NULL) {
			if (!s->cont(s))
				return;
			s->cont = NULL;
		}
		pop3_session_kick(s);
		break;
	case CONN_EV_TLS_READY:
		s->tls_pending = false;
		log_info("event=pop3.tls sid=%s ip=%s version=%s cipher=%s",
		    s->sid, s->ip, conn_tls_version(c) ? conn_tls_version(c) :
		    "-", conn_tls_cipher(c) ? conn_tls_cipher(c) : "-");
		stats_inc_word(STATS_POP3_TLS_13, STATS_POP3_TLS_OTHER,
		    conn_tls_version(c));
		if (s->implicit_tls)
			pop3_session_greet(s);
		else if (s->user != NULL) {
			/* RFC 2595 4: forget what was said before TLS. */
			free(s->user);
			s->user = NULL;
		}
		pop3_session_kick(s);
		break;
	case CONN_EV_EOF:
		pop3_session_free(s, conn_is_closing(c) ? (s->close_reason ?
		    s->close_reason : "closed") : "eof");
		break;
	case CONN_EV_ERROR: {
		/* The reason words are conn's, the same in smtpd. */
		const char *reason = conn_error_reason(c);

		log_info("event=%s sid=%s ip=%s result=fail reason=%s error=%s",
		    strcmp(reason, "tls_handshake") == 0 ? "pop3.tls" :
		    "pop3.io", s->sid, s->ip, reason,
		    LOG_VALUE(conn_error(c)));
		pop3_session_free(s, reason);
		break;
	}
	case CONN_EV_TIMEOUT:
		if (conn_is_closing(c)) {
			pop3_session_free(s, s->close_reason ?
			    s->close_reason : "timeout");
			return;
		}
		if (pop3_deadline_timeout(s))
			return;	/* (s may be freed) */
		if (s->cont == NULL && !s->tls_pending)
			pop3_reply(s, "-ERR Disconnected for inactivity.");
		pop3_session_close(s, "timeout");
		break;
	default:
		break;
	}
}

/* Whether the session may read and run the next command now. */
static bool
pop3_session_ready(struct pop3_session *s)
{
	return s->cont == NULL && s->input != POP3_IN_WAIT &&
	    !s->tls_pending && !conn_is_closing(s->conn) &&
	    s->state != POP3_ST_UPDATE;
}

/* Run the commands already buffered, once the session is ready again. */
void
pop3_session_kick(struct pop3_session *s)
{
	if (!pop3_session_ready(s))
		return;
	pop3_session_input(s);
}

/*
 * Run every complete command line in the input, in order. Stops while long
 * output runs, an auth check is pending, TLS is being negotiated or the
 * client does not read its replies; whoever ends that condition calls
 * pop3_session_kick. Never frees the session.
 *
 * While stopped with more than POP3_INPUT_PAUSE bytes of commands
 * waiting, reading is paused: a client that pipelines thousands of
 * commands is held back by TCP instead of filling our memory, and is not
 * cut off. So unprocessed input stays below that plus a read; past
 * POP3_INPUT_MAX something is wrong and the client is closed.
 */
static void
pop3_session_input(struct pop3_session *s)
{
	char *line;
	size_t len;
	enum conn_line r;
	bool secret;

	if (s->in_input)
		return;
	s->in_input = true;
	for (;;) {
		if (!pop3_session_ready(s) ||
		    conn_output_len(s->conn) > POP3_OUT_HIGH) {
			/* Busy, or the client pipelines but does not read:
			 * LOWAT (or the auth/TLS completion) kicks us. */
			if (conn_is_closing(s->conn))
				break;
			/* The next line's deadline starts when its reply
			 * can be sent. */
			pop3_deadline_clear(s);
			if (evbuffer_get_length(conn_input(s->conn)) >
			    POP3_INPUT_MAX) {
				log_info("event=pop3.flood sid=%s ip=%s", s->sid,
				    s->ip);
				pop3_session_close(s, "input_flood");
				break;
			}
			/* Small pipelines just wait in the buffer (no
			 * epoll changes per command); a deep one stops
			 * being read. */
			if (evbuffer_get_length(conn_input(s->conn)) >
			    POP3_INPUT_PAUSE)
				conn_pause_read(s->conn);
			break;
		}
		/* max_session_time: here is a safe point. */
		if (pop3_deadline_expired(s))
			break;
		/* Ready: take more (buffered input comes back from the
		 * loop as CONN_EV_INPUT). */
		conn_resume_read(s->conn);
		r = conn_getline(s->conn, s->input == POP3_IN_SASL ?
		    POP3_SASL_LINE_MAX : POP3_LINE_MAX, &line, &len, NULL);
		if (r == CONN_LINE_NONE) {
			/* Counted from the previous reply, not from each
			 * byte of the line. */
			pop3_deadline_line(s);
			break;
		}
		pop3_deadline_line_taken(s);
		if (r == CONN_LINE_TOO_LONG) {
			util_strlcpy(s->cmd, "-", sizeof(s->cmd));
			s->cmd_args_len = 0;
			pop3_reply(s, "-ERR Input line too long.");
			pop3_session_close(s, "line_too_long");
			break;
		}
		/* A SASL response, or an AUTHORIZATION command (PASS,
		 * AUTH), may hold a password or its base64. */
		secret = s->input == POP3_IN_SASL || s->state == POP3_ST_AUTH;
		if (s->input == POP3_IN_SASL)
			pop3_session_sasl_line(s, line, len);
		else
			pop3_cmd_dispatch(s, line, len);
		if (secret)
			conn_wipe_line(s->conn);
	}
	s->in_input = false;
}

static const char *
pop3_session_state_name(enum pop3_state st)
{
	switch (st) {
	case POP3_ST_AUTH:
		return "AUTHORIZATION";
	case POP3_ST_TRANS:
		return "TRANSACTION";
	case POP3_ST_UPDATE:
		return "UPDATE";
	}
	return "?";
}

void
pop3_session_enter(struct pop3_session *s, enum pop3_state st)
{
	log_debug("event=pop3.state sid=%s old=%s new=%s", s->sid,
	    pop3_session_state_name(s->state), pop3_session_state_name(st));
	s->state = st;
}

bool
pop3_session_plaintext_ok(struct pop3_session *s)
{
	if (conn_is_tls(s->conn) || s->srv->cfg->pop3d.allow_plaintext_auth)
		return true;
	return conn_peer_is_loopback(s->conn) && !s->srv->nonlocal;
}

/* ---- replies ---- */

static void
pop3_session_log_cmd(struct pop3_session *s, bool ok, const char *reply)
{
	char args[LOG_ESCAPE_MAX], rep[LOG_ESCAPE_MAX];

	if (ok) {
		if (!log_enabled(LOG_LVL_DEBUG))
			return;
		log_debug("event=pop3.cmd sid=%s user=%s cmd=%s result=ok "
		    "bytes=%llu", s->sid, LOG_VALUE(pop3_session_user(s)),
		    LOG_VALUE(s->cmd),
		    (unsigned long long)s->cmd_bytes);
		return;
	}
	log_info("event=pop3.cmd sid=%s ip=%s user=%s cmd=%s args=%s "
	    "result=err reply=%s", s->sid, s->ip,
	    LOG_VALUE(pop3_session_user(s)),
	    LOG_VALUE(s->cmd[0] != '\0' ? s->cmd : "-"),
	    log_escape(args, sizeof(args), s->cmd_args, s->cmd_args_len),
	    log_escape(rep, sizeof(rep), reply, strlen(reply)));
}

/*
 * Format one reply line into buf (size bytes), truncated to fit with its
 * CRLF; returns the length without the CRLF.
 */
static size_t
pop3_format_line(char *buf, size_t size, const char *fmt, va_list ap)
{
	int n = vsnprintf(buf, size - 2, fmt, ap);

	if (n < 0)
		n = 0;
	if ((size_t)n > size - 3)
		n = (int)size - 3;
	buf[n] = '\r';
	buf[n + 1] = '\n';
	return (size_t)n;
}

void
pop3_reply(struct pop3_session *s, const char *fmt, ...)
{
	char buf[POP3_LINE_MAX + 64];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	n = pop3_format_line(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	s->cmd_bytes += n + 2;
	/* The log wants the line without CRLF. */
	buf[n] = '\0';
	if (buf[0] == '-')
		pop3_session_log_cmd(s, false, buf);
	else if (!s->multi && s->cmd[0] != '\0' && buf[0] == '+' &&
	    buf[1] == 'O')
		pop3_session_log_cmd(s, true, buf);
	buf[n] = '\r';
	conn_write(s->conn, buf, n + 2);
}

void
pop3_reply_line(struct pop3_session *s, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	n = pop3_format_line(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	s->cmd_bytes += n + 2;
	conn_write(s->conn, buf, n + 2);
}

void
pop3_reply_end(struct pop3_session *s)
{
	conn_write(s->conn, ".\r\n", 3);
	s->cmd_bytes += 3;
	pop3_session_cmd_done(s);
}

void
pop3_session_cmd_done(struct pop3_session *s)
{
	s->multi = false;
	pop3_session_log_cmd(s, true, "");
}

void
pop3_session_start_cont(struct pop3_session *s, pop3_cont_fn *cont)
{
	s->multi = true;
	if (cont(s))
		return;
	s->cont = cont;
}

/* ---- login ---- */

void
pop3_session_auth(struct pop3_session *s)
{
	if (sasl_check(&s->sasl, &s->key, pop3_session_auth_done, s) != 0) {
		log_warn("event=pop3.login sid=%s ip=%s result=tempfail "
		    "reason=pool-full", s->sid, s->ip);
		sasl_reset(&s->sasl);
		s->input = POP3_IN_CMD;
		pop3_reply(s, "-ERR [SYS/TEMP] Temporary authentication "
		    "failure, try again later.");
		return;
	}
	s->input = POP3_IN_WAIT;
}

/* Runs on the loop; the pool never calls it after auth_pool_cancel, which
 * sasl_reset and sasl_clear do (pop3_session_close, pop3_session_free), so
 * s is alive. */
static void
pop3_session_auth_done(uint64_t token, enum auth_result res,
    const char *canonical, void *arg)
{
	struct pop3_session *s = arg;
	const char *user = s->sasl.authcid;
	char u[LOG_ESCAPE_MAX];
	unsigned penalty;

	if (!sasl_checked(&s->sasl, token))
		return;
	switch (res) {
	case AUTH_OK:
		sasl_success(&s->sasl, &s->key);
		pop3_session_login(s, canonical);
		break;
	case AUTH_FAIL:
		penalty = sasl_fail(&s->sasl, &s->key);
		log_info("event=pop3.login sid=%s ip=%s user=%s mech=%s "
		    "result=fail penalty_ms=%u", s->sid, s->ip,
		    log_escape(u, sizeof(u), user ? user : "",
		    user ? strlen(user) : 0), s->auth_mech ? s->auth_mech : "-",
		    penalty);
		stats_inc(STATS_POP3_LOGIN_FAILED);
		pop3_session_auth_fail(s);
		break;
	default:
		log_warn("event=pop3.login sid=%s ip=%s result=tempfail",
		    s->sid, s->ip);
		sasl_reset(&s->sasl);
		s->input = POP3_IN_CMD;
		pop3_reply(s, "-ERR [SYS/TEMP] Temporary authentication "
		    "failure, try again later.");
		break;
	}
	pop3_session_kick(s);	/* pipelined commands: RETR, ... */
	pop3_store_snapshot_end(s->srv);
}

/* A failed login: answer at once, no hint whether the user exists (the
 * client's next check waits out the penalty); after [pop3d]
 * max_auth_failures of them the session ends. */
static void
pop3_session_auth_fail(struct pop3_session *s)
{
	unsigned max = s->srv->cfg->pop3d.max_auth_failures;

	sasl_reset(&s->sasl);
	if (s->user != NULL) {
		free(s->user);
		s->user = NULL;
	}
	s->input = POP3_IN_CMD;
	pop3_reply(s, "-ERR [AUTH] Authentication failed.");
	s->auth_failures++;
	if (max > 0 && s->auth_failures >= max) {
		pop3_reply(s, "-ERR Too many failed logins.");
		pop3_session_close(s, "too_many_auth_failures");
	}
}

/* ---- SASL (RFC 5034) ---- */

void
pop3_session_sasl_result(struct pop3_session *s, enum sasl_status st,
    const char *challenge)
{
	switch (st) {
	case SASL_CHALLENGE:
		s->input = POP3_IN_SASL;
		pop3_reply(s, "+ %s", challenge);
		return;
	case SASL_ABORT:
		s->input = POP3_IN_CMD;
		pop3_reply(s, "-ERR Authentication aborted by client.");
		return;
	case SASL_BAD:
		s->input = POP3_IN_CMD;
		pop3_reply(s, "-ERR [AUTH] Invalid SASL response.");
		return;
	case SASL_CREDS:
		break;
	}
	pop3_session_auth(s);
}

void
pop3_session_sasl_line(struct pop3_session *s, const char *line, size_t len)
{
	const char *challenge;
	enum sasl_status st;

	s->cmd_args_len = 0;
	st = sasl_step(&s->sasl, line, len, &challenge);
	pop3_session_sasl_result(s, st, challenge);
}

/* ---- shutdown ---- */

void
pop3_server_close_all(struct pop3_server *srv)
{
	struct pop3_session *s, *next;

	for (s = srv->sessions; s != NULL; s = next) {
		next = s->next;
		if (conn_is_closing(s->conn))
			continue;
		if (s->cont != NULL || s->tls_pending) {
			/* Mid-response or mid-handshake: nothing sensible
			 * can be added; just hang up. */
			pop3_session_free(s, "shutdown");
			continue;
		}
		util_strlcpy(s->cmd, "-", sizeof(s->cmd));
		s->cmd_args_len = 0;
		pop3_reply(s, "-ERR Server shutting down.");
		pop3_session_close(s, "shutdown");
	}
}
