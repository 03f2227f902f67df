/*
 * Unit tests of store/: migrations, domain/user/alias CRUD, recipient
 * resolution, single-instance bodies and gc, UIDLs, streaming a 25 MB body
 * with bounded memory, quota accounting, send log and queue rows. Each
 * case works on a fresh database in a mkdtemp directory. The test peeks at
 * rows through store_internal.h (it is the store's own test).
 */
#include "t.h"
#include "store/store.h"
#include "store/store_internal.h"
#include "store/schema.h"
#include "common/util.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define T_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define T_ASAN 1
#endif
#endif
#ifndef T_ASAN
#define T_ASAN 0
#endif

static char t_dir[64];
static int t_dbn;

static struct store *t_open(void);
static struct store *t_reopen(const char *);
static void t_close(struct store *);
static const char *t_path(int);
static long long q_int(struct store *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
static int t_deliver(struct store *, const char *, const char *const *,
    size_t, const char *const *, size_t, int64_t *, int64_t *);

static const char *
t_path(int n)
{
	static char buf[128];

	snprintf(buf, sizeof(buf), "%s/db%d.sqlite", t_dir, n);
	return buf;
}

/* A fresh, migrated database with domain ex.test and users alice, bob,
 * carol. */
static struct store *
t_open(void)
{
	struct store *st;
	const char *err;

	st = store_open(t_path(++t_dbn), &err);
	if (st == NULL) {
		fprintf(stderr, "store_open: %s\n", err);
		exit(1);
	}
	if (store_migrate(st) < 0 || store_domain_add(st, "ex.test") != 0 ||
	    store_user_add(st, "alice@ex.test", "h") != 0 ||
	    store_user_add(st, "bob@ex.test", "h") != 0 ||
	    store_user_add(st, "carol@ex.test", "h") != 0) {
		fprintf(stderr, "setup: %s\n", store_error(st));
		exit(1);
	}
	return st;
}

static struct store *
t_reopen(const char *path)
{
	const char *err;
	struct store *st = store_open(path, &err);

	if (st == NULL) {
		fprintf(stderr, "store_open: %s\n", err);
		exit(1);
	}
	return st;
}

static void
t_close(struct store *st)
{
	store_close(st);
}

/* One integer from a query (-999 on error). */
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

static int
t_deliver(struct store *st, const char *data, const char *const *local,
    size_t nlocal, const char *const *remote, size_t nremote,
    int64_t *body_r, int64_t *queue_r)
{
	struct store_delivery d = {
		/* The mailbox rows get "Return-Path: <s@x.test>\r\n" (25
		 * bytes) from mail_from; the body has none. */
		.prefix = "",
		.prefix_len = 0,
		.fd = -1,
		.mail_from = "s@x.test",
		.local = local, .nlocal = nlocal,
		.remote = remote, .nremote = nremote,
		.auth_user = "alice@ex.test",
	};
	int rc;

	if (store_begin(st) < 0)
		return -1;
	rc = store_deliver_mem(st, &d, data, strlen(data), body_r, queue_r);
	if (rc < 0) {
		store_rollback(st);
		return -1;
	}
	return store_commit(st);
}

/* ---- migrations ---- */

static void
test_migrate(void)
{
	struct store *st;
	const char *path = t_path(++t_dbn);
	int count = (int)store_schema_migration_count();

	t_begin("migrate from empty file, idempotent");
	st = t_reopen(path);
	t_assert_int(store_schema_version(st), 0);
	t_assert_int(store_check_schema(st), -1);
	t_assert(strstr(store_error(st), "carteiroctl init") != NULL);
	t_assert_int(store_migrate(st), 0);
	t_assert(count >= 2);
	t_assert_int(store_schema_version(st), count);
	t_assert_int(store_check_schema(st), 0);
	t_assert_int(store_migrate(st), 0);
	t_assert_int(store_schema_version(st), count);
	t_assert_int(q_int(st, "SELECT count(*) FROM sqlite_master WHERE "
	    "type = 'table' AND name IN ('domains', 'users', 'aliases', "
	    "'bodies', 'body_chunks', 'mailbox', 'queue', 'queue_rcpt', "
	    "'send_log')"), 9);
	t_assert_int(q_int(st, "SELECT count(*) FROM pragma_journal_mode "
	    "WHERE journal_mode = 'wal'"), 1);
	t_assert_int(q_int(st, "PRAGMA synchronous"), 2);
	t_assert_int(q_int(st, "PRAGMA foreign_keys"), 1);
	t_close(st);
	/* A second process/connection: still current, migrate is a no-op. */
	st = t_reopen(path);
	t_assert_int(store_check_schema(st), 0);
	t_assert_int(store_migrate(st), 0);
	t_assert_int(store_schema_version(st), count);
	/* A database from a newer carteiro is refused. */
	t_assert_int(store_exec(st, "PRAGMA user_version = 999"), 0);
	t_assert_int(store_check_schema(st), -1);
	t_assert_int(store_migrate(st), -1);
	t_assert(strstr(store_error(st), "newer") != NULL);
	t_close(st);
	/* Only from version 1: migration 2 applies on top. */
	st = t_reopen(t_path(++t_dbn));
	t_assert_int(store_exec(st, "BEGIN"), 0);
	t_assert_int(store_exec(st, store_schema_migration(1)), 0);
	t_assert_int(store_exec(st, "PRAGMA user_version = 1; COMMIT"), 0);
	t_assert_int(store_migrate(st), 0);
	t_assert_int(store_schema_version(st), count);
	t_assert_int(q_int(st, "SELECT count(*) FROM sqlite_master WHERE "
	    "name = 'bodies_unref'"), 1);
	t_close(st);
	t_end();
}

/* The login's listing (store_mailbox_list) reads the covering index
 * mailbox_list (migration 11) alone: no table lookup per message and no
 * sort. The plan is of the statement text the store itself prepared. */
static void
test_list_plan(void)
{
	struct store *st = t_open();
	struct store_msg *msgs;
	struct db_stmt *s;
	size_t n;
	char *sql;
	int covering = 0, other = 0;

	t_begin("mailbox list: covering index, no sort");
	t_assert_int(store_domain_add(st, "example.test"), 0);
	t_assert_int(store_user_add(st, "plan@example.test", "x"), 0);
	t_assert_int(store_mailbox_list(st, "plan@example.test", &msgs, &n),
	    0);
	free(msgs);
	t_assert(st->stmt_sql[STMT_MAILBOX_LIST] != NULL);
	sql = xasprintf("EXPLAIN QUERY PLAN %s",
	    st->stmt_sql[STMT_MAILBOX_LIST]);
	t_assert(db_prepare(st->db, sql, false, &s) == DB_OK);
	while (db_step(s) == DB_ROW) {
		const char *d = db_column_text(s, 3);

		if (strstr(d, "USING COVERING INDEX mailbox_list") != NULL)
			covering++;
		else if (strstr(d, "users") == NULL &&
		    strstr(d, "sqlite_autoindex_users") == NULL)
			other++;	/* a table lookup, a temp b-tree */
		if (covering == 0 && other > 0)
			fprintf(stderr, "plan: %s\n", d);
	}
	db_finalize(s);
	free(sql);
	t_assert_int(covering, 1);
	t_assert_int(other, 0);
	t_close(st);
	t_end();
}

static void
test_open_errors(void)
{
	const char *err = NULL;
	char path[128];

	t_begin("open errors and file mode");
	snprintf(path, sizeof(path), "%s/nodir/x.db", t_dir);
	t_assert(store_open(path, &err) == NULL);
	t_assert(err != NULL && strstr(err, "nodir") != NULL);
	{
		struct store *st = t_reopen(t_path(++t_dbn));
		struct stat sb;

		t_assert(stat(t_path(t_dbn), &sb) == 0 &&
		    (sb.st_mode & 077) == 0);
		t_close(st);
	}
	{
		/* :memory: works (no file, no WAL) for quick tests elsewhere. */
		struct store *st = t_reopen(":memory:");

		t_assert_int(store_migrate(st), 0);
		t_assert_int(store_domain_add(st, "m.test"), 0);
		t_assert(access(":memory:", F_OK) != 0);
		t_close(st);
	}
	t_end();
}

/* ---- directory ---- */

struct t_strs {
	char buf[512];
	int n;
};

static void
t_str_cb(const char *s, void *arg)
{
	struct t_strs *l = arg;

	l->n++;
	strncat(l->buf, s, sizeof(l->buf) - strlen(l->buf) - 2);
	strcat(l->buf, ";");
}

static void
t_alias_cb(const char *source, const char *dest, void *arg)
{
	struct t_strs *l = arg;

	l->n++;
	snprintf(l->buf + strlen(l->buf), sizeof(l->buf) - strlen(l->buf),
	    "%s>%s;", source, dest);
}

static void
test_domains(void)
{
	struct store *st = t_open();
	struct t_strs l = { .n = 0 };

	t_begin("domain add/del/list/is_local");
	t_assert_int(store_domain_add(st, "Other.TEST"), 0);
	t_assert_int(store_domain_add(st, "other.test"), 1);
	t_assert_int(store_domain_add(st, "EX.test"), 1);
	t_assert_int(store_domain_add(st, "bad@domain"), -1);
	t_assert_int(store_domain_add(st, ""), -1);
	t_assert_int(store_domain_is_local(st, "other.test"), 1);
	t_assert_int(store_domain_is_local(st, "OTHER.test"), 1);
	t_assert_int(store_domain_is_local(st, "nope.test"), 0);
	t_assert_int(store_domain_list(st, t_str_cb, &l), 0);
	t_assert_str(l.buf, "ex.test;other.test;");
	t_assert_int(store_domain_del(st, "nope.test"), 1);
	/* Users remain: refused with a clear message. */
	t_assert_int(store_domain_del(st, "ex.test"), -1);
	t_assert(strstr(store_error(st), "user") != NULL);
	t_assert(!store_error_is_busy(st));
	t_assert_int(store_domain_is_local(st, "ex.test"), 1);
	/* Aliases go with the domain. */
	t_assert_int(store_alias_add(st, "info@other.test", "a@ex.test"), 0);
	t_assert_int(store_alias_add(st, "@other.test", "a@ex.test"), 0);
	t_assert_int(store_alias_add(st, "x@ex.test", "y@other.test"), 0);
	t_assert_int(store_domain_del(st, "OTHER.test"), 0);
	t_assert_int(store_domain_is_local(st, "other.test"), 0);
	t_assert_int(q_int(st, "SELECT count(*) FROM aliases"), 1);
	t_assert_int(store_domain_del(st, "other.test"), 1);
	/* Empty the domain, then it can go. */
	t_assert_int(store_user_del(st, "alice@ex.test"), 0);
	t_assert_int(store_user_del(st, "bob@ex.test"), 0);
	t_assert_int(store_user_del(st, "carol@ex.test"), 0);
	t_assert_int(store_domain_del(st, "ex.test"), 0);
	memset(&l, 0, sizeof(l));
	t_assert_int(store_domain_list(st, t_str_cb, &l), 0);
	t_assert_int(l.n, 0);
	t_close(st);
	t_end();
}

static void
test_users(void)
{
	struct store *st = t_open();
	struct store_user u;
	struct t_strs l = { .n = 0 };

	t_begin("user add/get/passwd/quota/del/list");
	t_assert_int(store_user_add(st, "dave@nowhere.test", "h"), -1);
	t_assert_str(store_error(st), "domain not local");
	t_assert_int(store_user_add(st, "no-at-sign", "h"), -1);
	t_assert_int(store_user_add(st, "@ex.test", "h"), -1);
	t_assert_int(store_user_add(st, "sp ace@ex.test", "h"), -1);
	t_assert_int(store_user_add(st, "Dave@EX.TEST", "hash1"), 0);
	t_assert_int(store_user_add(st, "dave@ex.test", "h"), 1);
	t_assert_int(store_user_add(st, "ALICE@ex.test", "h"), 1);
	t_assert_int(store_user_get(st, "DAVE@ex.test", &u), 0);
	t_assert_str(u.address, "Dave@ex.test");
	t_assert_str(u.hash, "hash1");
	t_assert_int(u.quota, 0);
	t_assert_int(u.used, 0);
	t_assert(u.enabled);
	t_assert(u.id > 0);
	store_user_clear(&u);
	t_assert_int(store_user_get(st, "nobody@ex.test", &u), 1);
	t_assert(u.address == NULL);
	t_assert_int(store_user_set_hash(st, "dave@ex.test", "hash2"), 0);
	t_assert_int(store_user_set_hash(st, "nobody@ex.test", "x"), 1);
	t_assert_int(store_user_set_quota(st, "dave@ex.test", 1000), 0);
	t_assert_int(store_user_set_quota(st, "nobody@ex.test", 1), 1);
	t_assert_int(store_user_get(st, "dave@ex.test", &u), 0);
	t_assert_str(u.hash, "hash2");
	t_assert_int(u.quota, 1000);
	store_user_clear(&u);
	t_assert_int(store_user_list(st, t_str_cb, &l), 0);
	t_assert_int(l.n, 4);
	t_assert_str(l.buf, "alice@ex.test;bob@ex.test;carol@ex.test;"
	    "Dave@ex.test;");
	t_assert_int(store_user_del(st, "dave@EX.test"), 0);
	t_assert_int(store_user_del(st, "dave@ex.test"), 1);
	t_assert_int(store_user_get(st, "dave@ex.test", &u), 1);
	t_close(st);
	t_end();
}

static void
test_aliases(void)
{
	struct store *st = t_open();
	struct t_strs l = { .n = 0 };

	t_begin("alias add/del/list");
	t_assert_int(store_alias_add(st, "info@ex.test", "alice@ex.test"), 0);
	t_assert_int(store_alias_add(st, "info@ex.test", "bob@ex.test"), 0);
	t_assert_int(store_alias_add(st, "INFO@EX.test", "Bob@ex.test"), 1);
	t_assert_int(store_alias_add(st, "@ex.test", "carol@ex.test"), 0);
	t_assert_int(store_alias_add(st, "@ex.test", "carol@ex.test"), 1);
	t_assert_int(store_alias_add(st, "x@other.test", "a@ex.test"), -1);
	t_assert_str(store_error(st), "domain not local");
	t_assert_int(store_alias_add(st, "x@ex.test", "@ex.test"), -1);
	t_assert_int(store_alias_add(st, "noat", "a@ex.test"), -1);
	t_assert_int(store_alias_list(st, "info@ex.test", t_alias_cb, &l), 0);
	t_assert_str(l.buf, "info@ex.test>alice@ex.test;"
	    "info@ex.test>bob@ex.test;");
	memset(&l, 0, sizeof(l));
	t_assert_int(store_alias_list(st, NULL, t_alias_cb, &l), 0);
	t_assert_int(l.n, 3);
	t_assert_int(store_alias_del(st, "info@ex.test", "bob@EX.test"), 0);
	t_assert_int(store_alias_del(st, "info@ex.test", "bob@ex.test"), 1);
	t_assert_int(store_alias_del(st, "info@ex.test", NULL), 0);
	t_assert_int(store_alias_del(st, "info@ex.test", NULL), 1);
	t_assert_int(store_alias_del(st, "nope@ex.test", NULL), 1);
	t_assert_int(store_alias_del(st, "@ex.test", NULL), 0);
	memset(&l, 0, sizeof(l));
	t_assert_int(store_alias_list(st, NULL, t_alias_cb, &l), 0);
	t_assert_int(l.n, 0);
	t_close(st);
	t_end();
}

/* ---- resolution ---- */

struct t_resolve {
	const char *address;
	const char *postmaster;
	enum store_rcpt_kind kind;
	const char *local;	/* "a;b;" in result order */
	const char *remote;
};

static void
t_join(char *buf, size_t size, char **v, size_t n)
{
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		strncat(buf, v[i], size - strlen(buf) - 2);
		strcat(buf, ";");
	}
}

