/*
 * SMTP AUTH (RFC 4954) with PLAIN (RFC 4616) and LOGIN: the initial
 * response, the 334 continuation lines, "*" to cancel, the password check
 * on the auth pool (off the loop) and the growing delay before a 535. Never
 * logs or keeps a password longer than the call that uses it.
 */
#include "smtpd/smtpd.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "common/auth.h"
#include "common/conn.h"
#include "common/log.h"
#include "common/util.h"

enum smtp_sasl_mech { SMTP_SASL_PLAIN, SMTP_SASL_LOGIN };

struct smtp_sasl {
	uint8_t mech;		/* enum smtp_sasl_mech */
	uint8_t step;		/* LOGIN: 0 wants the user, 1 the password */
	char *user;		/* owned: LOGIN user, then the checked user */
	uint64_t token;		/* auth pool request, 0 if none */
};

static void smtp_sasl_check(struct smtp_session *s, char *user,
    char *password);
static void smtp_sasl_done(uint64_t token, enum auth_result res,
    const char *canonical, void *arg);
static void smtp_sasl_fail_timer(evutil_socket_t fd, short what, void *arg);

bool
smtp_cmd_auth_allowed(const struct smtp_session *s)
{
	if (!smtp_session_is_submission(s) || s->lst->srv->auth == NULL)
		return false;
	/* No password before TLS, except on loopback (SPEC). */
	return conn_is_tls(s->conn) || conn_peer_is_loopback(s->conn);
}

void
smtp_sasl_free(struct smtp_session *s)
{
	struct smtp_sasl *a = s->sasl;

	if (a == NULL)
		return;
	if (a->token != 0)
		auth_pool_cancel(s->lst->srv->auth, a->token);
	free(a->user);
	free(a);
	s->sasl = NULL;
}

/* End of the exchange without a check: reply, back to commands. */
static void
smtp_sasl_abort(struct smtp_session *s, const char *reply)
{
	smtp_sasl_free(s);
	s->mode = SMTP_MODE_CMD;
	smtp_reply(s, "%s", reply);
}

void
smtp_cmd_auth(struct smtp_session *s, const char *args)
{
	const char *mech = args, *ir;
	size_t mlen = strcspn(args, " ");
	struct smtp_sasl *a;

	if (!smtp_session_is_submission(s)) {
		smtp_reply(s, "503 5.5.1 Error: authentication not enabled");
		return;
	}
	if (!smtp_cmd_auth_allowed(s)) {
		smtp_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
		return;
	}
	if (s->auth_user != NULL) {
		smtp_reply(s, "503 5.5.1 Error: already authenticated");
		return;
	}
	ir = args[mlen] == ' ' ? args + mlen + 1 : NULL;
	a = xcalloc(1, sizeof(*a));
	if (mlen == 5 && strncasecmp(mech, "PLAIN", 5) == 0) {
		a->mech = SMTP_SASL_PLAIN;
	} else if (mlen == 5 && strncasecmp(mech, "LOGIN", 5) == 0) {
		a->mech = SMTP_SASL_LOGIN;
	} else {
		free(a);
		smtp_reply(s, "504 5.5.4 Unrecognized authentication type");
		return;
	}
	s->sasl = a;
	s->mode = SMTP_MODE_SASL;
	if (ir == NULL) {
		/* RFC 4954 4: empty challenge for PLAIN, "Username:". */
		smtp_reply(s, a->mech == SMTP_SASL_PLAIN ? "334 " :
		    "334 VXNlcm5hbWU6");
		return;
	}
	/* RFC 4954 4: "=" is an empty initial response. */
	smtp_sasl_line(s, strcmp(ir, "=") == 0 ? "" : ir,
	    strcmp(ir, "=") == 0 ? 0 : strlen(ir));
}

