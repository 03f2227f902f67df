/*
 * Asynchronous DNS on the libevent loop (c-ares): one channel per struct
 * dns, its sockets watched by libevent, its timeouts by one timer. Never
 * blocks. Offers a generic query (any class/type, raw answer), typed
 * helpers for MX (RFC 5321 5.1 ordering, RFC 7505 null MX), addresses
 * (A + AAAA, or an IP literal) and TXT, on which the outbound relay and the
 * inbound deliverability checks (SPF, DKIM, DMARC, DNSBL) build.
 */
#ifndef CARTEIRO_DNS_H
#define CARTEIRO_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct dns;
struct dns_req;

enum dns_status {
	DNS_OK,
	DNS_NXDOMAIN,		/* the name does not exist: permanent */
	DNS_NODATA,		/* the name exists, no record of that type */
	DNS_TEMPFAIL,		/* SERVFAIL, timeout, refused, ...: retry later */
	DNS_NULLMX,		/* MX lookup only: RFC 7505 "0 ." */
	DNS_STATUS_COUNT
};

/* "ok", "nxdomain", ... (static). */
const char *dns_status_str(enum dns_status st);

/*
 * resolver: "ip:port" (IPv6 as "[::1]:53") or NULL for /etc/resolv.conf.
 * timeout_ms / tries: per-server timeout and number of tries (0 = defaults
 * 2000 ms, 2). NULL and *error_r (static string) on failure.
 */
struct dns *dns_new(struct event_base *base, const char *resolver,
    int timeout_ms, int tries, const char **error_r);
/* Cancels every pending request; their callbacks are NOT called. */
void dns_free(struct dns *d);

/*
 * Every request returns a handle that is valid until its callback has
 * returned or dns_cancel() was called, whichever comes first. Callbacks
 * always run from the event loop, never from inside the call that started
 * the request. Data passed to callbacks is borrowed for the duration of
 * the call.
 */
void dns_cancel(struct dns_req *req);

/* Generic: raw DNS answer (abuf/alen valid only with DNS_OK). */
typedef void dns_raw_cb(enum dns_status st, const unsigned char *abuf,
    int alen, void *arg);
struct dns_req *dns_query(struct dns *d, const char *name, int dnsclass,
    int type, dns_raw_cb *cb, void *arg);

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

/* TXT: each record's strings concatenated (RFC 7208 3.3). */
typedef void dns_txt_cb(enum dns_status st, const char *const *txt,
    size_t n, void *arg);
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

#endif