static void
test_resolve(void)
{
	static const struct t_resolve cases[] = {
		/* explicit user beats catch-all */
		{ "alice@ex.test", NULL, STORE_RCPT_LOCAL, "alice@ex.test;", "" },
		{ "ALICE@EX.TEST", NULL, STORE_RCPT_LOCAL, "alice@ex.test;", "" },
		/* alias beats catch-all; multi-destination */
		{ "info@ex.test", NULL, STORE_RCPT_LOCAL,
		  "alice@ex.test;bob@ex.test;", "" },
		/* nobody: catch-all */
		{ "random@ex.test", NULL, STORE_RCPT_LOCAL, "carol@ex.test;", "" },
		/* recursive, with a remote leg, deduplicated */
		{ "team@ex.test", NULL, STORE_RCPT_LOCAL,
		  "alice@ex.test;bob@ex.test;", "dave@remote.test;" },
		/* alias that only forwards */
		{ "fwd@ex.test", NULL, STORE_RCPT_LOCAL, "",
		  "x@gmail.test;" },
		/* loop without users: nothing */
		{ "loop1@ex.test", NULL, STORE_RCPT_NOUSER, "", "" },
		/* loop through a user: the user gets it once */
		{ "ping@ex.test", NULL, STORE_RCPT_LOCAL, "erin@ex2.test;",
		  "erin@elsewhere.test;" },
		/* user with an alias of its own address keeps a copy */
		{ "ERIN@ex2.test", NULL, STORE_RCPT_LOCAL, "erin@ex2.test;",
		  "erin@elsewhere.test;" },
		/* user whose alias replaces the mailbox */
		{ "frank@ex.test", NULL, STORE_RCPT_LOCAL, "alice@ex.test;", "" },
		/* depth: 6 hops fine, 12 hops cut */
		{ "c0@ex.test", NULL, STORE_RCPT_LOCAL, "alice@ex.test;", "" },
		{ "d0@ex.test", NULL, STORE_RCPT_NOUSER, "", "" },
		/* postmaster: config, case, bare, alias wins, catch-all off */
		{ "postmaster@ex.test", "alice@ex.test", STORE_RCPT_LOCAL,
		  "alice@ex.test;", "" },
		{ "PostMaster@EX.test", "alice@ex.test", STORE_RCPT_LOCAL,
		  "alice@ex.test;", "" },
		{ "postmaster", "alice@ex.test", STORE_RCPT_LOCAL,
		  "alice@ex.test;", "" },
		{ "Postmaster", "pm@remote.test", STORE_RCPT_LOCAL, "",
		  "pm@remote.test;" },
		/* nowhere configured: the oldest user (RFC 5321 4.5.1:
		 * postmaster is always accepted) of the domain, or of the
		 * store */
		{ "postmaster", NULL, STORE_RCPT_LOCAL, "alice@ex.test;", "" },
		{ "postmaster@ex3.test", NULL, STORE_RCPT_LOCAL,
		  "zed@ex3.test;", "" },
		{ "postmaster@ex3.test", "ghost@ex3.test", STORE_RCPT_LOCAL,
		  "zed@ex3.test;", "" },
		{ "postmaster@ex4.test", NULL, STORE_RCPT_LOCAL,
		  "alice@ex.test;", "" },
		{ "other@ex3.test", NULL, STORE_RCPT_NOUSER, "", "" },
		{ "postmaster@ex2.test", "alice@ex.test", STORE_RCPT_LOCAL,
		  "bob@ex.test;", "" },
		{ "postmaster@ex.test", NULL, STORE_RCPT_LOCAL,
		  "carol@ex.test;", "" },
		/* domain without catch-all */
		{ "nobody@ex2.test", NULL, STORE_RCPT_NOUSER, "", "" },
		{ "@ex2.test", NULL, STORE_RCPT_NOUSER, "", "" },
		{ "root", NULL, STORE_RCPT_NOUSER, "", "" },
		/* not local */
		{ "someone@remote.test", NULL, STORE_RCPT_REMOTE, "", "" },
		{ "postmaster@remote.test", "alice@ex.test", STORE_RCPT_REMOTE,
		  "", "" },
	};
	struct store *st = t_open();
	char buf[256], name[128];
	bool ok = true;

	t_begin("resolve setup");
	ok &= store_domain_add(st, "ex2.test") == 0;
	ok &= store_user_add(st, "erin@ex2.test", "h") == 0;
	ok &= store_alias_add(st, "@ex.test", "carol@ex.test") == 0;
	ok &= store_alias_add(st, "info@ex.test", "alice@ex.test") == 0;
	ok &= store_alias_add(st, "info@ex.test", "bob@ex.test") == 0;
	ok &= store_alias_add(st, "team@ex.test", "info@ex.test") == 0;
	ok &= store_alias_add(st, "team@ex.test", "dave@remote.test") == 0;
	ok &= store_alias_add(st, "team@ex.test", "Alice@ex.test") == 0;
	ok &= store_alias_add(st, "team@ex.test", "Dave@REMOTE.test") == 1;
	ok &= store_alias_add(st, "fwd@ex.test", "x@gmail.test") == 0;
	ok &= store_alias_add(st, "loop1@ex.test", "loop2@ex.test") == 0;
	ok &= store_alias_add(st, "loop2@ex.test", "loop1@ex.test") == 0;
	ok &= store_alias_add(st, "erin@ex2.test", "erin@ex2.test") == 0;
	ok &= store_alias_add(st, "erin@ex2.test", "ping@ex.test") == 0;
	ok &= store_alias_add(st, "erin@ex2.test", "erin@elsewhere.test") == 0;
	ok &= store_alias_add(st, "ping@ex.test", "erin@ex2.test") == 0;
	ok &= store_user_add(st, "frank@ex.test", "h") == 0;
	ok &= store_alias_add(st, "frank@ex.test", "alice@ex.test") == 0;
	ok &= store_alias_add(st, "postmaster@ex2.test", "bob@ex.test") == 0;
	ok &= store_domain_add(st, "ex3.test") == 0;
	ok &= store_user_add(st, "zed@ex3.test", "h") == 0;
	ok &= store_user_add(st, "yan@ex3.test", "h") == 0;
	ok &= store_domain_add(st, "ex4.test") == 0;
	if (!ok)
		fprintf(stderr, "setup: %s\n", store_error(st));
	for (int i = 0; i < 6; i++) {
		char src[32], dst[32];

		snprintf(src, sizeof(src), "c%d@ex.test", i);
		snprintf(dst, sizeof(dst), i == 5 ? "alice@ex.test" :
		    "c%d@ex.test", i + 1);
		ok &= store_alias_add(st, src, dst) == 0;
	}
	for (int i = 0; i < 12; i++) {
		char src[32], dst[32];

		snprintf(src, sizeof(src), "d%d@ex2.test", i);
		snprintf(dst, sizeof(dst), i == 11 ? "erin@ex2.test" :
		    "d%d@ex2.test", i + 1);
		ok &= store_alias_add(st, src, dst) == 0;
	}
	/* d0@ex.test enters the ex2 chain (ex.test has a catch-all). */
	ok &= store_alias_add(st, "d0@ex.test", "d0@ex2.test") == 0;
	t_assert(ok);
	t_end();

	for (size_t i = 0; i < nitems(cases); i++) {
		const struct t_resolve *c = &cases[i];
		enum store_rcpt_kind kind;
		char **local, **remote;
		size_t nlocal, nremote;

		snprintf(name, sizeof(name), "resolve %s (postmaster %s)",
		    c->address, c->postmaster ? c->postmaster : "-");
		t_begin(name);
		t_assert_int(store_resolve(st, c->address, c->postmaster,
		    &kind, &local, &nlocal, &remote, &nremote), 0);
		t_assert_int(kind, c->kind);
		t_join(buf, sizeof(buf), local, nlocal);
		t_assert_str(buf, c->local);
		t_join(buf, sizeof(buf), remote, nremote);
		t_assert_str(buf, c->remote);
		store_rcpt_free_list(local, nlocal);
		store_rcpt_free_list(remote, nremote);
		t_end();
	}

	/* store_resolve_quota: full when any user the resolution reaches is
	 * at or over a quota (directly, through an alias, as the postmaster
	 * fallback); the domain memo does not confuse two domains. */
	{
		static const char *const zed[] = { "zed@ex3.test" };
		static const struct { const char *address; bool full; } q[] = {
			{ "zed@ex3.test", true },
			{ "yan@ex3.test", false },
			{ "postmaster@ex3.test", true },   /* fallback: zed */
			{ "team@ex.test", false },
			{ "someone@remote.test", false },
		};
		enum store_rcpt_kind kind;
		char **local, **remote;
		size_t nlocal, nremote;
		bool full;

		t_begin("resolve_quota: full users reached");
		t_assert_int(t_deliver(st, "0123456789\r\n", zed, 1, NULL, 0,
		    NULL, NULL), 0);
		t_assert_int(store_user_set_quota(st, "zed@ex3.test", 10), 0);
		t_assert_int(store_user_set_quota(st, "yan@ex3.test", 10), 0);
		for (size_t i = 0; i < nitems(q); i++) {
			full = !q[i].full;
			t_assert_int(store_resolve_quota(st, q[i].address, NULL,
			    &kind, &local, &nlocal, &remote, &nremote, &full),
			    0);
			if (full != q[i].full)
				fprintf(stderr, "%s: full=%d\n", q[i].address,
				    full);
			t_assert(full == q[i].full);
			store_rcpt_free_list(local, nlocal);
			store_rcpt_free_list(remote, nremote);
		}
		/* Through an alias: erin's chain reaches ping, not zed;
		 * an alias to zed does. */
		t_assert_int(store_alias_add(st, "z@ex2.test", "yan@ex3.test"),
		    0);
		t_assert_int(store_alias_add(st, "z@ex2.test", "zed@ex3.test"),
		    0);
		t_assert_int(store_resolve_quota(st, "z@ex2.test", NULL, &kind,
		    &local, &nlocal, &remote, &nremote, &full), 0);
		t_assert_int(kind, STORE_RCPT_LOCAL);
		t_assert_int((int)nlocal, 2);
		t_assert(full);
		store_rcpt_free_list(local, nlocal);
		store_rcpt_free_list(remote, nremote);
		t_end();
	}
	t_close(st);
}

