/*
 * The PostgreSQL schema (store/schema_pg.c) on a real server (pg_cluster.h):
 * every migration applies to an empty database, and the result matches
 * the SQLite schema of store/schema.c table by table and column by column
 * (type, NOT NULL, default, foreign keys and their ON DELETE, unique and
 * named indexes); then the SQL the two backends must share, run on both.
 */
#include "t.h"
#include "pg_cluster.h"
#include "store/schema.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* One SQLite query's single int64 result. */
static int64_t
t_lite_int(sqlite3 *lite, const char *sql)
{
	sqlite3_stmt *s;
	int64_t v = -1;

	if (sqlite3_prepare_v2(lite, sql, -1, &s, NULL) != SQLITE_OK)
		return v;
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

/* The columns of SQLite table tab in PostgreSQL: same names, type
 * (INTEGER -> int8, BLOB -> bytea, NOCASE -> citext, else text), NOT
 * NULL and default. Returns how many columns tab has. */
static int64_t
t_compare_columns(sqlite3 *lite, struct db_pg *db, const char *tab)
{
	struct db_pg_stmt *pc;
	sqlite3_stmt *cols;
	const char *coll, *col, *ltype, *ldef, *type, *want;
	char sql[256];
	int64_t n = 0;
	int notnull, pk;

	pg_prepare(db, "SELECT data_type, is_nullable, udt_name, "
	    "column_default FROM information_schema.columns WHERE "
	    "table_schema = 'public' AND table_name = ?1 AND column_name = "
	    "?2", true, &pc);
	snprintf(sql, sizeof(sql), "PRAGMA table_info(\"%s\")", tab);
	sqlite3_prepare_v2(lite, sql, -1, &cols, NULL);
	while (sqlite3_step(cols) == SQLITE_ROW) {
		col = (const char *)sqlite3_column_text(cols, 1);
		ltype = (const char *)sqlite3_column_text(cols, 2);
		ldef = (const char *)sqlite3_column_text(cols, 4);
		n++;
		sqlite3_table_column_metadata(lite, NULL, tab, col, NULL,
		    &coll, &notnull, &pk, NULL);
		pg_reset(pc);
		pg_bind_text(pc, 1, tab, -1);
		pg_bind_text(pc, 2, col, -1);
		if (pg_step(pc) != DB_ROW) {
			fprintf(stderr, "missing in PostgreSQL: %s.%s\n", tab,
			    col);
			t_assert(!"column missing");
			continue;
		}
		if (strcasecmp(coll, "NOCASE") == 0)
			want = "citext";
		else if (strcasecmp(ltype, "INTEGER") == 0)
			want = "int8";
		else if (strcasecmp(ltype, "BLOB") == 0)
			want = "bytea";
		else
			want = "text";
		if ((type = pg_column_text(pc, 2)) == NULL)
			type = "(null)";
		if (strcmp(type, want) != 0)
			fprintf(stderr, "%s.%s: %s, want %s\n", tab, col, type,
			    want);
		t_assert_str(type, want);
		/* SQLite's INTEGER PRIMARY KEY is NOT NULL too. */
		want = notnull || pk ? "NO" : "YES";
		if (strcmp(pg_column_text(pc, 1), want) != 0)
			fprintf(stderr, "%s.%s: nullable %s, want %s\n", tab,
			    col, pg_column_text(pc, 1), want);
		t_assert_str(pg_column_text(pc, 1), want);
		/* Defaults: the same literal (identity ids have none). */
		if (ldef != NULL || pg_column_text(pc, 3) != NULL) {
			if (ldef == NULL || pg_column_text(pc, 3) == NULL ||
			    strcmp(ldef, pg_column_text(pc, 3)) != 0)
				fprintf(stderr, "%s.%s: default %s, want "
				    "%s\n", tab, col, pg_column_text(pc, 3),
				    ldef);
			t_assert_str(pg_column_text(pc, 3), ldef);
		}
	}
	sqlite3_finalize(cols);
	pg_finalize(pc);
	return n;
}

/* Foreign keys of tab: same column, target and ON DELETE. */
static void
t_compare_fks(sqlite3 *lite, struct db_pg *db, const char *tab)
{
	struct db_pg_stmt *pc;
	sqlite3_stmt *fk;
	const char *act, *want;
	char sql[256];
	int64_t n = 0;

	pg_prepare(db, "SELECT c.confrelid::regclass::text, c.confdeltype "
	    "FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = "
	    "c.conrelid AND a.attnum = c.conkey[1] WHERE c.contype = 'f' "
	    "AND c.conrelid = CAST(?1 AS regclass) AND a.attname = ?2",
	    true, &pc);
	snprintf(sql, sizeof(sql), "PRAGMA foreign_key_list(\"%s\")", tab);
	sqlite3_prepare_v2(lite, sql, -1, &fk, NULL);
	while (sqlite3_step(fk) == SQLITE_ROW) {
		n++;
		act = (const char *)sqlite3_column_text(fk, 6);
		want = strcmp(act, "CASCADE") == 0 ? "c" :
		    strcmp(act, "NO ACTION") == 0 ? "a" :
		    strcmp(act, "RESTRICT") == 0 ? "r" :
		    strcmp(act, "SET NULL") == 0 ? "n" : "d";
		pg_reset(pc);
		pg_bind_text(pc, 1, tab, -1);
		pg_bind_text(pc, 2, (const char *)sqlite3_column_text(fk, 3),
		    -1);
		t_assert_int(pg_step(pc), DB_ROW);
		t_assert_str(pg_column_text(pc, 0),
		    (const char *)sqlite3_column_text(fk, 2));
		if (pg_column_text(pc, 1) == NULL ||
		    strcmp(pg_column_text(pc, 1), want) != 0)
			fprintf(stderr, "%s: foreign key ON DELETE %s, want "
			    "%s\n", tab, pg_column_text(pc, 1), want);
		t_assert_str(pg_column_text(pc, 1), want);
	}
	sqlite3_finalize(fk);
	pg_finalize(pc);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_constraint "
	    "WHERE contype = 'f' AND conrelid = '%s'::regclass", tab);
	t_assert_int(t_int(db, sql), n);
}

