/*
 * The outbound queue runner inside carteiro-smtpd (like OpenSMTPD's mta):
 * picks due messages from the store's queue, resolves MX on the loop,
 * delivers with the SMTP client, retries, bounces. smtpd/main.c creates
 * it with the "queue changed" signal that the delivery writer posts; no
 * other module calls into the relay.
 */
#ifndef CARTEIRO_RELAY_H
#define CARTEIRO_RELAY_H

struct event_base;
struct cfg;
struct notify;

struct relay;
struct srs;

/*
 * NULL and log on failure (e.g. cannot open the store). The relay scans
 * the queue every second and whenever queue_changed is posted (borrowed,
 * may be NULL; it must outlive the relay), and posts it itself when it
 * queues a DSN.
 */
struct relay *relay_new(struct event_base *base, const struct cfg *cfg,
    struct notify *queue_changed);
/* SIGTERM: start nothing new, store the results already known, abort
 * deliveries in flight (their recipients stay queued and are retried
 * after restart). */
void relay_shutdown(struct relay *r);
/* The SRS key (borrowed, set once before the loop runs): a DSN about a
 * forwarded copy goes to the sender behind its SRS address. Without it
 * DSNs go to the queued sender as it stands. */
void relay_set_srs(struct relay *r, const struct srs *srs);
void relay_free(struct relay *r);

#endif
