/*
 * Forwarding through SRS, smtpd's policy around mailauth/srs.h: the
 * secret (generated once, kept in the store's settings), which envelope
 * sender a forwarded copy gets, which RCPT of an SRS address is accepted
 * and where a DSN about a forwarded copy goes. The SRS domain is the
 * domain of the local address that forwarded (alias or catch-all): it is
 * a local domain, so its MX is us and a bounce to it is accepted, and its
 * SPF already names us because its users' mail leaves from here; the
 * server hostname need be neither.
 */
#ifndef CARTEIRO_FORWARD_H
#define CARTEIRO_FORWARD_H

#include <stdint.h>

#include "mailauth/srs.h"

struct store;

#define FORWARD_SETTING	"srs_secret"

/* Read the SRS secret from the store, generating and storing it the first
 * time. 0, or -1 and *error_r (static or the store's error). */
int forward_srs_load(struct store *st, struct srs *srs, const char **error_r);

/*
 * The envelope sender for the copies of mail from mail_from that an
 * address at domain (local) forwards to remote recipients: an SRS
 * address at domain, or NULL when mail_from stays as it is (the null
 * sender; a sender in one of our own domains, which our SPF covers; a
 * sender SRS cannot wrap). Caller frees. -1 only on a store error.
 */
int forward_sender(struct store *st, const struct srs *srs,
    const char *mail_from, const char *domain, int64_t now, char **sender_r);

/*
 * RCPT of address: 0 if it is not an SRS address at a local domain
 * (resolve it as usual); 1 and *orig_r (caller frees) if it is one we
 * made, recently enough: the mail goes on to *orig_r; 2 and *res_r if it
 * is one of ours that does not verify or has expired; -1 store error.
 */
int forward_rcpt(struct store *st, const struct srs *srs, const char *address,
    int64_t now, char **orig_r, enum srs_result *res_r);

/*
 * Where a DSN about a queued message with envelope sender mail_from
 * goes: 0 to mail_from itself; 1 to *orig_r (caller frees), when
 * mail_from is our SRS address for a forwarded copy (checked as of
 * created, the time the copy was queued, so a long queue lifetime does
 * not expire it); 2 nowhere, it does not verify (*res_r); -1 store error.
 */
int forward_dsn_rcpt(struct store *st, const struct srs *srs,
    const char *mail_from, int64_t created, char **orig_r,
    enum srs_result *res_r);

#endif