/* Unique indexes (primary keys, UNIQUE) per table: as many. SQLite's
 * rowid alias (INTEGER PRIMARY KEY) has no index; PostgreSQL's has. */
static void
t_compare_unique(sqlite3 *lite, struct db_pg *db, const char *tab)
{
	char sql[512];
	int64_t n;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pragma_index_list"
	    "('%s') WHERE \"unique\"", tab);
	n = t_lite_int(lite, sql);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pragma_table_info"
	    "('%s') WHERE pk = 1 AND type = 'INTEGER' AND (SELECT count(*) "
	    "FROM pragma_table_info('%s') WHERE pk > 0) = 1 AND NOT EXISTS "
	    "(SELECT 1 FROM pragma_index_list('%s') WHERE origin = 'pk')",
	    tab, tab, tab);
	n += t_lite_int(lite, sql);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_index WHERE "
	    "indisunique AND indrelid = '%s'::regclass", tab);
	if (t_int(db, sql) != n)
		fprintf(stderr, "%s: unique indexes differ\n", tab);
	t_assert_int(t_int(db, sql), n);
}

/* Every table, column, foreign key, unique and named index of the SQLite
 * schema, compared with the PostgreSQL one. */
static void
t_compare_sqlite(struct db_pg *db)
{
	sqlite3 *lite;
	sqlite3_stmt *tabs;
	struct db_pg_stmt *pc;
	int64_t ncols = 0, ntabs = 0, nidx = 0;
	const char *tab;
	size_t v;

	t_assert_int(sqlite3_open(":memory:", &lite), SQLITE_OK);
	for (v = 1; v <= store_schema_migration_count(); v++)
		t_assert_int(sqlite3_exec(lite, store_schema_migration(v),
		    NULL, NULL, NULL), SQLITE_OK);
	sqlite3_prepare_v2(lite, "SELECT name FROM sqlite_schema WHERE "
	    "type = 'table' ORDER BY name", -1, &tabs, NULL);
	while (sqlite3_step(tabs) == SQLITE_ROW) {
		tab = (const char *)sqlite3_column_text(tabs, 0);
		ntabs++;
		ncols += t_compare_columns(lite, db, tab);
		t_compare_fks(lite, db, tab);
		t_compare_unique(lite, db, tab);
	}
	sqlite3_finalize(tabs);
	/* No more tables or columns (but schema_version's). */
	t_assert_int(t_int(db, "SELECT count(*) FROM pg_tables WHERE "
	    "schemaname = 'public'"), ntabs + 1);
	t_assert_int(t_int(db, "SELECT count(*) FROM information_schema."
	    "columns WHERE table_schema = 'public'"), ncols + 2);
	/* The same named indexes, with the same partial WHERE. */
	sqlite3_prepare_v2(lite, "SELECT name, sql LIKE '% WHERE %' FROM "
	    "sqlite_schema WHERE type = 'index' AND sql IS NOT NULL", -1,
	    &tabs, NULL);
	pg_prepare(db, "SELECT count(*), bool_or(indexdef LIKE '% WHERE %') "
	    "FROM pg_indexes WHERE schemaname = 'public' AND indexname = ?1",
	    true, &pc);
	while (sqlite3_step(tabs) == SQLITE_ROW) {
		nidx++;
		pg_reset(pc);
		pg_bind_text(pc, 1, (const char *)sqlite3_column_text(tabs,
		    0), -1);
		t_assert_int(pg_step(pc), DB_ROW);
		t_assert_int(pg_column_int64(pc, 0), 1);
		t_assert_int(pg_column_int64(pc, 1),
		    sqlite3_column_int(tabs, 1));
	}
	t_assert(nidx >= 8);
	t_assert_int(t_int(db, "SELECT count(*) FROM pg_indexes WHERE "
	    "schemaname = 'public' AND NOT indexdef LIKE 'CREATE UNIQUE%'"),
	    nidx);
	sqlite3_finalize(tabs);
	pg_finalize(pc);
	sqlite3_close(lite);
}

