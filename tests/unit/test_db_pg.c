/*
 * The PostgreSQL side of the database layer (store/db_pg*.c) against a
 * real server, a private cluster (pg_cluster.h, scripts/pgcluster):
 * placeholders, binds and columns, inference of parameter types,
 * changes, errors, transactions, lock timeouts, lost connections.
 */
#include "t.h"
#include "pg_cluster.h"

#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void
t_translate(void)
{
	const char *err = NULL;
	char *out;
	int n = -1;

	t_begin("placeholders: ?N, bare ?, quotes and comments");
	out = pg_sql_translate("SELECT ?1, ?, ?3, ? FROM t WHERE a = '?' "
	    "AND \"b?\" = E'\\'?' -- ?\n /* ? */ AND c = $$?$$ || ?2",
	    &n, &err);
	t_assert_str(out, "SELECT $1, $2, $3, $4 FROM t WHERE a = '?' "
	    "AND \"b?\" = E'\\'?' -- ?\n /* ? */ AND c = $$?$$ || $2");
	t_assert_int(n, 4);
	free(out);
	out = pg_sql_translate("SELECT 'it''s ?', ?7", &n, &err);
	t_assert_str(out, "SELECT 'it''s ?', $7");
	t_assert_int(n, 7);
	free(out);
	out = pg_sql_translate("SELECT ?0", &n, &err);
	t_assert(out == NULL);
	out = pg_sql_translate("SELECT ?40000", &n, &err);
	t_assert(out == NULL);
	out = pg_sql_translate("begin immediate", &n, &err);
	t_assert_str(out, "BEGIN");
	free(out);
	out = pg_sql_translate(" BEGIN DEFERRED TRANSACTION;", &n, &err);
	t_assert_str(out, "BEGIN ISOLATION LEVEL REPEATABLE READ");
	free(out);
	out = pg_sql_translate("BEGIN", &n, &err);
	t_assert_str(out, "BEGIN");
	t_assert_int(n, 0);
	free(out);
	t_assert_int(pg_sql_kind("  begin"), PG_SQL_BEGIN);
	t_assert_int(pg_sql_kind("COMMIT"), PG_SQL_COMMIT);
	t_assert_int(pg_sql_kind("ROLLBACK"), PG_SQL_ROLLBACK);
	t_assert_int(pg_sql_kind("ROLLBACK TO store_unit"), PG_SQL_OTHER);
	t_assert_int(pg_sql_kind("rollback transaction to x"), PG_SQL_OTHER);
	t_assert_int(pg_sql_kind("/* x */ SELECT 1;"), PG_SQL_SELECT);
	t_assert_int(pg_sql_kind("SELECT 1; DELETE FROM t"), PG_SQL_OTHER);
	t_assert_int(pg_sql_kind("SELECT ';'"), PG_SQL_SELECT);
	t_assert_int(pg_sql_kind("INSERT INTO t VALUES (1)"), PG_SQL_OTHER);
	t_end();
}

static void
t_password(const char *url)
{
	const char *err = NULL;
	char bad[1024];

	t_begin("a password in the connection string is refused");
	snprintf(bad, sizeof(bad), "%s password=secret", url);
	t_assert(pg_open(bad, &err) == NULL);
	t_assert(err != NULL && strstr(err, "password") != NULL);
	err = NULL;
	t_assert(pg_open("postgresql://carteiro:secret@127.0.0.1:1/x",
	    &err) == NULL);
	t_assert(err != NULL && strstr(err, "must not hold a password") !=
	    NULL);
	err = NULL;
	t_assert(pg_open("host=127.0.0.1 port=1 connect_timeout=5", &err) ==
	    NULL);
	t_assert(err != NULL && strstr(err, "cannot connect") != NULL);
	t_end();
}

