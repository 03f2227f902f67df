/*
 * Outbound queue statements: due messages, loading one message with its
 * recipients, per-recipient status, rescheduling, flush and delete. Rows
 * are inserted by delivery.c (store_deliver*); nothing here holds a read
 * transaction across calls.
 */
#include "store/queue.h"
#include "store/store_internal.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

/* Statement slots of this file (store_internal.h: STMT_QUEUE_BASE + n). */
enum store_queue_stmt {
	STORE_QS_DUE,
	STORE_QS_IDS,
	STORE_QS_LOAD,
	STORE_QS_LOAD_RCPTS,
	STORE_QS_RCPT_SET,
	STORE_QS_RCPT_SET_KEEP,
	STORE_QS_RESCHEDULE,
	STORE_QS_WARNED,
	STORE_QS_DEL_BODY,
	STORE_QS_DEL_RCPTS,
	STORE_QS_DEL_QUEUE,
	STORE_QS_UNREF,
	STORE_QS_FLUSH,
	STORE_QS_STATS,
	STORE_QS_COUNT
};
/* store/queue_claim.c uses the slots from STORE_QC_BASE on. */
_Static_assert(STORE_QS_COUNT <= 16, "queue slots overlap queue_claim.c's");

static struct db_stmt *store_queue_stmt(struct store *, enum store_queue_stmt,
    const char *);
static int store_queue_id_list(struct store *, struct db_stmt *, int64_t **,
    size_t *);
static char *store_queue_col_str(struct db_stmt *, int);

static const char *const
store_queue_status_names[STORE_QUEUE_RCPT_STATUS_COUNT] = {
	[STORE_QUEUE_RCPT_PENDING] = "pending",
	[STORE_QUEUE_RCPT_DELIVERED] = "delivered",
	[STORE_QUEUE_RCPT_FAILED] = "failed",
	[STORE_QUEUE_RCPT_BOUNCED] = "bounced",
	[STORE_QUEUE_RCPT_RELAYED] = "relayed",
};

const char *
store_queue_rcpt_status_str(int status)
{
	if (status < 0 || status >= STORE_QUEUE_RCPT_STATUS_COUNT)
		return "unknown";
	return store_queue_status_names[status];
}

static struct db_stmt *
store_queue_stmt(struct store *st, enum store_queue_stmt id, const char *sql)
{
	_Static_assert(STORE_QS_COUNT <= STMT_QUEUE_SLOTS,
	    "too many statements");
	return store_stmt(st, (enum store_stmt_id)(STMT_QUEUE_BASE + id), sql);
}

static char *
store_queue_col_str(struct db_stmt *s, int col)
{
	const char *t = db_column_text(s, col);

	return t != NULL ? xstrdup((const char *)t) : NULL;
}

void
store_queue_msg_clear(struct store_queue_msg *m)
{
	size_t i;

	if (m == NULL)
		return;
	free(m->mail_from);
	free(m->auth_user);
	free(m->dsn_envid);
	free(m->claimed_by);
	for (i = 0; i < m->nrcpts; i++) {
		free(m->rcpts[i].address);
		free(m->rcpts[i].domain);
		free(m->rcpts[i].last_error);
		free(m->rcpts[i].dsn_orcpt);
	}
	free(m->rcpts);
	memset(m, 0, sizeof(*m));
}

static int
store_queue_id_list(struct store *st, struct db_stmt *s, int64_t **ids_r,
    size_t *n_r)
{
	int64_t *ids = NULL;
	size_t n = 0, cap = 0;
	int rc;

	while ((rc = db_step(s)) == DB_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			ids = xrealloc(ids, cap * sizeof(*ids));
		}
		ids[n++] = db_column_int64(s, 0);
	}
	db_reset(s);
	if (rc != DB_DONE) {
		free(ids);
		return store_fail_db(st, rc, "queue list");
	}
	*ids_r = ids;
	*n_r = n;
	return 0;
}

int
store_queue_due(struct store *st, int64_t now, size_t max, int64_t **ids_r,
    size_t *n_r)
{
	struct db_stmt *s;

	*ids_r = NULL;
	*n_r = 0;
	s = store_queue_stmt(st, STORE_QS_DUE,
	    "SELECT id FROM queue WHERE next_attempt <= ?1 "
	    "ORDER BY next_attempt, id LIMIT ?2");
	if (s == NULL)
		return -1;
	db_bind_int64(s, 1, now);
	db_bind_int64(s, 2, (int64_t)max);
	return store_queue_id_list(st, s, ids_r, n_r);
}

