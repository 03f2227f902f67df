/*
 * DKIM's cryptography on GnuTLS (dkim_crypto.h). Ed25519 keys are stored
 * as the bare 32-byte seed; GnuTLS derives the public half only when it
 * imports a PKCS#8 structure, so the seed is wrapped in the fixed RFC 8410
 * prefix first. Secrets are wiped with gnutls_memset.
 */
#include "mailauth/dkim_crypto.h"
#include "common/util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#define DKIM_ED25519_LEN	32	/* seed, public key */
#define DKIM_ED25519_SIG_LEN	64

/* RFC 8410 7: OneAsymmetricKey for Ed25519, up to the 32-byte seed. */
static const unsigned char dkim_ed25519_pkcs8[] = {
	0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65,
	0x70, 0x04, 0x22, 0x04, 0x20,
};

struct dkim_hash {
	gnutls_hash_hd_t hd;
};

struct dkim_privkey {
	enum dkim_alg alg;
	gnutls_privkey_t key;
};

struct dkim_hash *
dkim_hash_new(void)
{
	struct dkim_hash *h = xcalloc(1, sizeof(*h));

	if (gnutls_hash_init(&h->hd, GNUTLS_DIG_SHA256) < 0)
		abort();
	return h;
}

void
dkim_hash_update(struct dkim_hash *h, const void *data, size_t len)
{
	gnutls_hash(h->hd, data, len);
}

void
dkim_hash_final(struct dkim_hash *h, unsigned char *out)
{
	gnutls_hash_deinit(h->hd, out);
	free(h);
}

void
dkim_hash_free(struct dkim_hash *h)
{
	if (h == NULL)
		return;
	gnutls_hash_deinit(h->hd, NULL);
	free(h);
}

char *
dkim_b64_encode(const void *data, size_t len)
{
	gnutls_datum_t in = { (unsigned char *)(uintptr_t)data,
	    (unsigned)len };
	gnutls_datum_t out = { NULL, 0 };
	char *s;

	if (len == 0)
		return xstrdup("");
	if (gnutls_base64_encode2(&in, &out) < 0)
		abort();	/* only ever out of memory */
	s = xstrndup((const char *)out.data, out.size);
	gnutls_free(out.data);
	return s;
}

unsigned char *
dkim_b64_decode(const char *s, size_t *len_r)
{
	size_t n = strlen(s), o = 0;
	char *clean = xmalloc(n + 1);
	gnutls_datum_t in, out = { NULL, 0 };
	unsigned char *res;

	for (size_t i = 0; i < n; i++)
		if (!isspace((unsigned char)s[i]))
			clean[o++] = s[i];
	in.data = (unsigned char *)clean;
	in.size = (unsigned)o;
	if (o > 0 && gnutls_base64_decode2(&in, &out) < 0) {
		free(clean);
		return NULL;
	}
	free(clean);
	/* One spare byte, so an empty result is still an allocation. */
	res = xmalloc(out.size + 1);
	if (out.size > 0)
		memcpy(res, out.data, out.size);
	*len_r = out.size;
	if (out.data != NULL) {
		gnutls_memset(out.data, 0, out.size);
		gnutls_free(out.data);
	}
	return res;
}

/* ---- private keys ---- */

static int
dkim_privkey_import_ed25519(gnutls_privkey_t key, const char *text)
{
	unsigned char der[sizeof(dkim_ed25519_pkcs8) + DKIM_ED25519_LEN];
	gnutls_datum_t d = { der, sizeof(der) };
	size_t len = 0;
	unsigned char *seed = dkim_b64_decode(text, &len);
	int rc = -1;

	if (seed != NULL && len == DKIM_ED25519_LEN) {
		memcpy(der, dkim_ed25519_pkcs8, sizeof(dkim_ed25519_pkcs8));
		memcpy(der + sizeof(dkim_ed25519_pkcs8), seed, len);
		if (gnutls_privkey_import_x509_raw(key, &d,
		    GNUTLS_X509_FMT_DER, NULL, GNUTLS_PKCS_PLAIN) >= 0 &&
		    gnutls_privkey_get_pk_algorithm(key, NULL) ==
		    GNUTLS_PK_EDDSA_ED25519)
			rc = 0;
		gnutls_memset(der, 0, sizeof(der));
	}
	if (seed != NULL) {
		gnutls_memset(seed, 0, len);
		free(seed);
	}
	return rc;
}

