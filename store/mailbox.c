/*
 * Mailboxes as POP3 sees them: listing, deleting (one short transaction;
 * bodies are only unreferenced), garbage-collecting unreferenced bodies in
 * bounded batches, and reading a body chunk by chunk with short statements.
 * Writing messages is delivery.c's.
 */
#include "store/store_internal.h"
#include "common/util.h"

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/*
 * A reader of one stored body, or of one mailbox message: the message is
 * head ("Return-Path: <sender>\r\n" from mailbox.return_path) followed by
 * the body from byte skip on. Offsets given to store_body_read count from
 * the start of that whole.
 */
struct store_body {
	struct store *st;		/* borrowed */
	int64_t id;
	uint64_t size;			/* stored bytes (bodies.size) */
	uint64_t skip;			/* bodies.data_offset: a Return-Path
					 * line written before schema 4 */
	char *head;			/* NULL for a bare body */
	size_t head_len;
	int64_t seq;			/* chunk held in buf, -1 = none */
	size_t len;			/* bytes in buf */
	unsigned char *buf;		/* STORE_CHUNK_SIZE, lazily */
};

static int store_body_load(struct store_body *, int64_t);
static int store_body_take(struct store_body *, int64_t, const void *, int);
static struct store_body *store_body_row(struct store *, struct db_stmt *,
    int, int);
static ssize_t store_body_read_stored(struct store_body *, uint64_t,
    unsigned char *, size_t);

int
store_mailbox_list(struct store *st, const char *address,
    struct store_msg **msgs_r, size_t *n_r)
{
	struct store_msg *v = NULL;
	size_t n = 0, cap = 0;
	struct db_stmt *s;
	int64_t user_id;
	int rc;

	*msgs_r = NULL;
	*n_r = 0;
	/* One statement: one read snapshot of the user and the rows. */
	s = store_stmt(st, STMT_MAILBOX_LIST,
	    "SELECT u.id, m.id, m.body_id, m.size, m.arrived, m.uidl "
	    "FROM users u LEFT JOIN mailbox m ON m.user_id = u.id "
	    "WHERE u.address = ?1 ORDER BY m.id");
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, address);
	user_id = 0;
	while ((rc = db_step(s)) == DB_ROW) {
		struct store_msg *m;

		user_id = db_column_int64(s, 0);
		if (db_column_type(s, 1) == DB_NULL)
			continue;	/* user with an empty mailbox */
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			v = xrealloc(v, cap * sizeof(*v));
		}
		m = &v[n++];
		m->id = db_column_int64(s, 1);
		m->body_id = db_column_int64(s, 2);
		m->size = (uint64_t)db_column_int64(s, 3);
		m->arrived = db_column_int64(s, 4);
		util_strlcpy(m->uidl, db_column_text(s, 5),
		    sizeof(m->uidl));
	}
	db_reset(s);
	if (rc != DB_DONE) {
		free(v);
		return store_fail_db(st, rc, "mailbox list");
	}
	if (user_id == 0) {
		free(v);
		return 1;
	}
	*msgs_r = v;
	*n_r = n;
	return 0;
}

/* SQLite: the rows one by one (each statement is microseconds in
 * process). Ids already gone are skipped. */
static int
store_mailbox_delete_rows(struct store *st, int64_t user_id,
    const int64_t *ids, size_t n, size_t *deleted_r, uint64_t *freed_r)
{
	struct db_stmt *s;
	int rc;

	for (size_t i = 0; i < n; i++) {
		int64_t body_id;

		s = store_stmt(st, STMT_MAILBOX_DEL,
		    "DELETE FROM mailbox WHERE id = ?1 AND user_id = ?2 "
		    "RETURNING body_id, size");
		if (s == NULL)
			return -1;
		db_bind_int64(s, 1, ids[i]);
		db_bind_int64(s, 2, user_id);
		rc = db_step(s);
		if (rc == DB_DONE) {
			db_reset(s);
			continue;	/* another session removed it */
		}
		if (rc != DB_ROW) {
			store_fail_db(st, rc, "mailbox delete");
			db_reset(s);
			return -1;
		}
		body_id = db_column_int64(s, 0);
		*freed_r += (uint64_t)db_column_int64(s, 1);
		if (store_step_done(st, s, "mailbox delete") < 0)
			return -1;
		(*deleted_r)++;

		s = store_stmt(st, STMT_BODY_UNREF,
		    "UPDATE bodies SET refs = refs - 1 WHERE id = ?1");
		if (s == NULL)
			return -1;
		db_bind_int64(s, 1, body_id);
		if (store_step_done(st, s, "mailbox delete") < 0)
			return -1;
	}
	return 0;
}

