/*
 * carteiroctl verify's checks: SQLite's integrity_check and
 * foreign_key_check, then carteiro's invariants (body refcounts against
 * mailbox and queue rows, orphan and missing chunks, UIDLs unique, valid
 * and never to be given again, quota usage). Each check is one query; a
 * row it returns is one problem, described in plain words.
 */
#include "store/store_internal.h"
#include "store/verify.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * A check: SQL whose every row is a problem, and how to word a row.
 * pg_sql: PostgreSQL's text where SQLite's is not PostgreSQL's (hex,
 * GLOB, printf); "" skips the check there (the PRAGMAs: the server keeps
 * its own files consistent and enforces foreign keys on every write).
 */
struct store_verify_check {
	const char *sql;
	void (*word)(struct db_stmt *s, char *buf, size_t size);
	const char *pg_sql;
};

static void store_verify_w_integrity(struct db_stmt *, char *, size_t);
static void store_verify_w_fk(struct db_stmt *, char *, size_t);
static void store_verify_w_refs(struct db_stmt *, char *, size_t);
static void store_verify_w_orphan(struct db_stmt *, char *, size_t);
static void store_verify_w_inline(struct db_stmt *, char *, size_t);
static void store_verify_w_chunks(struct db_stmt *, char *, size_t);
static void store_verify_w_nobody(struct db_stmt *, char *, size_t);
static void store_verify_w_dup(struct db_stmt *, char *, size_t);
static void store_verify_w_badu(struct db_stmt *, char *, size_t);
static void store_verify_w_reuse(struct db_stmt *, char *, size_t);
static void store_verify_w_used(struct db_stmt *, char *, size_t);
static const char *store_verify_text(struct db_stmt *, int);

#define I64(s, i) ((long long)db_column_int64((s), (i)))

