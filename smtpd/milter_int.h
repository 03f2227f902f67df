/*
 * Internals shared by milter.c (one conversation: the state machine) and
 * milter_link.c (connections to milters: addresses, connecting, the pool
 * of idle ones). Not for other files: milter.h is the interface.
 */
#ifndef CARTEIRO_SMTPD_MILTER_INT_H
#define CARTEIRO_SMTPD_MILTER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "common/conn.h"
#include "smtpd/milter.h"
#include "smtpd/milter_proto.h"

struct event;

enum milter_state {
	MILTER_S_CONNECTING,
	MILTER_S_OPTNEG,
	MILTER_S_CONNECT,
	MILTER_S_HELO,
	MILTER_S_MAIL,
	MILTER_S_RCPT,
	MILTER_S_DATA,
	MILTER_S_HEADER,
	MILTER_S_EOH,
	MILTER_S_BODY,
	MILTER_S_EOM,
	MILTER_S_DONE,
	MILTER_S_COUNT
};


/*
 * One connection to a milter. While a run uses it, run is set; after a
 * clean end of body it is parked in the pool with QUIT_NC ("quit, a new
 * connection follows": libmilter and rspamd reset to before CONNECT, the
 * negotiated options stay) and the next message to the same milter takes
 * it. conn.h's callback argument is the link, which outlives its runs.
 */
struct milter_link {
	TAILQ_ENTRY(milter_link) entry;
	struct milter_pool *pool;
	struct conn *c;
	struct milter_run *run;	/* NULL while idle in the pool */
	char *spec;
	uint32_t protocol, actions;	/* negotiated */
};
TAILQ_HEAD(milter_link_list, milter_link);

struct milter_pool {
	struct event_base *base;
	struct milter_link_list idle;	/* most recently used first */
	size_t nidle;
	size_t max_idle;
	int idle_ms;
};

struct milter_run {
	struct milter_pool *pool;
	struct milter_link *link;	/* owned while the run lives */
	struct conn *c;			/* link->c */
	struct event *kick;		/* starts a reused link from the loop */
	struct sockaddr_storage ss;	/* the milter, for a fresh connect */
	socklen_t sslen;
	bool reused;		/* on a pooled link, no reply seen yet */
	/* CONTINUE answered end of body: the link may go back to the pool.
	 * Only then: libmilter after ACCEPT, REJECT or DISCARD at end of
	 * body does not take QUIT_NC (the next CONNECT goes unanswered). */
	bool eom_done;
	const struct milter_info *info;	/* borrowed */
	const struct milter_msg *msg;	/* borrowed */
	milter_done_cb *done;
	void *arg;
	char *spec;
	char sid[17];
	uint8_t state;		/* enum milter_state: the next to send */
	uint8_t await;		/* state whose reply is awaited, or DONE */
	bool waiting;		/* a reply is awaited */
	bool lowat;		/* body pump waits for the output to drain */
	bool reported;
	size_t idx;		/* RCPT or header index */
	uint64_t off;		/* body offset sent so far */
	uint32_t protocol;	/* negotiated SMFIP_* */
	struct milter_buf out;
	unsigned char *pkt;	/* the reply being handled (owned) */
	size_t pkt_cap;
	struct milter_result res;
};

/* "inet:HOST:PORT" (HOST may be [v6]) or "unix:/path". 0 / -1. */
int milter_addr(const char *spec, struct sockaddr_storage *ss,
    socklen_t *len_r);
/* A fresh connection for r (r->link, r->c; state CONNECTING). 0, or -1
 * with errno. */
int milter_connect(struct milter_run *r);
/* Out of the pool (if idle there) and closed; safe in its callback. */
void milter_link_free(struct milter_link *l);
/* An idle link to spec, taken out of the pool, or NULL. */
struct milter_link *milter_pool_take(struct milter_pool *p, const char *spec);
/* milter.c: the conn.h callback of every link (arg: the link). */
void milter_io(struct conn *c, enum conn_event ev, void *arg);

#endif