int
store_queue_ids(struct store *st, int64_t **ids_r, size_t *n_r)
{
	struct db_stmt *s;

	*ids_r = NULL;
	*n_r = 0;
	s = store_queue_stmt(st, STORE_QS_IDS,
	    "SELECT id FROM queue ORDER BY id");
	if (s == NULL)
		return -1;
	return store_queue_id_list(st, s, ids_r, n_r);
}

int
store_queue_load(struct store *st, int64_t id, struct store_queue_msg *m)
{
	struct db_stmt *s;
	struct store_queue_rcpt *r;
	size_t cap = 0;
	int rc;

	memset(m, 0, sizeof(*m));
	s = store_queue_stmt(st, STORE_QS_LOAD,
	    "SELECT mail_from, body_id, auth_user, created, next_attempt, "
	    "attempts, warned, smtputf8, is_bounce, dsn_ret, dsn_envid, "
	    "claimed_by, lease_until FROM queue WHERE id = ?1");
	if (s == NULL)
		return -1;
	db_bind_int64(s, 1, id);
	rc = db_step(s);
	if (rc != DB_ROW) {
		db_reset(s);
		if (rc == DB_DONE)
			return 1;
		return store_fail_db(st, rc, "queue load");
	}
	m->id = id;
	m->mail_from = store_queue_col_str(s, 0);
	if (m->mail_from == NULL)
		m->mail_from = xstrdup("");
	m->body_id = db_column_int64(s, 1);
	m->auth_user = store_queue_col_str(s, 2);
	m->created = db_column_int64(s, 3);
	m->next_attempt = db_column_int64(s, 4);
	m->attempts = (unsigned)db_column_int64(s, 5);
	m->warned = db_column_int(s, 6) != 0;
	m->smtputf8 = db_column_int(s, 7) != 0;
	m->is_bounce = db_column_int(s, 8) != 0;
	m->dsn_ret = db_column_int(s, 9);
	m->dsn_envid = store_queue_col_str(s, 10);
	m->claimed_by = store_queue_col_str(s, 11);
	m->lease_until = db_column_int64(s, 12);
	db_reset(s);

	s = store_queue_stmt(st, STORE_QS_LOAD_RCPTS,
	    "SELECT id, address, domain, status, last_error, updated, "
	    "dsn_notify, dsn_orcpt FROM queue_rcpt WHERE queue_id = ?1 "
	    "ORDER BY id");
	if (s == NULL) {
		store_queue_msg_clear(m);
		return -1;
	}
	db_bind_int64(s, 1, id);
	while ((rc = db_step(s)) == DB_ROW) {
		if (m->nrcpts == cap) {
			cap = cap ? cap * 2 : 8;
			m->rcpts = xrealloc(m->rcpts, cap * sizeof(*m->rcpts));
		}
		r = &m->rcpts[m->nrcpts++];
		r->id = db_column_int64(s, 0);
		r->address = store_queue_col_str(s, 1);
		r->domain = store_queue_col_str(s, 2);
		r->status = db_column_int(s, 3);
		r->last_error = store_queue_col_str(s, 4);
		r->updated = db_column_int64(s, 5);
		r->dsn_notify = (unsigned)db_column_int64(s, 6);
		r->dsn_orcpt = store_queue_col_str(s, 7);
		if (r->address == NULL)
			r->address = xstrdup("");
		if (r->domain == NULL)
			r->domain = xstrdup("");
	}
	db_reset(s);
	if (rc != DB_DONE) {
		store_queue_msg_clear(m);
		return store_fail_db(st, rc, "queue load rcpts");
	}
	return 0;
}

int
store_queue_rcpt_set(struct store *st, int64_t rcpt_id,
    enum store_queue_rcpt_status status, const char *error, int64_t now)
{
	struct db_stmt *s;

	if (error != NULL) {
		s = store_queue_stmt(st, STORE_QS_RCPT_SET,
		    "UPDATE queue_rcpt SET status = ?2, last_error = ?3, "
		    "updated = ?4 WHERE id = ?1");
		if (s == NULL)
			return -1;
		store_bind_text(s, 3, error);
	} else {
		s = store_queue_stmt(st, STORE_QS_RCPT_SET_KEEP,
		    "UPDATE queue_rcpt SET status = ?2, updated = ?4 "
		    "WHERE id = ?1");
		if (s == NULL)
			return -1;
	}
	db_bind_int64(s, 1, rcpt_id);
	db_bind_int(s, 2, (int)status);
	db_bind_int64(s, 4, now);
	return store_step_done(st, s, "queue rcpt update");
}

