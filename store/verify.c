/*
 * carteiroctl verify's checks: SQLite's integrity_check and
 * foreign_key_check (PostgreSQL: invalid indexes; it enforces foreign
 * keys itself), then carteiro's invariants (body refcounts against
 * mailbox and queue rows, orphan and missing chunks, UIDLs unique, valid
 * and never to be given again, quota usage). Each check is one query, in
 * each backend's dialect where they differ; a row it returns is one
 * problem, described in plain words, the same on both.
 */
#include "store/store_internal.h"
#include "store/verify.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * A check: SQL whose every row is a problem, and how to word a row. pg:
 * the same check in PostgreSQL's dialect (NULL: not needed there), with
 * the same columns, so that both backends print the same lines.
 */
struct store_verify_check {
	const char *sql;
	const char *pg;
	void (*word)(struct db_stmt *s, char *buf, size_t size);
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

/* The refcount, chunk and quota checks are plain SQL both accept. */
#define STORE_VERIFY_REFS \
	"SELECT b.id, b.refs, " \
	"(SELECT count(*) FROM mailbox m WHERE m.body_id = b.id), " \
	"(SELECT count(*) FROM queue q WHERE q.body_id = b.id) " \
	"FROM bodies b WHERE b.refs != " \
	"(SELECT count(*) FROM mailbox m WHERE m.body_id = b.id) + " \
	"(SELECT count(*) FROM queue q WHERE q.body_id = b.id) ORDER BY b.id"
#define STORE_VERIFY_ORPHAN \
	"SELECT c.body_id, count(*) FROM body_chunks c " \
	"WHERE NOT EXISTS (SELECT 1 FROM bodies b WHERE b.id = c.body_id) " \
	"GROUP BY c.body_id ORDER BY c.body_id"
#define STORE_VERIFY_INLINE \
	"SELECT b.id, count(*) FROM bodies b JOIN body_chunks c " \
	"ON c.body_id = b.id WHERE b.data IS NOT NULL GROUP BY b.id " \
	"ORDER BY b.id"
#define STORE_VERIFY_CHUNKS \
	"SELECT b.id, b.size, coalesce(sum(length(c.data)), 0), " \
	"count(c.seq), coalesce(max(c.seq), -1) FROM bodies b " \
	"LEFT JOIN body_chunks c ON c.body_id = b.id WHERE b.data IS NULL " \
	"GROUP BY b.id HAVING coalesce(sum(length(c.data)), 0) != b.size " \
	"OR count(c.seq) != coalesce(max(c.seq), -1) + 1 ORDER BY b.id"
#define STORE_VERIFY_NOBODY \
	"SELECT u.address, m.uidl, m.body_id FROM mailbox m " \
	"JOIN users u ON u.id = m.user_id WHERE NOT EXISTS " \
	"(SELECT 1 FROM bodies b WHERE b.id = m.body_id) ORDER BY m.id"
#define STORE_VERIFY_USED \
	"SELECT u.address, u.used, coalesce(sum(m.size), 0) FROM users u " \
	"LEFT JOIN mailbox m ON m.user_id = u.id GROUP BY u.id " \
	"HAVING u.used != coalesce(sum(m.size), 0) ORDER BY u.address"

static const struct store_verify_check store_verify_checks[] = {
	/* PostgreSQL checks its pages itself (amcheck is an extension not
	 * every server has): what it can leave behind cheaply seen is an
	 * index a failed CREATE INDEX CONCURRENTLY left invalid. */
	{ "PRAGMA integrity_check",
	  "SELECT 'index ' || c.relname || ' is not valid' FROM pg_index i "
	  "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n "
	  "ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
	  "AND NOT (i.indisvalid AND i.indisready) ORDER BY c.relname",
	  store_verify_w_integrity },
	/* PostgreSQL enforces foreign keys always; SQLite only where
	 * PRAGMA foreign_keys was on. */
	{ "PRAGMA foreign_key_check", NULL, store_verify_w_fk },
	{ STORE_VERIFY_REFS, STORE_VERIFY_REFS, store_verify_w_refs },
	{ STORE_VERIFY_ORPHAN, STORE_VERIFY_ORPHAN, store_verify_w_orphan },
	{ STORE_VERIFY_INLINE, STORE_VERIFY_INLINE, store_verify_w_inline },
	{ STORE_VERIFY_CHUNKS, STORE_VERIFY_CHUNKS, store_verify_w_chunks },
	{ STORE_VERIFY_NOBODY, STORE_VERIFY_NOBODY, store_verify_w_nobody },
	{ "SELECT u.address, m.uidl, count(*) FROM mailbox m "
	  "JOIN users u ON u.id = m.user_id GROUP BY m.user_id, m.uidl "
	  "HAVING count(*) > 1 ORDER BY u.address, m.uidl",
	  "SELECT u.address, m.uidl, count(*) FROM mailbox m "
	  "JOIN users u ON u.id = m.user_id GROUP BY m.user_id, u.address, "
	  "m.uidl HAVING count(*) > 1 ORDER BY u.address, m.uidl",
	  store_verify_w_dup },
	{ "SELECT u.address, m.id, hex(m.uidl) FROM mailbox m "
	  "JOIN users u ON u.id = m.user_id WHERE length(m.uidl) < 1 OR "
	  "length(m.uidl) > 70 OR m.uidl GLOB '*[^!-~]*' ORDER BY m.id",
	  "SELECT u.address, m.id, "
	  "upper(encode(convert_to(m.uidl, 'UTF8'), 'hex')) FROM mailbox m "
	  "JOIN users u ON u.id = m.user_id WHERE length(m.uidl) < 1 OR "
	  "length(m.uidl) > 70 OR m.uidl ~ '[^!-~]' ORDER BY m.id",
	  store_verify_w_badu },
	/* A generated UIDL is "<uid_epoch hex>.<uid>" (delivery.c); one at
	 * or past next_uid would be handed out again. */
	{ "SELECT u.address, m.uidl, u.next_uid FROM mailbox m "
	  "JOIN users u ON u.id = m.user_id "
	  "WHERE m.uidl = printf('%x.', u.uid_epoch) || "
	  "substr(m.uidl, length(printf('%x.', u.uid_epoch)) + 1) "
	  "AND substr(m.uidl, length(printf('%x.', u.uid_epoch)) + 1) "
	  "NOT GLOB '*[^0-9]*' "
	  "AND CAST(substr(m.uidl, length(printf('%x.', u.uid_epoch)) + 1) "
	  "AS INTEGER) >= u.next_uid ORDER BY m.id",
	  /* CASE: the cast only of digits (PostgreSQL does not promise
	   * the order in which AND evaluates). */
	  "SELECT u.address, m.uidl, u.next_uid FROM mailbox m "
	  "JOIN users u ON u.id = m.user_id "
	  "CROSS JOIN LATERAL (SELECT to_hex(u.uid_epoch) || '.' AS p, "
	  "substr(m.uidl, length(to_hex(u.uid_epoch)) + 2) AS n) x "
	  "WHERE substr(m.uidl, 1, length(x.p)) = x.p AND "
	  "CASE WHEN x.n ~ '^[0-9]+$' THEN CAST(x.n AS NUMERIC) >= "
	  "u.next_uid ELSE false END ORDER BY m.id", store_verify_w_reuse },
	{ STORE_VERIFY_USED, STORE_VERIFY_USED, store_verify_w_used },
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
		const char *sql = store_sql(st, c->sql, c->pg);
		struct db_stmt *s;

		if (sql == NULL)
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
