/*
 * A full store (issue #11 item 13): which failures store_error_is_full
 * reports (the page limit, DB_FULL, an I/O error whose errno is ENOSPC
 * or EDQUOT, through a VFS shim that fails writes on demand), that a
 * delivery refused for space leaves nothing behind (alone or inside a group
 * commit), that deletes still work at the limit and free room, that the
 * test knob's limit can be lifted without reopening, and the delivery
 * writer's DELIVERY_FULL with delivery_is_full.
 */
#include "t.h"
#include "smtpd/delivery.h"
#include "store/store.h"
#include "store/store_internal.h"
#include "common/config.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <event2/event.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char t_dir[128];
static char t_limit[192];	/* the STORE_TEST_PAGE_LIMIT_ENV file */
static int t_dbn;

static const char *const t_alice[] = { "alice@ex.test" };

static const char *
t_path(int n)
{
	static char buf[256];

	snprintf(buf, sizeof(buf), "%s/db%d.sqlite", t_dir, n);
	return buf;
}

/* The page limit every connection reads at its next write transaction. */
static void
t_set_limit(long long pages)
{
	FILE *f = fopen(t_limit, "w");

	if (f == NULL) {
		perror(t_limit);
		exit(1);
	}
	fprintf(f, "%lld\n", pages);
	fclose(f);
}

