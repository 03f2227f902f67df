/*
 * Internals shared by the relay's SMTP client files: mta.c (the dialogue:
 * reply table, handlers, body pump), mta_session.c (lifetime and results)
 * and mta_route.c (MX, addresses, falling back between hosts). The relay
 * itself uses mta.h only.
 */
#ifndef CARTEIRO_MTA_INTERNAL_H
#define CARTEIRO_MTA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/conn.h"
#include "smtpd/mta.h"

struct dns_req;
struct dns_mx;
struct mta_sts_req;
struct mta_sts_policy;

#define MTA_REPLY_MAX	1024		/* joined reply text kept */
/* A longer reply ends the attempt: a server that never finishes one. */
#define MTA_REPLY_MAX_LINES	100
#define MTA_REPLY_MAX_BYTES	(64 * 1024)

enum mta_state {
	MTA_S_NEW,		/* allocated, not started yet */
	MTA_S_MX,		/* resolving MX */
	MTA_S_ADDR,		/* resolving a host's addresses */
	MTA_S_CONNECT,
	MTA_S_GREETING,
	MTA_S_EHLO,
	MTA_S_HELO,
	MTA_S_STARTTLS,
	MTA_S_TLS,		/* handshake running */
	MTA_S_AUTH,		/* AUTH PLAIN, or LOGIN's last step */
	MTA_S_AUTH_USER,	/* AUTH LOGIN: 334 for the username */
	MTA_S_AUTH_PASS,	/* AUTH LOGIN: 334 for the password */
	MTA_S_RSET,		/* a reused connection: RSET's reply */
	MTA_S_MAIL,
	MTA_S_RCPT,
	MTA_S_DATA,
	MTA_S_BODY,		/* streaming, no reply expected */
	MTA_S_DOT,		/* waiting for the final reply */
	MTA_S_QUIT,		/* results reported; saying goodbye */
	MTA_S_COUNT
};

/* Indexed by enum mta_state, for logs. */
extern const char *const mta_state_names[MTA_S_COUNT];

enum mta_ext {
	MTA_EXT_STARTTLS = 1 << 0,
	MTA_EXT_PIPELINING = 1 << 1,
	MTA_EXT_SIZE = 1 << 2,
	MTA_EXT_8BITMIME = 1 << 3,
	MTA_EXT_SMTPUTF8 = 1 << 4,
	MTA_EXT_AUTH_PLAIN = 1 << 5,
	MTA_EXT_AUTH_LOGIN = 1 << 6,
	MTA_EXT_DSN = 1 << 7,		/* RFC 3461 */
};

/* What DANE asks of the current host (mta_dane.c). */
enum mta_dane {
	MTA_DANE_NONE,		/* no authenticated TLSA: opportunistic */
	MTA_DANE_VERIFY,	/* usable TLSA records: TLS, chain matches */
	MTA_DANE_TLS_ONLY,	/* TLSA, none usable: TLS, unauthenticated */
};

/* A connection kept open after a transaction, for the next message to
 * the same peer (mta_pool.c). */
struct mta_idle {
	struct mta *m;
	struct mta_idle *prev, *next;
	struct conn *c;
	char label[300];		/* "host[ip]" */
	char *source;			/* the source address bound, or NULL */
	char *helo;			/* the name we greeted with */
	unsigned ext;
	uint64_t ext_size;
	bool tls_on, authed;
	unsigned msgs;			/* transactions so far */
	uint64_t born_ms;		/* connected at */
	bool quitting;			/* QUIT sent, closing */
};

struct mta {
	struct event_base *base;
	struct dns *dns;
	struct tls_ctx *tls;
	char *helo;
	unsigned port;
	char *smarthost_host;		/* NULL: MX delivery */
	unsigned smarthost_port;
	char *auth_user;
	char *auth_pass;
	int connect_timeout_ms;
	int greeting_timeout_ms;
	int reply_timeout_ms;
	int data_init_timeout_ms;
	int block_timeout_ms;
	int data_timeout_ms;
	struct mta_session *sessions;	/* every live session */
	size_t nsessions;
	unsigned max_msgs;		/* per connection; 1: no reuse */
	int reuse_ms;			/* a connection's age limit for reuse */
	int idle_ms;			/* kept idle this long at most */
	size_t idle_max;		/* connections kept idle, at most */
	struct mta_idle *idle;		/* mta_pool.c */
	size_t nidle;
	struct mta_sts *sts;		/* borrowed, NULL: no MTA-STS */
	struct tlsrpt *tlsrpt;		/* borrowed, NULL: not counted */
};

struct mta_session {
	struct mta *m;
	struct mta_session *prev, *next;
	enum mta_state state;
	struct mta_msg *msg;		/* NULL once done was reported */
	mta_rcpt_cb *rcpt_cb;
	mta_done_cb *done_cb;
	void *arg;
	char sid[17];

	struct dns_req *dreq;
	struct mta_sts_req *sts_req;	/* the policy being looked up */
	struct mta_sts_policy *sts;	/* the domain's policy (a ref), NULL */
	struct dns_mx *hosts;		/* owned copies */
	size_t nhosts, host_idx;
	bool implicit_mx;		/* hosts = { domain } */
	bool all_nx;			/* every host had no address so far */
	struct sockaddr_storage *addrs;
	size_t naddrs, addr_idx;
	char label[300];		/* "host[ip]" of the current peer */

