/*
 * The suppress table (suppress.h). Rare statements (a hard bounce, a
 * RCPT to a remote address, carteiroctl): prepared per call.
 */
#include "store/suppress.h"
#include "store/store_internal.h"

#include <stdlib.h>

#include "common/util.h"

static void store_suppress_row(struct db_stmt *, struct store_suppress *);

int
store_suppress_add(struct store *st, const char *address, int64_t created,
    const char *reason, const char *origin)
{
	struct db_stmt *s;
	int rc;

	rc = db_prepare(st->db, "INSERT INTO suppress"
	    "(address, created, reason, origin) VALUES (?1, ?2, ?3, ?4) "
	    "ON CONFLICT(address) DO UPDATE SET created = excluded.created, "
	    "reason = excluded.reason, origin = excluded.origin", false, &s);
	if (rc != DB_OK)
		return store_fail_db(st, rc, "suppress");
	store_bind_text(s, 1, address);
	db_bind_int64(s, 2, created);
	store_bind_text(s, 3, reason);
	store_bind_text(s, 4, origin);
	rc = db_step(s);
	db_finalize(s);
	if (rc != DB_DONE)
		return store_fail_db(st, rc, "suppress");
	return 0;
}

int
store_suppress_del(struct store *st, const char *address)
{
	struct db_stmt *s;
	int rc;

	rc = db_prepare(st->db, "DELETE FROM suppress WHERE "
	    "address = ?1", false, &s);
	if (rc != DB_OK)
		return store_fail_db(st, rc, "suppress");
	store_bind_text(s, 1, address);
	rc = db_step(s);
	db_finalize(s);
	if (rc != DB_DONE)
		return store_fail_db(st, rc, "suppress");
	return db_changes(st->db) > 0 ? 0 : 1;
}

static void
store_suppress_row(struct db_stmt *s, struct store_suppress *row)
{
	row->address = xstrdup(db_column_text(s, 0));
	row->created = db_column_int64(s, 1);
	row->reason = xstrdup(db_column_text(s, 2));
	row->origin = xstrdup(db_column_text(s, 3));
}

int
store_suppress_find(struct store *st, const char *address, int64_t since,
    struct store_suppress *row_r)
{
	struct db_stmt *s;
	int rc, ret;

	rc = db_prepare(st->db, "SELECT address, created, reason, "
	    "origin FROM suppress WHERE address = ?1 AND created >= ?2", false, &s);
	if (rc != DB_OK)
		return store_fail_db(st, rc, "suppress");
	store_bind_text(s, 1, address);
	db_bind_int64(s, 2, since);
	rc = db_step(s);
	if (rc == DB_ROW) {
		store_suppress_row(s, row_r);
		ret = 0;
	} else if (rc == DB_DONE)
		ret = 1;
	else
		ret = store_fail_db(st, rc, "suppress");
	db_finalize(s);
	return ret;
}

int
store_suppress_list(struct store *st, struct store_suppress **rows_r,
    size_t *n_r)
{
	struct db_stmt *s;
	struct store_suppress *rows = NULL;
	size_t n = 0, cap = 0;
	int rc;

	*rows_r = NULL;
	*n_r = 0;
	rc = db_prepare(st->db, "SELECT address, created, reason, "
	    "origin FROM suppress ORDER BY address", false, &s);
	if (rc != DB_OK)
		return store_fail_db(st, rc, "suppress");
	while ((rc = db_step(s)) == DB_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			rows = xrealloc(rows, cap * sizeof(*rows));
		}
		store_suppress_row(s, &rows[n++]);
	}
	db_finalize(s);
	if (rc != DB_DONE) {
		store_suppress_free(rows, n);
		return store_fail_db(st, rc, "suppress");
	}
	*rows_r = rows;
	*n_r = n;
	return 0;
}

void
store_suppress_clear(struct store_suppress *row)
{
	free(row->address);
	free(row->reason);
	free(row->origin);
	row->address = row->reason = row->origin = NULL;
}

void
store_suppress_free(struct store_suppress *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		store_suppress_clear(&rows[i]);
	free(rows);
}