/* One integer from a query (-999 on error). */
static long long q_int(struct store *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static long long
q_int(struct store *st, const char *fmt, ...)
{
	struct db_stmt *s;
	char *sql;
	va_list ap;
	long long v = -999;

	va_start(ap, fmt);
	if (vasprintf(&sql, fmt, ap) < 0)
		abort();
	va_end(ap);
	if (db_prepare(st->db, sql, false, &s) == DB_OK) {
		if (db_step(s) == DB_ROW)
			v = db_column_int64(s, 0);
		db_finalize(s);
	} else
		fprintf(stderr, "q_int: %s: %s\n", sql, db_errmsg(st->db));
	free(sql);
	return v;
}

/* A fresh, migrated database (domain ex.test, user alice); path_r gets
 * its path. */
static struct store *
t_open(const char **path_r)
{
	const char *path = t_path(++t_dbn), *err;
	struct store *st = store_open(path, &err);

	if (st == NULL) {
		fprintf(stderr, "store_open: %s\n", err);
		exit(1);
	}
	if (store_migrate(st) < 0 || store_domain_add(st, "ex.test") != 0 ||
	    store_user_add(st, "alice@ex.test", "h") != 0) {
		fprintf(stderr, "setup: %s\n", store_error(st));
		exit(1);
	}
	if (path_r != NULL)
		*path_r = path;
	return st;
}

/* A message of len bytes for alice, from memory. */
static int
t_deliver(struct store *st, size_t len)
{
	struct store_delivery d = {
		.prefix = "Received: x\r\n", .prefix_len = 13, .fd = -1,
		.mail_from = "s@remote.test", .local = t_alice, .nlocal = 1,
		.check_quota = true,
	};
	char *buf = xmalloc(len);
	int rc;

	memset(buf, 'a', len);
	rc = store_deliver_mem(st, &d, buf, len, NULL, NULL);
	free(buf);
	return rc;
}

/* The rows a delivery writes, and alice's counters, as one string. */
static char *
t_state(struct store *st)
{
	return xasprintf("bodies=%lld chunks=%lld mailbox=%lld queue=%lld "
	    "used=%lld next_uid=%lld",
	    q_int(st, "SELECT count(*) FROM bodies"),
	    q_int(st, "SELECT count(*) FROM body_chunks"),
	    q_int(st, "SELECT count(*) FROM mailbox"),
	    q_int(st, "SELECT count(*) FROM queue"),
	    q_int(st, "SELECT used FROM users WHERE address='alice@ex.test'"),
	    q_int(st, "SELECT next_uid FROM users "
	    "WHERE address='alice@ex.test'"));
}

/* The page limit: a message that needs pages fails "full", leaves nothing;
 * other errors are not "full"; lifting the limit lets it in. */
static void
test_page_limit(void)
{
	struct store *st = t_open(NULL);
	long long pages;
	char *before, *after;

	t_begin("full: page limit -> store_error_is_full, nothing kept");
	t_assert_int(t_deliver(st, 100), 0);
	pages = q_int(st, "PRAGMA page_count");
	t_set_limit(pages + 2);
	before = t_state(st);
	/* 200 KB needs about 50 pages. */
	t_assert_int(t_deliver(st, 200 * 1024), -1);
	t_assert(store_error_is_full(st));
	t_assert(!store_error_is_busy(st));
	t_assert(!store_error_is_quota(st));
	t_assert(strstr(store_error(st), "full") != NULL);
	after = t_state(st);
	t_assert_str(after, before);
	free(after);
	t_assert(!store_in_transaction(st));
	t_assert(q_int(st, "PRAGMA page_count") <= pages + 2);
	/* A failure that is not about space clears the flag. */
	{
		static const char *const ghost[] = { "ghost@ex.test" };
		struct store_delivery d = {
			.prefix = "", .fd = -1, .local = ghost, .nlocal = 1,
		};

		t_assert_int(store_deliver_mem(st, &d, "x", 1, NULL, NULL),
		    -1);
		t_assert(!store_error_is_full(st));
	}
	t_assert_int(t_deliver(st, 200 * 1024), -1);
	t_assert(store_error_is_full(st));
	/* Lifted: the next write transaction reads the file again. */
	t_set_limit(0);
	t_assert_int(t_deliver(st, 200 * 1024), 0);
	after = t_state(st);
	t_assert(strcmp(after, before) != 0);
	free(after);
	t_assert_int(q_int(st, "SELECT count(*) FROM mailbox"), 2);
	free(before);
	store_close(st);
	t_end();
}

/*
 * Inside a group commit. SQLite may undo just the statement that found no
 * space or end the whole transaction (DB_FULL in a statement without
 * a statement journal, such as this INSERT): then every later unit and
 * the commit fail too, and nothing of the group is kept; what must never
 * happen is the later units committing on their own.
 */
static void
test_group(void)
{
	struct store *st = t_open(NULL);
	int rc_later, rc_commit;
	long long n;

	t_begin("full: a group commit never keeps half of itself");
	t_set_limit(q_int(st, "PRAGMA page_count") + 4);
	t_assert_int(store_begin(st), 0);
	t_assert_int(t_deliver(st, 50), 0);
	t_assert_int(t_deliver(st, 300 * 1024), -1);
	t_assert(store_error_is_full(st));
	rc_later = t_deliver(st, 60);
	rc_commit = store_commit(st);
	n = q_int(st, "SELECT count(*) FROM mailbox");
	if (rc_commit == 0) {
		t_assert_int(rc_later, 0);
		t_assert_int(n, 2);
	} else {
		t_assert_int(rc_later, -1);
		t_assert_int(n, 0);
		t_assert(store_error_is_full(st));
	}
	t_assert(!store_in_transaction(st));
	t_assert_int(q_int(st, "SELECT count(*) FROM bodies"), n);
	t_assert_int(q_int(st, "SELECT count(*) FROM body_chunks"), 0);
	t_assert_int(q_int(st, "SELECT used FROM users"),
	    n > 0 ? q_int(st, "SELECT sum(size) FROM mailbox") : 0);
	/* The connection works again after the transaction ended. */
	t_assert_int(t_deliver(st, 70), 0);
	t_assert_int(q_int(st, "SELECT count(*) FROM mailbox"), n + 1);
	t_set_limit(0);
	store_close(st);
	t_end();
}

/* At the limit, POP3's delete and the gc still work, and the pages they
 * free take the next message without lifting anything. */
static void
test_delete_frees(void)
{
	struct store *st = t_open(NULL);
	struct store_msg *msgs = NULL;
	size_t n = 0, deleted = 0;
	unsigned freed = 0;
	int64_t id;

	t_begin("full: delete and gc at the limit, freed pages reused");
	t_assert_int(t_deliver(st, 400 * 1024), 0);
	t_set_limit(q_int(st, "PRAGMA page_count"));
	t_assert_int(t_deliver(st, 100 * 1024), -1);
	t_assert(store_error_is_full(st));
	t_assert_int(store_mailbox_list(st, "alice@ex.test", &msgs, &n), 0);
	t_assert_int(n, 1);
	id = n == 1 ? msgs[0].id : 0;
	free(msgs);
	t_assert_int(store_mailbox_delete(st, "alice@ex.test", &id, 1,
	    &deleted), 0);
	t_assert_int(deleted, 1);
	t_assert_int(store_gc(st, 10, &freed), 0);
	t_assert_int(freed, 1);
	t_assert_int(q_int(st, "SELECT used FROM users"), 0);
	t_assert_int(t_deliver(st, 100 * 1024), 0);
	t_assert_int(q_int(st, "SELECT count(*) FROM mailbox"), 1);
	t_set_limit(0);
	store_close(st);
	t_end();
}

/* ---- a VFS that fails writes on demand ---- */

struct shim_file {
	sqlite3_file base;
	sqlite3_file *real;	/* right after this struct */
};

static sqlite3_vfs *shim_real;
static sqlite3_vfs shim_vfs;
static sqlite3_io_methods shim_io;
static int shim_fail_rc;	/* 0: pass writes and syncs through */
static int shim_fail_errno;	/* what xGetLastError reports */
static bool shim_fail_sync;	/* fail xSync instead of xWrite */

#define SHIM_REAL(f) (((struct shim_file *)(f))->real)

static int
shim_close(sqlite3_file *f)
{
	return SHIM_REAL(f)->pMethods->xClose(SHIM_REAL(f));
}

static int
shim_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o)
{
	return SHIM_REAL(f)->pMethods->xRead(SHIM_REAL(f), b, n, o);
}

