/*
 * DKIM canonicalisation, signing and checking (RFC 6376, RFC 8463).
 * Owns: the body hash state machine (relaxed and simple at once, streaming),
 * the bounded header block, tag-list parsing, the crypto calls. Not owned:
 * key files, DNS, Authentication-Results. This file includes libsodium
 * (ed25519, sha256) and GnuTLS (RSA) itself: DKIM crypto is its concern
 * alone, like TLS is tls.c's and password hashing is auth.c's.
 */
#include "mailauth/dkim.h"
#include "common/util.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <sodium.h>

/* Signed header fields; From is listed twice so that a From added later
 * breaks the signature (oversigning). */
static const char *const dkim_sign_headers[] = {
	"from", "from", "reply-to", "subject", "date", "to", "cc",
	"message-id", "in-reply-to", "references", "mime-version",
	"content-type", "content-transfer-encoding", "list-unsubscribe",
};

struct dkim_key {
	enum dkim_alg alg;
	char *domain;
	char *selector;
	unsigned char ed_sk[crypto_sign_SECRETKEYBYTES];
	gnutls_privkey_t rsa;
};

/* Body canonicaliser state for one canonicalisation. */
struct dkim_bodycanon {
	crypto_hash_sha256_state sha;
	unsigned char buf[4096];	/* batches bytes before hashing */
	size_t buflen;
	uint64_t pending_empty;		/* empty lines held back */
	bool line_content;		/* current line has output */
	bool pending_wsp;		/* relaxed: WSP run not yet written */
	bool any;			/* anything hashed at all */
};

struct dkim_field {
	size_t off;			/* in m->hdr */
	size_t len;			/* with the final CRLF */
	size_t namelen;
	bool used;			/* taken by the current h= walk */
};

struct dkim_sig {
	char *d, *s, *a, *b, *bh, *c, *h, *l;
	size_t field;			/* index in m->fields */
	bool ok;			/* parsed */
};

struct dkim_msg {
	char *hdr;			/* raw header block, CRLF lines */
	size_t hdrlen, hdrcap;
	bool in_body;
	bool overflow;
	bool at_line_start;
	bool pending_cr;
	struct dkim_bodycanon relaxed, simple;
	bool finished;
	unsigned char bh_relaxed[32], bh_simple[32];
	struct dkim_field *fields;
	size_t nfields;
	struct dkim_sig *sigs;
	size_t nsigs;
	bool sigs_parsed;
};

static const char *const dkim_alg_names[DKIM_ALG_COUNT] = {
	"ed25519", "rsa",
};

static void dkim_canon_flush(struct dkim_bodycanon *);
static void dkim_canon_put(struct dkim_bodycanon *, const void *, size_t);
static void dkim_body_byte(struct dkim_msg *, unsigned char);
static void dkim_body_eol(struct dkim_msg *);
static void dkim_finish(struct dkim_msg *);
static void dkim_hdr_append(struct dkim_msg *, const void *, size_t);
static void dkim_split_fields(struct dkim_msg *);
static void dkim_canon_header_relaxed(char **, size_t *, size_t *,
    const char *, size_t);
static char *dkim_b64(const void *, size_t);
static unsigned char *dkim_unb64(const char *, size_t *);
static char *dkim_tag(const char *, size_t, const char *);
static void dkim_parse_sigs(struct dkim_msg *);
static int dkim_header_data(struct dkim_msg *, const char *, bool,
    const char *, size_t, char **, size_t *);

int
dkim_alg_parse(const char *s, enum dkim_alg *alg_r)
{
	for (int i = 0; i < DKIM_ALG_COUNT; i++) {
		if (strcmp(s, dkim_alg_names[i]) == 0) {
			*alg_r = (enum dkim_alg)i;
			return 0;
		}
	}
	return -1;
}

const char *
dkim_alg_name(enum dkim_alg alg)
{
	return dkim_alg_names[alg];
}

static char *
dkim_b64(const void *data, size_t len)
{
	size_t n = sodium_base64_ENCODED_LEN(len,
	    sodium_base64_VARIANT_ORIGINAL);
	char *out = xmalloc(n);

	sodium_bin2base64(out, n, data, len, sodium_base64_VARIANT_ORIGINAL);
	return out;
}

