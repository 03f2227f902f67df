/*
 * DKIM verification (dkim.h): the DKIM-Signature fields of a message
 * parsed as tag lists (RFC 6376 3.2, 3.5), their d= and s= for the key
 * lookup, and the check of one signature against its key record: body
 * hash, header hash input, signature through dkim_crypto.c. Not owned:
 * DNS (the caller hands the key record text in).
 */
#include "mailauth/dkim_int.h"
#include "mailauth/dkim_crypto.h"
#include "common/util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static char *dkim_tag(const char *, size_t, const char *);
static void dkim_parse_sigs(struct dkim_msg *);

/* Value of tag `name` in a tag list (RFC 6376 3.2), whitespace trimmed
 * and internal folding kept. Caller frees; NULL if absent. */
static char *
dkim_tag(const char *list, size_t len, const char *name)
{
	size_t i = 0, nl = strlen(name);

	while (i < len) {
		while (i < len && isspace((unsigned char)list[i]))
			i++;
		size_t ts = i;
		while (i < len && list[i] != '=' && list[i] != ';')
			i++;
		size_t te = i;
		while (te > ts && isspace((unsigned char)list[te - 1]))
			te--;
		if (i >= len || list[i] == ';') {
			i++;
			continue;
		}
		i++;		/* '=' */
		size_t vs = i;
		while (i < len && list[i] != ';')
			i++;
		size_t ve = i;
		i++;
		if (te - ts == nl && strncmp(list + ts, name, nl) == 0) {
			while (vs < ve && isspace((unsigned char)list[vs]))
				vs++;
			while (ve > vs && isspace((unsigned char)list[ve - 1]))
				ve--;
			return xstrndup(list + vs, ve - vs);
		}
	}
	return NULL;
}

static void
dkim_parse_sigs(struct dkim_msg *m)
{
	if (m->sigs_parsed)
		return;
	m->sigs_parsed = true;
	dkim_finish(m);
	for (size_t i = 0; i < m->nfields; i++) {
		struct dkim_field *f = &m->fields[i];
		if (f->namelen != 14 ||
		    strncasecmp(m->hdr + f->off, "DKIM-Signature", 14) != 0)
			continue;
		const char *v = (const char *)memchr(m->hdr + f->off, ':',
		    f->len) + 1;
		size_t vlen = f->len - (size_t)(v - (m->hdr + f->off));
		struct dkim_sig s = { .field = i };
		s.d = dkim_tag(v, vlen, "d");
		s.s = dkim_tag(v, vlen, "s");
		s.a = dkim_tag(v, vlen, "a");
		s.b = dkim_tag(v, vlen, "b");
		s.bh = dkim_tag(v, vlen, "bh");
		s.c = dkim_tag(v, vlen, "c");
		s.h = dkim_tag(v, vlen, "h");
		s.l = dkim_tag(v, vlen, "l");
		char *ver = dkim_tag(v, vlen, "v");
		s.ok = s.d && s.s && s.a && s.b && s.bh && s.h && ver &&
		    strcmp(ver, "1") == 0;
		free(ver);
		m->sigs = xrealloc(m->sigs, (m->nsigs + 1) * sizeof(*m->sigs));
		m->sigs[m->nsigs++] = s;
	}
}

size_t
dkim_msg_signature_count(struct dkim_msg *m)
{
	dkim_parse_sigs(m);
	return m->nsigs;
}

int
dkim_msg_signature_ids(struct dkim_msg *m, size_t i, const char **d_r,
    const char **s_r)
{
	dkim_parse_sigs(m);
	if (i >= m->nsigs || !m->sigs[i].ok)
		return -1;
	*d_r = m->sigs[i].d;
	*s_r = m->sigs[i].s;
	return 0;
}

void
dkim_msg_signature_info(struct dkim_msg *m, size_t i, const char **d_r,
    const char **s_r, const char **a_r)
{
	dkim_parse_sigs(m);
	*d_r = *s_r = *a_r = NULL;
	if (i >= m->nsigs)
		return;
	*d_r = m->sigs[i].d;
	*s_r = m->sigs[i].s;
	*a_r = m->sigs[i].a;
}

const char *
dkim_result_str(enum dkim_result r)
{
	return r == DKIM_PASS ? "pass" : r == DKIM_FAIL ? "fail" :
	    r == DKIM_PERMERROR ? "permerror" : "neutral";
}

bool
dkim_is_key_record(const char *txt)
{
	char *v = dkim_tag(txt, strlen(txt), "v"), *p;
	bool r;

	if (v != NULL) {
		r = strcmp(v, "DKIM1") == 0;
		free(v);
		return r;
	}
	p = dkim_tag(txt, strlen(txt), "p");
	r = p != NULL;
	free(p);
	return r;
}

