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

struct auth_req {
	struct auth_req *next;
	uint64_t token;
	char *address;
	char *password;		/* wiped and freed as soon as it is checked */
	auth_done_cb *cb;
	void *arg;
	enum auth_result res;
	char *canonical;	/* stored address on AUTH_OK */
	bool cancelled;		/* callback must not run (set on loop thread) */
};

struct auth_req_list {
	struct auth_req *head, *tail;
};

struct auth_worker {
	struct auth_pool *pool;
	pthread_t thread;
	struct store *st;	/* this thread's own connection */
	struct auth_req *running;	/* under pool->mtx */
	bool started;
};

struct auth_pool {
	struct event_base *base;
	struct event *ev;		/* readable pipe: results are ready */
	int pipe_rd, pipe_wr;		/* non-blocking, close-on-exec */

	pthread_mutex_t mtx;		/* guards everything below */
	pthread_cond_t cond;		/* waiting got a request, or stop */
	struct auth_req_list waiting;
	struct auth_req_list done;
	unsigned npending;		/* waiting + running */
	unsigned max_pending;
	bool stopping;

	uint64_t next_token;		/* loop thread only */
	unsigned nthreads;
	struct auth_worker *workers;
};

static void auth_req_free(struct auth_req *req);
static void auth_list_push(struct auth_req_list *l, struct auth_req *req);
static struct auth_req *auth_list_pop(struct auth_req_list *l);
static bool auth_list_remove(struct auth_req_list *l, uint64_t token,
    struct auth_req **req_r);
static void *auth_worker_main(void *arg);
static void auth_pool_deliver(evutil_socket_t fd, short what, void *arg);

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

static void
auth_list_push(struct auth_req_list *l, struct auth_req *req)
{
	req->next = NULL;
	if (l->tail != NULL)
		l->tail->next = req;
	else
		l->head = req;
	l->tail = req;
}

static struct auth_req *
auth_list_pop(struct auth_req_list *l)
{
	struct auth_req *req = l->head;

	if (req != NULL) {
		l->head = req->next;
		if (l->head == NULL)
			l->tail = NULL;
		req->next = NULL;
	}
	return req;
}

/* Unlink the request with that token; true if it was in the list. */
static bool
auth_list_remove(struct auth_req_list *l, uint64_t token,
    struct auth_req **req_r)
{
	struct auth_req *req, *prev = NULL;

	for (req = l->head; req != NULL; prev = req, req = req->next) {
		if (req->token != token)
			continue;
		if (prev != NULL)
			prev->next = req->next;
		else
			l->head = req->next;
		if (l->tail == req)
			l->tail = prev;
		req->next = NULL;
		*req_r = req;
		return true;
	}
	return false;
}

static void *
auth_worker_main(void *arg)
{
	struct auth_worker *w = arg;
	struct auth_pool *pool = w->pool;
	struct auth_req *req;
	enum auth_result res;
	char *canonical;
	bool wake;

	pthread_mutex_lock(&pool->mtx);
	for (;;) {
		while (!pool->stopping && pool->waiting.head == NULL)
			pthread_cond_wait(&pool->cond, &pool->mtx);
		if (pool->stopping)
			break;
		req = auth_list_pop(&pool->waiting);
		w->running = req;
		pthread_mutex_unlock(&pool->mtx);

		canonical = NULL;
		res = auth_check(w->st, req->address, req->password,
		    &canonical);
		auth_wipe_free(req->password);
		req->password = NULL;

		pthread_mutex_lock(&pool->mtx);
		w->running = NULL;
		pool->npending--;
		req->res = res;
		req->canonical = canonical;
		/* One wake-up per batch: the loop drains the whole list. */
		wake = pool->done.head == NULL;
		auth_list_push(&pool->done, req);
		if (wake) {
			ssize_t n;

			do {
				n = write(pool->pipe_wr, "r", 1);
			} while (n < 0 && errno == EINTR);
			/* EAGAIN: the pipe is full, a wake-up is pending. */
		}
	}
	pthread_mutex_unlock(&pool->mtx);
	return NULL;
}

/* On the loop thread: hand every finished check to its callback. */
static void
auth_pool_deliver(evutil_socket_t fd, short what, void *arg)
{
	struct auth_pool *pool = arg;
	struct auth_req *req;
	char buf[64];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	for (;;) {
		pthread_mutex_lock(&pool->mtx);
		req = auth_list_pop(&pool->done);
		pthread_mutex_unlock(&pool->mtx);
		if (req == NULL)
			break;
		/* The callback may cancel other tokens (they are still on
		 * the done list, so cancel finds them) or submit new ones. */
		if (!req->cancelled)
			req->cb(req->token, req->res,
			    req->res == AUTH_OK ? req->canonical : NULL,
			    req->arg);
		auth_req_free(req);
	}
}

