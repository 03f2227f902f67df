/*
 * The directory: local domains, users and aliases (create, change, delete,
 * list). Resolution of recipients lives in resolve.c; message rows in
 * delivery.c and mailbox.c. Domain parts are stored lower case, local parts
 * as given; every comparison is case-insensitive (COLLATE NOCASE).
 */
#include "store/store_internal.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static int store_domain_id(struct store *, const char *, int64_t *);
static bool store_addr_is_valid(const char *, bool);
static int64_t store_user_new_epoch(struct store *);
static int store_select_id(struct store *, enum store_stmt_id, const char *,
    const char *, const char *, int64_t *);
static int store_list(struct store *, const char *, const char *,
    store_alias_cb *, store_str_cb *, void *);

/*
 * The id of the row a one-text-key SELECT finds: 0 (*id_r), 1 missing,
 * -1 error ("<what> lookup" in store_error).
 */
static int
store_select_id(struct store *st, enum store_stmt_id stmt, const char *sql,
    const char *key, const char *what, int64_t *id_r)
{
	struct db_stmt *s;
	int rc;

	if ((s = store_stmt(st, stmt, sql)) == NULL)
		return -1;
	store_bind_text(s, 1, key);
	rc = db_step(s);
	if (rc == DB_ROW)
		*id_r = db_column_int64(s, 0);
	db_reset(s);
	if (rc == DB_ROW)
		return 0;
	if (rc == DB_DONE)
		return 1;
	return store_fail_db(st, rc, what);
}

/* 0 found (*id_r), 1 missing, -1 error. */
static int
store_domain_id(struct store *st, const char *domain, int64_t *id_r)
{
	return store_select_id(st, STMT_DOMAIN_ID,
	    "SELECT id FROM domains WHERE name = ?1", domain, "domain lookup",
	    id_r);
}

