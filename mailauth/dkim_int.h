/*
 * Internals shared by the DKIM files (dkim.h): the message being
 * canonicalised and its parsed signatures. dkim_canon.c owns the message
 * (body hashes, header block, fields), dkim_sign.c keys and signing,
 * dkim_verify.c signature fields and checking, dkim_crypto.c the
 * cryptography.
 */
#ifndef CARTEIRO_DKIM_INT_H
#define CARTEIRO_DKIM_INT_H

#include "mailauth/dkim.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dkim_hash;
struct dkim_privkey;

/* The header block kept for signing and verifying is bounded: past this
 * nothing can be signed or verified. */
#define DKIM_MAX_HEADER (256 * 1024)

struct dkim_key {
	enum dkim_alg alg;
	char *domain;
	char *selector;
	struct dkim_privkey *pk;
};

/* Body canonicaliser state for one canonicalisation. */
struct dkim_bodycanon {
	struct dkim_hash *sha;		/* NULL once final */
	unsigned char buf[4096];	/* batches bytes before hashing */
	size_t buflen;
	uint64_t pending_empty;		/* empty lines held back */
	bool line_content;		/* current line has output */
	bool pending_wsp;		/* relaxed: WSP run not yet written */
	bool any;			/* anything hashed at all */
};

struct dkim_field {
	size_t off;			/* in m->hdr */
	size_t len;			/* with the final CRLF */
	size_t namelen;
	bool used;			/* taken by the current h= walk */
};

struct dkim_sig {
	char *d, *s, *a, *b, *bh, *c, *h, *l;
	size_t field;			/* index in m->fields */
	bool ok;			/* parsed */
};

struct dkim_msg {
	char *hdr;			/* raw header block, CRLF lines */
	size_t hdrlen, hdrcap;
	bool in_body;
	bool overflow;
	bool at_line_start;
	bool pending_cr;
	struct dkim_bodycanon relaxed, simple;
	bool finished;
	unsigned char bh_relaxed[32], bh_simple[32];
	struct dkim_field *fields;
	size_t nfields;
	struct dkim_sig *sigs;
	size_t nsigs;
	bool sigs_parsed;
};

/* dkim_canon.c: end of input: final body hashes, the fields split. */
void dkim_finish(struct dkim_msg *m);
/*
 * The header hash input: the fields named in h (colon list), each taken
 * from the bottom up, canonicalised, then the signature field sigf with
 * its b= value emptied and no trailing CRLF. Caller frees *data_r. 0 / -1.
 */
int dkim_header_data(struct dkim_msg *m, const char *h, bool relaxed,
    const char *sigf, size_t siglen, char **data_r, size_t *len_r);

#endif
