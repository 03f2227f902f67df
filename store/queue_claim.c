/*
 * Queue claims: several relays (carteiro-smtpd nodes) on one database
 * never send one message twice. A relay claims the due messages it is
 * about to send (claimed_by = its node id, lease_until); the others skip
 * them until the lease ends. The claiming relay renews its leases while
 * it works and clears them when it is done (store_queue_reschedule and
 * store_queue_delete clear the claim with the row's new state).
 */
#include "store/queue.h"
#include "store/store_internal.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

/* Statement slots of this file: STMT_QUEUE_BASE + STORE_QC_BASE + n
 * (queue.c keeps below STORE_QC_BASE). */
#define STORE_QC_BASE 16
enum store_queue_claim_stmt {
	STORE_QC_PICK,
	STORE_QC_SET,
	STORE_QC_RENEW,
	STORE_QC_RELEASE_ALL,
	STORE_QC_RELEASE_ONE,
	STORE_QC_CLAIMERS,
	STORE_QC_COUNT
};

static struct db_stmt *
store_qc_stmt(struct store *st, enum store_queue_claim_stmt id,
    const char *sql)
{
	_Static_assert(STORE_QC_BASE + STORE_QC_COUNT <= STMT_QUEUE_SLOTS,
	    "too many statements");
	return store_stmt(st, (enum store_stmt_id)(STMT_QUEUE_BASE +
	    STORE_QC_BASE + id), sql);
}

static bool
store_qc_skipped(int64_t id, const int64_t *skip, size_t nskip)
{
	for (size_t i = 0; i < nskip; i++)
		if (skip[i] == id)
			return true;
	return false;
}

int
store_queue_claim(struct store *st, int64_t now, int64_t lease_until,
    const char *owner, size_t max, const int64_t *skip, size_t nskip,
    int64_t **ids_r, size_t *n_r)
{
	struct db_stmt *s;
	int64_t *ids = NULL, id;
	size_t n = 0, i;
	int rc;

	*ids_r = NULL;
	*n_r = 0;
	if (max == 0)
		return 0;
	if (store_begin(st) < 0)
		return -1;
	/* Our own older claims count as free: a message whose finish was
	 * rolled back is taken up again at once, as before claims. The
	 * ones in flight (skip) are passed over in C, so the LIMIT leaves
	 * room for them. */
	s = store_qc_stmt(st, STORE_QC_PICK, store_sql(st,
	    "SELECT id FROM queue WHERE next_attempt <= ?1 AND "
	    "(claimed_by IS NULL OR lease_until <= ?1 OR claimed_by = ?2) "
	    "ORDER BY next_attempt, id LIMIT ?3",
	    "SELECT id FROM queue WHERE next_attempt <= ?1 AND "
	    "(claimed_by IS NULL OR lease_until <= ?1 OR claimed_by = ?2) "
	    "ORDER BY next_attempt, id LIMIT ?3 FOR UPDATE SKIP LOCKED"));
	if (s == NULL)
		goto fail;
	db_bind_int64(s, 1, now);
	store_bind_text(s, 2, owner);
	db_bind_int64(s, 3, (int64_t)(max + nskip));
	ids = xcalloc(max, sizeof(*ids));
	while ((rc = db_step(s)) == DB_ROW) {
		id = db_column_int64(s, 0);
		if (n < max && !store_qc_skipped(id, skip, nskip))
			ids[n++] = id;
	}
	db_reset(s);
	if (rc != DB_DONE) {
		store_fail_db(st, rc, "queue claim");
		goto fail;
	}
	for (i = 0; i < n; i++) {
		s = store_qc_stmt(st, STORE_QC_SET,
		    "UPDATE queue SET claimed_by = ?2, lease_until = ?3 "
		    "WHERE id = ?1");
		if (s == NULL)
			goto fail;
		db_bind_int64(s, 1, ids[i]);
		store_bind_text(s, 2, owner);
		db_bind_int64(s, 3, lease_until);
		if (store_step_done(st, s, "queue claim") < 0)
			goto fail;
	}
	if (store_commit(st) < 0)
		goto fail;
	if (n == 0) {
		free(ids);
		ids = NULL;
	}
	*ids_r = ids;
	*n_r = n;
	return 0;
fail:
	store_rollback(st);
	free(ids);
	return -1;
}

int
store_queue_renew(struct store *st, const char *owner, int64_t lease_until,
    size_t *n_r)
{
	struct db_stmt *s;

	s = store_qc_stmt(st, STORE_QC_RENEW,
	    "UPDATE queue SET lease_until = ?2 WHERE claimed_by = ?1");
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, owner);
	db_bind_int64(s, 2, lease_until);
	if (store_step_done(st, s, "queue renew") < 0)
		return -1;
	if (n_r != NULL)
		*n_r = (size_t)db_changes(st->db);
	return 0;
}

int
store_queue_release(struct store *st, const char *owner, int64_t id,
    size_t *n_r)
{
	struct db_stmt *s;

	if (id < 0)
		s = store_qc_stmt(st, STORE_QC_RELEASE_ALL,
		    "UPDATE queue SET claimed_by = NULL, lease_until = 0 "
		    "WHERE claimed_by = ?1");
	else
		s = store_qc_stmt(st, STORE_QC_RELEASE_ONE,
		    "UPDATE queue SET claimed_by = NULL, lease_until = 0 "
		    "WHERE claimed_by = ?1 AND id = ?2");
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, owner);
	if (id >= 0)
		db_bind_int64(s, 2, id);
	if (store_step_done(st, s, "queue release") < 0)
		return -1;
	if (n_r != NULL)
		*n_r = (size_t)db_changes(st->db);
	return 0;
}

int
store_queue_claimers(struct store *st, char ***owners_r, size_t *n_r)
{
	struct db_stmt *s;
	char **v = NULL;
	size_t n = 0, cap = 0;
	int rc;

	*owners_r = NULL;
	*n_r = 0;
	s = store_qc_stmt(st, STORE_QC_CLAIMERS,
	    "SELECT DISTINCT claimed_by FROM queue "
	    "WHERE claimed_by IS NOT NULL");
	if (s == NULL)
		return -1;
	while ((rc = db_step(s)) == DB_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 4;
			v = xrealloc(v, cap * sizeof(*v));
		}
		v[n++] = xstrdup(db_column_text(s, 0));
	}
	db_reset(s);
	if (rc != DB_DONE) {
		while (n > 0)
			free(v[--n]);
		free(v);
		return store_fail_db(st, rc, "queue claimers");
	}
	*owners_r = v;
	*n_r = n;
	return 0;
}