/* The connect_timeout a connection was made with. */
static char *
t_connect_timeout(struct db_pg *db)
{
	PQconninfoOption *opts = PQconninfo(pg_handle(db)), *o;
	char *v = NULL;

	for (o = opts; o != NULL && o->keyword != NULL; o++)
		if (strcmp(o->keyword, "connect_timeout") == 0 &&
		    o->val != NULL)
			v = xstrdup(o->val);
	PQconninfoFree(opts);
	return v;
}

static void
t_session(struct db_pg *db, const char *url)
{
	struct db_pg *other;
	char buf[1024];
	char *v;

	t_begin("session settings at connect, lock_timeout");
	v = t_text(db, "SHOW synchronous_commit");
	t_assert_str(v, "on");
	free(v);
	v = t_text(db, "SHOW client_encoding");
	t_assert_str(v, "UTF8");
	free(v);
	v = t_text(db, "SHOW standard_conforming_strings");
	t_assert_str(v, "on");
	free(v);
	pg_set_busy_timeout(db, 1500);
	v = t_text(db, "SHOW lock_timeout");
	t_assert_str(v, "1500ms");
	free(v);
	v = t_connect_timeout(db);	/* the default */
	t_assert_str(v, "10");
	free(v);
	snprintf(buf, sizeof(buf), "%s connect_timeout=3", url);
	other = t_open(buf);		/* the string's wins */
	v = t_connect_timeout(other);
	t_assert_str(v, "3");
	free(v);
	v = t_text(other, "SELECT current_setting('application_name')");
	t_assert_str(v, "carteiro");
	free(v);
	pg_close(other);
	t_end();
}

static void
t_roundtrip(struct db_pg *db, bool persistent)
{
	static const char utf8[] = "a\xc3\xa7\xc3\xa3o \xe2\x9c\x89 "
	    "\xf0\x9d\x84\x9e";
	struct db_pg_stmt *ins, *sel;
	unsigned char *blob = xmalloc(65536);
	const unsigned char *got;
	int64_t id1 = 0, id2 = 0;
	size_t i;

	t_begin(persistent ? "bind/column round trip (persistent)" :
	    "bind/column round trip (one-off)");
	for (i = 0; i < 65536; i++)
		blob[i] = (unsigned char)(i * 7 + i / 256);
	t_assert_int(pg_exec(db, "DELETE FROM t"), DB_OK);
	t_assert_int(pg_prepare(db, "INSERT INTO t (n, s, c, b) VALUES (?1, "
	    "?2, ?, ?) RETURNING id", persistent, &ins), DB_OK);
	t_assert_int(pg_bind_int64(ins, 1, INT64_MIN), DB_OK);
	t_assert_int(pg_bind_text(ins, 2, utf8, -1), DB_OK);
	t_assert_int(pg_bind_text(ins, 3, "MiXeD@Example.ORG trailing", 17),
	    DB_OK);
	t_assert_int(pg_bind_blob(ins, 4, blob, 65536), DB_OK);
	t_assert_int(pg_bind_int64(ins, 5, 1), DB_ERROR);	/* range */
	t_assert_int(pg_step(ins), DB_ROW);
	id1 = pg_column_int64(ins, 0);
	t_assert_int(pg_column_type(ins, 0), DB_INTEGER);
	t_assert_int(pg_step(ins), DB_DONE);
	t_assert_int(pg_changes(db), 1);
	pg_reset(ins);
	pg_clear_bindings(ins);		/* all NULL */
	t_assert_int(pg_step(ins), DB_ROW);
	id2 = pg_column_int64(ins, 0);
	t_assert(id2 > id1);
	t_assert_int(pg_step(ins), DB_DONE);
	pg_reset(ins);
	pg_bind_int64(ins, 1, INT64_MAX);
	pg_bind_text(ins, 2, "", -1);
	pg_bind_text(ins, 3, "other", -1);
	pg_bind_blob(ins, 4, NULL, 0);
	t_assert_int(pg_step(ins), DB_ROW);
	t_assert_int(pg_step(ins), DB_DONE);
	pg_finalize(ins);

	t_assert_int(pg_prepare(db, "SELECT n, s, c, b, id FROM t ORDER BY "
	    "id", persistent, &sel), DB_OK);
	t_assert_int(pg_step(sel), DB_ROW);
	t_assert_int(pg_column_int64(sel, 0), INT64_MIN);
	t_assert_str(pg_column_text(sel, 1), utf8);
	t_assert_int(pg_column_bytes(sel, 1), strlen(utf8));
	t_assert_str(pg_column_text(sel, 2), "MiXeD@Example.ORG");
	t_assert_int(pg_column_type(sel, 1), DB_TEXT);
	t_assert_int(pg_column_type(sel, 3), DB_BLOB);
	t_assert_int(pg_column_bytes(sel, 3), 65536);
	got = pg_column_blob(sel, 3);
	t_assert(got != NULL && memcmp(got, blob, 65536) == 0);
	t_assert(pg_column_blob(sel, 3) == got);	/* same buffer */
	t_assert_int(pg_column_int64(sel, 4), id1);
	t_assert_int(pg_step(sel), DB_ROW);		/* the NULL row */
	for (i = 0; i < 4; i++) {
		t_assert_int(pg_column_type(sel, (int)i), DB_NULL);
		t_assert(pg_column_text(sel, (int)i) == NULL);
		t_assert(pg_column_blob(sel, (int)i) == NULL);
		t_assert_int(pg_column_bytes(sel, (int)i), 0);
	}
	t_assert_int(pg_column_int64(sel, 0), 0);
	t_assert_int(pg_column_int64(sel, 4), id2);
	t_assert_int(pg_step(sel), DB_ROW);
	t_assert_int(pg_column_int64(sel, 0), INT64_MAX);
	t_assert_str(pg_column_text(sel, 1), "");
	t_assert_int(pg_column_type(sel, 1), DB_TEXT);
	t_assert_int(pg_column_type(sel, 3), DB_BLOB);
	t_assert_int(pg_column_bytes(sel, 3), 0);
	t_assert(pg_column_blob(sel, 3) != NULL);
	t_assert_int(pg_column_type(sel, 9), DB_NULL);	/* no column 9 */
	t_assert_int(pg_step(sel), DB_DONE);
	t_assert(pg_column_text(sel, 0) == NULL);	/* no row */
	t_assert_int(pg_step(sel), DB_ROW);	/* after DONE: runs again */
	t_assert_int(pg_column_int64(sel, 0), INT64_MIN);
	pg_finalize(sel);
	free(blob);
	t_end();
}

