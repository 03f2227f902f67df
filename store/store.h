/*
 * The store: every SQL statement of carteiro lives under store/; nothing
 * outside includes <sqlite3.h>. One struct store is one SQLite connection
 * (WAL, synchronous=FULL, busy timeout, cached prepared statements); use one
 * per thread. Returns follow STYLE.md: 0 ok, -1 error (*error_r or
 * store_error()), 1 "not found"/"already exists" where documented.
 * Addresses and domains are compared case-insensitively; callers pass
 * domains as A-labels (IDN conversion happens before the store).
 */
#ifndef CARTEIRO_STORE_H
#define CARTEIRO_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define STORE_CHUNK_SIZE (64 * 1024)

struct store;

/* Open (creating the file if needed). Does not migrate. NULL and *error_r
 * (static string) on failure. */
struct store *store_open(const char *path, const char **error_r);
void store_close(struct store *st);
/* Whether store_open(locator) talks to a database server (PostgreSQL):
 * each statement is then a network round trip, which a daemon keeps off
 * its event loop. */
bool store_locator_is_server(const char *locator);
/* Last error text of this connection (borrowed). */
const char *store_error(struct store *st);
/* 1 if the last failure was SQLITE_BUSY/LOCKED (temporary). */
bool store_error_is_busy(struct store *st);
/* The last failure was a store_deliver refused for quota (check_quota). */
bool store_error_is_quota(struct store *st);
/*
 * The last failure was a lack of space: the database or its WAL could not
 * grow (SQLITE_FULL, which is also what ENOSPC on a write becomes; an I/O
 * error whose errno is ENOSPC or EDQUOT; the page limit). Temporary: SMTP
 * answers 452 4.3.1. Like every failed write it has left nothing behind.
 */
bool store_error_is_full(struct store *st);
/* The last failure was a row that no longer exists (store_message_open of
 * a message another session has deleted meanwhile): permanent. */
bool store_error_is_gone(struct store *st);
/*
 * Tests only: the environment variable STORE_TEST_PAGE_LIMIT_ENV names a
 * file holding a page limit for every connection (PRAGMA max_page_count;
 * missing, empty or 0 = none), read at store_open and again at the start
 * of every write transaction, so that a test can fill a daemon's store to
 * the limit and lift it without a restart (the pragma is per connection).
 */
#define STORE_TEST_PAGE_LIMIT_ENV "CARTEIRO_TEST_MAX_PAGE_COUNT"

/* Bring the schema to the newest version (idempotent). */
int store_migrate(struct store *st);
/* Current schema version (PRAGMA user_version), -1 on error. */
int store_schema_version(struct store *st);
/* 0 when the schema is current, -1 otherwise (daemons refuse to start). */
int store_check_schema(struct store *st);

/*
 * Transactions, one vocabulary for every caller. store_begin opens a
 * write transaction (BEGIN IMMEDIATE); called inside one it opens a
 * nested unit (a SAVEPOINT) instead. store_commit ends the innermost
 * level (COMMIT, or RELEASE for a unit); store_rollback undoes just the
 * innermost level (the whole transaction at the outermost). A writer
 * waits up to 5000 ms (busy_timeout) for another writer's lock, then
 * fails with store_error_is_busy() true. A failed commit has already
 * rolled back. The functions below that change several rows (user/domain
 * del, mailbox delete, gc, deliver, queue delete) are such a unit of
 * their own: inside a caller's transaction (group commit) a failed one
 * leaves nothing behind and does not take the others down.
 */
int store_begin(struct store *st);
int store_commit(struct store *st);
void store_rollback(struct store *st);
/* End a unit by its outcome: ret != 0 rolls back and returns ret; 0
 * commits and returns 0, or -1 when the commit fails. */
int store_end(struct store *st, int ret);
/* One read snapshot over several lookups (BEGIN DEFERRED ... COMMIT):
 * one WAL read lock and one consistent view instead of one per statement.
 * Inside a transaction it joins that one. Pairs with store_read_end. */