/* Like the unix VFS: the failed system call leaves its errno. */
static int
shim_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o)
{
	if (shim_fail_rc != 0 && !shim_fail_sync) {
		errno = shim_fail_errno;
		return shim_fail_rc;
	}
	return SHIM_REAL(f)->pMethods->xWrite(SHIM_REAL(f), b, n, o);
}

static int
shim_truncate(sqlite3_file *f, sqlite3_int64 sz)
{
	return SHIM_REAL(f)->pMethods->xTruncate(SHIM_REAL(f), sz);
}

static int
shim_sync(sqlite3_file *f, int flags)
{
	if (shim_fail_rc != 0 && shim_fail_sync) {
		errno = shim_fail_errno;
		return shim_fail_rc;
	}
	return SHIM_REAL(f)->pMethods->xSync(SHIM_REAL(f), flags);
}

static int
shim_size(sqlite3_file *f, sqlite3_int64 *sz)
{
	return SHIM_REAL(f)->pMethods->xFileSize(SHIM_REAL(f), sz);
}

static int
shim_lock(sqlite3_file *f, int l)
{
	return SHIM_REAL(f)->pMethods->xLock(SHIM_REAL(f), l);
}

static int
shim_unlock(sqlite3_file *f, int l)
{
	return SHIM_REAL(f)->pMethods->xUnlock(SHIM_REAL(f), l);
}

static int
shim_reserved(sqlite3_file *f, int *r)
{
	return SHIM_REAL(f)->pMethods->xCheckReservedLock(SHIM_REAL(f), r);
}

static int
shim_fcntl(sqlite3_file *f, int op, void *arg)
{
	return SHIM_REAL(f)->pMethods->xFileControl(SHIM_REAL(f), op, arg);
}

static int
shim_sector(sqlite3_file *f)
{
	return SHIM_REAL(f)->pMethods->xSectorSize(SHIM_REAL(f));
}

static int
shim_devchar(sqlite3_file *f)
{
	return SHIM_REAL(f)->pMethods->xDeviceCharacteristics(SHIM_REAL(f));
}

static int
shim_shm_map(sqlite3_file *f, int i, int sz, int ext, void volatile **pp)
{
	return SHIM_REAL(f)->pMethods->xShmMap(SHIM_REAL(f), i, sz, ext, pp);
}

static int
shim_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
	return SHIM_REAL(f)->pMethods->xShmLock(SHIM_REAL(f), off, n, flags);
}

static void
shim_shm_barrier(sqlite3_file *f)
{
	SHIM_REAL(f)->pMethods->xShmBarrier(SHIM_REAL(f));
}

static int
shim_shm_unmap(sqlite3_file *f, int del)
{
	return SHIM_REAL(f)->pMethods->xShmUnmap(SHIM_REAL(f), del);
}

