/*
 * Online backup of the database (SQLite's backup API in one step: one
 * read snapshot of the live store, writers keep going in the WAL) and the
 * row counts a backup manifest records. The lock file the daemons hold
 * is daemonlock.c's; the backup directory and the manifest are
 * carteiroctl's.
 */
#include "store/store_internal.h"
#include "store/backup.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stddef.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int store_backup_count(sqlite3 *, const char *, int64_t *);
static int store_backup_counts_db(sqlite3 *, struct store_counts *);
static int store_backup_fsync(const char *);

/* SELECT count(*) FROM table; 0 or an SQLite error code. */
static int
store_backup_count(sqlite3 *db, const char *table, int64_t *n_r)
{
	char *sql = xasprintf("SELECT count(*) FROM %s", table);
	sqlite3_stmt *s;
	int rc;

	rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
	free(sql);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*n_r = sqlite3_column_int64(s, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(s);
	return rc;
}

/* Counts of db inside one read transaction. 0 or an SQLite error code. */
static int
store_backup_counts_db(sqlite3 *db, struct store_counts *c)
{
	static const struct {
		const char *table;
		size_t off;
	} tables[] = {
		{ "domains", offsetof(struct store_counts, domains) },
		{ "users", offsetof(struct store_counts, users) },
		{ "aliases", offsetof(struct store_counts, aliases) },
		{ "mailbox", offsetof(struct store_counts, messages) },
		{ "bodies", offsetof(struct store_counts, bodies) },
		{ "queue", offsetof(struct store_counts, queue) },
	};
	sqlite3_stmt *s;
	int rc;

	memset(c, 0, sizeof(*c));
	rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL);
	if (rc == SQLITE_OK) {
		if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			c->schema = sqlite3_column_int(s, 0);
			rc = SQLITE_OK;
		}
		sqlite3_finalize(s);
	}
	for (size_t i = 0; rc == SQLITE_OK && i < nitems(tables); i++)
		rc = store_backup_count(db, tables[i].table,
		    (int64_t *)(void *)((char *)c + tables[i].off));
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	return rc;
}

/*
 * The same counts on any backend through the db layer (carteiroctl
 * verify on PostgreSQL too), in one read snapshot.
 */
int
store_counts(struct store *st, struct store_counts *counts_r)
{
	static const struct {
		const char *sql;
		size_t off;
	} counts[] = {
		{ "SELECT count(*) FROM domains",
		  offsetof(struct store_counts, domains) },
		{ "SELECT count(*) FROM users",
		  offsetof(struct store_counts, users) },
		{ "SELECT count(*) FROM aliases",
		  offsetof(struct store_counts, aliases) },
		{ "SELECT count(*) FROM mailbox",
		  offsetof(struct store_counts, messages) },
		{ "SELECT count(*) FROM bodies",
		  offsetof(struct store_counts, bodies) },
		{ "SELECT count(*) FROM queue",
		  offsetof(struct store_counts, queue) },
	};
	struct db_stmt *s;
	int rc = DB_OK, ret = -1;

	if (store_in_transaction(st))
		return store_fail(st, "counts: inside a transaction");
	memset(counts_r, 0, sizeof(*counts_r));
	if (store_read_begin(st) < 0)
		return -1;
	if ((counts_r->schema = store_schema_version(st)) < 0)
		goto out;
	for (size_t i = 0; i < nitems(counts); i++) {
		if ((rc = db_prepare(st->db, counts[i].sql, false, &s)) !=
		    DB_OK)
			break;
		rc = db_step(s);
		if (rc == DB_ROW) {
			*(int64_t *)(void *)((char *)counts_r +
			    counts[i].off) = db_column_int64(s, 0);
			rc = DB_OK;
		}
		db_finalize(s);
		if (rc != DB_OK)
			break;
	}
	if (rc != DB_OK)
		store_fail_db(st, rc, "counts");
	else
		ret = 0;
out:
	store_read_end(st);
	return ret;
}

/* fsync the file and its directory (the new name is durable too). */
static int
store_backup_fsync(const char *path)
{
	char *copy;
	int fd, ret = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	if (fsync(fd) < 0)
		ret = -1;
	close(fd);
	copy = xstrdup(path);
	if ((fd = open(dirname(copy), O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	free(copy);
	return ret;
}

int
store_backup(struct store *st, const char *dest,
    struct store_counts *counts_r)
{
	sqlite3 *db = NULL;
	sqlite3_backup *b;
	int fd, rc;

	if (store_in_transaction(st))
		return store_fail(st, "backup: inside a transaction");
	if (db_kind(st->db) != DB_KIND_SQLITE)
		return store_fail(st, "backup: the store is on PostgreSQL: "
		    "back it up with pg_dump or pg_basebackup");
	/* Our own 0600 file (the copy holds password hashes), and never
	 * over an existing one. */
	fd = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return store_fail(st, "backup: cannot create %s: %s", dest,
		    strerror(errno));
	close(fd);
	rc = sqlite3_open_v2(dest, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc != SQLITE_OK)
		goto fail_db;
	b = sqlite3_backup_init(db, "main", db_sqlite_handle(st->db), "main");
	if (b == NULL) {
		rc = sqlite3_errcode(db);
		goto fail_db;
	}
	/* -1: every page in one step, i.e. in one read transaction on the
	 * source. Done in steps, a write by smtpd between two of them would
	 * restart the copy (and under steady mail, forever). */
	rc = sqlite3_backup_step(b, -1);
	sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE) {
		store_fail(st, "backup: %s", sqlite3_errstr(rc));
		goto fail;
	}
	/* A self-contained file: no -wal beside it in the backup. */
	rc = sqlite3_exec(db, "PRAGMA journal_mode=DELETE", NULL, NULL,
	    NULL);
	if (rc == SQLITE_OK)
		rc = store_backup_counts_db(db, counts_r);
	if (rc != SQLITE_OK)
		goto fail_db;
	rc = sqlite3_close(db);
	db = NULL;
	if (rc != SQLITE_OK) {
		store_fail(st, "backup: closing %s: %s", dest,
		    sqlite3_errstr(rc));
		goto fail;
	}
	if (store_backup_fsync(dest) < 0) {
		store_fail(st, "backup: fsync %s: %s", dest, strerror(errno));
		goto fail;
	}
	return 0;
fail_db:
	store_fail(st, "backup: %s", db != NULL ? sqlite3_errmsg(db) :
	    sqlite3_errstr(rc));
fail:
	if (db != NULL)
		sqlite3_close(db);
	unlink(dest);
	return -1;
}
