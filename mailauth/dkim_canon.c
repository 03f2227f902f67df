/*
 * DKIM canonicalisation (RFC 6376 3.4): the message streams through once;
 * the body is hashed on the fly for simple and relaxed at the same time
 * (only trailing empty lines are held back), the header block is kept
 * raw and bounded, then split into fields, canonicalised on demand for
 * the header hash, and readable by name (for DMARC's From).
 * Not owned: signature fields (dkim_verify.c), keys and signing
 * (dkim_sign.c), the crypto (dkim_crypto.c).
 */
#include "mailauth/dkim_int.h"
#include "mailauth/dkim_crypto.h"
#include "common/util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void dkim_canon_flush(struct dkim_bodycanon *);
static void dkim_canon_put(struct dkim_bodycanon *, const void *, size_t);
static void dkim_body_byte(struct dkim_msg *, unsigned char);
static void dkim_body_eol(struct dkim_msg *);
static void dkim_hdr_append(struct dkim_msg *, const void *, size_t);
static void dkim_split_fields(struct dkim_msg *);
static void dkim_canon_header_relaxed(char **, size_t *, size_t *,
    const char *, size_t);

struct dkim_msg *
dkim_msg_new(void)
{
	struct dkim_msg *m = xcalloc(1, sizeof(*m));

	m->relaxed.sha = dkim_hash_new();
	m->simple.sha = dkim_hash_new();
	m->at_line_start = true;
	return m;
}

void
dkim_msg_free(struct dkim_msg *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nsigs; i++) {
		struct dkim_sig *s = &m->sigs[i];
		free(s->d); free(s->s); free(s->a); free(s->b);
		free(s->bh); free(s->c); free(s->h); free(s->l);
	}
	free(m->sigs);
	dkim_hash_free(m->relaxed.sha);
	dkim_hash_free(m->simple.sha);
	free(m->fields);
	free(m->hdr);
	free(m);
}

static void
dkim_canon_flush(struct dkim_bodycanon *c)
{
	if (c->buflen > 0) {
		dkim_hash_update(c->sha, c->buf, c->buflen);
		c->buflen = 0;
	}
}

static void
dkim_canon_put(struct dkim_bodycanon *c, const void *data, size_t len)
{
	if (c->buflen + len > sizeof(c->buf))
		dkim_canon_flush(c);
	if (len > sizeof(c->buf)) {
		dkim_hash_update(c->sha, data, len);
	} else {
		memcpy(c->buf + c->buflen, data, len);
		c->buflen += len;
	}
	c->any = true;
}

/* The first output of a line releases the empty lines held before it
 * (RFC 6376 3.4.3/3.4.4: only trailing empty lines are dropped). */
static void
dkim_canon_line_start(struct dkim_bodycanon *c)
{
	for (; c->pending_empty > 0; c->pending_empty--)
		dkim_canon_put(c, "\r\n", 2);
	c->line_content = true;
}

static void
dkim_body_byte(struct dkim_msg *m, unsigned char ch)
{
	struct dkim_bodycanon *s = &m->simple, *r = &m->relaxed;

	if (!s->line_content)
		dkim_canon_line_start(s);
	dkim_canon_put(s, &ch, 1);

	/* relaxed: WSP runs become one SP, WSP at line end goes. */
	if (ch == ' ' || ch == '\t') {
		r->pending_wsp = true;
		return;
	}
	if (!r->line_content)
		dkim_canon_line_start(r);
	if (r->pending_wsp) {
		dkim_canon_put(r, " ", 1);
		r->pending_wsp = false;
	}
	dkim_canon_put(r, &ch, 1);
}

static void
dkim_body_eol(struct dkim_msg *m)
{
	struct dkim_bodycanon *cs[2] = { &m->simple, &m->relaxed };

	for (int i = 0; i < 2; i++) {
		struct dkim_bodycanon *c = cs[i];
		c->pending_wsp = false;
		if (c->line_content) {
			dkim_canon_put(c, "\r\n", 2);
			c->line_content = false;
		} else {
			c->pending_empty++;
		}
	}
}

static void
dkim_hdr_append(struct dkim_msg *m, const void *data, size_t len)
{
	if (m->overflow)
		return;
	if (m->hdrlen + len > DKIM_MAX_HEADER) {
		m->overflow = true;
		return;
	}
	if (m->hdrlen + len + 1 > m->hdrcap) {
		m->hdrcap = (m->hdrlen + len + 1) * 2;
		m->hdr = xrealloc(m->hdr, m->hdrcap);
	}
	memcpy(m->hdr + m->hdrlen, data, len);
	m->hdrlen += len;
	m->hdr[m->hdrlen] = '\0';
}

