/*
 * Maildrop locks across nodes (store/maildrop_lock.h). PostgreSQL's
 * advisory locks: pg_try_advisory_lock never waits, so the event loop
 * can take one. The key is hashtextextended(lower(address), seed), a
 * 64-bit hash computed by the server (the same on every node); the seed
 * keeps it apart from the writer lock's key (store_pg.c), and a 64-bit
 * collision between two addresses is not a practical concern. Logins are
 * rare, so the statements are prepared per call, not cached.
 */
#include "store/maildrop_lock.h"
#include "store/store_internal.h"

/* hashtextextended seed: "pop3" in ASCII. */
#define STORE_MAILDROP_LOCK_SEED "1886352435"

static int store_maildrop_lock_sql(struct store *, const char *,
    const char *, const char *);
static int store_maildrop_advisory(struct store *, const char *, bool);

/* Run sql (one row, one 0/1 column) for address: the value, or -1. */
static int
store_maildrop_lock_sql(struct store *st, const char *sql,
    const char *address, const char *what)
{
	struct db_stmt *s;
	int rc, v;

	rc = db_prepare(st->db, sql, false, &s);
	if (rc != DB_OK)
		return store_fail_db(st, rc, what);
	store_bind_text(s, 1, address);
	rc = db_step(s);
	if (rc != DB_ROW) {
		if (rc == DB_DONE)
			store_fail(st, "%s: no row", what);
		else
			store_fail_db(st, rc, what);
		db_finalize(s);
		return -1;
	}
	v = db_column_int(s, 0);
	db_finalize(s);
	return v;
}

/* Take (lock) or drop one: 0, 1 when held elsewhere (lock) or not held
 * (unlock), -1 on error. */
static int
store_maildrop_advisory(struct store *st, const char *address, bool lock)
{
	int v;

	if (db_kind(st->db) != DB_KIND_PG)
		return 0;
	v = store_maildrop_lock_sql(st, lock ?
	    "SELECT CASE WHEN pg_try_advisory_lock(hashtextextended("
	    "lower(?1), " STORE_MAILDROP_LOCK_SEED ")) THEN 1 ELSE 0 END" :
	    "SELECT CASE WHEN pg_advisory_unlock(hashtextextended("
	    "lower(?1), " STORE_MAILDROP_LOCK_SEED ")) THEN 1 ELSE 0 END",
	    address, lock ? "maildrop lock" : "maildrop unlock");
	if (v < 0)
		return -1;
	return v == 1 ? 0 : 1;
}

int
store_maildrop_lock(struct store *st, const char *address)
{
	return store_maildrop_advisory(st, address, true);
}

int
store_maildrop_lock_probe(struct store *st)
{
	int rc;

	if (db_kind(st->db) != DB_KIND_PG)
		return 0;
	if ((rc = db_exec(st->db, "SELECT 1")) != DB_OK)
		return store_fail_db(st, rc, "maildrop lock probe");
	return 0;
}

unsigned
store_maildrop_lock_epoch(struct store *st)
{
	return db_generation(st->db);
}

int
store_maildrop_unlock(struct store *st, const char *address)
{
	return store_maildrop_advisory(st, address, false);
}
