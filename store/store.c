/*
 * The store connection: open/close with the pragmas every process relies on
 * (WAL, synchronous=FULL, busy timeout, foreign keys), schema migrations,
 * transactions, the prepared-statement cache and error reporting. Domain,
 * user, mailbox and body logic live in the other files of store/.
 */
#include "store/store_internal.h"
#include "store/schema.h"
#include "common/util.h"

#include <sqlite3.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int store_wal_hook(void *, sqlite3 *, const char *, int);
static bool store_is_memory(const char *);
static int store_pragmas(struct store *, bool, const char **);
static int store_user_version(struct store *, int *);
static int store_sqlite_version(struct store *, int *);
static int store_tx_push(struct store *, enum store_tx_kind);
static enum store_tx_kind store_tx_pop(struct store *);
static int store_tx_start(struct store *, enum store_tx_kind);
static int store_tx_end(struct store *, enum store_tx_kind, bool);
static void store_global_init(void);
static void store_test_page_limit(struct store *);

static pthread_once_t store_global_once = PTHREAD_ONCE_INIT;

/*
 * Process-wide SQLite settings, before the library initialises. Memory
 * statistics off: with them on, every sqlite3_malloc/free of every
 * connection takes one global mutex, so the event loop's RCPT lookups
 * queued behind the writer and checkpoint threads' allocations (measured
 * with bench/loop TRACE=1: waits up to 12 ms when the holder was
 * preempted). carteiro never reads those statistics.
 */
static void
store_global_init(void)
{
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	(void)sqlite3_initialize();
}

/* Static error text for store_open (no struct store to hold it yet). */
static __thread char store_open_err[256];

struct store *
store_open(const char *path, const char **error_r)
{
	struct store *st;
	int fd;

	if (store_pg_locator(path) != NULL)
		return store_pg_open(store_pg_locator(path), error_r);
	/*
	 * The database holds password hashes: create it 0600 ourselves
	 * (SQLite would use 0644 & ~umask); the -wal and -shm files inherit
	 * the database file's mode.
	 */
	if (store_is_memory(path))
		fd = -1;
	else if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) >= 0)
		close(fd);
	else if (errno != EEXIST) {
		snprintf(store_open_err, sizeof(store_open_err),
		    "cannot create %s: %s", path, strerror(errno));
		*error_r = store_open_err;
		return NULL;
	}

	pthread_once(&store_global_once, store_global_init);
	st = xcalloc(1, sizeof(*st));
	st->db = db_open_sqlite(path, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, error_r);
	if (st->db == NULL) {
		free(st);
		return NULL;
	}
	db_set_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
	if (store_pragmas(st, store_is_memory(path), error_r) < 0) {
		store_close(st);
		return NULL;
	}
	store_test_page_limit(st);
	return st;
}

/* ":memory:" (tests): no file to create, no WAL possible. */
static bool
store_is_memory(const char *path)
{
	return strcmp(path, ":memory:") == 0;
}

static int
store_pragmas(struct store *st, bool memory, const char **error_r)
{
	struct db_stmt *s;
	const char *mode;
	int rc, ok;

	/* journal_mode reports the resulting mode as a row. */
	rc = db_prepare(st->db, "PRAGMA journal_mode=WAL", false, &s);
	if (rc == DB_OK) {
		rc = db_step(s);
		mode = rc == DB_ROW ?
		    db_column_text(s, 0) : NULL;
		ok = mode != NULL && strcmp(mode, memory ? "memory" : "wal")
		    == 0;
		db_finalize(s);
	} else
		ok = 0;
	if (!ok) {
		snprintf(store_open_err, sizeof(store_open_err),
		    "cannot enable WAL mode: %s", db_errmsg(st->db));
		*error_r = store_open_err;
		return -1;
	}
	/*
	 * synchronous=FULL: a commit is on disk when COMMIT returns (a 250
	 * after DATA relies on it). journal_size_limit trims the WAL file
	 * after a big message has been checkpointed.
	 */
	if (db_exec(st->db, "PRAGMA synchronous=FULL;"
	    "PRAGMA foreign_keys=ON;"
	    "PRAGMA journal_size_limit=16777216;") !=
	    DB_OK) {
		snprintf(store_open_err, sizeof(store_open_err),
		    "cannot configure database: %s", db_errmsg(st->db));
		*error_r = store_open_err;
		return -1;
	}
	return 0;
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	for (size_t i = 0; i < STMT_COUNT; i++)
		db_finalize(st->stmt[i]);
	db_close(st->db);
	free(st->chunk);
	free(st);
}