static const struct store_verify_check store_verify_checks[] = {
	{ "PRAGMA integrity_check", store_verify_w_integrity, "" },
	{ "PRAGMA foreign_key_check", store_verify_w_fk, "" },
	{ "SELECT b.id, b.refs, "
	  "(SELECT count(*) FROM mailbox m WHERE m.body_id = b.id), "
	  "(SELECT count(*) FROM queue q WHERE q.body_id = b.id) "
	  "FROM bodies b WHERE b.refs != "
	  "(SELECT count(*) FROM mailbox m WHERE m.body_id = b.id) + "
	  "(SELECT count(*) FROM queue q WHERE q.body_id = b.id) ORDER BY b.id",
	  store_verify_w_refs, NULL },
	{ "SELECT c.body_id, count(*) FROM body_chunks c "
	  "WHERE NOT EXISTS (SELECT 1 FROM bodies b WHERE b.id = c.body_id) "
	  "GROUP BY c.body_id ORDER BY c.body_id", store_verify_w_orphan,
	  NULL },
	{ "SELECT b.id, count(*) FROM bodies b JOIN body_chunks c "
	  "ON c.body_id = b.id WHERE b.data IS NOT NULL GROUP BY b.id "
	  "ORDER BY b.id", store_verify_w_inline, NULL },
	{ "SELECT b.id, b.size, coalesce(sum(length(c.data)), 0), "
	  "count(c.seq), coalesce(max(c.seq), -1) FROM bodies b "
	  "LEFT JOIN body_chunks c ON c.body_id = b.id WHERE b.data IS NULL "
	  "GROUP BY b.id HAVING coalesce(sum(length(c.data)), 0) != b.size "
	  "OR count(c.seq) != coalesce(max(c.seq), -1) + 1 ORDER BY b.id",
	  store_verify_w_chunks, NULL },
	{ "SELECT u.address, m.uidl, m.body_id FROM mailbox m "
	  "JOIN users u ON u.id = m.user_id WHERE NOT EXISTS "
	  "(SELECT 1 FROM bodies b WHERE b.id = m.body_id) ORDER BY m.id",
	  store_verify_w_nobody, NULL },
	/* GROUP BY u.id: PostgreSQL lets u.address follow only the key
	 * of its own table. */
	{ "SELECT u.address, m.uidl, count(*) FROM mailbox m "
	  "JOIN users u ON u.id = m.user_id GROUP BY u.id, m.uidl "
	  "HAVING count(*) > 1 ORDER BY u.address, m.uidl",
	  store_verify_w_dup, NULL },
	{ "SELECT u.address, m.id, hex(m.uidl) FROM mailbox m "
	  "JOIN users u ON u.id = m.user_id WHERE length(m.uidl) < 1 OR "
	  "length(m.uidl) > 70 OR m.uidl GLOB '*[^!-~]*' ORDER BY m.id",
	  store_verify_w_badu,
	  "SELECT u.address, m.id, upper(encode(convert_to(m.uidl, 'UTF8'), "
	  "'hex')) FROM mailbox m JOIN users u ON u.id = m.user_id WHERE "
	  "length(m.uidl) < 1 OR length(m.uidl) > 70 OR m.uidl ~ '[^!-~]' "
	  "ORDER BY m.id" },
	/* A generated UIDL is "<uid_epoch hex>.<uid>" (delivery.c); one at
	 * or past next_uid would be handed out again. */
	{ "SELECT u.address, m.uidl, u.next_uid FROM mailbox m "
	  "JOIN users u ON u.id = m.user_id "
	  "WHERE m.uidl = printf('%x.', u.uid_epoch) || "
	  "substr(m.uidl, length(printf('%x.', u.uid_epoch)) + 1) "
	  "AND substr(m.uidl, length(printf('%x.', u.uid_epoch)) + 1) "
	  "NOT GLOB '*[^0-9]*' "
	  "AND CAST(substr(m.uidl, length(printf('%x.', u.uid_epoch)) + 1) "
	  "AS INTEGER) >= u.next_uid ORDER BY m.id", store_verify_w_reuse,
	  /* CASE decides the order: CAST only sees digits (19 or more
	   * digits saturate in SQLite: at or past any next_uid). */
	  "SELECT address, uidl, next_uid FROM (SELECT u.address, m.id, "
	  "m.uidl, u.next_uid, to_hex(u.uid_epoch) || '.' AS p FROM mailbox "
	  "m JOIN users u ON u.id = m.user_id) x WHERE substr(uidl, 1, "
	  "length(p)) = p AND CASE WHEN substr(uidl, length(p) + 1) !~ "
	  "'^[0-9]*$' THEN false WHEN length(uidl) - length(p) > 18 THEN "
	  "true ELSE CAST('0' || substr(uidl, length(p) + 1) AS BIGINT) >= "
	  "next_uid END ORDER BY id" },
	{ "SELECT u.address, u.used, coalesce(sum(m.size), 0) FROM users u "
	  "LEFT JOIN mailbox m ON m.user_id = u.id GROUP BY u.id "
	  "HAVING u.used != coalesce(sum(m.size), 0) ORDER BY u.address",
	  store_verify_w_used, NULL },
};

/* Column i as text, "" for NULL (the statement owns it). */
static const char *
store_verify_text(struct db_stmt *s, int i)
{
	const char *t = db_column_text(s, i);

	return t != NULL ? (const char *)t : "";
}

static void
store_verify_w_integrity(struct db_stmt *s, char *buf, size_t size)
{
	const char *t = store_verify_text(s, 0);

	if (strcmp(t, "ok") == 0)
		buf[0] = '\0';
	else
		snprintf(buf, size, "integrity: %s", t);
}

static void
store_verify_w_fk(struct db_stmt *s, char *buf, size_t size)
{
	snprintf(buf, size, "foreign key: %s row %lld refers to a missing "
	    "%s row", store_verify_text(s, 0), I64(s, 1),
	    store_verify_text(s, 2));
}

