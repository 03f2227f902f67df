/*
 * DNSBL lookups for one zone, blocking (dnsbl.h: dnsbl_query_sync), for
 * carteiroctl dnsbl: the same names and the same listing rule as the
 * daemon's check at connect (dnsbl.c), with every answer kept to show.
 */
#include "mailauth/dnsbl.h"
#include "mailauth/dns.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

static char *dnsbl_join(char **v, size_t n, const char *sep);

/* v[0..n-1] with sep between. Caller frees. */
static char *
dnsbl_join(char **v, size_t n, const char *sep)
{
	size_t len = 1;
	char *out;

	for (size_t i = 0; i < n; i++)
		len += strlen(v[i]) + strlen(sep);
	out = xmalloc(len);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			strcat(out, sep);
		strcat(out, v[i]);
	}
	return out;
}

int
dnsbl_query_sync(struct dns *d, const char *zone, const char *ip,
    struct dnsbl_answer *a)
{
	char rev[128], **rr = NULL;
	size_t n = 0;
	enum dns_status st;

	memset(a, 0, sizeof(*a));
	if (dnsbl_reverse_name(ip, rev, sizeof(rev)) < 0)
		return -1;
	a->name = xasprintf("%s.%s", rev, zone);
	st = dns_lookup_sync(d, DNS_T_A, a->name, &rr, &n);
	if (st == DNS_TEMPFAIL) {
		a->verdict = DNSBL_TEMPERROR;
		return 0;
	}
	a->verdict = DNSBL_CLEAN;
	for (size_t i = 0; st == DNS_OK && i < n; i++) {
		struct sockaddr_storage ss;
		socklen_t sl;
		if (dns_parse_ip(rr[i], 0, &ss, &sl) == 0 &&
		    dnsbl_is_listing(&ss))
			a->verdict = DNSBL_LISTED;
	}
	if (st == DNS_OK)
		a->addrs = dnsbl_join(rr, n, ", ");
	dns_rr_free(rr, n);
	if (a->verdict != DNSBL_LISTED)
		return 0;
	rr = NULL;
	n = 0;
	if (dns_lookup_sync(d, DNS_T_TXT, a->name, &rr, &n) == DNS_OK)
		a->reason = dnsbl_join(rr, n, "; ");
	dns_rr_free(rr, n);
	return 0;
}

void
dnsbl_answer_clear(struct dnsbl_answer *a)
{
	free(a->name);
	free(a->addrs);
	free(a->reason);
	memset(a, 0, sizeof(*a));
}
