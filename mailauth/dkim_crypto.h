/*
 * DKIM's cryptography, the one place mail authentication touches GnuTLS
 * (as common/tls.c is TLS's): SHA-256, base64, rsa-sha256 (RFC 6376) and
 * ed25519-sha256 (RFC 8463) keys, signing and verifying. Keys are the
 * text carteiroctl dkim keygen stores: RSA as PKCS#8 PEM, Ed25519 as the
 * base64 of the 32-byte seed (RFC 8032 private key).
 */
#ifndef CARTEIRO_DKIM_CRYPTO_H
#define CARTEIRO_DKIM_CRYPTO_H

#include "mailauth/dkim.h"

#include <stddef.h>

#define DKIM_SHA256_LEN 32
/* RFC 8301 3.2: RSA keys under 1024 bits never verify. */
#define DKIM_RSA_MIN_BITS 1024

/* SHA-256 in pieces. dkim_hash_new aborts when out of memory. */
struct dkim_hash;
struct dkim_hash *dkim_hash_new(void);
void dkim_hash_update(struct dkim_hash *h, const void *data, size_t len);
/* The digest into out; frees h. */
void dkim_hash_final(struct dkim_hash *h, unsigned char *out);
/* Frees h without a digest (NULL is fine). */
void dkim_hash_free(struct dkim_hash *h);

/* Base64 (RFC 4648, padded) of data. Caller frees. */
char *dkim_b64_encode(const void *data, size_t len);
/* Decode, ignoring whitespace (DNS records, folded tags). Caller frees;
 * NULL if not base64. */
unsigned char *dkim_b64_decode(const char *s, size_t *len_r);

/* A private key. NULL if the text does not parse. */
struct dkim_privkey;
struct dkim_privkey *dkim_privkey_load(enum dkim_alg alg, const char *text);
void dkim_privkey_free(struct dkim_privkey *k);
/* A new key as text to store (caller frees). RSA: 2048 bits. 0 / -1. */
int dkim_privkey_generate(enum dkim_alg alg, char **text_r);
/* An RSA key of `bits` bits, PKCS#8 PEM (caller frees). Tests use it for
 * keys verifiers must refuse. 0 / -1. */
int dkim_privkey_generate_rsa(unsigned bits, char **text_r);
/* The p= value of the key record (RFC 6376 3.6.1, RFC 8463 4): base64 of
 * the DER SubjectPublicKeyInfo (RSA) or the raw 32 bytes (Ed25519).
 * Caller frees. 0 / -1. */
int dkim_privkey_public_b64(const struct dkim_privkey *k, char **b64_r);
/* Sign the header hash input data: RSASSA-PKCS1-v1_5 over SHA-256, or
 * Ed25519 over SHA-256(data) (RFC 8463 3). *sig_r: caller frees. 0 / -1. */
int dkim_privkey_sign(const struct dkim_privkey *k, const void *data,
    size_t len, unsigned char **sig_r, size_t *siglen_r);

/* Check sig over data with the key record's decoded p= value. DKIM_PASS,
 * DKIM_FAIL (also for an RSA key under DKIM_RSA_MIN_BITS), DKIM_PERMERROR
 * (unusable key) or DKIM_NEUTRAL; *why_r a static reason on anything but
 * a pass. */
enum dkim_result dkim_pubkey_verify(enum dkim_alg alg,
    const unsigned char *pk, size_t pklen, const void *data, size_t len,
    const unsigned char *sig, size_t siglen, const char **why_r);

#endif
