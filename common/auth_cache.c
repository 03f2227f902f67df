/*
 * The verified-credential cache: see auth_cache.h. A set-associative
 * table of fixed-size entries under one mutex; entries and the key are
 * keyed BLAKE2b (crypto_generichash) outputs, never a password.
 */
#include "common/auth_cache.h"
#include "common/util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define AUTH_CACHE_HASHBYTES	32

struct auth_cache_entry {
	unsigned char id[AUTH_CACHE_HASHBYTES];	/* H(name, password) */
	unsigned char tag[AUTH_CACHE_HASHBYTES]; /* H(address, stored hash) */
	uint64_t expires_ms;			/* 0: empty */
};

struct auth_cache {
	pthread_mutex_t mtx;
	uint64_t ttl_ms;
	uint64_t (*clock)(void);
	unsigned char key[crypto_generichash_KEYBYTES];
	struct auth_cache_entry e[AUTH_CACHE_SETS][AUTH_CACHE_WAYS];
};

static void auth_cache_hash2(const struct auth_cache *c, unsigned char *out,
    const char *a, const char *b);
static struct auth_cache_entry *auth_cache_set(struct auth_cache *c,
    const unsigned char *id);

/* Keyed BLAKE2b of a, NUL, b (a NUL cannot occur in either). */
static void
auth_cache_hash2(const struct auth_cache *c, unsigned char *out,
    const char *a, const char *b)
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, c->key, sizeof(c->key),
	    AUTH_CACHE_HASHBYTES);
	crypto_generichash_update(&st, (const unsigned char *)a,
	    strlen(a) + 1);
	crypto_generichash_update(&st, (const unsigned char *)b, strlen(b));
	crypto_generichash_final(&st, out, AUTH_CACHE_HASHBYTES);
	sodium_memzero(&st, sizeof(st));
}

/* The ways of id's set (id is already a keyed hash: uniform). */
static struct auth_cache_entry *
auth_cache_set(struct auth_cache *c, const unsigned char *id)
{
	uint32_t v;

	memcpy(&v, id, sizeof(v));
	return c->e[v & (AUTH_CACHE_SETS - 1)];
}

struct auth_cache *
auth_cache_new(uint64_t ttl_ms)
{
	struct auth_cache *c;

	if (sodium_init() < 0)
		return NULL;
	c = xcalloc(1, sizeof(*c));
	pthread_mutex_init(&c->mtx, NULL);
	c->ttl_ms = ttl_ms;
	c->clock = util_now_ms;
	crypto_generichash_keygen(c->key);
	/* Best effort: keep the key out of swap. */
	(void)sodium_mlock(c->key, sizeof(c->key));
	return c;
}

void
auth_cache_free(struct auth_cache *c)
{
	if (c == NULL)
		return;
	pthread_mutex_destroy(&c->mtx);
	sodium_munlock(c->key, sizeof(c->key));	/* also zeroes it */
	sodium_memzero(c, sizeof(*c));
	free(c);
}

bool
auth_cache_lookup(struct auth_cache *c, const char *name,
    const char *password, const char *stored_address,
    const char *stored_hash)
{
	unsigned char id[AUTH_CACHE_HASHBYTES], tag[AUTH_CACHE_HASHBYTES];
	struct auth_cache_entry *set;
	uint64_t now;
	bool hit = false;

	pthread_mutex_lock(&c->mtx);
	auth_cache_hash2(c, id, name, password);
	auth_cache_hash2(c, tag, stored_address, stored_hash);
	now = c->clock();
	set = auth_cache_set(c, id);
	for (int i = 0; i < AUTH_CACHE_WAYS; i++) {
		if (set[i].expires_ms == 0 ||
		    sodium_memcmp(set[i].id, id, sizeof(id)) != 0)
			continue;
		if (set[i].expires_ms <= now ||
		    sodium_memcmp(set[i].tag, tag, sizeof(tag)) != 0)
			/* Expired, or the user's hash changed since:
			 * this pair will never hit again. */
			sodium_memzero(&set[i], sizeof(set[i]));
		else
			hit = true;
		break;
	}
	pthread_mutex_unlock(&c->mtx);
	sodium_memzero(id, sizeof(id));
	return hit;
}

void
auth_cache_insert(struct auth_cache *c, const char *name,
    const char *password, const char *stored_address,
    const char *stored_hash)
{
	unsigned char id[AUTH_CACHE_HASHBYTES];
	struct auth_cache_entry *set, *victim;

	pthread_mutex_lock(&c->mtx);
	auth_cache_hash2(c, id, name, password);
	set = auth_cache_set(c, id);
	/* The same pair again, else an empty way, else the way closest to
	 * expiry (expired ones first: they have the smallest times). */
	victim = &set[0];
	for (int i = 0; i < AUTH_CACHE_WAYS; i++) {
		if (set[i].expires_ms != 0 &&
		    sodium_memcmp(set[i].id, id, sizeof(id)) == 0) {
			victim = &set[i];
			break;
		}
		if (set[i].expires_ms < victim->expires_ms)
			victim = &set[i];
	}
	memcpy(victim->id, id, sizeof(id));
	auth_cache_hash2(c, victim->tag, stored_address, stored_hash);
	victim->expires_ms = c->clock() + c->ttl_ms;
	pthread_mutex_unlock(&c->mtx);
	sodium_memzero(id, sizeof(id));
}

void
auth_cache_wipe(struct auth_cache *c)
{
	pthread_mutex_lock(&c->mtx);
	sodium_memzero(c->e, sizeof(c->e));
	crypto_generichash_keygen(c->key);
	pthread_mutex_unlock(&c->mtx);
}

unsigned
auth_cache_count(struct auth_cache *c)
{
	unsigned n = 0;
	uint64_t now;

	pthread_mutex_lock(&c->mtx);
	now = c->clock();
	for (int s = 0; s < AUTH_CACHE_SETS; s++)
		for (int i = 0; i < AUTH_CACHE_WAYS; i++)
			if (c->e[s][i].expires_ms > now)
				n++;
	pthread_mutex_unlock(&c->mtx);
	return n;
}

void
auth_cache_set_clock(struct auth_cache *c, uint64_t (*now_ms)(void))
{
	c->clock = now_ms != NULL ? now_ms : util_now_ms;
}

const unsigned char *
auth_cache_key(const struct auth_cache *c, unsigned *len_r)
{
	*len_r = sizeof(c->key);
	return c->key;
}
