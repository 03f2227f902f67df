/*
 * Fuzz the forged Authentication-Results scanner (smtpd/arstrip.c).
 * Byte 0: flags (1 complete, 2 the real 1 MiB limit, 4 the id in another
 * spelling); byte 1: the limit / 16 otherwise; the rest is the message.
 * Checks the contract: MORE and TOO_LARGE leave the buffer alone and come
 * only when allowed, DONE's lengths are in range, a DONE is the same with
 * and without "complete", and stripping twice removes nothing more.
 */
#include "smtpd/arstrip.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	size_t len, max, hlen = 0, kept = 0, h2 = 0, k2 = 0;
	unsigned removed = 0, r2 = 0;
	enum arstrip_status st, st2;
	const char *id;
	bool complete;
	char *buf, *again;

	if (size < 2)
		return 0;
	complete = (data[0] & 1) != 0;
	max = (data[0] & 2) ? ARSTRIP_MAX_HEADER : (size_t)data[1] * 16;
	id = (data[0] & 4) ? " Mail.Example.TEST. " : "mail.example.test";
	len = size - 2;
	buf = malloc(len + 1);
	again = malloc(len + 1);
	memcpy(buf, data + 2, len);

	st = arstrip_header(buf, len, complete, id, max, &hlen, &kept,
	    &removed);
	switch (st) {
	case ARSTRIP_MORE:
		if (complete || len >= max + 2)
			abort();
		/* fall through */
	case ARSTRIP_TOO_LARGE:
		if (memcmp(buf, data + 2, len) != 0)
			abort();
		if (st == ARSTRIP_TOO_LARGE && len <= max)
			abort();
		break;
	case ARSTRIP_DONE:
		if (hlen > len || hlen > max || kept > hlen ||
		    (removed == 0) != (kept == hlen))
			abort();
		if (removed == 0 && memcmp(buf, data + 2, len) != 0)
			abort();
		if (memcmp(buf + hlen, data + 2 + hlen, len - hlen) != 0)
			abort();
		/* The header section's end was seen: completeness cannot
		 * change the answer. */
		if (!complete) {
			memcpy(again, data + 2, len);
			st2 = arstrip_header(again, len, true, id, max, &h2,
			    &k2, &r2);
			if (st2 != ARSTRIP_DONE || h2 != hlen || k2 != kept ||
			    r2 != removed || memcmp(again, buf, kept) != 0)
				abort();
		}
		/* Stripped once, nothing of ours is left. */
		memcpy(again, buf, kept);
		memcpy(again + kept, buf + hlen, len - hlen);
		st2 = arstrip_header(again, len - (hlen - kept), complete, id,
		    max, &h2, &k2, &r2);
		if (st2 != ARSTRIP_DONE || h2 != kept || k2 != kept || r2 != 0)
			abort();
		break;
	default:
		abort();
	}
	free(buf);
	free(again);
	return 0;
}
