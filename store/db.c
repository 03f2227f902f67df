/*
 * store/db.h on SQLite, and the dispatch to the PostgreSQL side
 * (store/db_pg*.c, the pg_ functions) by connection kind. The SQLite calls
 * are thin: the statement model of db.h is SQLite's own.
 */
#include "store/db.h"
#include "store/db_pg.h"
#include "common/util.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct db {
	enum db_kind kind;
	sqlite3 *sq;		/* DB_KIND_SQLITE */
	struct db_pg *pg;	/* DB_KIND_PG */
};

struct db_stmt {
	struct db *db;
	sqlite3_stmt *sq;	/* one of the two */
	struct db_pg_stmt *pg;
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
	struct db_pg *pg;
	struct db *db;

	if ((pg = pg_open(conninfo, error_r)) == NULL)
		return NULL;
	db = xcalloc(1, sizeof(*db));
	db->kind = DB_KIND_PG;
	db->pg = pg;
	return db;
}

void
db_close(struct db *db)
{
	if (db == NULL)
		return;
	if (db->pg != NULL)
		pg_close(db->pg);
	else {
		if (db->sq != NULL && !sqlite3_get_autocommit(db->sq))
			sqlite3_exec(db->sq, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_close_v2(db->sq);
	}
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
	return db->sq;
}

const char *
db_errmsg(struct db *db)
{
	return db->pg != NULL ? pg_errmsg(db->pg) : sqlite3_errmsg(db->sq);
}

int
db_system_errno(struct db *db)
{
	return db->pg != NULL ? 0 : sqlite3_system_errno(db->sq);
}

int
db_exec(struct db *db, const char *sql)
{
	if (db->pg != NULL)
		return pg_exec(db->pg, sql);
	return sqlite3_exec(db->sq, sql, NULL, NULL, NULL) & 0xff;
}

int64_t
db_changes(struct db *db)
{
	return db->pg != NULL ? pg_changes(db->pg) : sqlite3_changes64(db->sq);
}

bool
db_in_transaction(struct db *db)
{
	return db->pg != NULL ? pg_in_transaction(db->pg) :
	    !sqlite3_get_autocommit(db->sq);
}

unsigned
db_generation(struct db *db)
{
	return db->pg != NULL ? pg_generation(db->pg) : 1;
}

void
db_set_busy_timeout(struct db *db, int ms)
{
	if (db->pg != NULL)
		pg_set_busy_timeout(db->pg, ms);
	else
		sqlite3_busy_timeout(db->sq, ms);
}

int
db_prepare(struct db *db, const char *sql, bool persistent,
    struct db_stmt **stmt_r)
{
	struct db_pg_stmt *pg = NULL;
	sqlite3_stmt *sq = NULL;
	int rc;

	if (db->pg != NULL)
		rc = pg_prepare(db->pg, sql, persistent, &pg);
	else
		rc = sqlite3_prepare_v3(db->sq, sql, -1,
		    persistent ? SQLITE_PREPARE_PERSISTENT : 0, &sq, NULL) &
		    0xff;
	if (rc != DB_OK)
		return rc;
	*stmt_r = xcalloc(1, sizeof(**stmt_r));
	(*stmt_r)->db = db;
	(*stmt_r)->sq = sq;
	(*stmt_r)->pg = pg;
	return DB_OK;
}

void
db_finalize(struct db_stmt *s)
{
	if (s == NULL)
		return;
	if (s->pg != NULL)
		pg_finalize(s->pg);
	else
		sqlite3_finalize(s->sq);
	free(s);
}

int
db_reset(struct db_stmt *s)
{
	if (s->pg != NULL)
		return pg_reset(s->pg);
	sqlite3_reset(s->sq);
	return DB_OK;
}

void
db_clear_bindings(struct db_stmt *s)
{
	if (s->pg != NULL)
		pg_clear_bindings(s->pg);
	else
		sqlite3_clear_bindings(s->sq);
}

int
db_bind_int64(struct db_stmt *s, int i, int64_t v)
{
	if (s->pg != NULL)
		return pg_bind_int64(s->pg, i, v);
	return sqlite3_bind_int64(s->sq, i, v) & 0xff;
}

int
db_bind_text(struct db_stmt *s, int i, const char *v, int len)
{
	if (s->pg != NULL)
		return pg_bind_text(s->pg, i, v, len);
	return sqlite3_bind_text(s->sq, i, v, len, SQLITE_STATIC) & 0xff;
}

int
db_bind_blob(struct db_stmt *s, int i, const void *v, size_t len)
{
	if (s->pg != NULL)
		return pg_bind_blob(s->pg, i, v, len);
	/* A zero-length blob is not NULL: SQLite binds NULL for a NULL
	 * pointer, so give it a valid one. */
	return sqlite3_bind_blob64(s->sq, i, v != NULL ? v : "", len,
	    SQLITE_STATIC) & 0xff;
}

int
db_bind_null(struct db_stmt *s, int i)
{
	if (s->pg != NULL)
		return pg_bind_null(s->pg, i);
	return sqlite3_bind_null(s->sq, i) & 0xff;
}

int
db_step(struct db_stmt *s)
{
	int rc;

	if (s->pg != NULL)
		return pg_step(s->pg);
	rc = sqlite3_step(s->sq);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? rc : rc & 0xff;
}

int
db_column_type(struct db_stmt *s, int i)
{
	if (s->pg != NULL)
		return pg_column_type(s->pg, i);
	return sqlite3_column_type(s->sq, i);
}

int64_t
db_column_int64(struct db_stmt *s, int i)
{
	if (s->pg != NULL)
		return pg_column_int64(s->pg, i);
	return sqlite3_column_int64(s->sq, i);
}

const char *
db_column_text(struct db_stmt *s, int i)
{
	if (s->pg != NULL)
		return pg_column_text(s->pg, i);
	return (const char *)sqlite3_column_text(s->sq, i);
}

const void *
db_column_blob(struct db_stmt *s, int i)
{
	if (s->pg != NULL)
		return pg_column_blob(s->pg, i);
	return sqlite3_column_blob(s->sq, i);
}

size_t
db_column_bytes(struct db_stmt *s, int i)
{
	if (s->pg != NULL)
		return pg_column_bytes(s->pg, i);
	return (size_t)sqlite3_column_bytes(s->sq, i);
}