/* Parameter types as PostgreSQL infers them: int8 and untyped text. */
static void
t_inference(struct db_pg *db)
{
	struct db_pg_stmt *s;

	t_begin("parameter types: citext, BIGINT, IS NULL, arithmetic");
	t_assert_int(pg_prepare(db, "SELECT count(*) FROM t WHERE c = ?1",
	    true, &s), DB_OK);
	pg_bind_text(s, 1, "mixed@EXAMPLE.org", -1);	/* citext compare */
	t_assert_int(pg_step(s), DB_ROW);
	t_assert_int(pg_column_int64(s, 0), 1);
	pg_finalize(s);
	t_assert_int(pg_prepare(db, "SELECT count(*) FROM t WHERE n = ?1 "
	    "OR n = ?2", false, &s), DB_OK);
	pg_bind_int64(s, 1, INT64_MAX);
	pg_bind_text(s, 2, "-9223372036854775808", -1);	/* text to BIGINT */
	t_assert_int(pg_step(s), DB_ROW);
	t_assert_int(pg_column_int64(s, 0), 2);
	pg_finalize(s);
	t_assert_int(pg_prepare(db, "SELECT ?1 IS NULL, ?2 + 1, ?2 * ?3, "
	    "1 = 1, sum(n) FROM (SELECT 5::bigint AS n UNION ALL SELECT 6) "
	    "x", false, &s), DB_OK);
	pg_bind_null(s, 1);
	pg_bind_int64(s, 2, 41);
	pg_bind_int64(s, 3, -3);
	if (pg_step(s) != DB_ROW) {	/* outside a transaction */
		fprintf(stderr, "IS NULL: %s\n", pg_errmsg(db));
		t_assert(!"?1 IS NULL outside a transaction");
	}
	t_assert_int(pg_column_int64(s, 0), 1);
	t_assert_int(pg_column_int64(s, 1), 42);
	t_assert_int(pg_column_int64(s, 2), -123);
	t_assert_int(pg_column_int64(s, 3), 1);		/* bool "t" */
	t_assert_int(pg_column_int64(s, 4), 11);	/* numeric */
	t_assert_int(pg_column_type(s, 4), DB_INTEGER);
	pg_finalize(s);
	/* Inside a transaction: CAST(?1 AS TEXT) says the type. */
	t_assert_int(pg_exec(db, "BEGIN"), DB_OK);
	t_assert_int(pg_prepare(db, "SELECT CAST(?1 AS TEXT) IS NULL, "
	    "CAST(?2 AS TEXT) IS NULL", true, &s), DB_OK);
	pg_bind_text(s, 1, "x", -1);
	t_assert_int(pg_step(s), DB_ROW);
	t_assert_int(pg_column_int64(s, 0), 0);
	t_assert_int(pg_column_int64(s, 1), 1);
	pg_finalize(s);
	t_assert_int(pg_exec(db, "COMMIT"), DB_OK);
	t_end();
}

