/*
 * common/auth.c: password checks against a temp-dir store, rehash on
 * parameter change, timing of unknown users, the worker pool on a real
 * libevent loop, the failure penalty (per client key) and base64. The
 * store is the user database through store/auth_db.c. The SASL engine is
 * test_sasl.c's.
 */
#include "common/auth.h"
#include "common/clientkey.h"
#include "common/log.h"
#include "common/util.h"
#include "store/auth_db.h"
#include "store/store.h"
#include "t.h"

#include <event2/event.h>
#include <sqlite3.h>	/* test only: flip users.enabled (no store API) */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void);

/* crypto_pwhash_str("secret", OPSLIMIT_MIN, MEMLIMIT_MIN): a valid argon2id
 * hash with weaker parameters than ours. */
static const char weak_hash[] =
    "$argon2id$v=19$m=8,t=1,p=1$jkambtz9isATmSFKImCqVA$"
    "YuHweaWR0NTwZCMZdmT/ckS4MW2bJ2XTW/cdtFTggwE";
/* crypto_pwhash_str("secret", 2, 64 MiB): libsodium's interactive limits,
 * the default before OWASP's 19 MiB. */
static const char heavy_hash[] =
    "$argon2id$v=19$m=65536,t=2,p=1$wa/NX3vxYFLEPjXb0mnnMg$"
    "LADTW28gJQ5tSHp0IJpQI7TlaZkHTjBHgOaUfuVRqhg";
/* The same password with 19 MiB and 3 passes: more passes than ours. */
static const char morepasses_hash[] =
    "$argon2id$v=19$m=19456,t=3,p=1$zh7noUN4L6HVuIK2KQhe1w$"
    "zBzLE87moqDxiN4xRvkm1ii2MuJohTvd0md+qGZZpxg";
/* What every new hash starts with. */
#define NEW_PARAMS "$argon2id$v=19$m=19456,t=2,p=1$"

/* A client key for the text form (a ring: several may be live in one
 * expression). */
static const struct client_key *
key(const char *ip)
{
	static struct client_key ring[4];
	static unsigned n;
	struct client_key *k = &ring[n++ % 4];

	client_key_from_ip(k, ip);
	return k;
}

/* auth_check with the store as the user database. */
static enum auth_result
check(struct store *st, const char *address, const char *password,
    char **canonical_r)
{
	return auth_check(&store_auth_db, st, NULL, address, password, canonical_r);
}

static char tmpdir[256];
static char dbpath[300];

static struct store *
test_store(void)
{
	struct store *st;
	const char *error;
	char *hash;

	util_strlcpy(tmpdir, "/tmp/carteiro-test-auth-XXXXXX", sizeof(tmpdir));
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(dbpath, sizeof(dbpath), "%s/mail.db", tmpdir);
	st = store_open(dbpath, &error);
	if (st == NULL || store_migrate(st) != 0) {
		fprintf(stderr, "store: %s\n", st ? store_error(st) : error);
		exit(1);
	}
	if (store_domain_add(st, "example.test") != 0 ||
	    auth_hash_password("secret", &hash) != 0 ||
	    store_user_add(st, "alice@example.test", hash) != 0 ||
	    store_user_add(st, "carol@example.test", hash) != 0 ||
	    store_user_add(st, "old@example.test", weak_hash) != 0 ||
	    store_user_add(st, "heavy@example.test", heavy_hash) != 0 ||
	    store_user_add(st, "passes@example.test", morepasses_hash) != 0) {
		fprintf(stderr, "setup: %s\n", store_error(st));
		exit(1);
	}
	free(hash);
	return st;
}

