/*
 * store_copy (store/copy.c) on SQLite -> SQLite: every table of the
 * current schema is known to the copy (a migration that adds a table
 * fails here until store/copy.c names it); a filled store (every table
 * with rows: users with hashes and quota, aliases, inline and chunked
 * bodies, a deleted message, an imported foreign UIDL, queued mail with
 * DSN fields, server state) comes out row for row and byte for byte the
 * same, ids included; the copy verifies clean and goes on giving new
 * UIDLs; a second copy into it is refused; a copy that fails half way
 * leaves the target empty; an unknown table in the source refuses the
 * copy.
 */
#include "t.h"
#include "copy_fill.h"
#include "common/log.h"
#include "common/util.h"
#include "store/copy.h"
#include "store/import.h"
#include "store/settings.h"
#include "store/store.h"
#include "store/store_internal.h"
#include "store/verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


static char t_dir[256];

static char *
t_path(const char *name)
{
	return xasprintf("%s/%s", t_dir, name);
}

static struct store *
t_store(const char *name, bool migrate)
{
	char *path = t_path(name);
	const char *err = NULL;
	struct store *st = store_open(path, &err);

	if (st == NULL || (migrate && store_migrate(st) < 0)) {
		fprintf(stderr, "store %s: %s\n", path,
		    st != NULL ? store_error(st) : err);
		exit(1);
	}
	free(path);
	return st;
}

/* Every row of every table, every value with its type: the whole
 * database as one string (caller frees). *tables_r: tables, *empty_r:
 * tables without rows. */
static char *
t_dump(struct store *st, int *tables_r, int *empty_r)
{
	struct db_stmt *tl, *s;
	char *buf = NULL, *sql, num[32];
	size_t len = 0;
	int ncol, rows;

	*tables_r = *empty_r = 0;
	cf_cat(&buf, &len, "", 0);
	if (db_prepare(st->db, "SELECT name, (SELECT count(*) FROM "
	    "pragma_table_info(m.name)) FROM sqlite_master m WHERE "
	    "type = 'table' ORDER BY name", false, &tl) != DB_OK)
		return buf;
	while (db_step(tl) == DB_ROW) {
		const char *name = db_column_text(tl, 0);

		ncol = db_column_int(tl, 1);
		(*tables_r)++;
		cf_cat(&buf, &len, name, strlen(name));
		cf_cat(&buf, &len, ":\n", 2);
		sql = xasprintf("SELECT * FROM \"%s\" ORDER BY 1, 2", name);
		if (db_prepare(st->db, sql, false, &s) != DB_OK) {
			free(sql);
			continue;
		}
		free(sql);
		rows = 0;
		while (db_step(s) == DB_ROW) {
			rows++;
			for (int i = 0; i < ncol; i++) {
				int type = db_column_type(s, i);
				const void *p;

				snprintf(num, sizeof(num), " %d:", type);
				cf_cat(&buf, &len, num, strlen(num));
				if (type == DB_INTEGER) {
					snprintf(num, sizeof(num), "%lld",
					    (long long)db_column_int64(s, i));
					cf_cat(&buf, &len, num, strlen(num));
				} else if (type != DB_NULL) {
					p = db_column_blob(s, i);
					cf_cat(&buf, &len, p,
					    db_column_bytes(s, i));
				}
			}
			cf_cat(&buf, &len, "\n", 1);
		}
		db_finalize(s);
		if (rows == 0)
			(*empty_r)++;
	}
	db_finalize(tl);
	return buf;
}

static void
t_no_problem(const char *problem, void *arg)
{
	(void)arg;
	fprintf(stderr, "verify: %s\n", problem);
}

static void
test_tables(void)
{
	struct store *st = t_store("tables.db", true);
	char *unknown = NULL;

	t_begin("every table of the current schema is known to store copy");
	t_assert_int(store_copy_unknown_table(st, &unknown), 0);
	t_assert(unknown == NULL);
	t_assert_int(store_exec(st, "CREATE TABLE extra (x INTEGER)"), 0);
	t_assert_int(store_copy_unknown_table(st, &unknown), 1);
	t_assert_str(unknown, "extra");
	free(unknown);
	t_end();
	store_close(st);
}

