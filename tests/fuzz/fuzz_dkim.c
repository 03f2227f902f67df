/* Fuzz DKIM canonicalisation and DKIM-Signature parsing (mailauth/dkim_*.c):
 * the message is fed in pieces, every signature is checked against a
 * fixed key record, and the header accessors are exercised. */
#include "mailauth/dkim.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct dkim_msg *m;
	size_t piece, i, n;
	const char *why, *d, *s;

	if (size < 1)
		return 0;
	piece = (size_t)data[0] + 1;
	m = dkim_msg_new();
	for (i = 1; i < size; i += piece)
		dkim_msg_update(m, data + i, size - i < piece ? size - i : piece);
	n = dkim_msg_signature_count(m);
	for (i = 0; i < n && i < 4; i++) {
		(void)dkim_msg_signature_ids(m, i, &d, &s);
		(void)dkim_verify(m, i, "v=DKIM1; k=ed25519; "
		    "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", &why);
	}
	free(dkim_msg_header_value(m, "From", 0));
	dkim_msg_free(m);
	return 0;
}