struct dkim_privkey *
dkim_privkey_load(enum dkim_alg alg, const char *text)
{
	struct dkim_privkey *k = xcalloc(1, sizeof(*k));
	int rc;

	k->alg = alg;
	if (gnutls_privkey_init(&k->key) < 0) {
		free(k);
		return NULL;
	}
	if (alg == DKIM_ALG_ED25519) {
		rc = dkim_privkey_import_ed25519(k->key, text);
	} else {
		gnutls_datum_t d = { (unsigned char *)(uintptr_t)text,
		    (unsigned)strlen(text) };

		rc = gnutls_privkey_import_x509_raw(k->key, &d,
		    GNUTLS_X509_FMT_PEM, NULL, 0) < 0 ? -1 : 0;
		if (rc == 0 && gnutls_privkey_get_pk_algorithm(k->key, NULL) !=
		    GNUTLS_PK_RSA)
			rc = -1;
	}
	if (rc < 0) {
		gnutls_privkey_deinit(k->key);
		free(k);
		return NULL;
	}
	return k;
}

void
dkim_privkey_free(struct dkim_privkey *k)
{
	if (k == NULL)
		return;
	gnutls_privkey_deinit(k->key);
	free(k);
}

int
dkim_privkey_generate(enum dkim_alg alg, char **text_r)
{
	if (alg == DKIM_ALG_ED25519) {
		unsigned char seed[DKIM_ED25519_LEN];

		if (gnutls_rnd(GNUTLS_RND_KEY, seed, sizeof(seed)) < 0)
			return -1;
		*text_r = dkim_b64_encode(seed, sizeof(seed));
		gnutls_memset(seed, 0, sizeof(seed));
		return 0;
	}
	return dkim_privkey_generate_rsa(2048, text_r);
}

int
dkim_privkey_generate_rsa(unsigned bits, char **text_r)
{
	gnutls_x509_privkey_t x;
	gnutls_datum_t pem = { NULL, 0 };
	int ret = -1;

	if (gnutls_x509_privkey_init(&x) < 0)
		return -1;
	if (gnutls_x509_privkey_generate(x, GNUTLS_PK_RSA, bits, 0) >= 0 &&
	    gnutls_x509_privkey_export2_pkcs8(x, GNUTLS_X509_FMT_PEM, NULL,
	    GNUTLS_PKCS_PLAIN, &pem) >= 0) {
		*text_r = xstrndup((const char *)pem.data, pem.size);
		ret = 0;
	}
	if (pem.data != NULL) {
		gnutls_memset(pem.data, 0, pem.size);
		gnutls_free(pem.data);
	}
	gnutls_x509_privkey_deinit(x);
	return ret;
}

int
dkim_privkey_public_b64(const struct dkim_privkey *k, char **b64_r)
{
	gnutls_pubkey_t pub;
	gnutls_datum_t d = { NULL, 0 };
	gnutls_ecc_curve_t curve;
	int ret = -1;

	if (gnutls_pubkey_init(&pub) < 0)
		return -1;
	if (gnutls_pubkey_import_privkey(pub, k->key, 0, 0) < 0)
		goto out;
	if (k->alg == DKIM_ALG_ED25519) {
		if (gnutls_pubkey_export_ecc_raw2(pub, &curve, &d, NULL,
		    0) < 0 || curve != GNUTLS_ECC_CURVE_ED25519 ||
		    d.size != DKIM_ED25519_LEN)
			goto out;
	} else if (gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &d) < 0)
		goto out;
	*b64_r = dkim_b64_encode(d.data, d.size);
	ret = 0;
out:
	gnutls_free(d.data);
	gnutls_pubkey_deinit(pub);
	return ret;
}