/* "local@domain" with both parts non-empty; or "@domain" if catchall_ok. */
static bool
store_addr_is_valid(const char *address, bool catchall_ok)
{
	const char *at = strrchr(address, '@');

	if (at == NULL || at[1] == '\0' || strchr(at + 1, '.') == at + 1)
		return false;
	if (at == address && !catchall_ok)
		return false;
	for (const char *p = address; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return false;
	return true;
}

/* ---- domains ---- */

int
store_domain_add(struct store *st, const char *domain)
{
	struct db_stmt *s;
	char *name;
	int64_t id;
	int rc;

	if (domain[0] == '\0' || strchr(domain, '@') != NULL ||
	    strpbrk(domain, " \t\r\n") != NULL)
		return store_fail(st, "invalid domain name");
	name = util_strlower(xstrdup(domain));
	rc = store_domain_id(st, name, &id);
	if (rc != 1) {
		free(name);
		return rc == 0 ? 1 : -1;
	}
	s = store_stmt(st, STMT_DOMAIN_ADD,
	    "INSERT INTO domains(name) VALUES (?1)");
	if (s == NULL) {
		free(name);
		return -1;
	}
	store_bind_text(s, 1, name);
	rc = store_step_done(st, s, "domain add");
	free(name);
	return rc;
}

int
store_domain_del(struct store *st, const char *domain)
{
	struct db_stmt *s;
	char *name;
	int64_t id;
	int rc, ret = -1;

	name = util_strlower(xstrdup(domain));
	if (store_begin(st) < 0) {
		free(name);
		return -1;
	}
	rc = store_domain_id(st, name, &id);
	if (rc != 0) {
		ret = rc;
		goto out;
	}
	s = store_stmt(st, STMT_DOMAIN_USERS,
	    "SELECT count(*) FROM users WHERE domain_id = ?1");
	if (s == NULL)
		goto out;
	db_bind_int64(s, 1, id);
	rc = db_step(s);
	if (rc != DB_ROW) {
		store_fail_db(st, rc, "domain del");
		db_reset(s);
		goto out;
	}
	if (db_column_int64(s, 0) > 0) {
		store_fail(st, "domain %s still has %lld user(s)", name,
		    (long long)db_column_int64(s, 0));
		db_reset(s);
		goto out;
	}
	db_reset(s);
	/* Aliases of the domain mean nothing without it: drop them too. */
	s = store_stmt(st, STMT_DOMAIN_DEL_ALIASES,
	    "DELETE FROM aliases WHERE lower(substr(source, "
	    "length(source) - length(?1))) = '@' || lower(?1)");
	if (s == NULL)
		goto out;
	store_bind_text(s, 1, name);
	if (store_step_done(st, s, "domain del") < 0)
		goto out;
	s = store_stmt(st, STMT_DOMAIN_DEL, "DELETE FROM domains WHERE id = ?1");
	if (s == NULL)
		goto out;
	db_bind_int64(s, 1, id);
	if (store_step_done(st, s, "domain del") < 0)
		goto out;
	ret = 0;
out:
	free(name);
	if (ret < 0)
		store_rollback(st);
	else if (store_commit(st) < 0)
		return -1;
	return ret;
}

int
store_domain_is_local(struct store *st, const char *domain)
{
	int64_t id;
	int rc;

	rc = store_domain_id(st, domain, &id);
	if (rc < 0)
		return -1;
	return rc == 0 ? 1 : 0;
}

/*
 * Lists use a fresh statement, not the cache: the callback may call back
 * into the store (even into the statement that lists).
 */
static int
store_list(struct store *st, const char *sql, const char *arg,
    store_alias_cb *pair_cb, store_str_cb *str_cb, void *cbarg)
{
	struct db_stmt *s;
	int rc;

	rc = db_prepare(st->db, sql, false, &s);
	if (rc != DB_OK)
		return store_fail_db(st, rc, "list");
	if (arg != NULL)
		store_bind_text(s, 1, arg);
	while ((rc = db_step(s)) == DB_ROW) {
		const char *a = db_column_text(s, 0);
		const char *b = pair_cb != NULL ?
		    db_column_text(s, 1) : NULL;

		if (pair_cb != NULL)
			pair_cb(a, b, cbarg);
		else
			str_cb(a, cbarg);
	}
	if (rc != DB_DONE) {
		store_fail_db(st, rc, "list");
		db_finalize(s);
		return -1;
	}
	db_finalize(s);
	return 0;
}

int
store_domain_list(struct store *st, store_str_cb *cb, void *arg)
{
	return store_list(st, "SELECT name FROM domains ORDER BY name", NULL,
	    NULL, cb, arg);
}

/* ---- users ---- */

void
store_user_clear(struct store_user *u)
{
	free(u->address);
	free(u->hash);
	memset(u, 0, sizeof(*u));
}

/*
 * UIDLs are "<epoch hex>.<uid>" with uid from users.next_uid. A user
 * deleted and re-created must never see an old UIDL again, so the epoch is
 * the creation time in microseconds, and always above every epoch still in
 * the table. (A clock stepped back by exactly the lifetime of a deleted
 * user, to the microsecond, is the remaining risk.)
 */
static int64_t
store_user_new_epoch(struct store *st)
{
	struct timespec ts;
	struct db_stmt *s;
	int64_t now, max = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	now = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	s = store_stmt(st, STMT_USER_EPOCH_MAX,
	    "SELECT coalesce(max(uid_epoch), 0) FROM users");
	if (s == NULL)
		return -1;
	if (db_step(s) == DB_ROW)
		max = db_column_int64(s, 0);
	db_reset(s);
	return now > max ? now : max + 1;
}

int
store_user_add(struct store *st, const char *address, const char *hash)
{
	struct db_stmt *s;
	struct store_user u;
	char *addr;
	int64_t domain_id, epoch;
	int rc, ret = -1;

	if (!store_addr_is_valid(address, false))
		return store_fail(st, "invalid address");
	addr = store_addr_normalize(address);
	if (store_begin(st) < 0) {
		free(addr);
		return -1;
	}
	rc = store_domain_id(st, store_addr_domain(addr), &domain_id);
	if (rc != 0) {
		if (rc == 1)
			store_fail(st, "domain not local");
		goto out;
	}
	rc = store_user_get(st, addr, &u);
	if (rc != 1) {
		if (rc == 0) {
			store_user_clear(&u);
			ret = 1;
		}
		goto out;
	}
	if ((epoch = store_user_new_epoch(st)) < 0)
		goto out;
	s = store_stmt(st, STMT_USER_ADD,
	    "INSERT INTO users(address, domain_id, hash, uid_epoch) "
	    "VALUES (?1, ?2, ?3, ?4)");
	if (s == NULL)
		goto out;
	store_bind_text(s, 1, addr);
	db_bind_int64(s, 2, domain_id);
	store_bind_text(s, 3, hash);
	db_bind_int64(s, 4, epoch);
	if (store_step_done(st, s, "user add") < 0)
		goto out;
	ret = 0;
out:
	free(addr);
	if (ret < 0)
		store_rollback(st);
	else if (store_commit(st) < 0)
		return -1;
	return ret;
}

int
store_user_get(struct store *st, const char *address, struct store_user *u)
{
	struct db_stmt *s;
	int rc;

	memset(u, 0, sizeof(*u));
	s = store_stmt(st, STMT_USER_GET,
	    "SELECT id, address, hash, quota, used, enabled FROM users "
	    "WHERE address = ?1");
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, address);
	rc = db_step(s);
	if (rc == DB_ROW) {
		u->id = db_column_int64(s, 0);
		u->address = xstrdup(db_column_text(s, 1));
		u->hash = xstrdup(db_column_text(s, 2));
		u->quota = (uint64_t)db_column_int64(s, 3);
		u->used = (uint64_t)db_column_int64(s, 4);
		u->enabled = db_column_int(s, 5) != 0;
		db_reset(s);
		return 0;
	}
	db_reset(s);
	if (rc == DB_DONE)
		return 1;
	return store_fail_db(st, rc, "user lookup");
}