const char *
store_error(struct store *st)
{
	return st->err[0] != '\0' ? st->err : "no error";
}

bool
store_error_is_busy(struct store *st)
{
	return st->busy;
}

bool
store_error_is_quota(struct store *st)
{
	return st->quota;
}

bool
store_error_is_full(struct store *st)
{
	return st->full;
}

bool
store_error_is_gone(struct store *st)
{
	return st->gone;
}

int
store_fail_db(struct store *st, int rc, const char *what)
{
	int prim = rc & 0xff, sys = errno;

	st->busy = prim == DB_BUSY || prim == DB_LOCKED;
	st->quota = false;
	st->gone = false;
	/*
	 * The unix VFS turns ENOSPC on a write into DB_FULL, as does the
	 * page limit; EDQUOT (and ENOSPC from fsync or ftruncate) come back
	 * as an I/O error. SQLite keeps its errno for some paths only (not
	 * for a failed COMMIT in 3.40), so the errno the failed call left
	 * is the fallback: callers come here straight from the failing step.
	 */
	if (prim == DB_IOERR && db_system_errno(st->db) != 0)
		sys = db_system_errno(st->db);
	st->full = prim == DB_FULL || (prim == DB_IOERR &&
	    (sys == ENOSPC || sys == EDQUOT));
	snprintf(st->err, sizeof(st->err), "%s: %s", what,
	    db_errmsg(st->db));
	return -1;
}

int
store_fail(struct store *st, const char *fmt, ...)
{
	va_list ap;

	st->busy = false;
	st->quota = false;
	st->full = false;
	st->gone = false;
	va_start(ap, fmt);
	vsnprintf(st->err, sizeof(st->err), fmt, ap);
	va_end(ap);
	return -1;
}

int
store_exec(struct store *st, const char *sql)
{
	int rc;

	rc = db_exec(st->db, sql);
	if (rc != DB_OK)
		return store_fail_db(st, rc, "exec");
	return 0;
}

struct db_stmt *
store_stmt(struct store *st, enum store_stmt_id id, const char *sql)
{
	struct db_stmt *s;
	int rc;

	assert((size_t)id < STMT_COUNT);
	s = st->stmt[id];
	if (s != NULL) {
		/* One slot, one statement text. */
		assert(st->stmt_sql[id] == sql ||
		    strcmp(st->stmt_sql[id], sql) == 0);
		db_reset(s);
		db_clear_bindings(s);
		return s;
	}
	rc = db_prepare(st->db, sql, true, &s);
	if (rc != DB_OK) {
		store_fail_db(st, rc, "prepare");
		return NULL;
	}
	st->stmt[id] = s;
	st->stmt_sql[id] = sql;
	return s;
}

int
store_step_done(struct store *st, struct db_stmt *s, const char *what)
{
	int rc;

	rc = db_step(s);
	if (rc != DB_DONE && rc != DB_ROW) {
		store_fail_db(st, rc, what);
		db_reset(s);
		return -1;
	}
	db_reset(s);
	return 0;
}

int
store_step_id(struct store *st, struct db_stmt *s, const char *what,
    int64_t *id_r)
{
	int rc;

	rc = db_step(s);
	if (rc == DB_ROW) {
		*id_r = db_column_int64(s, 0);
		/* RETURNING: the statement is complete only at its end. */
		rc = db_step(s);
	}
	if (rc != DB_DONE) {
		if (rc == DB_ROW)
			store_fail(st, "%s: more than one row", what);
		else
			store_fail_db(st, rc, what);
		db_reset(s);
		return -1;
	}
	db_reset(s);
	return 0;
}

