/*
 * Forged Authentication-Results removal (arstrip.h): find the header
 * section, split it into fields (folding included), parse each
 * Authentication-Results field's authserv-id (RFC 8601 2.2) and drop the
 * ones that claim ours. Pure: bytes in, bytes out, nothing else.
 */
#include "smtpd/arstrip.h"

#include <string.h>

/* The longest authserv-id we compare; a hostname is at most 253. */
#define ARSTRIP_ID_MAX	512

static const char arstrip_name[] = "authentication-results";

static int arstrip_lower(int c);
static bool arstrip_caseeq(const char *a, const char *b, size_t n);
static bool arstrip_is_wsp(char c);
static bool arstrip_is_tspecial(char c);
static size_t arstrip_skip_cfws(const char *f, size_t len, size_t i);
static size_t arstrip_id(const char *f, size_t len, size_t i, char *out);
static size_t arstrip_trim(const char *s, size_t n, const char **start_r);
static bool arstrip_is_empty_line(const char *line, size_t n);

/* ASCII only: the locale must not change what a header means. */
static int
arstrip_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static bool
arstrip_caseeq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (arstrip_lower((unsigned char)a[i]) !=
		    arstrip_lower((unsigned char)b[i]))
			return false;
	return true;
}

/* Inside one field a CR or LF is always part of a fold (the next line
 * starts with SP or HTAB), so unfolding (RFC 5322 2.2.3) makes it white
 * space. */
static bool
arstrip_is_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* RFC 2045 5.1 tspecials: they end a token (the value of authserv-id). */
static bool
arstrip_is_tspecial(char c)
{
	return strchr("()<>@,;:\\\"/[]?=", c) != NULL && c != '\0';
}

/* RFC 5322 3.2.2 CFWS: white space, folding and comments, which nest and
 * may hold quoted-pairs. Returns the index of the first byte after it
 * (len when the field ends first, an unclosed comment included). */
static size_t
arstrip_skip_cfws(const char *f, size_t len, size_t i)
{
	size_t depth = 0;

	for (; i < len; i++) {
		char c = f[i];

		if (depth > 0) {
			if (c == '\\')
				i++;	/* quoted-pair: the next byte is text */
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
		} else if (c == '(') {
			depth = 1;
		} else if (!arstrip_is_wsp(c)) {
			break;
		}
	}
	return i < len ? i : len;
}

/*
 * The authserv-id starting at f[i] (RFC 8601 2.2: a "value", RFC 2045
 * token or RFC 5322 quoted-string) into out (ARSTRIP_ID_MAX bytes,
 * quoted-pairs resolved, folding removed). Returns its length, or
 * ARSTRIP_ID_MAX when it does not fit (then it is nobody's hostname).
 * An unclosed quoted string counts up to the end of the field.
 */
static size_t
arstrip_id(const char *f, size_t len, size_t i, char *out)
{
	size_t n = 0;

	if (f[i] == '"') {
		for (i++; i < len && f[i] != '"'; i++) {
			char c = f[i];

			if (c == '\\' && i + 1 < len)
				c = f[++i];
			else if (c == '\r' || c == '\n')
				continue;	/* unfolding keeps the WSP */
			if (n == ARSTRIP_ID_MAX)
				return ARSTRIP_ID_MAX;
			out[n++] = c;
		}
		return n;
	}
	for (; i < len; i++) {
		unsigned char c = (unsigned char)f[i];

		/* RFC 2045 token: no SP, CTLs or tspecials. */
		if (c <= ' ' || c == 0x7f || arstrip_is_tspecial((char)c))
			break;
		if (n == ARSTRIP_ID_MAX)
			return ARSTRIP_ID_MAX;
		out[n++] = (char)c;
	}
	return n;
}

/* s without surrounding white space and one trailing dot (an absolute
 * domain name names the same host). */
static size_t
arstrip_trim(const char *s, size_t n, const char **start_r)
{
	while (n > 0 && arstrip_is_wsp(*s)) {
		s++;
		n--;
	}
	while (n > 0 && arstrip_is_wsp(s[n - 1]))
		n--;
	if (n > 0 && s[n - 1] == '.')
		n--;
	*start_r = s;
	return n;
}

bool
arstrip_field_is_ours(const char *f, size_t len, const char *id)
{
	size_t nl = sizeof(arstrip_name) - 1, i, n, idn;
	char cand[ARSTRIP_ID_MAX];
	const char *cs, *is;

	if (len < nl || !arstrip_caseeq(f, arstrip_name, nl))
		return false;
	/* RFC 5322 4.5 obs-optional: white space (here also a fold)
	 * between the name and the colon. */
	for (i = nl; i < len && arstrip_is_wsp(f[i]); i++)
		;
	if (i >= len || f[i] != ':')
		return false;
	i = arstrip_skip_cfws(f, len, i + 1);
	if (i >= len)
		return false;
	n = arstrip_id(f, len, i, cand);
	if (n == ARSTRIP_ID_MAX)
		return false;
	n = arstrip_trim(cand, n, &cs);
	idn = arstrip_trim(id, strlen(id), &is);
	return n > 0 && n == idn && arstrip_caseeq(cs, is, n);
}

/* An empty line ends the header section (RFC 5322 2.1). */
static bool
arstrip_is_empty_line(const char *line, size_t n)
{
	return (n == 1 && line[0] == '\n') ||
	    (n == 2 && line[0] == '\r' && line[1] == '\n');
}

enum arstrip_status
arstrip_header(char *buf, size_t len, bool complete, const char *id,
    size_t max, size_t *hlen_r, size_t *kept_r, unsigned *removed_r)
{
	size_t pos = 0, hlen, out, i, j;
	unsigned removed = 0;

	/* Pass 1: where the header section ends, touching nothing. */
	for (;;) {
		const char *lf;
		size_t end;

		/* Whatever this line is, the header section reaches here. */
		if (pos > max)
			return ARSTRIP_TOO_LARGE;
		if (pos == len) {
			if (!complete)
				return ARSTRIP_MORE;
			hlen = len;	/* no body: all of it is header */
			break;
		}
		lf = memchr(buf + pos, '\n', len - pos);
		end = lf != NULL ? (size_t)(lf - buf) + 1 : len;
		if (lf == NULL && !complete) {
			/* Two bytes without LF cannot be the empty line: with
			 * max + 2 bytes in hand the answer is known. */
			return len >= max + 2 ? ARSTRIP_TOO_LARGE :
			    ARSTRIP_MORE;
		}
		if (arstrip_is_empty_line(buf + pos, end - pos)) {
			hlen = pos;
			break;
		}
		pos = end;
	}
	if (hlen > max)
		return ARSTRIP_TOO_LARGE;

	/* Pass 2: field by field, folded lines included, compacting the
	 * fields we keep (out <= i, so nothing unread is overwritten). */
	for (out = 0, i = 0; i < hlen; i = j) {
		j = i;
		do {
			const char *lf = memchr(buf + j, '\n', hlen - j);

			j = lf != NULL ? (size_t)(lf - buf) + 1 : hlen;
		} while (j < hlen && (buf[j] == ' ' || buf[j] == '\t'));
		if (arstrip_field_is_ours(buf + i, j - i, id)) {
			removed++;
			continue;
		}
		if (out != i)
			memmove(buf + out, buf + i, j - i);
		out += j - i;
	}
	*hlen_r = hlen;
	*kept_r = out;
	*removed_r = removed;
	return ARSTRIP_DONE;
}