void
smtp_sasl_line(struct smtp_session *s, const char *line, size_t len)
{
	struct smtp_sasl *a = s->sasl;
	char *user = NULL, *password = NULL;
	size_t dlen;

	if (len == 1 && line[0] == '*') {
		smtp_sasl_abort(s, "501 5.7.0 Authentication cancelled");
		return;
	}
	if (a->mech == SMTP_SASL_PLAIN) {
		if (auth_sasl_plain_decode(line, &user, &password) != 0) {
			smtp_sasl_abort(s, "501 5.5.2 Cannot decode response");
			return;
		}
		smtp_sasl_check(s, user, password);
		return;
	}
	/* LOGIN */
	if ((password = auth_base64_decode(line, &dlen)) == NULL ||
	    memchr(password, '\0', dlen) != NULL || dlen == 0) {
		if (password != NULL) {
			util_wipe(password, dlen);
			free(password);
		}
		smtp_sasl_abort(s, "501 5.5.2 Cannot decode response");
		return;
	}
	if (a->step == 0) {
		a->user = password;
		a->step = 1;
		smtp_reply(s, "334 UGFzc3dvcmQ6");
		return;
	}
	user = a->user;
	a->user = NULL;
	smtp_sasl_check(s, user, password);
}

/* Takes ownership of user and password (wiped and freed here). */
static void
smtp_sasl_check(struct smtp_session *s, char *user, char *password)
{
	struct smtp_sasl *a = s->sasl;

	a->token = auth_pool_submit(s->lst->srv->auth, user, password,
	    smtp_sasl_done, s);
	util_wipe(password, strlen(password));
	free(password);
	free(a->user);
	a->user = user;
	if (a->token == 0) {
		log_warn("event=smtp.auth sid=%s result=tempfail "
		    "error=pool_full", s->sid);
		smtp_sasl_abort(s, "454 4.7.0 Temporary authentication "
		    "failure");
		return;
	}
	smtp_session_wait(s);
}

static void
smtp_sasl_done(uint64_t token, enum auth_result res, const char *canonical,
    void *arg)
{
	struct smtp_session *s = arg;
	struct smtp_sasl *a = s->sasl;
	const char *ip = conn_peer_ip(s->conn);
	char esc[LOG_ESCAPE_MAX];
	const char *mech = a->mech == SMTP_SASL_PLAIN ? "PLAIN" : "LOGIN";
	struct timeval tv;
	unsigned delay;

	a->token = 0;
	log_escape(esc, sizeof(esc), a->user, strlen(a->user));
	smtp_session_set_cmd(a->mech == SMTP_SASL_PLAIN ? "AUTH PLAIN" :
	    "AUTH LOGIN", 10);
	switch (res) {
	case AUTH_OK:
		auth_penalty_success(ip);
		s->auth_user = xstrdup(canonical);
		log_info("event=smtp.auth sid=%s ip=%s result=ok mech=%s "
		    "user=%s", s->sid, ip, mech, esc);
		smtp_sasl_free(s);
		smtp_reply(s, "235 2.7.0 Authentication successful");
		smtp_session_resume(s);
		return;
	case AUTH_TEMPFAIL:
		log_warn("event=smtp.auth sid=%s ip=%s result=tempfail "
		    "mech=%s user=%s", s->sid, ip, mech, esc);
		smtp_sasl_free(s);
		smtp_reply(s, "454 4.7.0 Temporary authentication failure");
		smtp_session_resume(s);
		return;
	case AUTH_FAIL:
		break;
	}
	delay = auth_penalty_delay_ms(ip);
	auth_penalty_fail(ip);
	log_info("event=smtp.auth sid=%s ip=%s result=fail mech=%s user=%s "
	    "delay_ms=%u", s->sid, ip, mech, esc, delay);
	if (delay == 0) {
		smtp_sasl_fail_timer(-1, 0, s);
		return;
	}
	/* Growing delay per client address before the 535 (brute force). */
	if (s->timer == NULL)
		s->timer = evtimer_new(s->lst->srv->base, smtp_sasl_fail_timer,
		    s);
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	evtimer_add(s->timer, &tv);
}

static void
smtp_sasl_fail_timer(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	smtp_sasl_free(s);
	smtp_session_set_cmd("AUTH", 4);
	smtp_reply(s, "535 5.7.8 Authentication credentials invalid");
	smtp_session_resume(s);
}