	struct conn *c;
	unsigned ext;
	uint64_t ext_size;		/* SIZE limit, 0 = none */
	bool tls_on;
	bool tls_failed_here;		/* retrying this address in clear */
	bool authed;
	bool reused;			/* s->c came from the pool */
	unsigned conn_msgs;		/* transactions before this one on s->c */
	uint64_t conn_born_ms;
	char *source;			/* the source address bound, or NULL */

	int code;			/* reply being assembled */
	char reply[MTA_REPLY_MAX];
	size_t replylen;
	unsigned reply_lines;		/* of the reply being assembled */
	size_t reply_bytes;
	int deadline_ms;		/* the phase deadline now armed */

	size_t *active;			/* rcpt indices in this transaction */
	size_t nactive, cursor, naccepted;
	bool *accepted;			/* per rcpt: RCPT got 2xx */
	char **replies;			/* per rcpt result text, owned */
	char **mxs;			/* per rcpt "host[ip]", owned */
	size_t nrcpts;			/* size of the arrays above */

	uint64_t off;			/* body read offset */
	unsigned stuff;
	unsigned char *inbuf, *outbuf;

	/* mta_dane.c: DANE (RFC 7672) for the current host. */
	bool mx_checked, mx_secure;	/* the MX answer's AD bit */
	enum mta_dane dane;
	char **tlsa;			/* its TLSA records (text), owned */
	size_t ntlsa;

	char *last_error;		/* why the last host failed */
	int depth;			/* > 0 inside a callback */
	bool dead;			/* free when depth drops to 0 */
};

/* ---- mta_session.c ---- */

/* Free now, or when the callback frame we are in unwinds. */
void mta_session_release(struct mta_session *s);
void mta_session_free(struct mta_session *s);
/* Remember why the last host failed (the temporary result if none works). */
void mta_set_error(struct mta_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A recipient's result for this attempt is final: report it (once). */
void mta_rcpt_final(struct mta_session *s, size_t i, enum mta_result res,
    const char *text, bool remote);
void mta_fail_all(struct mta_session *s, enum mta_result res,
    const char *text, bool remote);
/* Report the rest as temporary, hear done, say QUIT or free. */
void mta_finish(struct mta_session *s);

/* ---- mta_route.c ---- */

/* First step of a session: the smarthost's addresses, or the MX lookup. */
void mta_route_start(struct mta_session *s);
/* This peer cannot take the message: next address / host (may finish). */
void mta_host_fail(struct mta_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Drop the connection to the current peer at once (no QUIT). */
void mta_close_conn(struct mta_session *s);
/* Greeted, TLS done if it could be: the domain's MTA-STS policy allows
 * mail over s->c (enforce: STARTTLS and a certificate valid for the MX
 * name; testing: logged only). false: mta_host_fail was called. */
bool mta_route_sts_tls(struct mta_session *s);
/* An idle connection (c, TLS on or not) may carry s's message. */
bool mta_route_sts_reuse(const struct mta_session *s, struct conn *c,
    bool tls_on);

/* The next MX host (or finish when none is left). */
void mta_next_host(struct mta_session *s);
/* The current host's addresses, then connect (after mta_dane_lookup). */
void mta_route_addr(struct mta_session *s);

/* ---- mta_dane.c ---- */

/* DANE for the current host: the MX answer's AD bit, then, if it was
 * authenticated, _25._tcp.HOST's TLSA records; then mta_route_addr (or
 * the next host when the TLSA lookup failed). */
void mta_dane_lookup(struct mta_session *s);
/* The current host must do TLS (it has authenticated TLSA records). */
bool mta_dane_required(const struct mta_session *s);
/* After the handshake: the chain against the TLSA records. true: go on;
 * false: the host failed (mta_host_fail was called). */
bool mta_dane_check(struct mta_session *s);
/* A kept connection c may carry this session's message: DANE does not
 * apply, or c has TLS (and its chain matches the TLSA records). */
bool mta_dane_conn_ok(const struct mta_session *s, struct conn *c);
/* Count a DANE session for TLS-RPT: result NULL (success) or an RFC
 * 8460 result type. */
void mta_dane_count(struct mta_session *s, const char *result);
/* Forget the host's TLSA records (next host, session free). */
void mta_dane_clear(struct mta_session *s);

/* ---- mta_pool.c ---- */

/* An idle connection to the peer s is about to connect to (s->label,
 * same source and HELO): adopt it, send RSET (state MTA_S_RSET) and
 * return true; false: connect afresh. */
bool mta_pool_take(struct mta_session *s);
/* The transaction on s->c is over, at a reply boundary: keep the
 * connection for the next message if the limits allow (s->c becomes
 * NULL); false: the caller says QUIT. */
bool mta_pool_put(struct mta_session *s);
/* Close every idle connection (mta_free). */
void mta_pool_free(struct mta *m);
/* The HELO name and the source address ("ip" or NULL) of s's message for
 * a peer of family af. */
const char *mta_helo(const struct mta_session *s);
const char *mta_source_for(const struct mta_session *s, int af);

/* ---- mta.c ---- */

/* Every state change goes through here: it logs the transition (debug
 * event=relay.state from= to=) and sets s->state. */
void mta_enter(struct mta_session *s, enum mta_state st);
/* The conn callback of every session's connection. */
void mta_conn_cb(struct conn *c, enum conn_event ev, void *arg);

#endif
