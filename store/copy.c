/*
 * store_copy (store/copy.h): every table of a SQLite store into another
 * store, generic over the tables through db_* calls. The columns come
 * from the source's declared schema (PRAGMA table_info), so a column a
 * migration adds is copied without a change here; a table a migration
 * adds must be named in store_copy_tables, or the copy is refused.
 */
#include "store/copy.h"
#include "store/store_internal.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How a column's values are bound on the target. */
enum store_copy_kind {
	STORE_COPY_INT,
	STORE_COPY_TEXT,
	STORE_COPY_BLOB,
};

struct store_copy_table {
	const char *name;
	/* Users and mail: a target holding rows here is not empty, the
	 * copy is refused. The others hold server state the source's rows
	 * replace. */
	bool refuse;
	/* An "id" column that is an identity on PostgreSQL (its sequence
	 * is moved past the copied ids). */
	bool identity;
};

/* Every table of store/schema.c, parents before the rows that refer to
 * them. */
static const struct store_copy_table store_copy_tables[] = {
	{ "domains", true, true },
	{ "users", true, true },
	{ "aliases", true, true },
	{ "bodies", true, true },
	{ "body_chunks", true, false },
	{ "mailbox", true, true },
	{ "queue", true, true },
	{ "queue_rcpt", true, true },
	{ "send_log", true, true },
	{ "imported", true, false },
	{ "settings", false, false },
	{ "suppress", false, false },
	{ "relay_throttle", false, false },
	{ "mta_sts", false, false },
	{ "monitor_listing", false, false },
};

/* Tables of a target's own bookkeeping, not copied. */
static const char *const store_copy_own[] = {
	"schema_version",	/* PostgreSQL's PRAGMA user_version */
};

/* One table's columns on the source. */
struct store_copy_cols {
	char **name;
	enum store_copy_kind *kind;
	size_t n;
};

static bool store_copy_known(const char *name);
static int store_copy_src_fail(struct store *src, struct store *dst,
    int rc, const char *what);
static int store_copy_columns(struct store *src, const char *table,
    struct store_copy_cols *c);
static void store_copy_cols_free(struct store_copy_cols *c);
static char *store_copy_sql(const char *table,
    const struct store_copy_cols *c, bool insert);
static int store_copy_bind(struct db_stmt *ins, struct db_stmt *sel,
    const struct store_copy_cols *c);
static int store_copy_table(struct store *src, struct store *dst,
    const char *table, int64_t *rows_r);
static int store_copy_prepare_target(struct store *dst);
static int store_copy_sequence(struct store *dst, const char *table);
static int store_copy_run(struct store *src, struct store *dst,
    struct store_copy_counts *counts);

static bool
store_copy_known(const char *name)
{
	for (size_t i = 0; i < nitems(store_copy_tables); i++)
		if (strcmp(store_copy_tables[i].name, name) == 0)
			return true;
	for (size_t i = 0; i < nitems(store_copy_own); i++)
		if (strcmp(store_copy_own[i], name) == 0)
			return true;
	return false;
}

int
store_copy_unknown_table(struct store *st, char **table_r)
{
	struct db_stmt *s;
	const char *name;
	int rc, ret = 0;

	*table_r = NULL;
	rc = db_prepare(st->db, store_sql(st,
	    "SELECT name FROM sqlite_master WHERE type = 'table' AND "
	    "name NOT LIKE 'sqlite!_%' ESCAPE '!' ORDER BY name",
	    "SELECT CAST(table_name AS TEXT) FROM information_schema.tables "
	    "WHERE table_schema = current_schema() AND "
	    "table_type = 'BASE TABLE' ORDER BY 1"), false, &s);
	if (rc != DB_OK)
		return store_fail_db(st, rc, "list tables");
	while ((rc = db_step(s)) == DB_ROW) {
		name = db_column_text(s, 0);
		if (name != NULL && !store_copy_known(name)) {
			*table_r = xstrdup(name);
			ret = 1;
			break;
		}
	}
	if (ret == 0 && rc != DB_DONE)
		ret = store_fail_db(st, rc, "list tables");
	db_finalize(s);
	return ret;
}

/* A failure on src, told in dst's error. */
static int
store_copy_src_fail(struct store *src, struct store *dst, int rc,
    const char *what)
{
	if (rc != DB_OK)
		store_fail_db(src, rc, what);
	return store_fail(dst, "source store: %s", store_error(src));
}

static int
store_copy_columns(struct store *src, const char *table,
    struct store_copy_cols *c)
{
	struct db_stmt *s;
	const char *name, *type;
	char *sql, *lower;
	int rc;