int
store_run(struct store *st, enum store_stmt_id id, const char *sql)
{
	struct db_stmt *s = store_stmt(st, id, sql);

	return s == NULL ? -1 : store_step_done(st, s, "exec");
}

/* ---- transactions ---- */

/*
 * One vocabulary for every transaction: store_begin/store_commit/
 * store_rollback nest (the outermost is BEGIN IMMEDIATE ... COMMIT, inner
 * ones are SAVEPOINTs, so a unit that fails can be undone alone), and
 * store_read_begin/store_read_end take one read snapshot. st->tx_kind
 * remembers what each open level did, so ending it does the matching
 * thing. If SQLite ended the transaction on its own (an I/O error rolls
 * everything back), the next store_begin starts afresh.
 *
 * The transaction statements are cached like any other: the writer runs
 * them for every batch and every job, and parsing them each time shows
 * in its profile.
 */
static int
store_tx_push(struct store *st, enum store_tx_kind kind)
{
	if (st->tx_depth == STORE_TX_DEPTH_MAX)
		return store_fail(st, "transactions nested too deep");
	st->tx_kind[st->tx_depth++] = (unsigned char)kind;
	return 0;
}

/* The innermost level, removed; STORE_TX_WRITE when none is recorded (a
 * transaction begun with store_exec: end it as a whole). */
static enum store_tx_kind
store_tx_pop(struct store *st)
{
	enum store_tx_kind kind;

	if (st->tx_depth == 0)
		return STORE_TX_WRITE;
	kind = (enum store_tx_kind)st->tx_kind[--st->tx_depth];
	if (kind == STORE_TX_WRITE || kind == STORE_TX_READ)
		st->tx_depth = 0;	/* the outermost level ends them all */
	return kind;
}

static int
store_tx_start(struct store *st, enum store_tx_kind kind)
{
	int rc;

	if (st->tx_lost)
		return -1;	/* store_error() says why (store_tx_end) */
	if (!db_in_transaction(st->db)) {
		st->tx_depth = 0;
		if (kind == STORE_TX_WRITE)
			store_test_page_limit(st);
		if (db_kind(st->db) == DB_KIND_PG)
			rc = store_pg_begin(st, kind == STORE_TX_WRITE);
		else
			rc = kind == STORE_TX_WRITE ?
			    store_run(st, STMT_TX_BEGIN, "BEGIN IMMEDIATE") :
			    store_run(st, STMT_TX_BEGIN_READ, "BEGIN");
	} else if (kind == STORE_TX_WRITE && st->flat_units) {
		kind = STORE_TX_FLAT;
		rc = 0;
	} else if (kind == STORE_TX_WRITE) {
		kind = STORE_TX_SAVEPOINT;
		rc = store_run(st, STMT_TX_SAVEPOINT, "SAVEPOINT store_unit");
	} else {
		kind = STORE_TX_JOINED;	/* the open transaction's view */
		rc = 0;
	}
	if (rc < 0)
		return -1;
	if (store_tx_push(st, kind) < 0) {
		store_tx_end(st, kind, false);
		return -1;
	}
	return 0;
}

