/*
 * acme/: base64url (RFC 4648 10 vectors, URL alphabet, no padding), the
 * JWK and its thumbprint, and JWS signatures that verify with the public
 * key once r||s is turned back into DER; the CSR names; a key's PEM
 * round trip; acme_token_ok.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <jansson.h>

#include "acme/acme.h"
#include "acme/acme_int.h"
#include "common/acme_path.h"
#include "t.h"

static char t_dir[] = "/tmp/test_acme_jws.XXXXXX";

/* base64url-decode (test helper, no validation beyond the alphabet). */
static size_t
unb64(const char *s, unsigned char *out)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned acc = 0, bits = 0;
	size_t n = 0;

	for (; *s; s++) {
		const char *p = strchr(tab, *s);

		if (p == NULL)
			return (size_t)-1;
		acc = acc << 6 | (unsigned)(p - tab);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
		}
	}
	return n;
}

static void
test_b64url(void)
{
	static const struct { const char *in, *out; } v[] = {
		{ "", "" }, { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" },
		{ "foobar", "Zm9vYmFy" },
	};
	const unsigned char url[] = { 0xfb, 0xff, 0xfe };
	char *s;

	t_begin("base64url: RFC 4648 vectors, - and _, no padding");
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		s = acme_b64url(v[i].in, strlen(v[i].in));
		t_assert_str(s, v[i].out);
		free(s);
	}
	s = acme_b64url(url, sizeof(url));
	t_assert_str(s, "-__-");
	free(s);
	t_end();
}

