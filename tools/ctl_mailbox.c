/*
 * carteiroctl mailbox group: "mailbox list ADDRESS" prints one line per
 * message, "uidl size date from subject", reading at most the first 64 KB
 * of each body for the From and Subject header fields (RFC 2047
 * encoded-words decoded to UTF-8 with iconv).
 */
#include "tools/ctl.h"
#include "tools/ctl_admin.h"
#include "common/addr.h"
#include "common/auth.h"
#include "common/util.h"
#include "store/store.h"

#include <errno.h>
#include <iconv.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define CTL_HEADER_MAX	(64 * 1024)	/* header bytes read per message */

/* A growing byte buffer. */
struct ctl_buf {
	char *data;
	size_t len, cap;
};

static void ctl_buf_append(struct ctl_buf *b, const void *p, size_t n);
static char *ctl_header_value(const char *hdr, size_t len, const char *name);
static bool ctl_append_charset(struct ctl_buf *out, const char *charset,
    const char *in, size_t len);
static size_t ctl_encoded_word(const char *s, struct ctl_buf *out);
static char *ctl_display_text(const char *raw);
static char *ctl_from_address(const char *from);

static void
ctl_buf_append(struct ctl_buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = b->cap * 2 > b->len + n ? b->cap * 2 : b->len + n + 64;
		b->data = xrealloc(b->data, b->cap);
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

/*
 * The raw value of header field `name` (continuation lines joined, CR and
 * LF dropped) from the header block at hdr (len bytes, possibly cut
 * short). Caller frees; NULL if absent.
 */
static char *
ctl_header_value(const char *hdr, size_t len, const char *name)
{
	size_t nlen = strlen(name), i = 0, j, vend, o = 0;
	char *val;

	while (i < len) {
		size_t eol = i;

		while (eol < len && hdr[eol] != '\n')
			eol++;
		if (eol == i || (eol == i + 1 && hdr[i] == '\r'))
			return NULL;	/* empty line: end of the header */
		if (eol - i <= nlen || strncasecmp(hdr + i, name, nlen) != 0 ||
		    hdr[i + nlen] != ':') {
			i = eol + 1;
			continue;
		}
		/* RFC 5322 2.2.3: a line starting with WSP continues. */
		vend = eol;
		while (vend + 1 < len && (hdr[vend + 1] == ' ' ||
		    hdr[vend + 1] == '\t')) {
			vend++;
			while (vend < len && hdr[vend] != '\n')
				vend++;
		}
		val = xmalloc(vend - (i + nlen + 1) + 1);
		for (j = i + nlen + 1; j < vend; j++) {
			if (hdr[j] != '\r' && hdr[j] != '\n' && hdr[j] != '\0')
				val[o++] = hdr[j];
		}
		val[o] = '\0';
		return val;
	}
	return NULL;
}

/* Append len bytes in charset to out as UTF-8; false if the charset is
 * unknown or the bytes do not convert. */
static bool
ctl_append_charset(struct ctl_buf *out, const char *charset,
    const char *in, size_t len)
{
	char tmp[512], *ip = (char *)in, *op;
	size_t ileft = len, oleft;
	iconv_t cd;
	bool ok = true;

	if (strcasecmp(charset, "utf-8") == 0 ||
	    strcasecmp(charset, "us-ascii") == 0) {
		ctl_buf_append(out, in, len);
		return true;
	}
	if ((cd = iconv_open("UTF-8", charset)) == (iconv_t)-1)
		return false;
	while (ileft > 0) {
		op = tmp;
		oleft = sizeof(tmp);
		if (iconv(cd, &ip, &ileft, &op, &oleft) == (size_t)-1 &&
		    errno != E2BIG) {
			ok = false;
			break;
		}
		ctl_buf_append(out, tmp, sizeof(tmp) - oleft);
	}
	iconv_close(cd);
	return ok;
}

/*
 * Decode one RFC 2047 encoded-word "=?charset?B|Q?text?=" at s into out.
 * Returns its length in s, or 0 if s does not start a valid one (then
 * nothing is appended).
 */
static size_t
ctl_encoded_word(const char *s, struct ctl_buf *out)
{
	const char *q1, *q2, *end;
	char charset[64], *text, *bin, *star;
	size_t tlen, blen, i, o = 0;
	char enc;
	bool ok;

	if (s[0] != '=' || s[1] != '?')
		return 0;
	if ((q1 = strchr(s + 2, '?')) == NULL || q1 == s + 2 ||
	    (size_t)(q1 - s - 2) >= sizeof(charset))
		return 0;
	enc = q1[1];
	if ((enc != 'b' && enc != 'B' && enc != 'q' && enc != 'Q') ||
	    q1[2] != '?')
		return 0;
	q2 = q1 + 2;
	if ((end = strstr(q2 + 1, "?=")) == NULL)
		return 0;
	tlen = (size_t)(end - q2 - 1);
	if (memchr(q2 + 1, ' ', tlen) != NULL)
		return 0;	/* RFC 2047 5: no white space inside */
	memcpy(charset, s + 2, (size_t)(q1 - s - 2));
	charset[q1 - s - 2] = '\0';
	if ((star = strchr(charset, '*')) != NULL)	/* RFC 2231 language */
		*star = '\0';
	text = xstrndup(q2 + 1, tlen);
	if (enc == 'b' || enc == 'B') {
		bin = auth_base64_decode(text, &blen);
	} else {
		bin = xmalloc(tlen + 1);
		for (i = 0; i < tlen; i++) {
			int hi, lo;

			if (text[i] == '_')
				bin[o++] = ' ';
			else if (text[i] == '=' && i + 2 < tlen &&
			    (hi = util_hexval(text[i + 1])) >= 0 &&
			    (lo = util_hexval(text[i + 2])) >= 0) {
				bin[o++] = (char)(hi << 4 | lo);
				i += 2;
			} else
				bin[o++] = text[i];
		}
		blen = o;
	}
	free(text);
	if (bin == NULL)
		return 0;
	ok = ctl_append_charset(out, charset, bin, blen);
	free(bin);
	return ok ? (size_t)(end + 2 - s) : 0;
}

/*
 * A header value made fit for one output line: encoded-words decoded to
 * UTF-8, control characters and runs of white space as one space, trimmed,
 * bytes that are not UTF-8 as '?'. Caller frees.
 */
static char *
ctl_display_text(const char *raw)
{
	struct ctl_buf b = { 0 };
	const char *p = raw;
	size_t n, i, o = 0;
	bool after_word = false, space = false;
	char *s;

	while (*p != '\0') {
		if (*p == '=' && (n = ctl_encoded_word(p, &b)) > 0) {
			p += n;
			after_word = true;
			continue;
		}
		if (*p == ' ' || *p == '\t') {
			/* RFC 2047 6.2: white space between two encoded-words
			 * is not displayed. */
			const char *q = p;

			while (*q == ' ' || *q == '\t')
				q++;
			if (after_word && q[0] == '=' && q[1] == '?') {
				struct ctl_buf probe = { 0 };

				if (ctl_encoded_word(q, &probe) > 0) {
					free(probe.data);
					p = q;
					continue;
				}
				free(probe.data);
			}
		}
		after_word = false;
		ctl_buf_append(&b, p, 1);
		p++;
	}
	ctl_buf_append(&b, "", 1);
	s = b.data;
	n = b.len - 1;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f || c == ' ') {
			space = o > 0;
			continue;
		}
		if (space) {
			s[o++] = ' ';
			space = false;
		}
		s[o++] = (char)c;
	}
	s[o] = '\0';
	if (!addr_utf8_valid(s, o)) {
		for (i = 0; i < o; i++) {
			if ((unsigned char)s[i] >= 0x80)
				s[i] = '?';
		}
	}
	return s;
}