/* 0 (*id_r), 1 missing, -1 error. */
int
store_user_id(struct store *st, const char *address, int64_t *id_r)
{
	return store_select_id(st, STMT_USER_ID,
	    "SELECT id FROM users WHERE address = ?1", address, "user lookup",
	    id_r);
}

int
store_user_set_hash(struct store *st, const char *address, const char *hash)
{
	struct db_stmt *s;

	s = store_stmt(st, STMT_USER_SET_HASH,
	    "UPDATE users SET hash = ?2 WHERE address = ?1");
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, address);
	store_bind_text(s, 2, hash);
	if (store_step_done(st, s, "user passwd") < 0)
		return -1;
	return db_changes(st->db) > 0 ? 0 : 1;
}

int
store_user_set_enabled(struct store *st, const char *address, bool enabled)
{
	struct db_stmt *s;

	s = store_stmt(st, STMT_USER_SET_ENABLED,
	    "UPDATE users SET enabled = ?2 WHERE address = ?1");
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, address);
	db_bind_int(s, 2, enabled ? 1 : 0);
	if (store_step_done(st, s, "user enable") < 0)
		return -1;
	return db_changes(st->db) > 0 ? 0 : 1;
}

int
store_user_set_quota(struct store *st, const char *address, uint64_t quota)
{
	struct db_stmt *s;

	if (quota > INT64_MAX)
		return store_fail(st, "quota too large");
	s = store_stmt(st, STMT_USER_SET_QUOTA,
	    "UPDATE users SET quota = ?2 WHERE address = ?1");
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, address);
	db_bind_int64(s, 2, (int64_t)quota);
	if (store_step_done(st, s, "user quota") < 0)
		return -1;
	return db_changes(st->db) > 0 ? 0 : 1;
}

