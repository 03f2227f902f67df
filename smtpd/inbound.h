/*
 * Inbound message checks on the MX listener: SPF (MAIL FROM / HELO),
 * DKIM verification of every signature, DMARC, run on worker threads
 * (never on the event loop) that ask the loop's resolver.
 * The result is one Authentication-Results header (RFC 8601, authserv-id
 * = [server] hostname) to prepend, and the DMARC verdict. Fields
 * "Authentication-Results" that claim our authserv-id are removed from
 * the message first (a replacement spool file is handed back).
 */
#ifndef CARTEIRO_INBOUND_H
#define CARTEIRO_INBOUND_H

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct cfg;
struct dns;
struct inbound;

struct inbound_req {
	const char *ip;
	const char *helo;
	const char *mail_from;		/* "" for <> */
	int spool_fd;			/* read with pread from 0; not closed */
	const unsigned char *mem;	/* or, with spool_fd -1, the message
					 * in memory (copied) */
	uint64_t data_size;
};

struct inbound_result {
	char *headers;		/* CRLF-terminated header lines to prepend */
	bool reject;		/* DMARC p=reject failed: 550 5.7.1 */
	const char *reject_text;	/* static */
	int spool_fd;		/* -1, or a replacement spool: the callback
				 * takes it (set -1) or it is closed */
	uint64_t data_size;	/* of the replacement */
	const char *summary;	/* "spf=pass dkim=pass dmarc=pass", static
				 * buffer inside the result, for logs */
	char summary_buf[160];
};

/* res is valid during the call only. */
typedef void inbound_done_cb(uint64_t token, struct inbound_result *res,
    void *arg);

/* dns: the loop's resolver (borrowed, outlives the struct inbound; made
 * on the same base); NULL: every check is a temperror. */
struct inbound *inbound_new(struct event_base *base, const struct cfg *cfg,
    struct dns *dns);
/* After the loop stopped: waiting lookups fail, the workers are joined. */
void inbound_free(struct inbound *in);
/* Token, or 0 when the pool is full (then accept without checks). */
uint64_t inbound_submit(struct inbound *in, const struct inbound_req *req,
    inbound_done_cb *cb, void *arg);
/* The callback will not run. */
void inbound_cancel(struct inbound *in, uint64_t token);

#endif
