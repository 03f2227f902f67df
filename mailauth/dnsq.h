/*
 * Blocking DNS queries for worker threads (SPF, DKIM key and DMARC policy
 * lookups, carteiroctl check): c-ares driven with poll() inside the
 * calling thread, so it never touches an event loop and has no FD_SETSIZE
 * limit. One struct dnsq per thread. The event-loop resolver for the relay
 * and DNSBL is mailauth/dns.c.
 */
#ifndef CARTEIRO_DNSQ_H
#define CARTEIRO_DNSQ_H

#include "mailauth/spf.h"

#include <stddef.h>

struct dnsq;

/* resolver "ip:port" or NULL for /etc/resolv.conf. NULL on failure. */
struct dnsq *dnsq_new(const char *resolver, int timeout_ms, int tries);
void dnsq_free(struct dnsq *q);

/* Same contract as spf_lookup_fn (ctx = struct dnsq *), so it plugs
 * straight into spf_check. Answers: TXT (strings joined), A/AAAA as
 * text, MX exchanges sorted by preference, PTR names. */
enum spf_dns_status dnsq_lookup(void *q, enum spf_qtype type,
    const char *name, char ***answers_r, size_t *n_r);
void dnsq_free_answers(char **answers, size_t n);

/*
 * The TXT records of a raw DNS answer, each record's strings joined
 * (RFC 7208 3.3); shared with the event-loop resolver (mailauth/dns.c).
 * Returns the c-ares status (ARES_SUCCESS with *n_r >= 0, ARES_ENODATA,
 * or a parse error); on success the caller frees with dnsq_free_answers.
 */
int dnsq_parse_txt(const unsigned char *abuf, int alen, char ***txt_r,
    size_t *n_r);

#endif
