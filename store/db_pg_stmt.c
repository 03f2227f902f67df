/*
 * PostgreSQL statements behind store/db.h: parameters bound SQLite-style
 * and sent with PQexecParams or, for persistent statements, prepared once
 * per connection (lazily, again after a reconnect) and run with
 * PQexecPrepared; the whole result is buffered (text format) and handed
 * out row by row. bytea columns are decoded into buffers the statement
 * owns until the next step or reset.
 */
#include "store/db_pg_internal.h"
#include "store/db.h"
#include "common/util.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Type OIDs (pg_type.h, stable across versions). */
#define PG_OID_BOOL	16
#define PG_OID_BYTEA	17
#define PG_OID_INT8	20
#define PG_OID_INT2	21
#define PG_OID_INT4	23
#define PG_OID_TEXT	25
#define PG_OID_OID	26
#define PG_OID_NUMERIC	1700

/* One parameter as libpq takes it. */
struct pg_param {
	const char *value;	/* NULL: SQL NULL; else num, owned or the
				 * caller's (borrowed) */
	char *owned;		/* copied text */
	int length;		/* blobs (binary format) */
	int format;		/* 0 text, 1 binary */
	Oid type;		/* 0: let the server infer it */
	bool unused;		/* the SQL never names it: typed text,
				 * since the server cannot infer it */
	char num[24];		/* int64 as text */
};

/* A bytea column of the current row, decoded on first use. */
struct pg_col {
	unsigned char *data;	/* NUL-terminated, owned */
	size_t len;
	bool decoded;
};

enum pg_stmt_state {
	PG_STMT_READY,		/* not run since the last reset */
	PG_STMT_ROWS,		/* res holds rows, row is the current one */
	PG_STMT_DONE,		/* stepped to the end */
};

struct db_pg_stmt {
	struct db_pg *db;
	char *sql;		/* translated to $N */
	enum pg_sql_kind kind;
	bool persistent;
	/* db->generation it was prepared under (0: not prepared). */
	unsigned prepared_gen;
	char name[32];
	/* Untyped parameters are sent as text (after "could not determine
	 * data type"). */
	bool text_types;
	int nparams;
	struct pg_param *params;
	const char **values;	/* libpq's arrays, filled at each run */
	int *lengths;
	int *formats;
	Oid *types;
	enum pg_stmt_state state;
	PGresult *res;
	int row, nrows;
	struct pg_col *cols;	/* PQnfields(res) of them */
	int ncols;
};

static void pg_stmt_clear_result(struct db_pg_stmt *);
static void pg_stmt_free_cols(struct db_pg_stmt *);
static struct pg_param *pg_stmt_param(struct db_pg_stmt *, int);
static void pg_stmt_fill(struct db_pg_stmt *);
static PGresult *pg_stmt_run(struct db_pg_stmt *);
static int pg_stmt_execute(struct db_pg_stmt *);
static bool pg_stmt_has_col(struct db_pg_stmt *, int);
static struct pg_col *pg_stmt_bytea(struct db_pg_stmt *, int);

int
pg_prepare(struct db_pg *db, const char *sql, bool persistent,
    struct db_pg_stmt **stmt_r)
{
	struct db_pg_stmt *s;
	const char *error;
	char *text;
	int n;

	*stmt_r = NULL;
	if ((text = pg_sql_translate(sql, &n, &error)) == NULL) {
		pg_conn_seterr(db, "%s", error);
		return DB_ERROR;
	}
	s = xcalloc(1, sizeof(*s));
	s->db = db;
	s->sql = text;
	s->kind = pg_sql_kind(text);
	s->persistent = persistent;
	s->nparams = n;
	if (n > 0) {
		s->params = xcalloc((size_t)n, sizeof(*s->params));
		s->values = xcalloc((size_t)n, sizeof(*s->values));
		s->lengths = xcalloc((size_t)n, sizeof(*s->lengths));
		s->formats = xcalloc((size_t)n, sizeof(*s->formats));
		s->types = xcalloc((size_t)n, sizeof(*s->types));
	}
	/* A statement may skip numbers (one text of two variants binding
	 * the same slots): a parameter the SQL never names has no type the
	 * server could infer. A "$N" inside a literal only counts as used. */
	for (int i = 0; i < n; i++) {
		char tag[16];
		const char *p = text;
		size_t tl = (size_t)snprintf(tag, sizeof(tag), "$%d", i + 1);

		s->params[i].unused = true;
		while ((p = strstr(p, tag)) != NULL) {
			p += tl;
			if (!isdigit((unsigned char)*p)) {
				s->params[i].unused = false;
				break;
			}
		}
	}
	*stmt_r = s;
	return DB_OK;
}

