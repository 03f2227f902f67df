/*
 * Internals shared by the relay files: relay.c (lifecycle, queue scan,
 * concurrency limits), relay_attempt.c (one SMTP attempt per message and
 * destination domain) and relay_flush.c (writing results, DSNs and
 * reschedules on the writer thread). Nothing else includes this.
 */
#ifndef CARTEIRO_RELAY_INT_H
#define CARTEIRO_RELAY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include <event2/event.h>

#include "smtpd/mta.h"
#include "store/queue.h"

#define RELAY_TICK_MS		1000	/* due-row scan (flush latency) */
#define RELAY_MAX_MSGS		200	/* messages in flight */
#define RELAY_GC_EVERY		2	/* ticks between store_gc runs */
#define RELAY_GC_BODIES		128	/* bodies freed per run: ~30 ms */

struct cfg;
struct dns;
struct notify;
struct store;
struct store_body;
struct tls_ctx;
struct workq;
struct tlsrpt_sender;
struct relay_msg;

/* One destination domain of one message: one SMTP session. */
struct relay_job {
	struct relay_msg *rm;
	char *domain;
	struct mta_rcpt *rcpts;
	size_t *qidx;			/* index into rm->q.rcpts */
	size_t n;
	struct mta_msg mm;
	struct mta_session *s;		/* NULL while waiting */
	struct store_body *body;
	bool done;
	TAILQ_ENTRY(relay_job) wait;	/* r->waiting */
};

struct relay_msg {
	struct relay *r;
	struct store_queue_msg q;
	char id[24];
	char **mx;			/* per q.rcpts: "host[ip]" that gave
					 * this attempt's reply, or NULL */
	bool *dirty;			/* per q.rcpts: result not yet stored */
	struct relay_job *jobs;
	size_t njobs, left;		/* left: sessions still running */
	char *source;			/* the sender domain's own source_ip
					 * and HELO name (store/
					 * domain_source.h), or NULL */
	char *helo;
	bool flushing;			/* on r->flushq */
	TAILQ_ENTRY(relay_msg) entry;	/* r->msgs */
	TAILQ_ENTRY(relay_msg) fentry;	/* r->flushq */
};

/*
 * The claim part of one writer batch (relay_claim.c): which messages to
 * claim, and whether to renew or drop this node's leases; the ids claimed
 * come back in ids. Several relays on one database send only what they
 * claimed (store/queue.h).
 */
struct relay_claim_req {
	bool claim;
	size_t max;			/* room for this many more */
	int64_t *skip;			/* in flight: ours already */
	size_t nskip;
	bool renew;			/* extend every lease of this node */
	int64_t *ids;			/* result: claimed, to start */
	size_t n;
};

struct relay_domain {
	char *name;
	unsigned sessions;
	/* Throttling (relay_throttle.c): limit 0 = [relay]
	 * max_connections_per_domain; else the lowered one. */
	unsigned limit;
	unsigned level;			/* back-offs in a row: the delay */
	unsigned oks;			/* successes at this limit */
	uint64_t held_until_ms;		/* no new session before */
	int64_t since;			/* first throttling reply */
	char *reason;			/* the last one */
	bool dirty;			/* its relay_throttle row to write */
	struct relay_domain *next;
};

struct relay {
	struct event_base *base;
	const struct cfg *cfg;
	struct store *st;		/* loop thread: reads only */
	struct mta_sts *sts;		/* MTA-STS policies, NULL: off */
	struct relay_monitor *monitor;	/* DNSBL self-check, NULL: off */
	struct store *wst;		/* writer thread: every write */
	const struct srs *srs;		/* borrowed (main.c), or NULL */
	/* Batch mode, one relay_batch out at a time (busy): the store
	 * writes, so that no fsync ever runs on the event loop. */
	struct workq *writer;
	bool busy;			/* a batch is out (loop only) */
	bool gc_due;
	struct notify *queue_changed;	/* borrowed, may be NULL */
	struct dns *dns;
	struct tls_ctx *tls;
	struct mta *mta;
	struct tlsrpt_sender *tlsrpt;	/* NULL: TLS-RPT off */
	struct event *tick;
	struct event *kick;
	struct event *flush;		/* batched result commit */
	struct event *flush_retry;	/* after a store error */
	bool stopping;
	unsigned ticks;
	unsigned sessions;
	size_t nmsgs;
	TAILQ_HEAD(, relay_msg) msgs;
	TAILQ_HEAD(, relay_msg) flushq;	/* results or finish to store */
	TAILQ_HEAD(, relay_job) waiting;
	struct relay_domain *domains;
	char *source;			/* [relay] source_ip, "ip,ip" or NULL */
	bool throttle_dirty;		/* some d->dirty */
	bool throttle_reset;		/* clear the table (a new relay) */
	/* Queue claims (relay_claim.c). */
	char *node;			/* claimed_by: "host:pid:start" */
	int64_t lease_s;		/* a claim lasts this long unrenewed */
	int64_t renew_at;		/* unix time of the next renewal */
	bool claim_due;			/* due mail seen: claim some */
};

/* relay.c */
/* Scan the queue at the next loop iteration. */
void relay_kick(struct relay *r);
/* The per-domain session counter; NULL if none and !create. */
struct relay_domain *relay_domain(struct relay *r, const char *name,
    bool create);
/* Forget a message in flight (aborting its sessions, no callbacks). */
void relay_msg_free(struct relay_msg *rm);
/* Load message id (claimed by this node) and start its jobs. */
void relay_msg_start(struct relay *r, int64_t id);
bool relay_is_active(struct relay *r, int64_t id);

/* relay_claim.c */
/* Start: this node's id and lease, and the claims of dead relays of this
 * host dropped (run before the writer has work). 0 or -1 (logged). */
int relay_claim_init(struct relay *r);
/* Loop: fill c for the next batch (fin: the messages the batch
 * finishes, which leave the flight). false if there is nothing to do. */
bool relay_claim_make(struct relay *r, struct relay_claim_req *c,
    struct relay_msg *const *fin, size_t nfin);
/* Writer thread: renew and claim. */
void relay_claim_run(struct relay *r, struct store *st,
    struct relay_claim_req *c);
/* Loop: start what was claimed; frees c's arrays. */
void relay_claim_apply(struct relay *r, struct relay_claim_req *c);
void relay_claim_clear(struct relay_claim_req *c);
/* Shutdown (the writer idle): drop every claim of this node, so another
 * relay takes the aborted deliveries at once. */
void relay_claim_release_all(struct relay *r);

/* relay_attempt.c */
/* Start the job's session now if the limits allow, else queue it. */
void relay_job_try_start(struct relay_job *job);
/* Start queued jobs that the limits now allow. */
void relay_start_waiting(struct relay *r);

/* relay_throttle.c */
/* May a new session to d start now (concurrency and hold)? */
bool relay_domain_can_start(struct relay *r, struct relay_domain *d);
/* A job to d ended: back off on a throttling reply, or recover a step
 * on a delivery. */
void relay_throttle_job(struct relay *r, struct relay_domain *d,
    const struct relay_job *job);

/* relay_flush.c */
/* rm has results or a finished attempt to store: queue it for the next
 * batch (and start one if the writer is idle). */
void relay_flush_add(struct relay_msg *rm);
/* Hand the next batch to the writer unless one is out already. */
void relay_flush(struct relay *r);
void relay_flush_event(evutil_socket_t fd, short what, void *arg);
/* Shutdown: store every known result before returning. */
void relay_flush_sync(struct relay *r);
/* The writer queue's batch function (arg: r). */
void relay_writer_batch(void *const *jobs, size_t n, void *arg);

#endif