/* ---- bodies and mailboxes ---- */

static void
test_single_instance(void)
{
	static const char *const three[] = {
		"alice@ex.test", "bob@ex.test", "carol@ex.test",
	};
	struct store *st = t_open();
	struct store_msg *ma = NULL, *mb = NULL, *mc = NULL;
	size_t na, nb, nc, del;
	int64_t body, queue;
	unsigned freed;
	char big[3 * 70000 + 1];

	t_begin("single-instance body, refs, gc");
	/* 3 chunks, so gc must delete several chunk rows. */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	t_assert_int(t_deliver(st, big, three, 3, NULL, 0, &body, &queue), 0);
	t_assert_int(queue, 0);
	t_assert_int(q_int(st, "SELECT count(*) FROM bodies"), 1);
	t_assert_int(q_int(st, "SELECT refs FROM bodies WHERE id = %lld",
	    (long long)body), 3);
	t_assert_int(q_int(st, "SELECT count(*) FROM body_chunks WHERE "
	    "body_id = %lld", (long long)body), 4);
	t_assert_int(q_int(st, "SELECT count(*) FROM mailbox"), 3);
	t_assert_int(store_mailbox_list(st, "alice@ex.test", &ma, &na), 0);
	t_assert_int(store_mailbox_list(st, "bob@ex.test", &mb, &nb), 0);
	t_assert_int(store_mailbox_list(st, "carol@ex.test", &mc, &nc), 0);
	t_assert(na == 1 && nb == 1 && nc == 1);
	t_assert_int(ma[0].body_id, body);
	t_assert_int(ma[0].size, 25 + sizeof(big) - 1);
	/* Someone else's row id is skipped. */
	t_assert_int(store_mailbox_delete(st, "alice@ex.test", &mb[0].id, 1,
	    &del), 0);
	t_assert_int(del, 0);
	t_assert_int(store_mailbox_delete(st, "alice@ex.test", &ma[0].id, 1,
	    &del), 0);
	t_assert_int(del, 1);
	t_assert_int(store_mailbox_delete(st, "alice@ex.test", &ma[0].id, 1,
	    &del), 0);
	t_assert_int(del, 0);
	t_assert_int(store_mailbox_delete(st, "bob@ex.test", &mb[0].id, 1,
	    &del), 0);
	t_assert_int(q_int(st, "SELECT refs FROM bodies"), 1);
	t_assert_int(store_gc(st, 10, &freed), 0);
	t_assert_int(freed, 0);
	t_assert_int(q_int(st, "SELECT count(*) FROM bodies"), 1);
	t_assert_int(store_mailbox_delete(st, "carol@ex.test", &mc[0].id, 1,
	    &del), 0);
	t_assert_int(q_int(st, "SELECT refs FROM bodies"), 0);
	t_assert_int(q_int(st, "SELECT count(*) FROM body_chunks"), 4);
	t_assert_int(store_gc(st, 0, &freed), 0);
	t_assert_int(freed, 0);
	t_assert_int(store_gc(st, 10, &freed), 0);
	t_assert_int(freed, 1);
	t_assert_int(q_int(st, "SELECT count(*) FROM bodies"), 0);
	t_assert_int(q_int(st, "SELECT count(*) FROM body_chunks"), 0);
	t_assert(store_body_open(st, body, NULL) == NULL);
	t_assert_int(store_mailbox_delete(st, "nobody@ex.test", &mc[0].id, 1,
	    &del), -1);
	free(ma);
	free(mb);
	free(mc);
	t_assert_int(store_mailbox_list(st, "nobody@ex.test", &ma, &na), 1);
	t_assert_int(store_mailbox_list(st, "alice@ex.test", &ma, &na), 0);
	t_assert_int(na, 0);
	free(ma);

	/* gc in bounded batches; user del drops refs. */
	for (int i = 0; i < 5; i++)
		t_assert_int(t_deliver(st, "hi\r\n", three, 2, NULL, 0, NULL,
		    NULL), 0);
	t_assert_int(store_user_del(st, "alice@ex.test"), 0);
	t_assert_int(q_int(st, "SELECT sum(refs) FROM bodies"), 5);
	t_assert_int(store_user_del(st, "bob@ex.test"), 0);
	t_assert_int(q_int(st, "SELECT sum(refs) FROM bodies"), 0);
	t_assert_int(store_gc(st, 2, &freed), 0);
	t_assert_int(freed, 2);
	t_assert_int(store_gc(st, 2, &freed), 0);
	t_assert_int(store_gc(st, 2, &freed), 0);
	t_assert_int(freed, 1);
	t_assert_int(store_gc(st, 2, NULL), 0);
	t_assert_int(q_int(st, "SELECT count(*) FROM bodies"), 0);
	t_assert_int(q_int(st, "SELECT count(*) FROM mailbox"), 0);
	t_close(st);
	t_end();
}

