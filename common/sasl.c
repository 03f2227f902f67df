/*
 * The SASL engine (sasl.h): the mechanism table, the step function and
 * the credential check on the auth pool, after the client's failure
 * penalty. Wipes every decoded buffer and every copy of a password it
 * makes; the line it is fed is the caller's. Never logs: the daemons log
 * with their session ids.
 */
#include "common/sasl.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "common/addr.h"
#include "common/auth.h"
#include "common/log.h"
#include "common/util.h"

/* One mechanism: its name, the challenge when there is no initial
 * response, and the step that takes one decoded client response. */
struct sasl_mech {
	const char *name;
	const char *first;		/* base64 */
	enum sasl_status (*step)(struct sasl *sa, char *data, size_t len,
	    const char **challenge_r);
};

static enum sasl_status sasl_plain_step(struct sasl *, char *, size_t,
    const char **);
static enum sasl_status sasl_login_step(struct sasl *, char *, size_t,
    const char **);
static bool sasl_authcid_ok(const char *s, size_t len);
static void sasl_wait_fire(evutil_socket_t fd, short what, void *arg);
static void sasl_wait_arm(struct sasl *sa, unsigned ms);
static int sasl_submit(struct sasl *sa);

static const struct sasl_mech sasl_mechs[] = {
	/* RFC 4954 4: an empty challenge asks for the PLAIN response. */
	{ "PLAIN", "", sasl_plain_step },
	{ "LOGIN", "VXNlcm5hbWU6", sasl_login_step },	/* "Username:" */
};

void
sasl_init(struct sasl *sa, struct event_base *base, struct auth_pool *pool)
{
	memset(sa, 0, sizeof(*sa));
	sa->base = base;
	sa->pool = pool;
}

void
sasl_clear(struct sasl *sa)
{
	sasl_reset(sa);
	if (sa->wait != NULL)
		event_free(sa->wait);
	sa->wait = NULL;
}

const struct sasl_mech *
sasl_mech_find(const char *name, size_t len)
{
	for (size_t i = 0; i < nitems(sasl_mechs); i++)
		if (strlen(sasl_mechs[i].name) == len &&
		    strncasecmp(sasl_mechs[i].name, name, len) == 0)
			return &sasl_mechs[i];
	return NULL;
}

const char *
sasl_mech_name(const struct sasl_mech *m)
{
	return m->name;
}

bool
sasl_is_active(const struct sasl *sa)
{
	return sa->mech != NULL;
}

void
sasl_reset(struct sasl *sa)
{
	if (sa->token != 0 && sa->token != SASL_TOKEN_LOCAL &&
	    sa->pool != NULL)
		auth_pool_cancel(sa->pool, sa->token);
	sa->token = 0;
	if (sa->waiting)
		evtimer_del(sa->wait);
	sa->waiting = false;
	sa->key = NULL;
	sa->cb = NULL;
	sa->cb_arg = NULL;
	auth_wipe_free(sa->password);
	auth_wipe_free(sa->authcid);
	auth_wipe_free(sa->authzid);
	sa->password = sa->authcid = sa->authzid = NULL;
	sa->mech = NULL;
	sa->step = 0;
}

void
sasl_begin(struct sasl *sa, const struct sasl_mech *m)
{
	sasl_reset(sa);
	sa->mech = m;
}

enum sasl_status
sasl_step(struct sasl *sa, const char *line, size_t len,
    const char **challenge_r)
{
	enum sasl_status st;
	char *data;
	size_t dlen;

	*challenge_r = NULL;
	if (sa->mech == NULL)
		return SASL_BAD;
	if (line == NULL) {
		/* No initial response: only the first step may lack one. */
		if (sa->step != 0) {
			sasl_reset(sa);
			return SASL_BAD;
		}
		sa->step = 1;
		*challenge_r = sa->mech->first;
		return SASL_CHALLENGE;
	}
	/* RFC 4954 4, RFC 5034 4: "*" cancels, at any step. */
	if (len == 1 && line[0] == '*') {
		sasl_reset(sa);
		return SASL_ABORT;
	}
	assert(line[len] == '\0');
	if (len > SASL_LINE_MAX || memchr(line, '\0', len) != NULL) {
		sasl_reset(sa);
		return SASL_BAD;
	}
	/* RFC 4954 4: "=" is an empty initial response. */
	if (sa->step == 0 && len == 1 && line[0] == '=')
		data = auth_base64_decode("", &dlen);
	else
		data = auth_base64_decode(line, &dlen);
	sa->step++;
	if (data == NULL) {
		sasl_reset(sa);
		return SASL_BAD;
	}
	st = sa->mech->step(sa, data, dlen, challenge_r);
	auth_wipe(data, dlen);
	free(data);
	if (st == SASL_BAD)
		sasl_reset(sa);
	return st;
}

/* Non-empty, no NUL, valid UTF-8 (RFC 4616 2: UTF8-SAFE). */
static bool
sasl_authcid_ok(const char *s, size_t len)
{
	return len > 0 && memchr(s, '\0', len) == NULL &&
	    addr_utf8_valid(s, len);
}

