/*
 * The certificate side of ACME: the CSR for the names (RFC 8555 7.4, DER
 * in base64url), and what an installed certificate says (expiry, names,
 * issuer) for "acme status" and the renewal decision.
 */
#include "acme/acme.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "acme/acme_int.h"
#include "common/util.h"

char *
acme_csr(const struct acme_key *k, const char *const *names, size_t n,
    const char **error_r)
{
	gnutls_x509_crq_t crq;
	gnutls_datum_t der = { NULL, 0 };
	char *out = NULL;

	if (n == 0 || gnutls_x509_crq_init(&crq) < 0) {
		*error_r = "cannot build the CSR";
		return NULL;
	}
	if (gnutls_x509_crq_set_version(crq, 1) < 0 ||
	    gnutls_x509_crq_set_key(crq, k->x509) < 0 ||
	    gnutls_x509_crq_set_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 0,
	    names[0], (unsigned)strlen(names[0])) < 0)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if (gnutls_x509_crq_set_subject_alt_name(crq,
		    GNUTLS_SAN_DNSNAME, names[i], (unsigned)strlen(names[i]),
		    GNUTLS_FSAN_APPEND) < 0)
			goto fail;
	if (gnutls_x509_crq_privkey_sign(crq, k->priv, GNUTLS_DIG_SHA256,
	    0) < 0 || gnutls_x509_crq_export2(crq, GNUTLS_X509_FMT_DER,
	    &der) < 0)
		goto fail;
	out = acme_b64url(der.data, der.size);
	gnutls_free(der.data);
	gnutls_x509_crq_deinit(crq);
	return out;
fail:
	gnutls_x509_crq_deinit(crq);
	*error_r = "cannot build the CSR";
	return NULL;
}

int
acme_cert_info(const char *path, struct acme_certinfo *ci,
    const char **error_r)
{
	gnutls_x509_crt_t crt;
	gnutls_datum_t d, dn;
	size_t len;
	char *pem = acme_file_read(path, &len);

	memset(ci, 0, sizeof(*ci));
	if (pem == NULL) {
		*error_r = "cannot read the certificate";
		return -1;
	}
	d.data = (unsigned char *)pem;
	d.size = (unsigned)len;
	if (gnutls_x509_crt_init(&crt) < 0 ||
	    gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM) < 0) {
		free(pem);
		*error_r = "not a PEM certificate";
		return -1;
	}
	free(pem);
	ci->not_after = gnutls_x509_crt_get_expiration_time(crt);
	for (unsigned seq = 0;; seq++) {
		char name[256];
		size_t size = sizeof(name) - 1;
		int rc = gnutls_x509_crt_get_subject_alt_name(crt, seq, name,
		    &size, NULL);

		if (rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		if (rc != GNUTLS_SAN_DNSNAME)
			continue;
		name[size] = '\0';
		ci->names = xrealloc(ci->names,
		    (ci->nnames + 1) * sizeof(*ci->names));
		ci->names[ci->nnames++] = xstrdup(name);
	}
	if (gnutls_x509_crt_get_issuer_dn3(crt, &dn, 0) >= 0) {
		ci->issuer = xmalloc(dn.size + 1);
		memcpy(ci->issuer, dn.data, dn.size);
		ci->issuer[dn.size] = '\0';
		gnutls_free(dn.data);
	}
	gnutls_x509_crt_deinit(crt);
	return 0;
}

bool
acme_cert_covers(const struct acme_certinfo *ci, const char *const *names,
    size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t j;

		for (j = 0; j < ci->nnames; j++)
			if (strcasecmp(ci->names[j], names[i]) == 0)
				break;
		if (j == ci->nnames)
			return false;
	}
	return true;
}

void
acme_certinfo_clear(struct acme_certinfo *ci)
{
	for (size_t i = 0; i < ci->nnames; i++)
		free(ci->names[i]);
	free(ci->names);
	free(ci->issuer);
	memset(ci, 0, sizeof(*ci));
}
