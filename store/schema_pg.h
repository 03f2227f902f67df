/* PostgreSQL schema migrations (store/schema_pg.c). */
#ifndef CARTEIRO_STORE_SCHEMA_PG_H
#define CARTEIRO_STORE_SCHEMA_PG_H

#include <stddef.h>

size_t store_schema_pg_migration_count(void);
const char *store_schema_pg_migration(size_t version);

#endif
