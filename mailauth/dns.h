/*
 * The DNS module: one asynchronous c-ares resolver on the libevent loop
 * with one answer cache that honours TTLs (mailauth/dns_cache.c), one MX
 * sorter, and its own query types. The loop API (dns_mx, dns_addr,
 * dns_txt, dns_lookup) never blocks; worker threads and carteiroctl use
 * dns_lookup_sync(), which posts the query to the same resolver. SPF,
 * DKIM, DMARC, DNSBL and the relay build on it.
 * Files: dns.c (c-ares transport), dns_req.c (typed requests, MX order),
 * dns_sync.c (blocking entry point), dns_cache.c, dns_wire.c (parser).
 */
#ifndef CARTEIRO_DNS_H
#define CARTEIRO_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct dns;
struct dns_req;

enum dns_status {
	DNS_OK,
	DNS_NXDOMAIN,		/* the name does not exist: permanent */
	DNS_NODATA,		/* the name exists, no record of that type */
	DNS_TEMPFAIL,		/* SERVFAIL, timeout, refused: retry later */
	DNS_NULLMX,		/* MX lookup only: RFC 7505 "0 ." */
	DNS_STATUS_COUNT
};

/* Query types; answers are handed out as text (see dns_lookup). */
enum dns_type {
	DNS_T_A,
	DNS_T_AAAA,
	DNS_T_MX,
	DNS_T_TXT,
	DNS_T_PTR,
	DNS_T_SRV,		/* RFC 2782: "PRIORITY WEIGHT PORT TARGET" */
	DNS_T_TLSA,		/* RFC 6698: "USAGE SELECTOR MTYPE HEXDATA" */
	DNS_TYPE_COUNT
};

/* "ok", "nxdomain", ... (static). */
const char *dns_status_str(enum dns_status st);
/* "A", "MX", ... (static). */
const char *dns_type_str(enum dns_type type);

/*
 * resolver: "ip:port" (IPv6 as "[::1]:53") or NULL for /etc/resolv.conf.
 * timeout_ms / tries: per-server timeout and number of tries (0 = defaults
 * 2000 ms, 2). base NULL: the resolver runs an event_base of its own for
 * the duration of each dns_lookup_sync() call (carteiroctl); then only
 * dns_lookup_sync() may be used, from one thread at a time. Handles made
 * on one base with the same resolver, timeout and tries share one c-ares
 * channel (and every handle shares the cache). NULL and *error_r (static
 * string) on failure.
 */
struct dns *dns_new(struct event_base *base, const char *resolver,
    int timeout_ms, int tries, const char **error_r);
/* Cancels every pending request of this handle; their callbacks are NOT
 * called. Pending dns_lookup_sync() calls on it return DNS_TEMPFAIL. On
 * the loop thread. */
void dns_free(struct dns *d);

/*
 * Every request returns a handle that is valid until its callback has
 * returned or dns_cancel() was called, whichever comes first. Callbacks
 * always run from the event loop, never from inside the call that started
 * the request. Data passed to callbacks is borrowed for the duration of
 * the call.
 */
void dns_cancel(struct dns_req *req);

/*
 * Any type, answers as text: A/AAAA addresses ("192.0.2.1", "2001:db8::1"),
 * MX exchanges in RFC 5321 5.1 order (DNS_NULLMX for "0 ."), TXT records
 * with each record's strings joined (RFC 7208 3.3; a NUL octet in them
 * as 0x7f), PTR names, SRV records as "PRIORITY WEIGHT PORT TARGET"
 * (target "." when the service is decidedly absent, RFC 2782). DNS_OK always comes with n >= 1. A name no query
 * can carry (an empty label, a label over 63 octets, over 253 in all)
 * is DNS_NXDOMAIN without a query (RFC 7208 4.3).
 */
typedef void dns_lookup_cb(enum dns_status st, const char *const *rr,
    size_t n, void *arg);
struct dns_req *dns_lookup(struct dns *d, enum dns_type type,
    const char *name, dns_lookup_cb *cb, void *arg);