static void
test_jws(void)
{
	const char *e = NULL;
	struct acme_key *k = acme_key_generate(&e), *k2;
	char *jwk, *thumb, *jws, *pem, path[256];
	json_t *j, *hdr;
	unsigned char buf[512], h[32];
	size_t n;
	gnutls_pubkey_t pub;
	gnutls_datum_t data, r, s, der;
	const char *prot, *payload, *sig;
	char *input;
	FILE *f;

	t_begin("JWK: canonical P-256, thumbprint is SHA-256 of it");
	t_assert(k != NULL);
	jwk = acme_jwk(k);
	t_assert(jwk != NULL);
	t_assert(strncmp(jwk, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"",
	    31) == 0);
	t_assert(strlen(jwk) == 31 + 43 + 7 + 43 + 2);
	thumb = acme_thumbprint(k);
	gnutls_hash_fast(GNUTLS_DIG_SHA256, jwk, strlen(jwk), h);
	t_assert_int(unb64(thumb, buf), 32);
	t_assert(memcmp(buf, h, 32) == 0);
	t_end();

	t_begin("JWS: header with jwk or kid, ES256 signature verifies");
	jws = acme_jws(k, NULL, "NONCE", "https://ca/new-acct",
	    "{\"a\":1}", &e);
	t_assert(jws != NULL);
	j = json_loads(jws, 0, NULL);
	prot = json_string_value(json_object_get(j, "protected"));
	payload = json_string_value(json_object_get(j, "payload"));
	sig = json_string_value(json_object_get(j, "signature"));
	t_assert(prot && payload && sig);
	n = unb64(prot, buf);
	buf[n] = '\0';
	hdr = json_loads((char *)buf, 0, NULL);
	t_assert_str(json_string_value(json_object_get(hdr, "alg")), "ES256");
	t_assert_str(json_string_value(json_object_get(hdr, "nonce")),
	    "NONCE");
	t_assert_str(json_string_value(json_object_get(hdr, "url")),
	    "https://ca/new-acct");
	t_assert(json_object_get(hdr, "kid") == NULL);
	t_assert_str(json_string_value(json_object_get(
	    json_object_get(hdr, "jwk"), "crv")), "P-256");
	json_decref(hdr);
	t_assert_str(payload, "eyJhIjoxfQ");
	/* Raw r||s, 64 bytes, back to DER for GnuTLS. */
	t_assert_int(unb64(sig, buf), 64);
	r.data = buf;
	r.size = 32;
	s.data = buf + 32;
	s.size = 32;
	t_assert(gnutls_encode_rs_value(&der, &r, &s) == 0);
	if (asprintf(&input, "%s.%s", prot, payload) < 0)
		abort();
	data.data = (unsigned char *)input;
	data.size = (unsigned)strlen(input);
	gnutls_pubkey_init(&pub);
	t_assert(gnutls_pubkey_import_privkey(pub, k->priv, 0, 0) == 0);
	t_assert(gnutls_pubkey_verify_data2(pub, GNUTLS_SIGN_ECDSA_SHA256, 0,
	    &data, &der) >= 0);
	/* One flipped bit in the signed input: no longer valid. */
	input[0] ^= 1;
	t_assert(gnutls_pubkey_verify_data2(pub, GNUTLS_SIGN_ECDSA_SHA256, 0,
	    &data, &der) < 0);
	gnutls_free(der.data);
	gnutls_pubkey_deinit(pub);
	free(input);
	json_decref(j);
	free(jws);

	/* POST-as-GET: kid, empty payload. */
	jws = acme_jws(k, "https://ca/acct/1", "N2", "https://ca/order/1", "",
	    &e);
	j = json_loads(jws, 0, NULL);
	t_assert_str(json_string_value(json_object_get(j, "payload")), "");
	n = unb64(json_string_value(json_object_get(j, "protected")), buf);
	buf[n] = '\0';
	hdr = json_loads((char *)buf, 0, NULL);
	t_assert_str(json_string_value(json_object_get(hdr, "kid")),
	    "https://ca/acct/1");
	t_assert(json_object_get(hdr, "jwk") == NULL);
	json_decref(hdr);
	json_decref(j);
	free(jws);
	t_end();

	t_begin("key: PEM round trip keeps the JWK");
	pem = acme_key_pem(k);
	t_assert(pem != NULL && strstr(pem, "BEGIN PRIVATE KEY") != NULL);
	snprintf(path, sizeof(path), "%s/k.pem", t_dir);
	f = fopen(path, "w");
	fputs(pem, f);
	fclose(f);
	k2 = acme_key_load(path, &e);
	t_assert(k2 != NULL);
	if (k2 != NULL) {
		char *jwk2 = acme_jwk(k2);

		t_assert_str(jwk2, jwk);
		free(jwk2);
	}
	acme_key_free(k2);
	free(pem);
	t_end();

	t_begin("CSR: DER with the names");
	{
		const char *names[] = { "mail.example.test",
		    "autoconfig.example.test" };
		char *csr = acme_csr(k, names, 2, &e);
		gnutls_x509_crq_t crq;
		gnutls_datum_t d;
		char san[256];
		size_t sz = sizeof(san);
		unsigned type;

		t_assert(csr != NULL);
		n = unb64(csr, buf);
		t_assert(n > 100 && n < sizeof(buf));
		d.data = buf;
		d.size = (unsigned)n;
		gnutls_x509_crq_init(&crq);
		t_assert(gnutls_x509_crq_import(crq, &d, GNUTLS_X509_FMT_DER)
		    == 0);
		t_assert(gnutls_x509_crq_verify(crq, 0) >= 0);
		t_assert_int(gnutls_x509_crq_get_subject_alt_name(crq, 1, san,
		    &sz, &type, NULL), GNUTLS_SAN_DNSNAME);
		san[sz] = '\0';
		t_assert_str(san, "autoconfig.example.test");
		gnutls_x509_crq_deinit(crq);
		free(csr);
	}
	t_end();

	free(jwk);
	free(thumb);
	acme_key_free(k);
}

static void
test_paths(void)
{
	char *p;

	t_begin("acme_path beside the store; acme_token_ok");
	p = acme_path("/var/lib/carteiro/mail.db", "challenges/x");
	t_assert_str(p, "/var/lib/carteiro/acme/challenges/x");
	free(p);
	p = acme_path("mail.db", NULL);
	t_assert_str(p, "./acme");
	free(p);
	t_assert(acme_token_ok("aZ09-_"));
	t_assert(!acme_token_ok(""));
	t_assert(!acme_token_ok("a.b"));
	t_assert(!acme_token_ok("a/b"));
	t_assert(!acme_token_ok("..%2f"));
	t_end();
}

int
main(void)
{
	if (mkdtemp(t_dir) == NULL)
		return 1;
	test_b64url();
	test_jws();
	test_paths();
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", t_dir);
		(void)system(cmd);
	}
	return t_exit();
}
