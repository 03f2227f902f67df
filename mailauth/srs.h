/*
 * SRS, the Sender Rewriting Scheme (Shevek's scheme as libsrs2 and
 * postsrsd implement it): the envelope sender of a copy we forward to
 * another domain becomes an address at one of our domains, so that the
 * destination's SPF check sees our domain, and a bounce to it comes back
 * to us, is verified and goes on to the original sender. Pure functions
 * on a key (no I/O, no store): where the secret lives and which mail is
 * rewritten is smtpd/forward.c's.
 *
 *   SRS0=HHHHHHHH=TT=orig-domain=orig-local@our-domain
 *   SRS1=HHHHHHHH=first-forwarder==HHH=TT=orig-domain=orig-local@our-domain
 *
 * HHHHHHHH: the first 40 bits of HMAC-SHA256(secret, tag and fields,
 * lower-cased, each ended by a NUL) in RFC 4648 base32, so the hash
 * survives an MTA that changes the case of the local part. TT: the day
 * (unix time / 86400) modulo 1024 in two base32 digits (libsrs2's stamp).
 */
#ifndef CARTEIRO_SRS_H
#define CARTEIRO_SRS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SRS_SECRET_LEN		32	/* bytes of key */
#define SRS_SECRET_HEX_LEN	(2 * SRS_SECRET_LEN)
#define SRS_HASH_LEN		8	/* base32 digits: 40 bits */
/* Bounces come back within days; postsrsd's default is 21 days. */
#define SRS_MAX_AGE_DAYS	21

struct srs {
	unsigned char secret[SRS_SECRET_LEN];
};

enum srs_result {
	SRS_OK,
	SRS_NOT_SRS,		/* local part does not start SRS0= / SRS1= */
	SRS_BAD_SYNTAX,		/* SRS tag but fields missing or malformed */
	SRS_BAD_HASH,		/* not made with our secret, or altered */
	SRS_EXPIRED,		/* genuine but older than SRS_MAX_AGE_DAYS */
};

/* A new random secret as SRS_SECRET_HEX_LEN hex digits and a NUL
 * (GnuTLS key-level randomness). 0, or -1 if the generator failed. */
int srs_secret_generate(char hex[SRS_SECRET_HEX_LEN + 1]);

/* Load a secret written by srs_secret_generate. 0, or -1 if hex is not
 * SRS_SECRET_HEX_LEN hex digits. */
int srs_init(struct srs *srs, const char *hex);

/* Wipe the key. */
void srs_clear(struct srs *srs);

/* True if the local part of address starts with SRS0= or SRS1=
 * (any case): the shape, not whether it verifies. */
bool srs_is_srs(const char *address);

/*
 * The envelope sender for a copy of mail from sender forwarded through
 * domain (ours), at unix time now: SRS0 for an ordinary sender, SRS1 for
 * one that is already SRS0 or SRS1 (libsrs2's "guarded" scheme: the
 * first forwarder's domain and its opaque part are kept, so a bounce
 * goes back through it). Caller frees. NULL for the null sender "" or a
 * sender without "@domain": those are never rewritten.
 */
char *srs_forward(const struct srs *srs, const char *sender,
    const char *domain, int64_t now);

/*
 * Undo srs_forward for address (an SRS address at one of our domains;
 * the domain itself is not checked here). SRS_OK and *orig_r (caller
 * frees): local@domain for SRS0, the first forwarder's SRS0 address for
 * SRS1. Otherwise *orig_r is NULL. The hash is compared in constant time
 * and case-insensitively; an SRS0 stamp more than SRS_MAX_AGE_DAYS old
 * (or in the future) is SRS_EXPIRED.
 */
enum srs_result srs_reverse(const struct srs *srs, const char *address,
    int64_t now, char **orig_r);

/* "ok", "not-srs", "syntax", "bad-hash", "expired": for logs. */
const char *srs_result_str(enum srs_result r);

#endif
