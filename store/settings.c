/*
 * The settings table (settings.h): get, and insert-if-absent. Read at
 * startup only, so the statements are not cached in store's slots.
 */
#include "store/settings.h"
#include "store/store_internal.h"

#include "common/util.h"

int
store_setting_get(struct store *st, const char *name, char **value_r)
{
	struct db_stmt *s;
	int rc, ret;

	*value_r = NULL;
	rc = db_prepare(st->db, "SELECT value FROM settings WHERE name = ?1", false, &s);
	if (rc != DB_OK)
		return store_fail_db(st, rc, "settings");
	store_bind_text(s, 1, name);
	rc = db_step(s);
	if (rc == DB_ROW) {
		*value_r = xstrdup(db_column_text(s, 0));
		ret = 0;
	} else if (rc == DB_DONE)
		ret = 1;
	else
		ret = store_fail_db(st, rc, "settings");
	db_finalize(s);
	return ret;
}

int
store_setting_init(struct store *st, const char *name, const char *initial,
    char **value_r)
{
	struct db_stmt *s;
	int rc;

	*value_r = NULL;
	/* DO NOTHING: the first writer wins, a second keeps the first's. */
	rc = db_prepare(st->db, "INSERT INTO settings(name, value) "
	    "VALUES (?1, ?2) ON CONFLICT DO NOTHING", false, &s);
	if (rc != DB_OK)
		return store_fail_db(st, rc, "settings");
	store_bind_text(s, 1, name);
	store_bind_text(s, 2, initial);
	rc = db_step(s);
	db_finalize(s);
	if (rc != DB_DONE)
		return store_fail_db(st, rc, "settings");
	rc = store_setting_get(st, name, value_r);
	if (rc == 1)
		return store_fail(st, "settings: %s vanished", name);
	return rc;
}
