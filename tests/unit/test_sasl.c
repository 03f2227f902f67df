/*
 * common/sasl.c, the SASL engine of smtpd and pop3d, step by step: PLAIN
 * with and without an initial response, LOGIN in two steps, "*" at every
 * step, bad base64, over-long lines, NUL bytes, empty fields, the authzid
 * rule, "=" as the empty initial response; then the check without a pool
 * and, on a real event loop with a pool, the check that waits out the
 * client's failure penalty (a right password as late as a wrong one, a
 * hang-up skips nothing, parallel sessions take turns).
 */
#include "common/auth.h"
#include "common/clientkey.h"
#include "common/log.h"
#include "common/sasl.h"
#include "common/util.h"
#include "t.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void);

#define S(lit) lit, sizeof(lit) - 1

static struct sasl sa;

static const struct sasl_mech *
mech(const char *name)
{
	return sasl_mech_find(name, strlen(name));
}

/* One step with a NUL-terminated line (NULL: no initial response). */
static enum sasl_status
step(const char *line, const char **challenge_r)
{
	return sasl_step(&sa, line, line != NULL ? strlen(line) : 0,
	    challenge_r);
}

/* base64 of raw[0..len), into a static buffer. */
static const char *
b64n(const char *raw, size_t len)
{
	static char buf[4][16384];
	static unsigned n;
	char *e = auth_base64_encode(raw, len), *out = buf[n++ % 4];

	util_strlcpy(out, e, sizeof(buf[0]));
	free(e);
	return out;
}

static const char *
b64(const char *s)
{
	return b64n(s, strlen(s));
}

/* The exchange is over and left nothing behind. */
static bool
ended(void)
{
	return !sasl_is_active(&sa) && sa.authcid == NULL &&
	    sa.password == NULL && sa.authzid == NULL;
}

static void
test_mechs(void)
{
	t_begin("mechanism table");
	t_assert(mech("PLAIN") != NULL);
	t_assert(mech("plain") == mech("PLAIN"));
	t_assert(mech("LOGIN") != NULL);
	t_assert(mech("Login") == mech("LOGIN"));
	t_assert(mech("PLAIN") != mech("LOGIN"));
	t_assert_str(sasl_mech_name(mech("plain")), "PLAIN");
	t_assert_str(sasl_mech_name(mech("login")), "LOGIN");
	t_assert(mech("PLAINX") == NULL);
	t_assert(mech("PLAI") == NULL);
	t_assert(mech("CRAM-MD5") == NULL);
	t_assert(mech("") == NULL);
	t_assert(sasl_mech_find("PLAIN xyz", 5) == mech("PLAIN"));
	t_end();
}

static void
test_plain(void)
{
	const char *ch;

	t_begin("PLAIN without initial response");
	sasl_begin(&sa, mech("PLAIN"));
	t_assert(sasl_is_active(&sa));
	t_assert_int(step(NULL, &ch), SASL_CHALLENGE);
	t_assert_str(ch, "");
	t_assert_int(step(b64n(S("\0alice@example.test\0secret")), &ch),
	    SASL_CREDS);
	t_assert(ch == NULL);
	t_assert_str(sa.authcid, "alice@example.test");
	t_assert_str(sa.password, "secret");
	t_assert_str(sa.authzid, "");
	sasl_reset(&sa);
	t_assert(ended());
	t_end();

	t_begin("PLAIN with initial response");
	sasl_begin(&sa, mech("plain"));
	t_assert_int(step(b64n(S("\0bob\0pass word")), &ch), SASL_CREDS);
	t_assert_str(sa.authcid, "bob");
	t_assert_str(sa.password, "pass word");
	sasl_reset(&sa);
	t_end();

	t_begin("PLAIN: a second NULL (no response) is bad");
	sasl_begin(&sa, mech("PLAIN"));
	t_assert_int(step(NULL, &ch), SASL_CHALLENGE);
	t_assert_int(step(NULL, &ch), SASL_BAD);
	t_assert(ended());
	t_end();
}

