/*
 * SMTP AUTH (RFC 4954): the AUTH verb, the 334 continuations and the
 * replies. The exchange itself (PLAIN, LOGIN, "*", base64, the authzid
 * rule), the check on the auth pool and the failure penalty it waits out
 * are the shared SASL engine's (common/sasl.c); this file only turns its
 * results into SMTP replies and log lines, and ends a session after
 * [smtpd] max_auth_failures failed checks. Never logs or keeps a password.
 */
#include "smtpd/smtpd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/auth.h"
#include "common/config.h"
#include "common/conn.h"
#include "common/log.h"
#include "common/stats.h"
#include "common/sasl.h"
#include "common/util.h"

static void smtp_sasl_result(struct smtp_session *s, enum sasl_status st,
    const char *challenge);
static void smtp_sasl_abort(struct smtp_session *s, const char *reply);
static void smtp_sasl_done(uint64_t token, enum auth_result res,
    const char *canonical, void *arg);

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
	sasl_reset(&s->sasl);
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
	const struct sasl_mech *m;
	const char *ir, *challenge;
	enum sasl_status st;
	size_t mlen = strcspn(args, " ");

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
	if ((m = sasl_mech_find(args, mlen)) == NULL) {
		smtp_reply(s, "504 5.5.4 Unrecognized authentication type");
		return;
	}
	ir = args[mlen] == ' ' ? args + mlen + 1 : NULL;
	sasl_begin(&s->sasl, m);
	st = sasl_step(&s->sasl, ir, ir != NULL ? strlen(ir) : 0, &challenge);
	smtp_sasl_result(s, st, challenge);
}

void
smtp_sasl_line(struct smtp_session *s, const char *line, size_t len)
{
	const char *challenge;
	enum sasl_status st;

	st = sasl_step(&s->sasl, line, len, &challenge);
	smtp_sasl_result(s, st, challenge);
}

/* One step's result as a reply (or the start of the check). */
static void
smtp_sasl_result(struct smtp_session *s, enum sasl_status st,
    const char *challenge)
{
	switch (st) {
	case SASL_CHALLENGE:
		s->mode = SMTP_MODE_SASL;
		smtp_reply(s, "334 %s", challenge);
		return;
	case SASL_ABORT:
		smtp_sasl_abort(s, "501 5.7.0 Authentication cancelled");
		return;
	case SASL_BAD:
		smtp_sasl_abort(s, "501 5.5.2 Cannot decode response");
		return;
	case SASL_CREDS:
		break;
	}
	if (sasl_check(&s->sasl, &s->key, smtp_sasl_done, s) != 0) {
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
	const char *ip = conn_peer_ip(s->conn), *mech, *reply;
	char esc[LOG_ESCAPE_MAX], cmd[16];
	unsigned penalty, max;

	if (!sasl_checked(&s->sasl, token))
		return;
	/* The exchange that asked is still there (sasl_reset cancels). */
	mech = sasl_mech_name(s->sasl.mech);
	log_escape(esc, sizeof(esc), s->sasl.authcid, strlen(s->sasl.authcid));
	snprintf(cmd, sizeof(cmd), "AUTH %s", mech);
	smtp_session_set_cmd(s, cmd, strlen(cmd));
	switch (res) {
	case AUTH_OK:
		sasl_success(&s->sasl, &s->key);
		s->auth_user = xstrdup(canonical);
		log_info("event=smtp.auth sid=%s ip=%s result=ok mech=%s "
		    "user=%s", s->sid, ip, mech, esc);
		reply = "235 2.7.0 Authentication successful";
		stats_inc(STATS_SMTP_AUTH_OK);
		break;
	case AUTH_TEMPFAIL:
		log_warn("event=smtp.auth sid=%s ip=%s result=tempfail "
		    "mech=%s user=%s", s->sid, ip, mech, esc);
		reply = "454 4.7.0 Temporary authentication failure";
		break;
	case AUTH_FAIL:
	default:
		penalty = sasl_fail(&s->sasl, &s->key);
		log_info("event=smtp.auth sid=%s ip=%s result=fail mech=%s "
		    "user=%s penalty_ms=%u", s->sid, ip, mech, esc, penalty);
		stats_inc(STATS_SMTP_AUTH_FAILED);
		smtp_sasl_free(s);
		/* At once: the client's next check waits out the penalty. */
		smtp_reply(s, "535 5.7.8 Authentication credentials invalid");
		max = s->lst->srv->cfg->smtpd.max_auth_failures;
		if (s->auth_failures < UINT8_MAX)
			s->auth_failures++;
		if (max > 0 && (unsigned)s->auth_failures >= max) {
			/* The 535 answers this AUTH; the 421 follows
			 * unasked and ends the session, as Postfix does at
			 * its error limit. */
			smtp_session_set_cmd(s, "(auth limit)", 12);
			smtp_reply(s, "421 4.7.0 %s Error: too many failed "
			    "authentication attempts",
			    smtp_session_hostname(s));
			smtp_session_close(s, "too_many_auth_failures");
		}
		smtp_session_resume(s);
		return;
	}
	smtp_sasl_free(s);
	smtp_reply(s, "%s", reply);
	smtp_session_resume(s);
}
