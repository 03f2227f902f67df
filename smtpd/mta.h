/*
 * The SMTP client of the outbound relay: one struct mta_session delivers
 * one message to the recipients of one destination domain. It resolves the
 * MX hosts (or uses the smarthost), walks hosts and their addresses in
 * order until one takes the transaction, and speaks EHLO/HELO, STARTTLS
 * (opportunistic; required for a smarthost), AUTH (smarthost), PIPELINING,
 * SIZE, 8BITMIME, SMTPUTF8, DSN (parameters passed on), and streams the dot-stuffed body from a read
 * callback driven by the write-low-water event. It knows nothing about the
 * queue: results go back per recipient through callbacks (relay.c).
 */
#ifndef CARTEIRO_MTA_H
#define CARTEIRO_MTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct event_base;
struct dns;
struct tls_ctx;
struct mta;
struct mta_session;
struct mta_sts;

/* Shared settings; strings are copied by mta_new. */
struct mta_params {
	struct event_base *base;
	struct dns *dns;		/* borrowed, outlives the struct mta */
	struct tls_ctx *tls;		/* client context, NULL: no STARTTLS */
	const char *helo;		/* our hostname for EHLO */
	unsigned port;			/* MX port (25) */
	const char *smarthost;		/* "host:port" or NULL: MX delivery */
	const char *auth_user;		/* smarthost AUTH, NULL: none */
	const char *auth_pass;		/* wiped by mta_free */
	/*
	 * Deadlines (RFC 5321 4.5.3.2 defaults when 0). Each runs from the
	 * start of its phase and is not pushed back by the bytes that
	 * arrive, so a server trickling a continuation line at a time
	 * cannot hold a session (the idle timeout alone could be).
	 */
	int connect_timeout_ms;		/* TCP connect; 0: 30 s */
	int greeting_timeout_ms;	/* the whole 220 greeting; 0: 300 s */
	int reply_timeout_ms;		/* each command's reply (EHLO,
					 * STARTTLS with its handshake, AUTH,
					 * MAIL, RCPT, QUIT); 0: 300 s */
	int data_init_timeout_ms;	/* the reply to DATA; 0: 120 s */
	int block_timeout_ms;		/* each block of the body to drain;
					 * 0: 180 s */
	int data_timeout_ms;		/* after the final dot; 0: 600 s */
	/* Connection reuse: transactions per connection (0 or 1: none),
	 * its age limit (0: 300 s), idle connections kept at most
	 * (0: 100), each for at most idle_ms (0: 2 s). */
	unsigned max_msgs_per_conn;
	int reuse_time_ms;
	size_t idle_max;
	int idle_ms;
	/* MTA-STS policies (smtpd/mta_sts.h), borrowed; NULL: off (and
	 * always off through a smarthost). */
	struct mta_sts *sts;
	struct tlsrpt *tlsrpt;		/* TLS-RPT counts, borrowed; NULL */
};

struct mta *mta_new(const struct mta_params *p);
/* Aborts every session still running (no callbacks) and frees. */
void mta_free(struct mta *m);
/* Sessions started and not yet freed (running or saying QUIT). */
size_t mta_session_count(struct mta *m);

enum mta_result {
	MTA_UNSET,		/* no final answer yet (internal) */
	MTA_OK,			/* 2xx after DATA: delivered */
	MTA_TEMP,		/* retry later */
	MTA_PERM,		/* bounce */
};

struct mta_rcpt {
	const char *address;	/* borrowed from the caller */
	/* Filled by the session before the rcpt callback: */
	enum mta_result result;
	char *reply;		/* the reply text ("550 5.1.1 ...", lines
				 * joined by spaces) or our own description
				 * in the same form; owned by the session */
	bool remote;		/* reply came from the remote server */
	char *mx;		/* "host[ip]" that answered, or NULL */
	bool dsn_passed;	/* that server offers DSN (RFC 3461): it got
				 * NOTIFY/ORCPT and owes the notices now */
	/* Set by the caller: RFC 3461 NOTIFY bits (smtpd/dsn.h, 0 none)
	 * and ORCPT ("type;xtext", borrowed, or NULL), sent on to a server
	 * that offers DSN. */
	unsigned dsn_notify;
	const char *dsn_orcpt;
};

