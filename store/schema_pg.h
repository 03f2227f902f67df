/*
 * The PostgreSQL schema migrations (store-internal), versioned on their
 * own: PostgreSQL migration 1 holds what SQLite schema 10 holds.
 *
 * The version lives in table schema_version (one row, created by
 * migration 1; no table = version 0). A runner applies migration v and
 * records it in one transaction, serialized against other nodes:
 *   BEGIN; SELECT pg_advisory_xact_lock(STORE_SCHEMA_PG_LOCK);
 *   (read the version again; skip if already >= v)
 *   <store_schema_pg_migration(v)>;
 *   UPDATE schema_version SET version = v; COMMIT;
 * Current version: SELECT version FROM schema_version, when
 * to_regclass('schema_version') IS NOT NULL.
 */
#ifndef CARTEIRO_SCHEMA_PG_H
#define CARTEIRO_SCHEMA_PG_H

#include <stddef.h>

/* pg_advisory_xact_lock key that serializes migrations across nodes. */
#define STORE_SCHEMA_PG_LOCK 0x63617274	/* "cart" */

/* Number of migrations = current PostgreSQL schema version. */
size_t store_schema_pg_migration_count(void);
/* SQL taking the schema from version-1 to version, or NULL. */
const char *store_schema_pg_migration(size_t version);

#endif
