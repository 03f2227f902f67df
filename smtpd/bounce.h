/*
 * Delivery status notifications (RFC 3464 multipart/report): "failed"
 * bounces and "delayed" warnings from MAILER-DAEMON@hostname, with the
 * remote server's exact reply per recipient and the original message's
 * headers (text/rfc822-headers). bounce_send delivers one to the sender's
 * local mailbox or queues it with the null sender; never for a message
 * that itself has the null sender (no bounce loops).
 */
#ifndef CARTEIRO_BOUNCE_H
#define CARTEIRO_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;
struct store_queue_msg;

/* RFC 3461 RET=FULL returns a message up to this size whole; a larger one
 * gets its headers (the DSN is built in memory). */
#define BOUNCE_FULL_MAX	(1024 * 1024)

enum bounce_kind {
	BOUNCE_FAILED,		/* Action: failed */
	BOUNCE_DELAYED,		/* Action: delayed (still retrying) */
	BOUNCE_RELAYED,		/* Action: relayed, to a next hop without
				 * DSN (RFC 3461 NOTIFY=SUCCESS) */
	BOUNCE_DELIVERED,	/* Action: delivered, to a local mailbox
				 * (RFC 3461 NOTIFY=SUCCESS) */
};

struct bounce_rcpt {
	const char *address;
	const char *reply;	/* "550 5.1.1 ..." (ours or the remote's);
				 * NULL for a local delivery */
	const char *remote_mta;	/* "mx.example.com[1.2.3.4]" or NULL */
	const char *orcpt;	/* RFC 3461 ORCPT "type;xtext" or NULL */
};

struct bounce_info {
	enum bounce_kind kind;
	const char *hostname;	/* ours: Reporting-MTA, From domain */
	const char *mail_from;	/* original sender (To: of the DSN) */
	int64_t queue_id;
	int64_t arrival;	/* unix time the message was queued */
	int64_t retry_until;	/* DELAYED: when we give up */
	const struct bounce_rcpt *rcpts;
	size_t nrcpts;
	const char *headers;	/* original header block, CRLF, or NULL */
	size_t headers_len;
	bool utf8;		/* original needed SMTPUTF8: RFC 6533 types
				 * (message/global-delivery-status and
				 * message/global-headers) */
	const char *envid;	/* RFC 3461 ENVID xtext or NULL */
	/* RET=FULL on a failure: the whole message (instead of headers),
	 * or NULL; full_cut: it was too large, headers are sent instead */
	const char *full;
	size_t full_len;
	bool full_cut;
};

/*
 * The most of the original message a DSN quotes: its header section, cut
 * at a line end. A DSN goes to a sender nobody verified (backscatter), so
 * it must not carry an attacker's payload back out.
 */
#define BOUNCE_QUOTE_MAX	(16 * 1024)

/* Bytes of buf (len bytes, the start of a message) that a DSN quotes:
 * the header lines up to, not including, the empty line, at most
 * BOUNCE_QUOTE_MAX and ending in CRLF; 0 for none. */
size_t bounce_quote_len(const char *buf, size_t len);

/* The DSN text (CRLF lines); bi->headers is bounded by bounce_quote_len.
 * Caller frees; *len_r its length. */
char *bounce_build(const struct bounce_info *bi, size_t *len_r);

/* The RFC 3463 status of a reply ("5.1.1"), into buf (>= 16 bytes):
 * the enhanced code if the reply carries one of the right class, else
 * "5.0.0" / "4.0.0". */
const char *bounce_status(const char *reply, char *buf, size_t size);

/*
 * Build and deliver the DSN about message m for rcpts. Reads m's headers
 * from the store (the whole message for a failure with RET=FULL, up to
 * BOUNCE_FULL_MAX bytes; m->id 0: not a queued message, no queue id in
 * the report). The sender is resolved with store_resolve: local ->
 * its mailboxes, remote -> queued with sender <> (is_bounce). Runs inside
 * the caller's transaction if one is open (the relay marks the recipients
 * bounced in the same one). Returns 0 when delivered/queued, 1 when no
 * DSN is owed or possible (null sender, bounce, unknown local sender),
 * -1 on store error.
 */
int bounce_send(struct store *st, const char *hostname,
    const char *postmaster, const struct store_queue_msg *m, enum bounce_kind kind,
    int64_t retry_until, const struct bounce_rcpt *rcpts, size_t n);

#endif
