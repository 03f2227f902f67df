/*
 * The PostgreSQL (libpq) side of the database layer (store/db.h): one
 * pg_ function per db_ function, called by the db_ dispatch when
 * db_kind() is DB_KIND_PG. Same result codes (DB_OK, DB_ROW, DB_DONE,
 * DB_BUSY ...), same statement model, same lifetimes as db.h says.
 * Only store/db_pg*.c include <libpq-fe.h>.
 *
 * What PostgreSQL adds to db.h's contract:
 * - SQL: ?N and bare ? become $N (outside string literals, quoted
 *   identifiers and comments). A statement that is exactly BEGIN
 *   IMMEDIATE or BEGIN EXCLUSIVE becomes BEGIN (READ COMMITTED: rows are
 *   locked as they are written, writers are not serialized as in SQLite);
 *   BEGIN DEFERRED becomes BEGIN ISOLATION LEVEL REPEATABLE READ (one
 *   snapshot for the whole transaction, as a SQLite read transaction);
 *   plain BEGIN stays.
 * - Parameters: int64 is sent as int8, blobs as bytea (binary), text and
 *   NULL with no type, so that PostgreSQL infers it from the context (a
 *   text parameter compared with a citext column compares
 *   case-insensitively). A parameter whose type nothing determines
 *   (SELECT ... WHERE ?1 IS NULL alone) fails with "could not determine
 *   data type of parameter" inside a transaction; outside one the
 *   statement is retried with such parameters typed text. Write
 *   CAST(?1 AS TEXT) in such places.
 * - Results come as text: column_int64 parses them (t/f are 1/0, a
 *   numeric such as sum() is read up to its decimal point), bytea comes
 *   back decoded (column_blob; column_text gives the same bytes
 *   NUL-terminated).
 * - A statement that fails inside a transaction aborts the whole
 *   transaction (SQLite only fails the statement): every later statement
 *   fails until ROLLBACK, or ROLLBACK TO a savepoint taken before it.
 *   COMMIT of such a transaction returns DB_ERROR (PostgreSQL rolls it
 *   back).
 * - Errors: SQLSTATE 40001, 40P01, 55P03, 57014 -> DB_BUSY; 53100 ->
 *   DB_FULL; 53200 -> DB_NOMEM; class 23 -> DB_CONSTRAINT; a lost
 *   connection (class 08, 57P01..57P03, or libpq's CONNECTION_BAD) ->
 *   DB_IOERR; anything else DB_ERROR.
 * - A lost connection: inside a transaction every call fails with
 *   DB_IOERR (and pg_in_transaction stays true) until the caller rolls
 *   back (ROLLBACK then returns DB_OK: the server has already dropped the
 *   transaction). The next call outside a transaction reconnects once
 *   (PQreset, no waiting loop) and prepares the persistent statements
 *   again as they are used; if the server is still away it fails with
 *   DB_IOERR and the call after it tries again. A BEGIN or a SELECT whose
 *   connection turns out to be lost outside a transaction is run again
 *   once on the new connection (it changed nothing); other statements
 *   are not (the server may have run them).
 */
#ifndef CARTEIRO_STORE_DB_PG_H
#define CARTEIRO_STORE_DB_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db_pg;
struct db_pg_stmt;

/* ---- connections (db_pg.c) ---- */

/*
 * Connect with a libpq connection string or URI (refused if it holds a
 * password: that comes from passfile, PGPASSFILE or a service file). The
 * session gets synchronous_commit = on, client_encoding UTF8,
 * standard_conforming_strings on, bytea_output hex. Needs PostgreSQL 13
 * or newer. NULL and *error_r (static per thread) on failure.
 */
struct db_pg *pg_open(const char *conninfo, const char **error_r);
/* Closes the connection (the server rolls back an open transaction).
 * Statements are finalized first by the caller. NULL is ignored. */
