/* acme/ internals shared by its files: the key's GnuTLS handles. */
#ifndef CARTEIRO_ACME_INT_H
#define CARTEIRO_ACME_INT_H

#include <gnutls/abstract.h>
#include <gnutls/x509.h>

struct acme_key {
	gnutls_x509_privkey_t x509;	/* export, CSR, JWK */
	gnutls_privkey_t priv;		/* signing; borrows x509 */
};

#endif
