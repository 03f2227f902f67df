/*
 * The SMTP verb table and its one dispatcher (500 unknown, 503 bad
 * sequence, 501 bad arguments), plus the session-level verbs: EHLO, HELO,
 * RSET, NOOP, HELP, VRFY, QUIT, STARTTLS. AUTH is in sasl.c; MAIL, RCPT,
 * DATA and BDAT are in tx.c.
 */
#include "smtpd/smtpd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/config.h"
#include "common/conn.h"
#include "common/log.h"
#include "common/util.h"

enum smtp_cmd_args {
	SMTP_ARGS_NONE,
	SMTP_ARGS_OPTIONAL,
	SMTP_ARGS_REQUIRED,
};

#define ST(x)		(1u << SMTP_ST_##x)
#define ST_ANY		(ST(INIT) | ST(READY) | ST(MAIL) | ST(RCPT) | ST(BDAT))

struct smtp_cmd {
	const char *verb;
	unsigned states;		/* (1 << enum smtp_state) mask */
	enum smtp_cmd_args args;
	void (*handler)(struct smtp_session *, const char *);
	/* Refused by the dispatcher: clean-up beyond the reply (BDAT still
	 * has to skip its chunk). NULL: nothing. */
	void (*on_reject)(struct smtp_session *, const char *);
	const char *syntax;		/* for 501 */
};

static const struct smtp_cmd smtp_cmds[] = {
	{ "EHLO", ST_ANY, SMTP_ARGS_REQUIRED, smtp_cmd_ehlo, NULL,
	    "EHLO hostname" },
	{ "HELO", ST_ANY, SMTP_ARGS_REQUIRED, smtp_cmd_helo, NULL,
	    "HELO hostname" },
	{ "MAIL", ST(READY), SMTP_ARGS_REQUIRED, smtp_cmd_mail, NULL,
	    "MAIL FROM:<address>" },
	{ "RCPT", ST(MAIL) | ST(RCPT), SMTP_ARGS_REQUIRED, smtp_cmd_rcpt,
	    NULL, "RCPT TO:<address>" },
	{ "DATA", ST(RCPT), SMTP_ARGS_NONE, smtp_cmd_data, NULL, "DATA" },
	{ "BDAT", ST(RCPT) | ST(BDAT), SMTP_ARGS_REQUIRED, smtp_cmd_bdat,
	    smtp_cmd_bdat_reject, "BDAT size [LAST]" },
	{ "RSET", ST_ANY, SMTP_ARGS_NONE, smtp_cmd_rset, NULL, "RSET" },
	{ "NOOP", ST_ANY, SMTP_ARGS_OPTIONAL, smtp_cmd_noop, NULL, "NOOP" },
	{ "HELP", ST_ANY, SMTP_ARGS_OPTIONAL, smtp_cmd_help, NULL, "HELP" },
	{ "VRFY", ST_ANY, SMTP_ARGS_REQUIRED, smtp_cmd_vrfy, NULL,
	    "VRFY address" },
	{ "QUIT", ST_ANY, SMTP_ARGS_NONE, smtp_cmd_quit, NULL, "QUIT" },
	{ "STARTTLS", ST(INIT) | ST(READY), SMTP_ARGS_NONE, smtp_cmd_starttls,
	    NULL, "STARTTLS" },
	{ "AUTH", ST(READY), SMTP_ARGS_REQUIRED, smtp_cmd_auth, NULL,
	    "AUTH mechanism [initial-response]" },
};

static const struct smtp_cmd *
smtp_cmd_find(const char *verb, size_t len)
{
	size_t i;

	for (i = 0; i < nitems(smtp_cmds); i++)
		if (strlen(smtp_cmds[i].verb) == len &&
		    strncasecmp(smtp_cmds[i].verb, verb, len) == 0)
			return &smtp_cmds[i];
	return NULL;
}

