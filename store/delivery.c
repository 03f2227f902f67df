/*
 * Delivery: writes one accepted message as a single-instance body (chunk
 * rows streamed from the spool fd with pread, never whole in memory), one
 * mailbox row per local user and one queue row for the remote recipients.
 * Transactions are the caller's (group commit); reading and deleting
 * messages is mailbox.c's.
 */
#include "store/store_internal.h"
#include "common/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Where the data after the prefix comes from: a spool fd or memory. */
struct store_delivery_src {
	int fd;				/* -1 when mem is used */
	const unsigned char *mem;
};

static int store_delivery_read(struct store *,
    const struct store_delivery_src *, uint64_t, unsigned char *, size_t);
static int store_delivery_body(struct store *, const struct store_delivery *,
    const struct store_delivery_src *, int64_t *);
static int store_delivery_body_inline(struct store *,
    const struct store_delivery *, const struct store_delivery_src *,
    int64_t *);
static int store_delivery_mailbox(struct store *,
    const struct store_delivery *, const char *, int64_t, uint64_t, int64_t);
static int store_delivery_no_user_row(struct store *, const char *, bool);
static int store_delivery_mailbox_pg(struct store *,
    const struct store_delivery *, const char *, uint64_t, int64_t,
    int64_t *);
static int store_delivery_inline_fill(struct store *,
    const struct store_delivery *, const struct store_delivery_src *);
static int store_delivery_queue(struct store *, const struct store_delivery *,
    int64_t, int64_t, int64_t *);
static int store_delivery_run(struct store *, const struct store_delivery *,
    const struct store_delivery_src *, int64_t *, int64_t *);