/* The address of a From: value: inside <...> when present, else the
 * value itself; "-" when there is none. One field: blanks become '_'.
 * Caller frees. */
static char *
ctl_from_address(const char *from)
{
	const char *lt, *gt;
	char *s, *p;

	if (from == NULL || *from == '\0')
		return xstrdup("-");
	if ((lt = strrchr(from, '<')) != NULL &&
	    (gt = strchr(lt, '>')) != NULL && gt > lt + 1)
		s = xstrndup(lt + 1, (size_t)(gt - lt - 1));
	else
		s = xstrdup(from);
	for (p = s; *p != '\0'; p++) {
		if (*p == ' ')
			*p = '_';
	}
	return s;
}

int
ctl_mailbox_list(struct ctl *ctl, int argc, char **argv)
{
	struct store_msg *msgs = NULL;
	char *address, *hdr, *raw, *from, *subject, *faddr, date[32];
	size_t n = 0, i;
	int r, ret = 1;

	if (ctl_address_arg(argv[2], &address) < 0)
		return 1;
	r = store_mailbox_list(ctl->st, address, &msgs, &n);
	if (r < 0) {
		ctl_store_err(ctl, "mailbox list");
		goto out;
	}
	if (r == 1) {
		ctl_err("no such user %s", address);
		goto out;
	}
	hdr = xmalloc(CTL_HEADER_MAX);
	for (i = 0; i < n; i++) {
		struct store_body *b;
		time_t t = (time_t)msgs[i].arrived;
		struct tm tm;
		size_t got = 0;
		ssize_t k;

		b = store_body_open(ctl->st, msgs[i].body_id, NULL);
		if (b != NULL) {
			while (got < CTL_HEADER_MAX && (k = store_body_read(b,
			    got, hdr + got, CTL_HEADER_MAX - got)) > 0)
				got += (size_t)k;
			store_body_close(b);
		}
		/* A message removed meanwhile still gets its line. */
		raw = ctl_header_value(hdr, got, "From");
		from = raw != NULL ? ctl_display_text(raw) : NULL;
		free(raw);
		raw = ctl_header_value(hdr, got, "Subject");
		subject = raw != NULL ? ctl_display_text(raw) : NULL;
		free(raw);
		faddr = ctl_from_address(from);
		gmtime_r(&t, &tm);
		strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &tm);
		printf("%s %llu %s %s%s%s\n", msgs[i].uidl,
		    (unsigned long long)msgs[i].size, date, faddr,
		    subject != NULL && *subject != '\0' ? " " : "",
		    subject != NULL ? subject : "");
		free(from);
		free(subject);
		free(faddr);
	}
	free(hdr);
	ret = 0;
out:
	free(msgs);
	free(address);
	return ret;
}