void pg_close(struct db_pg *db);
/* The PGconn * (for PostgreSQL-only calls such as COPY), borrowed; it
 * changes after a reconnect. */
void *pg_handle(struct db_pg *db);
const char *pg_errmsg(struct db_pg *db);
/* Run SQL without parameters (several statements separated by ';' in one
 * round trip, one implicit transaction when outside BEGIN). */
int pg_exec(struct db_pg *db, const char *sql);
/* Rows of the last INSERT/UPDATE/DELETE/MERGE (PQcmdTuples). */
int64_t pg_changes(struct db_pg *db);
/* 1 for the first connection, +1 for each reconnect. */
unsigned pg_generation(struct db_pg *db);
/* PQtransactionStatus: in a transaction (also an aborted one, and one
 * lost with the connection, until the caller rolls back). */
bool pg_in_transaction(struct db_pg *db);
/* lock_timeout for this session (and after every reconnect); 0 = wait
 * forever. */
void pg_set_busy_timeout(struct db_pg *db, int ms);

/* ---- statements (db_pg_stmt.c) ---- */

/*
 * persistent: PQprepare'd on its connection at its first step (under a
 * name unique to the connection, again after a reconnect) and run with
 * PQexecPrepared; otherwise every step runs PQexecParams. DB_OK, or
 * DB_ERROR (too many parameters).
 */
int pg_prepare(struct db_pg *db, const char *sql, bool persistent,
    struct db_pg_stmt **stmt_r);
/* Also DEALLOCATEs a prepared statement. NULL is ignored. */
void pg_finalize(struct db_pg_stmt *s);
int pg_reset(struct db_pg_stmt *s);
void pg_clear_bindings(struct db_pg_stmt *s);
/* DB_OK, or DB_ERROR for an index outside 1..parameters. Text with len
 * >= 0 is copied (libpq wants it NUL-terminated); text with len < 0 and
 * blobs are borrowed until reset or the end of the statement. */
int pg_bind_int64(struct db_pg_stmt *s, int i, int64_t v);
int pg_bind_text(struct db_pg_stmt *s, int i, const char *v, int len);
int pg_bind_blob(struct db_pg_stmt *s, int i, const void *v, size_t len);
int pg_bind_null(struct db_pg_stmt *s, int i);
/* The first step runs the statement and buffers its whole result; then
 * one DB_ROW per row and DB_DONE. A step after DB_DONE runs it again. */
int pg_step(struct db_pg_stmt *s);
int pg_column_type(struct db_pg_stmt *s, int i);
int64_t pg_column_int64(struct db_pg_stmt *s, int i);
const char *pg_column_text(struct db_pg_stmt *s, int i);
const void *pg_column_blob(struct db_pg_stmt *s, int i);
size_t pg_column_bytes(struct db_pg_stmt *s, int i);

/* ---- SQL text (db_pg_sql.c) ---- */

/* Most parameters a statement may have (SQLite's default limit). */
#define PG_SQL_MAX_PARAMS 32766

/* What a statement is, for the transaction and reconnect rules. */
enum pg_sql_kind {
	PG_SQL_OTHER,
	PG_SQL_BEGIN,		/* BEGIN, START TRANSACTION */
	PG_SQL_COMMIT,		/* COMMIT, END */
	PG_SQL_ROLLBACK,	/* ROLLBACK of the whole transaction */
	PG_SQL_SELECT,		/* SELECT or VALUES: run again after a
				 * reconnect */
};

/*
 * sql with ?N and ? turned into $N and the BEGIN variants mapped as
 * above; *nparams_r = the highest parameter number. Caller frees. NULL
 * (*error_r static) when a parameter number is 0 or over
 * PG_SQL_MAX_PARAMS.
 */
char *pg_sql_translate(const char *sql, int *nparams_r,
    const char **error_r);
/* The kind of a (translated) statement, by its first keywords. */
enum pg_sql_kind pg_sql_kind(const char *sql);

#endif