/* End one level that store_tx_pop returned: ok commits (releases) it. */
static int
store_tx_end(struct store *st, enum store_tx_kind kind, bool ok)
{
	struct db_stmt *s;
	int rc;

	switch (kind) {
	case STORE_TX_JOINED:
		return 0;
	case STORE_TX_FLAT:
		/* Nothing to undo it alone with: what it wrote stays in the
		 * transaction, so none of it may commit. */
		if (!ok)
			st->tx_lost = true;
		return ok && st->tx_lost ? -1 : 0;
	case STORE_TX_SAVEPOINT:
		if (ok && st->tx_lost)
			return -1;
		if (ok)
			return store_run(st, STMT_TX_RELEASE,
			    "RELEASE store_unit");
		if (db_in_transaction(st->db)) {
			db_exec(st->db, "ROLLBACK TO store_unit");
			db_exec(st->db, "RELEASE store_unit");
		} else if (st->tx_depth > 0) {
			/*
			 * SQLite ended the whole transaction on its own (an
			 * I/O error; DB_FULL in a statement without a
			 * statement journal): every enclosing level is gone
			 * too. Until the outermost one ends, nothing may run
			 * in autocommit as if it were still inside it.
			 */
			st->tx_lost = true;
		}
		return 0;
	case STORE_TX_WRITE:
	case STORE_TX_READ:
		break;
	}
	if (!ok) {
		st->tx_lost = false;
		if (db_in_transaction(st->db))
			db_exec(st->db, "ROLLBACK");
		return 0;
	}
	if (st->tx_lost) {
		/* The error that ended it is still in store_error(). A flat
		 * unit's failure left the transaction open: end it. */
		st->tx_lost = false;
		if (db_in_transaction(st->db))
			db_exec(st->db, "ROLLBACK");
		return -1;
	}
	if ((s = store_stmt(st, STMT_TX_COMMIT, "COMMIT")) != NULL) {
		rc = db_step(s);
		/* Before the reset: store_fail_db reads errno. */
		if (rc != DB_DONE)
			store_fail_db(st, rc, "commit");
		db_reset(s);
		if (rc == DB_DONE)
			return 0;
	}
	if (db_in_transaction(st->db))
		db_exec(st->db, "ROLLBACK");
	return -1;
}

bool
store_set_flat_units(struct store *st, bool on)
{
	st->flat_units = on && db_kind(st->db) == DB_KIND_PG;
	return st->flat_units;
}

int
store_begin(struct store *st)
{
	return store_tx_start(st, STORE_TX_WRITE);
}

int
store_commit(struct store *st)
{
	return store_tx_end(st, store_tx_pop(st), true);
}

void
store_rollback(struct store *st)
{
	store_tx_end(st, store_tx_pop(st), false);
}

int
store_end(struct store *st, int ret)
{
	if (ret != 0) {
		store_rollback(st);
		return ret;
	}
	return store_commit(st) < 0 ? -1 : 0;
}

int
store_read_begin(struct store *st)
{
	return store_tx_start(st, STORE_TX_READ);
}

void
store_read_end(struct store *st)
{
	/* Nothing was written: ending it cannot lose anything, and a
	 * failure leaves no transaction behind worth keeping. */
	if (store_tx_end(st, store_tx_pop(st), true) != 0)
		store_rollback(st);
}

bool
store_in_transaction(struct store *st)
{
	return db_in_transaction(st->db);
}

/*
 * STORE_TEST_PAGE_LIMIT_ENV (store.h). Only when the variable is set: a
 * production process never opens the file. A limit below the database's
 * size holds it at its size (SQLite's rule).
 */
static void
store_test_page_limit(struct store *st)
{
	const char *path = getenv(STORE_TEST_PAGE_LIMIT_ENV);
	unsigned long long n = 0;
	char sql[64];
	FILE *f;

	if (path == NULL || *path == '\0' || db_kind(st->db) != DB_KIND_SQLITE)
		return;
	if ((f = fopen(path, "re")) != NULL) {
		if (fscanf(f, "%llu", &n) != 1)
			n = 0;
		fclose(f);
	}
	if (n == st->page_limit)
		return;
	st->page_limit = n;
	/* 0: back to SQLite's own ceiling (it clamps larger values). */
	snprintf(sql, sizeof(sql), "PRAGMA max_page_count=%llu",
	    n != 0 ? n : 0xfffffffeULL);
	(void)db_exec(st->db, sql);
}

void
store_set_busy_timeout(struct store *st, int ms)
{
	db_set_busy_timeout(st->db, ms);
}

/* ---- schema ---- */