/* Decode base64 ignoring whitespace (DNS records and folded tags). */
static unsigned char *
dkim_unb64(const char *s, size_t *len_r)
{
	size_t n = strlen(s);
	char *clean = xmalloc(n + 1);
	size_t o = 0;
	unsigned char *out;

	for (size_t i = 0; i < n; i++)
		if (!isspace((unsigned char)s[i]))
			clean[o++] = s[i];
	clean[o] = '\0';
	out = xmalloc(o + 1);
	if (sodium_base642bin(out, o + 1, clean, o, NULL, len_r, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0) {
		free(clean);
		free(out);
		return NULL;
	}
	free(clean);
	return out;
}

/* ---- keys ---- */

static int
dkim_rsa_pubkey_b64(gnutls_privkey_t priv, char **b64_r)
{
	gnutls_pubkey_t pub;
	gnutls_datum_t der = { NULL, 0 };
	int ret = -1;

	if (gnutls_pubkey_init(&pub) < 0)
		return -1;
	if (gnutls_pubkey_import_privkey(pub, priv, 0, 0) >= 0 &&
	    gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &der) >= 0) {
		*b64_r = dkim_b64(der.data, der.size);
		ret = 0;
	}
	gnutls_free(der.data);
	gnutls_pubkey_deinit(pub);
	return ret;
}

int
dkim_keygen(enum dkim_alg alg, char **privkey_r, char **txt_r)
{
	if (sodium_init() < 0)
		return -1;
	if (alg == DKIM_ALG_ED25519) {
		unsigned char seed[crypto_sign_SEEDBYTES];

		randombytes_buf(seed, sizeof(seed));
		*privkey_r = dkim_b64(seed, sizeof(seed));
		sodium_memzero(seed, sizeof(seed));
		if (dkim_txt_for_key(alg, *privkey_r, txt_r) < 0) {
			free(*privkey_r);
			return -1;
		}
		return 0;
	}

	gnutls_x509_privkey_t x;
	gnutls_datum_t pem = { NULL, 0 };
	int ret = -1;

	if (gnutls_x509_privkey_init(&x) < 0)
		return -1;
	if (gnutls_x509_privkey_generate(x, GNUTLS_PK_RSA, 2048, 0) >= 0 &&
	    gnutls_x509_privkey_export2_pkcs8(x, GNUTLS_X509_FMT_PEM, NULL,
	    GNUTLS_PKCS_PLAIN, &pem) >= 0) {
		*privkey_r = xstrndup((const char *)pem.data, pem.size);
		if (dkim_txt_for_key(alg, *privkey_r, txt_r) == 0)
			ret = 0;
		else
			free(*privkey_r);
	}
	if (pem.data != NULL) {
		sodium_memzero(pem.data, pem.size);
		gnutls_free(pem.data);
	}
	gnutls_x509_privkey_deinit(x);
	return ret;
}

int
dkim_txt_for_key(enum dkim_alg alg, const char *privkey, char **txt_r)
{
	struct dkim_key *k = dkim_key_load(alg, "x", "x", privkey);
	char *p = NULL;
	int ret = -1;

	if (k == NULL)
		return -1;
	if (alg == DKIM_ALG_ED25519) {
		unsigned char pk[crypto_sign_PUBLICKEYBYTES];

		crypto_sign_ed25519_sk_to_pk(pk, k->ed_sk);
		p = dkim_b64(pk, sizeof(pk));
		ret = 0;
	} else {
		ret = dkim_rsa_pubkey_b64(k->rsa, &p);
	}
	if (ret == 0) {
		*txt_r = xasprintf("v=DKIM1; k=%s; p=%s", dkim_alg_names[alg],
		    p);
		free(p);
	}
	dkim_key_free(k);
	return ret;
}