static void
t_changes_constraint(struct db_pg *db)
{
	struct db_pg_stmt *s;

	t_begin("changes, RETURNING, unique violation");
	t_assert_int(pg_exec(db, "UPDATE t SET n = 0"), DB_OK);
	t_assert_int(pg_changes(db), 3);
	t_assert_int(t_int(db, "SELECT count(*) FROM t"), 3);
	t_assert_int(pg_changes(db), 3);	/* a SELECT changes nothing */
	t_assert_int(pg_prepare(db, "DELETE FROM t WHERE c = ? RETURNING "
	    "length(s)", false, &s), DB_OK);
	pg_bind_text(s, 1, "OTHER", -1);
	t_assert_int(pg_step(s), DB_ROW);
	t_assert_int(pg_column_int64(s, 0), 0);
	t_assert_int(pg_step(s), DB_DONE);
	t_assert_int(pg_changes(db), 1);
	pg_finalize(s);
	t_assert_int(pg_prepare(db, "INSERT INTO t (c) VALUES (?1)", true,
	    &s), DB_OK);
	pg_bind_text(s, 1, "MIXED@example.ORG", -1);
	t_assert_int(pg_step(s), DB_CONSTRAINT);
	t_assert(strstr(pg_errmsg(db), "23505") != NULL);
	t_assert(!pg_in_transaction(db));
	pg_reset(s);
	pg_bind_text(s, 1, "new@example.org", -1);
	t_assert_int(pg_step(s), DB_DONE);
	pg_finalize(s);
	t_assert_int(pg_exec(db, "INSERT INTO settings_t VALUES ('a') "
	    "ON CONFLICT DO NOTHING"), DB_OK);
	t_assert_int(pg_changes(db), 1);
	t_assert_int(pg_exec(db, "INSERT INTO settings_t VALUES ('a') "
	    "ON CONFLICT DO NOTHING"), DB_OK);
	t_assert_int(pg_changes(db), 0);
	t_end();
}

