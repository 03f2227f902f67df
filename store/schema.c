/*
 * The database schema as forward migrations. Migration N (1-based) takes the
 * schema from version N-1 to N; store_migrate() applies the missing ones in
 * one transaction each and records the version in PRAGMA user_version.
 * Never edit a released migration: append a new one.
 */
#include "store/schema.h"

#include <stddef.h>

static const char *const store_schema_migrations[] = {
	/* 1: domains, users, aliases, single-instance bodies, mailboxes,
	 *    outbound queue, send accounting. */
	"CREATE TABLE domains ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE COLLATE NOCASE"	/* A-label, lower case */
	");"
	"CREATE TABLE users ("
	"  id INTEGER PRIMARY KEY,"
	"  address TEXT NOT NULL UNIQUE COLLATE NOCASE,"
	"  domain_id INTEGER NOT NULL REFERENCES domains(id),"
	"  hash TEXT NOT NULL,"			/* argon2id crypto_pwhash_str */
	"  quota INTEGER NOT NULL DEFAULT 0,"		/* bytes, 0 = unlimited */
	"  used INTEGER NOT NULL DEFAULT 0,"		/* bytes in the mailbox */
	"  enabled INTEGER NOT NULL DEFAULT 1,"
	"  next_uid INTEGER NOT NULL DEFAULT 1,"	/* never decreases */
	"  uid_epoch INTEGER NOT NULL DEFAULT 0"	/* creation time: UIDL prefix */
	");"
	"CREATE TABLE aliases ("
	"  id INTEGER PRIMARY KEY,"
	"  source TEXT NOT NULL COLLATE NOCASE,"	/* addr or @domain catch-all */
	"  dest TEXT NOT NULL COLLATE NOCASE,"
	"  UNIQUE (source, dest)"
	");"
	"CREATE TABLE bodies ("
	"  id INTEGER PRIMARY KEY,"
	"  size INTEGER NOT NULL,"			/* bytes, CRLF line ends */
	"  refs INTEGER NOT NULL,"			/* mailbox rows + queue rows */
	"  created INTEGER NOT NULL"
	");"
	"CREATE TABLE body_chunks ("
	"  body_id INTEGER NOT NULL,"
	"  seq INTEGER NOT NULL,"			/* 0, 1, ... */
	"  data BLOB NOT NULL,"				/* <= STORE_CHUNK_SIZE bytes */
	"  PRIMARY KEY (body_id, seq)"
	") WITHOUT ROWID;"
	"CREATE TABLE mailbox ("
	"  id INTEGER PRIMARY KEY,"
	"  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	"  uidl TEXT NOT NULL,"			/* unique per user, never reused */
	"  body_id INTEGER NOT NULL REFERENCES bodies(id),"
	"  size INTEGER NOT NULL,"
	"  arrived INTEGER NOT NULL,"
	"  flags INTEGER NOT NULL DEFAULT 0,"
	"  UNIQUE (user_id, uidl)"
	");"
	"CREATE INDEX mailbox_user ON mailbox(user_id, id);"
	"CREATE TABLE queue ("
	"  id INTEGER PRIMARY KEY,"
	"  mail_from TEXT NOT NULL,"			/* '' = null sender <> */
	"  body_id INTEGER NOT NULL REFERENCES bodies(id),"
	"  auth_user TEXT,"				/* submitter, NULL for bounces */
	"  created INTEGER NOT NULL,"
	"  next_attempt INTEGER NOT NULL,"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  warned INTEGER NOT NULL DEFAULT 0,"		/* delay notice sent */
	"  smtputf8 INTEGER NOT NULL DEFAULT 0,"	/* message needs SMTPUTF8 */
	"  is_bounce INTEGER NOT NULL DEFAULT 0"
	");"
	"CREATE INDEX queue_next ON queue(next_attempt);"
	"CREATE TABLE queue_rcpt ("
	"  id INTEGER PRIMARY KEY,"
	"  queue_id INTEGER NOT NULL REFERENCES queue(id) ON DELETE CASCADE,"
	"  address TEXT NOT NULL,"
	"  domain TEXT NOT NULL COLLATE NOCASE,"
	"  status INTEGER NOT NULL DEFAULT 0,"		/* enum store_rcpt_status */
	"  last_error TEXT,"
	"  updated INTEGER"
	");"
	"CREATE INDEX queue_rcpt_queue ON queue_rcpt(queue_id);"
	"CREATE TABLE send_log ("
	"  id INTEGER PRIMARY KEY,"
	"  user TEXT NOT NULL COLLATE NOCASE,"
	"  at INTEGER NOT NULL,"
	"  count INTEGER NOT NULL"			/* remote recipients */
	");"
	"CREATE INDEX send_log_user ON send_log(user, at);",

	/* 2: indexes the store needs to stay fast as mail accumulates:
	 *    store_gc finds unreferenced bodies without a table scan, and
	 *    deleting a body checks the mailbox/queue foreign keys through
	 *    an index instead of scanning both tables once per body. */
	"CREATE INDEX bodies_unref ON bodies(id) WHERE refs <= 0;"
	"CREATE INDEX mailbox_body ON mailbox(body_id);"
	"CREATE INDEX queue_body ON queue(body_id);",

	/* 3: a small body lives in its bodies row (data), not in a chunk
	 *    row: a body_chunks row over about 1000 bytes spills to an
	 *    overflow page (WITHOUT ROWID), so a 1 KB message dirtied three
	 *    pages (chunk leaf, overflow, the database size in page 1) on
	 *    top of the bodies leaf; now it dirties only that leaf. NULL
	 *    for bodies kept in chunks, as every body before this version. */
	"ALTER TABLE bodies ADD COLUMN data BLOB;",

	/* 4: the envelope sender is a column, not bytes of the body. Up to
	 *    schema 3 smtpd stored "Return-Path: <sender>\r\n" as the first
	 *    line of the (shared) body and the relay skipped it again.
	 *    mailbox.return_path: the sender RETR shows in its first line
	 *    ('' = <>, NULL = no Return-Path line). bodies.data_offset:
	 *    bytes at the start of the stored body that readers skip (such
	 *    an old line), so shared, chunked bodies are not rewritten. The
	 *    line is taken apart only where putting it back together
	 *    ("Return-Path: <" sender ">" CRLF) gives the same bytes: RETR of
	 *    an old message stays byte for byte what it was. */
	"ALTER TABLE mailbox ADD COLUMN return_path TEXT;"
	"ALTER TABLE bodies ADD COLUMN data_offset INTEGER NOT NULL "
	"  DEFAULT 0;"
	"CREATE TEMP TABLE store_m4 AS"
	"  SELECT id, head, instr(head, x'0d0a') AS eol FROM ("
	"    SELECT b.id AS id, substr(coalesce(b.data, (SELECT c.data FROM"
	"      body_chunks c WHERE c.body_id = b.id AND c.seq = 0)), 1, 4096)"
	"      AS head FROM bodies b)"
	"  WHERE substr(head, 1, 14) = CAST('Return-Path: <' AS BLOB);"
	"DELETE FROM temp.store_m4 WHERE eol < 16 OR"
	"  substr(head, eol - 1, 1) != x'3e' OR"
	"  instr(substr(head, 15, eol - 16), x'00') > 0;"
	"UPDATE bodies SET data_offset = (SELECT t.eol + 1 FROM temp.store_m4 t"
	"  WHERE t.id = bodies.id) WHERE id IN (SELECT id FROM temp.store_m4);"
	"UPDATE mailbox SET return_path = (SELECT CAST(substr(t.head, 15,"
	"  t.eol - 16) AS TEXT) FROM temp.store_m4 t WHERE t.id ="
	"  mailbox.body_id) WHERE body_id IN (SELECT id FROM temp.store_m4);"
	"DROP TABLE temp.store_m4;",

	/* 5: values the server generates once and keeps (store/settings.h),
	 *    such as the SRS secret (smtpd/forward.c). */
	"CREATE TABLE settings ("
	"  name TEXT PRIMARY KEY,"
	"  value TEXT NOT NULL"
	") WITHOUT ROWID;",

	/* 6: RFC 3461 DSN parameters of queued mail, kept to pass them on
	 *    and to honour them in our own notices. queue.dsn_ret: 0 none,
	 *    1 FULL, 2 HDRS; queue.dsn_envid: the ENVID xtext as received.
	 *    queue_rcpt.dsn_notify: NOTIFY bits (1 NEVER, 2 SUCCESS,
	 *    4 FAILURE, 8 DELAY; 0 none); queue_rcpt.dsn_orcpt: the ORCPT
	 *    value "addr-type;xtext" as received. (smtpd/dsn.h) */
	"ALTER TABLE queue ADD COLUMN dsn_ret INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE queue ADD COLUMN dsn_envid TEXT;"
	"ALTER TABLE queue_rcpt ADD COLUMN dsn_notify INTEGER NOT NULL "
	"  DEFAULT 0;"
	"ALTER TABLE queue_rcpt ADD COLUMN dsn_orcpt TEXT;",

	/* 7: data safety and migration (issue 14).
	 *    mailbox.first_retrieved: unix time of the first whole RETR,
	 *    recorded at QUIT; NULL = never retrieved, never expired.
	 *    mailbox.mbox_from: an mbox import's "From " line (after
	 *    "From "), so mailbox export --mbox gives it back; NULL for
	 *    mail that came over SMTP. users.expire: [pop3d] expire for
	 *    this user in seconds, -1 = never, NULL = the server's.
	 *    imported: every message ever imported per user, by key
	 *    ("uidl:<UIDL>" when the source gave a UIDL, else a content
	 *    hash), so a re-run adds nothing twice and a given UIDL is
	 *    never handed out again after its message is deleted. */
	"ALTER TABLE mailbox ADD COLUMN first_retrieved INTEGER;"
	"ALTER TABLE mailbox ADD COLUMN mbox_from TEXT;"
	"ALTER TABLE users ADD COLUMN expire INTEGER;"
	"CREATE INDEX mailbox_retrieved ON mailbox(first_retrieved)"
	"  WHERE first_retrieved IS NOT NULL;"
	"CREATE TABLE imported ("
	"  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	"  key TEXT NOT NULL,"
	"  uidl TEXT NOT NULL,"
	"  at INTEGER NOT NULL,"
	"  PRIMARY KEY (user_id, key)"
	") WITHOUT ROWID;",

	/* 8: outbound reputation (issue 16). suppress: recipients that
	 *    hard-bounced (or an admin added), refused at RCPT until
	 *    created + [relay] suppress_days; reason is the remote reply.
	 *    relay_throttle: destinations that answered with throttling
	 *    replies, as the relay sees them now (concurrency it allows
	 *    itself, held until; written by the relay for carteiroctl).
	 *    domains.source_ip / helo: a local domain's own outbound
	 *    address and HELO name (NULL: [relay] source_ip, hostname). */
	"CREATE TABLE suppress ("
	"  address TEXT PRIMARY KEY COLLATE NOCASE,"
	"  created INTEGER NOT NULL,"
	"  reason TEXT NOT NULL,"
	"  origin TEXT NOT NULL"		/* 'bounce' or 'admin' */
	") WITHOUT ROWID;"
	"CREATE TABLE relay_throttle ("
	"  domain TEXT PRIMARY KEY COLLATE NOCASE,"
	"  concurrency INTEGER NOT NULL,"
	"  held_until INTEGER NOT NULL,"
	"  since INTEGER NOT NULL,"
	"  reason TEXT NOT NULL"
	") WITHOUT ROWID;"
	"ALTER TABLE domains ADD COLUMN source_ip TEXT;"
	"ALTER TABLE domains ADD COLUMN helo TEXT;",

	/* 9: MTA-STS policies of destination domains (RFC 8461, issue 16
	 *    item 1), as the relay last fetched them: the id of the TXT
	 *    record it came with, the policy file, when it was fetched and
	 *    until when it may be used (fetched + max_age), unix time. */
	"CREATE TABLE mta_sts ("
	"  domain TEXT PRIMARY KEY COLLATE NOCASE,"
	"  id TEXT NOT NULL,"
	"  policy TEXT NOT NULL,"
	"  fetched INTEGER NOT NULL,"
	"  expires INTEGER NOT NULL"
	") WITHOUT ROWID;",

	/* 10: DNSBL listings of our own outbound addresses (issue 16 item
	 *     7) the postmaster was told of, until seen clean again. */
	"CREATE TABLE monitor_listing ("
	"  ip TEXT NOT NULL,"
	"  zone TEXT NOT NULL COLLATE NOCASE,"
	"  since INTEGER NOT NULL,"
	"  reason TEXT NOT NULL,"
	"  PRIMARY KEY (ip, zone)"
	") WITHOUT ROWID;",

	/* 11: a covering index for store_mailbox_list (the login's listing):
	 *     every column it reads, so a mailbox spread over the table is
	 *     read from the index alone, not one table page per message
	 *     (bench/README.md bench/curve). It starts with (user_id, id), so
	 *     it replaces mailbox_user for every other query too. */
	"CREATE INDEX mailbox_list ON mailbox(user_id, id, body_id, size,"
	"  arrived, uidl);"
	"DROP INDEX mailbox_user;",

	/* 12: queue claims (issue 18 item 3). A relay that takes a message
	 *     sets claimed_by (its node id, "host:pid:start") and
	 *     lease_until (unix time); no other relay takes it before the
	 *     lease ends. Reschedule and delete clear the claim. */
	("ALTER TABLE queue ADD COLUMN claimed_by TEXT;"
	"ALTER TABLE queue ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;"),
};

size_t
store_schema_migration_count(void)
{
	return sizeof(store_schema_migrations) /
	    sizeof(store_schema_migrations[0]);
}

const char *
store_schema_migration(size_t version)
{
	if (version < 1 || version > store_schema_migration_count())
		return NULL;
	return store_schema_migrations[version - 1];
}
