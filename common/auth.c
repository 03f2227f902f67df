/*
 * Password hashing and checking with libsodium argon2id, the worker pool
 * that runs those checks off the event loop, the per-client failure penalty
 * and the base64/wipe helpers of the SASL engine (sasl.c). The only file
 * that includes <sodium.h>. It never logs a password and wipes every copy
 * it makes; it does not log login results (the daemons do, with their
 * session ids). Users come from struct auth_db: nothing here knows SQL.
 */
#include "common/auth.h"
#include "common/addr.h"
#include "common/auth_cache.h"
#include "common/clientkey.h"
#include "common/log.h"
#include "common/util.h"
#include "common/workq.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <sodium.h>

/*
 * New hashes: argon2id with 19 MiB, 2 passes, 1 lane, OWASP's Password
 * Storage Cheat Sheet minimum ("m=19456,t=2,p=1"; libsodium's p is always
 * 1). About 17 ms a hash here, against 78 ms for libsodium's interactive
 * limits (64 MiB, 2 passes) used before: a cold login costs a quarter.
 * Stored hashes keep verifying with the parameters written in them and are
 * replaced by a new one at the next successful login (auth_check).
 */
#define AUTH_OPSLIMIT 2
#define AUTH_MEMLIMIT (19456u * 1024u)

/* ---- hashing and checking ---- */

static pthread_once_t auth_once = PTHREAD_ONCE_INIT;
/* A hash of a random password nobody knows: unknown and disabled users are
 * verified against it so that every check costs one argon2id run. */
static char auth_dummy_hash[crypto_pwhash_STRBYTES];

static void auth_init_once(void);

static void
auth_init_once(void)
{
	unsigned char pw[32];

	if (sodium_init() < 0)
		log_fatal("event=auth.init error=\"sodium_init failed\"");
	randombytes_buf(pw, sizeof(pw));
	if (crypto_pwhash_str(auth_dummy_hash, (const char *)pw, sizeof(pw),
	    AUTH_OPSLIMIT, AUTH_MEMLIMIT) != 0)
		log_fatal("event=auth.init error=\"argon2id: out of memory\"");
	sodium_memzero(pw, sizeof(pw));
}

void
auth_init(void)
{
	if (pthread_once(&auth_once, auth_init_once) != 0)
		log_fatal("event=auth.init error=pthread_once");
}

void
auth_wipe(void *p, size_t n)
{
	sodium_memzero(p, n);
}

void
auth_wipe_free(char *s)
{
	if (s == NULL)
		return;
	sodium_memzero(s, strlen(s));
	free(s);
}

void
auth_wipe_stack(size_t len)
{
	sodium_stackzero(len);
}

int
auth_hash_password(const char *password, char **hash_r)
{
	char buf[crypto_pwhash_STRBYTES];

	auth_init();
	*hash_r = NULL;
	if (crypto_pwhash_str(buf, password, strlen(password), AUTH_OPSLIMIT,
	    AUTH_MEMLIMIT) != 0)
		return -1;	/* out of memory */
	*hash_r = xstrdup(buf);
	return 0;
}

static void
auth_user_clear(struct auth_user *u)
{
	free(u->address);
	free(u->hash);
	memset(u, 0, sizeof(*u));
}

