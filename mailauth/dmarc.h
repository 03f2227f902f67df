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
	bool apply;			/* result fail and pct sampled in */
	const char *why;		/* static */
};

void dmarc_check(const struct dmarc_request *req, struct dmarc_outcome *out);

/* The organizational domain of domain (caller frees). */
char *dmarc_org_domain(const char *domain);

const char *dmarc_result_str(enum dmarc_result r);
const char *dmarc_policy_str(enum dmarc_policy p);

/* The domain of the single address in a From header value ("Name
 * <a@b>", "a@b", groups not supported). NULL when there is not exactly
 * one address. Caller frees; lower case. */
char *dmarc_from_domain(const char *from_value);

#endif