void
pg_finalize(struct db_pg_stmt *s)
{
	struct db_pg *db;
	PGTransactionStatusType t;
	char sql[64];
	int i;

	if (s == NULL)
		return;
	db = s->db;
	pg_stmt_clear_result(s);
	if (s->prepared_gen == db->generation && !db->lost &&
	    PQstatus(db->conn) == CONNECTION_OK) {
		/* Not in an aborted transaction: it would refuse (the
		 * statement then lives until the connection ends). */
		t = PQtransactionStatus(db->conn);
		if (t == PQTRANS_IDLE || t == PQTRANS_INTRANS) {
			snprintf(sql, sizeof(sql), "DEALLOCATE %s", s->name);
			PQclear(PQexec(db->conn, sql));
		}
	}
	for (i = 0; i < s->nparams; i++)
		free(s->params[i].owned);
	free(s->params);
	free(s->values);
	free(s->lengths);
	free(s->formats);
	free(s->types);
	free(s->sql);
	free(s);
}

static void
pg_stmt_free_cols(struct db_pg_stmt *s)
{
	int i;

	for (i = 0; i < s->ncols; i++) {
		free(s->cols[i].data);
		s->cols[i].data = NULL;
		s->cols[i].decoded = false;
	}
}

static void
pg_stmt_clear_result(struct db_pg_stmt *s)
{
	pg_stmt_free_cols(s);
	free(s->cols);
	s->cols = NULL;
	s->ncols = 0;
	PQclear(s->res);
	s->res = NULL;
	s->row = s->nrows = 0;
}

int
pg_reset(struct db_pg_stmt *s)
{
	pg_stmt_clear_result(s);
	s->state = PG_STMT_READY;
	return DB_OK;
}

void
pg_clear_bindings(struct db_pg_stmt *s)
{
	int i;

	for (i = 0; i < s->nparams; i++) {
		bool unused = s->params[i].unused;

		free(s->params[i].owned);
		memset(&s->params[i], 0, sizeof(s->params[i]));
		s->params[i].unused = unused;
	}
}

/* ---- binding ---- */

/* Parameter i (1-based), emptied; NULL (error set) when out of range. */
static struct pg_param *
pg_stmt_param(struct db_pg_stmt *s, int i)
{
	struct pg_param *p;

	if (i < 1 || i > s->nparams) {
		pg_conn_seterr(s->db, "bind index %d out of range 1..%d", i,
		    s->nparams);
		return NULL;
	}
	p = &s->params[i - 1];
	free(p->owned);
	*p = (struct pg_param){ .unused = p->unused };
	return p;
}

int
pg_bind_int64(struct db_pg_stmt *s, int i, int64_t v)
{
	struct pg_param *p = pg_stmt_param(s, i);

	if (p == NULL)
		return DB_ERROR;
	snprintf(p->num, sizeof(p->num), "%" PRId64, v);
	p->value = p->num;
	p->type = PG_OID_INT8;
	return DB_OK;
}

int
pg_bind_text(struct db_pg_stmt *s, int i, const char *v, int len)
{
	struct pg_param *p = pg_stmt_param(s, i);

	if (p == NULL)
		return DB_ERROR;
	if (v == NULL)
		return DB_OK;	/* NULL, as SQLite binds it */
	if (len < 0)
		p->value = v;
	else {
		p->owned = xmalloc((size_t)len + 1);
		memcpy(p->owned, v, (size_t)len);
		p->owned[len] = '\0';
		p->value = p->owned;
	}
	return DB_OK;
}

