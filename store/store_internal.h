/*
 * Store internals shared by the store/ .c files (never included outside
 * store/): the connection struct, the prepared-statement cache, error and
 * transaction helpers. Only store/db.c and the SQLite-specific files include <sqlite3.h>.
 */
#ifndef CARTEIRO_STORE_INTERNAL_H
#define CARTEIRO_STORE_INTERNAL_H

#include "store/db.h"
#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

/* DB_BUSY wait inside one statement (writers queue behind each other). */
#define STORE_BUSY_TIMEOUT_MS 5000

/*
 * One slot per cached statement. The SQL text lives at the call site
 * (store_stmt(st, STMT_X, "SELECT ...")); a slot must always be used with
 * the same text (asserted). store/queue.c uses STMT_QUEUE_BASE + n, n <
 * STMT_QUEUE_SLOTS, so it never has to edit this enum.
 */
enum store_stmt_id {
	STMT_DOMAIN_ID,
	STMT_DOMAIN_ADD,
	STMT_DOMAIN_USERS,
	STMT_DOMAIN_DEL_ALIASES,
	STMT_DOMAIN_DEL,
	STMT_USER_ADD,
	STMT_USER_EPOCH_MAX,
	STMT_USER_GET,
	STMT_USER_ID,
	STMT_USER_SET_HASH,
	STMT_USER_SET_QUOTA,
	STMT_USER_SET_ENABLED,
	STMT_USER_UNREF_BODIES,
	STMT_USER_DEL_MAILBOX,
	STMT_USER_DEL,
	STMT_ALIAS_ADD,
	STMT_ALIAS_EXISTS,
	STMT_ALIAS_DEL_ONE,
	STMT_ALIAS_DEL_ALL,
	STMT_ALIAS_DESTS,
	STMT_POSTMASTER_DOMAIN,
	STMT_POSTMASTER_ANY,
	STMT_DELIVER_USER,
	STMT_DELIVER_USER_QUOTA,
	STMT_USER_EXISTS,
	STMT_BODY_INSERT,
	STMT_BODY_INSERT_INLINE,
	STMT_CHUNK_INSERT,
	STMT_MAILBOX_INSERT,
	STMT_DELIVER_PG,
	STMT_DELIVER_PG_QUOTA,
	STMT_DELIVER_FIRST_PG,
	STMT_DELIVER_FIRST_PG_QUOTA,
	STMT_QUEUE_INSERT,
	STMT_QUEUE_RCPT_INSERT,
	STMT_MAILBOX_LIST,
	STMT_MAILBOX_DEL,
	STMT_BODY_UNREF,
	STMT_USER_USED_SUB,
	STMT_GC_SELECT,
	STMT_GC_CHUNKS,
	STMT_GC_BODY,
	STMT_BODY_SIZE,
	STMT_MESSAGE_OPEN,
	STMT_CHUNK_READ,
	STMT_SENT_COUNT,
	STMT_SENT_OLDEST,
	STMT_SENT_ADD,
	STMT_SENT_PRUNE,
	STMT_MAILBOX_DEL_PG,
	STMT_TX_BEGIN,
	STMT_TX_BEGIN_READ,
	STMT_TX_COMMIT,
	STMT_TX_SAVEPOINT,
	STMT_TX_RELEASE,
	STMT_QUEUE_BASE,
#define STMT_QUEUE_SLOTS 32
	STMT_COUNT = STMT_QUEUE_BASE + STMT_QUEUE_SLOTS
};

/*
 * Bodies up to this size are stored whole in their bodies row (schema 3):
 * the row stays below SQLite's in-page limit for a 4 KB table leaf (4061
 * bytes of payload), so it never needs an overflow page.
 */
#define STORE_INLINE_MAX 3072

/* Length of "Return-Path: <" sender ">\r\n" for a sender of n bytes: the
 * line store_message_open puts before a mailbox message (mailbox.c). */
#define STORE_RETURN_PATH_LEN(n) (sizeof("Return-Path: <>\r\n") - 1 + (n))

/* What one open transaction level did (store.c), so that ending it does
 * the matching thing. */
enum store_tx_kind {
	STORE_TX_WRITE,		/* BEGIN IMMEDIATE (store_begin, outermost) */
	STORE_TX_READ,		/* BEGIN (store_read_begin, outermost) */
	STORE_TX_SAVEPOINT,	/* store_begin inside a transaction */
	STORE_TX_JOINED,	/* store_read_begin inside one: nothing */
	STORE_TX_FLAT,		/* store_begin inside one, flat units: nothing */
};
#define STORE_TX_DEPTH_MAX 16