static void
store_verify_w_refs(struct db_stmt *s, char *buf, size_t size)
{
	snprintf(buf, size, "body %lld: refs is %lld, but %lld mailbox and "
	    "%lld queue rows use it", I64(s, 0), I64(s, 1), I64(s, 2),
	    I64(s, 3));
}

static void
store_verify_w_orphan(struct db_stmt *s, char *buf, size_t size)
{
	snprintf(buf, size, "orphan chunks: %lld chunk rows of body %lld, "
	    "which does not exist", I64(s, 1), I64(s, 0));
}

static void
store_verify_w_inline(struct db_stmt *s, char *buf, size_t size)
{
	snprintf(buf, size, "orphan chunks: %lld chunk rows of body %lld, "
	    "which is stored inline", I64(s, 1), I64(s, 0));
}

static void
store_verify_w_chunks(struct db_stmt *s, char *buf, size_t size)
{
	snprintf(buf, size, "body %lld: %lld bytes, but its %lld chunks hold "
	    "%lld bytes (last seq %lld)", I64(s, 0), I64(s, 1), I64(s, 3),
	    I64(s, 2), I64(s, 4));
}

static void
store_verify_w_nobody(struct db_stmt *s, char *buf, size_t size)
{
	snprintf(buf, size, "mailbox %s: message %s has no body (body %lld "
	    "is missing)", store_verify_text(s, 0), store_verify_text(s, 1),
	    I64(s, 2));
}

static void
store_verify_w_dup(struct db_stmt *s, char *buf, size_t size)
{
	snprintf(buf, size, "mailbox %s: UIDL %s is on %lld messages",
	    store_verify_text(s, 0), store_verify_text(s, 1), I64(s, 2));
}

static void
store_verify_w_badu(struct db_stmt *s, char *buf, size_t size)
{
	snprintf(buf, size, "mailbox %s: message %lld has an invalid UIDL "
	    "(hex %s)", store_verify_text(s, 0), I64(s, 1),
	    store_verify_text(s, 2));
}

static void
store_verify_w_reuse(struct db_stmt *s, char *buf, size_t size)
{
	snprintf(buf, size, "mailbox %s: UIDL %s is not below next_uid %lld "
	    "(it would be given again)", store_verify_text(s, 0),
	    store_verify_text(s, 1), I64(s, 2));
}

static void
store_verify_w_used(struct db_stmt *s, char *buf, size_t size)
{
	snprintf(buf, size, "user %s: used is %lld bytes, but the mailbox "
	    "holds %lld", store_verify_text(s, 0), I64(s, 1), I64(s, 2));
}

int
store_verify(struct store *st, store_verify_cb *cb, void *arg,
    unsigned *problems_r)
{
	char line[1024];
	unsigned problems = 0;
	int rc, ret = -1;

	*problems_r = 0;
	if (store_read_begin(st) < 0)
		return -1;
	for (size_t i = 0; i < nitems(store_verify_checks); i++) {
		const struct store_verify_check *c = &store_verify_checks[i];
		const char *sql = c->sql;
		struct db_stmt *s;

		if (db_kind(st->db) == DB_KIND_PG && c->pg_sql != NULL)
			sql = c->pg_sql;
		if (*sql == '\0')
			continue;
		rc = db_prepare(st->db, sql, false, &s);
		if (rc != DB_OK) {
			store_fail_db(st, rc, "verify");
			goto out;
		}
		while ((rc = db_step(s)) == DB_ROW) {
			c->word(s, line, sizeof(line));
			if (line[0] == '\0')
				continue;
			problems++;
			cb(line, arg);
		}
		db_finalize(s);
		if (rc != DB_DONE) {
			/* A damaged file can fail the queries themselves. */
			snprintf(line, sizeof(line), "check %zu failed: %s",
			    i + 1, db_errmsg(st->db));
			problems++;
			cb(line, arg);
		}
	}
	*problems_r = problems;
	ret = 0;
out:
	store_read_end(st);
	return ret;
}
