/*
 * Where the ACME state lives: "acme/" beside the store. carteiroctl acme
 * writes it (account key, state, HTTP-01 key authorizations under
 * "challenges/") and carteiro-webd reads the challenges from it, so both
 * derive the path here.
 */
#ifndef CARTEIRO_ACME_PATH_H
#define CARTEIRO_ACME_PATH_H

/* "<dir of store_path>/acme" when name is NULL, else ".../acme/<name>"
 * (caller frees). */
char *acme_path(const char *store_path, const char *name);

/* An RFC 8555 8.3 token: base64url characters, 1 to 128 of them. */
int acme_token_ok(const char *token);

#endif