enum auth_result
auth_check(const struct auth_db *db, void *handle, struct auth_cache *cache,
    const char *address, const char *password, char **canonical_r)
{
	struct auth_user u;
	const char *hash = auth_dummy_hash, *error, *cached_hash;
	char *norm = NULL, *newhash = NULL;
	bool found = false, ok;
	int r;

	auth_init();
	memset(&u, 0, sizeof(u));
	if (canonical_r != NULL)
		*canonical_r = NULL;
	/* A malformed address is just an unknown user (same cost). */
	if (addr_normalize(address, &norm, &error) == 0) {
		r = db->lookup(handle, norm, &u);
		if (r < 0) {
			free(norm);
			auth_user_clear(&u);
			return AUTH_TEMPFAIL;
		}
		found = r == 0 && u.address != NULL;
	}
	if (found && u.hash != NULL && strncmp(u.hash, "$argon2", 7) == 0)
		hash = u.hash;
	/* Verified before against this very stored hash (so no passwd, del
	 * or re-add since), and the user is still enabled: no argon2id. */
	if (cache != NULL && hash != auth_dummy_hash && u.enabled &&
	    auth_cache_lookup(cache, norm, password, u.address, u.hash)) {
		free(norm);
		if (canonical_r != NULL)
			*canonical_r = xstrdup(u.address);
		auth_user_clear(&u);
		return AUTH_OK;
	}
	ok = crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
	if (!ok || !found || hash == auth_dummy_hash || !u.enabled) {
		free(norm);
		auth_user_clear(&u);
		return AUTH_FAIL;
	}
	cached_hash = u.hash;
	/* Other parameters than new hashes get (or another argon2 variant):
	 * the password is known to be right now, so store a fresh hash. Also
	 * a stronger one, such as the 64 MiB hashes made before 2026-12:
	 * every user then costs what the dummy hash of an unknown one costs,
	 * so the time of a failed login does not tell which users exist. */
	if (crypto_pwhash_str_needs_rehash(u.hash, AUTH_OPSLIMIT,
	    AUTH_MEMLIMIT) != 0) {
		char esc[LOG_ESCAPE_MAX];

		log_escape(esc, sizeof(esc), u.address, strlen(u.address));
		if (auth_hash_password(password, &newhash) < 0)
			log_warn("event=auth.rehash user=%s result=fail "
			    "error=\"out of memory\"", esc);
		else {
			if (db->set_hash(handle, u.address, newhash) != 0)
				log_warn("event=auth.rehash user=%s "
				    "result=fail error=\"store\"", esc);
			else {
				log_info("event=auth.rehash user=%s "
				    "result=ok", esc);
				cached_hash = newhash;
			}
		}
	}
	/* Only successes are cached (never a failure: see auth_cache.h). */
	if (cache != NULL)
		auth_cache_insert(cache, norm, password, u.address,
		    cached_hash);
	free(newhash);
	free(norm);
	if (canonical_r != NULL)
		*canonical_r = xstrdup(u.address);
	auth_user_clear(&u);
	return AUTH_OK;
}

/* ---- worker pool ---- */

/*
 * The checks run on a common/workq pool. Each worker has its own database
 * handle; they are opened in auth_pool_new (before any privilege drop)
 * and handed out as the workers start.
 */
struct auth_req {
	char *address;
	char *password;		/* wiped and freed as soon as it is checked */
	auth_done_cb *cb;
	void *arg;
	uint64_t token;
	enum auth_result res;
	char *canonical;	/* stored address on AUTH_OK */
};

struct auth_pool {
	struct workq *wq;
	const struct auth_db *db;	/* borrowed */
	struct auth_cache *cache;	/* NULL: off */
	pthread_mutex_t mtx;		/* guards the hand-out below */
	void **handles;			/* one per worker */
	unsigned nhandles, handed;
};

/* What a worker thread holds. */
struct auth_worker {
	const struct auth_db *db;
	struct auth_cache *cache;	/* the pool's, NULL: off */
	void *handle;			/* NULL: could not open, tempfail */
};

static void *auth_worker_init(void *arg);
static void auth_worker_fini(void *ctx);
static void auth_work(void *job, void *ctx);
static void auth_done(void *job, bool cancelled);
static void auth_req_free(struct auth_req *req);

static void
auth_req_free(struct auth_req *req)
{
	if (req == NULL)
		return;
	auth_wipe_free(req->password);
	free(req->address);
	free(req->canonical);
	free(req);
}

/* A worker starts: take one of the handles opened for the pool. */
static void *
auth_worker_init(void *arg)
{
	struct auth_pool *pool = arg;
	struct auth_worker *w = xcalloc(1, sizeof(*w));

	auth_init();
	w->db = pool->db;
	w->cache = pool->cache;
	pthread_mutex_lock(&pool->mtx);
	if (pool->handed < pool->nhandles)
		w->handle = pool->handles[pool->handed++];
	pthread_mutex_unlock(&pool->mtx);
	return w;
}

static void
auth_worker_fini(void *ctx)
{
	struct auth_worker *w = ctx;

	if (w->handle != NULL)
		w->db->close(w->handle);
	free(w);
}

/* Stack the check may have left password-derived bytes on (argon2 and
 * BLAKE2b state, libsodium's and ours), wiped after each check. */
#define AUTH_STACK_WIPE	(32 * 1024)

static void
auth_work(void *job, void *ctx)
{
	struct auth_req *req = job;
	struct auth_worker *w = ctx;

	req->res = w->handle == NULL ? AUTH_TEMPFAIL : auth_check(w->db,
	    w->handle, w->cache, req->address, req->password,
	    &req->canonical);
	auth_wipe_free(req->password);
	req->password = NULL;
	auth_wipe_stack(AUTH_STACK_WIPE);
}

/* On the loop thread. */
static void
auth_done(void *job, bool cancelled)
{
	struct auth_req *req = job;

	if (!cancelled)
		req->cb(req->token, req->res,
		    req->res == AUTH_OK ? req->canonical : NULL, req->arg);
	auth_req_free(req);
}