int store_read_begin(struct store *st);
void store_read_end(struct store *st);
/*
 * Nested units without savepoints, for a caller that redoes a whole
 * transaction when one unit fails (the delivery writer's group commit).
 * On PostgreSQL each SAVEPOINT and RELEASE is a round trip to the server
 * and a subtransaction in it; with flat units a nested store_begin and
 * its commit cost nothing, and a unit that fails loses the whole
 * transaction instead: until the outermost level ends, store_begin fails
 * and the outermost store_commit rolls back and returns -1 (store_error()
 * still says what failed first). On SQLite a savepoint is a few
 * microseconds in process, so this stays off there. Returns whether flat
 * units are now in effect.
 */
bool store_set_flat_units(struct store *st, bool on);
/* true between store_begin and store_commit/rollback. */
bool store_in_transaction(struct store *st);
/* Change the busy wait (default 5000 ms; 0 = fail at once, for tests). */
void store_set_busy_timeout(struct store *st, int ms);
/* Automatic WAL checkpoints when this connection commits: after `pages`
 * WAL pages, 0 = never (SQLite's default is 1000). */
void store_set_autocheckpoint(struct store *st, int pages);
/* One PASSIVE checkpoint: copies what it can from the WAL into the
 * database without waiting for (or blocking) readers and writers. */
int store_checkpoint(struct store *st);
/* Frames in the WAL after this connection's last commit, as SQLite
 * reported it (connections with autocheckpoint 0 only; reset by
 * store_checkpoint). */
int store_wal_frames(struct store *st);

/* ---- domains ---- */
int store_domain_add(struct store *st, const char *domain);	/* 1: exists */
/* 1: missing; -1 if users remain (error says so). Also drops the aliases
 * whose source is in that domain. */
int store_domain_del(struct store *st, const char *domain);
/* 1 local, 0 not local, -1 error. */
int store_domain_is_local(struct store *st, const char *domain);
typedef void store_str_cb(const char *s, void *arg);
int store_domain_list(struct store *st, store_str_cb *cb, void *arg);

/* ---- users ---- */
struct store_user {
	int64_t id;
	char *address;
	char *hash;
	uint64_t quota;		/* bytes, 0 = unlimited */
	uint64_t used;		/* bytes currently in the mailbox */
	bool enabled;
};
void store_user_clear(struct store_user *u);

/* 1: exists; -1 with error "domain not local" if the domain isn't ours. */
int store_user_add(struct store *st, const char *address, const char *hash);
int store_user_set_hash(struct store *st, const char *address, const char *hash);	/* 1: missing */
int store_user_set_quota(struct store *st, const char *address, uint64_t quota);
/* A disabled user cannot log in (POP3, SMTP AUTH: AUTH_FAIL like a wrong
 * password); mail for the address keeps arriving. 0, 1 = no such user. */
int store_user_set_enabled(struct store *st, const char *address,
    bool enabled);	/* 1: missing */
/* Deletes the user's mailbox too (bodies' refs dropped). 1: missing. */
int store_user_del(struct store *st, const char *address);
/* 1: missing. Fills *u (store_user_clear frees). */
int store_user_get(struct store *st, const char *address, struct store_user *u);
int store_user_list(struct store *st, store_str_cb *cb, void *arg);

/* ---- aliases ---- */
/* source "user@dom" or "@dom" (catch-all); dest a full address. 1: exists. */
int store_alias_add(struct store *st, const char *source, const char *dest);
/* dest NULL: every dest of source. 1: missing. */
int store_alias_del(struct store *st, const char *source, const char *dest);
typedef void store_alias_cb(const char *source, const char *dest, void *arg);
/* source NULL: all aliases. */
int store_alias_list(struct store *st, const char *source, store_alias_cb *cb,
    void *arg);