/* RFC 4616 2: message = [authzid] NUL authcid NUL passwd */
static enum sasl_status
sasl_plain_step(struct sasl *sa, char *data, size_t len,
    const char **challenge_r)
{
	char *authcid, *passwd, *nul;
	size_t zlen, clen, plen;

	(void)challenge_r;
	if ((nul = memchr(data, '\0', len)) == NULL)
		return SASL_BAD;
	zlen = (size_t)(nul - data);
	authcid = nul + 1;
	if ((nul = memchr(authcid, '\0', len - zlen - 1)) == NULL)
		return SASL_BAD;
	clen = (size_t)(nul - authcid);
	passwd = nul + 1;
	plen = len - zlen - clen - 2;
	if (!sasl_authcid_ok(authcid, clen) || plen == 0 ||
	    memchr(passwd, '\0', plen) != NULL)
		return SASL_BAD;
	/* We do not let one user act as another: the authzid is empty or
	 * the authcid itself (ignoring case). */
	if (zlen != 0 && (zlen != clen || strncasecmp(data, authcid,
	    clen) != 0))
		return SASL_BAD;
	sa->authzid = xstrndup(data, zlen);
	sa->authcid = xstrndup(authcid, clen);
	sa->password = xstrndup(passwd, plen);
	return SASL_CREDS;
}

/* LOGIN (draft-murchison-sasl-login): the user name, then the password,
 * each alone in one response. */
static enum sasl_status
sasl_login_step(struct sasl *sa, char *data, size_t len,
    const char **challenge_r)
{
	if (sa->authcid == NULL) {
		if (!sasl_authcid_ok(data, len))
			return SASL_BAD;
		sa->authcid = xstrndup(data, len);
		sa->authzid = xstrdup("");
		*challenge_r = "UGFzc3dvcmQ6";		/* "Password:" */
		return SASL_CHALLENGE;
	}
	if (len == 0 || memchr(data, '\0', len) != NULL)
		return SASL_BAD;
	sa->password = xstrndup(data, len);
	return SASL_CREDS;
}

void
sasl_set_creds(struct sasl *sa, const char *authcid, const char *password)
{
	sasl_reset(sa);
	sa->authcid = xstrdup(authcid);
	sa->authzid = xstrdup("");
	sa->password = xstrdup(password);
}

/* Hand the credentials to the pool now; the password is wiped either
 * way. 0 with sa->token set, or -1 (pool full or absent). */
static int
sasl_submit(struct sasl *sa)
{
	uint64_t token = 0;

	if (sa->pool != NULL && sa->authcid != NULL && sa->password != NULL)
		token = auth_pool_submit(sa->pool, sa->authcid, sa->password,
		    sa->cb, sa->cb_arg);
	auth_wipe_free(sa->password);
	sa->password = NULL;
	sa->token = token;
	if (token == 0)
		return -1;
	if (sa->key != NULL)
		auth_penalty_start(sa->key);
	return 0;
}

static void
sasl_wait_arm(struct sasl *sa, unsigned ms)
{
	struct timeval tv;

	if (sa->wait == NULL)
		sa->wait = evtimer_new(sa->base, sasl_wait_fire, sa);
	if (sa->wait == NULL)
		log_fatal("event=oom where=sasl_wait_arm");
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(sa->wait, &tv);
	sa->waiting = true;
}

/* The penalty is over, unless another session of the client took the turn
 * meanwhile (then wait again). */
static void
sasl_wait_fire(evutil_socket_t fd, short what, void *arg)
{
	struct sasl *sa = arg;
	unsigned ms;

	(void)fd;
	(void)what;
	sa->waiting = false;
	if ((ms = auth_penalty_wait_ms(sa->key)) > 0) {
		sasl_wait_arm(sa, ms);
		return;
	}
	if (sasl_submit(sa) != 0) {
		sa->token = SASL_TOKEN_LOCAL;
		sa->cb(SASL_TOKEN_LOCAL, AUTH_TEMPFAIL, NULL, sa->cb_arg);
	}
}

int
sasl_check(struct sasl *sa, const struct client_key *k, auth_done_cb *cb,
    void *arg)
{
	unsigned ms;

	sa->key = k;
	sa->cb = cb;
	sa->cb_arg = arg;
	if (sa->pool == NULL || sa->authcid == NULL || sa->password == NULL ||
	    k == NULL || (ms = auth_penalty_wait_ms(k)) == 0)
		return sasl_submit(sa);
	/* The client owes a penalty: the check itself waits, so neither a
	 * hang-up nor a right password gets an answer sooner. */
	sasl_wait_arm(sa, ms);
	return 0;
}

bool
sasl_checked(struct sasl *sa, uint64_t token)
{
	if (sa->token == 0 || token != sa->token)
		return false;
	sa->token = 0;
	return true;
}

void
sasl_success(struct sasl *sa, const struct client_key *k)
{
	(void)sa;
	auth_penalty_success(k);
}

unsigned
sasl_fail(struct sasl *sa, const struct client_key *k)
{
	(void)sa;
	auth_penalty_fail(k);
	return auth_penalty_delay_ms(k);
}
