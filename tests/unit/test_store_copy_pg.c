/*
 * store_copy (store/copy.c) from SQLite into PostgreSQL on a real server
 * (pg_cluster.h): every row of every table arrives with the same values
 * (ids, hashes, UIDLs, bytes of bodies and chunks, DSN fields, settings);
 * the copy verifies clean; new mail on it gets ids past the copied ones
 * (the identity sequences were moved); a second copy is refused; a copy
 * that fails half way leaves no rows; a table the copy does not know in
 * the target refuses it.
 */
#include "t.h"
#include "pg_cluster.h"
#include "copy_fill.h"
#include "common/config.h"
#include "common/log.h"
#include "store/copy.h"
#include "store/verify.h"

#include <stdlib.h>

static char t_dir[256];

static int
t_line_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Every row of table on st as text lines ("v1|v2|..."; NULL as \N),
 * sorted (the engines order text differently), joined. cols: the
 * columns, quoted and comma-separated. Caller frees.
 */
static char *
t_rows(struct store *st, const char *table, const char *cols, int ncol)
{
	struct db_stmt *s;
	char **lines = NULL, *sql, *out = NULL;
	size_t n = 0, len = 0, llen;

	sql = xasprintf("SELECT %s FROM \"%s\"", cols, table);
	if (db_prepare(st->db, sql, false, &s) != DB_OK) {
		free(sql);
		return xstrdup("(prepare failed)");
	}
	free(sql);
	while (db_step(s) == DB_ROW) {
		char *line = NULL;

		llen = 0;
		cf_cat(&line, &llen, "", 0);
		for (int i = 0; i < ncol; i++) {
			if (i > 0)
				cf_cat(&line, &llen, "|", 1);
			if (db_column_type(s, i) == DB_NULL)
				cf_cat(&line, &llen, "\\N", 2);
			else {
				/* text of an integer, bytes of the rest */
				const void *p = db_column_blob(s, i);

				cf_cat(&line, &llen, p, db_column_bytes(s, i));
			}
		}
		lines = xrealloc(lines, (n + 1) * sizeof(*lines));
		lines[n++] = line;
	}
	db_finalize(s);
	qsort(lines, n, sizeof(*lines), t_line_cmp);
	cf_cat(&out, &len, "", 0);
	for (size_t i = 0; i < n; i++) {
		cf_cat(&out, &len, lines[i], strlen(lines[i]));
		cf_cat(&out, &len, "\n", 1);
		free(lines[i]);
	}
	free(lines);
	return out;
}

/* Compare every table of src (SQLite) with dst, column by column as
 * src declares them. Returns the tables compared. */
static int
t_compare(struct store *src, struct store *dst)
{
	struct db_stmt *tl;
	int tables = 0;

	if (db_prepare(src->db, "SELECT m.name, (SELECT group_concat('\"' || "
	    "p.name || '\"', ', ') FROM pragma_table_info(m.name) p), "
	    "(SELECT count(*) FROM pragma_table_info(m.name)) FROM "
	    "sqlite_master m WHERE m.type = 'table' ORDER BY m.name", false,
	    &tl) != DB_OK)
		return -1;
	while (db_step(tl) == DB_ROW) {
		const char *name = db_column_text(tl, 0);
		const char *cols = db_column_text(tl, 1);
		int ncol = db_column_int(tl, 2);
		char *a = t_rows(src, name, cols, ncol);
		char *b = t_rows(dst, name, cols, ncol);

		if (strcmp(a, b) != 0)
			fprintf(stderr, "table %s differs:\n%.2000s\n---\n"
			    "%.2000s\n", name, a, b);
		t_assert(strcmp(a, b) == 0);
		t_assert(a[0] != '\0');	/* rows in every table */
		free(a);
		free(b);
		tables++;
	}
	db_finalize(tl);
	return tables;
}

static struct store *
t_pg_store(const char *name)
{
	char *url = t_newdb(name), *locator = cfg_store_locator(url);
	const char *err = NULL;
	struct store *st = store_open(locator, &err);

	if (st == NULL) {
		fprintf(stderr, "FAIL: store_open %s: %s\n", locator, err);
		exit(1);
	}
	free(url);
	free(locator);
	return st;
}

static void
t_problem(const char *problem, void *arg)
{
	(void)arg;
	fprintf(stderr, "verify: %s\n", problem);
}

