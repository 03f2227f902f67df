/*
 * The DNS module's one answer cache (c-ares 1.18 has none), shared by
 * every resolver of the process and locked, so the relay, the DNSBL
 * checks and the worker threads' lookups (run on the loop) see the same
 * entries. Keyed by resolver, lower-cased name and type. Positive answers
 * live min(TTL, DNS_CACHE_POS_MAX), negative ones per RFC 2308 capped at
 * DNS_CACHE_NEG_MAX; the caller decides the TTL (dns.c).
 */
#include "mailauth/dns_int.h"
#include "common/util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DNS_CACHE_BUCKETS	1024

struct dns_centry {
	struct dns_centry *next;
	char *view;
	char *name;			/* lower case */
	enum dns_type type;
	enum dns_status st;
	struct dns_rr *rr;
	size_t n;
	uint64_t expires_ms;		/* dns_cache_now() clock */
};

static pthread_mutex_t dns_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dns_centry *dns_cache_tab[DNS_CACHE_BUCKETS];
static size_t dns_cache_n;
static uint64_t dns_cache_skew_ms;	/* dns_cache_advance() */

static uint64_t
dns_cache_now(void)
{
	return util_now_ms() + dns_cache_skew_ms;
}

static unsigned
dns_cache_hash(const char *view, const char *name, enum dns_type type)
{
	unsigned h = 5381u + (unsigned)type;

	for (; *view != '\0'; view++)
		h = h * 33u + (unsigned char)*view;
	for (; *name != '\0'; name++)
		h = h * 33u + (unsigned char)*name;
	return h % DNS_CACHE_BUCKETS;
}

struct dns_rr *
dns_rrs_copy(const struct dns_rr *rr, size_t n)
{
	struct dns_rr *c;

	if (n == 0)
		return NULL;
	c = xcalloc(n, sizeof(*c));
	for (size_t i = 0; i < n; i++) {
		c[i].text = xstrdup(rr[i].text);
		c[i].pref = rr[i].pref;
		c[i].ad = rr[i].ad;
	}
	return c;
}

void
dns_rrs_free(struct dns_rr *rr, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(rr[i].text);
	free(rr);
}

static void
dns_centry_free(struct dns_centry *e)
{
	dns_rrs_free(e->rr, e->n);
	free(e->view);
	free(e->name);
	free(e);
}

/* Drop expired entries; everything when all is false. Locked. */
static void
dns_cache_prune(bool all)
{
	uint64_t now = dns_cache_now();

	for (size_t i = 0; i < DNS_CACHE_BUCKETS; i++) {
		struct dns_centry **ep = &dns_cache_tab[i], *e;

		while ((e = *ep) != NULL) {
			if (all || e->expires_ms <= now) {
				*ep = e->next;
				dns_centry_free(e);
				dns_cache_n--;
			} else
				ep = &e->next;
		}
	}
}

int
dns_cache_get(const char *view, const char *name, enum dns_type type,
    enum dns_status *st_r, struct dns_rr **rr_r, size_t *n_r)
{
	struct dns_centry *e, **ep;
	int hit = 0;

	pthread_mutex_lock(&dns_cache_lock);
	ep = &dns_cache_tab[dns_cache_hash(view, name, type)];
	for (; (e = *ep) != NULL; ep = &e->next) {
		if (e->type != type || strcmp(e->name, name) != 0 ||
		    strcmp(e->view, view) != 0)
			continue;
		if (e->expires_ms <= dns_cache_now()) {
			*ep = e->next;
			dns_centry_free(e);
			dns_cache_n--;
			break;
		}
		*st_r = e->st;
		*rr_r = dns_rrs_copy(e->rr, e->n);
		*n_r = e->n;
		hit = 1;
		break;
	}
	pthread_mutex_unlock(&dns_cache_lock);
	return hit;
}

void
dns_cache_put(const char *view, const char *name, enum dns_type type,
    enum dns_status st, const struct dns_rr *rr, size_t n, uint32_t ttl)
{
	struct dns_centry *e, **ep;
	unsigned h;

	if (ttl == 0 || st == DNS_TEMPFAIL)
		return;
	pthread_mutex_lock(&dns_cache_lock);
	h = dns_cache_hash(view, name, type);
	/* A newer answer replaces the old one. */
	for (ep = &dns_cache_tab[h]; (e = *ep) != NULL; ep = &e->next)
		if (e->type == type && strcmp(e->name, name) == 0 &&
		    strcmp(e->view, view) == 0) {
			*ep = e->next;
			dns_centry_free(e);
			dns_cache_n--;
			break;
		}
	if (dns_cache_n >= DNS_CACHE_MAX)
		dns_cache_prune(false);
	if (dns_cache_n >= DNS_CACHE_MAX)
		dns_cache_prune(true);
	e = xcalloc(1, sizeof(*e));
	e->view = xstrdup(view);
	e->name = xstrdup(name);
	e->type = type;
	e->st = st;
	e->rr = dns_rrs_copy(rr, n);
	e->n = n;
	e->expires_ms = dns_cache_now() + (uint64_t)ttl * 1000;
	e->next = dns_cache_tab[h];
	dns_cache_tab[h] = e;
	dns_cache_n++;
	pthread_mutex_unlock(&dns_cache_lock);
}

void
dns_cache_flush(void)
{
	pthread_mutex_lock(&dns_cache_lock);
	dns_cache_prune(true);
	pthread_mutex_unlock(&dns_cache_lock);
}

void
dns_cache_advance(unsigned seconds)
{
	pthread_mutex_lock(&dns_cache_lock);
	dns_cache_skew_ms += (uint64_t)seconds * 1000;
	pthread_mutex_unlock(&dns_cache_lock);
}