/* PostgreSQL: every row in one statement, one round trip instead of two
 * per row (a DELE of a whole maildrop at QUIT). */
static int
store_mailbox_delete_pg(struct store *st, int64_t user_id,
    const int64_t *ids, size_t n, size_t *deleted_r, uint64_t *freed_r)
{
	struct db_stmt *s;
	char *list;
	int ret;

	s = store_stmt(st, STMT_MAILBOX_DEL_PG,
	    "WITH d AS (DELETE FROM mailbox WHERE id = ANY(CAST(?1 AS "
	    "bigint[])) AND user_id = ?2 RETURNING body_id, size), "
	    "c AS (SELECT body_id, count(*) AS n, sum(size) AS bytes "
	    "FROM d GROUP BY body_id), "
	    "r AS (UPDATE bodies SET refs = refs - c.n FROM c "
	    "WHERE bodies.id = c.body_id) "
	    "SELECT coalesce(sum(n), 0), coalesce(sum(bytes), 0) FROM c");
	if (s == NULL)
		return -1;
	list = store_pg_id_array(ids, n);
	store_bind_text(s, 1, list);
	db_bind_int64(s, 2, user_id);
	if ((ret = db_step(s)) != DB_ROW) {
		store_fail_db(st, ret, "mailbox delete");
		db_reset(s);
		free(list);
		return -1;
	}
	*deleted_r = (size_t)db_column_int64(s, 0);
	*freed_r = (uint64_t)db_column_int64(s, 1);
	ret = store_step_done(st, s, "mailbox delete");
	free(list);
	return ret;
}

int
store_mailbox_delete(struct store *st, const char *address,
    const int64_t *ids, size_t n, size_t *deleted_r)
{
	struct db_stmt *s;
	uint64_t freed = 0;
	size_t deleted = 0;
	int64_t user_id;
	int rc, ret = -1;

	*deleted_r = 0;
	if (n == 0)
		return 0;
	/*
	 * The rows and their bodies' refs (per row on SQLite, one statement
	 * on PostgreSQL); the bodies themselves are left to store_gc, so
	 * 10,000 rows keep the write lock for tens of milliseconds, not
	 * seconds.
	 */
	if (store_begin(st) < 0)
		return -1;
	rc = store_user_id(st, address, &user_id);
	if (rc != 0) {
		if (rc == 1)
			store_fail(st, "no such user");
		goto out;
	}
	if ((db_kind(st->db) == DB_KIND_PG ?
	    store_mailbox_delete_pg(st, user_id, ids, n, &deleted, &freed) :
	    store_mailbox_delete_rows(st, user_id, ids, n, &deleted,
	    &freed)) < 0)
		goto out;
	s = store_stmt(st, STMT_USER_USED_SUB,
	    "UPDATE users SET used = CASE WHEN used > ?2 THEN used - ?2 "
	    "ELSE 0 END WHERE id = ?1");
	if (s == NULL)
		goto out;
	db_bind_int64(s, 1, user_id);
	db_bind_int64(s, 2, (int64_t)freed);
	if (store_step_done(st, s, "mailbox delete") < 0)
		goto out;
	ret = 0;
out:
	ret = store_end(st, ret);
	if (ret == 0)
		*deleted_r = deleted;
	return ret;
}

int
store_gc(struct store *st, unsigned max_bodies, unsigned *freed_r)
{
	int64_t *ids;
	unsigned n = 0;
	struct db_stmt *s;
	int rc = DB_DONE, ret = -1;

	if (freed_r != NULL)
		*freed_r = 0;
	if (max_bodies == 0)
		return 0;
	ids = xmalloc(max_bodies * sizeof(*ids));
	if (store_begin(st) < 0) {
		free(ids);
		return -1;
	}
	/* bodies_unref (migration 2) makes this a short index scan. */
	s = store_stmt(st, STMT_GC_SELECT,
	    "SELECT id FROM bodies WHERE refs <= 0 LIMIT ?1");
	if (s == NULL)
		goto out;
	db_bind_int(s, 1, (int)(max_bodies > INT32_MAX ? INT32_MAX :
	    max_bodies));
	while (n < max_bodies && (rc = db_step(s)) == DB_ROW)
		ids[n++] = db_column_int64(s, 0);
	db_reset(s);
	if (n < max_bodies && rc != DB_DONE) {
		store_fail_db(st, rc, "gc");
		goto out;
	}
	for (unsigned i = 0; i < n; i++) {
		s = store_stmt(st, STMT_GC_CHUNKS,
		    "DELETE FROM body_chunks WHERE body_id = ?1");
		if (s == NULL)
			goto out;
		db_bind_int64(s, 1, ids[i]);
		if (store_step_done(st, s, "gc") < 0)
			goto out;
		s = store_stmt(st, STMT_GC_BODY,
		    "DELETE FROM bodies WHERE id = ?1 AND refs <= 0");
		if (s == NULL)
			goto out;
		db_bind_int64(s, 1, ids[i]);
		if (store_step_done(st, s, "gc") < 0)
			goto out;
	}
	ret = 0;
out:
	free(ids);
	ret = store_end(st, ret);
	if (ret == 0 && freed_r != NULL)
		*freed_r = n;
	return ret;
}

