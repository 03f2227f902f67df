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
	sqlite3_stmt *s;
	int rc, ret;

	*value_r = NULL;
	rc = sqlite3_prepare_v2(st->db,
	    "SELECT value FROM settings WHERE name = ?1", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return store_fail_db(st, rc, "settings");
	store_bind_text(s, 1, name);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*value_r = xstrdup((const char *)sqlite3_column_text(s, 0));
		ret = 0;
	} else if (rc == SQLITE_DONE)
		ret = 1;
	else
		ret = store_fail_db(st, rc, "settings");
	sqlite3_finalize(s);
	return ret;
}

int
store_setting_init(struct store *st, const char *name, const char *initial,
    char **value_r)
{
	sqlite3_stmt *s;
	int rc;

	*value_r = NULL;
	/* OR IGNORE: the first writer wins, a second keeps the first's. */
	rc = sqlite3_prepare_v2(st->db,
	    "INSERT OR IGNORE INTO settings(name, value) VALUES (?1, ?2)", -1,
	    &s, NULL);
	if (rc != SQLITE_OK)
		return store_fail_db(st, rc, "settings");
	store_bind_text(s, 1, name);
	store_bind_text(s, 2, initial);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return store_fail_db(st, rc, "settings");
	rc = store_setting_get(st, name, value_r);
	if (rc == 1)
		return store_fail(st, "settings: %s vanished", name);
	return rc;
}