static void
test_copy(void)
{
	struct store *src = t_store("src.db", true);
	struct store *dst = t_store("dst.db", false), *bad;
	struct store_copy_counts c;
	struct store_msg *msgs = NULL;
	char *a, *b, *after;
	int ta, ea, tb, eb;
	unsigned problems = 1;
	size_t n = 0;

	cf_fill(src);
	t_begin("store copy: every table, row for row, ids kept");
	t_assert_int(store_copy(src, dst, &c), 0);
	t_assert_int(c.users, 3);
	t_assert_int(c.messages, 6);	/* 4 + 2 - 1 + 1 imported */
	t_assert_int(c.bodies, 5);
	t_assert_int(c.queue, 2);
	a = t_dump(src, &ta, &ea);
	b = t_dump(dst, &tb, &eb);
	t_assert_int(ta, 15);
	t_assert_int(ea, 0);		/* the fill reached every table */
	t_assert_int(tb, ta);
	t_assert_int(eb, 0);
	t_assert_str(a, b);
	t_assert_int(c.rows, cf_int(src, "SELECT (SELECT count(*) FROM "
	    "domains) + (SELECT count(*) FROM users) + (SELECT count(*) FROM "
	    "aliases) + (SELECT count(*) FROM bodies) + (SELECT count(*) "
	    "FROM body_chunks) + (SELECT count(*) FROM mailbox) + (SELECT "
	    "count(*) FROM queue) + (SELECT count(*) FROM queue_rcpt) + "
	    "(SELECT count(*) FROM send_log) + (SELECT count(*) FROM "
	    "settings) + (SELECT count(*) FROM imported) + (SELECT count(*) "
	    "FROM suppress) + (SELECT count(*) FROM relay_throttle) + "
	    "(SELECT count(*) FROM mta_sts) + (SELECT count(*) FROM "
	    "monitor_listing)"));
	t_assert_int(cf_int(dst, "SELECT count(*) FROM body_chunks"), 4);
	t_assert_int(store_verify(dst, t_no_problem, NULL, &problems), 0);
	t_assert_int(problems, 0);
	t_end();

	t_begin("store copy: a second copy into it is refused, nothing "
	    "changes");
	t_assert_int(store_copy(src, dst, &c), -1);
	t_assert_str(store_error(dst), "the target store is not empty "
	    "(2 rows in domains): copy only into a new, empty store");
	after = t_dump(dst, &tb, &eb);
	t_assert_str(after, b);
	free(after);
	t_end();

	t_begin("store copy: the copy goes on with new UIDLs past the old");
	t_assert_int(cf_deliver(dst, "Subject: new\r\n\r\nnew\r\n", 20,
	    (const char *const[]){ ALICE }, 1, NULL, 0), 0);
	t_assert_int(store_mailbox_list(dst, ALICE, &msgs, &n), 0);
	t_assert_int(n, 4);
	if (n == 4) {
		t_assert(strcmp(msgs[3].uidl, msgs[2].uidl) != 0);
		t_assert(msgs[3].id > cf_int(src, "SELECT max(id) FROM "
		    "mailbox"));
		t_assert(strtoll(strchr(msgs[3].uidl, '.') + 1, NULL, 10) >
		    strtoll(strchr(msgs[2].uidl, '.') + 1, NULL, 10));
	}
	free(msgs);
	t_end();
	free(a);
	free(b);

	t_begin("store copy: a failure half way leaves the target empty");
	bad = t_store("bad.db", true);
	t_assert_int(store_exec(bad, "CREATE TRIGGER no_rcpt BEFORE INSERT "
	    "ON queue_rcpt BEGIN SELECT RAISE(ABORT, 'refused here'); END"),
	    0);
	t_assert_int(store_copy(src, bad, &c), -1);
	t_assert(strstr(store_error(bad), "copy queue_rcpt") != NULL);
	t_assert(strstr(store_error(bad), "refused here") != NULL);
	t_assert_int(c.users, 0);
	a = t_dump(bad, &tb, &eb);
	t_assert_int(eb, tb);		/* every table empty */
	free(a);
	t_assert_int(store_in_transaction(src), 0);
	t_assert_int(store_in_transaction(bad), 0);
	store_close(bad);
	t_end();

	t_begin("store copy: a table it does not know refuses the copy");
	bad = t_store("bad2.db", false);
	t_assert_int(store_exec(src, "CREATE TABLE later (x INTEGER)"), 0);
	t_assert_int(store_copy(src, bad, &c), -1);
	t_assert_str(store_error(bad), "source table later is not known to "
	    "store copy (store/copy.c)");
	t_assert_int(cf_int(bad, "SELECT count(*) FROM domains"), 0);
	store_close(bad);
	t_end();

	store_close(src);
	store_close(dst);
}

int
main(void)
{
	const char *tmp = getenv("TMPDIR");
	char cmd[600];
	int rc;

	log_init("test_store_copy", 1, LOG_LVL_ERROR);
	snprintf(t_dir, sizeof(t_dir), "%s/carteiro-copy-XXXXXX",
	    tmp != NULL ? tmp : "/tmp");
	if (mkdtemp(t_dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_tables();
	test_copy();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t_dir);
	rc = system(cmd);
	(void)rc;
	return t_exit();
}
