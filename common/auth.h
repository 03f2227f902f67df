/*
 * Password hashing and checking (libsodium argon2id). With auth_cache.c the
 * only file that includes <sodium.h>. auth_check() is blocking (tens of ms, 19 MiB for a new hash): the
 * daemons call it through struct auth_pool, a small bounded worker pool that
 * hands the result back to the libevent loop. Also the per-client failure
 * penalty (growing wait before the next check after failed logins) shared
 * by smtpd and pop3d,
 * base64 and the wipe helper the SASL engine (sasl.h) uses. Knows nothing
 * of the store: users are looked up through struct auth_db, which the
 * daemons set up.
 */
#ifndef CARTEIRO_AUTH_H
#define CARTEIRO_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct auth_cache;
struct client_key;
struct event_base;

enum auth_result {
	AUTH_OK,
	AUTH_FAIL,	/* wrong password, unknown or disabled user: never say which */
	AUTH_TEMPFAIL,	/* store error, pool full */
};

/*
 * Optional: initialise libsodium and compute the dummy hash now (19 MiB,
 * tens of ms) instead of on the first check. Safe from any thread, any
 * number of times. Aborts (log_fatal) if libsodium cannot start.
 */
void auth_init(void);

/* Wipe n bytes (sodium_memzero: never optimised away). */
void auth_wipe(void *p, size_t n);
/* Wipe a NUL-terminated secret and free it. NULL is fine. */
void auth_wipe_free(char *s);
/* Zero len bytes of the calling thread's stack below the caller's frame
 * (residues of a hash computation: argon2 and BLAKE2b keep state there). */
void auth_wipe_stack(size_t len);

/* argon2id (crypto_pwhash_str) with 19 MiB, t=2, p=1 (OWASP's minimum).
 * Caller frees *hash_r. 0 / -1. */
int auth_hash_password(const char *password, char **hash_r);

/* One user as the database gives it to auth_check. */
struct auth_user {
	char *address;		/* owned: the stored (canonical) address */
	char *hash;		/* owned: crypt-style hash, NULL if none */
	bool enabled;
};

/*
 * The user database, handed to auth.c by the daemons (store/auth_db.c
 * adapts store/), so that common/ includes nothing from store/. A handle
 * is one connection, used by one thread at a time.
 */
struct auth_db {
	/* A handle for a worker, opened in auth_pool_new (before any
	 * privilege drop). NULL and *error_r (static text) on failure. */
	void *(*open)(const char *path, const char **error_r);
	void (*close)(void *handle);
	/* address is normalised. 0 and *u filled (auth_check frees its
	 * fields), 1 no such user, -1 error. */
	int (*lookup)(void *handle, const char *address, struct auth_user *u);
	/* Store a new hash for the stored address. 0 / -1 (or 1: gone). */
	int (*set_hash)(void *handle, const char *address, const char *hash);
};

/*
 * Check address/password against the database (db, handle: see struct
 * auth_db). The address is normalised first (addr_normalize:
 * case-insensitive, IDN domains as A-labels); a malformed one is an unknown
 * user. Takes the same time whether or not the user exists or is disabled
 * (verifies against a dummy hash). Rehashes and stores the new hash when
 * the parameters changed. *canonical_r (may be NULL) receives the stored
 * address (caller frees) on AUTH_OK. cache (auth_cache.h; NULL: none):
 * an enabled user whose name, password and stored hash were verified
 * within its TTL is AUTH_OK without argon2id; every success is put
 * there. The lookup is done each time, so a changed hash, a deleted or
 * disabled user misses at once.
 */
enum auth_result auth_check(const struct auth_db *db, void *handle,
    struct auth_cache *cache, const char *address, const char *password,
    char **canonical_r);

struct auth_pool;

/* Result on the event loop thread. canonical is the stored address on
 * AUTH_OK (borrowed for the call), else NULL. */