static void
test_login(void)
{
	const char *ch;

	t_begin("LOGIN in two steps");
	sasl_begin(&sa, mech("LOGIN"));
	t_assert_int(step(NULL, &ch), SASL_CHALLENGE);
	t_assert_str(ch, "VXNlcm5hbWU6");		/* Username: */
	t_assert_int(step(b64("alice@example.test"), &ch), SASL_CHALLENGE);
	t_assert_str(ch, "UGFzc3dvcmQ6");		/* Password: */
	t_assert_str(sa.authcid, "alice@example.test");
	t_assert(sa.password == NULL);
	t_assert_int(step(b64("secret"), &ch), SASL_CREDS);
	t_assert_str(sa.authcid, "alice@example.test");
	t_assert_str(sa.password, "secret");
	t_assert_str(sa.authzid, "");
	sasl_reset(&sa);
	t_assert(ended());
	t_end();

	t_begin("LOGIN with the user as initial response");
	sasl_begin(&sa, mech("LOGIN"));
	t_assert_int(step(b64("bob@example.test"), &ch), SASL_CHALLENGE);
	t_assert_str(ch, "UGFzc3dvcmQ6");
	t_assert_int(step(b64("pw"), &ch), SASL_CREDS);
	t_assert_str(sa.authcid, "bob@example.test");
	t_assert_str(sa.password, "pw");
	sasl_reset(&sa);
	t_end();

	t_begin("LOGIN: empty user, empty password, NUL inside are bad");
	sasl_begin(&sa, mech("LOGIN"));
	t_assert_int(step(NULL, &ch), SASL_CHALLENGE);
	t_assert_int(step("", &ch), SASL_BAD);		/* "" decodes to "" */
	t_assert(ended());
	sasl_begin(&sa, mech("LOGIN"));
	t_assert_int(step(b64("u"), &ch), SASL_CHALLENGE);
	t_assert_int(step("", &ch), SASL_BAD);
	t_assert(ended());
	sasl_begin(&sa, mech("LOGIN"));
	t_assert_int(step(b64n(S("u\0v")), &ch), SASL_BAD);
	sasl_begin(&sa, mech("LOGIN"));
	t_assert_int(step(b64("u"), &ch), SASL_CHALLENGE);
	t_assert_int(step(b64n(S("p\0q")), &ch), SASL_BAD);
	t_assert(ended());
	sasl_begin(&sa, mech("LOGIN"));
	t_assert_int(step(b64n(S("\xff\xfe")), &ch), SASL_BAD);	/* UTF-8 */
	t_end();
}

static void
test_abort(void)
{
	const char *ch;

	t_begin("\"*\" aborts at every step");
	/* PLAIN: as the initial response, and after the challenge. */
	sasl_begin(&sa, mech("PLAIN"));
	t_assert_int(step("*", &ch), SASL_ABORT);
	t_assert(ended());
	sasl_begin(&sa, mech("PLAIN"));
	t_assert_int(step(NULL, &ch), SASL_CHALLENGE);
	t_assert_int(step("*", &ch), SASL_ABORT);
	t_assert(ended());
	/* LOGIN: initial response, user, password. */
	sasl_begin(&sa, mech("LOGIN"));
	t_assert_int(step("*", &ch), SASL_ABORT);
	t_assert(ended());
	sasl_begin(&sa, mech("LOGIN"));
	t_assert_int(step(NULL, &ch), SASL_CHALLENGE);
	t_assert_int(step("*", &ch), SASL_ABORT);
	t_assert(ended());
	sasl_begin(&sa, mech("LOGIN"));
	t_assert_int(step(NULL, &ch), SASL_CHALLENGE);
	t_assert_int(step(b64("alice"), &ch), SASL_CHALLENGE);
	t_assert_int(step("*", &ch), SASL_ABORT);
	t_assert(ended());
	sasl_begin(&sa, mech("LOGIN"));
	t_assert_int(step(b64("alice"), &ch), SASL_CHALLENGE);
	t_assert_int(step("*", &ch), SASL_ABORT);
	t_assert(ended());
	/* "**" and " *" are just bad base64. */
	sasl_begin(&sa, mech("PLAIN"));
	t_assert_int(step("**", &ch), SASL_BAD);
	sasl_begin(&sa, mech("PLAIN"));
	t_assert_int(step(" *", &ch), SASL_BAD);
	t_end();
}

