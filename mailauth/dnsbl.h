/*
 * DNSBL checks at connect (RFC 5782): the client address, reversed, is
 * looked up under every configured zone in parallel on the event loop
 * (mailauth/dns.h). A listing (an A record in 127.0.0.0/8) ends the check
 * with that zone and its TXT reason; a zone that fails or times out is
 * logged (temperror) and counts as "not listed", so a dead blacklist never
 * stops mail.
 */
#ifndef CARTEIRO_DNSBL_H
#define CARTEIRO_DNSBL_H

#include <stddef.h>

struct dns;
struct event_base;
struct cfg_strlist;
struct dnsbl_check;

/* zone NULL: not listed anywhere. zone and reason are borrowed for the
 * call. The check is freed after the callback returns. */
typedef void dnsbl_done_cb(const char *zone, const char *reason, void *arg);

/* The reversed query name prefix for ip ("2.0.0.127" / nibbles for IPv6),
 * into buf. 0 / -1 if ip doesn't parse. */
int dnsbl_reverse_name(const char *ip, char *buf, size_t size);

/* Start a check; the callback always runs later from the loop (also when
 * no zone is configured or d is NULL). The callback must not cancel the
 * check it is called for (it is freed right after). */
struct dnsbl_check *dnsbl_check_start(struct event_base *base, struct dns *d,
    const struct cfg_strlist *zones, const char *ip, dnsbl_done_cb *cb,
    void *arg);
/* The callback will not run. */
void dnsbl_check_cancel(struct dnsbl_check *c);

#endif
