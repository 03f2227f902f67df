/*
 * The POP3 verb table and one handler per verb (RFC 1939, RFC 2449 CAPA,
 * RFC 2595 STLS, RFC 5034 AUTH). The dispatcher checks state and argument
 * policy once; handlers never re-check the sequence. Long responses (LIST,
 * UIDL here, RETR and TOP in fetch.c) are resumable steps run by session.c
 * on LOWAT.
 */
#include "pop3d/pop3d.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/config.h"
#include "common/log.h"
#include "common/stats.h"
#include "common/sasl.h"
#include "common/util.h"

enum pop3_args {
	POP3_ARGS_NONE,
	POP3_ARGS_REQUIRED,
	POP3_ARGS_OPTIONAL,
};

struct pop3_cmd {
	const char *verb;
	unsigned states;		/* enum pop3_state bits */
	enum pop3_args args;
	bool secret;			/* never log the arguments */
	void (*handler)(struct pop3_session *, char *args);
};

static void pop3_cmd_user(struct pop3_session *, char *);
static void pop3_cmd_pass(struct pop3_session *, char *);
static void pop3_cmd_auth(struct pop3_session *, char *);
static void pop3_cmd_stls(struct pop3_session *, char *);
static void pop3_cmd_capa(struct pop3_session *, char *);
static void pop3_cmd_stat(struct pop3_session *, char *);
static void pop3_cmd_list(struct pop3_session *, char *);
static void pop3_cmd_uidl(struct pop3_session *, char *);
static void pop3_cmd_dele(struct pop3_session *, char *);
static void pop3_cmd_retr(struct pop3_session *, char *);
static void pop3_cmd_top(struct pop3_session *, char *);
static void pop3_cmd_rset(struct pop3_session *, char *);
static void pop3_cmd_noop(struct pop3_session *, char *);
static void pop3_cmd_quit(struct pop3_session *, char *);
static bool pop3_cmd_list_step(struct pop3_session *);
static bool pop3_cmd_uidl_step(struct pop3_session *);

#define A POP3_ST_AUTH
#define T POP3_ST_TRANS

static const struct pop3_cmd pop3_cmds[] = {
	{ "USER", A, POP3_ARGS_REQUIRED, false, pop3_cmd_user },
	{ "PASS", A, POP3_ARGS_REQUIRED, true, pop3_cmd_pass },
	{ "AUTH", A, POP3_ARGS_OPTIONAL, true, pop3_cmd_auth },
	{ "STLS", A, POP3_ARGS_NONE, false, pop3_cmd_stls },
	{ "CAPA", A | T, POP3_ARGS_NONE, false, pop3_cmd_capa },
	{ "STAT", T, POP3_ARGS_NONE, false, pop3_cmd_stat },
	{ "LIST", T, POP3_ARGS_OPTIONAL, false, pop3_cmd_list },
	{ "UIDL", T, POP3_ARGS_OPTIONAL, false, pop3_cmd_uidl },
	{ "RETR", T, POP3_ARGS_REQUIRED, false, pop3_cmd_retr },
	{ "TOP", T, POP3_ARGS_REQUIRED, false, pop3_cmd_top },
	{ "DELE", T, POP3_ARGS_REQUIRED, false, pop3_cmd_dele },
	{ "RSET", T, POP3_ARGS_NONE, false, pop3_cmd_rset },
	{ "NOOP", T, POP3_ARGS_NONE, false, pop3_cmd_noop },
	{ "QUIT", A | T, POP3_ARGS_NONE, false, pop3_cmd_quit },
};

#undef A
#undef T

static const char pop3_err_plaintext[] = "-ERR [AUTH] Plaintext "
    "authentication disallowed on non-secure (SSL/TLS) connections.";

/* A bad command: reply, and hang up after too many. */
static void
pop3_cmd_bad(struct pop3_session *s, const char *reply)
{
	pop3_reply(s, "%s", reply);
	if (++s->bad_cmds >= POP3_BAD_CMDS_MAX) {
		pop3_reply(s, "-ERR Too many bad commands.");
		pop3_session_close(s, "too_many_errors");
	}
}

