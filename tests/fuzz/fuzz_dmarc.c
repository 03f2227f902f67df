/* Fuzz DMARC record parsing and policy evaluation (mailauth/dmarc.c):
 * the first byte picks the SPF result, which identifiers align and
 * whether the record is published at the From domain or only at the
 * organizational domain (or both, the record split in two at a NUL in
 * the input); the rest is the TXT record. The input is also parsed as a
 * From header value. */
#include "mailauth/dmarc.h"
#include "common/util.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static const char *fuzz_rec[2];	/* at the From domain, at the org domain */
static unsigned fuzz_flags;

static enum spf_dns_status
fuzz_lookup(void *ctx, enum spf_qtype t, const char *name, char ***a,
    size_t *n)
{
	const char *rec;

	(void)ctx;
	if (t != SPF_Q_TXT)
		return SPF_DNS_NONE;
	if (strcmp(name, "_dmarc.mail.example.co.uk") == 0)
		rec = fuzz_rec[0];
	else if (strcmp(name, "_dmarc.example.co.uk") == 0)
		rec = fuzz_rec[1];
	else
		return SPF_DNS_NONE;
	if (rec == NULL)
		return (fuzz_flags & 64) ? SPF_DNS_TEMPFAIL : SPF_DNS_NONE;
	/* Sometimes two records (RFC 7489 6.6.3: not a policy). */
	*n = (fuzz_flags & 128) ? 2 : 1;
	*a = xcalloc(*n, sizeof(char *));
	(*a)[0] = xstrdup(rec);
	if (*n == 2)
		(*a)[1] = xstrdup("v=DMARC1; p=none");
	return SPF_DNS_OK;
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static const char *const domains[4] = {
		"mail.example.co.uk", "example.co.uk", "other.example.co.uk",
		"example.test",
	};
	struct dmarc_dkim dkim[2];
	struct dmarc_outcome out;
	char *rec, *nul, *d;

	if (size < 1)
		return 0;
	fuzz_flags = data[0];
	rec = malloc(size);
	memcpy(rec, data + 1, size - 1);
	rec[size - 1] = '\0';
	nul = memchr(data + 1, '\0', size - 1) != NULL ?
	    rec + strlen(rec) + 1 : NULL;
	switch (fuzz_flags & 3) {
	case 0: fuzz_rec[0] = rec; fuzz_rec[1] = NULL; break;
	case 1: fuzz_rec[0] = NULL; fuzz_rec[1] = rec; break;
	default: fuzz_rec[0] = rec; fuzz_rec[1] = nul != NULL ? nul : rec;
	}
	dkim[0].domain = domains[(fuzz_flags >> 2) & 3];
	dkim[1].domain = domains[(fuzz_flags >> 4) & 3];
	struct dmarc_request req = {
		.from_domain = "mail.example.co.uk",
		.spf = (fuzz_flags & 8) ? SPF_PASS : SPF_FAIL,
		.spf_domain = domains[(fuzz_flags >> 4) & 3],
		.dkim = dkim,
		.ndkim = (fuzz_flags >> 5) & 1 ? 2 : (fuzz_flags & 4) ? 1 : 0,
		.lookup = fuzz_lookup,
	};
	dmarc_check(&req, &out);
	assert(out.result < DMARC_RESULT_COUNT);
	assert(out.why != NULL);
	assert(dmarc_result_str(out.result) != NULL);
	assert(dmarc_policy_str(out.policy) != NULL);
	assert(!out.apply || out.result == DMARC_FAIL);

	d = dmarc_from_domain(rec);
	free(d);
	free(rec);
	return 0;
}
