/*
 * The outbound queue as the relay and carteiroctl see it: due messages,
 * per-recipient status, rescheduling, deletion, listing. Rows are written
 * by store_deliver()/store_deliver_mem() (store.h); this file owns every
 * other statement on the queue and queue_rcpt tables. Each call is one
 * short statement or one short transaction (the relay runs on the event
 * loop); a call made inside store_begin()/store_commit() joins it.
 */
#ifndef CARTEIRO_STORE_QUEUE_H
#define CARTEIRO_STORE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

/* queue_rcpt.status. Values are stored: never renumber. */
enum queue_rcpt_status {
	QUEUE_RCPT_PENDING = 0,		/* not delivered yet (last_error: why) */
	QUEUE_RCPT_DELIVERED = 1,	/* the remote server took it (2xx) */
	QUEUE_RCPT_FAILED = 2,		/* permanent failure, DSN still owed */
	QUEUE_RCPT_BOUNCED = 3,		/* permanent failure, DSN created or
					 * none owed (null sender) */
	QUEUE_RCPT_STATUS_COUNT
};

/* "pending", "delivered", "failed", "bounced" (static). */
const char *queue_rcpt_status_str(int status);

struct queue_rcpt {
	int64_t id;
	char *address;
	char *domain;
	int status;			/* enum queue_rcpt_status */
	char *last_error;		/* NULL if none */
	int64_t updated;		/* unix time, 0 if never */
};

struct queue_msg {
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
	struct queue_rcpt *rcpts;	/* every recipient, in insertion order */
	size_t nrcpts;
};
/* Frees what queue_load filled; accepts a zeroed struct. */
void queue_msg_clear(struct queue_msg *m);

/*
 * Ids of messages whose next_attempt <= now, earliest first, at most max.
 * Caller frees *ids_r (may be NULL when *n_r == 0).
 */
int queue_due(struct store *st, int64_t now, size_t max, int64_t **ids_r,
    size_t *n_r);
/* Every message id, oldest first. Caller frees *ids_r. */
int queue_ids(struct store *st, int64_t **ids_r, size_t *n_r);
/* Load one message with all its recipients. 1: no such message. */
int queue_load(struct store *st, int64_t id, struct queue_msg *m);

/* Set one recipient's status and last_error (NULL keeps the old text);
 * durable when it returns unless inside a caller's transaction. */
int queue_rcpt_set(struct store *st, int64_t rcpt_id,
    enum queue_rcpt_status status, const char *error, int64_t now);
/* After an attempt: attempts and next_attempt. */
int queue_reschedule(struct store *st, int64_t id, int64_t next_attempt,
    unsigned attempts);
int queue_set_warned(struct store *st, int64_t id);
/* Remove a message and its recipients and drop its body reference (the
 * body itself goes in store_gc). 1: no such message. */
int queue_delete(struct store *st, int64_t id);
/*
 * A unit inside the caller's transaction (SAVEPOINT), or its own
 * transaction when none is open: queue_unit_end(ok = false) undoes just
 * this unit. For the relay's batched commits (one message's DSN and
 * reschedule must not take the others down with it).
 */
int queue_unit_begin(struct store *st, bool *outer_r);
int queue_unit_end(struct store *st, bool outer, bool ok);
/* next_attempt = now for every message; *n_r (may be NULL) = how many. */
int queue_flush(struct store *st, int64_t now, size_t *n_r);

#endif