/* ---- SQL both backends run (the dialect fixes for store/) ---- */

/*
 * One statement on either backend: its ncols columns per row as "a|b\n"
 * (NULL as "NULL"), "#changes" for a statement without rows, "ERROR"
 * when it fails. binds: "i:123", "t:text", "n" (NULL), NULL-terminated.
 */
struct t_case {
	const char *sql;	/* both backends, or SQLite only */
	const char *pg_sql;	/* PostgreSQL's, if it differs */
	const char *binds[6];
	int ncols;
	const char *want;
};

static void
t_cat(char *out, size_t size, const char *s)
{
	snprintf(out + strlen(out), size - strlen(out), "%s", s);
}

static char *
t_rows_lite(sqlite3 *lite, const struct t_case *c)
{
	char out[4096] = "";
	sqlite3_stmt *s;
	const char *v;
	int i, rc, rows = 0;

	if (sqlite3_prepare_v2(lite, c->sql, -1, &s, NULL) != SQLITE_OK) {
		fprintf(stderr, "sqlite: %s\n", sqlite3_errmsg(lite));
		return xstrdup("ERROR");
	}
	for (i = 0; c->binds[i] != NULL; i++) {
		if (c->binds[i][0] == 'i')
			sqlite3_bind_int64(s, i + 1, strtoll(c->binds[i] + 2,
			    NULL, 10));
		else if (c->binds[i][0] == 't')
			sqlite3_bind_text(s, i + 1, c->binds[i] + 2, -1,
			    SQLITE_STATIC);
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		rows++;
		for (i = 0; i < c->ncols; i++) {
			v = (const char *)sqlite3_column_text(s, i);
			if (i > 0)
				t_cat(out, sizeof(out), "|");
			t_cat(out, sizeof(out), v != NULL ? v : "NULL");
		}
		t_cat(out, sizeof(out), "\n");
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		fprintf(stderr, "sqlite: %s\n", sqlite3_errmsg(lite));
		return xstrdup("ERROR");
	}
	if (rows == 0 && c->ncols == 0)
		snprintf(out, sizeof(out), "#%d", sqlite3_changes(lite));
	return xstrdup(out);
}

