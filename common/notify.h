/*
 * A "something changed" signal on the loop thread, so that the code that
 * changes a thing need not know who cares: smtpd/main.c makes one for
 * "the outbound queue changed", the delivery writer and the relay post it
 * and the relay listens. Owns only its subscriber list.
 */
#ifndef CARTEIRO_NOTIFY_H
#define CARTEIRO_NOTIFY_H

struct notify;

typedef void notify_fn(void *arg);

struct notify *notify_new(void);
/* Accepts NULL. Subscribers need not unsubscribe first. */
void notify_free(struct notify *n);
/* fn(arg) runs on every notify_post, in subscription order. */
void notify_subscribe(struct notify *n, notify_fn *fn, void *arg);
/* Drops every subscription of fn with arg. */
void notify_unsubscribe(struct notify *n, notify_fn *fn, void *arg);
/*
 * Runs every subscriber now, inside this call (loop thread only; NULL n
 * is a no-op). Subscribers must not block or re-enter the poster: they
 * schedule their work (event_active) and return.
 */
void notify_post(struct notify *n);

#endif