static void
test_disable(const char *address)
{
	sqlite3 *db;
	char *sql;

	t_assert(sqlite3_open(dbpath, &db) == SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	sql = sqlite3_mprintf("UPDATE users SET enabled = 0 WHERE address = %Q",
	    address);
	t_assert(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_free(sql);
	sqlite3_close(db);
}

static void
test_hash(void)
{
	char *h1, *h2;

	t_begin("hash: argon2id, salted");
	t_assert(auth_hash_password("secret", &h1) == 0);
	t_assert(auth_hash_password("secret", &h2) == 0);
	t_assert(strncmp(h1, "$argon2id$", 10) == 0);
	t_assert(strcmp(h1, h2) != 0);
	/* OWASP's minimum: 19 MiB, 2 passes, 1 lane */
	t_assert(strncmp(h1, NEW_PARAMS, strlen(NEW_PARAMS)) == 0);
	free(h1);
	free(h2);
	t_end();
}

static void
test_check(struct store *st)
{
	char *canon = (char *)1;

	t_begin("check: right password");
	t_assert_int(check(st, "alice@example.test", "secret", &canon),
	    AUTH_OK);
	t_assert_str(canon, "alice@example.test");
	free(canon);
	t_end();

	t_begin("check: case-insensitive address, stored spelling returned");
	t_assert_int(check(st, "Alice@EXAMPLE.Test", "secret", &canon),
	    AUTH_OK);
	t_assert_str(canon, "alice@example.test");
	free(canon);
	t_assert_int(check(st, "alice@example.test", "secret", NULL),
	    AUTH_OK);
	t_end();

	t_begin("check: wrong password");
	canon = (char *)1;
	t_assert_int(check(st, "alice@example.test", "Secret", &canon),
	    AUTH_FAIL);
	t_assert(canon == NULL);
	t_assert_int(check(st, "alice@example.test", "", NULL),
	    AUTH_FAIL);
	t_assert_int(check(st, "alice@example.test", "secret ", NULL),
	    AUTH_FAIL);
	t_end();

	t_begin("check: unknown user, bad address");
	t_assert_int(check(st, "nobody@example.test", "secret", NULL),
	    AUTH_FAIL);
	t_assert_int(check(st, "alice@other.test", "secret", NULL),
	    AUTH_FAIL);
	t_assert_int(check(st, "alice", "secret", NULL), AUTH_FAIL);
	t_assert_int(check(st, "", "secret", NULL), AUTH_FAIL);
	t_assert_int(check(st, "a b@example.test", "secret", NULL),
	    AUTH_FAIL);
	t_end();

	t_begin("check: disabled user");
	t_assert_int(check(st, "carol@example.test", "secret", NULL),
	    AUTH_OK);
	test_disable("carol@example.test");
	t_assert_int(check(st, "carol@example.test", "secret", NULL),
	    AUTH_FAIL);
	t_end();
}

static void
test_rehash(struct store *st)
{
	struct store_user u;

	t_begin("rehash: weak hash upgraded on successful login");
	t_assert_int(check(st, "old@example.test", "wrong", NULL),
	    AUTH_FAIL);
	t_assert(store_user_get(st, "old@example.test", &u) == 0);
	t_assert_str(u.hash, weak_hash);	/* not on failure */
	store_user_clear(&u);
	t_assert_int(check(st, "old@example.test", "secret", NULL),
	    AUTH_OK);
	t_assert(store_user_get(st, "old@example.test", &u) == 0);
	t_assert(strcmp(u.hash, weak_hash) != 0);
	t_assert(strncmp(u.hash, NEW_PARAMS, strlen(NEW_PARAMS)) == 0);
	store_user_clear(&u);
	t_assert_int(check(st, "old@example.test", "secret", NULL),
	    AUTH_OK);
	t_end();

	/* Stronger ones too: every user then costs what an unknown one
	 * costs (the dummy hash), so timing does not tell who exists. */
	t_begin("rehash: older, stronger hashes verify, then get the default");
	t_assert_int(check(st, "heavy@example.test", "wrong", NULL),
	    AUTH_FAIL);
	t_assert(store_user_get(st, "heavy@example.test", &u) == 0);
	t_assert_str(u.hash, heavy_hash);	/* not on failure */
	store_user_clear(&u);
	t_assert_int(check(st, "heavy@example.test", "secret", NULL),
	    AUTH_OK);
	t_assert(store_user_get(st, "heavy@example.test", &u) == 0);
	t_assert(strncmp(u.hash, NEW_PARAMS, strlen(NEW_PARAMS)) == 0);
	store_user_clear(&u);
	t_assert_int(check(st, "heavy@example.test", "secret", NULL),
	    AUTH_OK);
	t_assert_int(check(st, "passes@example.test", "secret", NULL),
	    AUTH_OK);
	t_assert(store_user_get(st, "passes@example.test", &u) == 0);
	t_assert(strncmp(u.hash, NEW_PARAMS, strlen(NEW_PARAMS)) == 0);
	store_user_clear(&u);
	t_end();
}

static uint64_t
test_time_check(struct store *st, const char *address)
{
	uint64_t best = UINT64_MAX, t0, dt;
	int i;

	for (i = 0; i < 3; i++) {
		t0 = util_now_ms();
		(void)check(st, address, "wrong password", NULL);
		dt = util_now_ms() - t0;
		if (dt < best)
			best = dt;
	}
	return best + 1;
}

static void
test_timing(struct store *st)
{
	uint64_t known, unknown, bad;

	t_begin("timing: unknown user costs like a known one");
	auth_init();
	known = test_time_check(st, "alice@example.test");
	unknown = test_time_check(st, "nobody@example.test");
	bad = test_time_check(st, "not an address");
	printf("# known %llu ms, unknown %llu ms, malformed %llu ms\n",
	    (unsigned long long)known, (unsigned long long)unknown,
	    (unsigned long long)bad);
	t_assert(unknown * 3 >= known && known * 3 >= unknown);
	t_assert(bad * 3 >= known && known * 3 >= bad);
	t_assert(known >= 5);	/* it really is argon2id at interactive cost */
	t_end();
}

/* ---- pool ---- */

struct test_pool_ctx {
	struct event_base *base;
	int calls;
	int expect;
	int ok, fail;
	uint64_t last_token;
	uint64_t forbidden;	/* cancelled token */
	bool forbidden_called;
	char canonical[128];
};

static void
test_pool_cb(uint64_t token, enum auth_result res, const char *canonical,
    void *arg)
{
	struct test_pool_ctx *c = arg;

	c->calls++;
	c->last_token = token;
	if (token == c->forbidden)
		c->forbidden_called = true;
	if (res == AUTH_OK) {
		c->ok++;
		util_strlcpy(c->canonical, canonical ? canonical : "(null)",
		    sizeof(c->canonical));
	} else {
		c->fail++;
		if (canonical != NULL)
			util_strlcpy(c->canonical, "non-null on fail",
			    sizeof(c->canonical));
	}
	if (c->calls >= c->expect)
		event_base_loopbreak(c->base);
}

static void
test_pool_timeout(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

static void
test_pool_run(struct test_pool_ctx *c)
{
	struct timeval tv = { 60, 0 };
	struct event *tmo = evtimer_new(c->base, test_pool_timeout, c->base);

	evtimer_add(tmo, &tv);
	event_base_dispatch(c->base);
	event_free(tmo);
}

static void
test_pool(void)
{
	struct test_pool_ctx c;
	struct auth_pool *pool;
	uint64_t tok[8];
	int i, accepted;

	memset(&c, 0, sizeof(c));
	c.base = event_base_new();

	t_begin("pool: results arrive on the loop");
	pool = auth_pool_new(c.base, &store_auth_db, dbpath, 2, 16, 0);
	t_assert(pool != NULL);
	c.expect = 4;
	t_assert(auth_pool_submit(pool, "alice@example.test", "secret",
	    test_pool_cb, &c) != 0);
	t_assert(auth_pool_submit(pool, "alice@example.test", "nope",
	    test_pool_cb, &c) != 0);
	t_assert(auth_pool_submit(pool, "ghost@example.test", "secret",
	    test_pool_cb, &c) != 0);
	t_assert(auth_pool_submit(pool, "ALICE@example.test", "secret",
	    test_pool_cb, &c) != 0);
	test_pool_run(&c);
	t_assert_int(c.calls, 4);
	t_assert_int(c.ok, 2);
	t_assert_int(c.fail, 2);
	t_assert_str(c.canonical, "alice@example.test");
	auth_pool_free(pool);
	t_end();

	t_begin("pool: cancel prevents the callback");
	memset(&c.calls, 0, sizeof(c) - offsetof(struct test_pool_ctx, calls));
	pool = auth_pool_new(c.base, &store_auth_db, dbpath, 1, 16, 0);
	/* One worker, FIFO: when tok[2] is delivered, tok[0] and tok[1] are
	 * done too, so their callbacks would have run by then. */
	tok[0] = auth_pool_submit(pool, "alice@example.test", "secret",
	    test_pool_cb, &c);
	tok[1] = auth_pool_submit(pool, "alice@example.test", "secret",
	    test_pool_cb, &c);
	tok[2] = auth_pool_submit(pool, "alice@example.test", "secret",
	    test_pool_cb, &c);
	t_assert(tok[0] != 0 && tok[1] != 0 && tok[2] != 0);
	t_assert(tok[0] != tok[1] && tok[1] != tok[2]);
	auth_pool_cancel(pool, tok[0]);	/* probably running already */
	auth_pool_cancel(pool, tok[1]);	/* waiting */
	auth_pool_cancel(pool, 12345);	/* unknown: no-op */
	c.expect = 1;
	test_pool_run(&c);
	t_assert_int(c.calls, 1);
	t_assert(c.last_token == tok[2]);
	auth_pool_free(pool);
	t_end();

	t_begin("pool: free with work pending runs no callback");
	memset(&c.calls, 0, sizeof(c) - offsetof(struct test_pool_ctx, calls));
	pool = auth_pool_new(c.base, &store_auth_db, dbpath, 1, 16, 0);
	for (i = 0; i < 4; i++)
		t_assert(auth_pool_submit(pool, "alice@example.test", "secret",
		    test_pool_cb, &c) != 0);
	usleep(200000);		/* some done, not delivered; some waiting */
	auth_pool_free(pool);
	event_base_loop(c.base, EVLOOP_NONBLOCK);
	t_assert_int(c.calls, 0);
	t_end();

	t_begin("pool: cancel after the result is ready");
	memset(&c.calls, 0, sizeof(c) - offsetof(struct test_pool_ctx, calls));
	pool = auth_pool_new(c.base, &store_auth_db, dbpath, 1, 16, 0);
	tok[0] = auth_pool_submit(pool, "alice@example.test", "secret",
	    test_pool_cb, &c);
	tok[1] = auth_pool_submit(pool, "alice@example.test", "secret",
	    test_pool_cb, &c);
	usleep(300000);		/* both likely done, not delivered */
	auth_pool_cancel(pool, tok[0]);
	c.forbidden = tok[0];
	c.expect = 1;
	test_pool_run(&c);
	t_assert(!c.forbidden_called);
	t_assert(c.last_token == tok[1]);
	auth_pool_free(pool);
	t_end();

	t_begin("pool: full queue returns 0");
	memset(&c.calls, 0, sizeof(c) - offsetof(struct test_pool_ctx, calls));
	pool = auth_pool_new(c.base, &store_auth_db, dbpath, 1, 3, 0);
	accepted = 0;
	for (i = 0; i < 6; i++) {
		tok[i] = auth_pool_submit(pool, "alice@example.test",
		    "secret", test_pool_cb, &c);
		if (tok[i] != 0)
			accepted++;
	}
	t_assert_int(accepted, 3);
	t_assert(tok[3] == 0 && tok[4] == 0 && tok[5] == 0);
	c.expect = 3;
	test_pool_run(&c);
	t_assert_int(c.ok, 3);
	/* Capacity is back once the checks are done. */
	c.expect = 4;
	t_assert(auth_pool_submit(pool, "alice@example.test", "secret",
	    test_pool_cb, &c) != 0);
	test_pool_run(&c);
	t_assert_int(c.ok, 4);
	auth_pool_free(pool);
	t_end();

	t_begin("pool: bad store path fails cleanly");
	pool = auth_pool_new(c.base, &store_auth_db,
	    "/nonexistent-dir/x/mail.db", 1, 3, 0);
	t_assert(pool == NULL);
	t_end();

	event_base_free(c.base);
}

/* ---- penalty ---- */

static uint64_t test_clock_ms = 1000000;

static uint64_t
test_clock(void)
{
	return test_clock_ms;
}

static void
test_penalty(void)
{
	static const unsigned expect[] = {
		0, 1000, 2000, 4000, 8000, 15000, 15000, 15000, 15000,
	};
	char ip[64];
	size_t i;

	auth_penalty_set_clock(test_clock);
	auth_penalty_reset();

	t_begin("penalty: growth and cap");
	for (i = 0; i < nitems(expect); i++) {
		t_assert_int(auth_penalty_delay_ms(key("192.0.2.1")),
		    expect[i]);
		auth_penalty_fail(key("192.0.2.1"));
	}
	for (i = 0; i < 50; i++)
		auth_penalty_fail(key("192.0.2.1"));
	t_assert_int(auth_penalty_delay_ms(key("192.0.2.1")), 15000);
	t_assert_int(auth_penalty_delay_ms(key("192.0.2.2")), 0);
	t_end();

	t_begin("penalty: success clears");
	auth_penalty_success(key("192.0.2.1"));
	t_assert_int(auth_penalty_delay_ms(key("192.0.2.1")), 0);
	auth_penalty_success(key("192.0.2.99"));	/* unknown: no-op */
	t_end();

	t_begin("penalty: IPv6 counts per /64, other keys hashed");
	auth_penalty_fail(key("2001:db8:1:2::1"));
	auth_penalty_fail(key("2001:db8:1:2:ffff::7"));
	t_assert_int(auth_penalty_delay_ms(key("2001:db8:1:2::99")), 2000);
	t_assert_int(auth_penalty_delay_ms(key("2001:db8:1:3::1")), 0);
	auth_penalty_fail(key("unix-socket"));
	t_assert_int(auth_penalty_delay_ms(key("unix-socket")), 1000);
	t_assert_int(auth_penalty_delay_ms(key("unix-socket2")), 0);
	t_end();

	t_begin("penalty: entries expire after 15 min");
	auth_penalty_fail(key("198.51.100.7"));
	auth_penalty_fail(key("198.51.100.7"));
	test_clock_ms += 14 * 60 * 1000;
	t_assert_int(auth_penalty_delay_ms(key("198.51.100.7")), 2000);
	auth_penalty_fail(key("198.51.100.7"));	/* refreshes */
	test_clock_ms += 14 * 60 * 1000;
	t_assert_int(auth_penalty_delay_ms(key("198.51.100.7")), 4000);
	test_clock_ms += 60 * 1000 + 1;
	t_assert_int(auth_penalty_delay_ms(key("198.51.100.7")), 0);
	auth_penalty_fail(key("198.51.100.7"));
	t_assert_int(auth_penalty_delay_ms(key("198.51.100.7")), 1000);
	t_end();

	t_begin("penalty: bounded table drops the oldest");
	auth_penalty_reset();
	auth_penalty_fail(key("203.0.113.1"));
	auth_penalty_fail(key("203.0.113.1"));
	test_clock_ms += 1;
	for (i = 0; i < 5000; i++) {
		snprintf(ip, sizeof(ip), "10.%zu.%zu.%zu", i >> 16,
		    (i >> 8) & 255, i & 255);
		auth_penalty_fail(key(ip));
	}
	t_assert_int(auth_penalty_delay_ms(key("203.0.113.1")), 0);
	/* 10.0.0.0 was dropped; 10.0.19.135 is the 4999th. */
	t_assert_int(auth_penalty_delay_ms(key("10.0.0.0")), 0);
	t_assert_int(auth_penalty_delay_ms(key("10.0.19.135")), 1000);
	/* Churn through removals and re-adds. */
	for (i = 0; i < 5000; i++) {
		snprintf(ip, sizeof(ip), "10.%zu.%zu.%zu", i >> 16,
		    (i >> 8) & 255, i & 255);
		auth_penalty_success(key(ip));
		auth_penalty_fail(key(ip));
		auth_penalty_fail(key(ip));
	}
	t_assert_int(auth_penalty_delay_ms(key("10.0.19.135")), 2000);
	t_end();

	t_begin("penalty: the next check waits, a started one reserves");
	auth_penalty_reset();
	t_assert_int(auth_penalty_wait_ms(key("192.0.2.5")), 0);
	auth_penalty_start(key("192.0.2.5"));	/* no failures: no turn */
	t_assert_int(auth_penalty_wait_ms(key("192.0.2.5")), 0);
	auth_penalty_fail(key("192.0.2.5"));
	t_assert_int(auth_penalty_wait_ms(key("192.0.2.5")), 1000);
	test_clock_ms += 400;
	t_assert_int(auth_penalty_wait_ms(key("192.0.2.5")), 600);
	test_clock_ms += 600;
	t_assert_int(auth_penalty_wait_ms(key("192.0.2.5")), 0);
	/* A check starts: a second session's check waits its turn. */
	auth_penalty_start(key("192.0.2.5"));
	t_assert_int(auth_penalty_wait_ms(key("192.0.2.5")), 1000);
	test_clock_ms += 50;
	auth_penalty_fail(key("192.0.2.5"));	/* it failed */
	t_assert_int(auth_penalty_wait_ms(key("192.0.2.5")), 2000);
	t_assert_int(auth_penalty_delay_ms(key("192.0.2.5")), 2000);
	auth_penalty_success(key("192.0.2.5"));
	t_assert_int(auth_penalty_wait_ms(key("192.0.2.5")), 0);
	t_end();

	t_begin("penalty: CARTEIRO_TEST_AUTH_PENALTY_MS");
	setenv("CARTEIRO_TEST_AUTH_PENALTY_MS", "50,120", 1);
	auth_penalty_reset();
	auth_penalty_fail(key("192.0.2.6"));
	t_assert_int(auth_penalty_wait_ms(key("192.0.2.6")), 50);
	auth_penalty_fail(key("192.0.2.6"));
	t_assert_int(auth_penalty_delay_ms(key("192.0.2.6")), 100);
	auth_penalty_fail(key("192.0.2.6"));
	t_assert_int(auth_penalty_delay_ms(key("192.0.2.6")), 120);
	setenv("CARTEIRO_TEST_AUTH_PENALTY_MS", "30", 1);
	auth_penalty_reset();
	auth_penalty_fail(key("192.0.2.6"));
	auth_penalty_fail(key("192.0.2.6"));
	t_assert_int(auth_penalty_delay_ms(key("192.0.2.6")), 30);
	setenv("CARTEIRO_TEST_AUTH_PENALTY_MS", "50,x", 1);	/* ignored */
	auth_penalty_reset();
	auth_penalty_fail(key("192.0.2.6"));
	t_assert_int(auth_penalty_delay_ms(key("192.0.2.6")), 1000);
	unsetenv("CARTEIRO_TEST_AUTH_PENALTY_MS");
	t_end();

	auth_penalty_set_clock(NULL);
	auth_penalty_reset();
}

/* ---- base64 ---- */

static void
test_base64(void)
{
	static const struct {
		const char *in;
		const char *out;	/* NULL: invalid */
		size_t len;
	} cases[] = {
		{ "", "", 0 },
		{ "YQ==", "a", 1 },
		{ "YWI=", "ab", 2 },
		{ "YWJj", "abc", 3 },
		{ "AGFsaWNlAHNlY3JldA==", "\0alice\0secret", 13 },
		{ "YQ", NULL, 0 },		/* padding required */
		{ "YWJ", NULL, 0 },
		{ "YW=j", NULL, 0 },
		{ "YWJj\r\n", NULL, 0 },
		{ "YW Jj", NULL, 0 },
		{ "Y*Jj", NULL, 0 },
		{ "=", NULL, 0 },
		{ "YWJj====", NULL, 0 },
		{ "_-__", NULL, 0 },		/* URL-safe alphabet */
	};
	char *d, *e;
	size_t i, len;

	t_begin("base64: decode table");
	for (i = 0; i < nitems(cases); i++) {
		len = 999;
		d = auth_base64_decode(cases[i].in, &len);
		if (cases[i].out == NULL) {
			if (d != NULL)
				fprintf(stderr, "case %zu accepted\n", i);
			t_assert(d == NULL);
		} else {
			t_assert(d != NULL);
			if (d != NULL) {
				t_assert_int(len, cases[i].len);
				t_assert(memcmp(d, cases[i].out, len) == 0);
				t_assert(d[len] == '\0');
			}
		}
		free(d);
	}
	t_end();

	t_begin("base64: encode round trip");
	e = auth_base64_encode("\0alice\0secret", 13);
	t_assert_str(e, "AGFsaWNlAHNlY3JldA==");
	free(e);
	e = auth_base64_encode("", 0);
	t_assert_str(e, "");
	free(e);
	e = auth_base64_encode("Username:", 9);
	t_assert_str(e, "VXNlcm5hbWU6");
	d = auth_base64_decode(e, NULL);
	t_assert_str(d, "Username:");
	free(d);
	free(e);
	t_end();
}

int
main(void)
{
	struct store *st;
	char *cmd;

	log_init("test_auth", 1, LOG_LVL_WARN);
	test_hash();
	test_base64();
	test_penalty();

	st = test_store();
	test_check(st);
	test_rehash(st);
	test_timing(st);
	store_close(st);
	test_pool();

	cmd = xasprintf("rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	free(cmd);
	return t_exit();
}