enum dkim_result
dkim_verify_records(struct dkim_msg *m, size_t i, const char *const *txt,
    size_t n, const char **why_r)
{
	enum dkim_result first = DKIM_PERMERROR;
	const char *first_why = "no DKIM key record at the selector";
	bool seen = false;

	for (size_t k = 0; k < n; k++) {
		const char *why = NULL;
		enum dkim_result r;

		if (!dkim_is_key_record(txt[k]))
			continue;
		r = dkim_verify(m, i, txt[k], &why);
		if (r == DKIM_PASS) {
			*why_r = why;
			return r;
		}
		if (!seen) {
			seen = true;
			first = r;
			first_why = why;
		}
	}
	*why_r = first_why;
	return first;
}

enum dkim_result
dkim_verify(struct dkim_msg *m, size_t i, const char *txt,
    const char **why_r)
{
	struct dkim_sig *s;
	bool hrelaxed = false, brelaxed = false;
	enum dkim_alg alg;
	enum dkim_result res = DKIM_FAIL;
	char *k = NULL, *p = NULL, *data = NULL;
	unsigned char *pk = NULL, *sig = NULL, *bh = NULL;
	size_t pklen = 0, siglen = 0, bhlen = 0, datalen = 0;

	dkim_parse_sigs(m);
	if (i >= m->nsigs || !m->sigs[i].ok) {
		*why_r = "signature syntax error";
		return DKIM_NEUTRAL;
	}
	s = &m->sigs[i];
	if (strcmp(s->a, "ed25519-sha256") == 0)
		alg = DKIM_ALG_ED25519;
	else if (strcmp(s->a, "rsa-sha256") == 0)
		alg = DKIM_ALG_RSA;
	else {
		*why_r = "unsupported algorithm";
		return DKIM_NEUTRAL;
	}
	if (s->l != NULL) {
		/* l= lets anyone append to a signed body: not honoured. */
		*why_r = "l= tag not supported";
		return DKIM_NEUTRAL;
	}
	if (s->c != NULL) {
		char *slash = strchr(s->c, '/');
		size_t hl = slash ? (size_t)(slash - s->c) : strlen(s->c);
		hrelaxed = hl == 7 && strncmp(s->c, "relaxed", 7) == 0;
		if (!hrelaxed &&
		    !(hl == 6 && strncmp(s->c, "simple", 6) == 0)) {
			*why_r = "unsupported canonicalization";
			return DKIM_NEUTRAL;
		}
		if (slash != NULL) {
			brelaxed = strcmp(slash + 1, "relaxed") == 0;
			if (!brelaxed && strcmp(slash + 1, "simple") != 0) {
				*why_r = "unsupported canonicalization";
				return DKIM_NEUTRAL;
			}
		}
	}

	k = dkim_tag(txt, strlen(txt), "k");
	p = dkim_tag(txt, strlen(txt), "p");
	if (p == NULL || *p == '\0') {
		*why_r = p == NULL ? "key record without p=" : "key revoked";
		res = DKIM_PERMERROR;
		goto out;
	}
	if ((k == NULL ? DKIM_ALG_RSA :
	    strcmp(k, "ed25519") == 0 ? DKIM_ALG_ED25519 :
	    strcmp(k, "rsa") == 0 ? DKIM_ALG_RSA : DKIM_ALG_COUNT) != alg) {
		*why_r = "key type does not match signature";
		res = DKIM_PERMERROR;
		goto out;
	}
	pk = dkim_b64_decode(p, &pklen);
	sig = dkim_b64_decode(s->b, &siglen);
	bh = dkim_b64_decode(s->bh, &bhlen);
	if (pk == NULL || sig == NULL || bh == NULL) {
		*why_r = "bad base64";
		res = pk == NULL ? DKIM_PERMERROR : DKIM_NEUTRAL;
		goto out;
	}
	if (bhlen != 32 || memcmp(bh, brelaxed ? m->bh_relaxed : m->bh_simple,
	    32) != 0) {
		*why_r = "body hash did not verify";
		goto out;
	}
	struct dkim_field *f = &m->fields[s->field];
	if (dkim_header_data(m, s->h, hrelaxed, m->hdr + f->off, f->len,
	    &data, &datalen) < 0) {
		*why_r = "signature syntax error";
		res = DKIM_NEUTRAL;
		goto out;
	}
	res = dkim_pubkey_verify(alg, pk, pklen, data, datalen, sig, siglen,
	    why_r);
out:
	if (res == DKIM_PASS)
		*why_r = "good signature";
	free(k);
	free(p);
	free(pk);
	free(sig);
	free(bh);
	free(data);
	return res;
}

