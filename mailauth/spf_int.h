/*
 * Internals shared by the SPF files (spf.h). spf.c owns record
 * selection, the record parser (every term checked before any is
 * evaluated), check_host() and exp=; spf_mech.c the mechanism table
 * (syntax and evaluation of each mechanism, address matching, validated
 * PTR names); spf_macro.c macros and domain-spec syntax (RFC 7208 7);
 * spf_dns.c the resolver hook and the counted lookup.
 */
#ifndef CARTEIRO_SPF_INT_H
#define CARTEIRO_SPF_INT_H

#include "mailauth/spf.h"

#include <stdbool.h>

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
	unsigned include_depth;		/* > 0: inside include (6.2) */
	const char *why;
	char *exp;			/* explanation of a fail (owned) */
	/* %{p}: the client's validated names, looked up once per check
	 * (a record may hold the macro many times). Owned. */
	char **validated;
	size_t nvalidated;
	bool validated_done;
};

/* ---- spf_mech.c ---- */

/* One mechanism term, parsed. Strings point into the record's copy. */
struct spf_term {
	const struct spf_mech *mech;
	enum spf_result q;		/* qualifier (4.6.2) */
	const char *spec;		/* domain-spec, or NULL: <domain> */
	const char *addr;		/* ip4/ip6: the network */
	int c4, c6;			/* CIDR lengths */
	bool v6;			/* ip6 */
	char *text;			/* the term as written (owned) */
};

/* What evaluating a term came to. */
enum spf_eval {
	SPF_EV_NOMATCH,
	SPF_EV_MATCH,
	SPF_EV_STOP,			/* check_host ends with *result_r */
};

struct spf_mech {
	const char *name;
	/* Syntax of the text after the name (arg NULL when there is none;
	 * may write into it). 0 / -1 (permerror, syntax). */
	int (*parse)(struct spf_term *t, char *arg);
	/* Counts against the 10 DNS-lookup limit (4.6.4), before eval. */
	bool lookup;
	enum spf_eval (*eval)(struct spf_ctx *c, const char *domain,
	    const char *sender, const struct spf_term *t,
	    enum spf_result *result_r);
};

/* The mechanism called name (nl bytes, any case), or NULL. */
const struct spf_mech *spf_mech_find(const char *name, size_t nl);
/* The validated name of the client for %{p} (5.5, 7.3): domain itself,
 * else one of its subdomains, else any; "unknown" without one. Caller
 * frees. */
char *spf_validated_name(struct spf_ctx *c, const char *domain);

/* ---- spf.c ---- */

/* c for req: the client address parsed (IPv4-mapped IPv6 is IPv4).
 * 0, or -1 if req->ip is not an address. spf_ctx_fini frees. */
int spf_ctx_init(struct spf_ctx *c, const struct spf_request *req);
void spf_ctx_fini(struct spf_ctx *c);
/* check_host() of domain (recursion for include). */
enum spf_result spf_check_host(struct spf_ctx *c, const char *domain,
    const char *sender);
/* Count one DNS-querying term; false (c->why set) past the limit. */
bool spf_count_lookup(struct spf_ctx *c);

/* ---- spf_dns.c ---- */

/* c's lookup, counted against the void limit (4.6.4) when it finds
 * nothing; *permerror_r set when that limit is passed. On SPF_DNS_OK
 * free the answers with spf_free_answers. */
enum spf_dns_status spf_lookup(struct spf_ctx *c, enum spf_qtype t,
    const char *name, char ***ans, size_t *n, bool *permerror_r);
void spf_free_answers(char **a, size_t n);

/* ---- spf_macro.c ---- */

/* "192.0.2.1" -> "192.0.2.1", IPv6 as 32 dotted nibbles (%{i}). Caller
 * frees. */
char *spf_ip_dotted(const struct spf_ctx *c);
/* Expand a macro-string (is_exp: explain-string, c/r/t allowed). NULL on
 * syntax error. Caller frees. */
char *spf_expand_ctx(struct spf_ctx *c, const char *domain,
    const char *macro, bool is_exp);
/* Is spec a domain-spec (7.1): a macro-string of visible characters
 * ending in "." toplabel ["."] or in a macro-expand? Checked before
 * expansion, never after it. */
bool spf_domain_spec_is_valid(const char *spec);
/* Is s a macro-string (7.1; is_exp: an explain-string, spaces and
 * c/r/t allowed)? */
bool spf_macro_string_is_valid(const char *s, bool is_exp);
/* Expand a domain-spec; over 253 octets, drop labels from the left
 * (7.3). NULL on syntax error. Caller frees. */
char *spf_domain_spec(struct spf_ctx *c, const char *domain,
    const char *spec);

#endif
