/*
 * Server-side retention (RFC 2449 EXPIRE, issue 14): per-user expire
 * overrides, the first-retrieved time pop3d records at QUIT, and the
 * candidates for its expiry sweep. Deleting them is store_mailbox_delete.
 */
#ifndef CARTEIRO_STORE_RETENTION_H
#define CARTEIRO_STORE_RETENTION_H

#include <stddef.h>
#include <stdint.h>

struct store;

#define STORE_EXPIRE_NEVER	(-1)	/* keep mail forever */
#define STORE_EXPIRE_DEFAULT	(-2)	/* the server's [pop3d] expire */

/* Set address's expire: seconds after the first RETR (0 = at QUIT),
 * STORE_EXPIRE_NEVER or STORE_EXPIRE_DEFAULT. 0, 1 no such user, -1. */
int store_user_set_expire(struct store *st, const char *address,
    int64_t seconds);
/* The user's own setting (STORE_EXPIRE_DEFAULT when none). 0, 1 no such
 * user, -1. */
int store_user_get_expire(struct store *st, const char *address,
    int64_t *seconds_r);

/* QUIT: mailbox rows ids of address were retrieved (RETR, whole) in the
 * session: their first_retrieved becomes now where it is still NULL.
 * A unit of its own inside the caller's transaction. 0 / -1. */
int store_mailbox_retrieved(struct store *st, const char *address,
    const int64_t *ids, size_t n, int64_t now);

/* A message due for expiry. */
struct store_expired {
	int64_t id;			/* mailbox row */
	char address[320];		/* users.address */
	char uidl[72];
	int64_t first_retrieved;
};
/*
 * Up to max messages with id > after_id, in id order, retrieved at least
 * their user's expire ago (users.expire, else default_s; -1 = never) as
 * of now. Never a message without first_retrieved. Caller frees *v_r.
 * 0 / -1.
 */
int store_expire_candidates(struct store *st, int64_t default_s,
    int64_t now, int64_t after_id, unsigned max,
    struct store_expired **v_r, size_t *n_r);

#endif