void
dkim_msg_update(struct dkim_msg *m, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t i = 0;

	/* Header block: kept raw up to the empty line that ends it. */
	while (!m->in_body && i < len) {
		const unsigned char *lf = memchr(p + i, '\n', len - i);
		size_t n = lf ? (size_t)(lf - (p + i)) + 1 : len - i;

		if (m->pending_cr) {
			m->pending_cr = false;
			if (p[i] == '\n') {
				i++;
				m->in_body = true;
				break;
			}
			dkim_hdr_append(m, "\r", 1);
			m->at_line_start = false;
			continue;
		}
		if (m->at_line_start && n >= 1 &&
		    (p[i] == '\n' || (p[i] == '\r' && n >= 2 &&
		    p[i + 1] == '\n'))) {
			i += p[i] == '\n' ? 1 : 2;
			m->in_body = true;
			break;
		}
		if (m->at_line_start && p[i] == '\r' && n == 1 && lf == NULL) {
			/* A lone CR at the end of this piece: it may be the
			 * first half of the separating CRLF. Keep it aside. */
			m->pending_cr = true;
			i++;
			continue;
		}
		dkim_hdr_append(m, p + i, n);
		m->at_line_start = lf != NULL;
		i += n;
	}

	for (; i < len; i++) {
		unsigned char ch = p[i];

		if (m->pending_cr) {
			m->pending_cr = false;
			if (ch == '\n') {
				dkim_body_eol(m);
				continue;
			}
			dkim_body_byte(m, '\r');
		}
		if (ch == '\r') {
			m->pending_cr = true;
			continue;
		}
		dkim_body_byte(m, ch);
	}
}

void
dkim_finish(struct dkim_msg *m)
{
	if (m->finished)
		return;
	m->finished = true;
	if (m->pending_cr) {
		m->pending_cr = false;
		if (m->in_body)
			dkim_body_byte(m, '\r');
	}
	/* An unterminated last line gets its CRLF (3.4.3, 3.4.4). */
	if (m->simple.line_content)
		dkim_canon_put(&m->simple, "\r\n", 2);
	if (m->relaxed.line_content)
		dkim_canon_put(&m->relaxed, "\r\n", 2);
	/* simple: an empty body is one CRLF. */
	if (!m->simple.any)
		dkim_canon_put(&m->simple, "\r\n", 2);
	dkim_canon_flush(&m->simple);
	dkim_canon_flush(&m->relaxed);
	dkim_hash_final(m->simple.sha, m->bh_simple);
	dkim_hash_final(m->relaxed.sha, m->bh_relaxed);
	m->simple.sha = m->relaxed.sha = NULL;
	if (m->hdrlen > 0 && m->hdr[m->hdrlen - 1] != '\n')
		dkim_hdr_append(m, "\r\n", 2);
	dkim_split_fields(m);
}

/* Split the raw header block into fields (a field continues on lines that
 * start with WSP). */
static void
dkim_split_fields(struct dkim_msg *m)
{
	size_t i = 0;

	while (i < m->hdrlen) {
		size_t start = i;

		do {
			const char *lf = memchr(m->hdr + i, '\n',
			    m->hdrlen - i);
			i = lf ? (size_t)(lf - m->hdr) + 1 : m->hdrlen;
		} while (i < m->hdrlen && (m->hdr[i] == ' ' ||
		    m->hdr[i] == '\t'));

		const char *colon = memchr(m->hdr + start, ':', i - start);
		if (colon == NULL)
			continue;	/* not a field: ignored */
		size_t namelen = (size_t)(colon - (m->hdr + start));
		while (namelen > 0 && (m->hdr[start + namelen - 1] == ' ' ||
		    m->hdr[start + namelen - 1] == '\t'))
			namelen--;
		m->fields = xrealloc(m->fields,
		    (m->nfields + 1) * sizeof(*m->fields));
		m->fields[m->nfields++] = (struct dkim_field){
			.off = start, .len = i - start, .namelen = namelen,
		};
	}
}

/* RFC 6376 3.4.2: lower-case name, unfold, WSP runs to one SP, no WSP at
 * the end of the value or around the colon. Appends to *out. */
static void
dkim_canon_header_relaxed(char **out, size_t *len, size_t *cap,
    const char *f, size_t flen)
{
	const char *colon = memchr(f, ':', flen);
	size_t namelen = (size_t)(colon - f);
	bool wsp = false, started = false;

	if (*len + flen + 4 > *cap) {
		*cap = (*len + flen + 4) * 2;
		*out = xrealloc(*out, *cap);
	}
	while (namelen > 0 && (f[namelen - 1] == ' ' || f[namelen - 1] == '\t'))
		namelen--;
	for (size_t i = 0; i < namelen; i++)
		(*out)[(*len)++] = (char)tolower((unsigned char)f[i]);
	(*out)[(*len)++] = ':';
	for (size_t i = (size_t)(colon - f) + 1; i < flen; i++) {
		char c = f[i];
		if (c == '\r' || c == '\n')
			continue;
		if (c == ' ' || c == '\t') {
			wsp = true;
			continue;
		}
		if (wsp && started)
			(*out)[(*len)++] = ' ';
		wsp = false;
		started = true;
		(*out)[(*len)++] = c;
	}
	(*out)[(*len)++] = '\r';
	(*out)[(*len)++] = '\n';
}

