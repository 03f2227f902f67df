/*
 * Inbound message checks on the MX listener: SPF (MAIL FROM / HELO),
 * DKIM verification of every signature, DMARC, run on worker threads
 * (never on the event loop) that ask the loop's resolver.
 * The result is one Authentication-Results header (RFC 8601, authserv-id
 * = [server] hostname) to prepend, and the DMARC verdict. Fields
 * "Authentication-Results" that claim our authserv-id are removed from
 * every message before, on every listener (inbound_strip, arstrip.h).
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

/*
 * RFC 8601 5: remove every Authentication-Results field whose authserv-id
 * is id (arstrip.h) from a finished message, before any check or
 * signature and whichever path it takes next (checked or exempt MX, a
 * full check pool, submission). The message is mem (*size_r bytes,
 * compacted in place) or, with mem NULL, the spool file fd (rewritten in
 * place and truncated; the caller still owns fd).
 * Returns 0 (*removed_r fields removed, *size_r the new size); 1 when the
 * header section is longer than ARSTRIP_MAX_HEADER (send 552 5.3.4;
 * nothing changed); -1 with errno on a spool I/O error (the spool may be
 * half rewritten: fail the transaction with 451).
 * Runs on the loop like the spool writes of DATA: reads at most
 * ARSTRIP_MAX_HEADER + 2 bytes, and rewrites only when it removed a field.
 */
int inbound_strip(const char *id, int fd, unsigned char *mem,
    uint64_t *size_r, unsigned *removed_r);

#endif
