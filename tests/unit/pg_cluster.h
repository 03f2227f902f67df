/*
 * A private PostgreSQL cluster for unit tests (scripts/pgcluster: initdb +
 * pg_ctl of Debian's postgresql package, as "nobody" when run as root, on
 * a free loopback port, removed at exit). With CARTEIRO_PG_CLUSTER=DIR (a
 * running pgcluster, e.g. one scripts/test started) the tests make fresh
 * databases there instead. No initdb: the test fails and says so (no
 * skip). Header-only: each test executable includes it once.
 */
#ifndef CARTEIRO_PG_CLUSTER_H
#define CARTEIRO_PG_CLUSTER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/db.h"
#include "store/db_pg.h"
#include "store/schema_pg.h"
#include "common/util.h"

/* Not every test uses every helper. */
#pragma GCC diagnostic ignored "-Wunused-function"

static char t_script[512];
static char t_cluster[256];	/* the pgcluster DIR */
static bool t_own_cluster;	/* started here: stop at the end */

/* scripts/pgcluster ARGS: its first output line (a connection string),
 * or exit(1) with what went wrong. Caller frees. */
static char *
t_pgcluster(const char *args)
{
	char cmd[1024], line[1024];
	FILE *p;
	size_t n;

	snprintf(cmd, sizeof(cmd), "'%s' %s", t_script, args);
	if ((p = popen(cmd, "r")) == NULL) {
		perror("popen");
		exit(1);
	}
	if (fgets(line, sizeof(line), p) == NULL)
		line[0] = '\0';
	if (pclose(p) != 0 || line[0] == '\0') {
		fprintf(stderr, "FAIL: %s failed: no PostgreSQL cluster for "
		    "this test (scripts/pgcluster needs initdb and pg_ctl: "
		    "Debian package postgresql, see scripts/deps)\n", cmd);
		exit(1);
	}
	n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return xstrdup(line);
}

/* scripts/pgcluster CMD DIR on this test's cluster (restart, halt,
 * resume): 0, or -1 with a message. */
static int
t_pgcluster_cmd(const char *cmd)
{
	char buf[1024];

	snprintf(buf, sizeof(buf), "'%s' %s '%s'", t_script, cmd, t_cluster);
	if (system(buf) != 0) {
		fprintf(stderr, "%s failed\n", buf);
		return -1;
	}
	return 0;
}

/* A new empty database; its connection string (caller frees). */
static char *
t_newdb(const char *name)
{
	char args[512];

	snprintf(args, sizeof(args), "createdb '%s' %s_%d", t_cluster, name,
	    (int)getpid());
	return t_pgcluster(args);
}

static struct db_pg *
t_open(const char *url)
{
	const char *err = NULL;
	struct db_pg *db = pg_open(url, &err);

	if (db == NULL) {
		fprintf(stderr, "FAIL: pg_open: %s\n", err);
		exit(1);
	}
	return db;
}

/* Run sql (no parameters) and return column 0 of its first row as int64;
 * INT64_MIN when it fails or returns no row. */
static int64_t
t_int(struct db_pg *db, const char *sql)
{
	struct db_pg_stmt *s;
	int64_t v = INT64_MIN;

	if (pg_prepare(db, sql, false, &s) != DB_OK)
		return v;
	if (pg_step(s) == DB_ROW)
		v = pg_column_int64(s, 0);
	else
		fprintf(stderr, "t_int(%s): %s\n", sql, pg_errmsg(db));
	pg_finalize(s);
	return v;
}

/* Column 0 of the first row as text; caller frees; NULL for none. */
static char *
t_text(struct db_pg *db, const char *sql)
{
	struct db_pg_stmt *s;
	char *v = NULL;

	if (pg_prepare(db, sql, false, &s) != DB_OK)
		return NULL;
	if (pg_step(s) == DB_ROW && pg_column_text(s, 0) != NULL)
		v = xstrdup(pg_column_text(s, 0));
	pg_finalize(s);
	return v;
}

/* Apply every migration as a runner would (schema_pg.h). */
static int
t_migrate(struct db_pg *db)
{
	char sql[128];
	size_t v;

	for (v = 1; v <= store_schema_pg_migration_count(); v++) {
		snprintf(sql, sizeof(sql), "BEGIN; SELECT "
		    "pg_advisory_xact_lock(%d)", STORE_SCHEMA_PG_LOCK);
		if (pg_exec(db, sql) != DB_OK ||
		    pg_exec(db, store_schema_pg_migration(v)) != DB_OK)
			return -1;
		snprintf(sql, sizeof(sql), "UPDATE schema_version SET "
		    "version = %zu; COMMIT", v);
		if (pg_exec(db, sql) != DB_OK)
			return -1;
	}
	return 0;
}

static void
t_cleanup(void)
{
	char cmd[1024];

	if (!t_own_cluster)
		return;
	snprintf(cmd, sizeof(cmd), "'%s' stop '%s'", t_script, t_cluster);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: %s failed\n", cmd);
	*strrchr(t_cluster, '/') = '\0';
	rmdir(t_cluster);
}

/* meson's timeout sends SIGTERM: the cluster goes too (once it has
 * started: stopping it halfway through its start would leave it). */
static volatile sig_atomic_t t_starting, t_stop_signal;

static void
t_on_signal(int sig)
{
	if (t_starting) {
		t_stop_signal = sig;
		return;
	}
	t_cleanup();
	_exit(128 + sig);
}

/*
 * Start the private cluster (or use $CARTEIRO_PG_CLUSTER's) for this test
 * executable; it is stopped and removed at exit, and on SIGTERM/SIGINT
 * (meson's timeout). Exits 1 with a message when there is none.
 */
static void
t_pg_setup(void)
{
	const char *src = getenv("CARTEIRO_SRC");
	const char *shared = getenv("CARTEIRO_PG_CLUSTER");
	const char *tmp = getenv("TMPDIR");
	char args[512];

	snprintf(t_script, sizeof(t_script), "%s/scripts/pgcluster",
	    src != NULL ? src : "..");
	if (shared != NULL && *shared != '\0') {
		snprintf(t_cluster, sizeof(t_cluster), "%s", shared);
		return;
	}
	snprintf(t_cluster, sizeof(t_cluster), "%s/carteiro-pg-XXXXXX",
	    tmp != NULL ? tmp : "/tmp");
	if (mkdtemp(t_cluster) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
	chmod(t_cluster, 0755);	/* the server user goes inside */
	strcat(t_cluster, "/c");
	t_own_cluster = true;
	atexit(t_cleanup);
	signal(SIGTERM, t_on_signal);
	signal(SIGINT, t_on_signal);
	snprintf(args, sizeof(args), "start '%s'", t_cluster);
	t_starting = 1;
	free(t_pgcluster(args));
	t_starting = 0;
	if (t_stop_signal != 0)
		t_on_signal(t_stop_signal);
}

#endif
