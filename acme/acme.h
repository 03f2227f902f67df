/*
 * The ACME (RFC 8555) client behind "carteiroctl acme" (whose HTTPS client
 * "carteiroctl check" uses too): an ECDSA P-256 key
 * type (account and certificate keys), JWS signing (RFC 7515 flattened
 * JSON, ES256), the CSR and what an installed certificate says, an HTTPS
 * client on libcurl, and the order flow with HTTP-01 challenges. Errors
 * are static strings or a static buffer, valid until the next call: this
 * is a command, run once, not a daemon.
 */
#ifndef CARTEIRO_ACME_H
#define CARTEIRO_ACME_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* ---- key.c: ECDSA P-256 keys ---- */

struct acme_key;

/* A new key. NULL and *error_r on failure. */
struct acme_key *acme_key_generate(const char **error_r);
/* The key in a PEM file (PKCS#8 or SEC1). NULL and *error_r. */
struct acme_key *acme_key_load(const char *path, const char **error_r);
/* The key as unencrypted PKCS#8 PEM (caller frees). NULL on failure. */
char *acme_key_pem(const struct acme_key *k);
void acme_key_free(struct acme_key *k);

/* ---- file.c ---- */

/* Write data to path atomically: a temporary file beside it (mode),
 * fsync, rename over path. 0 / -1 and *error_r. */
int acme_file_write(const char *path, const void *data, size_t len,
    unsigned mode, const char **error_r);
/* The whole of a small file (at most 1 MiB), NUL-terminated; NULL. */
char *acme_file_read(const char *path, size_t *len_r);

/* ---- jws.c ---- */

/* base64url without padding (RFC 7515 2), caller frees. */
char *acme_b64url(const void *data, size_t len);
/* The public JWK in RFC 7638 canonical form (caller frees). */
char *acme_jwk(const struct acme_key *k);
/* The RFC 7638 SHA-256 thumbprint, base64url (caller frees). */
char *acme_thumbprint(const struct acme_key *k);
/*
 * The flattened JWS of payload ("" for POST-as-GET) for url, signed ES256
 * with k; the header carries kid, or the jwk when kid is NULL (newAccount).
 * Caller frees; NULL and *error_r.
 */
char *acme_jws(const struct acme_key *k, const char *kid, const char *nonce,
    const char *url, const char *payload, const char **error_r);

/* ---- cert.c: CSR and installed certificates ---- */

/* A DER CSR for names (the first is the subject CN) signed with k, as
 * base64url (caller frees). NULL and *error_r. */
char *acme_csr(const struct acme_key *k, const char *const *names,
    size_t n, const char **error_r);

struct acme_certinfo {
	time_t not_after;
	char **names;		/* subjectAltName DNS names */
	size_t nnames;
	char *issuer;		/* DN, text */
};

/* The first certificate of a PEM file. 0 / -1 and *error_r. */
int acme_cert_info(const char *path, struct acme_certinfo *ci,
    const char **error_r);
/* Whether the certificate names every one of names (case-insensitive). */
bool acme_cert_covers(const struct acme_certinfo *ci,
    const char *const *names, size_t n);
void acme_certinfo_clear(struct acme_certinfo *ci);

/* ---- http.c: HTTPS on libcurl ---- */

struct acme_http;

struct acme_resp {
	long status;
	char *body;		/* NUL-terminated, at most ACME_HTTP_MAX */
	size_t len;
	char *location;		/* Location header or NULL */
	char *nonce;		/* Replay-Nonce header or NULL */
	char *content_type;
	size_t max;		/* internal: the body limit of the request */
};

#define ACME_HTTP_MAX	(1024 * 1024)

/* ca_file NULL: the system's trust store. */
struct acme_http *acme_http_new(const char *ca_file);
void acme_http_free(struct acme_http *h);
/* Answers longer than max bytes fail (default ACME_HTTP_MAX). */
void acme_http_set_max(struct acme_http *h, size_t max);
/* Connect to addr for host:port instead of resolving host (libcurl's
 * CURLOPT_RESOLVE), for the requests that follow; addr NULL: forget. */
void acme_http_resolve(struct acme_http *h, const char *host,
    unsigned port, const char *addr);
/*
 * GET url (body NULL), or POST body as application/jose+json, or HEAD
 * (head). Fills r (clear it with acme_resp_clear). 0 when an HTTP answer
 * came (any status), -1 and *error_r when none did.
 */
int acme_http_do(struct acme_http *h, const char *url, const char *body,
    bool head, struct acme_resp *r, const char **error_r);
void acme_resp_clear(struct acme_resp *r);

/* ---- order.c: account, order, HTTP-01, finalize ---- */

struct acme_order_req {
	const char *directory;	/* URL */
	const char *email;	/* NULL: no contact */
	const char *ca_file;	/* NULL: system trust */
	struct acme_key *account;
	const char *challenge_dir;	/* TOKEN files for the web server */
	const char *const *names;
	size_t nnames;
	unsigned poll_s;	/* how long to wait for validation */
};

/*
 * Register (or find) the account, order a certificate for the names,
 * answer the HTTP-01 challenges through challenge_dir and finalize with a
 * new key. On success 0, *key_r the certificate key and *chain_r the PEM
 * chain (caller frees both); -1 and *error_r.
 */
int acme_issue(const struct acme_order_req *req, struct acme_key **key_r,
    char **chain_r, const char **error_r);

#endif
