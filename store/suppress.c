/*
 * The suppress table (suppress.h). Rare statements (a hard bounce, a
 * RCPT to a remote address, carteiroctl): prepared per call.
 */
#include "store/suppress.h"
#include "store/store_internal.h"

#include <stdlib.h>

#include "common/util.h"

static void store_suppress_row(sqlite3_stmt *, struct store_suppress *);

int
store_suppress_add(struct store *st, const char *address, int64_t created,
    const char *reason, const char *origin)
{
	sqlite3_stmt *s;
	int rc;

	rc = sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO suppress"
	    "(address, created, reason, origin) VALUES (?1, ?2, ?3, ?4)", -1,
	    &s, NULL);
	if (rc != SQLITE_OK)
		return store_fail_db(st, rc, "suppress");
	store_bind_text(s, 1, address);
	sqlite3_bind_int64(s, 2, created);
	store_bind_text(s, 3, reason);
	store_bind_text(s, 4, origin);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return store_fail_db(st, rc, "suppress");
	return 0;
}

int
store_suppress_del(struct store *st, const char *address)
{
	sqlite3_stmt *s;
	int rc;

	rc = sqlite3_prepare_v2(st->db, "DELETE FROM suppress WHERE "
	    "address = ?1", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return store_fail_db(st, rc, "suppress");
	store_bind_text(s, 1, address);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return store_fail_db(st, rc, "suppress");
	return sqlite3_changes(st->db) > 0 ? 0 : 1;
}

static void
store_suppress_row(sqlite3_stmt *s, struct store_suppress *row)
{
	row->address = xstrdup((const char *)sqlite3_column_text(s, 0));
	row->created = sqlite3_column_int64(s, 1);
	row->reason = xstrdup((const char *)sqlite3_column_text(s, 2));
	row->origin = xstrdup((const char *)sqlite3_column_text(s, 3));
}

int
store_suppress_find(struct store *st, const char *address, int64_t since,
    struct store_suppress *row_r)
{
	sqlite3_stmt *s;
	int rc, ret;

	rc = sqlite3_prepare_v2(st->db, "SELECT address, created, reason, "
	    "origin FROM suppress WHERE address = ?1 AND created >= ?2", -1,
	    &s, NULL);
	if (rc != SQLITE_OK)
		return store_fail_db(st, rc, "suppress");
	store_bind_text(s, 1, address);
	sqlite3_bind_int64(s, 2, since);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		store_suppress_row(s, row_r);
		ret = 0;
	} else if (rc == SQLITE_DONE)
		ret = 1;
	else
		ret = store_fail_db(st, rc, "suppress");
	sqlite3_finalize(s);
	return ret;
}

int
store_suppress_list(struct store *st, struct store_suppress **rows_r,
    size_t *n_r)
{
	sqlite3_stmt *s;
	struct store_suppress *rows = NULL;
	size_t n = 0, cap = 0;
	int rc;

	*rows_r = NULL;
	*n_r = 0;
	rc = sqlite3_prepare_v2(st->db, "SELECT address, created, reason, "
	    "origin FROM suppress ORDER BY address", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return store_fail_db(st, rc, "suppress");
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			rows = xrealloc(rows, cap * sizeof(*rows));
		}
		store_suppress_row(s, &rows[n++]);
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
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
