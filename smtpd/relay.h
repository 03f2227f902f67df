/*
 * The outbound queue runner inside carteiro-smtpd (like OpenSMTPD's mta):
 * picks due messages from the store's queue, resolves MX with c-ares on the
 * loop, delivers with the SMTP client, retries, bounces. smtpd/main.c
 * creates it; smtpd's delivery code calls relay_kick() after committing
 * mail with remote recipients.
 */
#ifndef CARTEIRO_RELAY_H
#define CARTEIRO_RELAY_H

struct event_base;
struct cfg;

struct relay;

/* NULL and log on failure (e.g. cannot open the store). */
struct relay *relay_new(struct event_base *base, const struct cfg *cfg);
/* New mail was queued: scan the queue now instead of at the next tick. */
void relay_kick(struct relay *r);
/* SIGTERM: start nothing new, abort deliveries in flight (their recipients
 * stay queued and are retried after restart). */
void relay_shutdown(struct relay *r);
void relay_free(struct relay *r);

#endif
