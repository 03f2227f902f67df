/*
 * Checking a store's consistency (carteiroctl verify): SQLite's
 * integrity and foreign key checks plus carteiro's own invariants.
 */
#ifndef CARTEIRO_STORE_VERIFY_H
#define CARTEIRO_STORE_VERIFY_H

struct store;

/* One problem found: a line of plain text (borrowed for the call). */
typedef void store_verify_cb(const char *problem, void *arg);

/*
 * Check, inside one read snapshot: PRAGMA integrity_check and
 * foreign_key_check; every body's refs equal to the mailbox and queue
 * rows that use it; chunks without a body or beside an inline body; a
 * chunked body whose chunks do not add up to its size; UIDLs unique per
 * user, valid (RFC 1939 7: 1..70 characters 0x21..0x7e), and a
 * generated one never at or past the user's next_uid (it would be given
 * again); users.used equal to the sum of the mailbox sizes. cb gets
 * each problem. 0 with *problems_r (0 = consistent), or -1 when the
 * checks themselves fail (store_error).
 */
int store_verify(struct store *st, store_verify_cb *cb, void *arg,
    unsigned *problems_r);

#endif
