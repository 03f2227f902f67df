/*
 * RFC 3461 DSN parameters: the pure parser of NOTIFY and ORCPT (RCPT) and
 * RET and ENVID (MAIL), xtext decoding, and the text forms the relay sends
 * on to a next hop that offers DSN. No I/O: address.c calls it for each
 * parameter, tx.c keeps the results, bounce.c honours them.
 */
#ifndef CARTEIRO_DSN_H
#define CARTEIRO_DSN_H

#include <stdbool.h>
#include <stddef.h>

/* RFC 3461 4.1 NOTIFY, as a bitmask; 0 = no NOTIFY parameter. The queue
 * stores it (queue_rcpt.dsn_notify): never renumber. */
enum dsn_notify {
	DSN_NOTIFY_NEVER = 1 << 0,
	DSN_NOTIFY_SUCCESS = 1 << 1,
	DSN_NOTIFY_FAILURE = 1 << 2,
	DSN_NOTIFY_DELAY = 1 << 3,
};

/* RFC 3461 4.3 RET. Stored (queue.dsn_ret): never renumber. */
enum dsn_ret {
	DSN_RET_NONE = 0,	/* no RET: headers only (our choice, 4.3) */
	DSN_RET_FULL = 1,
	DSN_RET_HDRS = 2,
};

/* RFC 3461 4.4: an ENVID is at most 100 characters; 4.2: an ORCPT value
 * at most 500. Both limits apply to the value as sent (xtext). */
#define DSN_ENVID_MAX	100
#define DSN_ORCPT_MAX	500

struct dsn_mail {
	enum dsn_ret ret;
	char *envid;		/* owned: the xtext as received, NULL if none */
};

struct dsn_rcpt {
	unsigned notify;	/* enum dsn_notify bits, 0 if none */
	char *orcpt;		/* owned: "addr-type;xtext" as received, NULL
				 * if none */
};

enum dsn_param {
	DSN_PARAM_OTHER,	/* not a DSN keyword: the caller's business */
	DSN_PARAM_OK,		/* parsed into the struct */
	DSN_PARAM_BAD,		/* bad or repeated value: 501 5.5.4, *error_r */
};

/*
 * One MAIL (RET, ENVID) or RCPT (NOTIFY, ORCPT) parameter: keyword k of
 * klen bytes, value v of vlen bytes (v NULL when there is no "="). On
 * DSN_PARAM_BAD *error_r is a static reply text and d keeps what it had.
 */
enum dsn_param dsn_param_mail(struct dsn_mail *d, const char *k, size_t klen,
    const char *v, size_t vlen, const char **error_r);
enum dsn_param dsn_param_rcpt(struct dsn_rcpt *d, const char *k, size_t klen,
    const char *v, size_t vlen, const char **error_r);
/* Free the strings and zero; accept a zeroed struct. */
void dsn_mail_clear(struct dsn_mail *d);
void dsn_rcpt_clear(struct dsn_rcpt *d);
/* Deep copy of src into dst (dst is overwritten, not freed). */
void dsn_rcpt_copy(struct dsn_rcpt *dst, const struct dsn_rcpt *src);

/*
 * RFC 3461 4: xtext = *( xchar / "+" 2HEXDIGIT-upper ), xchar = "!".."~"
 * but "+" and "=". Decodes len bytes of s into a new string (caller
 * frees), or NULL when s is not xtext or decodes to a byte outside
 * min..126 (4.2 and 4.4: ENVID and ORCPT are printable US-ASCII, space
 * included: min 32).
 */
char *dsn_xtext_decode(const char *s, size_t len, int min);

/* Whether notify asks for the notice kind what (one DSN_NOTIFY_* bit).
 * Without NOTIFY we send FAILURE and DELAY notices (RFC 3461 4.1 lets the
 * MTA choose; 0 means exactly that) and never SUCCESS. */
bool dsn_notify_wants(unsigned notify, unsigned what);
/* "NEVER" or "SUCCESS,FAILURE,DELAY" (as set) into buf (>= 32 bytes);
 * "" for 0. */
const char *dsn_notify_str(unsigned notify, char *buf, size_t size);
/* "FULL", "HDRS", or NULL for DSN_RET_NONE. */
const char *dsn_ret_str(int ret);

#endif