static int
store_user_version(struct store *st, int *version_r)
{
	if (db_kind(st->db) == DB_KIND_PG)
		return store_pg_version(st, version_r);
	return store_sqlite_version(st, version_r);
}

static int
store_sqlite_version(struct store *st, int *version_r)
{
	struct db_stmt *s;
	int rc;

	rc = db_prepare(st->db, "PRAGMA user_version", false, &s);
	if (rc != DB_OK)
		return store_fail_db(st, rc, "schema version");
	rc = db_step(s);
	if (rc != DB_ROW) {
		store_fail_db(st, rc, "schema version");
		db_finalize(s);
		return -1;
	}
	*version_r = db_column_int(s, 0);
	db_finalize(s);
	return 0;
}

int
store_schema_version(struct store *st)
{
	int v;

	if (store_user_version(st, &v) < 0)
		return -1;
	return v;
}

int
store_migrate(struct store *st)
{
	size_t count = store_migration_count(st);
	char pragma[64];
	int v;

	for (;;) {
		if (store_user_version(st, &v) < 0)
			return -1;
		if ((size_t)v > count)
			return store_fail(st, "database schema version %d is "
			    "newer than this carteiro (%zu)", v, count);
		if ((size_t)v == count)
			return 0;
		/*
		 * Re-read the version inside the write transaction: another
		 * process may have migrated since.
		 */
		if (store_begin(st) < 0)
			return -1;
		if (store_user_version(st, &v) < 0)
			goto fail;
		if ((size_t)v >= count) {
			store_rollback(st);
			continue;
		}
		if (store_exec(st, store_migration(st, (size_t)v + 1)) < 0)
			goto fail;
		if (db_kind(st->db) == DB_KIND_PG)
			snprintf(pragma, sizeof(pragma), "UPDATE schema_version "
			    "SET version = %d", v + 1);
		else
			snprintf(pragma, sizeof(pragma), "PRAGMA "
			    "user_version=%d", v + 1);
		if (store_exec(st, pragma) < 0)
			goto fail;
		if (store_commit(st) < 0)
			return -1;
	}
fail:
	store_rollback(st);
	return -1;
}

int
store_check_schema(struct store *st)
{
	size_t count = store_migration_count(st);
	int v;

	if (store_user_version(st, &v) < 0)
		return -1;
	if ((size_t)v != count)
		return store_fail(st, "database schema version %d, expected "
		    "%zu (run carteiroctl init)", v, count);
	return 0;
}

/* ---- address helpers ---- */

const char *
store_addr_domain(const char *address)
{
	const char *at = strrchr(address, '@');

	return at != NULL ? at + 1 : NULL;
}

char *
store_addr_normalize(const char *address)
{
	char *s = xstrdup(address), *at = strrchr(s, '@');

	if (at != NULL)
		util_strlower(at + 1);
	return s;
}

void
store_set_autocheckpoint(struct store *st, int pages)
{
	sqlite3 *sq = db_sqlite_handle(st->db);

	if (sq == NULL)
		return;
	sqlite3_wal_autocheckpoint(sq, pages);
	/* Without automatic checkpoints the owner decides when: it needs
	 * the WAL's length (the hook replaces the automatic one). */
	if (pages <= 0)
		sqlite3_wal_hook(sq, store_wal_hook, st);
}

static int
store_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct store *st = arg;

	(void)db;
	(void)name;
	st->wal_frames = frames;
	return DB_OK;
}

int
store_wal_frames(struct store *st)
{
	return st->wal_frames;
}

int
store_checkpoint(struct store *st)
{
	sqlite3 *sq = db_sqlite_handle(st->db);
	int rc;

	st->wal_frames = 0;
	if (sq == NULL)
		return 0;
	rc = sqlite3_wal_checkpoint_v2(sq, NULL, SQLITE_CHECKPOINT_PASSIVE,
	    NULL, NULL);
	return rc == SQLITE_OK || rc == SQLITE_BUSY ? 0 : -1;
}
