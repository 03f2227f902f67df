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
		type = pg_column_text(pc, 2);
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
