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
	sqlite3_stmt *s;
	int rc;

	rc = sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO mta_sts"
	    "(domain, id, policy, fetched, expires) VALUES "
	    "(?1, ?2, ?3, ?4, ?5)", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return store_fail_db(st, rc, "mta_sts");
	store_bind_text(s, 1, row->domain);
	store_bind_text(s, 2, row->id);
	store_bind_text(s, 3, row->policy);
	sqlite3_bind_int64(s, 4, row->fetched);
	sqlite3_bind_int64(s, 5, row->expires);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return store_fail_db(st, rc, "mta_sts");
	return 0;
}

int
store_mta_sts_list(struct store *st, int64_t now,
    struct store_mta_sts **rows_r, size_t *n_r)
{
	sqlite3_stmt *s;
	struct store_mta_sts *rows = NULL, *r;
	size_t n = 0;
	int rc;

	*rows_r = NULL;
	*n_r = 0;
	rc = sqlite3_prepare_v2(st->db, "SELECT domain, id, policy, "
	    "fetched, expires FROM mta_sts WHERE expires > ?1", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return store_fail_db(st, rc, "mta_sts");
	sqlite3_bind_int64(s, 1, now);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		rows = xrealloc(rows, (n + 1) * sizeof(*rows));
		r = &rows[n++];
		r->domain = xstrdup((const char *)sqlite3_column_text(s, 0));
		r->id = xstrdup((const char *)sqlite3_column_text(s, 1));
		r->policy = xstrdup((const char *)sqlite3_column_text(s, 2));
		r->fetched = sqlite3_column_int64(s, 3);
		r->expires = sqlite3_column_int64(s, 4);
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
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
