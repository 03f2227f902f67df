/*
 * A PostgreSQL connection behind store/db.h (libpq): connect and set the
 * session up, run SQL without parameters, map results and SQLSTATEs to
 * DB_ codes, and the lost-connection rules (store/db_pg.h): a transaction
 * that loses its connection fails until rolled back; the next call
 * outside a transaction reconnects once.
 */
#include "store/db_pg_internal.h"
#include "store/db.h"
#include "common/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int pg_conn_setup(struct db_pg *);
static int pg_conn_reconnect(struct db_pg *);
static int pg_conn_state_code(const char *);
static bool pg_conn_state_is_lost(const char *);
static void pg_conn_seterr_res(struct db_pg *, const PGresult *);
static bool pg_conninfo_has_password(const char *, const char **);
static void pg_conn_notice(void *, const char *);

/* Static error text for pg_open (no struct db_pg to hold it). */
static __thread char pg_open_err[512];

static void
pg_conn_notice(void *arg, const char *message)
{
}

/* Strip the trailing newline libpq puts on its messages, in place. */
static void
pg_chomp(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
}

void
pg_conn_seterr(struct db_pg *db, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(db->err, sizeof(db->err), fmt, ap);
	va_end(ap);
	pg_chomp(db->err);
}

/* true (and *error_r) when the connection string carries a password, or
 * cannot be parsed. */
static bool
pg_conninfo_has_password(const char *conninfo, const char **error_r)
{
	PQconninfoOption *opts, *o;
	char *perr = NULL;
	bool found = false;

	if ((opts = PQconninfoParse(conninfo, &perr)) == NULL) {
		snprintf(pg_open_err, sizeof(pg_open_err),
		    "bad PostgreSQL connection string: %s",
		    perr != NULL ? perr : "out of memory");
		PQfreemem(perr);
		pg_chomp(pg_open_err);
		*error_r = pg_open_err;
		return true;
	}
	for (o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val != NULL)
			found = true;
	PQconninfoFree(opts);
	if (found) {
		snprintf(pg_open_err, sizeof(pg_open_err), "the PostgreSQL "
		    "connection string must not hold a password (use a "
		    "passfile, PGPASSFILE or a service file)");
		*error_r = pg_open_err;
	}
	return found;
}

struct db_pg *
pg_open(const char *conninfo, const char **error_r)
{
	/* Keywords after dbname override the string's, the ones before
	 * it are defaults: a reconnect to a host that does not answer
	 * gives up after 10 s unless the string says otherwise. */
	const char *const keys[] = { "connect_timeout", "dbname",
	    "fallback_application_name", NULL };
	const char *vals[] = { "10", conninfo, "carteiro", NULL };
	struct db_pg *db;
	PGconn *conn;

	if (pg_conninfo_has_password(conninfo, error_r))
		return NULL;
	conn = PQconnectdbParams(keys, vals, 1);
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
		snprintf(pg_open_err, sizeof(pg_open_err),
		    "cannot connect to PostgreSQL: %s", conn != NULL ?
		    PQerrorMessage(conn) : "out of memory");
		pg_chomp(pg_open_err);
		*error_r = pg_open_err;
		PQfinish(conn);
		return NULL;
	}
	if (PQserverVersion(conn) < 130000) {
		snprintf(pg_open_err, sizeof(pg_open_err), "PostgreSQL %d is "
		    "too old (13 or newer needed)", PQserverVersion(conn));
		*error_r = pg_open_err;
		PQfinish(conn);
		return NULL;
	}
	/* Notices (COMMIT outside a transaction ...) are not errors: not
	 * on the daemons' stderr. */
	PQsetNoticeProcessor(conn, pg_conn_notice, NULL);
	db = xcalloc(1, sizeof(*db));
	db->conn = conn;
	db->generation = 1;
	if (pg_conn_setup(db) != DB_OK) {
		snprintf(pg_open_err, sizeof(pg_open_err), "%s", db->err);
		*error_r = pg_open_err;
		pg_close(db);
		return NULL;
	}
	return db;
}

