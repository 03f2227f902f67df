/*
 * domains.source_ip / domains.helo (domain_source.h). Read once per
 * queued message by the relay, written by carteiroctl: prepared per call.
 */
#include "store/domain_source.h"
#include "store/store_internal.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

int
store_domain_source_set(struct store *st, const char *domain,
    const char *which, const char *value)
{
	struct db_stmt *s;
	int rc;

	if (strcmp(which, "source_ip") != 0 && strcmp(which, "helo") != 0)
		return store_fail(st, "domain source: no column %s", which);
	rc = db_prepare(st->db, strcmp(which, "helo") == 0 ?
	    "UPDATE domains SET helo = ?2 WHERE name = ?1" :
	    "UPDATE domains SET source_ip = ?2 WHERE name = ?1", false, &s);
	if (rc != DB_OK)
		return store_fail_db(st, rc, "domains");
	store_bind_text(s, 1, domain);
	if (value != NULL && value[0] != '\0')
		store_bind_text(s, 2, value);
	else
		db_bind_null(s, 2);
	rc = db_step(s);
	db_finalize(s);
	if (rc != DB_DONE)
		return store_fail_db(st, rc, "domains");
	return db_changes(st->db) > 0 ? 0 : 1;
}

static char *
store_domain_source_col(struct db_stmt *s, int i)
{
	const char *v = db_column_text(s, i);

	return v != NULL ? xstrdup((const char *)v) : NULL;
}

int
store_domain_source_get(struct store *st, const char *domain,
    struct store_domain_source *row_r)
{
	struct db_stmt *s;
	int rc, ret;

	memset(row_r, 0, sizeof(*row_r));
	rc = db_prepare(st->db, "SELECT name, source_ip, helo FROM "
	    "domains WHERE name = ?1", false, &s);
	if (rc != DB_OK)
		return store_fail_db(st, rc, "domains");
	store_bind_text(s, 1, domain);
	rc = db_step(s);
	if (rc == DB_ROW) {
		row_r->domain = store_domain_source_col(s, 0);
		row_r->source_ip = store_domain_source_col(s, 1);
		row_r->helo = store_domain_source_col(s, 2);
		ret = 0;
	} else if (rc == DB_DONE)
		ret = 1;
	else
		ret = store_fail_db(st, rc, "domains");
	db_finalize(s);
	return ret;
}

void
store_domain_source_clear(struct store_domain_source *row)
{
	free(row->domain);
	free(row->source_ip);
	free(row->helo);
	memset(row, 0, sizeof(*row));
}

int
store_domain_source_ips(struct store *st, char ***ips_r, size_t *n_r)
{
	struct db_stmt *s;
	char **ips = NULL, *list, *ip, *save;
	size_t n = 0, i;
	bool dup;
	int rc;

	*ips_r = NULL;
	*n_r = 0;
	rc = db_prepare(st->db, "SELECT source_ip FROM domains WHERE "
	    "source_ip IS NOT NULL AND source_ip != ''", false, &s);
	if (rc != DB_OK)
		return store_fail_db(st, rc, "domains");
	while ((rc = db_step(s)) == DB_ROW) {
		list = store_domain_source_col(s, 0);
		for (ip = strtok_r(list, ",", &save); ip != NULL;
		    ip = strtok_r(NULL, ",", &save)) {
			for (dup = false, i = 0; i < n && !dup; i++)
				dup = strcmp(ips[i], ip) == 0;
			if (dup)
				continue;
			ips = xrealloc(ips, (n + 1) * sizeof(*ips));
			ips[n++] = xstrdup(ip);
		}
		free(list);
	}
	db_finalize(s);
	if (rc != DB_DONE) {
		for (i = 0; i < n; i++)
			free(ips[i]);
		free(ips);
		return store_fail_db(st, rc, "domains");
	}
	*ips_r = ips;
	*n_r = n;
	return 0;
}
