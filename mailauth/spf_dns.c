/*
 * The SPF resolver side: the hook backed by the DNS module (spf.h:
 * spf_lookup_dns, SPF's query types and statuses mapped onto dns.h's),
 * and the evaluator's counted lookup (RFC 7208 4.6.4 void lookups).
 * Resolving and caching are dns*.c's.
 */
#include "mailauth/spf_int.h"
#include "mailauth/dns.h"

#include <stdlib.h>

static const enum dns_type spf_dns_types[] = {
	[SPF_Q_TXT] = DNS_T_TXT,
	[SPF_Q_A] = DNS_T_A,
	[SPF_Q_AAAA] = DNS_T_AAAA,
	[SPF_Q_MX] = DNS_T_MX,
	[SPF_Q_PTR] = DNS_T_PTR,
};

static enum spf_dns_status spf_dns_status(enum dns_status);

enum spf_dns_status
spf_lookup_dns(void *ctx, enum spf_qtype type, const char *name,
    char ***answers_r, size_t *n_r)
{
	return spf_dns_status(dns_lookup_sync(ctx, spf_dns_types[type], name,
	    answers_r, n_r));
}

enum spf_dns_status
spf_lookup_dns_until(void *ctx, enum spf_qtype type, const char *name,
    char ***answers_r, size_t *n_r)
{
	const struct spf_dns_until *u = ctx;

	return spf_dns_status(dns_lookup_sync_until(u->dns,
	    spf_dns_types[type], name, u->deadline_ms, answers_r, n_r));
}

static enum spf_dns_status
spf_dns_status(enum dns_status st)
{
	switch (st) {
	case DNS_OK:
		return SPF_DNS_OK;
	case DNS_TEMPFAIL:
		return SPF_DNS_TEMPFAIL;
	default:
		/* NXDOMAIN (a malformed name too: RFC 7208 4.3), NODATA, and
		 * a null MX (RFC 7505): nothing. */
		return SPF_DNS_NONE;
	}
}

void
spf_free_answers(char **a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(a[i]);
	free(a);
}

enum spf_dns_status
spf_lookup(struct spf_ctx *c, enum spf_qtype t, const char *name,
    char ***ans, size_t *n, bool *permerror_r)
{
	enum spf_dns_status st;

	*ans = NULL;
	*n = 0;
	st = c->req->lookup(c->req->ctx, t, name, ans, n);
	if (st == SPF_DNS_OK && *n == 0)
		st = SPF_DNS_NONE;
	if (st != SPF_DNS_OK) {
		spf_free_answers(*ans, *n);
		*ans = NULL;
		*n = 0;
	}
	if (st == SPF_DNS_NONE && ++c->voids > SPF_MAX_VOID) {
		c->why = "too many void lookups";
		*permerror_r = true;
	}
	return st;
}