static void
test_bad_input(void)
{
	static const char *const bad[] = {
		"!!!notbase64", "YQ", "YWJ", "YW=j", "YW Jj", "_-__",
		"AGFsaWNlAHNlY3JldA",	/* padding missing */
		"YWJj====",
	};
	char *line;
	const char *ch;
	size_t n;

	t_begin("bad base64 at each step");
	for (size_t i = 0; i < nitems(bad); i++) {
		sasl_begin(&sa, mech("PLAIN"));
		t_assert_int(step(bad[i], &ch), SASL_BAD);
		t_assert(ended());
		sasl_begin(&sa, mech("PLAIN"));
		t_assert_int(step(NULL, &ch), SASL_CHALLENGE);
		t_assert_int(step(bad[i], &ch), SASL_BAD);
		t_assert(ended());
		sasl_begin(&sa, mech("LOGIN"));
		t_assert_int(step(bad[i], &ch), SASL_BAD);
		sasl_begin(&sa, mech("LOGIN"));
		t_assert_int(step(b64("u"), &ch), SASL_CHALLENGE);
		t_assert_int(step(bad[i], &ch), SASL_BAD);
		t_assert(ended());
	}
	t_end();

	t_begin("a NUL byte in the line is bad");
	sasl_begin(&sa, mech("PLAIN"));
	t_assert_int(sasl_step(&sa, "AGFsaWNlAHNlY3JldA==\0", 21, &ch),
	    SASL_BAD);
	t_assert(ended());
	t_end();

	t_begin("over-long input");
	/* "\0u\0" + 9213 bytes: exactly SASL_LINE_MAX of base64. */
	n = SASL_LINE_MAX / 4 * 3;
	line = xmalloc(n + 8);
	memcpy(line, "\0u\0", 3);
	memset(line + 3, 'p', n - 3);
	sasl_begin(&sa, mech("PLAIN"));
	t_assert_int(strlen(b64n(line, n)), SASL_LINE_MAX);
	t_assert_int(step(b64n(line, n), &ch), SASL_CREDS);
	t_assert_int(strlen(sa.password), n - 3);
	sasl_reset(&sa);
	/* Three bytes more: four base64 characters past the limit. */
	memset(line + n, 'p', 6);
	t_assert_int(strlen(b64n(line, n + 3)), SASL_LINE_MAX + 4);
	sasl_begin(&sa, mech("PLAIN"));
	t_assert_int(step(b64n(line, n + 3), &ch), SASL_BAD);
	t_assert(ended());
	sasl_begin(&sa, mech("LOGIN"));
	t_assert_int(step(b64("u"), &ch), SASL_CHALLENGE);
	t_assert_int(step(b64n(line + 3, n), &ch), SASL_CREDS);	/* at it */
	sasl_reset(&sa);
	sasl_begin(&sa, mech("LOGIN"));
	t_assert_int(step(b64("u"), &ch), SASL_CHALLENGE);
	t_assert_int(step(b64n(line + 3, n + 3), &ch), SASL_BAD);
	t_assert(ended());
	free(line);
	t_end();

	t_begin("a step without an exchange is bad");
	sasl_reset(&sa);
	t_assert_int(step(b64n(S("\0a\0b")), &ch), SASL_BAD);
	t_end();
}