static char *
t_rows_pg(struct db_pg *db, const struct t_case *c, const char *sql)
{
	char out[4096] = "";
	struct db_pg_stmt *s;
	const char *v;
	int i, rc, rows = 0;

	if (pg_prepare(db, sql, false, &s) != DB_OK)
		return xstrdup("ERROR");
	for (i = 0; c->binds[i] != NULL; i++) {
		if (c->binds[i][0] == 'i')
			pg_bind_int64(s, i + 1, strtoll(c->binds[i] + 2, NULL,
			    10));
		else if (c->binds[i][0] == 't')
			pg_bind_text(s, i + 1, c->binds[i] + 2, -1);
	}
	while ((rc = pg_step(s)) == DB_ROW) {
		rows++;
		for (i = 0; i < c->ncols; i++) {
			v = pg_column_text(s, i);
			if (i > 0)
				t_cat(out, sizeof(out), "|");
			t_cat(out, sizeof(out), v != NULL ? v : "NULL");
		}
		t_cat(out, sizeof(out), "\n");
	}
	pg_finalize(s);
	if (rc != DB_DONE) {
		if (getenv("TEST_DEBUG") != NULL)
			fprintf(stderr, "pg: %s\n", pg_errmsg(db));
		return xstrdup("ERROR");
	}
	if (rows == 0 && c->ncols == 0)
		snprintf(out, sizeof(out), "#%lld",
		    (long long)pg_changes(db));
	return xstrdup(out);
}

/* The same rows on both; a case with want "PG:..." is SQLite-only SQL
 * (sql) that PostgreSQL answers differently (the ... part). */
static void
t_run_cases(sqlite3 *lite, struct db_pg *db, const struct t_case *cases,
    size_t n)
{
	const struct t_case *c;
	char *got;
	size_t i;

	for (i = 0; i < n; i++) {
		c = &cases[i];
		if (strncmp(c->want, "PG:", 3) == 0) {
			got = t_rows_pg(db, c, c->sql);
			if (strcmp(got, c->want + 3) != 0)
				fprintf(stderr, "case %zu (PostgreSQL): %s\n",
				    i, c->sql);
			t_assert_str(got, c->want + 3);
			free(got);
			continue;
		}
		got = t_rows_lite(lite, c);
		if (strcmp(got, c->want) != 0)
			fprintf(stderr, "case %zu (SQLite): %s\n", i, c->sql);
		t_assert_str(got, c->want);
		free(got);
		got = t_rows_pg(db, c, c->pg_sql != NULL ? c->pg_sql : c->sql);
		if (strcmp(got, c->want) != 0)
			fprintf(stderr, "case %zu (PostgreSQL): %s\n", i,
			    c->pg_sql != NULL ? c->pg_sql : c->sql);
		t_assert_str(got, c->want);
		free(got);
	}
}

/* The same rows in both (explicit ids, as a copy from SQLite writes
 * them); PostgreSQL's identities then move past them. */
static const char t_seed[] =
	"INSERT INTO domains (id, name) VALUES (1, 'Example.ORG'),"
	"  (2, 'other.org');"
	"INSERT INTO users (id, address, domain_id, hash, used, uid_epoch,"
	"  next_uid) VALUES (1, 'Bob@Example.org', 1, 'h', 10, 26, 5),"
	"  (2, 'amy@other.org', 2, 'h', 0, 27, 1);"
	"INSERT INTO aliases (id, source, dest) VALUES (1, 'x@example.org',"
	"  'a'), (2, '@EXAMPLE.org', 'b'), (3, 'y@other.org', 'c'),"
	"  (4, 'z@sub.example.org', 'd'), (5, '@a.b', 'e');"
	"INSERT INTO bodies (id, size, refs, created) VALUES (1, 3, 3, 0);"
	"INSERT INTO mailbox (id, user_id, uidl, body_id, size, arrived)"
	"  VALUES (1, 1, '1a.3', 1, 3, 0), (2, 1, '1a.9', 1, 3, 0),"
	"  (3, 1, 'bad uidl', 1, 3, 0);";

static const char t_seed_pg[] =
	"SELECT setval(pg_get_serial_sequence(t, 'id'), 100) FROM"
	"  unnest(ARRAY['domains', 'users', 'aliases', 'bodies', 'mailbox'])"
	"  AS t;";

