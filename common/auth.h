/*
 * Password hashing and checking (libsodium argon2id). The only file that
 * includes <sodium.h>. auth_check() is blocking (tens of ms, 64 MB): the
 * daemons call it through struct auth_pool, a small bounded worker pool that
 * hands the result back to the libevent loop. Also the per-client-address
 * failure penalty (growing delay after failed logins) shared by smtpd and
 * pop3d.
 */
#ifndef CARTEIRO_AUTH_H
#define CARTEIRO_AUTH_H

#include <stdbool.h>
#include <stdint.h>

struct store;
struct event_base;

enum auth_result {
	AUTH_OK,
	AUTH_FAIL,	/* wrong password, unknown or disabled user: never say which */
	AUTH_TEMPFAIL,	/* store error, pool full */
};

/* argon2id (crypto_pwhash_str, interactive limits). Caller frees *hash_r.
 * 0 / -1. */
int auth_hash_password(const char *password, char **hash_r);

/*
 * Check address/password against the store. Takes the same time whether or
 * not the user exists (verifies against a dummy hash). Rehashes and stores
 * the new hash when the parameters changed. *canonical_r (may be NULL)
 * receives the stored address (caller frees) on AUTH_OK.
 */
enum auth_result auth_check(struct store *st, const char *address,
    const char *password, char **canonical_r);

struct auth_pool;

/* Result on the event loop thread. canonical is the stored address on
 * AUTH_OK (borrowed for the call), else NULL. */
typedef void auth_done_cb(uint64_t token, enum auth_result res,
    const char *canonical, void *arg);

/* nthreads workers, each with its own store connection to store_path;
 * at most max_pending queued requests. */
struct auth_pool *auth_pool_new(struct event_base *base, const char *store_path,
    unsigned nthreads, unsigned max_pending);
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

/* Failed-login penalty per client address: delay in ms before answering the
 * next failure (0, then growing, capped at 15 s); table bounded in size. */
unsigned auth_penalty_delay_ms(const char *ip);
void auth_penalty_fail(const char *ip);
void auth_penalty_success(const char *ip);

/* Decode SASL PLAIN ("authzid\0authcid\0passwd", already base64-decoded is
 * NOT assumed: input is the base64 text). 0 / -1. Caller frees both and
 * must wipe *password_r. */
int auth_sasl_plain_decode(const char *b64, char **user_r, char **password_r);
/* Base64 (libsodium, original variant). Caller frees. NULL on bad input. */
char *auth_base64_decode(const char *b64, size_t *len_r);
char *auth_base64_encode(const void *data, size_t len);

#endif
