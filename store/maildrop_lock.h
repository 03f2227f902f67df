/*
 * Maildrop locks across nodes ([pop3d] lock_session on several pop3d on
 * one PostgreSQL database, issue 18 item 3). pop3d keeps its in-process
 * lock list as the single-node guard; these add the database's view.
 */
#ifndef CARTEIRO_STORE_MAILDROP_LOCK_H
#define CARTEIRO_STORE_MAILDROP_LOCK_H

struct store;

/*
 * Take the lock of address (compared lower-cased) for this connection:
 * 0 taken, 1 held by another connection (another node), -1 store error.
 * PostgreSQL: a session-level advisory lock on a 64-bit hash of the
 * address; it goes with the connection (a node that dies, or a dropped
 * connection, frees it). SQLite: always 0 (one node per file; pop3d's own
 * list is the lock).
 */
int store_maildrop_lock(struct store *st, const char *address);
/* Release what store_maildrop_lock took. 0, 1 if this connection did not
 * hold it (PostgreSQL: the connection was lost and made again since, and
 * the lock with it), or -1. */
int store_maildrop_unlock(struct store *st, const char *address);

#endif