static void
test_empty_ir(void)
{
	const char *ch;

	t_begin("\"=\" is the empty initial response");
	/* PLAIN: an empty message has no NULs. */
	sasl_begin(&sa, mech("PLAIN"));
	t_assert_int(step("=", &ch), SASL_BAD);
	t_assert(ended());
	/* LOGIN: an empty user name. */
	sasl_begin(&sa, mech("LOGIN"));
	t_assert_int(step("=", &ch), SASL_BAD);
	t_assert(ended());
	/* After a challenge "=" is only bad base64. */
	sasl_begin(&sa, mech("PLAIN"));
	t_assert_int(step(NULL, &ch), SASL_CHALLENGE);
	t_assert_int(step("=", &ch), SASL_BAD);
	/* An empty continuation line is an empty response. */
	sasl_begin(&sa, mech("PLAIN"));
	t_assert_int(step(NULL, &ch), SASL_CHALLENGE);
	t_assert_int(step("", &ch), SASL_BAD);
	t_end();
}

/* RFC 4616 messages, with the authzid rule: empty, or the authcid itself
 * (ignoring case); any other identity is refused. */
static void
test_plain_table(void)
{
	static const struct {
		const char *raw;
		size_t len;	/* raw has NULs: explicit length */
		const char *user, *pass, *authzid;	/* NULL: refused */
	} cases[] = {
		{ S("\0alice@example.test\0secret"), "alice@example.test",
		  "secret", "" },
		{ S("alice@example.test\0alice@example.test\0pw"),
		  "alice@example.test", "pw", "alice@example.test" },
		{ S("ALICE@example.test\0alice@example.test\0pw"),
		  "alice@example.test", "pw", "ALICE@example.test" },
		{ S("\0u\0pass word with spaces"), "u",
		  "pass word with spaces", "" },
		{ S("bob@example.test\0alice@example.test\0pw"), NULL, NULL,
		  NULL },
		{ S("alice@example.tes\0alice@example.test\0pw"), NULL, NULL,
		  NULL },
		{ S("alice@example.test \0alice@example.test\0pw"), NULL,
		  NULL, NULL },
		{ S("\0alice\0"), NULL, NULL, NULL },	/* empty password */
		{ S("\0\0secret"), NULL, NULL, NULL },	/* empty authcid */
		{ S("alice\0secret"), NULL, NULL, NULL },	/* one NUL */
		{ S("alicesecret"), NULL, NULL, NULL },	/* no NUL */
		{ S("\0alice\0sec\0ret"), NULL, NULL, NULL },	/* 3 NULs */
		{ S(""), NULL, NULL, NULL },
		{ S("\0\xff\xfe\0secret"), NULL, NULL, NULL },	/* UTF-8 */
		{ S("\0j\xc3\xbcrgen\0secret"), "j\xc3\xbcrgen", "secret",
		  "" },
	};
	const char *ch;
	enum sasl_status st;

	t_begin("PLAIN messages and the authzid rule");
	for (size_t i = 0; i < nitems(cases); i++) {
		sasl_begin(&sa, mech("PLAIN"));
		st = step(b64n(cases[i].raw, cases[i].len), &ch);
		if (cases[i].user == NULL) {
			if (st != SASL_BAD)
				fprintf(stderr, "case %zu accepted\n", i);
			t_assert_int(st, SASL_BAD);
			t_assert(ended());
			continue;
		}
		t_assert_int(st, SASL_CREDS);
		if (st != SASL_CREDS) {
			fprintf(stderr, "case %zu refused\n", i);
			continue;
		}
		t_assert_str(sa.authcid, cases[i].user);
		t_assert_str(sa.password, cases[i].pass);
		t_assert_str(sa.authzid, cases[i].authzid);
		sasl_reset(&sa);
	}
	t_end();
}

/* ---- the check and the penalty, on a loop with a pool ---- */

/* A user database of one: alice@example.test, password "secret". */
static char *fake_hash;
static int fake_handle;

static void *
fake_open(const char *path, const char **error_r)
{
	(void)path;
	(void)error_r;
	return &fake_handle;
}

static void
fake_close(void *h)
{
	(void)h;
}

static int
fake_lookup(void *h, const char *address, struct auth_user *u)
{
	(void)h;
	if (strcmp(address, "alice@example.test") != 0)
		return 1;
	u->address = xstrdup(address);
	u->hash = xstrdup(fake_hash);
	u->enabled = true;
	return 0;
}