static int
shim_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
    int *out)
{
	struct shim_file *sf = (struct shim_file *)f;
	int rc;

	(void)vfs;
	sf->real = (sqlite3_file *)(sf + 1);
	rc = shim_real->xOpen(shim_real, name, sf->real, flags, out);
	/* Version 2 methods: no memory-mapped fetches through the shim. */
	sf->base.pMethods = sf->real->pMethods != NULL ? &shim_io : NULL;
	return rc;
}

static int
shim_last_error(sqlite3_vfs *vfs, int n, char *buf)
{
	(void)vfs;
	if (n > 0)
		buf[0] = '\0';
	return shim_fail_errno;
}

static void
shim_install(void)
{
	shim_real = sqlite3_vfs_find(NULL);
	shim_vfs = *shim_real;
	shim_vfs.zName = "carteiro-test-shim";
	shim_vfs.szOsFile = (int)sizeof(struct shim_file) +
	    shim_real->szOsFile;
	shim_vfs.xOpen = shim_open;
	shim_vfs.xGetLastError = shim_last_error;
	shim_io = (sqlite3_io_methods){
		.iVersion = 2, .xClose = shim_close, .xRead = shim_read,
		.xWrite = shim_write, .xTruncate = shim_truncate,
		.xSync = shim_sync, .xFileSize = shim_size,
		.xLock = shim_lock, .xUnlock = shim_unlock,
		.xCheckReservedLock = shim_reserved,
		.xFileControl = shim_fcntl, .xSectorSize = shim_sector,
		.xDeviceCharacteristics = shim_devchar,
		.xShmMap = shim_shm_map, .xShmLock = shim_shm_lock,
		.xShmBarrier = shim_shm_barrier,
		.xShmUnmap = shim_shm_unmap,
	};
	sqlite3_vfs_register(&shim_vfs, 1);
}

static void
shim_remove(void)
{
	sqlite3_vfs_unregister(&shim_vfs);
	sqlite3_vfs_register(shim_real, 1);
}

/* Which write failures are "full": a table of what the VFS returns. */
static void
test_error_mapping(void)
{
	static const struct {
		const char *name;
		int rc, err;
		bool sync, full;
	} cases[] = {
		/* What the unix VFS makes of ENOSPC on write(). */
		{ "DB_FULL", DB_FULL, ENOSPC, false, true },
		/* It keeps EDQUOT as an I/O error with its errno. */
		{ "IOERR_WRITE/EDQUOT", SQLITE_IOERR_WRITE, EDQUOT, false,
		    true },
		{ "IOERR_FSYNC/ENOSPC", SQLITE_IOERR_FSYNC, ENOSPC, true,
		    true },
		{ "IOERR_WRITE/EIO", SQLITE_IOERR_WRITE, EIO, false, false },
		{ "IOERR_FSYNC/EIO", SQLITE_IOERR_FSYNC, EIO, true, false },
	};
	char name[96];

	shim_install();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct store *st = t_open(NULL);
		char *before, *after;

		snprintf(name, sizeof(name), "full: mapping %s -> %s",
		    cases[i].name, cases[i].full ? "full" : "not full");
		t_begin(name);
		before = t_state(st);
		shim_fail_rc = cases[i].rc;
		shim_fail_errno = cases[i].err;
		shim_fail_sync = cases[i].sync;
		/* WAL mode: the pages go out (and are synced) at COMMIT. */
		t_assert_int(t_deliver(st, 20 * 1024), -1);
		t_assert_int(store_error_is_full(st), cases[i].full);
		t_assert(!store_error_is_busy(st));
		t_assert(!store_error_is_quota(st));
		shim_fail_rc = 0;
		after = t_state(st);
		t_assert_str(after, before);
		free(after);
		free(before);
		/* The connection is usable afterwards. */
		t_assert_int(t_deliver(st, 20 * 1024), 0);
		t_assert_int(q_int(st, "SELECT count(*) FROM mailbox"), 1);
		store_close(st);
		t_end();
	}

	/* POP3's QUIT when even a delete finds no space: it fails as a
	 * whole (pop3d answers -ERR [SYS/TEMP]) and every message stays. */
	{
		struct store *st = t_open(NULL);
		struct store_msg *msgs = NULL;
		size_t n = 0, deleted = 9;
		int64_t id;
		char *before, *after;

		t_begin("full: a delete that finds no space keeps everything");
		t_assert_int(t_deliver(st, 20 * 1024), 0);
		t_assert_int(store_mailbox_list(st, "alice@ex.test", &msgs,
		    &n), 0);
		t_assert_int(n, 1);
		id = n == 1 ? msgs[0].id : 0;
		free(msgs);
		before = t_state(st);
		shim_fail_rc = DB_FULL;
		shim_fail_errno = ENOSPC;
		shim_fail_sync = false;
		t_assert_int(store_mailbox_delete(st, "alice@ex.test", &id, 1,
		    &deleted), -1);
		t_assert(store_error_is_full(st));
		shim_fail_rc = 0;
		after = t_state(st);
		t_assert_str(after, before);
		free(after);
		free(before);
		t_assert_int(store_mailbox_delete(st, "alice@ex.test", &id, 1,
		    &deleted), 0);
		t_assert_int(deleted, 1);
		store_close(st);
		t_end();
	}
	shim_remove();
}