int
store_user_del(struct store *st, const char *address)
{
	struct db_stmt *s;
	int64_t id;
	int rc, ret = -1;

	if (store_begin(st) < 0)
		return -1;
	rc = store_user_id(st, address, &id);
	if (rc != 0) {
		ret = rc;
		goto out;
	}
	/* Drop one body reference per mailbox row; store_gc frees later. */
	s = store_stmt(st, STMT_USER_UNREF_BODIES,
	    "UPDATE bodies SET refs = refs - (SELECT count(*) FROM mailbox m "
	    "WHERE m.user_id = ?1 AND m.body_id = bodies.id) "
	    "WHERE id IN (SELECT body_id FROM mailbox WHERE user_id = ?1)");
	if (s == NULL)
		goto out;
	db_bind_int64(s, 1, id);
	if (store_step_done(st, s, "user del") < 0)
		goto out;
	s = store_stmt(st, STMT_USER_DEL_MAILBOX,
	    "DELETE FROM mailbox WHERE user_id = ?1");
	if (s == NULL)
		goto out;
	db_bind_int64(s, 1, id);
	if (store_step_done(st, s, "user del") < 0)
		goto out;
	s = store_stmt(st, STMT_USER_DEL, "DELETE FROM users WHERE id = ?1");
	if (s == NULL)
		goto out;
	db_bind_int64(s, 1, id);
	if (store_step_done(st, s, "user del") < 0)
		goto out;
	ret = 0;
out:
	if (ret < 0)
		store_rollback(st);
	else if (store_commit(st) < 0)
		return -1;
	return ret;
}

int
store_user_list(struct store *st, store_str_cb *cb, void *arg)
{
	return store_list(st, "SELECT address FROM users ORDER BY address",
	    NULL, NULL, cb, arg);
}

/* ---- aliases ---- */

int
store_alias_add(struct store *st, const char *source, const char *dest)
{
	struct db_stmt *s;
	char *src = NULL, *dst = NULL;
	int64_t domain_id;
	int rc, ret = -1;

	if (!store_addr_is_valid(source, true))
		return store_fail(st, "invalid alias source");
	if (!store_addr_is_valid(dest, false))
		return store_fail(st, "invalid alias destination");
	src = store_addr_normalize(source);
	dst = store_addr_normalize(dest);
	rc = store_domain_id(st, store_addr_domain(src), &domain_id);
	if (rc != 0) {
		if (rc == 1)
			store_fail(st, "domain not local");
		goto out;
	}
	s = store_stmt(st, STMT_ALIAS_EXISTS,
	    "SELECT 1 FROM aliases WHERE source = ?1 AND dest = ?2");
	if (s == NULL)
		goto out;
	store_bind_text(s, 1, src);
	store_bind_text(s, 2, dst);
	rc = db_step(s);
	db_reset(s);
	if (rc == DB_ROW) {
		ret = 1;
		goto out;
	}
	if (rc != DB_DONE) {
		store_fail_db(st, rc, "alias add");
		goto out;
	}
	s = store_stmt(st, STMT_ALIAS_ADD,
	    "INSERT INTO aliases(source, dest) VALUES (?1, ?2)");
	if (s == NULL)
		goto out;
	store_bind_text(s, 1, src);
	store_bind_text(s, 2, dst);
	if (store_step_done(st, s, "alias add") < 0)
		goto out;
	ret = 0;
out:
	free(src);
	free(dst);
	return ret;
}

int
store_alias_del(struct store *st, const char *source, const char *dest)
{
	struct db_stmt *s;

	if (dest != NULL) {
		s = store_stmt(st, STMT_ALIAS_DEL_ONE,
		    "DELETE FROM aliases WHERE source = ?1 AND dest = ?2");
		if (s == NULL)
			return -1;
		store_bind_text(s, 2, dest);
	} else {
		s = store_stmt(st, STMT_ALIAS_DEL_ALL,
		    "DELETE FROM aliases WHERE source = ?1");
		if (s == NULL)
			return -1;
	}
	store_bind_text(s, 1, source);
	if (store_step_done(st, s, "alias del") < 0)
		return -1;
	return db_changes(st->db) > 0 ? 0 : 1;
}

int
store_alias_list(struct store *st, const char *source, store_alias_cb *cb,
    void *arg)
{
	if (source != NULL)
		return store_list(st, "SELECT source, dest FROM aliases "
		    "WHERE source = ?1 ORDER BY id", source, cb, NULL, arg);
	return store_list(st, "SELECT source, dest FROM aliases "
	    "ORDER BY source, id", NULL, cb, NULL, arg);
}
