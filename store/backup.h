/*
 * Backing up a running store: one consistent snapshot of the database into
 * a new file (SQLite's online backup API), the row counts a manifest
 * records, and the lock file that tells carteiroctl restore whether a
 * daemon has the store open. The backup directory, its manifest and the
 * DKIM keys are carteiroctl's (tools/ctl_backup.c).
 */
#ifndef CARTEIRO_STORE_BACKUP_H
#define CARTEIRO_STORE_BACKUP_H

#include <stdint.h>

struct store;

/* What a database holds, for the manifest and for checking a restore. */
struct store_counts {
	int schema;		/* PRAGMA user_version */
	int64_t domains, users, aliases;
	int64_t messages;	/* mailbox rows */
	int64_t bodies;
	int64_t queue;		/* queue rows */
};

/*
 * Copy st's database into dest, a file that must not exist yet, in one
 * sqlite3_backup_step(-1): one read transaction on st, so the copy is the
 * state of one commit while writers (smtpd, pop3d) go on in the WAL. The
 * copy is a rollback-journal database, fsynced, mode 0600; *counts_r
 * describes the copy. 0, or -1 with store_error(st) set (dest removed).
 */
int store_backup(struct store *st, const char *dest,
    struct store_counts *counts_r);

/* Counts of an open store (one read snapshot). 0 / -1. */
int store_counts(struct store *st, struct store_counts *counts_r);

/*
 * The daemons' claim on a store: "<db_path>.lock" (mode 0644, empty),
 * held with a shared flock(2) for as long as the process lives (the fd is
 * kept open and inherited across fork). 0, or -1 with *error_r (static).
 */
int store_daemon_lock(const char *db_path, const char **error_r);
/* 1 if a process holds "<db_path>.lock" (a daemon runs on that store), 0
 * if not (or there is no lock file), -1 if that cannot be told (errno). */
int store_daemon_running(const char *db_path);

#endif