struct auth_pool *
auth_pool_new(struct event_base *base, const char *store_path,
    unsigned nthreads, unsigned max_pending)
{
	struct auth_pool *pool;
	sigset_t all, old;
	const char *error;
	int fds[2];
	unsigned i;

	auth_init();
	if (nthreads == 0)
		nthreads = 1;
	pool = xcalloc(1, sizeof(*pool));
	pool->base = base;
	pool->pipe_rd = pool->pipe_wr = -1;
	pool->nthreads = nthreads;
	pool->max_pending = max_pending;
	pool->next_token = 1;
	pthread_mutex_init(&pool->mtx, NULL);
	pthread_cond_init(&pool->cond, NULL);
	pool->workers = xcalloc(nthreads, sizeof(*pool->workers));

	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
		log_error("event=auth.pool error=\"pipe: %s\"",
		    strerror(errno));
		auth_pool_free(pool);
		return NULL;
	}
	pool->pipe_rd = fds[0];
	pool->pipe_wr = fds[1];
	pool->ev = event_new(base, pool->pipe_rd, EV_READ | EV_PERSIST,
	    auth_pool_deliver, pool);
	if (pool->ev == NULL || event_add(pool->ev, NULL) < 0) {
		log_error("event=auth.pool error=\"event_new failed\"");
		auth_pool_free(pool);
		return NULL;
	}
	for (i = 0; i < nthreads; i++) {
		pool->workers[i].pool = pool;
		pool->workers[i].st = store_open(store_path, &error);
		if (pool->workers[i].st == NULL) {
			log_error("event=auth.pool error=\"store: %s\"", error);
			auth_pool_free(pool);
			return NULL;
		}
	}
	/* Workers block every signal: signals belong to the loop thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < nthreads; i++) {
		int rc = pthread_create(&pool->workers[i].thread, NULL,
		    auth_worker_main, &pool->workers[i]);

		if (rc != 0) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			log_error("event=auth.pool error=\"pthread_create: "
			    "%s\"", strerror(rc));
			auth_pool_free(pool);
			return NULL;
		}
		pool->workers[i].started = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return pool;
}

void
auth_pool_free(struct auth_pool *pool)
{
	struct auth_req *req;
	unsigned i;

	if (pool == NULL)
		return;
	pthread_mutex_lock(&pool->mtx);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->cond);
	pthread_mutex_unlock(&pool->mtx);
	/* A worker in the middle of a check finishes it (tens of ms). */
	for (i = 0; i < pool->nthreads; i++) {
		if (pool->workers[i].started)
			pthread_join(pool->workers[i].thread, NULL);
		if (pool->workers[i].st != NULL)
			store_close(pool->workers[i].st);
	}
	while ((req = auth_list_pop(&pool->waiting)) != NULL)
		auth_req_free(req);
	while ((req = auth_list_pop(&pool->done)) != NULL)
		auth_req_free(req);
	if (pool->ev != NULL)
		event_free(pool->ev);
	if (pool->pipe_rd >= 0)
		close(pool->pipe_rd);
	if (pool->pipe_wr >= 0)
		close(pool->pipe_wr);
	pthread_cond_destroy(&pool->cond);
	pthread_mutex_destroy(&pool->mtx);
	free(pool->workers);
	free(pool);
}

uint64_t
auth_pool_submit(struct auth_pool *pool, const char *address,
    const char *password, auth_done_cb *cb, void *arg)
{
	struct auth_req *req;

	pthread_mutex_lock(&pool->mtx);
	if (pool->npending >= pool->max_pending) {
		pthread_mutex_unlock(&pool->mtx);
		return 0;
	}
	req = xcalloc(1, sizeof(*req));
	req->token = pool->next_token++;
	req->address = xstrdup(address);
	req->password = xstrdup(password);
	req->cb = cb;
	req->arg = arg;
	pool->npending++;
	auth_list_push(&pool->waiting, req);
	pthread_cond_signal(&pool->cond);
	pthread_mutex_unlock(&pool->mtx);
	return req->token;
}

void
auth_pool_cancel(struct auth_pool *pool, uint64_t token)
{
	struct auth_req *req = NULL;
	unsigned i;

	if (pool == NULL || token == 0)
		return;
	pthread_mutex_lock(&pool->mtx);
	if (auth_list_remove(&pool->waiting, token, &req)) {
		pool->npending--;
		pthread_mutex_unlock(&pool->mtx);
		auth_req_free(req);
		return;
	}
	for (i = 0; i < pool->nthreads; i++) {
		if (pool->workers[i].running != NULL &&
		    pool->workers[i].running->token == token)
			pool->workers[i].running->cancelled = true;
	}
	for (req = pool->done.head; req != NULL; req = req->next) {
		if (req->token == token)
			req->cancelled = true;
	}
	pthread_mutex_unlock(&pool->mtx);
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
