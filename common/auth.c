/*
 * Password hashing and checking with libsodium argon2id, the worker pool
 * that runs those checks off the event loop, the per-client failure penalty
 * and the SASL PLAIN/base64 helpers. The only file that includes
 * <sodium.h>. It never logs a password and wipes every copy it makes; it
 * does not log login results (the daemons do, with their session ids).
 */
#include "common/auth.h"
#include "common/addr.h"
#include "common/log.h"
#include "common/util.h"
#include "common/workq.h"
#include "store/store.h"

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

/* Interactive limits: ~64 MB and tens of ms per hash. */
#define AUTH_OPSLIMIT crypto_pwhash_OPSLIMIT_INTERACTIVE
#define AUTH_MEMLIMIT crypto_pwhash_MEMLIMIT_INTERACTIVE

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
auth_wipe_free(char *s)
{
	if (s == NULL)
		return;
	sodium_memzero(s, strlen(s));
	free(s);
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

enum auth_result
auth_check(struct store *st, const char *address, const char *password,
    char **canonical_r)
{
	struct store_user u;
	const char *hash = auth_dummy_hash, *error;
	char *norm = NULL, *newhash;
	bool found = false, ok;
	int r;

	auth_init();
	memset(&u, 0, sizeof(u));
	if (canonical_r != NULL)
		*canonical_r = NULL;
	/* A malformed address is just an unknown user (same cost). */
	if (addr_normalize(address, &norm, &error) == 0) {
		r = store_user_get(st, norm, &u);
		free(norm);
		if (r < 0)
			return AUTH_TEMPFAIL;
		found = r == 0;
	}
	if (found && u.hash != NULL && strncmp(u.hash, "$argon2", 7) == 0)
		hash = u.hash;
	ok = crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
	if (!ok || !found || hash == auth_dummy_hash || !u.enabled) {
		store_user_clear(&u);
		return AUTH_FAIL;
	}
	/* Parameters (or the argon2 variant) changed since the hash was made:
	 * the password is known to be right now, so store a fresh hash. */
	if (crypto_pwhash_str_needs_rehash(u.hash, AUTH_OPSLIMIT,
	    AUTH_MEMLIMIT) != 0) {
		char esc[LOG_ESCAPE_MAX];

		log_escape(esc, sizeof(esc), u.address, strlen(u.address));
		if (auth_hash_password(password, &newhash) < 0)
			log_warn("event=auth.rehash user=%s result=fail "
			    "error=\"out of memory\"", esc);
		else {
			if (store_user_set_hash(st, u.address, newhash) != 0)
				log_warn("event=auth.rehash user=%s "
				    "result=fail error=\"store\"", esc);
			else
				log_info("event=auth.rehash user=%s "
				    "result=ok", esc);
			free(newhash);
		}
	}
	if (canonical_r != NULL)
		*canonical_r = xstrdup(u.address);
	store_user_clear(&u);
	return AUTH_OK;
}

/* ---- worker pool ---- */

/*
 * The checks run on a common/workq pool. Each worker has its own store
 * connection; they are opened in auth_pool_new (before any privilege
 * drop) and handed out as the workers start.
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
	pthread_mutex_t mtx;		/* guards the hand-out below */
	struct store **stores;		/* one per worker */
	unsigned nstores, handed;
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

/* A worker starts: take one of the connections opened for the pool. */
static void *
auth_worker_init(void *arg)
{
	struct auth_pool *pool = arg;
	struct store *st = NULL;

	pthread_mutex_lock(&pool->mtx);
	if (pool->handed < pool->nstores)
		st = pool->stores[pool->handed++];
	pthread_mutex_unlock(&pool->mtx);
	return st;
}

static void
auth_worker_fini(void *ctx)
{
	store_close(ctx);
}

static void
auth_work(void *job, void *ctx)
{
	struct auth_req *req = job;
	struct store *st = ctx;

	req->res = st != NULL ? auth_check(st, req->address, req->password,
	    &req->canonical) : AUTH_TEMPFAIL;
	auth_wipe_free(req->password);
	req->password = NULL;
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
auth_pool_new(struct event_base *base, const char *store_path,
    unsigned nthreads, unsigned max_pending)
{
	struct auth_pool *pool;
	const char *error;

	auth_init();
	if (nthreads == 0)
		nthreads = 1;
	pool = xcalloc(1, sizeof(*pool));
	pthread_mutex_init(&pool->mtx, NULL);
	pool->stores = xcalloc(nthreads, sizeof(*pool->stores));
	for (pool->nstores = 0; pool->nstores < nthreads; pool->nstores++) {
		pool->stores[pool->nstores] = store_open(store_path, &error);
		if (pool->stores[pool->nstores] == NULL) {
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
	 * workers close the connections they took. */
	workq_free(pool->wq);
	for (unsigned i = pool->handed; i < pool->nstores; i++)
		store_close(pool->stores[i]);
	free(pool->stores);
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

#define AUTH_PENALTY_MAX	4096	/* entries; the oldest is dropped */
#define AUTH_PENALTY_BUCKETS	8192	/* power of two */
#define AUTH_PENALTY_EXPIRE_MS	(15 * 60 * 1000)
#define AUTH_PENALTY_CAP_MS	15000
#define AUTH_PENALTY_FAIL_CAP	32	/* failures counted per entry */

/*
 * Key: the IPv4 address (as v4-mapped IPv6), the /64 of an IPv6 address
 * (one host usually owns a whole /64), or a hash of anything else.
 */
struct auth_penalty {
	uint8_t key[16];
	uint64_t last_ms;	/* monotonic time of the last failure */
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
	uint64_t (*clock)(void);
} auth_pen;

static void auth_penalty_init(void);
static void auth_penalty_key(const char *ip, uint8_t key[16]);
static unsigned auth_penalty_bucket(const uint8_t key[16]);
static int auth_penalty_find(const uint8_t key[16], uint64_t now);
static void auth_penalty_remove(int idx);
static void auth_penalty_unlink_recency(int idx);
static void auth_penalty_push_newest(int idx);

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

static void
auth_penalty_key(const char *ip, uint8_t key[16])
{
	struct in_addr a4;
	struct in6_addr a6;

	memset(key, 0, 16);
	if (inet_pton(AF_INET, ip, &a4) == 1) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &a4, 4);
	} else if (inet_pton(AF_INET6, ip, &a6) == 1) {
		memcpy(key, &a6, 16);
		if (!IN6_IS_ADDR_V4MAPPED(&a6))
			memset(key + 8, 0, 8);
	} else
		crypto_generichash(key, 16, (const unsigned char *)ip,
		    strlen(ip), NULL, 0);
}

static unsigned
auth_penalty_bucket(const uint8_t key[16])
{
	unsigned char h[crypto_shorthash_BYTES];
	uint64_t v;

	/* Keyed SipHash: a client cannot aim many addresses at one chain. */
	crypto_shorthash(h, key, 16, auth_pen.seed);
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
	int *link = &auth_pen.buckets[auth_penalty_bucket(p->key)];

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
auth_penalty_find(const uint8_t key[16], uint64_t now)
{
	int idx = auth_pen.buckets[auth_penalty_bucket(key)];

	for (; idx >= 0; idx = auth_pen.e[idx].hnext) {
		if (memcmp(auth_pen.e[idx].key, key, 16) != 0)
			continue;
		if (now - auth_pen.e[idx].last_ms >= AUTH_PENALTY_EXPIRE_MS) {
			auth_penalty_remove(idx);
			return -1;
		}
		return idx;
	}
	return -1;
}

unsigned
auth_penalty_delay_ms(const char *ip)
{
	uint8_t key[16];
	unsigned n, ms;
	int idx;

	auth_penalty_init();
	auth_penalty_key(ip, key);
	idx = auth_penalty_find(key, auth_pen.clock());
	if (idx < 0 || auth_pen.e[idx].failures == 0)
		return 0;
	n = auth_pen.e[idx].failures;
	/* 1 s after one failure, doubling, capped. */
	ms = n > 5 ? AUTH_PENALTY_CAP_MS : 1000u << (n - 1);
	return ms > AUTH_PENALTY_CAP_MS ? AUTH_PENALTY_CAP_MS : ms;
}

void
auth_penalty_fail(const char *ip)
{
	struct auth_penalty *p;
	uint8_t key[16];
	uint64_t now;
	unsigned b;
	int idx;

	auth_penalty_init();
	auth_penalty_key(ip, key);
	now = auth_pen.clock();
	idx = auth_penalty_find(key, now);
	if (idx < 0) {
		if (auth_pen.free_head < 0 &&
		    auth_pen.nused == AUTH_PENALTY_MAX)
			auth_penalty_remove(auth_pen.oldest);
		if (auth_pen.free_head >= 0) {
			idx = auth_pen.free_head;
			auth_pen.free_head = auth_pen.e[idx].hnext;
		} else
			idx = auth_pen.nused++;
		p = &auth_pen.e[idx];
		memcpy(p->key, key, 16);
		p->failures = 0;
		b = auth_penalty_bucket(key);
		p->hnext = auth_pen.buckets[b];
		auth_pen.buckets[b] = idx;
		auth_penalty_push_newest(idx);
	} else {
		auth_penalty_unlink_recency(idx);
		auth_penalty_push_newest(idx);
	}
	p = &auth_pen.e[idx];
	p->last_ms = now;
	if (p->failures < AUTH_PENALTY_FAIL_CAP)
		p->failures++;
}

void
auth_penalty_success(const char *ip)
{
	uint8_t key[16];
	int idx;

	auth_penalty_init();
	auth_penalty_key(ip, key);
	idx = auth_penalty_find(key, auth_pen.clock());
	if (idx >= 0)
		auth_penalty_remove(idx);
}

/* ---- SASL ---- */

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

int
auth_sasl_plain_decode(const char *b64, char **user_r, char **password_r)
{
	char *buf, *authzid, *authcid, *passwd, *nul;
	size_t len, zlen, clen, plen;
	int ret = -1;

	*user_r = *password_r = NULL;
	if ((buf = auth_base64_decode(b64, &len)) == NULL)
		return -1;
	/* RFC 4616: message = [authzid] NUL authcid NUL passwd */
	authzid = buf;
	if ((nul = memchr(buf, '\0', len)) == NULL)
		goto out;
	zlen = (size_t)(nul - buf);
	authcid = nul + 1;
	nul = memchr(authcid, '\0', len - zlen - 1);
	if (nul == NULL)
		goto out;
	clen = (size_t)(nul - authcid);
	passwd = nul + 1;
	plen = len - zlen - clen - 2;
	if (clen == 0 || plen == 0 || memchr(passwd, '\0', plen) != NULL)
		goto out;
	/* We do not let one user act as another. */
	if (zlen != 0 && (zlen != clen || strncasecmp(authzid, authcid,
	    clen) != 0))
		goto out;
	if (!addr_utf8_valid(authcid, clen))
		goto out;
	*user_r = xstrndup(authcid, clen);
	*password_r = xstrndup(passwd, plen);
	ret = 0;
out:
	sodium_memzero(buf, len);
	free(buf);
	return ret;
}
