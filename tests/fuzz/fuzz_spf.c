/* Fuzz SPF record evaluation and macro expansion (mailauth/spf.c): the
 * input is the TXT record of the checked domain; every other name answers
 * with the same record or nothing, so include/redirect recurse until the
 * lookup limits stop them. */
#include "mailauth/spf.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static const char *fuzz_record;

static enum spf_dns_status
fuzz_lookup(void *ctx, enum spf_qtype t, const char *name, char ***a,
    size_t *n)
{
	(void)ctx;
	(void)name;
	*a = xmalloc(sizeof(char *));
	*n = 1;
	switch (t) {
	case SPF_Q_TXT: (*a)[0] = xstrdup(fuzz_record); break;
	case SPF_Q_A: (*a)[0] = xstrdup("192.0.2.1"); break;
	case SPF_Q_AAAA: (*a)[0] = xstrdup("2001:db8::1"); break;
	default: (*a)[0] = xstrdup("mx.example.test"); break;
	}
	return SPF_DNS_OK;
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	char *rec = malloc(size + 1), *dom = NULL, *e;
	const char *why;

	memcpy(rec, data, size);
	rec[size] = '\0';
	fuzz_record = rec;
	struct spf_request req = {
		.ip = "192.0.2.1", .sender = "a-b.c@example.test",
		.helo = "mx.example.test", .receiver = "r.test",
		.lookup = fuzz_lookup,
	};
	(void)spf_check(&req, &dom, &why);
	free(dom);
	e = spf_expand(&req, "example.test", rec, 1);
	free(e);
	free(rec);
	return 0;
}