/* The text of a 503: what the client should have sent first. */
static const char *
smtp_cmd_sequence_hint(const struct smtp_session *s, const struct smtp_cmd *c)
{
	if (s->state == SMTP_ST_INIT)
		return "send HELO/EHLO first";
	if (strcmp(c->verb, "MAIL") == 0)
		return "nested MAIL command";
	if (strcmp(c->verb, "RCPT") == 0)
		return "need MAIL command";
	if (strcmp(c->verb, "DATA") == 0 && s->state == SMTP_ST_BDAT)
		return "DATA after BDAT not allowed";
	if (strcmp(c->verb, "DATA") == 0 || strcmp(c->verb, "BDAT") == 0)
		return "need RCPT command";
	return "command not allowed in a mail transaction";
}

/* Longest line of verb c (NULL: unknown) including CRLF. */
static size_t
smtp_cmd_line_max(const struct smtp_cmd *c)
{
	if (c != NULL && strcmp(c->verb, "MAIL") == 0)
		return SMTP_MAIL_LINE_MAX;
	if (c != NULL && strcmp(c->verb, "RCPT") == 0)
		return SMTP_RCPT_LINE_MAX;
	return SMTP_LINE_MAX;
}

void
smtp_cmd_dispatch(struct smtp_session *s, const char *line, size_t len)
{
	const struct smtp_cmd *c;
	const char *args;
	char *end;
	size_t vlen;

	vlen = strcspn(line, " ");
	c = smtp_cmd_find(line, vlen);
	if (len + 2 > smtp_cmd_line_max(c)) {
		smtp_session_set_cmd(s, "(line too long)", 15);
		smtp_reply(s, "500 5.5.2 Error: line too long");
		return;
	}
	args = line + vlen;
	while (*args == ' ')
		args++;
	/* Trailing blanks are not arguments (line is our own copy). */
	end = (char *)line + len;
	while (end > args && end[-1] == ' ')
		*--end = '\0';
	if (c == NULL) {
		smtp_reply(s, "500 5.5.1 Error: command not recognized");
		return;
	}
	if (!(c->states & (1u << s->state))) {
		smtp_reply(s, "503 5.5.1 Error: %s",
		    smtp_cmd_sequence_hint(s, c));
		if (c->on_reject != NULL)
			c->on_reject(s, args);
		return;
	}
	if ((c->args == SMTP_ARGS_NONE && *args != '\0') ||
	    (c->args == SMTP_ARGS_REQUIRED && *args == '\0')) {
		smtp_reply(s, "501 5.5.4 Syntax: %s", c->syntax);
		if (c->on_reject != NULL)
			c->on_reject(s, args);
		return;
	}
	c->handler(s, args);
}

/* A HELO/EHLO argument: printable ASCII (and UTF-8), first word kept. */
static bool
smtp_cmd_helo_arg(struct smtp_session *s, const char *args)
{
	size_t n = strcspn(args, " ");
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)args[i];
		if (ch < 33 || ch == 127) {
			smtp_reply(s, "501 5.5.4 Syntax: EHLO hostname");
			return false;
		}
	}
	if (n > SMTP_HELO_MAX)
		n = SMTP_HELO_MAX;
	smtp_tx_reset(s);
	free(s->helo);
	s->helo = xstrndup(args, n);
	return true;
}