static const struct t_case t_cases[] = {
	/* directory.c domain delete: negative substr() start is SQLite's
	 * "from the end"; length arithmetic works in both. */
	{ "SELECT source FROM aliases WHERE lower(substr(source, "
	  "length(source) - length(?1))) = '@' || lower(?1) ORDER BY id",
	  NULL, { "t:Example.ORG" }, 1, "x@example.org\n@EXAMPLE.org\n" },
	{ "SELECT source FROM aliases WHERE lower(substr(source, "
	  "-(length(?1) + 1))) = '@' || ?1 ORDER BY id", NULL,
	  { "t:example.org" }, 1, "PG:@EXAMPLE.org\n" },
	/* mailbox.c: scalar max(a, b) is SQLite's; CASE is both's. */
	{ "UPDATE users SET used = CASE WHEN used > ?2 THEN used - ?2 "
	  "ELSE 0 END WHERE id = ?1", NULL, { "i:1", "i:3" }, 0, "#1" },
	{ "SELECT used FROM users WHERE id = 1", NULL, { NULL }, 1, "7\n" },
	{ "UPDATE users SET used = CASE WHEN used > ?2 THEN used - ?2 "
	  "ELSE 0 END WHERE id = ?1", NULL, { "i:1", "i:15" }, 0, "#1" },
	{ "SELECT used FROM users WHERE id = 1", NULL, { NULL }, 1, "0\n" },
	{ "UPDATE users SET used = max(used - ?2, 0) WHERE id = ?1", NULL,
	  { "i:1", "i:3" }, 0, "PG:ERROR" },
	/* settings.c, monitor.c: INSERT OR IGNORE. */
	{ "INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT "
	  "DO NOTHING", NULL, { "t:srs", "t:one" }, 0, "#1" },
	{ "INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT "
	  "DO NOTHING", NULL, { "t:srs", "t:two" }, 0, "#0" },
	{ "SELECT value FROM settings", NULL, { NULL }, 1, "one\n" },
	{ "INSERT OR IGNORE INTO settings (name, value) VALUES (?1, ?2)",
	  NULL, { "t:srs", "t:two" }, 0, "PG:ERROR" },
	/* throttle.c, suppress.c, mta_sts.c: INSERT OR REPLACE. The key
	 * keeps its first spelling (OR REPLACE took the new one). */
	{ "INSERT INTO relay_throttle (domain, concurrency, held_until, "
	  "since, reason) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (domain) "
	  "DO UPDATE SET concurrency = excluded.concurrency, held_until = "
	  "excluded.held_until, since = excluded.since, reason = "
	  "excluded.reason", NULL,
	  { "t:Mx.Example", "i:1", "i:2", "i:3", "t:first" }, 0, "#1" },
	{ "INSERT INTO relay_throttle (domain, concurrency, held_until, "
	  "since, reason) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (domain) "
	  "DO UPDATE SET concurrency = excluded.concurrency, held_until = "
	  "excluded.held_until, since = excluded.since, reason = "
	  "excluded.reason", NULL,
	  { "t:mx.example", "i:4", "i:5", "i:6", "t:second" }, 0, "#1" },
	{ "SELECT domain, concurrency, held_until, reason FROM "
	  "relay_throttle", NULL, { NULL }, 4, "Mx.Example|4|5|second\n" },
	{ "INSERT OR REPLACE INTO relay_throttle (domain, concurrency, "
	  "held_until, since, reason) VALUES ('a', 1, 1, 1, 'x')", NULL,
	  { NULL }, 0, "PG:ERROR" },
	/* sendlog.c: "user" is reserved in PostgreSQL; unquoted it is
	 * CURRENT_USER (no error, no rows). */
	{ "INSERT INTO send_log (\"user\", at, count) VALUES (?1, ?2, ?3)",
	  NULL, { "t:Bob@Example.org", "i:100", "i:5" }, 0, "#1" },
	{ "SELECT coalesce(sum(count), 0) FROM send_log WHERE \"user\" = ?1 "
	  "AND at >= ?2", NULL, { "t:bob@EXAMPLE.org", "i:50" }, 1, "5\n" },
	{ "SELECT coalesce(sum(count), 0) FROM send_log WHERE user = ?1 "
	  "AND at >= ?2", NULL, { "t:bob@EXAMPLE.org", "i:50" }, 1,
	  "PG:0\n" },
	/* delivery.c, import.c: RETURNING id, not last_insert_rowid(). */
	{ "INSERT INTO bodies (size, refs, created) VALUES (?1, 0, 0) "
	  "RETURNING CASE WHEN id > 1 THEN size END", NULL, { "i:3" }, 1,
	  "3\n" },
	/* retention.c: INDEXED BY is SQLite's. */
	{ "SELECT m.id FROM mailbox m JOIN users u ON u.id = m.user_id "
	  "WHERE m.first_retrieved IS NOT NULL AND m.id > ?1 ORDER BY m.id "
	  "LIMIT ?2", NULL, { "i:0", "i:10" }, 1, "" },
	{ "SELECT m.id FROM mailbox m INDEXED BY mailbox_retrieved WHERE "
	  "m.first_retrieved IS NOT NULL", NULL, { NULL }, 1, "PG:ERROR" },
	/* verify.c: group by the key the selected columns depend on. */
	{ "SELECT u.address, m.uidl, count(*) FROM mailbox m JOIN users u "
	  "ON u.id = m.user_id GROUP BY u.id, m.uidl HAVING count(*) > 1 "
	  "ORDER BY u.address, m.uidl", NULL, { NULL }, 3, "" },
	{ "SELECT u.address, m.uidl, count(*) FROM mailbox m JOIN users u "
	  "ON u.id = m.user_id GROUP BY m.user_id, m.uidl", NULL, { NULL },
	  3, "PG:ERROR" },
	/* verify.c: hex(), GLOB, printf() have no common spelling: one
	 * text per backend, the same answers. */
	{ "SELECT u.address, m.id, hex(m.uidl) FROM mailbox m JOIN users u "
	  "ON u.id = m.user_id WHERE length(m.uidl) < 1 OR length(m.uidl) > "
	  "70 OR m.uidl GLOB '*[^!-~]*' ORDER BY m.id",
	  "SELECT u.address, m.id, upper(encode(convert_to(m.uidl, 'UTF8'), "
	  "'hex')) FROM mailbox m JOIN users u ON u.id = m.user_id WHERE "
	  "length(m.uidl) < 1 OR length(m.uidl) > 70 OR m.uidl ~ '[^!-~]' "
	  "ORDER BY m.id", { NULL }, 3,
	  "Bob@Example.org|3|626164207569646C\n" },
	{ "SELECT u.address, m.uidl, u.next_uid FROM mailbox m JOIN users u "
	  "ON u.id = m.user_id WHERE m.uidl = printf('%x.', u.uid_epoch) || "
	  "substr(m.uidl, length(printf('%x.', u.uid_epoch)) + 1) AND "
	  "substr(m.uidl, length(printf('%x.', u.uid_epoch)) + 1) NOT GLOB "
	  "'*[^0-9]*' AND CAST(substr(m.uidl, length(printf('%x.', "
	  "u.uid_epoch)) + 1) AS INTEGER) >= u.next_uid ORDER BY m.id",
	  "SELECT address, uidl, next_uid FROM (SELECT u.address, m.id, "
	  "m.uidl, u.next_uid, to_hex(u.uid_epoch) || '.' AS p FROM mailbox "
	  "m JOIN users u ON u.id = m.user_id) x WHERE substr(uidl, 1, "
	  "length(p)) = p AND CASE WHEN substr(uidl, length(p) + 1) !~ "
	  "'^[0-9]*$' THEN false WHEN length(uidl) - length(p) > 18 THEN "
	  "true ELSE CAST('0' || substr(uidl, length(p) + 1) AS BIGINT) >= "
	  "next_uid END ORDER BY id", { NULL }, 3, "Bob@Example.org|1a.9|5\n" },
	/* NOCASE and citext: lookups and order. */
	{ "SELECT id FROM users WHERE address = ?1", NULL,
	  { "t:BOB@EXAMPLE.ORG" }, 1, "1\n" },
	{ "SELECT name FROM domains ORDER BY name", NULL, { NULL }, 1,
	  "Example.ORG\nother.org\n" },
};