void
pop3_cmd_dispatch(struct pop3_session *s, char *line, size_t len)
{
	const struct pop3_cmd *cmd = NULL;
	char *verb, *args;

	s->multi = false;
	s->cmd_bytes = 0;
	s->cmd_args_len = 0;
	s->cmd[0] = '\0';
	if (len != strlen(line) || pop3_parse_split(line, &verb, &args) < 0) {
		util_strlcpy(s->cmd, "-", sizeof(s->cmd));
		s->cmd_args_len = len < sizeof(s->cmd_args) ? len :
		    sizeof(s->cmd_args);
		memcpy(s->cmd_args, line, s->cmd_args_len);
		pop3_cmd_bad(s, "-ERR Unknown command.");
		return;
	}
	util_strlcpy(s->cmd, verb, sizeof(s->cmd));
	for (size_t i = 0; i < nitems(pop3_cmds); i++) {
		if (strcmp(pop3_cmds[i].verb, verb) == 0) {
			cmd = &pop3_cmds[i];
			break;
		}
	}
	if (args != NULL && (cmd == NULL || !cmd->secret)) {
		size_t alen = strlen(args);

		s->cmd_args_len = alen < sizeof(s->cmd_args) ? alen :
		    sizeof(s->cmd_args);
		memcpy(s->cmd_args, args, s->cmd_args_len);
	}
	if (cmd == NULL) {
		pop3_cmd_bad(s, "-ERR Unknown command.");
		return;
	}
	if ((cmd->states & s->state) == 0) {
		pop3_cmd_bad(s, s->state == POP3_ST_AUTH ?
		    "-ERR Unknown command in AUTHORIZATION state." :
		    "-ERR Unknown command in TRANSACTION state.");
		return;
	}
	/* QUIT asks the server first: its deletions need the lock held. */
	if ((s->locked || s->lock_lost) && !pop3_lock_check(s,
	    cmd->handler == pop3_cmd_quit && s->state == POP3_ST_TRANS))
		return;
	/* Trailing spaces are noise some clients send, not arguments. */
	if (args != NULL && !cmd->secret) {
		size_t alen = strlen(args);

		while (alen > 0 && args[alen - 1] == ' ')
			args[--alen] = '\0';
		if (alen == 0)
			args = NULL;
	}
	if (cmd->args == POP3_ARGS_NONE && args != NULL) {
		pop3_cmd_bad(s, "-ERR Too many arguments.");
		return;
	}
	if (cmd->args == POP3_ARGS_REQUIRED && (args == NULL || *args == '\0')) {
		pop3_cmd_bad(s, "-ERR Missing argument.");
		return;
	}
	cmd->handler(s, args);
}

/* ---- AUTHORIZATION ---- */

static void
pop3_cmd_user(struct pop3_session *s, char *args)
{
	if (!pop3_session_plaintext_ok(s)) {
		pop3_reply(s, "%s", pop3_err_plaintext);
		return;
	}
	free(s->user);
	s->user = xstrdup(args);
	pop3_reply(s, "+OK");
}

/* The line (and so args) is wiped by session.c after AUTHORIZATION
 * commands. */
static void
pop3_cmd_pass(struct pop3_session *s, char *args)
{
	if (!pop3_session_plaintext_ok(s)) {
		pop3_reply(s, "%s", pop3_err_plaintext);
		return;
	}
	if (s->user == NULL) {
		pop3_reply(s, "-ERR No username given.");
		return;
	}
	s->auth_mech = "USER";
	sasl_set_creds(&s->sasl, s->user, args);
	pop3_session_auth(s);
}

/* RFC 5034: AUTH mechanism [initial-response]; "=" is an empty one. The
 * exchange is the SASL engine's (common/sasl.c). */
static void
pop3_cmd_auth(struct pop3_session *s, char *args)
{
	const struct sasl_mech *m;
	const char *challenge;
	enum sasl_status st;
	char *mech, *ir;

	if (args == NULL) {
		/* RFC 1734 clients list mechanisms with a bare AUTH. */
		s->multi = true;
		pop3_reply(s, "+OK");
		pop3_reply_line(s, "PLAIN");
		pop3_reply_line(s, "LOGIN");
		pop3_reply_end(s);
		return;
	}
	mech = args;
	ir = strchr(args, ' ');
	if (ir != NULL) {
		*ir++ = '\0';
		while (*ir == ' ')
			ir++;
		if (*ir == '\0')
			ir = NULL;
	}
	util_strlcpy(s->cmd_args, mech, sizeof(s->cmd_args));
	s->cmd_args_len = strlen(s->cmd_args);
	if (!pop3_session_plaintext_ok(s)) {
		pop3_reply(s, "%s", pop3_err_plaintext);
		return;
	}
	if ((m = sasl_mech_find(mech, strlen(mech))) == NULL) {
		pop3_reply(s, "-ERR Unsupported authentication mechanism.");
		return;
	}
	s->auth_mech = sasl_mech_name(m);
	sasl_begin(&s->sasl, m);
	st = sasl_step(&s->sasl, ir, ir != NULL ? strlen(ir) : 0, &challenge);
	pop3_session_sasl_result(s, st, challenge);
}