/*
 * Resolve a recipient address for delivery: an explicit user or alias beats
 * the catch-all; aliases expand recursively (depth limit 8, loops cut);
 * "postmaster@<local domain>" and bare "postmaster" go to postmaster (the
 * [server] postmaster address, may be NULL) unless an alias says otherwise.
 * Precedence for one address: its own alias (which replaces the mailbox of
 * a user with the same address; list the address among the destinations
 * to keep a copy), then the user, then (postmaster@ only) the configured
 * postmaster, then the "@domain" catch-all, then (postmaster only, RFC
 * 5321 4.5.1: always accepted) the oldest user of the domain, or of the
 * whole store for bare "postmaster" and a domain without users. Reaching
 * an address already on
 * the current expansion chain stops there: a user gets the mail, anything
 * else is dropped. Local addresses come back as stored (users.address).
 * Results:
 *   STORE_RCPT_LOCAL   nlocal + nremote >= 1: *local_r has the local user
 *                      addresses (deduplicated), *remote_r the remote
 *                      addresses aliases point at (deduplicated). NOTE:
 *                      nlocal may be 0 (an alias that only forwards).
 *   STORE_RCPT_NOUSER  domain is local but nobody has that address
 *   STORE_RCPT_REMOTE  the domain is not local
 * Caller frees with store_rcpt_free_list. -1 on error.
 */
enum store_rcpt_kind {
	STORE_RCPT_LOCAL,
	STORE_RCPT_NOUSER,
	STORE_RCPT_REMOTE,
};
int store_resolve(struct store *st, const char *address, const char *postmaster,
    enum store_rcpt_kind *kind_r, char ***local_r, size_t *nlocal_r,
    char ***remote_r, size_t *nremote_r);
/* store_resolve, and *full_r: whether a local user it reached is at or
 * over a quota (the RCPT-time check, without asking for each user again). */
int store_resolve_quota(struct store *st, const char *address,
    const char *postmaster, enum store_rcpt_kind *kind_r, char ***local_r,
    size_t *nlocal_r, char ***remote_r, size_t *nremote_r, bool *full_r);
void store_rcpt_free_list(char **list, size_t n);

/* ---- delivery ---- */
/*
 * One accepted message: prefix (per-message header lines carteiro adds,
 * e.g. Received, CRLF ends) followed by the spooled data read from fd at
 * offset 0 for data_size bytes (pread; the fd's offset is not used). The
 * body is stored once, in STORE_CHUNK_SIZE chunks, never whole in memory;
 * one mailbox row per local user (its own UIDL, return_path = mail_from,
 * size = the Return-Path line store_message_open adds + prefix_len +
 * data_size) and, if nremote > 0, one queue row with a queue_rcpt per
 * remote address, next_attempt = now. The envelope sender is a column of
 * those rows, never bytes of the body. The body's refs equal nlocal +
 * (nremote ? 1 : 0).
 * Does not BEGIN/COMMIT: the caller wraps one or more deliveries in
 * store_begin/store_commit (group commit). -1 on error: the caller must
 * roll back the whole transaction. (Each delivery runs in a nested unit, so
 * a failed one leaves no partial rows; called outside a transaction it
 * commits on its own.) A local address that is no longer a user fails.
 * body_id_r / queue_id_r may be NULL; *queue_id_r is 0 without a queue row.
 * Quota is not checked here (the caller compares store_user.used + size).
 */