static int
fake_set_hash(void *h, const char *address, const char *hash)
{
	(void)h;
	(void)address;
	(void)hash;
	return 0;
}

static const struct auth_db fake_db = {
	fake_open, fake_close, fake_lookup, fake_set_hash,
};

/* One session's view: which struct sasl, what came back, when. */
struct check_ctx {
	struct sasl *sa;
	struct event_base *base;
	int calls;
	enum auth_result res;
	uint64_t at_ms;
	int *pending;		/* loop breaks when it reaches 0 */
};

static void
check_cb(uint64_t token, enum auth_result res, const char *canonical,
    void *arg)
{
	struct check_ctx *c = arg;

	(void)canonical;
	if (!sasl_checked(c->sa, token))
		return;
	c->calls++;
	c->res = res;
	c->at_ms = util_now_ms();
	if (--*c->pending == 0)
		event_base_loopbreak(c->base);
}

static void
check_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

/* Run the loop until *pending callbacks came (or 10 s passed). */
static void
check_run(struct event_base *base)
{
	struct timeval tv = { 10, 0 };
	struct event *t = evtimer_new(base, check_timeout, base);

	evtimer_add(t, &tv);
	event_base_dispatch(base);
	event_free(t);
}

/* Submit user/password from k on sa; 0 or -1 as sasl_check. */
static int
check_start(struct check_ctx *c, const struct client_key *k,
    const char *user, const char *password)
{
	sasl_set_creds(c->sa, user, password);
	return sasl_check(c->sa, k, check_cb, c);
}