struct store {
	struct db *db;
	struct db_stmt *stmt[STMT_COUNT];		/* lazily prepared */
	const char *stmt_sql[STMT_COUNT];	/* text each slot was made from */
	char err[256];				/* store_error() */
	bool busy;				/* last failure BUSY/LOCKED */
	bool quota;				/* last failure: over quota */
	bool full;				/* last failure: no space */
	bool gone;				/* last failure: no such row */
	int64_t last_mailbox_id;	/* id of the last mailbox row inserted */
	uint64_t page_limit;	/* STORE_TEST_PAGE_LIMIT_ENV applied, 0 none */
	unsigned char *chunk;	/* STORE_CHUNK_SIZE delivery buffer, or NULL */
	int wal_frames;		/* WAL length after our last commit (only
				 * tracked with autocheckpoint 0) */
	unsigned char tx_kind[STORE_TX_DEPTH_MAX];	/* enum store_tx_kind,
							 * outermost first */
	unsigned tx_depth;	/* open levels in tx_kind */
	/* SQLite rolled back the whole transaction under open levels: they
	 * fail (store_begin, the outermost commit) until the outermost
	 * level ends. */
	bool tx_lost;
	/* store_set_flat_units: nested write levels take no savepoint; a
	 * failed one sets tx_lost. */
	bool flat_units;
};

/*
 * The cached statement for slot id, reset and with bindings cleared; NULL
 * (error set) if it cannot be prepared. Callers db_reset() it as soon
 * as they are done stepping, so no read transaction stays open.
 */
struct db_stmt *store_stmt(struct store *st, enum store_stmt_id id,
    const char *sql);

/* Set store_error() from the connection ("what: sqlite message"); returns
 * -1. rc is the failing result code (decides store_error_is_busy and
 * store_error_is_full). */
int store_fail_db(struct store *st, int rc, const char *what);
/* Set store_error() to a plain message; returns -1. */
int store_fail(struct store *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Run SQL without results; -1 with error set. */
int store_exec(struct store *st, const char *sql);

/* The statement text for this connection's engine, where SQLite's and
 * PostgreSQL's dialects differ (store/db.h says what both accept). */
static inline const char *
store_sql(struct store *st, const char *sqlite_sql, const char *pg_sql)
{
	return db_kind(st->db) == DB_KIND_PG ? pg_sql : sqlite_sql;
}

/* Step an INSERT ... RETURNING id: *id_r from its one row, then step it to
 * its end and reset it. 0 or -1 (error set). */
int store_step_id(struct store *st, struct db_stmt *s, const char *what,
    int64_t *id_r);

/* Run a statement that returns no rows from its cached slot. */
int store_run(struct store *st, enum store_stmt_id id, const char *sql);

/* Bind helpers: text is SQLITE_STATIC (must outlive the step). */
static inline int
store_bind_text(struct db_stmt *s, int i, const char *v)
{
	return db_bind_text(s, i, v, -1);
}

/* Step a statement expected to finish without rows (INSERT/UPDATE/DELETE)
 * and reset it. 0 or -1 (error set). */
int store_step_done(struct store *st, struct db_stmt *s, const char *what);

/* Id of the user with that address: 0 (*id_r), 1 missing, -1 error. */
int store_user_id(struct store *st, const char *address, int64_t *id_r);

/* Copy of address with the domain part (after the last '@') lower-cased.
 * Caller frees. */
char *store_addr_normalize(const char *address);
/* Pointer to the domain part (after the last '@'), or NULL. */
const char *store_addr_domain(const char *address);

/* ---- PostgreSQL (store/store_pg.c) ---- */

/* The libpq connection string in a store_open locator ("postgresql://...",
 * "postgres://...", or "postgresql:" + keyword conninfo), NULL for a
 * SQLite path. */
const char *store_pg_locator(const char *locator);
struct store *store_pg_open(const char *conninfo, const char **error_r);
/* BEGIN a transaction: write (serialised with every other writer of the
 * database, as SQLite's BEGIN IMMEDIATE) or one read snapshot. */
int store_pg_begin(struct store *st, bool write);
/* ids as a PostgreSQL array literal ("{1,2,3}") for ANY(CAST(? AS
 * bigint[])): a set of rows in one statement. Caller frees. */
char *store_pg_id_array(const int64_t *ids, size_t n);
/* schema_version.version, 0 for an empty database. */
int store_pg_version(struct store *st, int *version_r);
/* This backend's migrations (store/schema.c or store/schema_pg.c). */
size_t store_migration_count(struct store *st);
const char *store_migration(struct store *st, size_t version);

#endif