void
smtp_cmd_ehlo(struct smtp_session *s, const char *args)
{
	struct smtp_server *srv = s->lst->srv;
	char esc[LOG_ESCAPE_MAX];
	const char *kw[12];
	size_t n = 0, i;
	char size[40];

	if (!smtp_cmd_helo_arg(s, args))
		return;
	s->esmtp = true;
	smtp_session_enter(s, SMTP_ST_READY);
	log_info("event=smtp.helo sid=%s verb=EHLO helo=%s tls=%s", s->sid,
	    log_escape(esc, sizeof(esc), s->helo, strlen(s->helo)),
	    conn_is_tls(s->conn) ? "yes" : "no");
	snprintf(size, sizeof(size), "SIZE %llu",
	    (unsigned long long)srv->cfg->smtpd.max_message_size);
	kw[n++] = "PIPELINING";
	kw[n++] = size;
	if (srv->tls != NULL && !conn_is_tls(s->conn))
		kw[n++] = "STARTTLS";
	if (smtp_cmd_auth_allowed(s))
		kw[n++] = "AUTH PLAIN LOGIN";
	kw[n++] = "ENHANCEDSTATUSCODES";
	kw[n++] = "8BITMIME";
	kw[n++] = "SMTPUTF8";
	/* RFC 3461 on every listener: MX mail may ask for notices too. */
	kw[n++] = "DSN";
	kw[n++] = "CHUNKING";
	smtp_reply(s, "250-%s", smtp_session_hostname(s));
	for (i = 0; i < n; i++)
		smtp_reply(s, "250%c%s", i + 1 == n ? ' ' : '-', kw[i]);
}

void
smtp_cmd_helo(struct smtp_session *s, const char *args)
{
	char esc[LOG_ESCAPE_MAX];

	if (!smtp_cmd_helo_arg(s, args))
		return;
	s->esmtp = false;
	smtp_session_enter(s, SMTP_ST_READY);
	log_info("event=smtp.helo sid=%s verb=HELO helo=%s tls=%s", s->sid,
	    log_escape(esc, sizeof(esc), s->helo, strlen(s->helo)),
	    conn_is_tls(s->conn) ? "yes" : "no");
	smtp_reply(s, "250 %s", smtp_session_hostname(s));
}

void
smtp_cmd_rset(struct smtp_session *s, const char *args)
{
	smtp_tx_reset(s);
	smtp_session_enter(s, s->helo != NULL ? SMTP_ST_READY : SMTP_ST_INIT);
	smtp_reply(s, "250 2.0.0 Ok");
}

void
smtp_cmd_noop(struct smtp_session *s, const char *args)
{
	smtp_reply(s, "250 2.0.0 Ok");
}

void
smtp_cmd_help(struct smtp_session *s, const char *args)
{
	smtp_reply(s, "214-2.0.0 carteiro ESMTP, commands:");
	smtp_reply(s, "214-2.0.0   EHLO HELO MAIL RCPT DATA BDAT RSET NOOP");
	smtp_reply(s, "214-2.0.0   HELP VRFY QUIT STARTTLS AUTH");
	smtp_reply(s, "214 2.0.0 See RFC 5321");
}

void
smtp_cmd_vrfy(struct smtp_session *s, const char *args)
{
	/* Never an address oracle (RFC 5321 7.3). */
	smtp_reply(s, "252 2.5.0 Cannot VRFY user, but will accept message "
	    "and attempt delivery");
}

void
smtp_cmd_quit(struct smtp_session *s, const char *args)
{
	smtp_reply(s, "221 2.0.0 Bye");
	smtp_session_close(s, "quit");
}

void
smtp_cmd_starttls(struct smtp_session *s, const char *args)
{
	struct smtp_server *srv = s->lst->srv;

	if (conn_is_tls(s->conn)) {
		smtp_reply(s, "503 5.5.1 Error: TLS already active");
		return;
	}
	if (srv->tls == NULL) {
		smtp_reply(s, "454 4.7.0 TLS not available");
		return;
	}
	smtp_reply(s, "220 2.0.0 Ready to start TLS");
	/* Discards whatever was pipelined behind STARTTLS (RFC 3207 6):
	 * conn_starttls drops the buffered plaintext, and WAIT stops the
	 * input loop before it reads another line. */
	smtp_session_wait(s);
	if (conn_starttls(s->conn, srv->tls) != 0) {
		log_warn("event=smtp.tls sid=%s result=fail error=\"%s\"",
		    s->sid, conn_error(s->conn));
		smtp_session_close(s, "tls_error");
	}
}