static void
test_check_and_penalty(void)
{
	struct event_base *base = event_base_new();
	struct auth_pool *pool;
	struct sasl sb;
	struct check_ctx c, d;
	struct client_key k;
	int pending;
	uint64_t t0, fail_at;

	t_begin("check without a pool: -1, password wiped and gone");
	sasl_init(&sa, base, NULL);
	sasl_set_creds(&sa, "alice@example.test", "secret");
	t_assert_str(sa.authcid, "alice@example.test");
	t_assert_str(sa.password, "secret");
	client_key_from_ip(&k, "192.0.2.9");
	t_assert_int(sasl_check(&sa, &k, NULL, NULL), -1);
	t_assert(sa.password == NULL);
	t_assert(sa.token == 0);
	t_assert_str(sa.authcid, "alice@example.test");	/* for logs */
	t_assert(!sasl_checked(&sa, 0));
	t_assert(!sasl_checked(&sa, 7));
	sasl_reset(&sa);
	t_assert(ended());
	sasl_clear(&sa);
	t_end();

	/* 100 ms after one failure, 200 ms after two and more. */
	setenv("CARTEIRO_TEST_AUTH_PENALTY_MS", "100,200", 1);
	auth_penalty_reset();
	t_assert_int(auth_hash_password("secret", &fake_hash), 0);
	pool = auth_pool_new(base, &fake_db, "-", 2, 16);
	t_assert(pool != NULL);
	sasl_init(&sa, base, pool);
	sasl_init(&sb, base, pool);
	memset(&c, 0, sizeof(c));
	c.sa = &sa;
	c.base = base;
	c.pending = &pending;
	d = c;
	d.sa = &sb;

	t_begin("penalty: fail counts per client, the reply is not delayed");
	client_key_from_ip(&k, "2001:db8:1:1::5");
	t_assert_int(sasl_fail(&sa, &k), 100);
	client_key_from_ip(&k, "2001:db8:1:1::6");	/* the same /64 */
	t_assert_int(sasl_fail(&sa, &k), 200);
	sasl_success(&sa, &k);
	client_key_from_ip(&k, "2001:db8:1:1::5");
	t_assert_int(auth_penalty_wait_ms(&k), 0);
	t_end();

	t_begin("penalty: a first check runs at once");
	client_key_from_ip(&k, "192.0.2.9");
	pending = 1;
	t0 = util_now_ms();
	t_assert_int(check_start(&c, &k, "alice@example.test", "wrong"), 0);
	t_assert(!sa.waiting);
	t_assert(sa.token != 0);
	t_assert(sa.password == NULL);
	check_run(base);
	t_assert_int(c.calls, 1);
	t_assert_int(c.res, AUTH_FAIL);
	t_assert_int(sasl_fail(&sa, &k), 100);
	fail_at = util_now_ms();
	fprintf(stderr, "  first check: %llu ms\n",
	    (unsigned long long)(fail_at - t0));
	t_end();

	t_begin("penalty: a right password right after is not checked sooner");
	pending = 1;
	t_assert_int(check_start(&c, &k, "alice@example.test", "secret"), 0);
	t_assert(sa.waiting);
	t_assert(sa.token == 0);
	t_assert(sa.password != NULL);	/* kept for the check, wiped after */
	check_run(base);
	t_assert_int(c.calls, 2);
	t_assert_int(c.res, AUTH_OK);
	t_assert(c.at_ms - fail_at >= 95);
	t_assert(sa.password == NULL);
	sasl_success(&sa, &k);
	t_assert_int(auth_penalty_wait_ms(&k), 0);
	t_end();

	t_begin("penalty: a hang-up during the wait skips nothing");
	sasl_fail(&sa, &k);
	t_assert_int(sasl_fail(&sa, &k), 200);
	fail_at = util_now_ms();
	t_assert_int(check_start(&c, &k, "alice@example.test", "x"), 0);
	t_assert(sa.waiting);
	sasl_reset(&sa);			/* the client hangs up */
	t_assert(!sa.waiting);
	t_assert(sa.password == NULL);
	t_assert(auth_penalty_wait_ms(&k) > 150);
	/* It reconnects: the new session waits the rest. */
	pending = 1;
	t_assert_int(check_start(&c, &k, "alice@example.test", "y"), 0);
	t_assert(sa.waiting);
	check_run(base);
	t_assert_int(c.calls, 3);		/* the dropped one never ran */
	t_assert_int(c.res, AUTH_FAIL);
	t_assert(c.at_ms - fail_at >= 195);
	sasl_fail(&sa, &k);
	t_end();

	t_begin("penalty: two sessions of one client take turns");
	fail_at = util_now_ms();
	pending = 2;
	t_assert_int(check_start(&c, &k, "alice@example.test", "a"), 0);
	t_assert_int(check_start(&d, &k, "alice@example.test", "b"), 0);
	t_assert(sa.waiting && sb.waiting);
	check_run(base);
	t_assert_int(c.calls, 4);
	t_assert_int(d.calls, 1);
	t_assert(c.at_ms - fail_at >= 195 && d.at_ms - fail_at >= 195);
	/* The second check started a whole penalty after the first one
	 * failed: two penalties after fail_at. (Measured from fail_at, not
	 * between the two callbacks: a loaded machine may run both callbacks
	 * in one loop turn, but it cannot make a wait shorter.) */
	t_assert((c.at_ms > d.at_ms ? c.at_ms : d.at_ms) - fail_at >= 390);
	t_end();

	t_begin("penalty: clear during the wait, the timer never fires");
	/* A fresh failure: on a loaded machine the last one's penalty may
	 * already have run out. */
	sasl_fail(&sa, &k);
	t_assert_int(check_start(&c, &k, "alice@example.test", "z"), 0);
	t_assert(sa.waiting);
	sasl_clear(&sa);
	event_base_loop(base, EVLOOP_NONBLOCK);
	t_assert_int(c.calls, 4);
	t_end();

	sasl_clear(&sa);
	sasl_clear(&sb);
	auth_pool_free(pool);
	free(fake_hash);
	unsetenv("CARTEIRO_TEST_AUTH_PENALTY_MS");
	auth_penalty_reset();
	event_base_free(base);
}

int
main(void)
{
	log_init("test_sasl", 1, LOG_LVL_WARN);
	sasl_init(&sa, NULL, NULL);
	test_mechs();
	test_plain();
	test_login();
	test_abort();
	test_bad_input();
	test_empty_ir();
	test_plain_table();
	test_check_and_penalty();
	sasl_clear(&sa);
	return t_exit();
}