static bool
t_uidl_ok(const char *u)
{
	size_t n = strlen(u);

	if (n == 0 || n >= 64)
		return false;
	for (; *u != '\0'; u++)
		if (*u < 0x21 || *u > 0x7e)
			return false;
	return true;
}

static void
test_uidl(void)
{
	static const char *const alice[] = { "alice@ex.test" };
	struct store *st = t_open();
	char seen[16][64];
	int nseen = 0;
	struct store_msg *m;
	size_t n, del;

	t_begin("UIDL unique, never reused");
	for (int i = 0; i < 3; i++)
		t_assert_int(t_deliver(st, "m\r\n", alice, 1, NULL, 0, NULL,
		    NULL), 0);
	t_assert_int(store_mailbox_list(st, "alice@ex.test", &m, &n), 0);
	t_assert_int(n, 3);
	for (size_t i = 0; i < n; i++) {
		t_assert(t_uidl_ok(m[i].uidl));
		strcpy(seen[nseen++], m[i].uidl);
	}
	t_assert(strcmp(seen[0], seen[1]) != 0);
	t_assert(strcmp(seen[1], seen[2]) != 0);
	/* Delete the newest: its number must not come back. */
	t_assert_int(store_mailbox_delete(st, "alice@ex.test", &m[2].id, 1,
	    &del), 0);
	free(m);
	t_assert_int(t_deliver(st, "m\r\n", alice, 1, NULL, 0, NULL, NULL), 0);
	t_assert_int(store_mailbox_list(st, "alice@ex.test", &m, &n), 0);
	t_assert_int(n, 3);
	for (int j = 0; j < nseen; j++)
		t_assert(strcmp(m[2].uidl, seen[j]) != 0);
	strcpy(seen[nseen++], m[2].uidl);
	free(m);
	/* Delete and re-create the user at once (same second). */
	t_assert_int(store_user_del(st, "alice@ex.test"), 0);
	t_assert_int(store_user_add(st, "alice@ex.test", "h"), 0);
	for (int i = 0; i < 4; i++)
		t_assert_int(t_deliver(st, "m\r\n", alice, 1, NULL, 0, NULL,
		    NULL), 0);
	t_assert_int(store_mailbox_list(st, "alice@ex.test", &m, &n), 0);
	t_assert_int(n, 4);
	for (size_t i = 0; i < n; i++) {
		t_assert(t_uidl_ok(m[i].uidl));
		for (int j = 0; j < nseen; j++)
			t_assert(strcmp(m[i].uidl, seen[j]) != 0);
	}
	free(m);
	t_close(st);
	t_end();
}