/* ---- the delivery writer ---- */

static enum delivery_result t_res;
static unsigned t_called;

static void
t_done(uint64_t token, enum delivery_result res, int64_t queue_id,
    void *arg)
{
	(void)token;
	(void)queue_id;
	(void)arg;
	t_res = res;
	t_called++;
}

static enum delivery_result
t_submit(struct event_base *base, struct delivery *d, size_t len)
{
	struct delivery_job job;
	uint64_t deadline = util_now_ms() + 30000;
	unsigned want = t_called + 1;
	struct timeval tv = { 0, 20000 };

	memset(&job, 0, sizeof(job));
	job.spool_fd = -1;
	job.mem = xmalloc(len);
	memset(job.mem, 'b', len);
	job.data_size = len;
	job.prefix = "Received: y\r\n";
	job.prefix_len = 13;
	job.mail_from = "s@remote.test";
	job.local = t_alice;
	job.nlocal = 1;
	job.msgid = "fulltest";
	t_assert(delivery_submit(d, &job, t_done, NULL) != 0);
	while (t_called < want && util_now_ms() < deadline) {
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	t_assert_int(t_called, want);
	return t_res;
}

static void
test_delivery(void)
{
	const char *path;
	struct store *st = t_open(&path);
	struct event_base *base = event_base_new();
	struct cfg cfg;
	struct delivery *d;
	char *before, *after;

	t_begin("full: delivery writer -> DELIVERY_FULL, delivery_is_full");
	memset(&cfg, 0, sizeof(cfg));
	cfg.store.path = (char *)path;
	cfg.store.locator = cfg.store.path;
	d = delivery_new(base, &cfg);
	t_assert(d != NULL);
	t_assert(!delivery_is_full(d));
	t_set_limit(q_int(st, "PRAGMA page_count") + 4);
	before = t_state(st);
	t_assert_int(t_submit(base, d, 300 * 1024), DELIVERY_FULL);
	t_assert(delivery_is_full(d));
	after = t_state(st);
	t_assert_str(after, before);
	free(after);
	free(before);
	/* A small one still fits: stored, and the state ends. */
	t_assert_int(t_submit(base, d, 40), DELIVERY_OK);
	t_assert(!delivery_is_full(d));
	/* The spool's report (tx_data.c) sets it too. */
	delivery_note_full(d);
	t_assert(delivery_is_full(d));
	t_set_limit(0);
	t_assert_int(t_submit(base, d, 300 * 1024), DELIVERY_OK);
	t_assert(!delivery_is_full(d));
	t_assert_int(q_int(st, "SELECT count(*) FROM mailbox"), 2);
	delivery_free(d);
	event_base_free(base);
	store_close(st);
	t_end();
}

int
main(void)
{
	const char *tmp = getenv("TMPDIR");
	char cmd[256];

	log_init("test_store_full", 1, getenv("TEST_DEBUG") ? LOG_LVL_DEBUG :
	    LOG_LVL_ERROR);
	snprintf(t_dir, sizeof(t_dir), "%s/carteiro-full-XXXXXX",
	    tmp != NULL ? tmp : "/tmp");
	if (mkdtemp(t_dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(t_limit, sizeof(t_limit), "%s/page_limit", t_dir);
	t_set_limit(0);
	setenv(STORE_TEST_PAGE_LIMIT_ENV, t_limit, 1);

	test_page_limit();
	test_group();
	test_delete_frees();
	test_delivery();
	test_error_mapping();

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", t_dir);
	return t_exit();
}