static void
t_transactions(struct db_pg *db)
{
	struct db_pg_stmt *begin, *commit, *ins;

	t_begin("BEGIN/SAVEPOINT/ROLLBACK TO/RELEASE/COMMIT");
	t_assert_int(pg_exec(db, "DELETE FROM t"), DB_OK);
	t_assert(!pg_in_transaction(db));
	pg_prepare(db, "BEGIN IMMEDIATE", true, &begin);
	pg_prepare(db, "COMMIT", true, &commit);
	pg_prepare(db, "INSERT INTO t (n, c) VALUES (?1, ?2)", true, &ins);
	t_assert_int(pg_step(begin), DB_DONE);
	t_assert(pg_in_transaction(db));
	pg_bind_int64(ins, 1, 1);
	pg_bind_text(ins, 2, "one", -1);
	t_assert_int(pg_step(ins), DB_DONE);
	t_assert_int(pg_exec(db, "SAVEPOINT store_unit"), DB_OK);
	pg_reset(ins);
	pg_bind_int64(ins, 1, 2);
	t_assert_int(pg_step(ins), DB_CONSTRAINT);	/* "one" again */
	t_assert(pg_in_transaction(db));
	t_assert_int(pg_exec(db, "ROLLBACK TO store_unit"), DB_OK);
	t_assert_int(pg_exec(db, "RELEASE store_unit"), DB_OK);
	t_assert_int(pg_exec(db, "SAVEPOINT store_unit"), DB_OK);
	pg_reset(ins);
	pg_bind_text(ins, 2, "two", -1);
	t_assert_int(pg_step(ins), DB_DONE);
	t_assert_int(pg_exec(db, "RELEASE store_unit"), DB_OK);
	t_assert_int(pg_step(commit), DB_DONE);
	t_assert(!pg_in_transaction(db));
	t_assert_int(t_int(db, "SELECT sum(n) * 10 + count(*) FROM t"), 32);

	/* An error outside a savepoint: COMMIT fails, nothing is kept. */
	t_assert_int(pg_step(begin), DB_DONE);
	pg_reset(ins);
	pg_bind_int64(ins, 1, 3);
	pg_bind_text(ins, 2, "three", -1);
	t_assert_int(pg_step(ins), DB_DONE);
	pg_reset(ins);
	t_assert_int(pg_step(ins), DB_CONSTRAINT);
	t_assert_int(pg_exec(db, "SELECT 1"), DB_ERROR);	/* aborted */
	t_assert_int(pg_step(commit), DB_ERROR);
	t_assert(strstr(pg_errmsg(db), "rolled back") != NULL);
	t_assert(!pg_in_transaction(db));
	t_assert_int(t_int(db, "SELECT count(*) FROM t"), 2);

	/* BEGIN DEFERRED: one snapshot for the whole transaction. */
	t_assert_int(pg_exec(db, "BEGIN DEFERRED"), DB_OK);
	{
		char *iso = t_text(db, "SHOW transaction_isolation");

		t_assert_str(iso, "repeatable read");
		free(iso);
	}
	t_assert_int(pg_exec(db, "ROLLBACK"), DB_OK);
	pg_finalize(begin);
	pg_finalize(commit);
	pg_finalize(ins);
	t_end();
}

static void
t_busy(struct db_pg *a, struct db_pg *b)
{
	struct timespec t0, t1;
	double ms;

	t_begin("a row lock held past lock_timeout -> DB_BUSY");
	t_assert_int(pg_exec(a, "BEGIN"), DB_OK);
	t_assert_int(pg_exec(a, "UPDATE t SET n = n + 1"), DB_OK);
	pg_set_busy_timeout(b, 200);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	t_assert_int(pg_exec(b, "UPDATE t SET n = n + 1"), DB_BUSY);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	t_assert(ms >= 150 && ms < 30000);
	t_assert(strstr(pg_errmsg(b), "55P03") != NULL);
	t_assert_int(pg_exec(a, "COMMIT"), DB_OK);
	pg_set_busy_timeout(b, 0);
	t_end();
}

