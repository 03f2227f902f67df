/*
 * Retention (RFC 2449 EXPIRE): users.expire overrides, mailbox
 * first_retrieved written at QUIT, and the query behind pop3d's bounded
 * expiry sweep (schema 5). Deleting is mailbox.c's store_mailbox_delete.
 */
#include "store/store_internal.h"
#include "store/retention.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

int
store_user_set_expire(struct store *st, const char *address,
    int64_t seconds)
{
	struct db_stmt *s;
	int rc;

	rc = db_prepare(st->db, "UPDATE users SET expire = ?2 "
	    "WHERE address = ?1", false, &s);
	if (rc != DB_OK)
		return store_fail_db(st, rc, "user set expire");
	store_bind_text(s, 1, address);
	if (seconds != STORE_EXPIRE_DEFAULT)
		db_bind_int64(s, 2, seconds);
	rc = db_step(s);
	db_finalize(s);
	if (rc != DB_DONE)
		return store_fail_db(st, rc, "user set expire");
	return db_changes(st->db) == 0 ? 1 : 0;
}

int
store_user_get_expire(struct store *st, const char *address,
    int64_t *seconds_r)
{
	struct db_stmt *s;
	int rc;

	*seconds_r = STORE_EXPIRE_DEFAULT;
	rc = db_prepare(st->db, "SELECT expire FROM users "
	    "WHERE address = ?1", false, &s);
	if (rc != DB_OK)
		return store_fail_db(st, rc, "user expire");
	store_bind_text(s, 1, address);
	rc = db_step(s);
	if (rc == DB_ROW && db_column_type(s, 0) != DB_NULL)
		*seconds_r = db_column_int64(s, 0);
	db_finalize(s);
	if (rc == DB_ROW)
		return 0;
	if (rc == DB_DONE)
		return 1;
	return store_fail_db(st, rc, "user expire");
}

/* PostgreSQL: all the rows in one statement (a round trip per row was
 * most of a QUIT after retrieving a large maildrop). */
static int
store_mailbox_retrieved_pg(struct store *st, const char *address,
    const int64_t *ids, size_t n, int64_t now)
{
	struct db_stmt *s;
	char *list;
	int rc;

	rc = db_prepare(st->db, "UPDATE mailbox SET first_retrieved = ?3 "
	    "WHERE id = ANY(CAST(?2 AS bigint[])) AND first_retrieved IS NULL "
	    "AND user_id = (SELECT id FROM users WHERE address = ?1)", false,
	    &s);
	if (rc != DB_OK)
		return store_fail_db(st, rc, "retrieved");
	list = store_pg_id_array(ids, n);
	store_bind_text(s, 1, address);
	store_bind_text(s, 2, list);
	db_bind_int64(s, 3, now);
	rc = db_step(s);
	db_finalize(s);
	free(list);
	return rc == DB_DONE ? 0 : store_fail_db(st, rc, "retrieved");
}

int
store_mailbox_retrieved(struct store *st, const char *address,
    const int64_t *ids, size_t n, int64_t now)
{
	struct db_stmt *s;
	int rc, ret = -1;

	if (n == 0)
		return 0;
	if (db_kind(st->db) == DB_KIND_PG)
		return store_mailbox_retrieved_pg(st, address, ids, n, now);
	rc = db_prepare(st->db, "UPDATE mailbox SET first_retrieved "
	    "= ?3 WHERE id = ?2 AND first_retrieved IS NULL AND user_id = "
	    "(SELECT id FROM users WHERE address = ?1)", false, &s);
	if (rc != DB_OK)
		return store_fail_db(st, rc, "retrieved");
	if (store_begin(st) < 0) {
		db_finalize(s);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		db_reset(s);
		store_bind_text(s, 1, address);
		db_bind_int64(s, 2, ids[i]);
		db_bind_int64(s, 3, now);
		if ((rc = db_step(s)) != DB_DONE) {
			store_fail_db(st, rc, "retrieved");
			goto out;
		}
	}
	ret = 0;
out:
	db_finalize(s);
	return store_end(st, ret);
}

int
store_expire_candidates(struct store *st, int64_t default_s, int64_t now,
    int64_t after_id, unsigned max, struct store_expired **v_r,
    size_t *n_r)
{
	struct store_expired *v;
	struct db_stmt *s;
	size_t n = 0;
	int rc;

	int64_t min_e;

	*v_r = NULL;
	*n_r = 0;
	if (max == 0)
		return 0;
	/* The shortest expire anyone has: nobody (all never) means nothing
	 * to do, else only rows retrieved that long ago are looked at. */
	rc = db_prepare(st->db, "SELECT min(coalesce(expire, ?1)) "
	    "FROM users WHERE coalesce(expire, ?1) >= 0", false, &s);
	if (rc != DB_OK)
		return store_fail_db(st, rc, "expire");
	db_bind_int64(s, 1, default_s);
	rc = db_step(s);
	if (rc != DB_ROW || db_column_type(s, 0) == DB_NULL) {
		db_finalize(s);
		return rc == DB_ROW ? 0 : store_fail_db(st, rc, "expire");
	}
	min_e = db_column_int64(s, 0);
	db_finalize(s);
	/* The partial index mailbox_retrieved holds only retrieved rows
	 * (never-retrieved mail is not even looked at), and ?5 bounds the
	 * range read to rows old enough for the shortest expire. */
	rc = db_prepare(st->db, store_sql(st,
	    "SELECT m.id, u.address, m.uidl, "
	    "m.first_retrieved FROM mailbox m INDEXED BY mailbox_retrieved "
	    "JOIN users u ON u.id = m.user_id "
	    "WHERE m.first_retrieved IS NOT NULL AND m.first_retrieved <= ?5 "
	    "AND m.id > ?1 AND coalesce(u.expire, ?2) >= 0 "
	    "AND m.first_retrieved + coalesce(u.expire, ?2) <= ?3 "
	    "ORDER BY m.id LIMIT ?4",
	    /* PostgreSQL has no INDEXED BY; its planner picks the index. */
	    "SELECT m.id, u.address, m.uidl, "
	    "m.first_retrieved FROM mailbox m "
	    "JOIN users u ON u.id = m.user_id "
	    "WHERE m.first_retrieved IS NOT NULL AND m.first_retrieved <= ?5 "
	    "AND m.id > ?1 AND coalesce(u.expire, ?2) >= 0 "
	    "AND m.first_retrieved + coalesce(u.expire, ?2) <= ?3 "
	    "ORDER BY m.id LIMIT ?4"), false, &s);
	if (rc != DB_OK)
		return store_fail_db(st, rc, "expire");
	db_bind_int64(s, 1, after_id);
	db_bind_int64(s, 2, default_s);
	db_bind_int64(s, 3, now);
	db_bind_int64(s, 4, max);
	db_bind_int64(s, 5, now - min_e);
	v = xcalloc(max, sizeof(*v));
	while (n < max && (rc = db_step(s)) == DB_ROW) {
		v[n].id = db_column_int64(s, 0);
		util_strlcpy(v[n].address, db_column_text(s,
		    1), sizeof(v[n].address));
		util_strlcpy(v[n].uidl, db_column_text(s, 2),
		    sizeof(v[n].uidl));
		v[n].first_retrieved = db_column_int64(s, 3);
		n++;
	}
	db_finalize(s);
	if (rc != DB_ROW && rc != DB_DONE) {
		free(v);
		return store_fail_db(st, rc, "expire");
	}
	*v_r = v;
	*n_r = n;
	return 0;
}