struct auth_pool *
auth_pool_new(struct event_base *base, const struct auth_db *db,
    const char *path, unsigned nthreads, unsigned max_pending,
    unsigned cache_ttl_s)
{
	struct auth_pool *pool;
	const char *error;

	/* The dummy hash (19 MiB of argon2id, 20-100 ms) is made by the
	 * first worker (auth_worker_init), not on the caller's loop before
	 * it runs: smtpd starts relaying and accepting mail at once. */
	if (sodium_init() < 0)
		log_fatal("event=auth.init error=\"sodium_init failed\"");
	if (nthreads == 0)
		nthreads = 1;
	pool = xcalloc(1, sizeof(*pool));
	pool->db = db;
	if (cache_ttl_s > 0 &&
	    (pool->cache = auth_cache_new(cache_ttl_s * 1000ull)) == NULL)
		log_warn("event=auth.pool error=\"no credential cache\"");
	pthread_mutex_init(&pool->mtx, NULL);
	pool->handles = xcalloc(nthreads, sizeof(*pool->handles));
	for (pool->nhandles = 0; pool->nhandles < nthreads;
	    pool->nhandles++) {
		pool->handles[pool->nhandles] = db->open(path, &error);
		if (pool->handles[pool->nhandles] == NULL) {
			log_error("event=auth.pool error=\"store: %s\"", error);
			auth_pool_free(pool);
			return NULL;
		}
	}
	pool->wq = workq_new(base, nthreads, max_pending, auth_worker_init,
	    auth_worker_fini, pool);
	return pool;
}

void
auth_pool_free(struct auth_pool *pool)
{
	if (pool == NULL)
		return;
	/* A worker in the middle of a check finishes it (tens of ms); the
	 * workers close the handles they took. */
	workq_free(pool->wq);
	for (unsigned i = pool->handed; i < pool->nhandles; i++)
		pool->db->close(pool->handles[i]);
	free(pool->handles);
	auth_cache_free(pool->cache);
	pthread_mutex_destroy(&pool->mtx);
	free(pool);
}

uint64_t
auth_pool_submit(struct auth_pool *pool, const char *address,
    const char *password, auth_done_cb *cb, void *arg)
{
	struct auth_req *req = xcalloc(1, sizeof(*req));

	req->address = xstrdup(address);
	req->password = xstrdup(password);
	req->cb = cb;
	req->arg = arg;
	req->token = workq_submit(pool->wq, req, auth_work, auth_done);
	if (req->token == 0) {
		auth_req_free(req);
		return 0;
	}
	return req->token;
}

void
auth_pool_cancel(struct auth_pool *pool, uint64_t token)
{
	if (pool == NULL || token == 0)
		return;
	workq_cancel(pool->wq, token);
}

/* ---- failure penalty ---- */

#define AUTH_PENALTY_MAX	4096	/* entries; the least recently used
					 * is dropped */
#define AUTH_PENALTY_BUCKETS	8192	/* power of two */
#define AUTH_PENALTY_EXPIRE_MS	(15 * 60 * 1000)
#define AUTH_PENALTY_FIRST_MS	1000
#define AUTH_PENALTY_CAP_MS	15000
#define AUTH_PENALTY_FAIL_CAP	32	/* failures counted per entry */
#define AUTH_PENALTY_ENV	"CARTEIRO_TEST_AUTH_PENALTY_MS"

/* Keyed by struct client_key (IPv4 address, IPv6 /64). */
struct auth_penalty {
	struct client_key key;
	uint64_t last_ms;	/* monotonic time of the last failure or
				 * check start */
	uint64_t next_ms;	/* no check may start before this */
	unsigned failures;
	int hnext;		/* bucket chain, -1 ends */
	int newer, older;	/* recency list, -1 ends */
};

static struct {
	bool ready;
	unsigned char seed[crypto_shorthash_KEYBYTES];
	int buckets[AUTH_PENALTY_BUCKETS];
	struct auth_penalty e[AUTH_PENALTY_MAX];
	int nused;		/* e[0..nused) handed out at least once */
	int free_head;		/* freed entries, chained by hnext */
	int newest, oldest;
	unsigned first_ms, cap_ms;
	uint64_t (*clock)(void);
} auth_pen;