	memset(c, 0, sizeof(*c));
	sql = xasprintf("PRAGMA table_info(\"%s\")", table);
	rc = db_prepare(src->db, sql, false, &s);
	free(sql);
	if (rc != DB_OK)
		return store_fail_db(src, rc, table);
	while ((rc = db_step(s)) == DB_ROW) {
		name = db_column_text(s, 1);
		type = db_column_text(s, 2);
		c->name = xrealloc(c->name, (c->n + 1) * sizeof(*c->name));
		c->kind = xrealloc(c->kind, (c->n + 1) * sizeof(*c->kind));
		c->name[c->n] = xstrdup(name != NULL ? name : "");
		/* SQLite's affinity rules, as far as the schema uses them. */
		lower = util_strlower(xstrdup(type != NULL ? type : ""));
		c->kind[c->n] = strstr(lower, "int") != NULL ? STORE_COPY_INT :
		    strstr(lower, "blob") != NULL || *lower == '\0' ?
		    STORE_COPY_BLOB : STORE_COPY_TEXT;
		free(lower);
		c->n++;
	}
	db_finalize(s);
	if (rc != DB_DONE)
		return store_fail_db(src, rc, table);
	if (c->n == 0)
		return store_fail(src, "table %s has no columns", table);
	return 0;
}

static void
store_copy_cols_free(struct store_copy_cols *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->name[i]);
	free(c->name);
	free(c->kind);
	memset(c, 0, sizeof(*c));
}

/* SELECT "a", "b" FROM "t" or INSERT INTO "t" ("a", "b") VALUES (?1, ?2):
 * every name quoted (send_log's "user" is a keyword on PostgreSQL). */
static char *
store_copy_sql(const char *table, const struct store_copy_cols *c,
    bool insert)
{
	size_t size = 64 + strlen(table), len;
	char *sql;

	for (size_t i = 0; i < c->n; i++)
		size += strlen(c->name[i]) + 20;
	sql = xmalloc(size);
	len = (size_t)snprintf(sql, size, insert ? "INSERT INTO \"%s\" (" :
	    "SELECT ", table);
	for (size_t i = 0; i < c->n; i++)
		len += (size_t)snprintf(sql + len, size - len, "%s\"%s\"",
		    i > 0 ? ", " : "", c->name[i]);
	if (!insert) {
		snprintf(sql + len, size - len, " FROM \"%s\"", table);
		return sql;
	}
	len += (size_t)snprintf(sql + len, size - len, ") VALUES (");
	for (size_t i = 0; i < c->n; i++)
		len += (size_t)snprintf(sql + len, size - len, "%s?%zu",
		    i > 0 ? ", " : "", i + 1);
	snprintf(sql + len, size - len, ")");
	return sql;
}

/* Bind the current row of sel to ins. Text and blobs are the source
 * statement's until its next step: ins runs before that. */
static int
store_copy_bind(struct db_stmt *ins, struct db_stmt *sel,
    const struct store_copy_cols *c)
{
	const void *blob;
	int rc = DB_OK;

	for (size_t i = 0; rc == DB_OK && i < c->n; i++) {
		int col = (int)i, param = (int)i + 1;

		if (db_column_type(sel, col) == DB_NULL) {
			rc = db_bind_null(ins, param);
			continue;
		}
		switch (c->kind[i]) {
		case STORE_COPY_INT:
			if (db_column_type(sel, col) == DB_INTEGER) {
				rc = db_bind_int64(ins, param,
				    db_column_int64(sel, col));
				break;
			}
			/* Not a number: as text, for the target to refuse. */
			/* FALLTHROUGH */
		case STORE_COPY_TEXT:
			rc = db_bind_text(ins, param, db_column_text(sel, col),
			    (int)db_column_bytes(sel, col));
			break;
		case STORE_COPY_BLOB:
			blob = db_column_blob(sel, col);
			rc = db_bind_blob(ins, param, blob,
			    db_column_bytes(sel, col));
			break;
		}
	}
	return rc;
}

static int
store_copy_table(struct store *src, struct store *dst, const char *table,
    int64_t *rows_r)
{
	struct store_copy_cols c;
	struct db_stmt *sel = NULL, *ins = NULL;
	char *sql, what[128];
	int rc, ret = -1;

	*rows_r = 0;
	snprintf(what, sizeof(what), "copy %s", table);
	if (store_copy_columns(src, table, &c) < 0)
		return store_copy_src_fail(src, dst, DB_OK, what);
	sql = store_copy_sql(table, &c, false);
	rc = db_prepare(src->db, sql, false, &sel);
	free(sql);
	if (rc != DB_OK) {
		store_copy_src_fail(src, dst, rc, what);
		goto out;
	}
	/* Persistent: run once per row (on PostgreSQL a server-side
	 * prepared statement, one round trip per row). */
	sql = store_copy_sql(table, &c, true);
	rc = db_prepare(dst->db, sql, true, &ins);
	free(sql);
	if (rc != DB_OK) {
		store_fail_db(dst, rc, what);
		goto out;
	}
	while ((rc = db_step(sel)) == DB_ROW) {
		db_reset(ins);
		db_clear_bindings(ins);
		if ((rc = store_copy_bind(ins, sel, &c)) != DB_OK ||
		    (rc = db_step(ins)) != DB_DONE) {
			store_fail_db(dst, rc == DB_ROW ? DB_ERROR : rc, what);
			goto out;
		}
		(*rows_r)++;
	}
	if (rc != DB_DONE) {
		store_copy_src_fail(src, dst, rc, what);
		goto out;
	}
	ret = 0;
out:
	db_finalize(ins);
	db_finalize(sel);
	store_copy_cols_free(&c);
	return ret;
}