/* The session settings every connection (and reconnection) gets. */
static int
pg_conn_setup(struct db_pg *db)
{
	char sql[256];
	PGresult *res;
	int rc;

	snprintf(sql, sizeof(sql), "SET synchronous_commit = on;"
	    "SET client_encoding = 'UTF8';"
	    "SET standard_conforming_strings = on;"
	    "SET bytea_output = 'hex';"
	    "SET lock_timeout = %d", db->busy_ms);
	res = PQexec(db->conn, sql);
	rc = pg_conn_result(db, res, false, PG_SQL_OTHER);
	PQclear(res);
	return rc;
}

void
pg_close(struct db_pg *db)
{
	if (db == NULL)
		return;
	PQfinish(db->conn);
	free(db);
}

void *
pg_handle(struct db_pg *db)
{
	return db->conn;
}

const char *
pg_errmsg(struct db_pg *db)
{
	return db->err;
}

int64_t
pg_changes(struct db_pg *db)
{
	return db->changes;
}

unsigned
pg_generation(struct db_pg *db)
{
	return db->generation;
}

bool
pg_conn_tx_open(struct db_pg *db)
{
	PGTransactionStatusType t;

	if (db->lost)
		return false;
	t = PQtransactionStatus(db->conn);
	return t == PQTRANS_INTRANS || t == PQTRANS_INERROR ||
	    t == PQTRANS_ACTIVE;
}

bool
pg_in_transaction(struct db_pg *db)
{
	return db->tx_broken || pg_conn_tx_open(db);
}

void
pg_set_busy_timeout(struct db_pg *db, int ms)
{
	char sql[64];

	db->busy_ms = ms < 0 ? 0 : ms;
	if (db->lost)
		return;		/* set again by the reconnect */
	snprintf(sql, sizeof(sql), "SET lock_timeout = %d", db->busy_ms);
	(void)pg_exec(db, sql);
}

/* ---- lost connections ---- */

static int
pg_conn_reconnect(struct db_pg *db)
{
	PQreset(db->conn);
	if (PQstatus(db->conn) != CONNECTION_OK) {
		pg_conn_seterr(db, "cannot reconnect to PostgreSQL: %s",
		    PQerrorMessage(db->conn));
		return DB_IOERR;
	}
	db->lost = false;
	db->tx_broken = false;
	db->generation++;
	if (pg_conn_setup(db) != DB_OK) {
		db->lost = true;
		return DB_IOERR;
	}
	return DB_OK;
}

int
pg_conn_ready(struct db_pg *db, enum pg_sql_kind kind)
{
	if (!db->lost && PQstatus(db->conn) == CONNECTION_BAD)
		db->lost = true;
	if (!db->lost)
		return DB_OK;
	if (kind == PG_SQL_ROLLBACK) {
		/* The server dropped the transaction with the connection. */
		db->tx_broken = false;
		return DB_DONE;
	}
	if (db->tx_broken) {
		pg_conn_seterr(db, "the connection to PostgreSQL was lost "
		    "inside this transaction");
		return DB_IOERR;
	}
	return pg_conn_reconnect(db);
}

bool
pg_conn_retry(struct db_pg *db, int *rc_r, bool was_in_tx,
    enum pg_sql_kind kind)
{
	int rc;

	if (*rc_r != DB_IOERR || !db->lost || was_in_tx ||
	    (kind != PG_SQL_BEGIN && kind != PG_SQL_SELECT))
		return false;
	if ((rc = pg_conn_reconnect(db)) != DB_OK) {
		*rc_r = rc;
		return false;
	}
	return true;
}

/* ---- results and errors ---- */

