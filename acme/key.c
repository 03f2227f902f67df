/* ECDSA P-256 keys for the ACME account and the certificates (acme.h). */
#include "acme/acme.h"

#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "acme/acme_int.h"
#include "common/util.h"

static struct acme_key *acme_key_wrap(gnutls_x509_privkey_t,
    const char **);

static struct acme_key *
acme_key_wrap(gnutls_x509_privkey_t x, const char **error_r)
{
	struct acme_key *k;
	gnutls_privkey_t pk;

	if (gnutls_x509_privkey_get_pk_algorithm(x) != GNUTLS_PK_ECDSA) {
		gnutls_x509_privkey_deinit(x);
		*error_r = "not an ECDSA key";
		return NULL;
	}
	if (gnutls_privkey_init(&pk) < 0 ||
	    gnutls_privkey_import_x509(pk, x, 0) < 0) {
		gnutls_x509_privkey_deinit(x);
		*error_r = "cannot use the key";
		return NULL;
	}
	k = xcalloc(1, sizeof(*k));
	k->x509 = x;
	k->priv = pk;
	return k;
}

struct acme_key *
acme_key_generate(const char **error_r)
{
	gnutls_x509_privkey_t x;

	if (gnutls_x509_privkey_init(&x) < 0) {
		*error_r = "out of memory";
		return NULL;
	}
	if (gnutls_x509_privkey_generate(x, GNUTLS_PK_ECDSA,
	    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) < 0) {
		gnutls_x509_privkey_deinit(x);
		*error_r = "cannot generate an ECDSA P-256 key";
		return NULL;
	}
	return acme_key_wrap(x, error_r);
}

struct acme_key *
acme_key_load(const char *path, const char **error_r)
{
	gnutls_x509_privkey_t x;
	gnutls_datum_t d;
	size_t len;
	char *pem = acme_file_read(path, &len);
	int rc;

	if (pem == NULL) {
		*error_r = "cannot read the key file";
		return NULL;
	}
	if (gnutls_x509_privkey_init(&x) < 0) {
		free(pem);
		*error_r = "out of memory";
		return NULL;
	}
	d.data = (unsigned char *)pem;
	d.size = (unsigned)len;
	rc = gnutls_x509_privkey_import2(x, &d, GNUTLS_X509_FMT_PEM, NULL,
	    GNUTLS_PKCS_PLAIN);
	explicit_bzero(pem, len);
	free(pem);
	if (rc < 0) {
		gnutls_x509_privkey_deinit(x);
		*error_r = "not a PEM private key";
		return NULL;
	}
	return acme_key_wrap(x, error_r);
}

char *
acme_key_pem(const struct acme_key *k)
{
	gnutls_datum_t out;
	char *s;

	if (gnutls_x509_privkey_export2_pkcs8(k->x509, GNUTLS_X509_FMT_PEM,
	    NULL, GNUTLS_PKCS_PLAIN, &out) < 0)
		return NULL;
	s = xmalloc(out.size + 1);
	memcpy(s, out.data, out.size);
	s[out.size] = '\0';
	explicit_bzero(out.data, out.size);
	gnutls_free(out.data);
	return s;
}

void
acme_key_free(struct acme_key *k)
{
	if (k == NULL)
		return;
	gnutls_privkey_deinit(k->priv);
	gnutls_x509_privkey_deinit(k->x509);
	free(k);
}
