/*
 * The database layer under store/: one connection and its prepared
 * statements, the same calls for SQLite and PostgreSQL (libpq). The rest of
 * store/ writes SQL that both engines accept and talks only to this; the
 * few engine-specific things (SQLite's WAL and pragmas, backup, integrity
 * check; PostgreSQL's reconnect) live behind db_kind() in the files that
 * need them. The calls mirror SQLite's C API, so that the statement model
 * (prepare once, bind, step rows, reset) is the same on both.
 *
 * SQL conventions both backends accept: parameters are written ?1, ?2 ...
 * (PostgreSQL gets $1, $2 ...); integers are bound and read as int64; text
 * is UTF-8; bytes are blobs (bytea). Case-insensitive columns are declared
 * so in each backend's schema (COLLATE NOCASE, citext), not in queries.
 * New rows report their id with RETURNING id, never last_insert_rowid().
 */
#ifndef CARTEIRO_STORE_DB_H
#define CARTEIRO_STORE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;
struct db_stmt;

enum db_kind {
	DB_KIND_SQLITE,
	DB_KIND_PG,
};

/*
 * Result codes: db_step returns DB_ROW or DB_DONE; everything else returns
 * DB_OK; failures return one of the error codes below (the values are
 * SQLite's primary result codes, so SQLite's pass through unchanged).
 */
#define DB_OK		0
#define DB_ERROR	1	/* anything not listed here */
#define DB_BUSY		5	/* lock wait over, serialization failure,
				 * deadlock: try again later */
#define DB_NOMEM	7
#define DB_IOERR	10	/* the disk failed (SQLite), the server
				 * connection is lost (PostgreSQL) */
#define DB_FULL		13	/* no space (SQLITE_FULL, 53100 disk_full) */
#define DB_LOCKED	6	/* SQLite only */
#define DB_CONSTRAINT	19	/* a UNIQUE, FOREIGN KEY, CHECK violation */
#define DB_ROW		100
#define DB_DONE		101

/* Column types (db_column_type); only NULL is told apart reliably on
 * both. */
#define DB_INTEGER	1
#define DB_TEXT		3
#define DB_BLOB		4
#define DB_NULL		5

/* ---- connections ---- */

/* SQLite: open (and create) the file; flags are sqlite3_open_v2's. NULL
 * and *error_r (static per thread) on failure. */
struct db *db_open_sqlite(const char *path, int flags, const char **error_r);
/*
 * PostgreSQL: connect with a libpq connection string (a password comes
 * from passfile or a service file, never from the string; db_open_pg
 * refuses a password= in it). Sets synchronous_commit = on for the
 * session. NULL and *error_r on failure.
 */
struct db *db_open_pg(const char *conninfo, const char **error_r);
/* Rolls back an open transaction, finalizes nothing (the caller finalizes
 * its statements first). NULL is ignored. */
void db_close(struct db *db);
enum db_kind db_kind(struct db *db);
/* The underlying sqlite3 * (DB_KIND_SQLITE only), for the SQLite-specific
 * calls (pragmas, WAL, backup). */
void *db_sqlite_handle(struct db *db);

/* Last error message of this connection (borrowed). */
const char *db_errmsg(struct db *db);
/* errno of the last failed I/O (SQLite), 0 when unknown. */
int db_system_errno(struct db *db);
/* Run SQL without results (several statements separated by ';'). */
int db_exec(struct db *db, const char *sql);
/* Rows changed by the last INSERT/UPDATE/DELETE stepped to its end. */
int64_t db_changes(struct db *db);
/* true inside BEGIN ... COMMIT. */
bool db_in_transaction(struct db *db);
/* Which connection this is: 1, and on PostgreSQL +1 each time it was made
 * again after a loss. What the server kept for the old one (session
 * advisory locks) went with it. */
unsigned db_generation(struct db *db);
/* SQLite: busy_timeout; PostgreSQL: lock_timeout for the session. */
void db_set_busy_timeout(struct db *db, int ms);

/* ---- statements ---- */

/* Prepare one statement. persistent: kept for many uses (cached by the
 * caller). DB_OK or an error code (db_errmsg says why). */
int db_prepare(struct db *db, const char *sql, bool persistent,
    struct db_stmt **stmt_r);
void db_finalize(struct db_stmt *s);
/* Back to before the first step (bindings kept); DB_OK. */
int db_reset(struct db_stmt *s);
void db_clear_bindings(struct db_stmt *s);

/* Bind parameter i (1-based). Text and blobs must stay valid and unchanged
 * until the statement is reset or stepped to its end (SQLITE_STATIC). len
 * < 0: text up to its NUL. */
int db_bind_int64(struct db_stmt *s, int i, int64_t v);
int db_bind_text(struct db_stmt *s, int i, const char *v, int len);
int db_bind_blob(struct db_stmt *s, int i, const void *v, size_t len);
int db_bind_null(struct db_stmt *s, int i);

/* DB_ROW (a row to read), DB_DONE, or an error code. */
int db_step(struct db_stmt *s);

/* Columns of the current row (0-based). Pointers stay valid until the
 * next step or reset. */
int db_column_type(struct db_stmt *s, int i);
int64_t db_column_int64(struct db_stmt *s, int i);
/* NULL for SQL NULL. */
const char *db_column_text(struct db_stmt *s, int i);
const void *db_column_blob(struct db_stmt *s, int i);
/* Bytes in the text or blob of column i. */
size_t db_column_bytes(struct db_stmt *s, int i);

static inline int
db_column_int(struct db_stmt *s, int i)
{
	return (int)db_column_int64(s, i);
}

static inline int
db_bind_int(struct db_stmt *s, int i, int v)
{
	return db_bind_int64(s, i, v);
}

#endif
