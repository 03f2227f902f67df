/* Placeholder until the PostgreSQL schema lands (wt-pgcore). */
#include "store/schema_pg.h"

size_t
store_schema_pg_migration_count(void)
{
	return 0;
}

const char *
store_schema_pg_migration(size_t version)
{
	(void)version;
	return NULL;
}
