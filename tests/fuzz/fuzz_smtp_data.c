/* Fuzz the DATA/BDAT decoder (smtpd/data.c) in pieces of varying size:
 * it must never write past len + 1 bytes, never consume more than it was
 * given, and stop consuming once the end of data is seen. */
#include "smtpd/smtpd.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct smtp_data_parser p;
	size_t i = 1, piece;
	char *out;

	if (size < 1)
		return 0;
	piece = (size_t)(data[0] & 31) + 1;
	smtp_data_init(&p, (data[0] & 128) == 0);
	out = malloc(piece + 1);
	while (i < size && !smtp_data_is_done(&p)) {
		size_t n = size - i < piece ? size - i : piece, outlen = 0;
		size_t used = smtp_data_feed(&p, (const char *)data + i, n, out,
		    &outlen);
		assert(used <= n);
		assert(outlen <= n + 1);
		assert(used == n || smtp_data_is_done(&p));
		i += used;
	}
	if (!smtp_data_is_done(&p))
		(void)smtp_data_finish(&p, out);
	free(out);
	return 0;
}