static void
test_copy_pg(struct store *src)
{
	static const char *const a[] = { ALICE };
	struct store *dst = t_pg_store("copy_ok");
	struct store_copy_counts c;
	struct store_msg *msgs = NULL;
	unsigned problems = 1;
	int64_t max_mailbox, max_body;
	size_t n = 0;

	t_begin("copy into PostgreSQL: every table, row for row");
	t_assert_int(store_copy(src, dst, &c), 0);
	t_assert_int(c.users, 3);
	t_assert_int(c.messages, 6);
	t_assert_int(c.bodies, 5);
	t_assert_int(c.queue, 2);
	t_assert_int(t_compare(src, dst), 15);
	t_assert_int(store_verify(dst, t_problem, NULL, &problems), 0);
	t_assert_int(problems, 0);
	t_end();

	t_begin("copy into PostgreSQL: new rows get ids past the copied");
	max_mailbox = cf_int(src, "SELECT max(id) FROM mailbox");
	max_body = cf_int(src, "SELECT max(id) FROM bodies");
	t_assert_int(cf_deliver(dst, "Subject: new\r\n\r\nnew\r\n", 20, a, 1,
	    NULL, 0), 0);
	t_assert_int(cf_int(dst, "SELECT max(id) FROM mailbox"),
	    max_mailbox + 1);
	t_assert_int(cf_int(dst, "SELECT max(id) FROM bodies"), max_body + 1);
	t_assert_int(store_alias_add(dst, "new@example.test", ALICE), 0);
	t_assert_int(store_domain_add(dst, "third.test"), 0);
	t_assert_int(store_mailbox_list(dst, ALICE, &msgs, &n), 0);
	t_assert_int(n, 4);
	if (n == 4)
		t_assert(strtoll(strchr(msgs[3].uidl, '.') + 1, NULL, 10) >
		    strtoll(strchr(msgs[2].uidl, '.') + 1, NULL, 10));
	free(msgs);
	t_end();

	t_begin("copy into PostgreSQL: a second copy is refused");
	t_assert_int(store_copy(src, dst, &c), -1);
	t_assert_str(store_error(dst), "the target store is not empty "
	    "(3 rows in domains): copy only into a new, empty store");
	t_assert_int(store_in_transaction(dst), 0);
	t_end();
	store_close(dst);
}

static void
test_fail_pg(struct store *src)
{
	struct store *dst = t_pg_store("copy_fail");
	struct store_copy_counts c;

	t_begin("copy into PostgreSQL: a failure half way leaves no rows");
	t_assert_int(store_migrate(dst), 0);
	t_assert_int(store_exec(dst, "CREATE FUNCTION no_rcpt() RETURNS "
	    "trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION "
	    "'refused here'; END $$;"
	    "CREATE TRIGGER no_rcpt BEFORE INSERT ON queue_rcpt FOR EACH ROW "
	    "EXECUTE FUNCTION no_rcpt()"), 0);
	t_assert_int(store_copy(src, dst, &c), -1);
	t_assert(strstr(store_error(dst), "copy queue_rcpt") != NULL);
	t_assert(strstr(store_error(dst), "refused here") != NULL);
	t_assert_int(store_in_transaction(dst), 0);
	t_assert_int(cf_int(dst, "SELECT (SELECT count(*) FROM domains) + "
	    "(SELECT count(*) FROM users) + (SELECT count(*) FROM bodies) + "
	    "(SELECT count(*) FROM body_chunks) + (SELECT count(*) FROM "
	    "mailbox) + (SELECT count(*) FROM queue) + (SELECT count(*) FROM "
	    "settings)"), 0);
	t_end();
	store_close(dst);

	t_begin("copy into PostgreSQL: a target table it does not know");
	dst = t_pg_store("copy_unknown");
	t_assert_int(store_migrate(dst), 0);
	t_assert_int(store_exec(dst, "CREATE TABLE later (x BIGINT)"), 0);
	t_assert_int(store_copy(src, dst, &c), -1);
	t_assert_str(store_error(dst), "target table later is not known to "
	    "store copy (store/copy.c)");
	t_assert_int(cf_int(dst, "SELECT count(*) FROM users"), 0);
	t_end();
	store_close(dst);
}

int
main(void)
{
	const char *tmp = getenv("TMPDIR"), *err = NULL;
	struct store *src;
	char *path, cmd[600];
	int rc;

	log_init("test_store_copy_pg", 1, LOG_LVL_ERROR);
	t_pg_setup();
	snprintf(t_dir, sizeof(t_dir), "%s/carteiro-copypg-XXXXXX",
	    tmp != NULL ? tmp : "/tmp");
	if (mkdtemp(t_dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	path = xasprintf("%s/src.db", t_dir);
	src = store_open(path, &err);
	if (src == NULL || store_migrate(src) < 0) {
		fprintf(stderr, "FAIL: %s: %s\n", path,
		    src != NULL ? store_error(src) : err);
		return 1;
	}
	free(path);
	cf_fill(src);
	test_copy_pg(src);
	test_fail_pg(src);
	store_close(src);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t_dir);
	rc = system(cmd);
	(void)rc;
	return t_exit();
}
