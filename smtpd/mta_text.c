/*
 * The SMTP client's pure text helpers, no I/O: dot-stuffing the body on its
 * way out (RFC 5321 4.5.2, bare CR/LF repaired to CRLF) and joining the
 * lines of a multi-line reply into one. mta.c calls them; unit tests and
 * fuzz_mta_reply drive them directly.
 */
#include "smtpd/mta.h"

#include <string.h>
#include <strings.h>
#include <ctype.h>

/* mta_stuff state bits */
#define MTA_MIDLINE	1u	/* not at the start of a line */
#define MTA_CR		2u	/* a CR waits for its LF */

size_t
mta_stuff(unsigned *state, const unsigned char *in, size_t len,
    unsigned char *out)
{
	unsigned st = *state;
	size_t i, o = 0;
	unsigned char b;

	for (i = 0; i < len; i++) {
		b = in[i];
		if (st & MTA_CR) {
			/* CRLF, or a bare CR made into a line end: never let
			 * a receiver see a lone CR as one (smuggling). */
			st &= ~(MTA_CR | MTA_MIDLINE);
			out[o++] = '\r';
			out[o++] = '\n';
			if (b == '\n')
				continue;
		}
		if (b == '\r') {
			st |= MTA_CR;
			continue;
		}
		if (b == '\n') {
			/* Bare LF: repaired to CRLF. */
			out[o++] = '\r';
			out[o++] = '\n';
			st &= ~MTA_MIDLINE;
			continue;
		}
		/* RFC 5321 4.5.2: a leading dot is doubled. */
		if (!(st & MTA_MIDLINE) && b == '.')
			out[o++] = '.';
		out[o++] = b;
		st |= MTA_MIDLINE;
	}
	*state = st;
	return o;
}

size_t
mta_stuff_end(unsigned *state, unsigned char *out)
{
	size_t o = 0;

	if (*state & (MTA_CR | MTA_MIDLINE)) {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	memcpy(out + o, ".\r\n", 3);
	*state = 0;
	return o + 3;
}

int
mta_reply_line(int *code, char *reply, size_t size, size_t *replylen,
    const char *line, size_t len)
{
	int c;
	size_t n;

	if (len < 3 || line[0] < '2' || line[0] > '5' ||
	    line[1] < '0' || line[1] > '9' || line[2] < '0' ||
	    line[2] > '9' || (len > 3 && line[3] != ' ' &&
	    line[3] != '-'))
		return MTA_REPLY_MALFORMED;
	c = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (*code != 0 && c != *code)
		return MTA_REPLY_INCONSISTENT;
	if (*code == 0)
		*replylen = 0;
	*code = c;
	/* "250-a" + "250 b" -> "250 a b": the exact text, joined. */
	n = *replylen == 0 ? len : (len > 4 ? len - 4 : 0);
	if (*replylen > 0 && n > 0 && *replylen + 1 < size)
		reply[(*replylen)++] = ' ';
	if (n > size - 1 - *replylen)
		n = size - 1 - *replylen;
	memcpy(reply + *replylen, *replylen == 0 ? line : line + 4, n);
	*replylen += n;
	reply[*replylen] = '\0';
	if (*replylen >= 4 && reply[3] == '-')
		reply[3] = ' ';
	if (len > 3 && line[3] == '-')
		return 0;
	*code = 0;
	return c;
}

/* Case-insensitive strstr for the short reply texts. */
static bool
mta_text_has(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	for (; *hay != '\0'; hay++)
		if (strncasecmp(hay, needle, n) == 0)
			return true;
	return false;
}

bool
mta_reply_is_throttle(const char *reply)
{
	static const char *const words[] = {
		"rate", "too many", "throttl", "limit", "slow down",
	};
	size_t i;

	if (reply == NULL || strlen(reply) < 3 || !isdigit((unsigned char)
	    reply[1]) || !isdigit((unsigned char)reply[2]))
		return false;
	if (strncmp(reply, "421", 3) == 0 && (reply[3] == ' ' ||
	    reply[3] == '\0' || reply[3] == '-'))
		return true;
	if (reply[0] != '4' || strncmp(reply + 3, " 4.7.", 5) != 0)
		return false;
	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (mta_text_has(reply + 8, words[i]))
			return true;
	return false;
}

bool
mta_reply_is_hard_bounce(const char *reply)
{
	static const char *const codes[] = {
		"5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.2.1",
	};
	size_t i, n;

	if (reply == NULL || reply[0] != '5' || strlen(reply) < 4 ||
	    !isdigit((unsigned char)reply[1]) ||
	    !isdigit((unsigned char)reply[2]) || reply[3] != ' ')
		return false;
	reply += 4;
	n = strcspn(reply, " ");
	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (n == strlen(codes[i]) && strncmp(reply, codes[i], n) == 0)
			return true;
	return false;
}
