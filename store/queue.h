/*
 * The outbound queue as the relay and carteiroctl see it: due messages,
 * per-recipient status, rescheduling, deletion, listing. Rows are written
 * by store_deliver()/store_deliver_mem() (store.h); this file owns every
 * other statement on the queue and queue_rcpt tables. Each call is one
 * short statement or one short transaction (the relay runs on the event
 * loop); a call made inside store_begin()/store_commit() joins it (the
 * relay wraps each finished message in a nested store_begin: a unit that
 * fails is undone alone).
 */
#ifndef CARTEIRO_STORE_QUEUE_H
#define CARTEIRO_STORE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

/* queue_rcpt.status. Values are stored: never renumber. */
enum store_queue_rcpt_status {
	/* not delivered yet (last_error: why) */
	STORE_QUEUE_RCPT_PENDING = 0,
	/* the remote server took it (2xx) */
	STORE_QUEUE_RCPT_DELIVERED = 1,
	/* permanent failure, DSN still owed */
	STORE_QUEUE_RCPT_FAILED = 2,
	/* permanent failure, DSN created or none owed (null sender) */
	STORE_QUEUE_RCPT_BOUNCED = 3,
	/* the remote server took it (2xx) but does not offer DSN, and
	 * NOTIFY asked for SUCCESS: our "relayed" DSN is still owed (RFC
	 * 3461 5.2.2); DELIVERED once it is created */
	STORE_QUEUE_RCPT_RELAYED = 4,
	STORE_QUEUE_RCPT_STATUS_COUNT
};

/* "pending", "delivered", "failed", "bounced", "relayed" (static). */
const char *store_queue_rcpt_status_str(int status);

struct store_queue_rcpt {
	int64_t id;
	char *address;
	char *domain;
	int status;			/* enum store_queue_rcpt_status */
	char *last_error;		/* NULL if none */
	int64_t updated;		/* unix time, 0 if never */
	unsigned dsn_notify;		/* RFC 3461 NOTIFY bits (smtpd/dsn.h),
					 * 0 if none */
	char *dsn_orcpt;		/* ORCPT "type;xtext" or NULL */
};

struct store_queue_msg {
	int64_t id;
	char *mail_from;		/* "" for <> */
	int64_t body_id;
	char *auth_user;		/* NULL for bounces */
	int64_t created;		/* unix time */
	int64_t next_attempt;
	unsigned attempts;
	bool warned;			/* delay DSN sent */
	bool smtputf8;
	bool is_bounce;
	int dsn_ret;			/* RFC 3461 RET (smtpd/dsn.h), 0 none */
	char *dsn_envid;		/* ENVID xtext or NULL */
	char *claimed_by;		/* the relay sending it, NULL: none */
	int64_t lease_until;		/* its claim holds until (unix time) */
	/* every recipient, in insertion order */
	struct store_queue_rcpt *rcpts;
	size_t nrcpts;
};
/* Frees what store_queue_load filled; accepts a zeroed struct. */
void store_queue_msg_clear(struct store_queue_msg *m);

/*
 * Ids of messages whose next_attempt <= now, earliest first, at most max.
 * Caller frees *ids_r (may be NULL when *n_r == 0).
 */
int store_queue_due(struct store *st, int64_t now, size_t max, int64_t **ids_r,
    size_t *n_r);
/*
 * Claims (several relays on one database, store/queue_claim.c): a relay
 * sends only messages it has claimed, and a claim holds until
 * lease_until (unix time) unless renewed; reschedule and delete clear it.
 *
 * In one write transaction: the due messages (next_attempt <= now) that
 * are unclaimed, whose lease ended, or that owner claimed before, earliest
 * first, skipping the nskip ids in skip (those owner has in flight), at
 * most max of them, get claimed_by = owner and lease_until. PostgreSQL
 * picks them FOR UPDATE SKIP LOCKED. Caller frees *ids_r.
 */
int store_queue_claim(struct store *st, int64_t now, int64_t lease_until,
    const char *owner, size_t max, const int64_t *skip, size_t nskip,
    int64_t **ids_r, size_t *n_r);
/* Every claim of owner lasts until lease_until; *n_r (may be NULL) = how
 * many. */
int store_queue_renew(struct store *st, const char *owner,
    int64_t lease_until, size_t *n_r);
/* Clear owner's claims (every one when id < 0, else message id only);
 * *n_r (may be NULL) = how many. */
int store_queue_release(struct store *st, const char *owner, int64_t id,
    size_t *n_r);
/* The distinct claimed_by values of the queue. Caller frees each and the
 * array. */
int store_queue_claimers(struct store *st, char ***owners_r, size_t *n_r);

/* Every message id, oldest first. Caller frees *ids_r. */
int store_queue_ids(struct store *st, int64_t **ids_r, size_t *n_r);
/* Load one message with all its recipients. 1: no such message. */
int store_queue_load(struct store *st, int64_t id, struct store_queue_msg *m);

/* Set one recipient's status and last_error (NULL keeps the old text);
 * durable when it returns unless inside a caller's transaction. */
int store_queue_rcpt_set(struct store *st, int64_t rcpt_id,
    enum store_queue_rcpt_status status, const char *error, int64_t now);
/* After an attempt: attempts and next_attempt. */
int store_queue_reschedule(struct store *st, int64_t id, int64_t next_attempt,
    unsigned attempts);
int store_queue_set_warned(struct store *st, int64_t id);
/* Remove a message and its recipients and drop its body reference (the
 * body itself goes in store_gc). 1: no such message. */
int store_queue_delete(struct store *st, int64_t id);
/* next_attempt = now for every message; *n_r (may be NULL) = how many. */
int store_queue_flush(struct store *st, int64_t now, size_t *n_r);

/* /metrics: messages in the queue and the creation time of the oldest
 * (0 when empty). 0 / -1. */
int store_queue_stats(struct store *st, int64_t *n_r, int64_t *oldest_r);

#endif