/*
 * The same, blocking, for worker threads (never the loop thread itself):
 * a cached answer is read on the calling thread; otherwise the query runs
 * on d's loop and the caller waits for it. On DNS_OK,
 * *rr_r is a malloc'd array of *n_r malloc'd strings, freed with
 * dns_rr_free(); otherwise NULL and 0.
 */
enum dns_status dns_lookup_sync(struct dns *d, enum dns_type type,
    const char *name, char ***rr_r, size_t *n_r);
/*
 * The same with a deadline: deadline_ms is absolute, on util_now_ms()'s
 * clock (CLOCK_MONOTONIC), 0 = none. Past it (or when it has already
 * passed and the answer is not cached) DNS_TEMPFAIL; the query still
 * in flight is cancelled on the loop. A message's checks share one
 * deadline (smtpd/inbound.c: [smtpd] check_timeout).
 */
enum dns_status dns_lookup_sync_until(struct dns *d, enum dns_type type,
    const char *name, uint64_t deadline_ms, char ***rr_r, size_t *n_r);
void dns_rr_free(char **rr, size_t n);
/*
 * From now on dns_lookup_sync() on d returns DNS_TEMPFAIL at once for
 * what is not in the cache, and the calls waiting return it now: for a
 * loop that has stopped while worker threads are to be joined. On the
 * loop thread.
 */
void dns_sync_close(struct dns *d);

/*
 * MX: hosts sorted by preference, random order among equal preferences.
 * DNS_NODATA means "no MX records" (the caller uses the implicit MX);
 * DNS_NULLMX means the domain accepts no mail.
 */
struct dns_mx {
	char *host;
	unsigned pref;
};
typedef void dns_mx_cb(enum dns_status st, const struct dns_mx *mx,
    size_t n, void *arg);
struct dns_req *dns_mx(struct dns *d, const char *domain, dns_mx_cb *cb,
    void *arg);
/* Sort in place by preference, shuffling equal preferences (exposed for
 * tests). */
void dns_mx_sort(struct dns_mx *mx, size_t n);

/*
 * Addresses of a host: A and AAAA asked in parallel, IPv4 first. An IP
 * literal is answered without a query. port is stored in each address.
 * DNS_OK with n >= 1; otherwise DNS_TEMPFAIL if either query failed
 * temporarily, else DNS_NXDOMAIN / DNS_NODATA.
 */
typedef void dns_addr_cb(enum dns_status st,
    const struct sockaddr_storage *addrs, size_t n, void *arg);
struct dns_req *dns_addr(struct dns *d, const char *host, unsigned port,
    dns_addr_cb *cb, void *arg);

/*
 * dns_lookup, and whether the resolver marked the answer authenticated
 * (the AD bit, RFC 4035 3.2.3; RFC 7672 2.1 trusts it from a local
 * validating resolver). Every query asks for it (RFC 6840 5.7). secure
 * is false for anything but DNS_OK.
 */
typedef void dns_lookup_ad_cb(enum dns_status st, const char *const *rr,
    size_t n, bool secure, void *arg);
struct dns_req *dns_lookup_ad(struct dns *d, enum dns_type type,
    const char *name, dns_lookup_ad_cb *cb, void *arg);

/* TXT: dns_lookup(DNS_T_TXT). */
typedef dns_lookup_cb dns_txt_cb;
struct dns_req *dns_txt(struct dns *d, const char *name, dns_txt_cb *cb,
    void *arg);

/* "1.2.3.4" / "::1" / "[::1]" -> sockaddr with port. 0 / -1. */
int dns_parse_ip(const char *s, unsigned port, struct sockaddr_storage *ss,
    socklen_t *len_r);
/* Socket address length for ss's family. */
socklen_t dns_sockaddr_len(const struct sockaddr_storage *ss);
/* "1.2.3.4" / "::1" into buf (>= 46 bytes); returns buf. */
const char *dns_sockaddr_str(const struct sockaddr_storage *ss, char *buf,
    size_t size);

/* ---- the cache, for tests ---- */
/* Forget every cached answer. */
void dns_cache_flush(void);
/* Move the cache's clock forward (tests of expiry without sleeping). */
void dns_cache_advance(unsigned seconds);

#endif