static void
t_dialect(struct db_pg *db)
{
	sqlite3 *lite;
	size_t v;

	t_begin("the dialect fixes: the same answers on both backends");
	t_assert_int(sqlite3_open(":memory:", &lite), SQLITE_OK);
	for (v = 1; v <= store_schema_migration_count(); v++)
		t_assert_int(sqlite3_exec(lite, store_schema_migration(v),
		    NULL, NULL, NULL), SQLITE_OK);
	t_assert_int(sqlite3_exec(lite, t_seed, NULL, NULL, NULL),
	    SQLITE_OK);
	t_assert_int(pg_exec(db, "DELETE FROM mailbox; DELETE FROM bodies; "
	    "DELETE FROM users; DELETE FROM aliases; DELETE FROM send_log; "
	    "DELETE FROM domains"), DB_OK);
	t_assert_int(pg_exec(db, t_seed), DB_OK);
	t_assert_int(pg_exec(db, t_seed_pg), DB_OK);
	t_run_cases(lite, db, t_cases, sizeof(t_cases) / sizeof(t_cases[0]));
	sqlite3_close(lite);
	t_end();
}

static void
t_schema(void)
{
	char *url = t_newdb("schema");
	struct db_pg *db = t_open(url);
	struct db_pg_stmt *s;

	t_begin("every schema_pg migration on an empty database");
	t_assert(store_schema_pg_migration(0) == NULL);
	t_assert(store_schema_pg_migration(
	    store_schema_pg_migration_count() + 1) == NULL);
	t_assert_int(t_migrate(db), 0);
	t_assert_int(t_int(db, "SELECT version FROM schema_version"),
	    store_schema_pg_migration_count());
	/* the owner (no superuser) created citext */
	t_assert_int(t_int(db, "SELECT count(*) FROM pg_roles WHERE "
	    "rolname = current_user AND NOT rolsuper"), 1);
	t_compare_sqlite(db);
	t_end();

	t_begin("schema_pg: citext, identity, ON DELETE, foreign keys");
	t_assert_int(pg_exec(db, "INSERT INTO domains (name) VALUES "
	    "('Example.ORG'); INSERT INTO users (address, domain_id, hash) "
	    "SELECT 'Bob@Example.org', id, 'h' FROM domains; "
	    "INSERT INTO bodies (size, refs, created) VALUES (1, 1, 0); "
	    "INSERT INTO mailbox (user_id, uidl, body_id, size, arrived) "
	    "SELECT u.id, '1.1', b.id, 1, 0 FROM users u, bodies b"),
	    DB_OK);
	pg_prepare(db, "SELECT u.id FROM users u JOIN domains d ON d.id = "
	    "u.domain_id WHERE d.name = ?1 AND u.address = ?2", false, &s);
	pg_bind_text(s, 1, "example.org", -1);
	pg_bind_text(s, 2, "BOB@EXAMPLE.ORG", -1);
	t_assert_int(pg_step(s), DB_ROW);
	pg_finalize(s);
	t_assert_int(pg_exec(db, "INSERT INTO users (address, domain_id, "
	    "hash) SELECT 'bob@example.org', id, 'h' FROM domains"),
	    DB_CONSTRAINT);
	t_assert_int(pg_exec(db, "DELETE FROM bodies"), DB_CONSTRAINT);
	t_assert_int(pg_exec(db, "DELETE FROM users"), DB_OK);
	t_assert_int(t_int(db, "SELECT count(*) FROM mailbox"), 0);
	t_assert_int(pg_exec(db, "INSERT INTO send_log (\"user\", at, count) "
	    "VALUES ('A@b', 1, 2)"), DB_OK);
	t_assert_int(t_int(db, "SELECT count FROM send_log WHERE \"user\" = "
	    "'a@B'"), 2);
	t_assert_int(t_int(db, "SELECT count(*) FROM send_log WHERE user = "
	    "'a@B'"), 0);	/* unquoted: CURRENT_USER (the trap) */
	t_end();
	t_dialect(db);
	pg_close(db);
	free(url);
}

int
main(void)
{
	t_pg_setup();
	t_schema();
	return t_exit();
}
