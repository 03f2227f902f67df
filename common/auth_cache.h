/*
 * The verified-credential cache (Dovecot's auth_cache): after a password
 * check succeeds, the pair (login name, password) is remembered for a TTL,
 * so that a mail client polling every few minutes with the same password
 * does not pay argon2id on each login. Only successes are cached.
 *
 * Nothing secret is stored: an entry is keyed by a keyed BLAKE2b hash of
 * name and password (the key is random, made at start, kept in memory
 * only), and holds a keyed hash of the user's stored address and stored
 * password hash as the database gave them at the check. A lookup passes
 * the stored address and hash the caller has just read again, so an entry
 * only hits while both are unchanged: `carteiroctl user passwd` (a new
 * salted hash), `del` (and a later `add`) miss at once, although
 * carteiroctl is another process. The caller checks the enabled flag
 * itself (auth_check does: a disabled user never reaches the cache).
 *
 * Bounded: AUTH_CACHE_SETS x AUTH_CACHE_WAYS entries of fixed size (no
 * allocation per entry); a full set drops its entry closest to expiry.
 * Thread-safe (one mutex): the auth pool's workers share one cache.
 */
#ifndef CARTEIRO_AUTH_CACHE_H
#define CARTEIRO_AUTH_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#define AUTH_CACHE_SETS	1024	/* power of two */
#define AUTH_CACHE_WAYS	4

struct auth_cache;

/* ttl_ms > 0. Makes the random key. */
struct auth_cache *auth_cache_new(uint64_t ttl_ms);
/* Wipes the key and every entry. NULL is fine. */
void auth_cache_free(struct auth_cache *c);

/* name: the normalised login name; stored_address, stored_hash: what the
 * database holds for that user right now. true: this name and password
 * were verified against exactly that stored hash less than ttl ago. */
bool auth_cache_lookup(struct auth_cache *c, const char *name,
    const char *password, const char *stored_address,
    const char *stored_hash);
/* Remember a successful check (same arguments). */
void auth_cache_insert(struct auth_cache *c, const char *name,
    const char *password, const char *stored_address,
    const char *stored_hash);
/* Forget every entry and make a new key. */
void auth_cache_wipe(struct auth_cache *c);
/* Live entries (for tests and stats). */
unsigned auth_cache_count(struct auth_cache *c);

/* For tests: the millisecond clock (NULL = util_now_ms); the key bytes
 * (*len_r = 32) so a test can see that free/wipe change them. */
void auth_cache_set_clock(struct auth_cache *c, uint64_t (*now_ms)(void));
const unsigned char *auth_cache_key(const struct auth_cache *c,
    unsigned *len_r);

#endif