int
dkim_privkey_sign(const struct dkim_privkey *k, const void *data,
    size_t len, unsigned char **sig_r, size_t *siglen_r)
{
	unsigned char hash[DKIM_SHA256_LEN];
	gnutls_datum_t in = { (unsigned char *)(uintptr_t)data,
	    (unsigned)len };
	gnutls_datum_t out = { NULL, 0 };
	int rc;

	if (k->alg == DKIM_ALG_ED25519) {
		/* RFC 8463 3: PureEdDSA over the SHA-256 of the data. */
		if (gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, hash) < 0)
			return -1;
		in.data = hash;
		in.size = sizeof(hash);
		rc = gnutls_privkey_sign_data2(k->key,
		    GNUTLS_SIGN_EDDSA_ED25519, 0, &in, &out);
	} else {
		rc = gnutls_privkey_sign_data(k->key, GNUTLS_DIG_SHA256, 0,
		    &in, &out);
	}
	if (rc < 0) {
		gnutls_free(out.data);
		return -1;
	}
	*sig_r = xmalloc(out.size);
	memcpy(*sig_r, out.data, out.size);
	*siglen_r = out.size;
	gnutls_free(out.data);
	return 0;
}

enum dkim_result
dkim_pubkey_verify(enum dkim_alg alg, const unsigned char *pk, size_t pklen,
    const void *data, size_t len, const unsigned char *sig, size_t siglen,
    const char **why_r)
{
	unsigned char hash[DKIM_SHA256_LEN];
	gnutls_pubkey_t pub;
	gnutls_datum_t key = { (unsigned char *)(uintptr_t)pk,
	    (unsigned)pklen };
	gnutls_datum_t in = { (unsigned char *)(uintptr_t)data,
	    (unsigned)len };
	gnutls_datum_t sd = { (unsigned char *)(uintptr_t)sig,
	    (unsigned)siglen };
	gnutls_sign_algorithm_t sa = GNUTLS_SIGN_RSA_SHA256;
	enum dkim_result res = DKIM_FAIL;
	unsigned bits = 0;
	int rc;

	if (alg == DKIM_ALG_ED25519 && (pklen != DKIM_ED25519_LEN ||
	    siglen != DKIM_ED25519_SIG_LEN)) {
		*why_r = "bad key or signature length";
		return pklen != DKIM_ED25519_LEN ? DKIM_PERMERROR : DKIM_FAIL;
	}
	if (gnutls_pubkey_init(&pub) < 0) {
		*why_r = "out of memory";
		return DKIM_NEUTRAL;
	}
	if (alg == DKIM_ALG_ED25519) {
		rc = gnutls_pubkey_import_ecc_raw(pub, GNUTLS_ECC_CURVE_ED25519,
		    &key, NULL);
		if (rc >= 0 && gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len,
		    hash) < 0)
			rc = -1;
		in.data = hash;
		in.size = sizeof(hash);
		sa = GNUTLS_SIGN_EDDSA_ED25519;
	} else {
		rc = gnutls_pubkey_import(pub, &key, GNUTLS_X509_FMT_DER);
	}
	if (rc < 0) {
		*why_r = "unusable public key";
		res = DKIM_PERMERROR;
	} else if (alg == DKIM_ALG_RSA && (gnutls_pubkey_get_pk_algorithm(pub,
	    &bits) != GNUTLS_PK_RSA || bits < DKIM_RSA_MIN_BITS)) {
		/* RFC 8301 3.2: verifiers MUST NOT consider signatures
		 * with RSA keys of less than 1024 bits valid. A fail, not a
		 * permerror: the key is usable, the signature is not good
		 * enough. Checked before the signature, so the answer does
		 * not depend on it. */
		*why_r = "RSA key shorter than 1024 bits (RFC 8301)";
	} else if (gnutls_pubkey_verify_data2(pub, sa, 0, &in, &sd) >= 0)
		res = DKIM_PASS;
	else
		*why_r = "signature did not verify";
	gnutls_pubkey_deinit(pub);
	return res;
}
