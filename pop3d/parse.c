/*
 * The pure parts of POP3: splitting a command line, parsing numbers and
 * dot-stuffing message data for RETR/TOP. No I/O, no session: unit-tested
 * and fuzzable on their own.
 */
#include "pop3d/pop3d.h"

#include <string.h>

#define POP3_VERB_MAX 8

int
pop3_parse_split(char *line, char **verb_r, char **args_r)
{
	char *sp;
	size_t vlen;

	sp = strchr(line, ' ');
	vlen = sp != NULL ? (size_t)(sp - line) : strlen(line);
	if (vlen == 0 || vlen > POP3_VERB_MAX)
		return -1;
	for (size_t i = 0; i < vlen; i++) {
		char ch = line[i];

		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z')))
			return -1;
		if (ch >= 'a' && ch <= 'z')
			line[i] = (char)(ch - 'a' + 'A');
	}
	*verb_r = line;
	if (sp != NULL) {
		*sp = '\0';
		*args_r = sp + 1;
	} else
		*args_r = NULL;
	return 0;
}

int
pop3_parse_number(const char *s, uint32_t *n_r, const char **rest_r)
{
	uint64_t n = 0;
	const char *p = s;

	if (s == NULL || *p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		n = n * 10 + (uint64_t)(*p - '0');
		if (n > UINT32_MAX)
			return -1;
	}
	if (rest_r != NULL) {
		if (*p != '\0' && *p != ' ')
			return -1;
		while (*p == ' ')
			p++;
		*rest_r = *p != '\0' ? p : NULL;
	} else if (*p != '\0')
		return -1;
	*n_r = (uint32_t)n;
	return 0;
}

void
pop3_stuff_init(struct pop3_stuff *st, bool top, uint64_t lines)
{
	memset(st, 0, sizeof(*st));
	st->bol = true;
	st->top = top;
	st->lines_left = lines;
}

/*
 * RFC 1939 3: a line of the response that begins with the termination
 * octet is byte-stuffed. The loop copies whole line segments with memchr,
 * so the common case is one memcpy per line. For TOP the header ends at the
 * first empty line (CRLF only, or a bare LF); RFC 1939 7 then sends `n`
 * body lines.
 */
size_t
pop3_stuff_run(struct pop3_stuff *st, const char *in, size_t len, char *out)
{
	const char *p = in, *end = in + len;
	char *o = out;

	while (p < end && !st->done) {
		const char *nl;
		size_t seg;

		if (st->bol && *p == '.')
			*o++ = '.';
		st->bol = false;
		nl = memchr(p, '\n', (size_t)(end - p));
		seg = nl != NULL ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		memcpy(o, p, seg);
		o += seg;
		if (nl == NULL) {
			st->linelen += seg;
			st->cr = p[seg - 1] == '\r';
			break;
		}
		/* a line ended: its content is linelen + seg - 1 bytes */
		{
			uint64_t content = st->linelen + seg - 1;
			bool cr = seg >= 2 ? nl[-1] == '\r' : st->cr;
			bool empty = content == 0 || (content == 1 && cr);

			if (st->top) {
				if (st->in_body) {
					if (st->lines_left > 0)
						st->lines_left--;
					if (st->lines_left == 0)
						st->done = true;
				} else if (empty) {
					st->in_body = true;
					if (st->lines_left == 0)
						st->done = true;
				}
			}
		}
		st->linelen = 0;
		st->cr = false;
		st->bol = true;
		p = nl + 1;
	}
	return (size_t)(o - out);
}

size_t
pop3_stuff_end(struct pop3_stuff *st, char *out)
{
	size_t n = 0;

	if (!st->bol) {
		/* The data did not end with a line end (or TOP stopped mid-
		 * line, which cannot happen): end it so "." is a line. */
		if (st->cr) {
			out[n++] = '\n';
		} else {
			out[n++] = '\r';
			out[n++] = '\n';
		}
	}
	memcpy(out + n, ".\r\n", 3);
	return n + 3;
}