struct dkim_key *
dkim_key_load(enum dkim_alg alg, const char *domain, const char *selector,
    const char *privkey)
{
	struct dkim_key *k;

	if (sodium_init() < 0)
		return NULL;
	k = xcalloc(1, sizeof(*k));
	k->alg = alg;
	if (alg == DKIM_ALG_ED25519) {
		size_t len = 0;
		unsigned char *seed = dkim_unb64(privkey, &len);
		unsigned char pk[crypto_sign_PUBLICKEYBYTES];

		if (seed == NULL || len != crypto_sign_SEEDBYTES) {
			free(seed);
			free(k);
			return NULL;
		}
		crypto_sign_seed_keypair(pk, k->ed_sk, seed);
		sodium_memzero(seed, len);
		free(seed);
	} else {
		gnutls_datum_t d = { (unsigned char *)(uintptr_t)privkey,
		    (unsigned)strlen(privkey) };

		if (gnutls_privkey_init(&k->rsa) < 0) {
			free(k);
			return NULL;
		}
		if (gnutls_privkey_import_x509_raw(k->rsa, &d,
		    GNUTLS_X509_FMT_PEM, NULL, 0) < 0) {
			gnutls_privkey_deinit(k->rsa);
			free(k);
			return NULL;
		}
	}
	k->domain = xstrdup(domain);
	k->selector = xstrdup(selector);
	return k;
}

void
dkim_key_free(struct dkim_key *k)
{
	if (k == NULL)
		return;
	sodium_memzero(k->ed_sk, sizeof(k->ed_sk));
	if (k->rsa != NULL)
		gnutls_privkey_deinit(k->rsa);
	free(k->domain);
	free(k->selector);
	free(k);
}

/* ---- streaming canonicalisation ---- */

struct dkim_msg *
dkim_msg_new(void)
{
	struct dkim_msg *m = xcalloc(1, sizeof(*m));

	if (sodium_init() < 0)
		abort();
	crypto_hash_sha256_init(&m->relaxed.sha);
	crypto_hash_sha256_init(&m->simple.sha);
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
	free(m->fields);
	free(m->hdr);
	free(m);
}

int
dkim_msg_header_overflow(const struct dkim_msg *m)
{
	return m->overflow;
}

static void
dkim_canon_flush(struct dkim_bodycanon *c)
{
	if (c->buflen > 0) {
		crypto_hash_sha256_update(&c->sha, c->buf, c->buflen);
		c->buflen = 0;
	}
}

