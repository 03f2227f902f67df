/*
 * store/db.h on SQLite, and the dispatch to the PostgreSQL side
 * (store/db_pg.c) by connection kind. The SQLite calls are thin: the
 * statement model of db.h is SQLite's own.
 */
#include "store/db.h"
#include "common/util.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct db {
	enum db_kind kind;
	sqlite3 *sq;
};

struct db_stmt {
	struct db *db;
	sqlite3_stmt *sq;
};

static __thread char db_open_err[256];

struct db *
db_open_sqlite(const char *path, int flags, const char **error_r)
{
	struct db *db;
	sqlite3 *sq = NULL;
	int rc;

	rc = sqlite3_open_v2(path, &sq, flags, NULL);
	if (rc != SQLITE_OK) {
		snprintf(db_open_err, sizeof(db_open_err), "cannot open %s: %s",
		    path, sq != NULL ? sqlite3_errmsg(sq) : sqlite3_errstr(rc));
		*error_r = db_open_err;
		sqlite3_close_v2(sq);
		return NULL;
	}
	sqlite3_extended_result_codes(sq, 1);
	db = xcalloc(1, sizeof(*db));
	db->kind = DB_KIND_SQLITE;
	db->sq = sq;
	return db;
}

struct db *
db_open_pg(const char *conninfo, const char **error_r)
{
	(void)conninfo;
	*error_r = "this carteiro was built without PostgreSQL support";
	return NULL;
}

void
db_close(struct db *db)
{
	if (db == NULL)
		return;
	if (db->sq != NULL && !sqlite3_get_autocommit(db->sq))
		sqlite3_exec(db->sq, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close_v2(db->sq);
	free(db);
}

enum db_kind
db_kind(struct db *db)
{
	return db->kind;
}

void *
db_sqlite_handle(struct db *db)
{
	return db->kind == DB_KIND_SQLITE ? db->sq : NULL;
}

const char *
db_errmsg(struct db *db)
{
	return sqlite3_errmsg(db->sq);
}

int
db_system_errno(struct db *db)
{
	return sqlite3_system_errno(db->sq);
}

int
db_exec(struct db *db, const char *sql)
{
	return sqlite3_exec(db->sq, sql, NULL, NULL, NULL) & 0xff;
}

int64_t
db_changes(struct db *db)
{
	return sqlite3_changes64(db->sq);
}

bool
db_in_transaction(struct db *db)
{
	return !sqlite3_get_autocommit(db->sq);
}

void
db_set_busy_timeout(struct db *db, int ms)
{
	sqlite3_busy_timeout(db->sq, ms);
}

int
db_prepare(struct db *db, const char *sql, bool persistent,
    struct db_stmt **stmt_r)
{
	sqlite3_stmt *sq;
	int rc;

	rc = sqlite3_prepare_v3(db->sq, sql, -1,
	    persistent ? SQLITE_PREPARE_PERSISTENT : 0, &sq, NULL);
	if (rc != SQLITE_OK)
		return rc & 0xff;
	*stmt_r = xcalloc(1, sizeof(**stmt_r));
	(*stmt_r)->db = db;
	(*stmt_r)->sq = sq;
	return DB_OK;
}

void
db_finalize(struct db_stmt *s)
{
	if (s == NULL)
		return;
	sqlite3_finalize(s->sq);
	free(s);
}

int
db_reset(struct db_stmt *s)
{
	sqlite3_reset(s->sq);
	return DB_OK;
}

void
db_clear_bindings(struct db_stmt *s)
{
	sqlite3_clear_bindings(s->sq);
}

int
db_bind_int64(struct db_stmt *s, int i, int64_t v)
{
	return sqlite3_bind_int64(s->sq, i, v) & 0xff;
}

int
db_bind_text(struct db_stmt *s, int i, const char *v, int len)
{
	return sqlite3_bind_text(s->sq, i, v, len, SQLITE_STATIC) & 0xff;
}

int
db_bind_blob(struct db_stmt *s, int i, const void *v, size_t len)
{
	/* A zero-length blob is not NULL: SQLite binds NULL for a NULL
	 * pointer, so give it a valid one. */
	return sqlite3_bind_blob64(s->sq, i, v != NULL ? v : "", len,
	    SQLITE_STATIC) & 0xff;
}

int
db_bind_null(struct db_stmt *s, int i)
{
	return sqlite3_bind_null(s->sq, i) & 0xff;
}

int
db_step(struct db_stmt *s)
{
	int rc = sqlite3_step(s->sq);

	return rc == SQLITE_ROW || rc == SQLITE_DONE ? rc : rc & 0xff;
}

int
db_column_type(struct db_stmt *s, int i)
{
	return sqlite3_column_type(s->sq, i);
}

int64_t
db_column_int64(struct db_stmt *s, int i)
{
	return sqlite3_column_int64(s->sq, i);
}

const char *
db_column_text(struct db_stmt *s, int i)
{
	return (const char *)sqlite3_column_text(s->sq, i);
}

const void *
db_column_blob(struct db_stmt *s, int i)
{
	return sqlite3_column_blob(s->sq, i);
}

size_t
db_column_bytes(struct db_stmt *s, int i)
{
	return (size_t)sqlite3_column_bytes(s->sq, i);
}
