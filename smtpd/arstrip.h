/*
 * The header scanner that removes forged Authentication-Results fields
 * (RFC 8601 5: a receiver must delete fields that claim its own
 * authserv-id before it adds its own). Pure functions over bytes in
 * memory: no I/O, no allocation, no globals, so they are unit-tested and
 * fuzzed directly. Applying the result to a spool is inbound.c's.
 */
#ifndef CARTEIRO_ARSTRIP_H
#define CARTEIRO_ARSTRIP_H

#include <stdbool.h>
#include <stddef.h>

/*
 * The largest header section we scan (and so accept): 1 MiB. Real header
 * sections are a few KB; long Received chains, ARC/DKIM sets and a Cc of
 * a few thousand addresses stay far below 1 MiB, while a scan buffer of
 * that size per finished message is cheap. A larger header section is
 * refused (552 5.3.4) rather than passed on unscanned.
 */
#define ARSTRIP_MAX_HEADER	(1024 * 1024)

enum arstrip_status {
	ARSTRIP_DONE,		/* *hlen_r, *kept_r, *removed_r are set */
	ARSTRIP_MORE,		/* the header section goes on past buf: call
				 * again with more of the message */
	ARSTRIP_TOO_LARGE,	/* the header section is longer than max */
};

/*
 * Is field (one whole header field: name, colon, value and its folded
 * continuation lines with their line ends, len bytes, not
 * NUL-terminated) an Authentication-Results field whose authserv-id is
 * id? Parsed as RFC 8601 2.2 and RFC 5322 say, leniently where a mail
 * reader might be lenient: the name case-insensitively with white space
 * or folding before the colon (RFC 5322 4.5 obs-optional), CFWS and
 * nested comments before the authserv-id, the id as a token or a quoted
 * string (quoted-pairs and folding inside), compared case-insensitively,
 * surrounding white space and one trailing dot ignored. A foreign field
 * that only looks like ours is removed too; that direction is harmless.
 */
bool arstrip_field_is_ours(const char *field, size_t len, const char *id);

/*
 * Remove every Authentication-Results field whose authserv-id is id from
 * the header section at the start of buf. buf holds the first len bytes
 * of a message, all of it when complete. The header section is every line
 * before the first empty line (or the whole message if there is none);
 * lines end in LF (CRLF in practice), a line starting with SP or HTAB
 * continues the field above it.
 *
 * ARSTRIP_DONE: the header section is buf[0..*hlen_r) (the empty line, if
 * any, starts at *hlen_r), and buf[0..*kept_r) now holds it without the
 * *removed_r removed fields, the other fields byte-exact and in order
 * (buf[*kept_r..*hlen_r) is left over; the caller moves the rest of the
 * message down). ARSTRIP_MORE (only when !complete and len < max + 2):
 * buf is untouched, read more. ARSTRIP_TOO_LARGE: the header section is
 * longer than max bytes; buf is untouched. max is ARSTRIP_MAX_HEADER
 * outside tests.
 */
enum arstrip_status arstrip_header(char *buf, size_t len, bool complete,
    const char *id, size_t max, size_t *hlen_r, size_t *kept_r,
    unsigned *removed_r);

#endif