int
dkim_header_data(struct dkim_msg *m, const char *h, bool relaxed,
    const char *sigf, size_t siglen, char **data_r, size_t *len_r)
{
	char *out = NULL;
	size_t len = 0, cap = 0;
	char *list = xstrdup(h);
	char *save = NULL;

	for (size_t i = 0; i < m->nfields; i++)
		m->fields[i].used = false;
	for (char *name = strtok_r(list, ":", &save); name != NULL;
	    name = strtok_r(NULL, ":", &save)) {
		while (*name == ' ' || *name == '\t' || *name == '\r' ||
		    *name == '\n')
			name++;
		size_t nl = strlen(name);
		while (nl > 0 && isspace((unsigned char)name[nl - 1]))
			nl--;
		for (size_t j = m->nfields; j-- > 0;) {
			struct dkim_field *f = &m->fields[j];
			if (f->used || f->namelen != nl ||
			    strncasecmp(m->hdr + f->off, name, nl) != 0)
				continue;
			f->used = true;
			if (relaxed) {
				dkim_canon_header_relaxed(&out, &len, &cap,
				    m->hdr + f->off, f->len);
			} else {
				if (len + f->len > cap) {
					cap = (len + f->len) * 2;
					out = xrealloc(out, cap);
				}
				memcpy(out + len, m->hdr + f->off, f->len);
				len += f->len;
			}
			break;
		}
	}
	free(list);

	/* The signature field itself, b= emptied (3.5, 3.7). */
	char *sig = xmalloc(siglen + 1);
	size_t sl = 0;
	const char *colon = memchr(sigf, ':', siglen);
	size_t i = 0;
	if (colon == NULL) {
		free(sig);
		free(out);
		return -1;
	}
	for (; i <= (size_t)(colon - sigf); i++)
		sig[sl++] = sigf[i];
	bool tag_start = true;
	while (i < siglen) {
		char c = sigf[i];
		if (tag_start && c != ' ' && c != '\t' && c != '\r' &&
		    c != '\n') {
			tag_start = false;
			/* Is this the b tag (not bh)? */
			size_t k = i + 1;
			while (k < siglen && (sigf[k] == ' ' ||
			    sigf[k] == '\t' || sigf[k] == '\r' ||
			    sigf[k] == '\n'))
				k++;
			if (c == 'b' && k < siglen && sigf[k] == '=') {
				for (; i <= k; i++)
					sig[sl++] = sigf[i];
				while (i < siglen && sigf[i] != ';')
					i++;
				continue;
			}
		}
		if (c == ';')
			tag_start = true;
		sig[sl++] = c;
		i++;
	}
	if (relaxed) {
		dkim_canon_header_relaxed(&out, &len, &cap, sig, sl);
	} else {
		if (len + sl + 2 > cap) {
			cap = (len + sl + 2) * 2;
			out = xrealloc(out, cap);
		}
		memcpy(out + len, sig, sl);
		len += sl;
	}
	free(sig);
	/* No CRLF after the signature field. */
	if (len >= 2 && out[len - 2] == '\r' && out[len - 1] == '\n')
		len -= 2;
	*data_r = out;
	*len_r = len;
	return 0;
}

/* ---- header access ---- */

static struct dkim_field *
dkim_msg_field(struct dkim_msg *m, const char *name, size_t idx,
    size_t *count_r)
{
	size_t nl = strlen(name), count = 0;
	struct dkim_field *found = NULL;

	dkim_finish(m);
	for (size_t i = 0; i < m->nfields; i++) {
		struct dkim_field *f = &m->fields[i];
		if (f->namelen != nl ||
		    strncasecmp(m->hdr + f->off, name, nl) != 0)
			continue;
		if (count == idx)
			found = f;
		count++;
	}
	if (count_r != NULL)
		*count_r = count;
	return found;
}

size_t
dkim_msg_header_count(struct dkim_msg *m, const char *name)
{
	size_t n;

	(void)dkim_msg_field(m, name, 0, &n);
	return n;
}

char *
dkim_msg_header_value(struct dkim_msg *m, const char *name, size_t idx)
{
	struct dkim_field *f = dkim_msg_field(m, name, idx, NULL);
	const char *p, *end;
	char *out;
	size_t o = 0;

	if (f == NULL)
		return NULL;
	p = (const char *)memchr(m->hdr + f->off, ':', f->len) + 1;
	end = m->hdr + f->off + f->len;
	out = xmalloc((size_t)(end - p) + 1);
	for (; p < end; p++)
		if (*p != '\r' && *p != '\n')
			out[o++] = *p;
	while (o > 0 && (out[o - 1] == ' ' || out[o - 1] == '\t'))
		o--;
	out[o] = '\0';
	size_t lead = strspn(out, " \t");
	memmove(out, out + lead, o - lead + 1);
	return out;
}
