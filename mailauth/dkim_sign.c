/*
 * DKIM keys and signing (dkim.h): the algorithm names, key generation and
 * loading through dkim_crypto.c, the key record text, and the
 * DKIM-Signature field for a canonicalised message (relaxed/relaxed,
 * sha256, From oversigned). Not owned: key files (dkim_keys.c).
 */
#include "mailauth/dkim_int.h"
#include "mailauth/dkim_crypto.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Signed header fields; From is listed twice so that a From added later
 * breaks the signature (oversigning). */
static const char *const dkim_sign_headers[] = {
	"from", "from", "reply-to", "subject", "date", "to", "cc",
	"message-id", "in-reply-to", "references", "mime-version",
	"content-type", "content-transfer-encoding", "list-unsubscribe",
};

static const char *const dkim_alg_names[DKIM_ALG_COUNT] = {
	"ed25519", "rsa",
};

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

/* ---- keys ---- */

int
dkim_keygen(enum dkim_alg alg, char **privkey_r, char **txt_r)
{
	if (dkim_privkey_generate(alg, privkey_r) < 0)
		return -1;
	if (dkim_txt_for_key(alg, *privkey_r, txt_r) < 0) {
		free(*privkey_r);
		return -1;
	}
	return 0;
}

int
dkim_txt_for_key(enum dkim_alg alg, const char *privkey, char **txt_r)
{
	struct dkim_privkey *k = dkim_privkey_load(alg, privkey);
	char *p = NULL;

	if (k == NULL)
		return -1;
	if (dkim_privkey_public_b64(k, &p) < 0) {
		dkim_privkey_free(k);
		return -1;
	}
	*txt_r = xasprintf("v=DKIM1; k=%s; p=%s", dkim_alg_names[alg], p);
	free(p);
	dkim_privkey_free(k);
	return 0;
}

struct dkim_key *
dkim_key_load(enum dkim_alg alg, const char *domain, const char *selector,
    const char *privkey)
{
	struct dkim_privkey *pk = dkim_privkey_load(alg, privkey);
	struct dkim_key *k;

	if (pk == NULL)
		return NULL;
	k = xcalloc(1, sizeof(*k));
	k->alg = alg;
	k->pk = pk;
	k->domain = xstrdup(domain);
	k->selector = xstrdup(selector);
	return k;
}

void
dkim_key_free(struct dkim_key *k)
{
	if (k == NULL)
		return;
	dkim_privkey_free(k->pk);
	free(k->domain);
	free(k->selector);
	free(k);
}

/* ---- signing ---- */

char *
dkim_sign(struct dkim_msg *m, const struct dkim_key *k, int64_t now)
{
	char *bh, *hlist = NULL, *field, *data = NULL, *b64 = NULL;
	size_t hlen = 0, datalen = 0;
	unsigned char *sigbuf = NULL;
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

	bh = dkim_b64_encode(m->bh_relaxed, sizeof(m->bh_relaxed));
	field = xasprintf("DKIM-Signature: v=1; a=%s-sha256; c=relaxed/relaxed;"
	    "\r\n\td=%s; s=%s; t=%lld;\r\n\th=%s;\r\n\tbh=%s;\r\n\tb=",
	    dkim_alg_name(k->alg), k->domain, k->selector, (long long)now,
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

	if (dkim_privkey_sign(k->pk, data, datalen, &sigbuf, &siglen) < 0)
		goto fail;
	free(data);
	b64 = dkim_b64_encode(sigbuf, siglen);
	free(sigbuf);

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

