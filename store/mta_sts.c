/*
 * The mta_sts table (mta_sts.h). Rare statements (a policy fetched, the
 * relay starting): prepared per call.
 */
#include "store/mta_sts.h"
#include "store/store_internal.h"

#include <stdlib.h>

#include "common/util.h"

int
store_mta_sts_put(struct store *st, const struct store_mta_sts *row)
{
	struct db_stmt *s;
	int rc;

	rc = db_prepare(st->db, "INSERT INTO mta_sts"
	    "(domain, id, policy, fetched, expires) VALUES "
	    "(?1, ?2, ?3, ?4, ?5) ON CONFLICT(domain) DO UPDATE SET "
	    "id = excluded.id, policy = excluded.policy, "
	    "fetched = excluded.fetched, expires = excluded.expires",
	    false, &s);
	if (rc != DB_OK)
		return store_fail_db(st, rc, "mta_sts");
	store_bind_text(s, 1, row->domain);
	store_bind_text(s, 2, row->id);
	store_bind_text(s, 3, row->policy);
	db_bind_int64(s, 4, row->fetched);
	db_bind_int64(s, 5, row->expires);
	rc = db_step(s);
	db_finalize(s);
	if (rc != DB_DONE)
		return store_fail_db(st, rc, "mta_sts");
	return 0;
}

int
store_mta_sts_list(struct store *st, int64_t now,
    struct store_mta_sts **rows_r, size_t *n_r)
{
	struct db_stmt *s;
	struct store_mta_sts *rows = NULL, *r;
	size_t n = 0;
	int rc;

	*rows_r = NULL;
	*n_r = 0;
	rc = db_prepare(st->db, "SELECT domain, id, policy, "
	    "fetched, expires FROM mta_sts WHERE expires > ?1", false, &s);
	if (rc != DB_OK)
		return store_fail_db(st, rc, "mta_sts");
	db_bind_int64(s, 1, now);
	while ((rc = db_step(s)) == DB_ROW) {
		rows = xrealloc(rows, (n + 1) * sizeof(*rows));
		r = &rows[n++];
		r->domain = xstrdup(db_column_text(s, 0));
		r->id = xstrdup(db_column_text(s, 1));
		r->policy = xstrdup(db_column_text(s, 2));
		r->fetched = db_column_int64(s, 3);
		r->expires = db_column_int64(s, 4);
	}
	db_finalize(s);
	if (rc != DB_DONE) {
		store_mta_sts_free(rows, n);
		return store_fail_db(st, rc, "mta_sts");
	}
	*rows_r = rows;
	*n_r = n;
	return 0;
}

void
store_mta_sts_free(struct store_mta_sts *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(rows[i].domain);
		free(rows[i].id);
		free(rows[i].policy);
	}
	free(rows);
}
