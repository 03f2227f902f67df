/*
 * The SASL server shared by smtpd (RFC 4954 AUTH) and pop3d (RFC 5034 AUTH,
 * and RFC 1939 USER/PASS, which takes the same check and delay path): the
 * mechanism table (PLAIN, RFC 4616; LOGIN), one step function that turns
 * each client line into a challenge, credentials, an abort or bad input,
 * and the password check on the auth pool, which first waits out the
 * client's failure penalty (auth.h). It decodes base64 and wipes every buffer of its own that
 * held a password or its base64 (through auth.c, the one file that sees
 * libsodium). The line itself belongs to the conn: the daemons wipe it with
 * conn_wipe_line. No protocol text here; the daemons turn results into
 * replies.
 */
#ifndef CARTEIRO_SASL_H
#define CARTEIRO_SASL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/auth.h"

struct client_key;
struct event;
struct event_base;

/* Longest response line (base64 text, without CRLF) a step accepts:
 * RFC 4954 4 lets SASL lines reach 12288 octets. */
#define SASL_LINE_MAX	12288

enum sasl_status {
	SASL_CHALLENGE,	/* send *challenge_r (base64, static), await a line */
	SASL_CREDS,	/* authcid/password/authzid set: sasl_check them */
	SASL_ABORT,	/* the client sent "*" */
	SASL_BAD,	/* bad base64, over-long, NUL or empty field, or the
			 * authzid rule broken: the exchange is over */
};

struct sasl;
struct sasl_mech;

/*
 * One exchange per session, embedded in the session. Between exchanges
 * only the pool and base fields mean anything.
 */
struct sasl {
	const struct sasl_mech *mech;	/* NULL: no exchange running */
	uint8_t step;			/* lines taken so far */
	bool waiting;			/* check held back by the penalty */
	char *authcid;			/* owned: kept for the logs until
					 * sasl_reset */
	char *authzid;			/* owned: "" or equal to authcid */
	char *password;			/* owned, wiped: from SASL_CREDS
					 * until the check is submitted */
	uint64_t token;			/* auth pool request, 0 if none */
	struct auth_pool *pool;		/* borrowed */
	struct event_base *base;	/* borrowed, for the wait timer */
	struct event *wait;		/* penalty wait, lazy */
	const struct client_key *key;	/* borrowed (the session's): whose
					 * penalty the check pays */
	auth_done_cb *cb;		/* sasl_check's callback */
	void *cb_arg;
};

/* A token of our own: the check could not be submitted after its wait
 * (pool full), and cb gets AUTH_TEMPFAIL with it. */
#define SASL_TOKEN_LOCAL	UINT64_MAX

/* Set up an embedded struct sasl (pool may be NULL: every check is a
 * tempfail). */
void sasl_init(struct sasl *sa, struct event_base *base,
    struct auth_pool *pool);
/* End of the session: cancel a pending check and the timer, wipe and free
 * everything. The struct may be freed afterwards. */
void sasl_clear(struct sasl *sa);

/* The mechanism named name[0..len) (case-insensitive), NULL if we have no
 * such mechanism. */
const struct sasl_mech *sasl_mech_find(const char *name, size_t len);
/* "PLAIN", "LOGIN". */
const char *sasl_mech_name(const struct sasl_mech *m);

/* Start an exchange (drops whatever a previous one left). */
void sasl_begin(struct sasl *sa, const struct sasl_mech *m);
/*
 * Feed one client line: right after sasl_begin the initial response (NULL
 * if the command carried none; "=" is an empty one, RFC 4954 4), then each
 * continuation line. line[0..len) is borrowed, NUL-terminated at len, and
 * not changed (the caller wipes it). SASL_CHALLENGE gives *challenge_r; after SASL_ABORT and
 * SASL_BAD the exchange has been reset; after SASL_CREDS call sasl_check.
 */
enum sasl_status sasl_step(struct sasl *sa, const char *line, size_t len,
    const char **challenge_r);
/* Credentials from outside SASL (POP3 USER/PASS): copies both, for
 * sasl_check. */
void sasl_set_creds(struct sasl *sa, const char *authcid,
    const char *password);

/*
 * Check authcid/password for the client k (borrowed: it must outlive the
 * exchange) on the auth pool. While k owes a failure penalty (auth.h) the
 * check waits on a timer first, with the password kept (wiped) here, and
 * takes its turn after the other sessions of k; sasl_reset (a hang-up)
 * drops it, which shortens nothing for the next session from k. The
 * password is wiped and freed once submitted, whatever happens. 0: cb
 * runs on the loop later (it should start with sasl_checked) unless
 * sasl_clear/sasl_reset cancels it; when the pool is full after a wait it
 * gets SASL_TOKEN_LOCAL and AUTH_TEMPFAIL. -1 when the pool is full or
 * absent now (treat as AUTH_TEMPFAIL; cb never runs).
 */
int sasl_check(struct sasl *sa, const struct client_key *k,
    auth_done_cb *cb, void *arg);
/* The check's callback ran: whether token is the one we wait for (false:
 * stale, ignore it). Clears sa->token. */
bool sasl_checked(struct sasl *sa, uint64_t token);

/* A good login from k: forget its failures. */
void sasl_success(struct sasl *sa, const struct client_key *k);
/* A failed login from k: count it and return the penalty (ms) its next
 * check now owes (auth_penalty_delay_ms). Reply at once: the next check
 * waits instead. */
unsigned sasl_fail(struct sasl *sa, const struct client_key *k);

/* End the exchange: wipe and free the credentials, cancel a pending check
 * (and its penalty wait). */
void sasl_reset(struct sasl *sa);
/* Whether an exchange runs (between sasl_begin and its end). */
bool sasl_is_active(const struct sasl *sa);

#endif
