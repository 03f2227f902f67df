/*
 * Copying a live SQLite store into an empty store, row for row with the
 * ids kept (carteiroctl store copy --to URL: SQLite to PostgreSQL; a
 * SQLite target works the same way). Every table of the schema is named
 * in store/copy.c's list, in an order that satisfies the foreign keys;
 * a table the list does not know refuses the copy, so a new migration
 * cannot be forgotten here (tests/unit/test_store_copy.c checks the
 * current schema against the list).
 */
#ifndef CARTEIRO_STORE_COPY_H
#define CARTEIRO_STORE_COPY_H

#include <stdint.h>

struct store;

/* Rows copied. */
struct store_copy_counts {
	int64_t users;
	int64_t messages;	/* mailbox rows */
	int64_t bodies;
	int64_t queue;		/* queue rows */
	int64_t rows;		/* every table together */
};

/*
 * The tables of st's database that store_copy does not handle: 0 when
 * there are none, 1 with *table_r (caller frees) naming the first one,
 * -1 on error (store_error).
 */
int store_copy_unknown_table(struct store *st, char **table_r);

/*
 * Copy src (a SQLite store at the current schema version) into dst:
 * migrate dst to the current schema, refuse it when it already holds
 * domains, users, aliases, mail, queued mail or imports, then copy every
 * table in one read snapshot of src (daemons may go on writing to it)
 * and one write transaction on dst: a failure leaves dst as empty as it
 * was. The small tables of server state (settings such as the SRS
 * secret, suppressions, relay throttling, MTA-STS policies, monitor
 * listings) replace what dst held. On PostgreSQL the identity sequences
 * are moved past the copied ids. 0 with *counts_r, or -1 with
 * store_error(dst) set (also when reading src failed).
 */
int store_copy(struct store *src, struct store *dst,
    struct store_copy_counts *counts_r);

#endif