static void
dkim_canon_put(struct dkim_bodycanon *c, const void *data, size_t len)
{
	if (c->buflen + len > sizeof(c->buf))
		dkim_canon_flush(c);
	if (len > sizeof(c->buf)) {
		crypto_hash_sha256_update(&c->sha, data, len);
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

static void
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
	crypto_hash_sha256_final(&m->simple.sha, m->bh_simple);
	crypto_hash_sha256_final(&m->relaxed.sha, m->bh_relaxed);
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

/*
 * The header hash input: the fields named in h (colon list), each taken
 * from the bottom up, canonicalised, then the signature field sigf with
 * its b= value emptied and no trailing CRLF. Caller frees *data_r.
 */
static int
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

/* ---- signing ---- */

char *
dkim_sign(struct dkim_msg *m, const struct dkim_key *k, int64_t now)
{
	char *bh, *hlist = NULL, *field, *data = NULL, *b64 = NULL;
	size_t hlen = 0, datalen = 0;
	unsigned char sigbuf[1024];
	size_t siglen = 0;

	dkim_finish(m);
	if (m->overflow)
		return NULL;

	/* h=: every listed name that occurs, plus From twice. */
	for (size_t i = 0; i < nitems(dkim_sign_headers); i++) {
		const char *n = dkim_sign_headers[i];
		bool present = strcmp(n, "from") == 0;

		for (size_t j = 0; j < m->nfields && !present; j++)
			present = m->fields[j].namelen == strlen(n) &&
			    strncasecmp(m->hdr + m->fields[j].off, n,
			    strlen(n)) == 0;
		if (!present)
			continue;
		hlist = xrealloc(hlist, hlen + strlen(n) + 2);
		if (hlen > 0)
			hlist[hlen++] = ':';
		memcpy(hlist + hlen, n, strlen(n));
		hlen += strlen(n);
		hlist[hlen] = '\0';
	}

	bh = dkim_b64(m->bh_relaxed, sizeof(m->bh_relaxed));
	field = xasprintf("DKIM-Signature: v=1; a=%s-sha256; c=relaxed/relaxed;"
	    "\r\n\td=%s; s=%s; t=%lld;\r\n\th=%s;\r\n\tbh=%s;\r\n\tb=",
	    dkim_alg_names[k->alg], k->domain, k->selector, (long long)now,
	    hlist, bh);
	free(bh);
	free(hlist);

	{
		/* The h= list alone, as written into the field above. */
		const char *hs = strstr(field, "\th=") + 3;
		char *hl = xstrndup(hs, strcspn(hs, ";"));
		int r = dkim_header_data(m, hl, true, field, strlen(field),
		    &data, &datalen);
		free(hl);
		if (r < 0)
			goto fail;
	}

	if (k->alg == DKIM_ALG_ED25519) {
		unsigned char hash[crypto_hash_sha256_BYTES];
		unsigned long long sl;

		crypto_hash_sha256(hash, (unsigned char *)data, datalen);
		crypto_sign_detached(sigbuf, &sl, hash, sizeof(hash),
		    k->ed_sk);
		siglen = (size_t)sl;
	} else {
		gnutls_datum_t in = { (unsigned char *)data,
		    (unsigned)datalen };
		gnutls_datum_t out = { NULL, 0 };

		if (gnutls_privkey_sign_data(k->rsa, GNUTLS_DIG_SHA256, 0,
		    &in, &out) < 0 || out.size > sizeof(sigbuf)) {
			gnutls_free(out.data);
			goto fail;
		}
		memcpy(sigbuf, out.data, out.size);
		siglen = out.size;
		gnutls_free(out.data);
	}
	free(data);
	b64 = dkim_b64(sigbuf, siglen);

	/* Fold b= every 72 characters; whitespace in b= is ignored. */
	size_t blen = strlen(b64), flen = strlen(field);
	char *res = xmalloc(flen + blen + blen / 72 * 3 + 8);
	memcpy(res, field, flen);
	size_t o = flen;
	for (size_t i = 0; i < blen; i++) {
		if (i > 0 && i % 72 == 0) {
			memcpy(res + o, "\r\n\t ", 4);
			o += 4;
		}
		res[o++] = b64[i];
	}
	memcpy(res + o, "\r\n", 3);
	free(b64);
	free(field);
	return res;
fail:
	free(data);
	free(field);
	return NULL;
}

/* ---- verifying ---- */

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
		const char *v = (const char *)memchr(m->hdr + f->off, ':', f->len) + 1;
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
		if (!hrelaxed && !(hl == 6 && strncmp(s->c, "simple", 6) == 0)) {
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
	pk = dkim_unb64(p, &pklen);
	sig = dkim_unb64(s->b, &siglen);
	bh = dkim_unb64(s->bh, &bhlen);
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
	if (alg == DKIM_ALG_ED25519) {
		unsigned char hash[crypto_hash_sha256_BYTES];

		crypto_hash_sha256(hash, (unsigned char *)data, datalen);
		if (pklen != crypto_sign_PUBLICKEYBYTES ||
		    siglen != crypto_sign_BYTES) {
			*why_r = "bad key or signature length";
			res = pklen != crypto_sign_PUBLICKEYBYTES ?
			    DKIM_PERMERROR : DKIM_FAIL;
			goto out;
		}
		if (crypto_sign_verify_detached(sig, hash, sizeof(hash),
		    pk) == 0)
			res = DKIM_PASS;
		else
			*why_r = "signature did not verify";
	} else {
		gnutls_pubkey_t pub;
		gnutls_datum_t der = { pk, (unsigned)pklen };
		gnutls_datum_t in = { (unsigned char *)data,
		    (unsigned)datalen };
		gnutls_datum_t sd = { sig, (unsigned)siglen };

		if (gnutls_pubkey_init(&pub) < 0) {
			*why_r = "out of memory";
			res = DKIM_NEUTRAL;
			goto out;
		}
		if (gnutls_pubkey_import(pub, &der, GNUTLS_X509_FMT_DER) < 0) {
			gnutls_pubkey_deinit(pub);
			*why_r = "unusable public key";
			res = DKIM_PERMERROR;
			goto out;
		}
		if (gnutls_pubkey_verify_data2(pub, GNUTLS_SIGN_RSA_SHA256, 0,
		    &in, &sd) >= 0)
			res = DKIM_PASS;
		else
			*why_r = "signature did not verify";
		gnutls_pubkey_deinit(pub);
	}
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