/* xorshift64: the 25 MB test regenerates its data instead of keeping it. */
static uint64_t
t_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void
t_fill(uint64_t *seed, unsigned char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (unsigned char)(t_rand(seed) >> 56);
}

/*
 * Peak RSS in kB: VmHWM belongs to this address space. (ru_maxrss survives
 * execve, so under meson test it reports the Python parent's peak.)
 */
static long
t_peak_rss_kb(void)
{
	struct rusage ru;
	char line[256];
	long kb = -1;
	FILE *f;

	if ((f = fopen("/proc/self/status", "r")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL)
			if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
				break;
		fclose(f);
	}
	if (kb >= 0)
		return kb;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static void
test_big_body(void)
{
	static const char *const alice[] = { "alice@ex.test" };
	const uint64_t size = 25 * 1024 * 1024 + 12345;
	/* What RETR starts with: the store's Return-Path line (25 bytes,
	 * from mail_from), then the prefix given to store_deliver. */
	const char prefix[] = "Return-Path: <s@x.test>\r\n"
	    "Received: from x by y; Thu, 1 Jan 2026 00:00:00 +0000\r\n";
	unsigned char wbuf[40000], rbuf[40000], ebuf[40000];
	struct store *st = t_open();
	struct store_delivery d = {
		.prefix = prefix + 25,
		.prefix_len = sizeof(prefix) - 1 - 25,
		.mail_from = "s@x.test",
		.local = alice, .nlocal = 1,
	};
	struct store_body *b;
	struct store_msg *m;
	size_t n;
	uint64_t seed = 0x9e3779b97f4a7c15ULL, got, off, bsize = 0;
	char spool[128];
	long rss;
	int fd;
	bool same = true;

	t_begin("25 MB body streamed from spool, read back in chunks");
	snprintf(spool, sizeof(spool), "%s/spool", t_dir);
	fd = open(spool, O_RDWR | O_CREAT | O_TRUNC, 0600);
	t_assert(fd >= 0);
	for (off = 0; off < size; off += n) {
		n = size - off < sizeof(wbuf) ? (size_t)(size - off) :
		    sizeof(wbuf);
		t_fill(&seed, wbuf, n);
		t_assert(write(fd, wbuf, n) == (ssize_t)n);
	}
	/* pread is used: the fd offset (now at the end) must not matter. */
	d.fd = fd;
	d.data_size = size;
	t_assert_int(store_begin(st), 0);
	t_assert_int(store_deliver(st, &d, NULL, NULL), 0);
	t_assert_int(store_commit(st), 0);
	close(fd);
	unlink(spool);

	t_assert_int(store_mailbox_list(st, "alice@ex.test", &m, &n), 0);
	t_assert_int(n, 1);
	t_assert_int(m[0].size, size + sizeof(prefix) - 1);
	t_assert_int(q_int(st, "SELECT size FROM bodies"),
	    size + sizeof(prefix) - 1 - 25);
	b = store_message_open(st, m[0].id, &bsize);
	t_assert(b != NULL);
	t_assert_int(bsize, size + sizeof(prefix) - 1);
	/* Read in odd-sized pieces so reads straddle chunk boundaries. */
	seed = 0x9e3779b97f4a7c15ULL;
	got = 0;
	while (b != NULL && got < bsize) {
		ssize_t r = store_body_read(b, got, rbuf, 37777);
		size_t i = 0;

		if (r <= 0) {
			same = false;
			break;
		}
		if (got < sizeof(prefix) - 1) {
			size_t p = sizeof(prefix) - 1 - (size_t)got;

			if (p > (size_t)r)
				p = (size_t)r;
			same &= memcmp(rbuf, prefix + got, p) == 0;
			i = p;
		}
		t_fill(&seed, ebuf, (size_t)r - i);
		same &= memcmp(rbuf + i, ebuf, (size_t)r - i) == 0;
		got += (uint64_t)r;
	}
	t_assert(same);
	t_assert_int(got, bsize);
	if (b != NULL) {
		t_assert_int(store_body_read(b, bsize, rbuf, 10), 0);
		t_assert_int(store_body_read(b, bsize - 3, rbuf, 10), 3);
		/* random access back into an earlier chunk */
		t_assert_int(store_body_read(b, 0, rbuf, 6), 6);
		t_assert(memcmp(rbuf, "Return", 6) == 0);
	}
	store_body_close(b);
	free(m);
	rss = t_peak_rss_kb();
	printf("# peak RSS %ld kB%s\n", rss, T_ASAN ?
	    " (ASan build: limit not enforced)" : "");
	/* ASan's shadow memory and quarantine inflate RSS far beyond what
	 * the code uses; the 16 MB bound is checked in normal builds only. */
	if (!T_ASAN)
		t_assert(rss < 16 * 1024);
	t_close(st);
	t_end();
}

/*
 * Bodies up to STORE_INLINE_MAX live in bodies.data (schema 3), larger
 * ones in chunk rows; a small body written before schema 3 (data NULL,
 * one chunk row) still reads back.
 */
static void
test_body_inline(void)
{
	static const char *const alice[] = { "alice@ex.test" };
	struct store *st = t_open();
	struct store_delivery d = {
		.prefix = "Return-Path: <a@b.test>\r\n", .prefix_len = 25,
		.fd = -1, .mail_from = "", .local = alice, .nlocal = 1,
	};
	char small[STORE_INLINE_MAX - 25 + 1], over[STORE_INLINE_MAX - 24 + 1];
	char want[STORE_INLINE_MAX + 1], buf[STORE_INLINE_MAX + 8];
	struct store_body *b;
	uint64_t size;
	int64_t body;

	t_begin("small bodies inline in their bodies row");
	for (size_t i = 0; i < sizeof(small) - 1; i++)
		small[i] = (char)('a' + i % 26);
	small[sizeof(small) - 1] = '\0';
	/* Exactly STORE_INLINE_MAX with the prefix: inline, no chunks. */
	t_assert_int(store_deliver_mem(st, &d, small, strlen(small), &body,
	    NULL), 0);
	t_assert_int(q_int(st, "SELECT length(data) FROM bodies WHERE id = "
	    "%lld", (long long)body), STORE_INLINE_MAX);
	t_assert_int(q_int(st, "SELECT count(*) FROM body_chunks WHERE "
	    "body_id = %lld", (long long)body), 0);
	memcpy(want, d.prefix, 25);
	memcpy(want + 25, small, strlen(small));
	b = store_body_open(st, body, &size);
	t_assert(b != NULL && size == STORE_INLINE_MAX);
	t_assert_int(store_body_read(b, 0, buf, sizeof(buf)),
	    STORE_INLINE_MAX);
	t_assert(memcmp(buf, want, STORE_INLINE_MAX) == 0);
	t_assert_int(store_body_read(b, 20, buf, 10), 10);
	t_assert(memcmp(buf, want + 20, 10) == 0);
	t_assert_int(store_body_read(b, STORE_INLINE_MAX, buf, 10), 0);
	store_body_close(b);

	/* One byte more: a chunk row, data NULL. */
	memset(over, 'o', sizeof(over) - 1);
	over[sizeof(over) - 1] = '\0';
	t_assert_int(store_deliver_mem(st, &d, over, strlen(over), &body,
	    NULL), 0);
	t_assert_int(q_int(st, "SELECT data IS NULL FROM bodies WHERE id = "
	    "%lld", (long long)body), 1);
	t_assert_int(q_int(st, "SELECT count(*) FROM body_chunks WHERE "
	    "body_id = %lld", (long long)body), 1);
	b = store_body_open(st, body, &size);
	t_assert(b != NULL && size == STORE_INLINE_MAX + 1);
	t_assert_int(store_body_read(b, STORE_INLINE_MAX - 2, buf, 10), 3);
	t_assert(memcmp(buf, "ooo", 3) == 0);
	store_body_close(b);

	/* A small body as schema 2 wrote it. */
	t_assert_int(store_exec(st, "INSERT INTO bodies(id, size, refs, "
	    "created) VALUES (900, 5, 1, 0); INSERT INTO body_chunks(body_id, "
	    "seq, data) VALUES (900, 0, CAST('hello' AS BLOB))"), 0);
	b = store_body_open(st, 900, &size);
	t_assert(b != NULL && size == 5);
	t_assert_int(store_body_read(b, 1, buf, 10), 4);
	t_assert(memcmp(buf, "ello", 4) == 0);
	store_body_close(b);

	/* Inline data that disagrees with size is an error, not a read. */
	t_assert_int(store_exec(st, "INSERT INTO bodies(id, size, refs, "
	    "created, data) VALUES (901, 9, 1, 0, CAST('short' AS BLOB))"), 0);
	t_assert(store_body_open(st, 901, &size) == NULL);
	t_assert(strstr(store_error(st), "inline") != NULL);
	t_close(st);
	t_end();
}

static void
test_body_edges(void)
{
	static const char *const alice[] = { "alice@ex.test" };
	struct store *st = t_open();
	struct store_delivery d = {
		.prefix = "", .prefix_len = 0, .fd = -1, .mail_from = "",
		.local = alice, .nlocal = 1,
	};
	struct store_body *b;
	unsigned char *data = xmalloc(2 * STORE_CHUNK_SIZE);
	unsigned char buf[100];
	uint64_t size;
	int64_t body;

	t_begin("body edges: exact chunk multiple, empty, prefix only");
	for (size_t i = 0; i < 2 * STORE_CHUNK_SIZE; i++)
		data[i] = (unsigned char)i;
	t_assert_int(store_deliver_mem(st, &d, data, 2 * STORE_CHUNK_SIZE,
	    &body, NULL), 0);
	t_assert_int(q_int(st, "SELECT count(*) FROM body_chunks WHERE "
	    "body_id = %lld", (long long)body), 2);
	b = store_body_open(st, body, &size);
	t_assert(b != NULL && size == 2 * STORE_CHUNK_SIZE);
	t_assert_int(store_body_read(b, STORE_CHUNK_SIZE - 50, buf, 100), 100);
	t_assert(memcmp(buf, data + STORE_CHUNK_SIZE - 50, 100) == 0);
	store_body_close(b);

	/* An empty message: no chunks, reads return 0. */
	t_assert_int(store_deliver_mem(st, &d, "", 0, &body, NULL), 0);
	b = store_body_open(st, body, &size);
	t_assert(b != NULL && size == 0);
	t_assert_int(store_body_read(b, 0, buf, 10), 0);
	store_body_close(b);

	/* Prefix longer than a chunk, data empty. */
	memset(data, 'p', STORE_CHUNK_SIZE + 7);
	d.prefix = (const char *)data;
	d.prefix_len = STORE_CHUNK_SIZE + 7;
	t_assert_int(store_deliver_mem(st, &d, "", 0, &body, NULL), 0);
	b = store_body_open(st, body, &size);
	t_assert(b != NULL && size == STORE_CHUNK_SIZE + 7);
	t_assert_int(store_body_read(b, STORE_CHUNK_SIZE, buf, 100), 7);
	t_assert(memcmp(buf, "ppppppp", 7) == 0);
	store_body_close(b);

	/* A spool shorter than announced fails and leaves nothing. */
	{
		char spool[128];
		int fd;

		snprintf(spool, sizeof(spool), "%s/short", t_dir);
		fd = open(spool, O_RDWR | O_CREAT | O_TRUNC, 0600);
		t_assert(write(fd, "abc", 3) == 3);
		d.prefix = "";
		d.prefix_len = 0;
		d.fd = fd;
		d.data_size = 10;
		t_assert_int(q_int(st, "SELECT count(*) FROM bodies"), 3);
		t_assert_int(store_deliver(st, &d, NULL, NULL), -1);
		t_assert(strstr(store_error(st), "shorter") != NULL);
		t_assert_int(q_int(st, "SELECT count(*) FROM bodies"), 3);
		t_assert_int(q_int(st, "SELECT count(*) FROM mailbox"), 3);
		close(fd);
		unlink(spool);
	}
	/* No recipients; unknown local user. */
	d.fd = -1;
	d.nlocal = 0;
	t_assert_int(store_deliver_mem(st, &d, "x", 1, NULL, NULL), -1);
	{
		static const char *const ghost[] = { "ghost@ex.test" };

		d.local = ghost;
		d.nlocal = 1;
		t_assert_int(store_deliver_mem(st, &d, "x", 1, NULL, NULL), -1);
		t_assert_str(store_error(st), "no such user");
	}
	t_assert_int(q_int(st, "SELECT count(*) FROM bodies"), 3);
	free(data);
	t_close(st);
	t_end();
}

static void
test_group_commit(void)
{
	static const char *const alice[] = { "alice@ex.test" };
	static const char *const ghost[] = { "ghost@ex.test" };
	struct store *st = t_open(), *st2;
	struct store_delivery d = {
		.prefix = "", .fd = -1, .mail_from = "",
		.local = alice, .nlocal = 1,
	};

	t_begin("group commit, rollback, failed delivery in a batch, busy");
	t_assert(!store_in_transaction(st));
	t_assert_int(store_begin(st), 0);
	t_assert(store_in_transaction(st));
	for (int i = 0; i < 3; i++)
		t_assert_int(store_deliver_mem(st, &d, "m", 1, NULL, NULL), 0);
	store_rollback(st);
	t_assert(!store_in_transaction(st));
	t_assert_int(q_int(st, "SELECT count(*) FROM mailbox"), 0);
	t_assert_int(q_int(st, "SELECT count(*) FROM bodies"), 0);
	t_assert_int(q_int(st, "SELECT used FROM users WHERE address = "
	    "'alice@ex.test'"), 0);

	t_assert_int(store_begin(st), 0);
	t_assert_int(store_deliver_mem(st, &d, "m", 1, NULL, NULL), 0);
	d.local = ghost;
	t_assert_int(store_deliver_mem(st, &d, "m", 1, NULL, NULL), -1);
	d.local = alice;
	t_assert_int(store_deliver_mem(st, &d, "m", 1, NULL, NULL), 0);
	t_assert_int(store_commit(st), 0);
	t_assert_int(q_int(st, "SELECT count(*) FROM mailbox"), 2);
	t_assert_int(q_int(st, "SELECT count(*) FROM bodies"), 2);

	/* A second connection cannot write while the first holds the lock. */
	st2 = t_reopen(t_path(t_dbn));
	store_set_busy_timeout(st2, 0);
	t_assert_int(store_begin(st), 0);
	t_assert_int(store_begin(st2), -1);
	t_assert(store_error_is_busy(st2));
	t_assert_int(store_domain_add(st2, "new.test"), -1);
	t_assert(store_error_is_busy(st2));
	/* Readers are not blocked (WAL). */
	t_assert_int(store_domain_is_local(st2, "ex.test"), 1);
	store_rollback(st);
	t_assert_int(store_domain_add(st2, "new.test"), 0);
	t_close(st2);
	t_close(st);
	t_end();
}

/* One vocabulary: store_begin nests as a unit (SAVEPOINT) whose rollback
 * undoes only that unit; store_read_begin joins an open transaction. */
static void
test_nested(void)
{
	struct store *st = t_open(), *st2;

	t_begin("nested store_begin: inner rollback undoes only the unit");
	t_assert_int(store_begin(st), 0);
	t_assert_int(store_domain_add(st, "a.test"), 0);
	t_assert_int(store_begin(st), 0);		/* unit 1: kept */
	t_assert_int(store_domain_add(st, "b.test"), 0);
	t_assert_int(store_commit(st), 0);
	t_assert_int(store_begin(st), 0);		/* unit 2: undone */
	t_assert_int(store_domain_add(st, "c.test"), 0);
	t_assert_int(store_begin(st), 0);		/* nested in unit 2 */
	t_assert_int(store_domain_add(st, "d.test"), 0);
	t_assert_int(store_commit(st), 0);
	store_rollback(st);
	t_assert(store_in_transaction(st));
	t_assert_int(store_read_begin(st), 0);		/* joins */
	t_assert_int(store_domain_is_local(st, "b.test"), 1);
	t_assert_int(store_domain_is_local(st, "c.test"), 0);
	store_read_end(st);
	t_assert(store_in_transaction(st));
	t_assert_int(store_commit(st), 0);
	t_assert(!store_in_transaction(st));
	t_assert_int(q_int(st, "SELECT group_concat(name, ',') = "
	    "'a.test,b.test' FROM (SELECT name FROM domains WHERE name != "
	    "'ex.test' ORDER BY name)"), 1);
	/* A commit with nothing open fails; a rollback is harmless. */
	t_assert_int(store_commit(st), -1);
	store_rollback(st);
	/* The whole transaction rolled back with an inner unit open. */
	t_assert_int(store_begin(st), 0);
	t_assert_int(store_domain_add(st, "e.test"), 0);
	t_assert_int(store_begin(st), 0);
	t_assert_int(store_domain_add(st, "f.test"), 0);
	store_rollback(st);
	store_rollback(st);
	t_assert(!store_in_transaction(st));
	t_assert_int(store_domain_is_local(st, "e.test"), 0);
	/* A read snapshot: a writer's later commit is not seen in it. */
	st2 = t_reopen(t_path(t_dbn));
	t_assert_int(store_read_begin(st), 0);
	t_assert(store_in_transaction(st));
	t_assert_int(store_domain_is_local(st, "g.test"), 0);
	t_assert_int(store_domain_add(st2, "g.test"), 0);
	t_assert_int(store_domain_is_local(st, "g.test"), 0);
	store_read_end(st);
	t_assert(!store_in_transaction(st));
	t_assert_int(store_domain_is_local(st, "g.test"), 1);
	/* Units of their own (store_domain_del) inside a unit that fails. */
	t_assert_int(store_begin(st), 0);
	t_assert_int(store_begin(st), 0);
	t_assert_int(store_domain_del(st, "g.test"), 0);
	store_rollback(st);
	t_assert_int(store_commit(st), 0);
	t_assert_int(store_domain_is_local(st, "g.test"), 1);
	t_close(st2);
	t_close(st);
	t_end();
}

static void
test_quota(void)
{
	static const char *const ab[] = { "alice@ex.test", "bob@ex.test" };
	struct store *st = t_open();
	struct store_user u;
	struct store_msg *m;
	size_t n, del;
	int64_t ids[2];

	t_begin("quota and used accounting");
	t_assert_int(store_user_set_quota(st, "alice@ex.test", 5000), 0);
	t_assert_int(t_deliver(st, "0123456789", ab, 2, NULL, 0, NULL, NULL),
	    0);
	t_assert_int(t_deliver(st, "01234", ab, 1, NULL, 0, NULL, NULL), 0);
	t_assert_int(store_user_get(st, "alice@ex.test", &u), 0);
	t_assert_int(u.quota, 5000);
	t_assert_int(u.used, (25 + 10) + (25 + 5));
	store_user_clear(&u);
	t_assert_int(store_user_get(st, "bob@ex.test", &u), 0);
	t_assert_int(u.used, 25 + 10);
	store_user_clear(&u);
	t_assert_int(store_mailbox_list(st, "alice@ex.test", &m, &n), 0);
	t_assert_int(n, 2);
	t_assert_int(m[0].size + m[1].size, 65);
	ids[0] = m[0].id;
	ids[1] = m[1].id;
	t_assert(m[0].arrived > 0);
	free(m);
	t_assert_int(store_mailbox_delete(st, "alice@ex.test", ids, 1, &del),
	    0);
	t_assert_int(store_user_get(st, "alice@ex.test", &u), 0);
	t_assert_int(u.used, 30);
	store_user_clear(&u);
	/* Already-deleted row plus the other: only the new one counts. */
	t_assert_int(store_mailbox_delete(st, "alice@ex.test", ids, 2, &del),
	    0);
	t_assert_int(del, 1);
	t_assert_int(store_user_get(st, "alice@ex.test", &u), 0);
	t_assert_int(u.used, 0);
	store_user_clear(&u);
	t_close(st);
	t_end();
}

/* store_deliver with check_quota: refused past the quota, at it fine,
 * nothing left behind by a refusal, an unknown user is not "quota". */
static void
test_deliver_quota(void)
{
	static const char *const ab[] = { "alice@ex.test", "bob@ex.test" };
	static const char *const ghost[] = { "ghost@ex.test" };
	struct store *st = t_open();
	struct store_delivery d = {
		.prefix = "", .fd = -1, .mail_from = NULL, .local = ab,
		.nlocal = 2, .check_quota = true,
	};
	struct store_user u;

	t_begin("deliver: quota checked by the counting statement");
	t_assert_int(store_user_set_quota(st, "bob@ex.test", 10), 0);
	/* 10 bytes: bob exactly at his quota, accepted. */
	t_assert_int(store_deliver_mem(st, &d, "0123456789", 10, NULL, NULL),
	    0);
	t_assert(!store_error_is_quota(st));
	/* One more byte for bob: refused, for alice too (one job). */
	t_assert_int(store_deliver_mem(st, &d, "x", 1, NULL, NULL), -1);
	t_assert(store_error_is_quota(st));
	t_assert(strstr(store_error(st), "bob@ex.test") != NULL);
	t_assert_int(q_int(st, "SELECT count(*) FROM bodies"), 1);
	t_assert_int(q_int(st, "SELECT count(*) FROM mailbox"), 2);
	t_assert_int(store_user_get(st, "alice@ex.test", &u), 0);
	t_assert_int(u.used, 10);
	store_user_clear(&u);
	t_assert_int(q_int(st, "SELECT next_uid FROM users WHERE address = "
	    "'alice@ex.test'"), 2);
	/* Without the check the same delivery goes through. */
	d.check_quota = false;
	t_assert_int(store_deliver_mem(st, &d, "x", 1, NULL, NULL), 0);
	/* An unknown user is an error, not a quota refusal. */
	d.check_quota = true;
	d.local = ghost;
	d.nlocal = 1;
	t_assert_int(store_deliver_mem(st, &d, "x", 1, NULL, NULL), -1);
	t_assert(!store_error_is_quota(st));
	t_assert(strstr(store_error(st), "no such user") != NULL);
	t_close(st);
	t_end();
}

static void
test_sendlog(void)
{
	struct store *st = t_open();
	int64_t now = util_time();

	t_begin("send_log counting");
	t_assert_int(store_sent_count(st, "alice@ex.test", now - 86400), 0);
	t_assert_int(store_sent_oldest(st, "alice@ex.test", now - 86400), 0);
	t_assert_int(store_sent_add(st, "alice@ex.test", now - 90000, 5), 0);
	t_assert_int(store_sent_add(st, "alice@ex.test", now - 100, 3), 0);
	t_assert_int(store_sent_add(st, "ALICE@ex.test", now - 10, 2), 0);
	t_assert_int(store_sent_add(st, "bob@ex.test", now - 10, 7), 0);
	t_assert_int(store_sent_count(st, "alice@ex.test", now - 86400), 5);
	t_assert_int(store_sent_count(st, "alice@ex.test", 0), 10);
	t_assert_int(store_sent_oldest(st, "alice@ex.test", now - 86400),
	    now - 100);
	t_assert_int(store_sent_count(st, "bob@ex.test", now - 86400), 7);
	t_assert_int(store_sent_count(st, "carol@ex.test", now - 86400), 0);
	/* Rows far outside any window are pruned on insert. */
	t_assert_int(store_sent_add(st, "alice@ex.test", now + 3 * 86400, 1),
	    0);
	t_assert_int(store_sent_count(st, "alice@ex.test", 0), 1);
	t_assert_int(store_sent_count(st, "bob@ex.test", 0), 7);
	t_close(st);
	t_end();
}

static void
test_queue_rows(void)
{
	static const char *const alice[] = { "alice@ex.test" };
	static const char *const remote[] = {
		"Bob@Remote.TEST", "c@other.test", "\"a@b\"@Quoted.Test",
	};
	struct store *st = t_open();
	struct store_delivery d = {
		.prefix = "P: 1\r\n", .prefix_len = 6, .fd = -1,
		.mail_from = "alice@ex.test",
		.local = alice, .nlocal = 1,
		.remote = remote, .nremote = 3,
		.auth_user = "alice@ex.test",
		.smtputf8 = true,
	};
	int64_t body, queue, now = util_time();

	t_begin("queue rows from store_deliver");
	t_assert_int(store_begin(st), 0);
	t_assert_int(store_deliver_mem(st, &d, "hello\r\n", 7, &body, &queue),
	    0);
	t_assert_int(store_commit(st), 0);
	t_assert(queue > 0);
	t_assert_int(q_int(st, "SELECT refs FROM bodies WHERE id = %lld",
	    (long long)body), 2);
	t_assert_int(q_int(st, "SELECT body_id FROM queue WHERE id = %lld",
	    (long long)queue), body);
	t_assert_int(q_int(st, "SELECT count(*) FROM queue WHERE id = %lld "
	    "AND mail_from = 'alice@ex.test' AND auth_user = 'alice@ex.test' "
	    "AND smtputf8 = 1 AND is_bounce = 0 AND attempts = 0",
	    (long long)queue), 1);
	t_assert(q_int(st, "SELECT next_attempt FROM queue") >= now);
	t_assert(q_int(st, "SELECT next_attempt - created FROM queue") == 0);
	t_assert_int(q_int(st, "SELECT count(*) FROM queue_rcpt WHERE "
	    "queue_id = %lld", (long long)queue), 3);
	t_assert_int(q_int(st, "SELECT count(*) FROM queue_rcpt WHERE "
	    "address = 'Bob@Remote.TEST' AND domain = 'remote.test' AND "
	    "status = 0"), 1);
	t_assert_int(q_int(st, "SELECT count(*) FROM queue_rcpt WHERE "
	    "domain = 'quoted.test' COLLATE BINARY"), 1);
	t_assert_int(q_int(st, "SELECT count(*) FROM queue_rcpt WHERE "
	    "domain = 'other.test' COLLATE BINARY"), 1);

	/* A bounce: null sender, no auth user, remote only. */
	d.mail_from = "";
	d.auth_user = NULL;
	d.nlocal = 0;
	d.nremote = 1;
	d.is_bounce = true;
	d.smtputf8 = false;
	t_assert_int(store_deliver_mem(st, &d, "b", 1, &body, &queue), 0);
	t_assert_int(q_int(st, "SELECT refs FROM bodies WHERE id = %lld",
	    (long long)body), 1);
	t_assert_int(q_int(st, "SELECT count(*) FROM queue WHERE id = %lld "
	    "AND mail_from = '' AND auth_user IS NULL AND is_bounce = 1",
	    (long long)queue), 1);
	t_assert_int(q_int(st, "SELECT count(*) FROM mailbox"), 1);
	t_close(st);
	t_end();
}

/* ---- concurrency ---- */

struct t_worker {
	const char *path;
	int role;		/* 0, 1: deliver; 2: POP3-style delete + gc */
	int failures;
};

static void *
t_worker_run(void *arg)
{
	static const char *const to[] = { "alice@ex.test", "bob@ex.test" };
	static const char *const out[] = { "x@remote.test" };
	struct t_worker *w = arg;
	struct store *st = t_reopen(w->path);
	struct store_msg *m;
	size_t n, del;
	unsigned freed;

	for (int round = 0; round < 40; round++) {
		if (w->role < 2) {
			if (store_begin(st) < 0) {
				w->failures++;
				continue;
			}
			for (int i = 0; i < 5; i++) {
				struct store_delivery d = {
					.prefix = "X: y\r\n", .prefix_len = 6,
					.fd = -1, .mail_from = "",
					.local = to + (i % 2), .nlocal = 1,
					.remote = out, .nremote = i == 0,
				};

				if (store_deliver_mem(st, &d, "body\r\n", 6,
				    NULL, NULL) < 0)
					w->failures++;
			}
			if (store_commit(st) < 0)
				w->failures++;
			continue;
		}
		if (store_mailbox_list(st, to[round % 2], &m, &n) != 0) {
			w->failures++;
			continue;
		}
		if (n > 0) {
			int64_t *ids = xmalloc(n * sizeof(*ids));

			for (size_t i = 0; i < n; i++)
				ids[i] = m[i].id;
			if (store_mailbox_delete(st, to[round % 2], ids, n,
			    &del) < 0)
				w->failures++;
			free(ids);
		}
		free(m);
		if (store_gc(st, 7, &freed) < 0)
			w->failures++;
	}
	t_close(st);
	return NULL;
}

static void
test_concurrency(void)
{
	struct store *st = t_open();
	struct t_worker w[3];
	pthread_t th[3];
	unsigned freed;

	t_begin("two delivering connections and a deleting one");
	for (int i = 0; i < 3; i++) {
		w[i] = (struct t_worker){ .path = t_path(t_dbn), .role = i };
		pthread_create(&th[i], NULL, t_worker_run, &w[i]);
	}
	for (int i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		t_assert_int(w[i].failures, 0);
	}
	do
		t_assert_int(store_gc(st, 50, &freed), 0);
	while (freed > 0);
	/* Every body's refs equal its mailbox rows plus queue rows. */
	t_assert_int(q_int(st, "SELECT count(*) FROM bodies b WHERE refs != "
	    "(SELECT count(*) FROM mailbox WHERE body_id = b.id) + "
	    "(SELECT count(*) FROM queue WHERE body_id = b.id)"), 0);
	t_assert_int(q_int(st, "SELECT count(*) FROM bodies WHERE refs <= 0"),
	    0);
	t_assert_int(q_int(st, "SELECT count(*) FROM body_chunks WHERE "
	    "body_id NOT IN (SELECT id FROM bodies)"), 0);
	t_assert_int(q_int(st, "SELECT count(*) FROM users u WHERE used != "
	    "(SELECT coalesce(sum(size), 0) FROM mailbox WHERE "
	    "user_id = u.id)"), 0);
	t_assert_int(q_int(st, "SELECT count(*) FROM queue"), 80);
	t_assert_int(q_int(st, "SELECT count(DISTINCT uidl) = count(*) FROM "
	    "mailbox"), 1);
	t_close(st);
	t_end();
}

int
main(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(t_dir, sizeof(t_dir), "%s/test_store.XXXXXX",
	    tmp != NULL && strlen(tmp) < 40 ? tmp : "/tmp");
	if (mkdtemp(t_dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	/* First, so its peak RSS is not hidden behind earlier cases. */
	test_big_body();
	test_migrate();
	test_list_plan();
	test_open_errors();
	test_domains();
	test_users();
	test_aliases();
	test_resolve();
	test_single_instance();
	test_uidl();
	test_body_edges();
	test_body_inline();
	test_group_commit();
	test_nested();
	test_quota();
	test_deliver_quota();
	test_sendlog();
	test_queue_rows();
	test_concurrency();

	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", t_dir);
	}
	return t_exit();
}
