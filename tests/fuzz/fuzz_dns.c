/* Fuzz the DNS answer parser (mailauth/dns_wire.c) on raw answer
 * packets: the first byte picks the asked type (TXT and MX mostly, the
 * others too), the rest is the message. What parses is then turned into
 * text the way dns_lookup hands it out (MX: sorted exchanges, null MX),
 * and the authority section's SOA is read for the negative TTL. */
#include "mailauth/dns_int.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static const enum dns_type types[8] = {
		DNS_T_TXT, DNS_T_MX, DNS_T_TLSA, DNS_T_MX,
		DNS_T_A, DNS_T_AAAA, DNS_T_PTR, DNS_T_SRV,
	};
	enum dns_type type;
	enum dns_status st;
	struct dns_rr *rr = NULL;
	unsigned char *msg;
	char **text;
	size_t n = 0, ntext, i;
	uint32_t ttl = 0;

	if (size < 1)
		return 0;
	type = types[data[0] & 7];
	/* An exact-size copy, so ASan sees any read past the message. */
	msg = malloc(size - 1 > 0 ? size - 1 : 1);
	memcpy(msg, data + 1, size - 1);
	if (dns_wire_answer(msg, size - 1, type, &rr, &n, &ttl) == 0) {
		for (i = 0; i < n; i++)
			assert(rr[i].text != NULL);
		st = dns_rr_text(type, n > 0 ? DNS_OK : DNS_NODATA, rr, n,
		    &text, &ntext);
		if (st == DNS_OK) {
			assert(ntext >= 1 && text != NULL);
			for (i = 0; i < ntext; i++)
				assert(text[i] != NULL);
			dns_rr_free(text, ntext);
		} else
			assert(text == NULL && ntext == 0);
		dns_rrs_free(rr, n);
	}
	(void)dns_wire_negative_ttl(msg, size - 1);
	free(msg);
	return 0;
}