/* Kill a's backend from b and wait until it is gone. */
static void
t_kill(struct db_pg *a, struct db_pg *b)
{
	struct db_pg_stmt *s;
	int64_t pid = t_int(a, "SELECT pg_backend_pid()");
	time_t deadline = time(NULL) + 30;
	int64_t left = 1;

	pg_prepare(b, "SELECT pg_terminate_backend(CAST(?1 AS INTEGER))",
	    false, &s);
	pg_bind_int64(s, 1, pid);
	if (pg_step(s) != DB_ROW) {
		fprintf(stderr, "pg_terminate_backend: %s\n", pg_errmsg(b));
		t_assert(!"pg_terminate_backend");
	}
	t_assert_int(pg_column_int64(s, 0), 1);
	pg_finalize(s);
	pg_prepare(b, "SELECT count(*) FROM pg_stat_activity WHERE pid = ?1",
	    false, &s);
	while (left != 0 && time(NULL) < deadline) {
		pg_reset(s);
		pg_bind_int64(s, 1, pid);
		if (pg_step(s) == DB_ROW)
			left = pg_column_int64(s, 0);
		if (left != 0)
			usleep(20000);
	}
	t_assert_int(left, 0);
	pg_finalize(s);
}

static void
t_connection_lost(struct db_pg *a, struct db_pg *b)
{
	struct db_pg_stmt *sel, *ins;
	int64_t pid;

	t_begin("connection killed in a transaction, then reconnect");
	pg_prepare(a, "SELECT count(*) FROM t WHERE n = ?1", true, &sel);
	pg_prepare(a, "INSERT INTO t (n, c) VALUES (?1, ?2)", true, &ins);
	pg_bind_int64(sel, 1, 7);
	t_assert_int(pg_step(sel), DB_ROW);	/* prepared on this one */
	pg_reset(sel);
	pid = t_int(a, "SELECT pg_backend_pid()");
	t_assert_int(pg_exec(a, "BEGIN"), DB_OK);
	pg_bind_int64(ins, 1, 7);
	pg_bind_text(ins, 2, "lost", -1);
	t_assert_int(pg_step(ins), DB_DONE);
	t_kill(a, b);
	pg_reset(ins);
	pg_bind_text(ins, 2, "lost2", -1);
	t_assert_int(pg_step(ins), DB_IOERR);
	t_assert(pg_in_transaction(a));
	t_assert_int(pg_step(sel), DB_IOERR);	/* no reconnect inside */
	t_assert_int(pg_exec(a, "ROLLBACK TO store_unit"), DB_IOERR);
	t_assert_int(pg_exec(a, "COMMIT"), DB_IOERR);
	t_assert(pg_in_transaction(a));
	t_assert_int(pg_exec(a, "ROLLBACK"), DB_OK);
	t_assert(!pg_in_transaction(a));
	pg_reset(sel);
	t_assert_int(pg_step(sel), DB_ROW);	/* reconnected, re-prepared */
	t_assert_int(pg_column_int64(sel, 0), 0);	/* nothing kept */
	pg_reset(sel);
	t_assert(t_int(a, "SELECT pg_backend_pid()") != pid);
	{
		char *v = t_text(a, "SHOW synchronous_commit");

		t_assert_str(v, "on");	/* the session set up again */
		free(v);
	}
	t_end();

	t_begin("connection killed while idle: SELECT and BEGIN go on");
	t_kill(a, b);
	t_assert_int(pg_step(sel), DB_ROW);	/* retried once */
	pg_reset(sel);
	t_kill(a, b);
	t_assert_int(pg_exec(a, "BEGIN IMMEDIATE"), DB_OK);
	pg_reset(ins);
	pg_bind_int64(ins, 1, 7);
	pg_bind_text(ins, 2, "kept", -1);
	t_assert_int(pg_step(ins), DB_DONE);
	t_assert_int(pg_exec(a, "COMMIT"), DB_OK);
	t_kill(a, b);
	/* A write is not run again (the server may have run it)... */
	pg_reset(ins);
	pg_bind_text(ins, 2, "kept2", -1);
	t_assert_int(pg_step(ins), DB_IOERR);
	t_assert(!pg_in_transaction(a));
	/* ... the next call reconnects. */
	pg_reset(ins);
	t_assert_int(pg_step(ins), DB_DONE);
	pg_reset(sel);
	t_assert_int(pg_step(sel), DB_ROW);
	t_assert_int(pg_column_int64(sel, 0), 2);
	pg_finalize(sel);
	pg_finalize(ins);
	t_end();
}