/* Fill buf with len bytes of data at off; short files are an error. */
static int
store_delivery_read(struct store *st, const struct store_delivery_src *src,
    uint64_t off, unsigned char *buf, size_t len)
{
	ssize_t n;

	if (src->fd < 0) {
		memcpy(buf, src->mem + off, len);
		return 0;
	}
	while (len > 0) {
		n = pread(src->fd, buf, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return store_fail(st, "reading spool: %s",
			    strerror(errno));
		if (n == 0)
			return store_fail(st, "reading spool: file is shorter "
			    "than the message");
		buf += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/* A small body (at most STORE_INLINE_MAX) as one buffer in st->chunk. */
static int
store_delivery_inline_fill(struct store *st, const struct store_delivery *d,
    const struct store_delivery_src *src)
{
	if (st->chunk == NULL)
		st->chunk = xmalloc(STORE_CHUNK_SIZE);
	memcpy(st->chunk, d->prefix, d->prefix_len);
	if (d->data_size > 0 && store_delivery_read(st, src, 0,
	    st->chunk + d->prefix_len, (size_t)d->data_size) < 0)
		return -1;
	return 0;
}

/* A small body: prefix and data in the bodies row itself. */
static int
store_delivery_body_inline(struct store *st, const struct store_delivery *d,
    const struct store_delivery_src *src, int64_t *body_id_r)
{
	size_t total = d->prefix_len + (size_t)d->data_size;
	struct db_stmt *s;

	if (store_delivery_inline_fill(st, d, src) < 0)
		return -1;
	s = store_stmt(st, STMT_BODY_INSERT_INLINE,
	    "INSERT INTO bodies(size, refs, created, data) "
	    "VALUES (?1, ?2, ?3, ?4) RETURNING id");
	if (s == NULL)
		return -1;
	db_bind_int64(s, 1, (int64_t)total);
	db_bind_int64(s, 2, (int64_t)(d->nlocal + (d->nremote ? 1 : 0)));
	db_bind_int64(s, 3, util_time());
	/* A zero-length blob, not NULL: NULL means "in chunks". */
	db_bind_blob(s, 4, st->chunk, total);
	return store_step_id(st, s, "body insert", body_id_r);
}

/*
 * The body row and its chunks (bodies over STORE_INLINE_MAX). Every chunk but the last is exactly
 * STORE_CHUNK_SIZE bytes (mailbox.c relies on it to seek); the prefix is
 * the start of chunk 0.
 */
static int
store_delivery_body(struct store *st, const struct store_delivery *d,
    const struct store_delivery_src *src, int64_t *body_id_r)
{
	uint64_t total = d->prefix_len + d->data_size, off;
	struct db_stmt *s;
	int64_t body_id, seq;
	size_t clen, pre;

	if (st->chunk == NULL)
		st->chunk = xmalloc(STORE_CHUNK_SIZE);
	if (total <= STORE_INLINE_MAX)
		return store_delivery_body_inline(st, d, src, body_id_r);
	s = store_stmt(st, STMT_BODY_INSERT,
	    "INSERT INTO bodies(size, refs, created) VALUES (?1, ?2, ?3) "
	    "RETURNING id");
	if (s == NULL)
		return -1;
	db_bind_int64(s, 1, (int64_t)total);
	db_bind_int64(s, 2, (int64_t)(d->nlocal + (d->nremote ? 1 : 0)));
	db_bind_int64(s, 3, util_time());
	if (store_step_id(st, s, "body insert", &body_id) < 0)
		return -1;

	for (off = 0, seq = 0; off < total; off += clen, seq++) {
		clen = total - off < STORE_CHUNK_SIZE ?
		    (size_t)(total - off) : STORE_CHUNK_SIZE;
		pre = 0;
		if (off < d->prefix_len) {
			pre = d->prefix_len - off < clen ?
			    (size_t)(d->prefix_len - off) : clen;
			memcpy(st->chunk, d->prefix + off, pre);
		}
		if (clen > pre && store_delivery_read(st, src, off + pre -
		    d->prefix_len, st->chunk + pre, clen - pre) < 0)
			return -1;
		s = store_stmt(st, STMT_CHUNK_INSERT,
		    "INSERT INTO body_chunks(body_id, seq, data) "
		    "VALUES (?1, ?2, ?3)");
		if (s == NULL)
			return -1;
		db_bind_int64(s, 1, body_id);
		db_bind_int64(s, 2, seq);
		db_bind_blob(s, 3, st->chunk, clen);
		if (store_step_done(st, s, "body chunk insert") < 0)
			return -1;
	}
	*body_id_r = body_id;
	return 0;
}

/* No row from the UPDATE with the quota condition: over quota, or no
 * such user. */
static int
store_delivery_no_user_row(struct store *st, const char *address, bool quota)
{
	struct db_stmt *s;
	int rc;

	if (!quota)
		return store_fail(st, "no such user");
	s = store_stmt(st, STMT_USER_EXISTS,
	    "SELECT 1 FROM users WHERE address = ?1");
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, address);
	rc = db_step(s);
	db_reset(s);
	if (rc == DB_DONE)
		return store_fail(st, "no such user");
	if (rc != DB_ROW)
		return store_fail_db(st, rc, "deliver");
	store_fail(st, "%s is over quota", address);
	st->quota = true;
	return -1;
}

/*
 * One mailbox row for user address: its next UID, used += size. With
 * quota, the same UPDATE refuses a user the message would take past the
 * quota (one statement per recipient instead of a SELECT first).
 */
static int
store_delivery_mailbox(struct store *st, const struct store_delivery *d,
    const char *address, int64_t body_id, uint64_t size, int64_t now)
{
	bool quota = d->check_quota;
	struct db_stmt *s;
	int64_t user_id, uid, epoch;
	char uidl[72];
	int rc;

	if (db_kind(st->db) == DB_KIND_PG)
		return store_delivery_mailbox_pg(st, d, address, size, now,
		    &body_id);
	s = quota ? store_stmt(st, STMT_DELIVER_USER_QUOTA,
	    "UPDATE users SET next_uid = next_uid + 1, used = used + ?2 "
	    "WHERE address = ?1 AND (quota = 0 OR used + ?2 <= quota) "
	    "RETURNING id, next_uid - 1, uid_epoch") :
	    store_stmt(st, STMT_DELIVER_USER,
	    "UPDATE users SET next_uid = next_uid + 1, used = used + ?2 "
	    "WHERE address = ?1 RETURNING id, next_uid - 1, uid_epoch");
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, address);
	db_bind_int64(s, 2, (int64_t)size);
	rc = db_step(s);
	if (rc != DB_ROW) {
		db_reset(s);
		if (rc == DB_DONE)
			return store_delivery_no_user_row(st, address, quota);
		return store_fail_db(st, rc, "deliver");
	}
	user_id = db_column_int64(s, 0);
	uid = db_column_int64(s, 1);
	epoch = db_column_int64(s, 2);
	/* RETURNING: the update is complete only once stepped to DONE. */
	rc = db_step(s);
	db_reset(s);
	if (rc != DB_DONE)
		return store_fail_db(st, rc, "deliver");

	/* printable, no spaces, < 64 chars (RFC 1939 7: 1..70 of 0x21-0x7e) */
	snprintf(uidl, sizeof(uidl), "%" PRIx64 ".%" PRId64, (uint64_t)epoch,
	    uid);
	/* An import's own UIDL (checked by store/import.c); the uid above
	 * is still used up, so generated ones stay unique. */
	if (d->uidl != NULL)
		util_strlcpy(uidl, d->uidl, sizeof(uidl));
	s = store_stmt(st, STMT_MAILBOX_INSERT,
	    "INSERT INTO mailbox(user_id, uidl, body_id, size, arrived, "
	    "return_path) VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id");
	if (s == NULL)
		return -1;
	db_bind_int64(s, 1, user_id);
	store_bind_text(s, 2, uidl);
	db_bind_int64(s, 3, body_id);
	db_bind_int64(s, 4, (int64_t)size);
	db_bind_int64(s, 5, now);
	if (d->mail_from != NULL)
		store_bind_text(s, 6, d->mail_from);
	return store_step_id(st, s, "mailbox insert", &st->last_mailbox_id);
}

/*
 * PostgreSQL: the same as one statement, the UPDATE in a CTE feeding the
 * INSERT, so a recipient costs one round trip to the server instead of
 * two; the UIDL is made as above (the epoch in hex, a dot, the uid).
 * *body_id_r 0: a small body's row (st->chunk, filled by the caller) is
 * inserted by a second CTE of the same statement, one round trip for
 * what is otherwise three, and *body_id_r is set. No row back means the
 * UPDATE matched nothing (no user, or over quota): a body row inserted
 * goes with the unit's rollback, as on any failure.
 */
static int
store_delivery_mailbox_pg(struct store *st, const struct store_delivery *d,
    const char *address, uint64_t size, int64_t now, int64_t *body_id_r)
{
	bool quota = d->check_quota, with_body = *body_id_r == 0;
	size_t total = d->prefix_len + (size_t)d->data_size;
	struct db_stmt *s;
	int rc;

#define STORE_PG_USER(where) \
	"u AS (UPDATE users SET next_uid = next_uid + 1, used = used + ?2 " \
	"WHERE address = ?1" where " RETURNING id, next_uid - 1 AS uid, " \
	"uid_epoch) "
#define STORE_PG_QUOTA " AND (quota = 0 OR used + ?2 <= quota)"
#define STORE_PG_MAILBOX(body, from) \
	"INSERT INTO mailbox(user_id, uidl, body_id, size, arrived, " \
	"return_path) SELECT u.id, COALESCE(?5, to_hex(u.uid_epoch) || " \
	"'.' || u.uid), " body ", ?2, ?3, ?4 FROM u" from \
	" RETURNING id, body_id"
#define STORE_PG_BODY \
	"b AS (INSERT INTO bodies(size, refs, created, data) " \
	"VALUES (?6, ?7, ?3, ?8) RETURNING id), "
	if (with_body)
		s = quota ? store_stmt(st, STMT_DELIVER_FIRST_PG_QUOTA,
		    "WITH " STORE_PG_BODY STORE_PG_USER(STORE_PG_QUOTA)
		    STORE_PG_MAILBOX("b.id", ", b")) :
		    store_stmt(st, STMT_DELIVER_FIRST_PG,
		    "WITH " STORE_PG_BODY STORE_PG_USER("")
		    STORE_PG_MAILBOX("b.id", ", b"));
	else
		s = quota ? store_stmt(st, STMT_DELIVER_PG_QUOTA,
		    "WITH " STORE_PG_USER(STORE_PG_QUOTA)
		    STORE_PG_MAILBOX("?6", "")) :
		    store_stmt(st, STMT_DELIVER_PG,
		    "WITH " STORE_PG_USER("") STORE_PG_MAILBOX("?6", ""));
#undef STORE_PG_USER
#undef STORE_PG_QUOTA
#undef STORE_PG_MAILBOX
#undef STORE_PG_BODY
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, address);
	db_bind_int64(s, 2, (int64_t)size);
	db_bind_int64(s, 3, now);
	if (d->mail_from != NULL)
		store_bind_text(s, 4, d->mail_from);
	if (d->uidl != NULL)
		store_bind_text(s, 5, d->uidl);
	if (with_body) {
		db_bind_int64(s, 6, (int64_t)total);
		db_bind_int64(s, 7,
		    (int64_t)(d->nlocal + (d->nremote ? 1 : 0)));
		/* A zero-length blob, not NULL: NULL means "in chunks". */
		db_bind_blob(s, 8, st->chunk, total);
	} else
		db_bind_int64(s, 6, *body_id_r);
	rc = db_step(s);
	if (rc == DB_ROW) {
		st->last_mailbox_id = db_column_int64(s, 0);
		*body_id_r = db_column_int64(s, 1);
		rc = db_step(s);
		db_reset(s);
		return rc == DB_DONE ? 0 : store_fail_db(st, rc, "deliver");
	}
	db_reset(s);
	if (rc == DB_DONE)
		return store_delivery_no_user_row(st, address, quota);
	return store_fail_db(st, rc, "deliver");
}