static void auth_penalty_init(void);
static void auth_penalty_env(void);
static unsigned auth_penalty_bucket(const struct client_key *key);
static int auth_penalty_find(const struct client_key *key, uint64_t now);
static int auth_penalty_get(const struct client_key *key, uint64_t now);
static unsigned auth_penalty_ms(unsigned failures);
static void auth_penalty_remove(int idx);
static void auth_penalty_unlink_recency(int idx);
static void auth_penalty_push_newest(int idx);

/* CARTEIRO_TEST_AUTH_PENALTY_MS=first[,cap]: short penalties for tests. */
static void
auth_penalty_env(void)
{
	const char *v = getenv(AUTH_PENALTY_ENV);
	unsigned long first, cap;
	char *end;

	auth_pen.first_ms = AUTH_PENALTY_FIRST_MS;
	auth_pen.cap_ms = AUTH_PENALTY_CAP_MS;
	if (v == NULL || *v == '\0')
		return;
	first = strtoul(v, &end, 10);
	cap = first;
	if (*end == ',')
		cap = strtoul(end + 1, &end, 10);
	if (*end != '\0' || first == 0 || first > 3600000 || cap < first ||
	    cap > 3600000) {
		log_warn("event=auth.penalty error=\"bad %s, ignored\"",
		    AUTH_PENALTY_ENV);
		return;
	}
	auth_pen.first_ms = (unsigned)first;
	auth_pen.cap_ms = (unsigned)cap;
}

static void
auth_penalty_init(void)
{
	int i;

	if (auth_pen.ready)
		return;
	auth_init();
	randombytes_buf(auth_pen.seed, sizeof(auth_pen.seed));
	for (i = 0; i < AUTH_PENALTY_BUCKETS; i++)
		auth_pen.buckets[i] = -1;
	auth_pen.nused = 0;
	auth_pen.free_head = -1;
	auth_pen.newest = auth_pen.oldest = -1;
	if (auth_pen.clock == NULL)
		auth_pen.clock = util_now_ms;
	auth_penalty_env();
	auth_pen.ready = true;
}

void
auth_penalty_reset(void)
{
	auth_pen.ready = false;
	auth_penalty_init();
}

void
auth_penalty_set_clock(uint64_t (*now_ms)(void))
{
	auth_pen.clock = now_ms != NULL ? now_ms : util_now_ms;
}

static unsigned
auth_penalty_bucket(const struct client_key *key)
{
	unsigned char h[crypto_shorthash_BYTES];
	uint64_t v;

	/* Keyed SipHash: a client cannot aim many addresses at one chain. */
	crypto_shorthash(h, (const unsigned char *)key, sizeof(*key),
	    auth_pen.seed);
	memcpy(&v, h, sizeof(v));
	return (unsigned)(v & (AUTH_PENALTY_BUCKETS - 1));
}

static void
auth_penalty_unlink_recency(int idx)
{
	struct auth_penalty *p = &auth_pen.e[idx];

	if (p->newer >= 0)
		auth_pen.e[p->newer].older = p->older;
	else
		auth_pen.newest = p->older;
	if (p->older >= 0)
		auth_pen.e[p->older].newer = p->newer;
	else
		auth_pen.oldest = p->newer;
	p->newer = p->older = -1;
}

static void
auth_penalty_push_newest(int idx)
{
	struct auth_penalty *p = &auth_pen.e[idx];

	p->newer = -1;
	p->older = auth_pen.newest;
	if (auth_pen.newest >= 0)
		auth_pen.e[auth_pen.newest].newer = idx;
	auth_pen.newest = idx;
	if (auth_pen.oldest < 0)
		auth_pen.oldest = idx;
}

static void
auth_penalty_remove(int idx)
{
	struct auth_penalty *p = &auth_pen.e[idx];
	int *link = &auth_pen.buckets[auth_penalty_bucket(&p->key)];

	while (*link != idx) {
		assert(*link >= 0);
		link = &auth_pen.e[*link].hnext;
	}
	*link = p->hnext;
	auth_penalty_unlink_recency(idx);
	p->hnext = auth_pen.free_head;
	auth_pen.free_head = idx;
}

/* Index of the live entry for key, -1 if none (an expired one is removed). */
static int
auth_penalty_find(const struct client_key *key, uint64_t now)
{
	int idx = auth_pen.buckets[auth_penalty_bucket(key)];

	for (; idx >= 0; idx = auth_pen.e[idx].hnext) {
		if (!client_key_equal(&auth_pen.e[idx].key, key))
			continue;
		if (now - auth_pen.e[idx].last_ms >= AUTH_PENALTY_EXPIRE_MS) {
			auth_penalty_remove(idx);
			return -1;
		}
		return idx;
	}
	return -1;
}

/* The live entry for key, created (dropping the least recently used one
 * when full) if there is none; it becomes the most recent. */
