/*
 * Internals shared by the SPF files (spf.h): the evaluation context and
 * the macro expander that spf.c's mechanisms use. spf.c owns record
 * selection, the mechanism table and check_host(); spf_macro.c macros
 * (RFC 7208 7); spf_dns.c the resolver hook.
 */
#ifndef CARTEIRO_SPF_INT_H
#define CARTEIRO_SPF_INT_H

#include "mailauth/spf.h"

#define SPF_MAX_LOOKUPS		10	/* RFC 7208 4.6.4 */
#define SPF_MAX_VOID		2	/* RFC 7208 4.6.4 */
#define SPF_MAX_MX_NAMES	10
#define SPF_MAX_PTR_NAMES	10
#define SPF_MAX_EXPANSION	253	/* domain-spec result length */

/* One spf_check(): the client, the counters (4.6.4), the reason. */
struct spf_ctx {
	const struct spf_request *req;
	int family;			/* 4 or 6 (v4-mapped is 4) */
	unsigned char ip[16];
	unsigned lookups;
	unsigned voids;
	const char *why;
	char *validated;		/* %{p} cache */
};

/* "192.0.2.1" -> "192.0.2.1", IPv6 as 32 dotted nibbles (%{i}). Caller
 * frees. */
char *spf_ip_dotted(const struct spf_ctx *c);
/* Expand a domain-spec; over 253 octets, drop labels from the left
 * (RFC 7208 7.3). NULL on syntax error. Caller frees. */
char *spf_domain_spec(struct spf_ctx *c, const char *domain,
    const char *spec);

#endif