struct store_delivery {
	const char *prefix;
	size_t prefix_len;
	int fd;
	uint64_t data_size;
	/* Envelope sender, "" for <>. NULL: the mailbox rows get no
	 * Return-Path line (imported mail, test fixtures); a queue row
	 * stores "". */
	const char *mail_from;
	/* The queue row's sender when it differs (SRS for forwarded
	 * copies), or NULL: mail_from. */
	const char *queue_mail_from;
	const char *const *local;	/* local user addresses */
	size_t nlocal;
	const char *const *remote;	/* remote recipient addresses */
	size_t nremote;
	const char *auth_user;		/* submitter or NULL */
	bool smtputf8;
	bool is_bounce;
	/* RFC 3461, stored as given (values: smtpd/dsn.h, schema 5): the
	 * MAIL's RET (0 none) and ENVID (NULL none); per remote[i] NOTIFY
	 * bits and ORCPT (either array NULL: none for every recipient). */
	int dsn_ret;
	const char *dsn_envid;
	const unsigned *remote_notify;
	const char *const *remote_orcpt;
	/* Refuse, leaving nothing behind, when a local recipient would pass
	 * its quota: -1 with store_error_is_quota() true. */
	bool check_quota;
	/* The UIDL of the one local recipient's row (imports keeping the
	 * old server's UIDLs, store/import.c); NULL = the next generated
	 * "<epoch hex>.<uid>". */
	const char *uidl;
};
int store_deliver(struct store *st, const struct store_delivery *d,
    int64_t *body_id_r, int64_t *queue_id_r);

/* Same, but the body comes from memory (bounces, tests). */
int store_deliver_mem(struct store *st, const struct store_delivery *d,
    const void *data, size_t len, int64_t *body_id_r, int64_t *queue_id_r);

/* ---- mailboxes (POP3) ---- */
struct store_msg {
	int64_t id;		/* mailbox row id */
	int64_t body_id;
	uint64_t size;		/* bytes as RETR sends them (CRLF), unstuffed */
	int64_t arrived;	/* unix time */
	char uidl[72];		/* printable, no spaces, <= 70 (RFC 1939 7) */
};
/* Snapshot of a user's mailbox in arrival order. Caller frees *msgs_r.
 * 1: no such user. */
int store_mailbox_list(struct store *st, const char *address,
    struct store_msg **msgs_r, size_t *n_r);
/*
 * Remove the given mailbox rows of that user in one short transaction (rows
 * another session already removed are skipped). Bodies whose refs drop to
 * 0 are freed later by store_gc, so the write lock is held only briefly.
 * *deleted_r: rows actually removed.
 */
int store_mailbox_delete(struct store *st, const char *address,
    const int64_t *ids, size_t n, size_t *deleted_r);
/* Free up to max_bodies unreferenced bodies (their chunks). *freed_r may be
 * NULL. Run it often with a small max to keep each write short; 0 frees
 * nothing. */
int store_gc(struct store *st, unsigned max_bodies, unsigned *freed_r);

/* Reading a message or a body in chunks (each read is a short statement,
 * no long transaction is held). */
struct store_body;
/*
 * Mailbox row mailbox_id (store_msg.id) as POP3 RETR sends it, before
 * dot-stuffing: "Return-Path: <sender>\r\n" (RFC 5321 4.4; none when the
 * row has no sender) followed by the body. *size_r = its length, which
 * is the row's store_msg.size. NULL if the row is gone (store_error says
 * so) or on error. Close with store_body_close.
 */
struct store_body *store_message_open(struct store *st, int64_t mailbox_id,
    uint64_t *size_r);
/* A stored body as the relay sends it and carteiroctl shows it: prefix
 * and data, never a Return-Path line (a body written before schema 4 has
 * its old one skipped, bodies.data_offset). NULL if missing (then
 * store_error says so) or on error. */
struct store_body *store_body_open(struct store *st, int64_t body_id,
    uint64_t *size_r);
/* Copy up to len bytes from offset into buf; returns bytes (0 at end) or -1. */
ssize_t store_body_read(struct store_body *b, uint64_t offset, void *buf,
    size_t len);
void store_body_close(struct store_body *b);

/* ---- sending accounting (daily_send_limit) ---- */
/* Remote recipients user sent since `since` (unix time). -1 on error. */
int64_t store_sent_count(struct store *st, const char *user, int64_t since);
/* Oldest entry time still inside the window (when capacity frees up),
 * 0 if none. */
int64_t store_sent_oldest(struct store *st, const char *user, int64_t since);
int store_sent_add(struct store *st, const char *user, int64_t at,
    unsigned count);

#endif
