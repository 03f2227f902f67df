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

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

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

/* RFC 5782 2.1: an answer is a listing when it is in 127.0.0.0/8. */
bool dnsbl_is_listing(const struct sockaddr_storage *ss);

/*
 * One zone, blocking, for carteiroctl (dns_lookup_sync; files:
 * dnsbl_query.c): is ip listed under zone, with the evidence. 0, or -1
 * when ip does not parse. Clear a with dnsbl_answer_clear.
 */
enum dnsbl_verdict {
	DNSBL_CLEAN,		/* no answer, or none in 127.0.0.0/8 */
	DNSBL_LISTED,
	DNSBL_TEMPERROR,	/* the zone did not answer */
};
struct dnsbl_answer {
	enum dnsbl_verdict verdict;
	char *name;		/* the name asked ("2.0.0.127.zone") */
	char *addrs;		/* the A answers, ", " between, or NULL */
	char *reason;		/* listed: the TXT records, "; " between;
				 * NULL if there is none */
};
int dnsbl_query_sync(struct dns *d, const char *zone, const char *ip,
    struct dnsbl_answer *a);
void dnsbl_answer_clear(struct dnsbl_answer *a);

#endif