/* Inside dst's write transaction: refuse a target with users or mail,
 * empty the server-state tables. */
static int
store_copy_prepare_target(struct store *dst)
{
	const struct store_copy_table *t;
	struct db_stmt *s;
	char *sql;
	int64_t n;
	int rc;

	for (size_t i = 0; i < nitems(store_copy_tables); i++) {
		t = &store_copy_tables[i];
		if (!t->refuse)
			continue;
		sql = xasprintf("SELECT count(*) FROM \"%s\"", t->name);
		rc = db_prepare(dst->db, sql, false, &s);
		free(sql);
		if (rc != DB_OK)
			return store_fail_db(dst, rc, t->name);
		rc = db_step(s);
		if (rc != DB_ROW) {
			db_finalize(s);
			return store_fail_db(dst, rc, t->name);
		}
		if (db_column_int64(s, 0) > 0) {
			n = db_column_int64(s, 0);
			store_fail(dst, "the target store is not empty "
			    "(%lld row%s in %s): copy only into a new, empty "
			    "store", (long long)n, n == 1 ? "" : "s",
			    t->name);
			db_finalize(s);
			return -1;
		}
		db_finalize(s);
	}
	for (size_t i = 0; i < nitems(store_copy_tables); i++) {
		t = &store_copy_tables[i];
		if (t->refuse)
			continue;
		sql = xasprintf("DELETE FROM \"%s\"", t->name);
		rc = store_exec(dst, sql);
		free(sql);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* PostgreSQL: the next id the identity of table.id hands out is past
 * every copied one. */
static int
store_copy_sequence(struct store *dst, const char *table)
{
	char *sql;
	int rc;

	sql = xasprintf("SELECT setval(pg_get_serial_sequence('%s', 'id'), "
	    "coalesce(max(id), 0) + 1, false) FROM \"%s\"", table, table);
	rc = store_exec(dst, sql);
	free(sql);
	return rc;
}

/* The copy proper: both transactions are open. */
static int
store_copy_run(struct store *src, struct store *dst,
    struct store_copy_counts *counts)
{
	const struct store_copy_table *t;
	char *unknown;
	int64_t rows;
	int rc;

	/* Inside the snapshot: the tables that are copied are the ones
	 * checked. */
	if ((rc = store_copy_unknown_table(src, &unknown)) != 0) {
		if (rc < 0)
			return store_copy_src_fail(src, dst, DB_OK, "copy");
		store_fail(dst, "source table %s is not known to store copy "
		    "(store/copy.c)", unknown);
		free(unknown);
		return -1;
	}
	if ((rc = store_copy_unknown_table(dst, &unknown)) != 0) {
		if (rc > 0) {
			store_fail(dst, "target table %s is not known to "
			    "store copy (store/copy.c)", unknown);
			free(unknown);
		}
		return -1;
	}
	if (store_copy_prepare_target(dst) < 0)
		return -1;
	for (size_t i = 0; i < nitems(store_copy_tables); i++) {
		t = &store_copy_tables[i];
		if (store_copy_table(src, dst, t->name, &rows) < 0)
			return -1;
		counts->rows += rows;
		if (strcmp(t->name, "users") == 0)
			counts->users = rows;
		else if (strcmp(t->name, "mailbox") == 0)
			counts->messages = rows;
		else if (strcmp(t->name, "bodies") == 0)
			counts->bodies = rows;
		else if (strcmp(t->name, "queue") == 0)
			counts->queue = rows;
		if (t->identity && db_kind(dst->db) == DB_KIND_PG &&
		    store_copy_sequence(dst, t->name) < 0)
			return -1;
	}
	return 0;
}

int
store_copy(struct store *src, struct store *dst,
    struct store_copy_counts *counts_r)
{
	int ret;

	memset(counts_r, 0, sizeof(*counts_r));
	if (db_kind(src->db) != DB_KIND_SQLITE)
		return store_fail(dst, "store copy reads a SQLite store");
	if (store_in_transaction(src) || store_in_transaction(dst))
		return store_fail(dst, "store copy: inside a transaction");
	if (store_check_schema(src) < 0)
		return store_copy_src_fail(src, dst, DB_OK, "copy");
	if (store_migrate(dst) < 0)
		return -1;
	if (store_read_begin(src) < 0)
		return store_copy_src_fail(src, dst, DB_OK, "copy");
	if (store_begin(dst) < 0) {
		store_read_end(src);
		return -1;
	}
	ret = store_copy_run(src, dst, counts_r);
	ret = store_end(dst, ret);
	store_read_end(src);
	if (ret != 0)
		memset(counts_r, 0, sizeof(*counts_r));
	return ret;
}