static int
store_delivery_queue(struct store *st, const struct store_delivery *d,
    int64_t body_id, int64_t now, int64_t *queue_id_r)
{
	struct db_stmt *s;
	int64_t qid;
	char *addr;
	int rc;

	s = store_stmt(st, STMT_QUEUE_INSERT,
	    "INSERT INTO queue(mail_from, body_id, auth_user, created, "
	    "next_attempt, smtputf8, is_bounce, dsn_ret, dsn_envid) "
	    "VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7, ?8) RETURNING id");
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, d->queue_mail_from != NULL ?
	    d->queue_mail_from : d->mail_from != NULL ? d->mail_from : "");
	db_bind_int64(s, 2, body_id);
	if (d->auth_user != NULL)
		store_bind_text(s, 3, d->auth_user);
	db_bind_int64(s, 4, now);
	db_bind_int(s, 5, d->smtputf8);
	db_bind_int(s, 6, d->is_bounce);
	db_bind_int(s, 7, d->dsn_ret);
	if (d->dsn_envid != NULL)
		store_bind_text(s, 8, d->dsn_envid);
	if (store_step_id(st, s, "queue insert", &qid) < 0)
		return -1;

	for (size_t i = 0; i < d->nremote; i++) {
		const char *domain = store_addr_domain(d->remote[i]);

		if (domain == NULL || *domain == '\0')
			return store_fail(st, "remote recipient without "
			    "domain");
		s = store_stmt(st, STMT_QUEUE_RCPT_INSERT,
		    "INSERT INTO queue_rcpt(queue_id, address, domain, "
		    "dsn_notify, dsn_orcpt) VALUES (?1, ?2, ?3, ?4, ?5)");
		if (s == NULL)
			return -1;
		addr = store_addr_normalize(d->remote[i]);
		db_bind_int64(s, 1, qid);
		store_bind_text(s, 2, d->remote[i]);
		store_bind_text(s, 3, store_addr_domain(addr));
		db_bind_int64(s, 4, d->remote_notify != NULL ?
		    (int64_t)d->remote_notify[i] : 0);
		if (d->remote_orcpt != NULL && d->remote_orcpt[i] != NULL)
			store_bind_text(s, 5, d->remote_orcpt[i]);
		rc = store_step_done(st, s, "queue rcpt insert");
		free(addr);
		if (rc < 0)
			return -1;
	}
	*queue_id_r = qid;
	return 0;
}

