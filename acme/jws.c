/*
 * JWS for ACME (RFC 8555 6.2, RFC 7515): the flattened JSON serialization,
 * ES256 with the account key. GnuTLS signs in DER; JWS wants the raw
 * 32-byte r and s one after the other (RFC 7518 3.4).
 */
#include "acme/acme.h"

#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <jansson.h>

#include "acme/acme_int.h"
#include "common/util.h"

#define ACME_P256_LEN 32	/* bytes in a coordinate, r and s */

static int acme_jws_fixed(const gnutls_datum_t *, unsigned char *);

char *
acme_b64url(const void *data, size_t len)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789-_";
	const unsigned char *p = data;
	char *out = xmalloc(len / 3 * 4 + 5), *o = out;
	size_t i;

	for (i = 0; i + 2 < len; i += 3) {
		*o++ = tab[p[i] >> 2];
		*o++ = tab[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		*o++ = tab[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)];
		*o++ = tab[p[i + 2] & 63];
	}
	if (len - i == 1) {
		*o++ = tab[p[i] >> 2];
		*o++ = tab[(p[i] & 3) << 4];
	} else if (len - i == 2) {
		*o++ = tab[p[i] >> 2];
		*o++ = tab[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		*o++ = tab[(p[i + 1] & 15) << 2];
	}
	*o = '\0';
	return out;
}

/* An unsigned big-endian integer of at most 32 significant bytes (GnuTLS
 * may add a leading zero, or give fewer) as exactly 32 bytes. 0 / -1. */
static int
acme_jws_fixed(const gnutls_datum_t *d, unsigned char *out)
{
	const unsigned char *p = d->data;
	size_t n = d->size;

	while (n > ACME_P256_LEN && *p == 0) {
		p++;
		n--;
	}
	if (n > ACME_P256_LEN)
		return -1;
	memset(out, 0, ACME_P256_LEN - n);
	memcpy(out + ACME_P256_LEN - n, p, n);
	return 0;
}

char *
acme_jwk(const struct acme_key *k)
{
	gnutls_ecc_curve_t curve;
	gnutls_datum_t x, y, d;
	unsigned char bx[ACME_P256_LEN], by[ACME_P256_LEN];
	char *sx, *sy, *jwk = NULL;

	if (gnutls_x509_privkey_export_ecc_raw(k->x509, &curve, &x, &y,
	    &d) < 0)
		return NULL;
	if (curve == GNUTLS_ECC_CURVE_SECP256R1 &&
	    acme_jws_fixed(&x, bx) == 0 && acme_jws_fixed(&y, by) == 0) {
		sx = acme_b64url(bx, sizeof(bx));
		sy = acme_b64url(by, sizeof(by));
		/* RFC 7638 3.2: members in lexical order, no whitespace. */
		jwk = xasprintf("{\"crv\":\"P-256\",\"kty\":\"EC\","
		    "\"x\":\"%s\",\"y\":\"%s\"}", sx, sy);
		free(sx);
		free(sy);
	}
	gnutls_free(x.data);
	gnutls_free(y.data);
	explicit_bzero(d.data, d.size);
	gnutls_free(d.data);
	return jwk;
}

char *
acme_thumbprint(const struct acme_key *k)
{
	unsigned char h[32];
	char *jwk = acme_jwk(k);

	if (jwk == NULL || gnutls_hash_fast(GNUTLS_DIG_SHA256, jwk,
	    strlen(jwk), h) < 0) {
		free(jwk);
		return NULL;
	}
	free(jwk);
	return acme_b64url(h, sizeof(h));
}

char *
acme_jws(const struct acme_key *k, const char *kid, const char *nonce,
    const char *url, const char *payload, const char **error_r)
{
	json_t *hdr, *jwk = NULL, *out;
	gnutls_datum_t data, sig = { NULL, 0 }, r = { NULL, 0 },
	    s = { NULL, 0 };
	unsigned char rs[2 * ACME_P256_LEN];
	char *jwk_s = NULL, *hdr_s, *p64, *h64, *input, *sig64, *res = NULL;

	if (kid == NULL) {
		if ((jwk_s = acme_jwk(k)) == NULL ||
		    (jwk = json_loads(jwk_s, 0, NULL)) == NULL) {
			free(jwk_s);
			*error_r = "cannot export the account key";
			return NULL;
		}
		free(jwk_s);
		hdr = json_pack("{s:s, s:o, s:s, s:s}", "alg", "ES256",
		    "jwk", jwk, "nonce", nonce, "url", url);
	} else
		hdr = json_pack("{s:s, s:s, s:s, s:s}", "alg", "ES256",
		    "kid", kid, "nonce", nonce, "url", url);
	if (hdr == NULL) {
		*error_r = "cannot build the JWS header";
		return NULL;
	}
	hdr_s = json_dumps(hdr, JSON_COMPACT);
	json_decref(hdr);
	h64 = acme_b64url(hdr_s, strlen(hdr_s));
	free(hdr_s);
	p64 = acme_b64url(payload, strlen(payload));
	input = xasprintf("%s.%s", h64, p64);
	data.data = (unsigned char *)input;
	data.size = (unsigned)strlen(input);
	if (gnutls_privkey_sign_data2(k->priv, GNUTLS_SIGN_ECDSA_SHA256, 0,
	    &data, &sig) < 0 || gnutls_decode_rs_value(&sig, &r, &s) < 0 ||
	    acme_jws_fixed(&r, rs) < 0 ||
	    acme_jws_fixed(&s, rs + ACME_P256_LEN) < 0) {
		*error_r = "cannot sign the JWS";
		goto out;
	}
	sig64 = acme_b64url(rs, sizeof(rs));
	out = json_pack("{s:s, s:s, s:s}", "protected", h64, "payload", p64,
	    "signature", sig64);
	free(sig64);
	if (out != NULL) {
		res = json_dumps(out, JSON_COMPACT);
		json_decref(out);
	}
	if (res == NULL)
		*error_r = "cannot build the JWS";
out:
	gnutls_free(sig.data);
	gnutls_free(r.data);
	gnutls_free(s.data);
	free(input);
	free(h64);
	free(p64);
	return res;
}