int
store_queue_reschedule(struct store *st, int64_t id, int64_t next_attempt,
    unsigned attempts)
{
	struct db_stmt *s;

	s = store_queue_stmt(st, STORE_QS_RESCHEDULE,
	    "UPDATE queue SET next_attempt = ?2, attempts = ?3, "
	    "claimed_by = NULL, lease_until = 0 WHERE id = ?1");
	if (s == NULL)
		return -1;
	db_bind_int64(s, 1, id);
	db_bind_int64(s, 2, next_attempt);
	db_bind_int64(s, 3, (int64_t)attempts);
	return store_step_done(st, s, "queue reschedule");
}

int
store_queue_set_warned(struct store *st, int64_t id)
{
	struct db_stmt *s;

	s = store_queue_stmt(st, STORE_QS_WARNED, "UPDATE queue SET warned = 1 WHERE id = ?1");
	if (s == NULL)
		return -1;
	db_bind_int64(s, 1, id);
	return store_step_done(st, s, "queue warned");
}

int
store_queue_delete(struct store *st, int64_t id)
{
	struct db_stmt *s;
	int64_t body_id;
	int rc;

	if (store_begin(st) < 0)
		return -1;
	/* The body reference goes only with the row that held it, so a
	 * second delete (carteiroctl racing the runner) never unrefs twice. */
	s = store_queue_stmt(st, STORE_QS_DEL_QUEUE,
	    "DELETE FROM queue WHERE id = ?1 RETURNING body_id");
	if (s == NULL)
		goto fail;
	db_bind_int64(s, 1, id);
	rc = db_step(s);
	if (rc != DB_ROW) {
		db_reset(s);
		if (rc != DB_DONE) {
			store_fail_db(st, rc, "queue delete");
			goto fail;
		}
		return store_commit(st) < 0 ? -1 : 1;
	}
	body_id = db_column_int64(s, 0);
	/* Finish the statement: RETURNING rows are produced first. */
	while (rc == DB_ROW)
		rc = db_step(s);
	db_reset(s);
	if (rc != DB_DONE) {
		store_fail_db(st, rc, "queue delete");
		goto fail;
	}
	s = store_queue_stmt(st, STORE_QS_DEL_RCPTS,
	    "DELETE FROM queue_rcpt WHERE queue_id = ?1");
	if (s == NULL)
		goto fail;
	db_bind_int64(s, 1, id);
	if (store_step_done(st, s, "queue rcpt delete") < 0)
		goto fail;
	s = store_queue_stmt(st, STORE_QS_UNREF,
	    "UPDATE bodies SET refs = refs - 1 WHERE id = ?1 AND refs > 0");
	if (s == NULL)
		goto fail;
	db_bind_int64(s, 1, body_id);
	if (store_step_done(st, s, "body unref") < 0)
		goto fail;
	return store_commit(st);
fail:
	store_rollback(st);
	return -1;
}

int
store_queue_flush(struct store *st, int64_t now, size_t *n_r)
{
	struct db_stmt *s;

	s = store_queue_stmt(st, STORE_QS_FLUSH,
	    "UPDATE queue SET next_attempt = ?1 WHERE next_attempt > ?1");
	if (s == NULL)
		return -1;
	db_bind_int64(s, 1, now);
	if (store_step_done(st, s, "queue flush") < 0)
		return -1;
	if (n_r != NULL)
		*n_r = (size_t)db_changes(st->db);
	return 0;
}

int
store_queue_stats(struct store *st, int64_t *n_r, int64_t *oldest_r)
{
	struct db_stmt *s;
	int rc;

	*n_r = 0;
	*oldest_r = 0;
	s = store_queue_stmt(st, STORE_QS_STATS,
	    "SELECT count(*), coalesce(min(created), 0) FROM queue");
	if (s == NULL)
		return -1;
	rc = db_step(s);
	if (rc != DB_ROW) {
		db_reset(s);
		return store_fail_db(st, rc, "queue stats");
	}
	*n_r = db_column_int64(s, 0);
	*oldest_r = db_column_int64(s, 1);
	db_reset(s);
	return 0;
}