/* Class 08 (connection exception) and the shutdown states of 57P. */
static bool
pg_conn_state_is_lost(const char *state)
{
	return state != NULL && (strncmp(state, "08", 2) == 0 ||
	    strcmp(state, "57P01") == 0 || strcmp(state, "57P02") == 0 ||
	    strcmp(state, "57P03") == 0);
}

static int
pg_conn_state_code(const char *state)
{
	if (state == NULL)
		return DB_ERROR;
	if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
	    strcmp(state, "55P03") == 0 || strcmp(state, "57014") == 0)
		return DB_BUSY;
	if (strcmp(state, "53100") == 0)
		return DB_FULL;
	if (strcmp(state, "53200") == 0)
		return DB_NOMEM;
	if (strncmp(state, "23", 2) == 0)
		return DB_CONSTRAINT;
	return DB_ERROR;
}

static void
pg_conn_seterr_res(struct db_pg *db, const PGresult *res)
{
	const char *msg = NULL, *state = NULL;

	if (res != NULL) {
		msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	}
	if (msg == NULL || *msg == '\0')
		msg = PQerrorMessage(db->conn);
	if (msg == NULL || *msg == '\0')
		msg = res != NULL ? PQresStatus(PQresultStatus(res)) :
		    "no result from PostgreSQL";
	if (state != NULL)
		pg_conn_seterr(db, "%s (SQLSTATE %s)", msg, state);
	else
		pg_conn_seterr(db, "%s", msg);
}

int
pg_conn_result(struct db_pg *db, const PGresult *res, bool was_in_tx,
    enum pg_sql_kind kind)
{
	const char *state, *cmd;

	switch (res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR) {
	case PGRES_COMMAND_OK:
	case PGRES_TUPLES_OK:
	case PGRES_EMPTY_QUERY:
		cmd = PQcmdStatus((PGresult *)res);
		if (kind == PG_SQL_COMMIT && strcmp(cmd, "ROLLBACK") == 0) {
			/* COMMIT of a transaction an error had aborted. */
			pg_conn_seterr(db, "the transaction was aborted by "
			    "an earlier error and rolled back");
			return DB_ERROR;
		}
		if (strncmp(cmd, "INSERT", 6) == 0 ||
		    strncmp(cmd, "UPDATE", 6) == 0 ||
		    strncmp(cmd, "DELETE", 6) == 0 ||
		    strncmp(cmd, "MERGE", 5) == 0)
			db->changes = strtoll(PQcmdTuples((PGresult *)res),
			    NULL, 10);
		return DB_OK;
	default:
		break;
	}
	pg_conn_seterr_res(db, res);
	state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) :
	    NULL;
	if (PQstatus(db->conn) == CONNECTION_BAD ||
	    pg_conn_state_is_lost(state)) {
		db->lost = true;
		if (was_in_tx)
			db->tx_broken = true;
		return DB_IOERR;
	}
	return pg_conn_state_code(state);
}

/* ---- SQL without parameters ---- */

int
pg_exec(struct db_pg *db, const char *sql)
{
	enum pg_sql_kind kind;
	const char *error;
	PGresult *res;
	bool was_in_tx;
	char *text;
	int n, rc, attempt;

	if ((text = pg_sql_translate(sql, &n, &error)) == NULL) {
		pg_conn_seterr(db, "%s", error);
		return DB_ERROR;
	}
	if (n > 0) {
		free(text);
		pg_conn_seterr(db, "parameters in SQL without bindings");
		return DB_ERROR;
	}
	kind = pg_sql_kind(text);
	if ((rc = pg_conn_ready(db, kind)) == DB_DONE)
		rc = DB_OK;
	else if (rc == DB_OK) {
		for (attempt = 0;; attempt++) {
			was_in_tx = pg_conn_tx_open(db);
			res = PQexec(db->conn, text);
			rc = pg_conn_result(db, res, was_in_tx, kind);
			PQclear(res);
			if (attempt > 0 ||
			    !pg_conn_retry(db, &rc, was_in_tx, kind))
				break;
		}
	}
	free(text);
	return rc;
}
