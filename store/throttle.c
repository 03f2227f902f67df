/*
 * The relay_throttle table (throttle.h). A few writes per throttling
 * event: prepared per call.
 */
#include "store/throttle.h"
#include "store/store_internal.h"

#include <stdlib.h>

#include "common/util.h"

int
store_throttle_set(struct store *st, const struct store_throttle *t)
{
	struct db_stmt *s;
	int rc;

	rc = db_prepare(st->db, "INSERT INTO "
	    "relay_throttle(domain, concurrency, held_until, since, reason) "
	    "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(domain) DO UPDATE SET "
	    "concurrency = excluded.concurrency, "
	    "held_until = excluded.held_until, since = excluded.since, "
	    "reason = excluded.reason", false, &s);
	if (rc != DB_OK)
		return store_fail_db(st, rc, "relay_throttle");
	store_bind_text(s, 1, t->domain);
	db_bind_int64(s, 2, t->concurrency);
	db_bind_int64(s, 3, t->held_until);
	db_bind_int64(s, 4, t->since);
	store_bind_text(s, 5, t->reason);
	rc = db_step(s);
	db_finalize(s);
	if (rc != DB_DONE)
		return store_fail_db(st, rc, "relay_throttle");
	return 0;
}

int
store_throttle_del(struct store *st, const char *domain)
{
	struct db_stmt *s;
	int rc;

	rc = db_prepare(st->db, domain != NULL ?
	    "DELETE FROM relay_throttle WHERE domain = ?1" :
	    "DELETE FROM relay_throttle", false, &s);
	if (rc != DB_OK)
		return store_fail_db(st, rc, "relay_throttle");
	if (domain != NULL)
		store_bind_text(s, 1, domain);
	rc = db_step(s);
	db_finalize(s);
	if (rc != DB_DONE)
		return store_fail_db(st, rc, "relay_throttle");
	return 0;
}

int
store_throttle_list(struct store *st, struct store_throttle **rows_r,
    size_t *n_r)
{
	struct db_stmt *s;
	struct store_throttle *rows = NULL, *t;
	size_t n = 0, cap = 0;
	int rc;

	*rows_r = NULL;
	*n_r = 0;
	rc = db_prepare(st->db, "SELECT domain, concurrency, "
	    "held_until, since, reason FROM relay_throttle ORDER BY domain", false, &s);
	if (rc != DB_OK)
		return store_fail_db(st, rc, "relay_throttle");
	while ((rc = db_step(s)) == DB_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			rows = xrealloc(rows, cap * sizeof(*rows));
		}
		t = &rows[n++];
		t->domain = xstrdup(db_column_text(s, 0));
		t->concurrency = (unsigned)db_column_int64(s, 1);
		t->held_until = db_column_int64(s, 2);
		t->since = db_column_int64(s, 3);
		t->reason = xstrdup(db_column_text(s, 4));
	}
	db_finalize(s);
	if (rc != DB_DONE) {
		store_throttle_free(rows, n);
		return store_fail_db(st, rc, "relay_throttle");
	}
	*rows_r = rows;
	*n_r = n;
	return 0;
}

void
store_throttle_free(struct store_throttle *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(rows[i].domain);
		free(rows[i].reason);
	}
	free(rows);
}
