/*
 * Internals shared by store/db_pg.c (the connection) and store/db_pg_stmt.c
 * (statements). Only these files include <libpq-fe.h>.
 */
#ifndef CARTEIRO_STORE_DB_PG_INTERNAL_H
#define CARTEIRO_STORE_DB_PG_INTERNAL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/db_pg.h"

struct db_pg {
	PGconn *conn;
	char err[512];		/* pg_errmsg() */
	int64_t changes;	/* pg_changes() */
	/* Bumped by every reconnect: a persistent statement prepared under
	 * an older generation is prepared again. */
	unsigned generation;
	unsigned next_name;	/* statement names on this connection */
	int busy_ms;		/* lock_timeout */
	/* The connection is gone: the next call outside a transaction
	 * reconnects. */
	bool lost;
	/* ... and a transaction was open on it: calls fail until the
	 * caller's ROLLBACK. */
	bool tx_broken;
};

/*
 * Before running a statement of this kind: DB_OK to go on, DB_DONE when
 * there is nothing to run and it succeeded (a ROLLBACK of a transaction
 * the lost connection took with it), or an error (a broken transaction,
 * a failed reconnect).
 */
int pg_conn_ready(struct db_pg *db, enum pg_sql_kind kind);
/* A transaction is open on the live connection (idle or aborted in it),
 * read before a call so that its loss can be told apart. */
bool pg_conn_tx_open(struct db_pg *db);
/*
 * The outcome of one libpq call: DB_OK (pg_changes updated for a
 * command) or the mapped error code with pg_errmsg() set; a lost
 * connection marks it lost (and the transaction broken if was_in_tx).
 * Does not free res (NULL: libpq failed without a result).
 */
int pg_conn_result(struct db_pg *db, const PGresult *res, bool was_in_tx,
    enum pg_sql_kind kind);
/*
 * After rc from a statement of this kind: true when it is worth running
 * again once on a new connection (a BEGIN or SELECT that found the
 * connection lost outside a transaction) and the reconnect worked; false
 * otherwise (*rc_r updated if the reconnect failed).
 */
bool pg_conn_retry(struct db_pg *db, int *rc_r, bool was_in_tx,
    enum pg_sql_kind kind);
void pg_conn_seterr(struct db_pg *db, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), nonnull(2)));

#endif