/* Body source: copy up to len bytes from offset; bytes, 0 at end, -1. */
typedef ssize_t mta_read_fn(void *arg, uint64_t offset, void *buf,
    size_t len);

struct mta_msg {
	const char *id;		/* for logs ("42") */
	const char *domain;	/* destination (A-label) */
	const char *mail_from;	/* "" for <> */
	bool smtputf8;		/* needs SMTPUTF8 */
	int dsn_ret;		/* RFC 3461 RET (smtpd/dsn.h), 0 none */
	const char *dsn_envid;	/* ENVID xtext or NULL */
	uint64_t size;		/* body bytes (for SIZE) */
	mta_read_fn *read;
	void *read_arg;
	struct mta_rcpt *rcpts;	/* borrowed; results written into it */
	size_t nrcpts;
	/* The sender's outbound identity: local addresses to bind, at most
	 * one IPv4 and one IPv6 ("192.0.2.1,2001:db8::1", NULL: the
	 * system's choice), and the EHLO name (NULL: mta_params.helo). A
	 * connection is only reused for the same pair. */
	const char *source;
	const char *helo;
};

/*
 * rcpt_cb runs as soon as a recipient's result for this attempt is final
 * (OK right after the final reply to DATA, so the caller can make it
 * durable at once). done_cb runs once, after every recipient has a result;
 * the session and its reply strings are freed when done_cb returns (the
 * connection may linger a moment to say QUIT; mta_free reaps it).
 * Neither callback may call mta_session_abort on its own session.
 */
typedef void mta_rcpt_cb(struct mta_session *s, struct mta_rcpt *r,
    void *arg);
typedef void mta_done_cb(struct mta_session *s, void *arg);

/* msg and its rcpts must stay valid until done_cb or abort. Never calls a
 * callback before returning. */
struct mta_session *mta_session_start(struct mta *m, struct mta_msg *msg,
    mta_rcpt_cb *rcpt_cb, mta_done_cb *done_cb, void *arg);
/* Stop now (shutdown, message deleted): no more callbacks. */
void mta_session_abort(struct mta_session *s);

/* Dot-stuffing and line-end repair for the body (exposed for tests):
 * feeds in[0..len) and appends the wire form to out (capacity >= 2*len+2);
 * returns bytes written. *state carries line position across calls;
 * start it at 0, and call mta_stuff_end at the end. */
size_t mta_stuff(unsigned *state, const unsigned char *in, size_t len,
    unsigned char *out);
/* Terminating bytes (CRLF if needed, then ".\r\n") into out (>= 6). */
size_t mta_stuff_end(unsigned *state, unsigned char *out);

/*
 * One line of a server reply (without its CRLF) into the reply being
 * assembled (exposed for tests): *code is the code of its lines so far
 * (0 between replies), reply[0..*replylen) their text joined ("250-a" +
 * "250 b" -> "250 a b"), cut to size - 1 bytes (size >= 5) and
 * NUL-terminated. Returns the reply's code when the line ends it (*code
 * is 0 again), 0 when more lines follow, or one of the errors below.
 */
#define MTA_REPLY_MALFORMED	(-1)	/* not "[2-5][0-9][0-9]( |-|$)" */
#define MTA_REPLY_INCONSISTENT	(-2)	/* code differs from the first line's */
/*
 * A reply that says "you send too much, too fast" (exposed for tests and
 * for the relay's back-off): any 421, or a 4xx whose enhanced code is
 * 4.7.x and whose text speaks of rates or limits ("rate", "too many",
 * "throttl", "limit", "slow down"). Text may carry a " (host[ip])" tail.
 */
bool mta_reply_is_throttle(const char *reply);
/*
 * A permanent failure that says the address itself is dead, so mail to
 * it should stop (bounce suppression): a 5xx reply whose enhanced code is
 * 5.1.1 (no such mailbox), 5.1.2 (no such domain), 5.1.3 (bad address
 * syntax), 5.1.6 (moved, no forwarding), 5.1.10 (null MX, RFC 7505) or
 * 5.2.1 (mailbox disabled). Not policy (5.7.x), size (5.2.2/5.3.4) or
 * content refusals: those say nothing about the recipient.
 */
bool mta_reply_is_hard_bounce(const char *reply);

int mta_reply_line(int *code, char *reply, size_t size, size_t *replylen,
    const char *line, size_t len);

#endif
