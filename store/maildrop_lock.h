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
/*
 * The locks this connection holds are held as long as this number stays
 * what it was when they were taken. It changes when the store made its
 * PostgreSQL connection again (a server restart, a dropped connection):
 * the server freed every lock with the old one, and another node may
 * have taken them since, so each must be taken again (or given up).
 * Always 1 on SQLite.
 */
unsigned store_maildrop_lock_epoch(struct store *st);
/* One round trip to the server, so that a lost connection is found (and
 * made again, the epoch with it) now rather than by the next statement:
 * before acting on a lock that must still be held. 0, or -1 on error.
 * Nothing on SQLite. */
int store_maildrop_lock_probe(struct store *st);

#endif