int
pg_bind_blob(struct db_pg_stmt *s, int i, const void *v, size_t len)
{
	struct pg_param *p = pg_stmt_param(s, i);

	if (p == NULL)
		return DB_ERROR;
	if (len > INT32_MAX) {
		pg_conn_seterr(s->db, "blob of %zu bytes too big", len);
		return DB_ERROR;
	}
	p->value = v != NULL ? v : "";
	p->length = (int)len;
	p->format = 1;
	p->type = PG_OID_BYTEA;
	return DB_OK;
}

int
pg_bind_null(struct db_pg_stmt *s, int i)
{
	return pg_stmt_param(s, i) == NULL ? DB_ERROR : DB_OK;
}

/* ---- running ---- */

static void
pg_stmt_fill(struct db_pg_stmt *s)
{
	struct pg_param *p;
	int i;

	for (i = 0; i < s->nparams; i++) {
		p = &s->params[i];
		s->values[i] = p->value;
		s->lengths[i] = p->length;
		s->formats[i] = p->format;
		s->types[i] = p->type == 0 && (s->text_types || p->unused) ?
		    PG_OID_TEXT : p->type;
	}
}

/* One round of libpq calls: prepare if needed, then run. The result (an
 * error result when the prepare failed) for pg_conn_result. */
static PGresult *
pg_stmt_run(struct db_pg_stmt *s)
{
	struct db_pg *db = s->db;
	PGresult *res;

	pg_stmt_fill(s);
	if (!s->persistent)
		return PQexecParams(db->conn, s->sql, s->nparams, s->types,
		    s->values, s->lengths, s->formats, 0);
	if (s->prepared_gen != db->generation) {
		snprintf(s->name, sizeof(s->name), "carteiro_%u",
		    db->next_name++);
		res = PQprepare(db->conn, s->name, s->sql, s->nparams,
		    s->types);
		if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
			return res;
		PQclear(res);
		s->prepared_gen = db->generation;
	}
	return PQexecPrepared(db->conn, s->name, s->nparams, s->values,
	    s->lengths, s->formats, 0);
}

static int
pg_stmt_execute(struct db_pg_stmt *s)
{
	struct db_pg *db = s->db;
	const char *state;
	PGresult *res;
	bool was_in_tx, untyped, retried = false;
	int rc;

	if ((rc = pg_conn_ready(db, s->kind)) != DB_OK)
		return rc;	/* DB_DONE: a ROLLBACK with nothing to do */
	for (;;) {
		was_in_tx = pg_conn_tx_open(db);
		res = pg_stmt_run(s);
		rc = pg_conn_result(db, res, was_in_tx, s->kind);
		if (rc == DB_OK)
			break;
		state = res != NULL ? PQresultErrorField(res,
		    PG_DIAG_SQLSTATE) : NULL;
		untyped = state != NULL && strcmp(state, "42P18") == 0;
		PQclear(res);
		res = NULL;
		/* "could not determine data type of parameter": once,
		 * outside a transaction (inside, the error aborted it). */
		if (untyped && !was_in_tx && !s->text_types) {
			s->text_types = true;
			continue;
		}
		if (retried || !pg_conn_retry(db, &rc, was_in_tx, s->kind))
			return rc;
		retried = true;
	}
	s->res = res;
	s->nrows = PQntuples(res);
	s->ncols = PQnfields(res);
	if (s->ncols > 0)
		s->cols = xcalloc((size_t)s->ncols, sizeof(*s->cols));
	s->row = -1;
	return DB_OK;
}

