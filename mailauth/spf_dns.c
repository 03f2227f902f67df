/*
 * The SPF/DMARC resolver hook (spf.h: spf_lookup_dns) backed by the DNS
 * module: SPF's query types and statuses mapped onto dns.h's. Owns only
 * the mapping; resolving and caching are dns*.c's.
 */
#include "mailauth/spf.h"
#include "mailauth/dns.h"

enum spf_dns_status
spf_lookup_dns(void *ctx, enum spf_qtype type, const char *name,
    char ***answers_r, size_t *n_r)
{
	static const enum dns_type types[] = {
		[SPF_Q_TXT] = DNS_T_TXT,
		[SPF_Q_A] = DNS_T_A,
		[SPF_Q_AAAA] = DNS_T_AAAA,
		[SPF_Q_MX] = DNS_T_MX,
		[SPF_Q_PTR] = DNS_T_PTR,
	};

	switch (dns_lookup_sync(ctx, types[type], name, answers_r, n_r)) {
	case DNS_OK:
		return SPF_DNS_OK;
	case DNS_TEMPFAIL:
		return SPF_DNS_TEMPFAIL;
	default:
		/* NXDOMAIN, NODATA, and a null MX (RFC 7505): nothing. */
		return SPF_DNS_NONE;
	}
}
