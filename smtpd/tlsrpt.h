/*
 * TLS-RPT (RFC 8460): the outcome of each outbound TLS session counted
 * per policy (domain, type, policy strings), with failure details by
 * RFC 8460 4.3 result type, and the report of those counts as RFC 8460
 * section 4 JSON, gzipped (RFC 8460 5.3) for mailing. Pure: no I/O; the
 * relay feeds it and mails what it builds.
 */
#ifndef CARTEIRO_TLSRPT_H
#define CARTEIRO_TLSRPT_H

#include <stddef.h>
#include <time.h>

struct tlsrpt;

struct tlsrpt *tlsrpt_new(void);
void tlsrpt_free(struct tlsrpt *t);

/*
 * One session to an MX of domain under a policy: ptype "tlsa", "sts" or
 * "no-policy-found"; pstr[0..npstr) its policy strings (TLSA records in
 * presentation form, or the STS policy lines); mx the MX host name.
 * result NULL: the session succeeded; otherwise an RFC 8460 4.3.2 result
 * type ("validation-failure", "starttls-not-supported", ...) with the
 * sending and receiving addresses (either may be NULL). Strings are
 * copied.
 */
void tlsrpt_add(struct tlsrpt *t, const char *domain, const char *ptype,
    const char *const *pstr, size_t npstr, const char *mx,
    const char *result, const char *sending_ip, const char *receiving_ip);

/* What t counted so far, in a new struct; t starts over empty. */
struct tlsrpt *tlsrpt_take(struct tlsrpt *t);

/* The policy domains counted so far (borrowed, n of them). */
size_t tlsrpt_domains(const struct tlsrpt *t, const char ***domains_r);

/*
 * The report for domain (RFC 8460 4.4): organization-name org,
 * date-range [start, end] (end is the last second counted),
 * contact-info contact, report-id id, and one "policies" entry per
 * policy with its summary and failure details. NULL if nothing was
 * counted for domain. malloc'd.
 */
char *tlsrpt_json(const struct tlsrpt *t, const char *domain,
    const char *org, const char *contact, const char *id, time_t start,
    time_t end);

/* data as a gzip stream (RFC 1952, zlib); malloc'd, *outlen its size;
 * NULL on failure. */
unsigned char *tlsrpt_gzip(const void *data, size_t len, size_t *outlen);

#endif