static int
store_delivery_run(struct store *st, const struct store_delivery *d,
    const struct store_delivery_src *src, int64_t *body_id_r,
    int64_t *queue_id_r)
{
	int64_t body_id = 0, queue_id = 0, now = util_time();
	uint64_t size = d->prefix_len + d->data_size, msize;
	size_t first = 0;
	int ret = -1;

	if (d->nlocal + d->nremote == 0)
		return store_fail(st, "delivery without recipients");
	if (d->uidl != NULL && d->nlocal != 1)
		return store_fail(st, "a given UIDL needs exactly one local "
		    "recipient");
	if (size > INT64_MAX / 2 || d->data_size < size - d->prefix_len)
		return store_fail(st, "message too large");
	/* A mailbox message is its Return-Path line (store_message_open)
	 * and the body: quota and POP3 sizes count both. */
	msize = size + (d->mail_from != NULL ? STORE_RETURN_PATH_LEN(
	    strlen(d->mail_from)) : 0);
	/*
	 * Normally inside the caller's transaction (a savepoint, so a failed
	 * delivery leaves nothing half-written); on its own it commits.
	 */
	if (store_begin(st) < 0)
		return -1;
	if (db_kind(st->db) == DB_KIND_PG && d->nlocal > 0 &&
	    size <= STORE_INLINE_MAX) {
		if (store_delivery_inline_fill(st, d, src) < 0 ||
		    store_delivery_mailbox_pg(st, d, d->local[0], msize, now,
		    &body_id) < 0)
			goto out;
		first = 1;
	} else if (store_delivery_body(st, d, src, &body_id) < 0)
		goto out;
	for (size_t i = first; i < d->nlocal; i++)
		if (store_delivery_mailbox(st, d, d->local[i], body_id, msize,
		    now) < 0)
			goto out;
	if (d->nremote > 0 &&
	    store_delivery_queue(st, d, body_id, now, &queue_id) < 0)
		goto out;
	ret = 0;
out:
	ret = store_end(st, ret);
	if (ret == 0) {
		if (body_id_r != NULL)
			*body_id_r = body_id;
		if (queue_id_r != NULL)
			*queue_id_r = queue_id;
	}
	return ret;
}

int
store_deliver(struct store *st, const struct store_delivery *d,
    int64_t *body_id_r, int64_t *queue_id_r)
{
	struct store_delivery_src src = { .fd = d->fd };

	if (d->fd < 0 && d->data_size > 0)
		return store_fail(st, "deliver: no spool file");
	return store_delivery_run(st, d, &src, body_id_r, queue_id_r);
}

int
store_deliver_mem(struct store *st, const struct store_delivery *d,
    const void *data, size_t len, int64_t *body_id_r, int64_t *queue_id_r)
{
	struct store_delivery md = *d;
	struct store_delivery_src src = { .fd = -1, .mem = data };

	md.data_size = len;
	return store_delivery_run(st, &md, &src, body_id_r, queue_id_r);
}
