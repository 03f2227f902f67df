/*
 * DKIM (RFC 6376) signing and signature checking, relaxed/relaxed,
 * sha256, for ed25519-sha256 (RFC 8463) and rsa-sha256. The message is
 * fed in pieces as it streams (the body is hashed on the fly, only the
 * header block is kept, bounded), so a 25 MB message costs no more memory
 * than a small one. Key files and DNS are the caller's business.
 * Files: dkim_canon.c, dkim_sign.c, dkim_verify.c, dkim_crypto.c (GnuTLS).
 */
#ifndef CARTEIRO_DKIM_H
#define CARTEIRO_DKIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum dkim_alg {
	DKIM_ALG_ED25519,
	DKIM_ALG_RSA,
	DKIM_ALG_COUNT
};

/* "ed25519" / "rsa" <-> enum. -1 if unknown. */
int dkim_alg_parse(const char *s, enum dkim_alg *alg_r);
const char *dkim_alg_name(enum dkim_alg alg);

/*
 * A new private key as text to store in a key file (caller frees), and the
 * TXT record value to publish ("v=DKIM1; k=ed25519; p=..."). RSA: 2048
 * bits, PKCS#8 PEM. ed25519: base64 of the 32-byte seed. 0 / -1.
 */
int dkim_keygen(enum dkim_alg alg, char **privkey_r, char **txt_r);
/* The TXT record value for an existing private key. 0 / -1. */
int dkim_txt_for_key(enum dkim_alg alg, const char *privkey, char **txt_r);

struct dkim_key;
/* Parse a private key (text as made by dkim_keygen). NULL on error. */
struct dkim_key *dkim_key_load(enum dkim_alg alg, const char *domain,
    const char *selector, const char *privkey);
void dkim_key_free(struct dkim_key *k);

/* Canonicalising a message: feed every byte of it, in any pieces. */
struct dkim_msg;
struct dkim_msg *dkim_msg_new(void);
void dkim_msg_free(struct dkim_msg *m);
void dkim_msg_update(struct dkim_msg *m, const void *data, size_t len);

/*
 * After the whole message was fed: the "DKIM-Signature: ..." header field
 * (folded, ending in CRLF) for key k, signed at time `now`. Caller frees.
 * NULL on error. May be called for several keys on the same dkim_msg.
 */
char *dkim_sign(struct dkim_msg *m, const struct dkim_key *k, int64_t now);

/*
 * Verifying: the number of DKIM-Signature fields in the message, and for
 * the i-th (0 = topmost) its d= and s= (borrowed until dkim_msg_free) so
 * the caller can fetch "s._domainkey.d" TXT. NULL when the field does not
 * even parse.
 */
size_t dkim_msg_signature_count(struct dkim_msg *m);
int dkim_msg_signature_ids(struct dkim_msg *m, size_t i, const char **d_r,
    const char **s_r);
/* The d=, s= and a= of the i-th field as far as they are there, also when
 * the field does not parse (NULL for each one absent; borrowed until
 * dkim_msg_free): for showing a signature (carteiroctl dkim verify). */
void dkim_msg_signature_info(struct dkim_msg *m, size_t i, const char **d_r,
    const char **s_r, const char **a_r);

/*
 * Header access after the whole message was fed: the number of fields
 * called name, and the unfolded value of the idx-th (0 = topmost) with
 * surrounding whitespace trimmed (caller frees; NULL if absent).
 */
size_t dkim_msg_header_count(struct dkim_msg *m, const char *name);
char *dkim_msg_header_value(struct dkim_msg *m, const char *name, size_t idx);

enum dkim_result {
	DKIM_PASS,
	DKIM_FAIL,	/* signature or body hash wrong */
	DKIM_NEUTRAL,	/* unsupported algorithm/canon, syntax error */
	DKIM_PERMERROR,	/* key record unusable, revoked */
};
/* Check signature i against the TXT record text of its key. *why_r is a
 * static string for the log / Authentication-Results comment. */
enum dkim_result dkim_verify(struct dkim_msg *m, size_t i, const char *txt,
    const char **why_r);
/* "pass", "fail", "neutral", "permerror" (static). */
const char *dkim_result_str(enum dkim_result r);
/*
 * Whether a TXT record at a selector name is a DKIM key record (RFC 6376
 * 3.6.1): its v= tag is "DKIM1", or it has no v= tag and has a p= tag.
 * Anything else there (a site verification token, an SPF record) is not
 * ours to judge.
 */
bool dkim_is_key_record(const char *txt);
/*
 * Check signature i against every TXT record found at its selector name
 * (txt[0..n-1], as the resolver returned them): the key records among
 * them are tried in order, the first pass wins, else the first key
 * record's result stands. None at all: DKIM_PERMERROR.
 */
enum dkim_result dkim_verify_records(struct dkim_msg *m, size_t i,
    const char *const *txt, size_t n, const char **why_r);

#endif
