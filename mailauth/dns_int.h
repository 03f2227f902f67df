/*
 * Internals shared by the files of the DNS module (dns.h): the resolver
 * and request structures, the one-query layer under the cache, the cache
 * and the answer parser. Nothing outside mailauth/dns*.c includes this.
 */
#ifndef CARTEIRO_DNS_INT_H
#define CARTEIRO_DNS_INT_H

#include "mailauth/dns.h"

#include <pthread.h>
#include <stdint.h>

struct event;
struct dns_sync;

/* Cache bounds (seconds). RFC 2308 5: negative answers live for the SOA
 * MINIMUM (or the SOA's TTL if smaller); without an SOA they are not
 * cached. Temporary failures are never cached. */
#define DNS_CACHE_POS_MAX	3600
#define DNS_CACHE_NEG_MAX	900
#define DNS_CACHE_MAX		4096	/* entries */

/* Header flags, third octet (RFC 4035 3.2.3, RFC 6840 5.7). */
#define DNS_HDR_AD		0x20

/* One parsed resource record: its text (see dns_lookup) and, for MX, the
 * preference. */
struct dns_rr {
	char *text;
	unsigned pref;
	bool ad;		/* the answer's AD bit (the same in each) */
};

/*
 * A user's handle on the loop's resolver. Handles made with the same
 * base and settings share one c-ares channel (struct dns_resolver,
 * dns.c); each handle owns its requests, so dns_free cancels only its own.
 */
struct dns {
	struct dns_resolver *res;	/* shared, counted */
	struct event_base *base;	/* res's */
	bool own_base;			/* base made by dns_new */
	const char *view;		/* res's resolver string: the cache
					 * key's first part ("" = system) */
	struct dns_req *reqs;
	struct dns_call *calls;		/* queries and cache hits in flight */
	bool destroying;
	/* dns_sync.c: requests posted by worker threads. */
	pthread_t loop_thread;
	struct workq *sync_wake;	/* wakes the loop (NULL: own base) */
	bool sync_wake_posted;		/* a wake-up is on its way */
	pthread_mutex_t sync_lock;
	struct dns_sync *sync_queue;	/* posted, not yet started */
	struct dns_sync *sync_active;	/* started on the loop */
	struct dns_sync *sync_cancel;	/* given up by their waiter */
	bool sync_closed;
};

/* One query's answer for the layers above: status and the records of the
 * asked type (borrowed for the call). */
typedef void dns_call_cb(void *arg, enum dns_status st,
    const struct dns_rr *rr, size_t n);

/* dns.c: ask (through the cache); cb runs from the loop, or with
 * DNS_TEMPFAIL from dns_free. */
void dns_call(struct dns *d, const char *name, enum dns_type type,
    dns_call_cb *cb, void *arg);
/* Wire type code (1, 28, 15, 16, 12, 33, 52). */
int dns_type_code(enum dns_type type);

/* dns_req.c: the typed requests; dns.c frees them at dns_free. */
void dns_req_free(struct dns_req *req);
/* An answer's records as dns_lookup hands them out (MX: exchanges in
 * delivery order, or DNS_NULLMX). The status; on DNS_OK *text_r (n >= 1,
 * caller frees with dns_rr_free), else NULL and 0. Any thread. */
enum dns_status dns_rr_text(enum dns_type type, enum dns_status st,
    const struct dns_rr *rr, size_t n, char ***text_r, size_t *n_r);

/* dns_sync.c */
void dns_sync_init(struct dns *d);
void dns_sync_fini(struct dns *d);

/* dns_cache.c: 1 and a copy of the records (caller frees with
 * dns_rrs_free) on a live entry, 0 on a miss. */
int dns_cache_get(const char *view, const char *name, enum dns_type type,
    enum dns_status *st_r, struct dns_rr **rr_r, size_t *n_r);
/* Store an answer for ttl seconds (0: not stored). */
void dns_cache_put(const char *view, const char *name, enum dns_type type,
    enum dns_status st, const struct dns_rr *rr, size_t n, uint32_t ttl);
struct dns_rr *dns_rrs_copy(const struct dns_rr *rr, size_t n);
void dns_rrs_free(struct dns_rr *rr, size_t n);

/*
 * dns_wire.c: the records of type qtype in the answer section of a DNS
 * message (CNAMEs followed implicitly: every record of that type counts)
 * and the smallest TTL of that section; each record's ad is the
 * header's AD bit. 0, or -1 if malformed.
 */
int dns_wire_answer(const unsigned char *abuf, size_t alen,
    enum dns_type type, struct dns_rr **rr_r, size_t *n_r,
    uint32_t *ttl_r);
/* RFC 2308 5: the negative-caching TTL from the authority section's SOA,
 * min(SOA TTL, MINIMUM). 0 if there is no SOA or it does not parse. */
uint32_t dns_wire_negative_ttl(const unsigned char *abuf, size_t alen);

#endif