typedef void auth_done_cb(uint64_t token, enum auth_result res,
    const char *canonical, void *arg);

/*
 * nthreads workers, each with its own database handle (db->open(path),
 * opened here, before any privilege drop is fine; db must outlive the
 * pool). Memory: one argon2id
 * check needs the memory written in the hash (19 MiB for new hashes, 64 MiB
 * for those made before 2026-12), so peak memory is nthreads times that
 * (2 threads = 38-128 MB). max_pending bounds the requests submitted and not yet checked
 * (waiting or being checked); beyond it submit returns 0. Results are
 * delivered through a pipe watched by an event on base, so no
 * evthread_use_pthreads() is needed. Create it after any fork() (daemon
 * mode): threads do not survive a fork. cache_ttl_s > 0: the workers
 * share a verified-credential cache with that TTL (auth_check,
 * auth_cache.h); 0: every check runs argon2id. NULL (logged) on failure.
 */
struct auth_pool *auth_pool_new(struct event_base *base,
    const struct auth_db *db, const char *path, unsigned nthreads,
    unsigned max_pending, unsigned cache_ttl_s);
/* Joins the workers (a check in progress finishes first); pending
 * callbacks never run. Not from inside an auth_done_cb. NULL is fine. */
void auth_pool_free(struct auth_pool *pool);
/*
 * Queue a check. The password is copied and wiped after use. Returns a
 * token (never 0), or 0 when the pool is full (treat as AUTH_TEMPFAIL).
 * cb runs later on the loop unless auth_pool_cancel(token) came first.
 */
uint64_t auth_pool_submit(struct auth_pool *pool, const char *address,
    const char *password, auth_done_cb *cb, void *arg);
/* After this the callback for token never runs (call it when the session
 * that submitted it is freed). */
void auth_pool_cancel(struct auth_pool *pool, uint64_t token);

/*
 * Failed-login penalty per client (clientkey.h: IPv4 address, IPv6 /64).
 * It is paid before the next password check, not before the failure
 * reply: a check for a client that owes a penalty waits until the penalty
 * is over (sasl_check does this), so hanging up and reconnecting skips
 * nothing, and a right password is not answered sooner than a wrong one.
 *
 * After n failures the next check may start auth_penalty_delay_ms() after
 * the last failure: 0, then 1 s, 2 s, 4 s, 8 s, 15 s, 15 s ... A check that
 * starts while the client has failures reserves that delay too, so
 * parallel sessions from one client take turns instead of guessing side by
 * side. A success clears the entry; entries expire 15 min after their last
 * failure or check; at most 4096 entries (the least recently used one is
 * dropped). Loop thread only (not thread-safe).
 *
 * CARTEIRO_TEST_AUTH_PENALTY_MS=first[,cap] (tests only, read when the
 * table is first used or reset) replaces 1000 and 15000.
 */
/* The delay the client's failures so far impose (0: none). */
unsigned auth_penalty_delay_ms(const struct client_key *k);
/* How long a check for k must still wait (0: it may start now). */
unsigned auth_penalty_wait_ms(const struct client_key *k);
/* A check for k starts now (its wait is 0). */
void auth_penalty_start(const struct client_key *k);
void auth_penalty_fail(const struct client_key *k);
void auth_penalty_success(const struct client_key *k);
/* For tests: forget every entry (and read the test knob again); replace
 * the millisecond clock (NULL = util_now_ms). */
void auth_penalty_reset(void);
void auth_penalty_set_clock(uint64_t (*now_ms)(void));

/* Base64 (libsodium, original variant, padding required, no whitespace).
 * decode: the result is NUL-terminated (handy for text) and *len_r (may be
 * NULL) excludes the NUL; "" decodes to "". Caller frees (wipe if secret).
 * NULL on bad input. */
char *auth_base64_decode(const char *b64, size_t *len_r);
char *auth_base64_encode(const void *data, size_t len);

#endif
