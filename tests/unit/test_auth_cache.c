/*
 * common/auth_cache.c: hit, miss on another password or a changed stored
 * hash, TTL expiry (fake clock), wipe (new key, no entries), the bound per
 * set; and auth_check with a cache over a temp-dir store: the second
 * login skips argon2id, a new hash (passwd), disable and del miss at
 * once, a failure is never cached.
 */
#include "common/auth.h"
#include "common/auth_cache.h"
#include "common/log.h"
#include "common/util.h"
#include "store/auth_db.h"
#include "store/store.h"
#include "t.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void);

static uint64_t fake_now = 1000000;

static uint64_t
fake_clock(void)
{
	return fake_now;
}

#define HASH_A	"$argon2id$v=19$m=65536,t=2,p=1$AAAA$BBBB"
#define HASH_B	"$argon2id$v=19$m=65536,t=2,p=1$CCCC$DDDD"

static void
test_hit_miss(void)
{
	struct auth_cache *c = auth_cache_new(60000);

	auth_cache_set_clock(c, fake_clock);
	t_begin("cache: empty misses, insert then hit");
	t_assert(!auth_cache_lookup(c, "a@x.test", "pw", "a@x.test", HASH_A));
	auth_cache_insert(c, "a@x.test", "pw", "a@x.test", HASH_A);
	t_assert(auth_cache_lookup(c, "a@x.test", "pw", "a@x.test", HASH_A));
	t_assert_int(auth_cache_count(c), 1);
	t_end();

	t_begin("cache: another password, user or field split misses");
	t_assert(!auth_cache_lookup(c, "a@x.test", "pw2", "a@x.test", HASH_A));
	t_assert(!auth_cache_lookup(c, "a@x.test", "p", "a@x.test", HASH_A));
	t_assert(!auth_cache_lookup(c, "b@x.test", "pw", "a@x.test", HASH_A));
	/* name "a@x.testp" + "w" hashes apart from "a@x.test" + "pw" */
	t_assert(!auth_cache_lookup(c, "a@x.testp", "w", "a@x.test", HASH_A));
	t_assert(auth_cache_lookup(c, "a@x.test", "pw", "a@x.test", HASH_A));
	t_end();

	t_begin("cache: a changed stored hash misses, and for good");
	t_assert(!auth_cache_lookup(c, "a@x.test", "pw", "a@x.test", HASH_B));
	t_assert(!auth_cache_lookup(c, "a@x.test", "pw", "a@x.test", HASH_A));
	t_assert_int(auth_cache_count(c), 0);
	t_end();

	t_begin("cache: a changed stored address misses");
	auth_cache_insert(c, "a@x.test", "pw", "a@x.test", HASH_A);
	t_assert(!auth_cache_lookup(c, "a@x.test", "pw", "b@x.test", HASH_A));
	t_end();
	auth_cache_free(c);
}

static void
test_ttl(void)
{
	struct auth_cache *c = auth_cache_new(60000);

	auth_cache_set_clock(c, fake_clock);
	t_begin("cache: TTL expiry");
	auth_cache_insert(c, "a@x.test", "pw", "a@x.test", HASH_A);
	fake_now += 59999;
	t_assert(auth_cache_lookup(c, "a@x.test", "pw", "a@x.test", HASH_A));
	fake_now += 1;
	t_assert(!auth_cache_lookup(c, "a@x.test", "pw", "a@x.test", HASH_A));
	t_assert_int(auth_cache_count(c), 0);
	t_end();

	t_begin("cache: a re-insert restarts the TTL");
	auth_cache_insert(c, "a@x.test", "pw", "a@x.test", HASH_A);
	fake_now += 30000;
	auth_cache_insert(c, "a@x.test", "pw", "a@x.test", HASH_A);
	fake_now += 59999;
	t_assert(auth_cache_lookup(c, "a@x.test", "pw", "a@x.test", HASH_A));
	t_assert_int(auth_cache_count(c), 1);
	t_end();
	auth_cache_free(c);
}

static void
test_wipe(void)
{
	struct auth_cache *c = auth_cache_new(60000);
	unsigned char old[64];
	const unsigned char *k;
	unsigned len;
	char name[64];

	t_begin("cache: wipe forgets every entry and makes a new key");
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "u%d@x.test", i);
		auth_cache_insert(c, name, "pw", name, HASH_A);
	}
	t_assert_int(auth_cache_count(c), 100);
	k = auth_cache_key(c, &len);
	t_assert_int(len, 32);
	memcpy(old, k, len);
	auth_cache_wipe(c);
	t_assert_int(auth_cache_count(c), 0);
	t_assert(memcmp(old, auth_cache_key(c, &len), len) != 0);
	t_assert(!auth_cache_lookup(c, "u1@x.test", "pw", "u1@x.test",
	    HASH_A));
	t_end();

	t_begin("cache: bounded (sets x ways)");
	for (int i = 0; i < 3 * AUTH_CACHE_SETS * AUTH_CACHE_WAYS; i++) {
		snprintf(name, sizeof(name), "u%d@x.test", i);
		auth_cache_insert(c, name, "pw", name, HASH_A);
	}
	t_assert(auth_cache_count(c) <= AUTH_CACHE_SETS * AUTH_CACHE_WAYS);
	/* the newest is always kept */
	t_assert(auth_cache_lookup(c, name, "pw", name, HASH_A));
	t_end();
	auth_cache_free(c);
}