int
pg_step(struct db_pg_stmt *s)
{
	int rc;

	if (s->state == PG_STMT_DONE)
		pg_reset(s);	/* as SQLite: a step after the end reruns */
	if (s->state == PG_STMT_READY) {
		if ((rc = pg_stmt_execute(s)) != DB_OK) {
			if (rc != DB_DONE)
				return rc;
			s->state = PG_STMT_DONE;
			return DB_DONE;
		}
		s->state = PG_STMT_ROWS;
	}
	pg_stmt_free_cols(s);
	if (++s->row < s->nrows)
		return DB_ROW;
	/* Done: let the buffered result go now. */
	pg_stmt_clear_result(s);
	s->state = PG_STMT_DONE;
	return DB_DONE;
}

/* ---- columns ---- */

static bool
pg_stmt_has_col(struct db_pg_stmt *s, int i)
{
	return s->state == PG_STMT_ROWS && s->res != NULL && i >= 0 &&
	    i < s->ncols && s->row >= 0 && s->row < s->nrows;
}

/* Column i (a non-NULL bytea of the current row) decoded from the hex
 * output format "\x0a1b..." (bytea_output = hex, set at connect). */
static struct pg_col *
pg_stmt_bytea(struct db_pg_stmt *s, int i)
{
	struct pg_col *c = &s->cols[i];
	const char *v;
	size_t n, k;
	int hi, lo;

	if (c->decoded)
		return c;
	v = PQgetvalue(s->res, s->row, i);
	n = (size_t)PQgetlength(s->res, s->row, i);
	if (n >= 2 && v[0] == '\\' && v[1] == 'x') {
		c->data = xmalloc((n - 2) / 2 + 1);
		for (k = 0; 3 + 2 * k < n; k++) {
			hi = util_hexval(v[2 + 2 * k]);
			lo = util_hexval(v[3 + 2 * k]);
			if (hi < 0 || lo < 0)
				break;
			c->data[k] = (unsigned char)(hi << 4 | lo);
		}
		c->len = k;
	} else {
		/* Not hex output: hand the text over as it is. */
		c->data = xmalloc(n + 1);
		memcpy(c->data, v, n);
		c->len = n;
	}
	c->data[c->len] = '\0';
	c->decoded = true;
	return c;
}

int
pg_column_type(struct db_pg_stmt *s, int i)
{
	if (!pg_stmt_has_col(s, i) || PQgetisnull(s->res, s->row, i))
		return DB_NULL;
	switch (PQftype(s->res, i)) {
	case PG_OID_BOOL:
	case PG_OID_INT2:
	case PG_OID_INT4:
	case PG_OID_INT8:
	case PG_OID_OID:
	case PG_OID_NUMERIC:
		return DB_INTEGER;
	case PG_OID_BYTEA:
		return DB_BLOB;
	default:
		return DB_TEXT;
	}
}

int64_t
pg_column_int64(struct db_pg_stmt *s, int i)
{
	const char *v;

	if (!pg_stmt_has_col(s, i) || PQgetisnull(s->res, s->row, i))
		return 0;
	v = PQgetvalue(s->res, s->row, i);
	if (strcmp(v, "t") == 0)
		return 1;
	if (strcmp(v, "f") == 0)
		return 0;
	return strtoll(v, NULL, 10);
}

const char *
pg_column_text(struct db_pg_stmt *s, int i)
{
	if (!pg_stmt_has_col(s, i) || PQgetisnull(s->res, s->row, i))
		return NULL;
	if (PQftype(s->res, i) == PG_OID_BYTEA)
		return (const char *)pg_stmt_bytea(s, i)->data;
	return PQgetvalue(s->res, s->row, i);
}

const void *
pg_column_blob(struct db_pg_stmt *s, int i)
{
	return pg_column_text(s, i);
}

size_t
pg_column_bytes(struct db_pg_stmt *s, int i)
{
	if (!pg_stmt_has_col(s, i) || PQgetisnull(s->res, s->row, i))
		return 0;
	if (PQftype(s->res, i) == PG_OID_BYTEA)
		return pg_stmt_bytea(s, i)->len;
	return (size_t)PQgetlength(s->res, s->row, i);
}