/*
 * The server away (pg_ctl stop) and back: calls fail at once with DB_IOERR
 * (one connection attempt each, no waiting), a transaction open when it
 * went stays failed until rolled back, and the first call after it is
 * back reconnects. Only on this test's own cluster.
 */
static void
t_server_away(const char *url)
{
	struct db_pg *a = t_open(url);
	struct db_pg_stmt *sel, *ins;
	struct timespec t0, t1;
	int i;

	t_begin("server stopped and started again: fail fast, reconnect");
	pg_prepare(a, "SELECT count(*) FROM t WHERE n = ?1", true, &sel);
	pg_prepare(a, "INSERT INTO t (n, c) VALUES (?1, ?2)", true, &ins);
	pg_bind_int64(sel, 1, 8);
	t_assert_int(pg_step(sel), DB_ROW);
	pg_reset(sel);
	t_assert_int(pg_exec(a, "BEGIN"), DB_OK);
	pg_bind_int64(ins, 1, 8);
	pg_bind_text(ins, 2, "away1", -1);
	t_assert_int(pg_step(ins), DB_DONE);
	t_assert_int(t_pgcluster_cmd("halt"), 0);
	pg_reset(ins);
	pg_bind_text(ins, 2, "away2", -1);
	t_assert_int(pg_step(ins), DB_IOERR);
	t_assert(pg_in_transaction(a));
	t_assert_int(pg_exec(a, "ROLLBACK"), DB_OK);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < 3; i++) {
		t_assert_int(pg_step(sel), DB_IOERR);
		pg_reset(sel);
		t_assert_int(pg_exec(a, "BEGIN IMMEDIATE"), DB_IOERR);
		t_assert(!pg_in_transaction(a));
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	t_assert(t1.tv_sec - t0.tv_sec < 20);	/* refused: no waiting */
	t_assert(strstr(pg_errmsg(a), "reconnect") != NULL);
	t_assert_int(t_pgcluster_cmd("resume"), 0);
	t_assert_int(pg_exec(a, "BEGIN IMMEDIATE"), DB_OK);
	pg_reset(ins);
	pg_bind_text(ins, 2, "back", -1);
	t_assert_int(pg_step(ins), DB_DONE);
	t_assert_int(pg_exec(a, "COMMIT"), DB_OK);
	t_assert_int(pg_step(sel), DB_ROW);
	t_assert_int(pg_column_int64(sel, 0), 1);	/* "back" only */
	pg_finalize(sel);
	pg_finalize(ins);
	pg_close(a);
	t_end();
}

int
main(void)
{
	struct db_pg *a, *b;
	char *url;

	t_translate();
	t_pg_setup();
	url = t_newdb("layer");
	t_password(url);
	a = t_open(url);
	b = t_open(url);
	t_session(a, url);
	t_assert_int(pg_exec(a, "CREATE TABLE t (id BIGINT GENERATED BY "
	    "DEFAULT AS IDENTITY PRIMARY KEY, n BIGINT, s TEXT, c citext "
	    "UNIQUE, b BYTEA); CREATE TABLE settings_t (k TEXT PRIMARY KEY)"),
	    DB_ERROR);	/* no citext yet */
	t_assert_int(pg_exec(a, "CREATE EXTENSION IF NOT EXISTS citext; "
	    "CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY "
	    "PRIMARY KEY, n BIGINT, s TEXT, c citext UNIQUE, b BYTEA); "
	    "CREATE TABLE settings_t (k TEXT PRIMARY KEY)"), DB_OK);
	t_roundtrip(a, false);
	t_roundtrip(a, true);
	t_inference(a);
	t_changes_constraint(a);
	t_transactions(a);
	t_busy(a, b);
	t_connection_lost(a, b);
	pg_close(a);
	pg_close(b);
	if (t_own_cluster)
		t_server_away(url);
	free(url);
	return t_exit();
}