static char tmpdir[256];
static char dbpath[300];

static struct store *
test_store(void)
{
	struct store *st;
	const char *error;
	char *hash;

	util_strlcpy(tmpdir, "/tmp/carteiro-test-acache-XXXXXX",
	    sizeof(tmpdir));
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
	    store_user_add(st, "alice@example.test", hash) != 0) {
		fprintf(stderr, "setup: %s\n", store_error(st));
		exit(1);
	}
	free(hash);
	return st;
}

/* One auth_check, its duration in *ms_r. */
static enum auth_result
check(struct store *st, struct auth_cache *c, const char *address,
    const char *password, uint64_t *ms_r)
{
	enum auth_result r;
	char *canon = NULL;
	uint64_t t0 = util_now_ms();

	r = auth_check(&store_auth_db, st, c, address, password, &canon);
	*ms_r = util_now_ms() - t0;
	if (r == AUTH_OK && strcmp(canon, "alice@example.test") != 0)
		r = AUTH_TEMPFAIL;	/* wrong canonical: fail the test */
	free(canon);
	return r;
}

static void
test_check(struct store *st)
{
	struct auth_cache *c = auth_cache_new(3600 * 1000);
	uint64_t first, ms, best = UINT64_MAX;
	char *hash;

	t_begin("check: first login pays argon2id, repeats do not");
	t_assert_int(check(st, c, "alice@example.test", "secret", &first),
	    AUTH_OK);
	for (int i = 0; i < 20; i++) {
		t_assert_int(check(st, c, "ALICE@Example.test", "secret", &ms),
		    AUTH_OK);
		if (ms < best)
			best = ms;
	}
	/* argon2id interactive is tens of ms; a hit is a SQLite lookup and
	 * two BLAKE2b: the best of 20 is well under 5 ms even here. */
	t_assert(first >= 10);
	t_assert(best < 5);
	/* keyed on the name as typed (normalised: the local part keeps its
	 * case), so the first spelling is an entry of its own */
	t_assert_int(auth_cache_count(c), 2);
	fprintf(stderr, "first %llu ms, best repeat %llu ms\n",
	    (unsigned long long)first, (unsigned long long)best);
	t_end();

	t_begin("check: a failure is never cached");
	t_assert_int(check(st, c, "alice@example.test", "wrong", &ms),
	    AUTH_FAIL);
	t_assert(ms >= 10);
	t_assert_int(check(st, c, "alice@example.test", "wrong", &ms),
	    AUTH_FAIL);
	t_assert(ms >= 10);
	t_assert_int(check(st, c, "ghost@example.test", "secret", &ms),
	    AUTH_FAIL);
	t_assert_int(auth_cache_count(c), 2);
	t_end();

	t_begin("check: passwd (a new hash) fails the old password at once");
	t_assert(auth_hash_password("newpw", &hash) == 0);
	t_assert(store_user_set_hash(st, "alice@example.test", hash) == 0);
	free(hash);
	t_assert_int(check(st, c, "alice@example.test", "secret", &ms),
	    AUTH_FAIL);
	t_assert_int(check(st, c, "alice@example.test", "newpw", &ms),
	    AUTH_OK);
	t_assert_int(check(st, c, "alice@example.test", "newpw", &ms),
	    AUTH_OK);
	t_assert(ms < 5);
	t_end();

	t_begin("check: disable fails at once, enable hits again");
	t_assert(store_user_set_enabled(st, "alice@example.test", false) == 0);
	t_assert_int(check(st, c, "alice@example.test", "newpw", &ms),
	    AUTH_FAIL);
	t_assert(store_user_set_enabled(st, "alice@example.test", true) == 0);
	t_assert_int(check(st, c, "alice@example.test", "newpw", &ms),
	    AUTH_OK);
	t_assert(ms < 5);
	t_end();

	t_begin("check: del fails at once, re-add with the same password "
	    "pays argon2id");
	t_assert(store_user_del(st, "alice@example.test") == 0);
	t_assert_int(check(st, c, "alice@example.test", "newpw", &ms),
	    AUTH_FAIL);
	t_assert(auth_hash_password("newpw", &hash) == 0);
	t_assert(store_user_add(st, "alice@example.test", hash) == 0);
	free(hash);
	t_assert_int(check(st, c, "alice@example.test", "newpw", &ms),
	    AUTH_OK);
	t_assert(ms >= 10);
	t_end();
	auth_cache_free(c);
}

int
main(void)
{
	struct store *st;
	char *cmd;

	log_init("test_auth_cache", 1, LOG_LVL_WARN);
	auth_init();
	test_hit_miss();
	test_ttl();
	test_wipe();
	st = test_store();
	test_check(st);
	store_close(st);
	cmd = xasprintf("rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	free(cmd);
	return t_exit();
}
