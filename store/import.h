/*
 * Importing messages into a mailbox from another server's files (mbox,
 * Maildir, Dovecot) and reading a mailbox back out for export. The
 * parsing of those formats is carteiroctl's; this is the store side:
 * one message in, keyed so that a re-run adds nothing twice, keeping the
 * old server's UIDL when it is given.
 */
#ifndef CARTEIRO_STORE_IMPORT_H
#define CARTEIRO_STORE_IMPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

/* RFC 1939 7: a UIDL is 1 to 70 characters 0x21..0x7e. */
#define STORE_UIDL_MAX 70

struct store_import_msg {
	const void *data;	/* the message as RETR shall send it (CRLF) */
	size_t len;
	/* The UIDL the old server showed; NULL = a generated one. */
	const char *uidl;
	/* Identity in the source when uidl is NULL (e.g. a content hash);
	 * with a uidl the key is "uidl:<uidl>". At most 200 bytes. */
	const char *key;
	const char *mbox_from;	/* mbox "From " line text, or NULL */
	bool check_quota;	/* refuse past the quota (store_error_is_quota) */
};

/*
 * Add one message to address's mailbox (no Return-Path line: RETR sends
 * exactly data). 0 added, 1 already imported (by key, even if deleted
 * since: nothing is added and a given UIDL is never reused), -1 error:
 * an invalid UIDL, one of the generated form "<uid_epoch hex>.<n>", one
 * already in the mailbox, quota, no such user, SQLite. A unit of its own
 * inside the caller's transaction (batch them in store_begin/commit).
 */
int store_import(struct store *st, const char *address,
    const struct store_import_msg *m);

/* 1 if a message with that key (or "uidl:<uidl>" when uidl is given) was
 * imported for address before, 0 if not, -1 on error. */
int store_import_known(struct store *st, const char *address,
    const char *uidl, const char *key);

/* 0 if s is a valid UIDL (RFC 1939 7), else -1. */
int store_uidl_valid(const char *s);

/* The per-message data export needs beyond store_msg: the row's
 * Return-Path sender (NULL: none, "" = <>) and mbox "From " text (NULL:
 * none). Caller frees both. 0, 1 if the row is gone, -1 on error. */
int store_message_origin(struct store *st, int64_t mailbox_id,
    char **return_path_r, char **mbox_from_r);

#endif
