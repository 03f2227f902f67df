/*
 * DMARC (RFC 7489): policy discovery at the From domain and then at its
 * organizational domain (public suffix list via libpsl), identifier
 * alignment (relaxed/strict) of the SPF and DKIM results, and the policy
 * to apply. DNS through the same blocking lookup function as spf.h.
 */
#ifndef CARTEIRO_DMARC_H
#define CARTEIRO_DMARC_H

#include "mailauth/spf.h"

#include <stdbool.h>
#include <stddef.h>

enum dmarc_result {
	DMARC_NONE,		/* no policy published */
	DMARC_PASS,
	DMARC_FAIL,
	DMARC_TEMPERROR,
	DMARC_PERMERROR,
	DMARC_RESULT_COUNT
};

enum dmarc_policy {
	DMARC_P_NONE,
	DMARC_P_QUARANTINE,
	DMARC_P_REJECT,
};

struct dmarc_dkim {
	const char *domain;	/* d= of a signature that passed */
};

struct dmarc_request {
	const char *from_domain;	/* RFC5322.From domain (A-label) */
	enum spf_result spf;
	const char *spf_domain;		/* domain SPF checked (MAIL FROM or HELO) */
	const struct dmarc_dkim *dkim;	/* passing signatures only */
	size_t ndkim;
	spf_lookup_fn *lookup;
	void *ctx;
};

struct dmarc_outcome {
	enum dmarc_result result;
	enum dmarc_policy policy;	/* policy of the record (p or sp) */
	/* What to do with a failing message: the policy when pct sampled
	 * it in, else one step less (RFC 7489 6.6.4: reject -> quarantine,
	 * quarantine -> none). */
	enum dmarc_policy disposition;
	bool apply;			/* result fail, disposition not none */
	const char *why;		/* static */
};

void dmarc_check(const struct dmarc_request *req, struct dmarc_outcome *out);

/*
 * A DMARC record as parsed (RFC 7489 6.3, 6.4), with the raw value of
 * every tag that matters for the verdict so carteiroctl can show what
 * was published next to what is used. The raw strings are owned (NULL
 * when the tag is absent); an absent or invalid tag gets its default.
 */
struct dmarc_record {
	char *text;			/* the TXT record */
	char *p_raw, *sp_raw, *pct_raw, *adkim_raw, *aspf_raw, *rua;
	enum dmarc_policy p;		/* none while !p_valid */
	enum dmarc_policy sp;		/* p when absent or invalid */
	bool p_valid;
	bool sp_valid;			/* also true when sp= is absent */
	unsigned pct;			/* 0-100; 100 when absent or invalid */
	bool adkim_strict, aspf_strict;	/* relaxed if absent or invalid */
	bool pct_valid, adkim_valid, aspf_valid;	/* also if absent */
	bool rua_valid;			/* at least one valid URI */
	/* 6.6.3 step 6: p= missing or invalid, or sp= invalid, but a valid
	 * rua=: act as if the record were "v=DMARC1; p=none". */
	bool as_none;
};

/* Parse txt as a DMARC record: 0, or -1 when it does not start with
 * "v=DMARC1" (6.4: the tag name case-insensitive, WSP around '=').
 * Clear r with dmarc_record_clear either way. */
int dmarc_record_parse(const char *txt, struct dmarc_record *r);
void dmarc_record_clear(struct dmarc_record *r);
/* The policy r asks for mail from a domain: sp when r was found at the
 * organizational domain (at_org), else p; none under as_none. */
enum dmarc_policy dmarc_record_policy(const struct dmarc_record *r,
    bool at_org);

enum dmarc_found {
	DMARC_FOUND,		/* one usable record */
	DMARC_FOUND_NONE,	/* no DMARC record published */
	DMARC_FOUND_UNUSABLE,	/* several records, or no valid p=/sp= and
				 * no valid rua= (6.6.3 step 6): no policy */
	DMARC_FOUND_TEMPERROR,	/* DNS failed */
};

/* Policy discovery (RFC 7489 6.6.3 steps 1-6) for from_domain.
 * *name_r: the _dmarc name where discovery ended (caller frees, always
 * set); *at_org_r: that is the organizational domain's, not the From
 * domain's. rec is filled (and must be cleared) for DMARC_FOUND and, with
 * the first record, for DMARC_FOUND_UNUSABLE. *why_r: static, for every
 * result but DMARC_FOUND. */
enum dmarc_found dmarc_discover(spf_lookup_fn *lookup, void *ctx,
    const char *from_domain, struct dmarc_record *rec, char **name_r,
    bool *at_org_r, const char **why_r);

/* The organizational domain of domain (caller frees). */
char *dmarc_org_domain(const char *domain);

const char *dmarc_result_str(enum dmarc_result r);
const char *dmarc_policy_str(enum dmarc_policy p);

/* The domain of the single address in a From header value ("Name
 * <a@b>", "a@b", groups not supported). NULL when there is not exactly
 * one address. Caller frees; lower case. */
char *dmarc_from_domain(const char *from_value);

#endif
