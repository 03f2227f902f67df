/*
 * The store on PostgreSQL: what differs from SQLite at the connection
 * level (store/store.c keeps the rest). Opening, the schema version, and
 * how transactions begin.
 *
 * Writers are serialised across the whole database, as SQLite's one
 * writer is: a write transaction takes one transaction-scoped advisory
 * lock first. Every read-then-write in store/ was written for that rule
 * (UIDL and quota accounting, refcounts and gc, queue claims), and group
 * commit keeps the cost to one lock per batch, not per message. The lock
 * goes with the COMMIT (or with the connection, if the node dies).
 */
#include "store/store_internal.h"
#include "store/schema.h"
#include "store/schema_pg.h"
#include "common/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* pg_advisory_xact_lock key of the writer lock: "cart" in ASCII. */
#define STORE_PG_WRITER_LOCK "1667330676"

const char *
store_pg_locator(const char *locator)
{
	if (strncmp(locator, "postgresql://", 13) == 0 ||
	    strncmp(locator, "postgres://", 11) == 0)
		return locator;
	if (strncmp(locator, "postgresql:", 11) == 0)
		return locator + 11;
	return NULL;
}

bool
store_locator_is_server(const char *locator)
{
	return store_pg_locator(locator) != NULL;
}

struct store *
store_pg_open(const char *conninfo, const char **error_r)
{
	struct store *st;

	st = xcalloc(1, sizeof(*st));
	if ((st->db = db_open_pg(conninfo, error_r)) == NULL) {
		free(st);
		return NULL;
	}
	db_set_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
	return st;
}

int
store_pg_begin(struct store *st, bool write)
{
	int rc;

	if (!write)
		return store_run(st, STMT_TX_BEGIN_READ,
		    "BEGIN ISOLATION LEVEL REPEATABLE READ");
	/* Both in one round trip (the simple query protocol runs a list of
	 * statements): the delivery writer begins one per batch. */
	rc = db_exec(st->db, "BEGIN; SELECT pg_advisory_xact_lock("
	    STORE_PG_WRITER_LOCK ")");
	if (rc != DB_OK) {
		store_fail_db(st, rc, "begin");
		if (db_in_transaction(st->db))
			db_exec(st->db, "ROLLBACK");
		return -1;
	}
	return 0;
}

char *
store_pg_id_array(const int64_t *ids, size_t n)
{
	/* "-9223372036854775808," is 21 bytes at most per id. */
	char *list = xmalloc(n * 21 + 3), *p = list;

	*p++ = '{';
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "%s%" PRId64, i > 0 ? "," : "", ids[i]);
	*p++ = '}';
	*p = '\0';
	return list;
}

int
store_pg_version(struct store *st, int *version_r)
{
	struct db_stmt *s;
	int rc;

	/* An empty database has no schema_version table yet: 0 (the
	 * table must be looked up first: a query naming a missing table
	 * fails as a whole). */
	*version_r = 0;
	for (int step = 0; step < 2; step++) {
		rc = db_prepare(st->db, step == 0 ?
		    "SELECT to_regclass('schema_version') IS NOT NULL" :
		    "SELECT version FROM schema_version", false, &s);
		if (rc != DB_OK)
			return store_fail_db(st, rc, "schema version");
		rc = db_step(s);
		if (rc != DB_ROW) {
			if (rc == DB_DONE)
				store_fail(st, "schema version: no row");
			else
				store_fail_db(st, rc, "schema version");
			db_finalize(s);
			return -1;
		}
		if (step == 1)
			*version_r = db_column_int(s, 0);
		else if (db_column_int(s, 0) == 0)
			step = 2;	/* no table: version 0 */
		db_finalize(s);
	}
	return 0;
}

size_t
store_migration_count(struct store *st)
{
	return db_kind(st->db) == DB_KIND_PG ?
	    store_schema_pg_migration_count() :
	    store_schema_migration_count();
}

const char *
store_migration(struct store *st, size_t version)
{
	return db_kind(st->db) == DB_KIND_PG ?
	    store_schema_pg_migration(version) :
	    store_schema_migration(version);
}
