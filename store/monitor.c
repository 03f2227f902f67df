/*
 * The monitor_listing table (monitor.h). Rare statements: prepared per
 * call.
 */
#include "store/monitor.h"
#include "store/store_internal.h"

int
store_monitor_listed(struct store *st, const char *ip, const char *zone,
    int64_t since, const char *reason)
{
	sqlite3_stmt *s;
	int rc;

	rc = sqlite3_prepare_v2(st->db, "INSERT OR IGNORE INTO "
	    "monitor_listing(ip, zone, since, reason) VALUES (?1, ?2, ?3, ?4)",
	    -1, &s, NULL);
	if (rc != SQLITE_OK)
		return store_fail_db(st, rc, "monitor_listing");
	store_bind_text(s, 1, ip);
	store_bind_text(s, 2, zone);
	sqlite3_bind_int64(s, 3, since);
	store_bind_text(s, 4, reason);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return store_fail_db(st, rc, "monitor_listing");
	return sqlite3_changes(st->db) > 0 ? 0 : 1;
}

int
store_monitor_clear(struct store *st, const char *ip, const char *zone)
{
	sqlite3_stmt *s;
	int rc;

	rc = sqlite3_prepare_v2(st->db, "DELETE FROM monitor_listing WHERE "
	    "ip = ?1 AND zone = ?2", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return store_fail_db(st, rc, "monitor_listing");
	store_bind_text(s, 1, ip);
	store_bind_text(s, 2, zone);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return store_fail_db(st, rc, "monitor_listing");
	return sqlite3_changes(st->db) > 0 ? 0 : 1;
}