/* RFC 2595 4: after "+OK" the client starts TLS; conn_starttls throws
 * away anything pipelined behind STLS. */
static void
pop3_cmd_stls(struct pop3_session *s, char *args)
{
	if (s->srv->tls == NULL) {
		pop3_reply(s, "-ERR TLS support isn't enabled.");
		return;
	}
	if (conn_is_tls(s->conn)) {
		pop3_reply(s, "-ERR TLS is already active.");
		return;
	}
	pop3_reply(s, "+OK Begin TLS negotiation now.");
	s->tls_pending = true;
	if (conn_starttls(s->conn, s->srv->tls) < 0) {
		log_warn("event=pop3.tls sid=%s ip=%s result=error", s->sid,
		    s->ip);
		pop3_session_close(s, "tls_error");
	}
}

/* RFC 2449 5. */
static void
pop3_cmd_capa(struct pop3_session *s, char *args)
{
	s->multi = true;
	pop3_reply(s, "+OK Capability list follows");
	pop3_reply_line(s, "CAPA");
	pop3_reply_line(s, "TOP");
	pop3_reply_line(s, "UIDL");
	pop3_reply_line(s, "RESP-CODES");
	pop3_reply_line(s, "PIPELINING");
	pop3_reply_line(s, "AUTH-RESP-CODE");
	if (s->state == POP3_ST_AUTH) {
		if (pop3_session_plaintext_ok(s)) {
			pop3_reply_line(s, "USER");
			pop3_reply_line(s, "SASL PLAIN LOGIN");
		}
		if (s->srv->tls != NULL && !conn_is_tls(s->conn))
			pop3_reply_line(s, "STLS");
	}
	pop3_retention_capa(s);
	pop3_reply_line(s, "IMPLEMENTATION carteiro");
	pop3_reply_end(s);
}

static void
pop3_cmd_quit(struct pop3_session *s, char *args)
{
	struct pop3_server *srv = s->srv;
	size_t deleted = 0, expired = 0;
	unsigned freed = 0;

	if (s->state == POP3_ST_AUTH) {
		pop3_reply(s, "+OK Logging out.");
		pop3_session_close(s, "quit");
		return;
	}
	/* RFC 1939 6: the UPDATE state removes every marked message, in one
	 * store transaction; messages that arrived meanwhile are untouched
	 * and rows another session removed are skipped. retention.c adds
	 * EXPIRE 0 and the first-retrieved times to that transaction. */
	pop3_session_enter(s, POP3_ST_UPDATE);
	/* A write: not on top of the RETRs' read snapshot (it could not
	 * become a write transaction once another process has written). */
	pop3_store_snapshot_end(srv);
	if (pop3_retention_quit(s, &deleted, &expired) < 0) {
		log_error("event=pop3.quit sid=%s user=%s result=tempfail "
		    "error=\"%s\"", s->sid, s->maildrop,
		    store_error(srv->store));
		pop3_reply(s, "-ERR [SYS/TEMP] Some deleted messages were not "
		    "removed, try again later.");
		pop3_session_close(s, "quit");
		return;
	}
	log_info("event=pop3.quit sid=%s user=%s deleted=%zu", s->sid,
	    s->maildrop, deleted);
	stats_add(STATS_POP3_DELETED, deleted);
	if (s->ndeleted == 0 && expired == 0) {
		pop3_reply(s, "+OK Logging out.");
		pop3_session_close(s, "quit");
		return;
	}
	if (store_gc(srv->store, POP3_GC_BOUND, &freed) < 0)
		log_warn("event=pop3.gc error=\"%s\"", store_error(srv->store));
	pop3_reply(s, "+OK Logging out, messages deleted.");
	pop3_session_close(s, "quit");
}

/* ---- TRANSACTION ---- */