/* ---- reading bodies ---- */

/*
 * A reader from the current row of s: columns col.. are bodies.id, size,
 * data_offset, data, and column chunk0 (if >= 0) the first chunk of a
 * body stored in chunks, or NULL. Resets s (its values are copied). NULL
 * (error set) if the row is inconsistent.
 */
static struct store_body *
store_body_row(struct store *st, struct db_stmt *s, int col, int chunk0)
{
	struct store_body *b;
	int64_t skip = db_column_int64(s, col + 2);

	b = xcalloc(1, sizeof(*b));
	b->st = st;
	b->id = db_column_int64(s, col);
	b->size = (uint64_t)db_column_int64(s, col + 1);
	b->seq = -1;
	if (skip < 0 || (uint64_t)skip > b->size) {
		store_fail(st, "message body %lld: data_offset %lld past its "
		    "%" PRIu64 " bytes", (long long)b->id, (long long)skip,
		    b->size);
		goto fail;
	}
	b->skip = (uint64_t)skip;
	if (db_column_type(s, col + 3) != DB_NULL) {
		/* Stored inline: the whole body is "chunk 0". */
		const void *data = db_column_blob(s, col + 3);
		int len = db_column_bytes(s, col + 3);

		if (len < 0 || (uint64_t)len != b->size ||
		    b->size > STORE_CHUNK_SIZE) {
			store_fail(st, "message body %lld has %d bytes inline, "
			    "expected %" PRIu64, (long long)b->id, len,
			    b->size);
			goto fail;
		}
		/* Never reloaded: every offset is in chunk 0. */
		b->buf = xmalloc((size_t)len + 1);
		if (len > 0)
			memcpy(b->buf, data, (size_t)len);
		b->seq = 0;
		b->len = (size_t)len;
	} else if (chunk0 >= 0 && db_column_type(s, chunk0) != DB_NULL &&
	    store_body_take(b, 0, db_column_blob(s, chunk0),
	    db_column_bytes(s, chunk0)) < 0)
		goto fail;
	db_reset(s);
	return b;
fail:
	db_reset(s);
	free(b);
	return NULL;
}

struct store_body *
store_body_open(struct store *st, int64_t body_id, uint64_t *size_r)
{
	struct store_body *b;
	struct db_stmt *s;
	int rc;

	s = store_stmt(st, STMT_BODY_SIZE,
	    "SELECT id, size, data_offset, data FROM bodies WHERE id = ?1");
	if (s == NULL)
		return NULL;
	db_bind_int64(s, 1, body_id);
	rc = db_step(s);
	if (rc != DB_ROW) {
		db_reset(s);
		if (rc == DB_DONE)
			store_fail(st, "no such message body");
		else
			store_fail_db(st, rc, "body open");
		return NULL;
	}
	if ((b = store_body_row(st, s, 0, -1)) == NULL)
		return NULL;
	if (size_r != NULL)
		*size_r = b->size - b->skip;
	return b;
}

