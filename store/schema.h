/* The schema migrations (store-internal). */
#ifndef CARTEIRO_SCHEMA_H
#define CARTEIRO_SCHEMA_H

#include <stddef.h>

/* Number of migrations = current schema version. */
size_t store_schema_migration_count(void);
/* SQL taking the schema from version-1 to version, or NULL. */
const char *store_schema_migration(size_t version);

#endif
