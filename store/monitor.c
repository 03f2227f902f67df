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
	struct db_stmt *s;
	int rc;

	rc = db_prepare(st->db, "INSERT INTO "
	    "monitor_listing(ip, zone, since, reason) VALUES (?1, ?2, ?3, ?4) "
	    "ON CONFLICT DO NOTHING", false, &s);
	if (rc != DB_OK)
		return store_fail_db(st, rc, "monitor_listing");
	store_bind_text(s, 1, ip);
	store_bind_text(s, 2, zone);
	db_bind_int64(s, 3, since);
	store_bind_text(s, 4, reason);
	rc = db_step(s);
	db_finalize(s);
	if (rc != DB_DONE)
		return store_fail_db(st, rc, "monitor_listing");
	return db_changes(st->db) > 0 ? 0 : 1;
}

int
store_monitor_clear(struct store *st, const char *ip, const char *zone)
{
	struct db_stmt *s;
	int rc;

	rc = db_prepare(st->db, "DELETE FROM monitor_listing WHERE "
	    "ip = ?1 AND zone = ?2", false, &s);
	if (rc != DB_OK)
		return store_fail_db(st, rc, "monitor_listing");
	store_bind_text(s, 1, ip);
	store_bind_text(s, 2, zone);
	rc = db_step(s);
	db_finalize(s);
	if (rc != DB_DONE)
		return store_fail_db(st, rc, "monitor_listing");
	return db_changes(st->db) > 0 ? 0 : 1;
}
