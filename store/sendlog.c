/*
 * Sending accounting for [smtpd] daily_send_limit: one send_log row per
 * accepted submission (count = its remote recipients), summed over a
 * rolling window by the caller's `since`. Old rows are pruned on insert.
 * The column "user" is always quoted: USER is a reserved word in
 * PostgreSQL (unquoted, `user = ?1` compares CURRENT_USER and matches
 * nothing).
 */
#include "store/store_internal.h"

/* Rows older than this (seconds before the newest insert) are dropped; the
 * limit's window is 24 h, so two days leaves slack for clock steps. */
#define SENDLOG_KEEP (2 * 86400)

static int64_t store_sendlog_scalar(struct store *, enum store_stmt_id,
    const char *, const char *, int64_t);

static int64_t
store_sendlog_scalar(struct store *st, enum store_stmt_id id, const char *sql,
    const char *user, int64_t since)
{
	struct db_stmt *s;
	int64_t v;
	int rc;

	s = store_stmt(st, id, sql);
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, user);
	db_bind_int64(s, 2, since);
	rc = db_step(s);
	if (rc != DB_ROW) {
		db_reset(s);
		return store_fail_db(st, rc, "send log");
	}
	v = db_column_int64(s, 0);
	db_reset(s);
	return v;
}

int64_t
store_sent_count(struct store *st, const char *user, int64_t since)
{
	return store_sendlog_scalar(st, STMT_SENT_COUNT,
	    "SELECT coalesce(sum(count), 0) FROM send_log "
	    "WHERE \"user\" = ?1 AND at >= ?2", user, since);
}

int64_t
store_sent_oldest(struct store *st, const char *user, int64_t since)
{
	return store_sendlog_scalar(st, STMT_SENT_OLDEST,
	    "SELECT coalesce(min(at), 0) FROM send_log "
	    "WHERE \"user\" = ?1 AND at >= ?2", user, since);
}

int
store_sent_add(struct store *st, const char *user, int64_t at,
    unsigned count)
{
	struct db_stmt *s;

	s = store_stmt(st, STMT_SENT_PRUNE,
	    "DELETE FROM send_log WHERE \"user\" = ?1 AND at < ?2");
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, user);
	db_bind_int64(s, 2, at - SENDLOG_KEEP);
	if (store_step_done(st, s, "send log") < 0)
		return -1;
	s = store_stmt(st, STMT_SENT_ADD,
	    "INSERT INTO send_log(\"user\", at, count) VALUES (?1, ?2, ?3)");
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, user);
	db_bind_int64(s, 2, at);
	db_bind_int64(s, 3, count);
	return store_step_done(st, s, "send log");
}
