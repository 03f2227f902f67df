/*
 * The store side of carteiroctl mailbox import and export: one imported
 * message (a delivery with the old server's UIDL, its mbox "From " line
 * and an imported row that keeps re-runs idempotent and given UIDLs
 * unique forever), and the per-message origin data export writes back.
 * Parsing mbox and Maildir is carteiroctl's (tools/ctl_import*.c).
 */
#include "store/store_internal.h"
#include "store/import.h"
#include "common/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int store_import_run(struct store *, const char *, const char *,
    const char *, struct db_stmt **, const char *);
static char *store_import_key(const char *, const char *);

int
store_uidl_valid(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > STORE_UIDL_MAX)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return -1;
	}
	return 0;
}

/* "uidl:<uidl>", or a copy of key. Caller frees. */
static char *
store_import_key(const char *uidl, const char *key)
{
	return uidl != NULL ? xasprintf("uidl:%s", uidl) : xstrdup(key);
}

/* Prepare sql into *s (not cached: import statements run once per
 * message and carteiroctl is short-lived) and bind ?1 = address, ?2 = a.
 * -1 with the error set. */
static int
store_import_run(struct store *st, const char *sql, const char *address,
    const char *a, struct db_stmt **s, const char *what)
{
	int rc;

	rc = db_prepare(st->db, sql, false, s);
	if (rc != DB_OK)
		return store_fail_db(st, rc, what);
	store_bind_text(*s, 1, address);
	if (a != NULL)
		store_bind_text(*s, 2, a);
	return 0;
}

int
store_import_known(struct store *st, const char *address, const char *uidl,
    const char *key)
{
	char *k = store_import_key(uidl, key);
	struct db_stmt *s;
	int rc;

	if (store_import_run(st, "SELECT 1 FROM imported i JOIN users u "
	    "ON u.id = i.user_id WHERE u.address = ?1 AND i.key = ?2",
	    address, k, &s, "import") < 0) {
		free(k);
		return -1;
	}
	rc = db_step(s);
	db_finalize(s);
	free(k);
	if (rc == DB_ROW)
		return 1;
	if (rc == DB_DONE)
		return 0;
	return store_fail_db(st, rc, "import");
}

int
store_import(struct store *st, const char *address,
    const struct store_import_msg *m)
{
	const char *local[1] = { address };
	struct store_delivery d = {
		.prefix = "", .fd = -1, .local = local, .nlocal = 1,
		.check_quota = m->check_quota, .uidl = m->uidl,
	};
	struct db_stmt *s = NULL;
	int64_t mailbox_id, epoch = 0;
	char *key, gen[32];
	int rc, ret = -1;

	if (m->uidl != NULL && store_uidl_valid(m->uidl) < 0)
		return store_fail(st, "invalid UIDL '%.80s' (RFC 1939: 1 to 70 "
		    "printable characters, no spaces)", m->uidl);
	if (m->uidl == NULL && (m->key == NULL || strlen(m->key) > 200))
		return store_fail(st, "import: no key");
	key = store_import_key(m->uidl, m->key);
	if (store_begin(st) < 0) {
		free(key);
		return -1;
	}
	rc = store_import_known(st, address, NULL, key);
	if (rc != 0) {
		ret = rc;
		goto out;
	}
	if (m->uidl != NULL) {
		/* Generated UIDLs are "<uid_epoch hex>.<uid>": an imported
		 * one of that form could meet a future delivery. */
		if (store_import_run(st, "SELECT uid_epoch, (SELECT count(*) "
		    "FROM mailbox m WHERE m.user_id = u.id AND m.uidl = ?2) "
		    "FROM users u WHERE u.address = ?1", address, m->uidl, &s,
		    "import") < 0)
			goto out;
		rc = db_step(s);
		if (rc != DB_ROW) {
			if (rc == DB_DONE)
				store_fail(st, "no such user");
			else
				store_fail_db(st, rc, "import");
			goto out;
		}
		epoch = db_column_int64(s, 0);
		if (db_column_int64(s, 1) > 0) {
			store_fail(st, "UIDL %s is already in the mailbox",
			    m->uidl);
			goto out;
		}
		snprintf(gen, sizeof(gen), "%" PRIx64 ".", (uint64_t)epoch);
		if (strncmp(m->uidl, gen, strlen(gen)) == 0 &&
		    m->uidl[strlen(gen)] != '\0' &&
		    strspn(m->uidl + strlen(gen), "0123456789") ==
		    strlen(m->uidl + strlen(gen))) {
			store_fail(st, "UIDL %s has the form of carteiro's own "
			    "UIDLs for this mailbox", m->uidl);
			goto out;
		}
		db_finalize(s);
		s = NULL;
	}
	if (store_deliver_mem(st, &d, m->data, m->len, NULL, NULL) < 0)
		goto out;
	/* The delivery's one mailbox row. */
	mailbox_id = st->last_mailbox_id;
	if (store_import_run(st, "INSERT INTO imported(user_id, key, uidl, at) "
	    "SELECT user_id, ?2, uidl, ?3 FROM mailbox WHERE id = ?4",
	    address, key, &s, "import") < 0)
		goto out;
	db_bind_int64(s, 3, util_time());
	db_bind_int64(s, 4, mailbox_id);
	if ((rc = db_step(s)) != DB_DONE) {
		store_fail_db(st, rc, "import");
		goto out;
	}
	db_finalize(s);
	s = NULL;
	if (m->mbox_from != NULL) {
		if (store_import_run(st, "UPDATE mailbox SET mbox_from = ?2 "
		    "WHERE id = ?3", address, m->mbox_from, &s, "import") < 0)
			goto out;
		db_bind_int64(s, 3, mailbox_id);
		if ((rc = db_step(s)) != DB_DONE) {
			store_fail_db(st, rc, "import");
			goto out;
		}
	}
	ret = 0;
out:
	db_finalize(s);
	free(key);
	return store_end(st, ret);
}

int
store_message_origin(struct store *st, int64_t mailbox_id,
    char **return_path_r, char **mbox_from_r)
{
	struct db_stmt *s;
	int rc;

	*return_path_r = *mbox_from_r = NULL;
	rc = db_prepare(st->db, "SELECT return_path, mbox_from FROM "
	    "mailbox WHERE id = ?1", false, &s);
	if (rc != DB_OK)
		return store_fail_db(st, rc, "message origin");
	db_bind_int64(s, 1, mailbox_id);
	rc = db_step(s);
	if (rc == DB_ROW) {
		if (db_column_type(s, 0) != DB_NULL)
			*return_path_r = xstrdup(
			    db_column_text(s, 0));
		if (db_column_type(s, 1) != DB_NULL)
			*mbox_from_r = xstrdup(
			    db_column_text(s, 1));
	}
	db_finalize(s);
	if (rc == DB_ROW)
		return 0;
	if (rc == DB_DONE)
		return 1;
	return store_fail_db(st, rc, "message origin");
}