struct store_body *
store_message_open(struct store *st, int64_t mailbox_id, uint64_t *size_r)
{
	struct store_body *b;
	struct db_stmt *s;
	char *head = NULL;
	int rc;

	/* One statement: the row, its body and the body's first chunk
	 * from one snapshot (most messages are one chunk, so a RETR is one
	 * statement; on PostgreSQL one round trip). */
	s = store_stmt(st, STMT_MESSAGE_OPEN,
	    "SELECT m.return_path, b.id, b.size, b.data_offset, b.data, "
	    "c.data FROM mailbox m JOIN bodies b ON b.id = m.body_id "
	    "LEFT JOIN body_chunks c ON c.body_id = b.id AND c.seq = 0 "
	    "AND b.data IS NULL WHERE m.id = ?1");
	if (s == NULL)
		return NULL;
	db_bind_int64(s, 1, mailbox_id);
	rc = db_step(s);
	if (rc != DB_ROW) {
		db_reset(s);
		if (rc == DB_DONE) {
			store_fail(st, "no such message");
			st->gone = true;
		} else
			store_fail_db(st, rc, "message open");
		return NULL;
	}
	/* RFC 5321 4.4: the delivering server records the envelope
	 * sender as the first line; "" is the null sender <>. */
	if (db_column_type(s, 0) != DB_NULL)
		head = xasprintf("Return-Path: <%s>\r\n",
		    db_column_text(s, 0));
	if ((b = store_body_row(st, s, 1, 5)) == NULL) {
		free(head);
		return NULL;
	}
	b->head = head;
	b->head_len = head != NULL ? strlen(head) : 0;
	if (size_r != NULL)
		*size_r = b->head_len + b->size - b->skip;
	return b;
}

/*
 * Chunk seq's len bytes into b->buf, checked against the body's size.
 * The buffer comes on first use: a body of one chunk is never reloaded,
 * so it gets just its bytes, not STORE_CHUNK_SIZE.
 */
static int
store_body_take(struct store_body *b, int64_t seq, const void *data, int len)
{
	uint64_t start = (uint64_t)seq * STORE_CHUNK_SIZE;
	size_t want = b->size - start < STORE_CHUNK_SIZE ?
	    (size_t)(b->size - start) : STORE_CHUNK_SIZE;

	if (len < 0 || (size_t)len != want)
		return store_fail(b->st, "message body %lld chunk %lld has %d "
		    "bytes, expected %zu", (long long)b->id, (long long)seq,
		    len, want);
	if (b->buf == NULL)
		b->buf = xmalloc(b->size <= STORE_CHUNK_SIZE ? want + 1 :
		    STORE_CHUNK_SIZE);
	memcpy(b->buf, data, want);
	b->seq = seq;
	b->len = want;
	return 0;
}

/* Load chunk seq into b->buf; each load is its own short read. */
static int
store_body_load(struct store_body *b, int64_t seq)
{
	struct store *st = b->st;
	struct db_stmt *s;
	int rc;

	b->seq = -1;
	s = store_stmt(st, STMT_CHUNK_READ,
	    "SELECT data FROM body_chunks WHERE body_id = ?1 AND seq = ?2");
	if (s == NULL)
		return -1;
	db_bind_int64(s, 1, b->id);
	db_bind_int64(s, 2, seq);
	rc = db_step(s);
	if (rc != DB_ROW) {
		db_reset(s);
		if (rc == DB_DONE)
			return store_fail(st, "message body is gone");
		return store_fail_db(st, rc, "body read");
	}
	rc = store_body_take(b, seq, db_column_blob(s, 0),
	    db_column_bytes(s, 0));
	db_reset(s);
	return rc;
}

/* Bytes of the stored body from offset (stored offsets, skip included). */
static ssize_t
store_body_read_stored(struct store_body *b, uint64_t offset,
    unsigned char *out, size_t len)
{
	size_t done = 0;

	while (done < len && offset < b->size) {
		int64_t seq = (int64_t)(offset / STORE_CHUNK_SIZE);
		size_t in = (size_t)(offset % STORE_CHUNK_SIZE), n;

		if (b->seq != seq && store_body_load(b, seq) < 0)
			return -1;
		n = b->len - in;
		if (n > len - done)
			n = len - done;
		memcpy(out + done, b->buf + in, n);
		done += n;
		offset += n;
	}
	return (ssize_t)done;
}

ssize_t
store_body_read(struct store_body *b, uint64_t offset, void *buf, size_t len)
{
	unsigned char *out = buf;
	size_t done = 0;
	ssize_t n;

	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	if (offset < b->head_len) {
		done = b->head_len - (size_t)offset;
		if (done > len)
			done = len;
		memcpy(out, b->head + offset, done);
		offset += done;
	}
	if (done == len)
		return (ssize_t)done;
	n = store_body_read_stored(b, offset - b->head_len + b->skip,
	    out + done, len - done);
	if (n < 0)
		return -1;
	return (ssize_t)done + n;
}

void
store_body_close(struct store_body *b)
{
	if (b == NULL)
		return;
	free(b->head);
	free(b->buf);
	free(b);
}