static int
auth_penalty_get(const struct client_key *key, uint64_t now)
{
	struct auth_penalty *p;
	unsigned b;
	int idx;

	idx = auth_penalty_find(key, now);
	if (idx >= 0) {
		auth_penalty_unlink_recency(idx);
		auth_penalty_push_newest(idx);
		return idx;
	}
	if (auth_pen.free_head < 0 && auth_pen.nused == AUTH_PENALTY_MAX)
		auth_penalty_remove(auth_pen.oldest);
	if (auth_pen.free_head >= 0) {
		idx = auth_pen.free_head;
		auth_pen.free_head = auth_pen.e[idx].hnext;
	} else
		idx = auth_pen.nused++;
	p = &auth_pen.e[idx];
	p->key = *key;
	p->failures = 0;
	p->next_ms = 0;
	p->last_ms = now;
	b = auth_penalty_bucket(key);
	p->hnext = auth_pen.buckets[b];
	auth_pen.buckets[b] = idx;
	auth_penalty_push_newest(idx);
	return idx;
}

/* first after one failure, doubling, capped. */
static unsigned
auth_penalty_ms(unsigned n)
{
	uint64_t ms;

	if (n == 0)
		return 0;
	ms = (uint64_t)auth_pen.first_ms << (n > 32 ? 32 : n - 1);
	return ms > auth_pen.cap_ms ? auth_pen.cap_ms : (unsigned)ms;
}

unsigned
auth_penalty_delay_ms(const struct client_key *key)
{
	int idx;

	auth_penalty_init();
	idx = auth_penalty_find(key, auth_pen.clock());
	return idx < 0 ? 0 : auth_penalty_ms(auth_pen.e[idx].failures);
}

unsigned
auth_penalty_wait_ms(const struct client_key *key)
{
	uint64_t now;
	int idx;

	auth_penalty_init();
	now = auth_pen.clock();
	idx = auth_penalty_find(key, now);
	if (idx < 0 || auth_pen.e[idx].next_ms <= now)
		return 0;
	return (unsigned)(auth_pen.e[idx].next_ms - now);
}

void
auth_penalty_start(const struct client_key *key)
{
	struct auth_penalty *p;
	uint64_t now;
	int idx;

	auth_penalty_init();
	now = auth_pen.clock();
	idx = auth_penalty_find(key, now);
	if (idx < 0)
		return;		/* no failures: checks run side by side */
	auth_penalty_unlink_recency(idx);
	auth_penalty_push_newest(idx);
	p = &auth_pen.e[idx];
	p->last_ms = now;
	/* Until this check fails (or succeeds), the next one waits as if it
	 * had failed already: parallel sessions take turns. */
	if (p->next_ms < now + auth_penalty_ms(p->failures))
		p->next_ms = now + auth_penalty_ms(p->failures);
}

void
auth_penalty_fail(const struct client_key *key)
{
	struct auth_penalty *p;
	uint64_t now, next;

	auth_penalty_init();
	now = auth_pen.clock();
	p = &auth_pen.e[auth_penalty_get(key, now)];
	p->last_ms = now;
	if (p->failures < AUTH_PENALTY_FAIL_CAP)
		p->failures++;
	next = now + auth_penalty_ms(p->failures);
	if (p->next_ms < next)
		p->next_ms = next;
}

void
auth_penalty_success(const struct client_key *key)
{
	int idx;

	auth_penalty_init();
	idx = auth_penalty_find(key, auth_pen.clock());
	if (idx >= 0)
		auth_penalty_remove(idx);
}

/* ---- base64 ---- */

char *
auth_base64_decode(const char *b64, size_t *len_r)
{
	size_t b64len = strlen(b64), max = b64len / 4 * 3 + 3, len;
	unsigned char *bin = xmalloc(max + 1);
	const char *end;

	if (sodium_base642bin(bin, max, b64, b64len, NULL, &len, &end,
	    sodium_base64_VARIANT_ORIGINAL) != 0 || end != b64 + b64len) {
		sodium_memzero(bin, max + 1);
		free(bin);
		return NULL;
	}
	bin[len] = '\0';
	if (len_r != NULL)
		*len_r = len;
	return (char *)bin;
}

char *
auth_base64_encode(const void *data, size_t len)
{
	size_t size = sodium_base64_ENCODED_LEN(len,
	    sodium_base64_VARIANT_ORIGINAL);
	char *out = xmalloc(size);

	sodium_bin2base64(out, size, data, len,
	    sodium_base64_VARIANT_ORIGINAL);
	return out;
}