struct store_msg *
pop3_cmd_msg(struct pop3_session *s, const char *arg, const char **rest_r,
    size_t *idx_r)
{
	uint32_t n;

	if (pop3_parse_number(arg, &n, rest_r) < 0) {
		pop3_reply(s, "-ERR Invalid message number.");
		return NULL;
	}
	if (n == 0 || n > s->nmsgs) {
		pop3_reply(s, "-ERR There's no message %u.", n);
		return NULL;
	}
	if (s->deleted[n - 1]) {
		pop3_reply(s, "-ERR Message is deleted.");
		return NULL;
	}
	*idx_r = n - 1;
	return &s->msgs[n - 1];
}

static void
pop3_cmd_stat(struct pop3_session *s, char *args)
{
	uint64_t size = 0;

	for (size_t i = 0; i < s->nmsgs; i++)
		size += s->msgs[i].size;
	pop3_reply(s, "+OK %zu %llu", s->nmsgs - s->ndeleted,
	    (unsigned long long)(size - s->deleted_size));
}

static bool
pop3_cmd_list_step(struct pop3_session *s)
{
	while (s->cont_idx < s->nmsgs) {
		size_t i = s->cont_idx++;

		if (!s->deleted[i])
			pop3_reply_line(s, "%zu %llu", i + 1,
			    (unsigned long long)s->msgs[i].size);
		if (conn_output_len(s->conn) >= POP3_OUT_HIGH)
			return false;
	}
	pop3_reply_end(s);
	return true;
}

static void
pop3_cmd_list(struct pop3_session *s, char *args)
{
	struct store_msg *m;
	size_t idx;

	if (args != NULL) {
		if ((m = pop3_cmd_msg(s, args, NULL, &idx)) != NULL)
			pop3_reply(s, "+OK %zu %llu", idx + 1,
			    (unsigned long long)m->size);
		return;
	}
	s->multi = true;
	pop3_reply(s, "+OK %zu messages:", s->nmsgs - s->ndeleted);
	s->cont_idx = 0;
	pop3_session_start_cont(s, pop3_cmd_list_step);
}

static bool
pop3_cmd_uidl_step(struct pop3_session *s)
{
	while (s->cont_idx < s->nmsgs) {
		size_t i = s->cont_idx++;

		if (!s->deleted[i])
			pop3_reply_line(s, "%zu %s", i + 1, s->msgs[i].uidl);
		if (conn_output_len(s->conn) >= POP3_OUT_HIGH)
			return false;
	}
	pop3_reply_end(s);
	return true;
}

static void
pop3_cmd_uidl(struct pop3_session *s, char *args)
{
	struct store_msg *m;
	size_t idx;

	if (args != NULL) {
		if ((m = pop3_cmd_msg(s, args, NULL, &idx)) != NULL)
			pop3_reply(s, "+OK %zu %s", idx + 1, m->uidl);
		return;
	}
	s->multi = true;
	pop3_reply(s, "+OK");
	s->cont_idx = 0;
	pop3_session_start_cont(s, pop3_cmd_uidl_step);
}

void
pop3_store_snapshot(struct pop3_server *srv)
{
	/* On failure the reads just run without it (each statement is
	 * then its own snapshot, as before). */
	if (!srv->read_tx && !store_in_transaction(srv->store) &&
	    store_read_begin(srv->store) == 0)
		srv->read_tx = true;
}

void
pop3_store_snapshot_end(struct pop3_server *srv)
{
	if (!srv->read_tx)
		return;
	srv->read_tx = false;
	store_read_end(srv->store);
}

static void
pop3_cmd_retr(struct pop3_session *s, char *args)
{
	pop3_fetch_cmd(s, args, false);
}

static void
pop3_cmd_top(struct pop3_session *s, char *args)
{
	pop3_fetch_cmd(s, args, true);
}

static void
pop3_cmd_dele(struct pop3_session *s, char *args)
{
	struct store_msg *m;
	size_t idx;

	if ((m = pop3_cmd_msg(s, args, NULL, &idx)) == NULL)
		return;
	s->deleted[idx] = 1;
	s->ndeleted++;
	s->deleted_size += m->size;
	pop3_reply(s, "+OK Marked to be deleted.");
}

static void
pop3_cmd_rset(struct pop3_session *s, char *args)
{
	memset(s->deleted, 0, s->nmsgs);
	s->ndeleted = 0;
	s->deleted_size = 0;
	pop3_reply(s, "+OK");
}

static void
pop3_cmd_noop(struct pop3_session *s, char *args)
{
	pop3_reply(s, "+OK");
}
