/*
 * carteiro-smtpd internals shared by session.c (connections, replies,
 * input modes), commands.c (the verb table and the session-level verbs),
 * sasl.c (AUTH), tx.c (MAIL..end of data), deadline.c (slow clients),
 * address.c (pure path/parameter parser) and data.c (pure DATA/BDAT
 * byte-stream decoder). Not for other
 * modules: delivery.h and relay.h are the public seams.
 */
#ifndef CARTEIRO_SMTPD_H
#define CARTEIRO_SMTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/queue.h>

#include "common/clientkey.h"
#include "common/sasl.h"
#include "smtpd/dsn.h"

struct conn;
struct cfg;
struct event_base;
struct event;
struct tls_ctx;
struct store;
struct delivery;
struct auth_pool;
struct workq;
struct relay;
struct listener;
struct dns;
struct dnsbl_check;
struct inbound;
struct signer;
struct srs;
struct smtp_milter;
struct milter_pool;

/* RFC 5321 4.5.3.1.4: 512 octets including CRLF. */
#define SMTP_LINE_MAX		512
/* RFC 3461 4: the DSN parameters make MAIL up to 100 and RCPT up to 500
 * octets longer. The reader takes the longest; the dispatcher holds each
 * verb to its own limit. */
#define SMTP_MAIL_LINE_MAX	(SMTP_LINE_MAX + 100)
#define SMTP_RCPT_LINE_MAX	(SMTP_LINE_MAX + 500)
/* RFC 4954 4: SASL lines may be up to 12288 octets. */
#define SMTP_SASL_LINE_MAX	12288
/* RFC 5321 4.5.3.2.7 and 4.5.3.2.6. */
#define SMTP_TIMEOUT_CMD_MS	(5 * 60 * 1000)
#define SMTP_TIMEOUT_DATA_MS	(10 * 60 * 1000)
/* Protocol errors (500/501/503/555/535) before 421 and close. */
#define SMTP_MAX_ERRORS		10
/* Input buffered while an async step runs before reading pauses. */
#define SMTP_WAIT_BUFFER_MAX	(256 * 1024)
/* Replies queued for a client that does not read before we stop
 * reading its commands (resumed at a quarter of it). */
#define SMTP_OUTPUT_MAX		(256 * 1024)
/* HELO/EHLO argument kept for Received: (RFC 1035 name + slack). */
#define SMTP_HELO_MAX		255

/* ---- the daemon ---------------------------------------------------------- */

enum smtp_listener_kind {
	SMTP_LST_MX,		/* port 25: no AUTH, local recipients only */
	SMTP_LST_SUBMISSION,	/* 587: STARTTLS, AUTH required */
	SMTP_LST_SUBMISSIONS,	/* 465: implicit TLS, AUTH required */
	SMTP_LST_COUNT
};

struct smtp_server;

struct smtp_listener {
	struct smtp_server *srv;
	struct listener *l;
	enum smtp_listener_kind kind;
};

struct ipcount;
struct ipcount_entry;
struct smtp_session;
TAILQ_HEAD(smtp_session_list, smtp_session);

/* One per process; owned by main.c. Pointers are borrowed by sessions. */
struct smtp_server {
	struct event_base *base;
	const struct cfg *cfg;
	struct tls_ctx *tls;		/* NULL: no TLS configured */
	struct store *store;		/* loop-side connection: resolve, quota,
					 * sent counters (short statements) */
	struct delivery *delivery;
	struct auth_pool *auth;
	/* PostgreSQL: RCPT's lookups on threads with a connection each
	 * (rcpt.c); NULL on SQLite, where they run on the loop. */
	struct workq *lookup;
	struct relay *relay;
	struct dns *dns;		/* DNSBL and inbound-check lookups */
	struct inbound *inbound;	/* SPF/DKIM/DMARC on MX, or NULL */
	struct signer *signer;		/* DKIM signing on submission */
	const struct srs *srs;		/* SRS key for forwarded mail */
	struct milter_pool *milter_pool;	/* idle milter connections,
						 * made at first use */
	char *spool_dir;		/* directory of the database */
	struct smtp_listener *listeners;
	size_t nlisteners;

	struct smtp_session_list sessions;
	unsigned nsessions;
	struct ipcount *ipcount;	/* sessions per client key */
	struct smtp_rate *rates;	/* connect rate per client, fixed */
	int timeout_cmd_ms;
	int timeout_data_ms;
	bool stopping;			/* SIGTERM: no new sessions */
	void (*on_drained)(struct smtp_server *);	/* last session gone
							 * while stopping */
};

/* ---- sessions ------------------------------------------------------------ */

/* Table bitmasks use (1u << state). */
enum smtp_state {
	SMTP_ST_INIT,		/* greeted, no HELO/EHLO yet */
	SMTP_ST_READY,		/* HELO/EHLO done, no transaction */
	SMTP_ST_MAIL,		/* MAIL accepted, no RCPT yet */
	SMTP_ST_RCPT,		/* at least one RCPT accepted */
	SMTP_ST_BDAT,		/* BDAT chunks received, no LAST yet */
	SMTP_ST_COUNT
};

/* What the next input bytes are: checked before any verb lookup. */
enum smtp_mode {
	SMTP_MODE_CMD,		/* command lines */
	SMTP_MODE_DATA,		/* DATA body up to CRLF.CRLF */
	SMTP_MODE_BDAT,		/* exactly bdat_left bytes of a chunk */
	SMTP_MODE_SASL,		/* AUTH continuation line */
	SMTP_MODE_SKIP,		/* refused BDAT: discard skip_left bytes */
	SMTP_MODE_WAIT,		/* async step pending (AUTH check, commit,
				 * TLS handshake): input paused */
};

/* Where a DATA/BDAT transaction failed; latched until the end of data. */
enum smtp_tx_err {
	SMTP_TX_OK,
	SMTP_TX_ERR_SIZE,	/* 552 5.3.4 */
	SMTP_TX_ERR_BARE,	/* 550 5.5.2 bare CR or LF */
	SMTP_TX_ERR_IO,		/* 451 4.3.0 spool write failed */
	SMTP_TX_ERR_HEADER,	/* 552 5.3.4 header section too large to
				 * scan (arstrip.h, set at the end) */
	SMTP_TX_ERR_FULL,	/* 452 4.3.1 spool write: ENOSPC/EDQUOT */
};

/* RFC 5321 4.2.2/RFC 3463 X.3.1: the store or the spool is out of space
 * (at RCPT while delivery_is_full, or at the end of data). */
#define SMTP_REPLY_FULL	"452 4.3.1 Insufficient system storage"

/* [smtpd] daily_send_limit counts the remote recipients of this many
 * seconds back (rcpt.c at RCPT, milter_tx.c for a milter's additions). */
#define SMTP_SEND_WINDOW	(24 * 60 * 60)

/* ---- pure DATA/BDAT decoder (data.c) ------------------------------------- */

enum smtp_data_state {
	SMTP_DATA_BOL,		/* after CRLF (or at the start) */
	SMTP_DATA_MID,		/* inside a line */
	SMTP_DATA_CR,		/* CR seen, not yet written */
	SMTP_DATA_DOT,		/* "." at the start of a line */
	SMTP_DATA_DOT_CR,	/* ".<CR>" at the start of a line */
	SMTP_DATA_END,		/* <CRLF>.<CRLF> seen */
};

struct smtp_data_parser {
	uint8_t state;		/* enum smtp_data_state */
	bool dot;		/* DATA: dot-unstuffing and "." ends; BDAT:
				 * neither (only bare CR/LF tracking) */
	bool bare;		/* a bare CR or LF was seen */
};

void smtp_data_init(struct smtp_data_parser *p, bool dot);
/*
 * Decode len bytes of in into out, which has room for len + 1 bytes (a CR
 * held back from an earlier call may come out now). Returns the number of
 * input bytes consumed: all of them, or fewer when <CRLF>.<CRLF> ended the
 * data (the bytes after it are the next command). *outlen_r: bytes written.
 * Only <CRLF>.<CRLF> ends DATA (RFC 5321 4.1.1.4); a bare CR or LF is data,
 * never a line end, and sets p->bare.
 */
size_t smtp_data_feed(struct smtp_data_parser *p, const char *in, size_t len,
    char *out, size_t *outlen_r);
bool smtp_data_is_done(const struct smtp_data_parser *p);
/* BDAT LAST: flush a held-back CR (it is bare). Returns bytes (0 or 1). */
size_t smtp_data_finish(struct smtp_data_parser *p, char *out);

/* ---- pure path/parameter parser (address.c) ------------------------------ */

enum smtp_path_kind { SMTP_PATH_MAIL, SMTP_PATH_RCPT };

enum smtp_path_err {
	SMTP_PATH_OK,
	SMTP_PATH_ERR_SYNTAX,	/* "FROM:"/"TO:" missing: 501 5.5.4 */
	SMTP_PATH_ERR_BRACKETS,	/* no <...>: 501 5.5.4 */
	SMTP_PATH_ERR_ADDRESS,	/* bad address: 501 5.1.7 / 5.1.3 */
	SMTP_PATH_ERR_PARAM,	/* unknown parameter: 555 5.5.4 */
	SMTP_PATH_ERR_VALUE,	/* bad parameter value: 501 5.5.4 */
	SMTP_PATH_ERR_UTF8,	/* non-ASCII without SMTPUTF8: 553 5.6.7 */
};

enum smtp_body { SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };

struct smtp_path {
	char *addr;		/* owned: normalised local@domain (A-label
				 * domain), "" for <>, "postmaster" for the
				 * bare RCPT form; smtp_path_clear frees */
	bool null;		/* <> */
	bool postmaster;	/* bare <postmaster> */
	bool route;		/* a source route was given (and dropped) */
	bool literal;		/* domain is an address literal [...] */
	bool percent;		/* local part has % or ! (relay hack) */
	bool utf8;		/* address has non-ASCII octets */
	/* MAIL parameters */
	bool has_size;
	uint64_t size;
	enum smtp_body body;
	bool smtputf8;
	struct dsn_mail dsn_mail;	/* MAIL RET, ENVID (owned) */
	/* RCPT parameters */
	struct dsn_rcpt dsn_rcpt;	/* NOTIFY, ORCPT (owned) */
};

/*
 * Parse the arguments of MAIL ("FROM:<path> params") or RCPT ("TO:<path>
 * params"). For RCPT, smtputf8 says whether the transaction's MAIL had
 * SMTPUTF8 (for MAIL it comes from the parameters). Returns SMTP_PATH_OK
 * and fills *p, or an error and *error_r (static text for the reply);
 * *p is cleared either way first.
 */
enum smtp_path_err smtp_path_parse(const char *args, enum smtp_path_kind kind,
    bool smtputf8, struct smtp_path *p, const char **error_r);
void smtp_path_clear(struct smtp_path *p);

/* ---- transaction --------------------------------------------------------- */

/* The async steps after the end of data, in this order; tx->token belongs
 * to the current one. */
enum smtp_tx_step {
	SMTP_TX_STEP_NONE,
	SMTP_TX_STEP_SIGN,	/* submission: DKIM signing (signer.h) */
	SMTP_TX_STEP_INBOUND,	/* MX: SPF/DKIM/DMARC (inbound.h) */
	SMTP_TX_STEP_MILTER,	/* [smtpd] milters (milter.h); token 1 */
	SMTP_TX_STEP_COMMIT,	/* delivery.h: the 250 comes from here */
};

struct smtp_tx {
	char msgid[17];		/* carteiro's id, 16 hex */
	char *mail_from;	/* normalised, "" for <> */
	char *first_rcpt;	/* as given in the first RCPT, for Received */
	/* The queue row's envelope sender when an alias or catch-all
	 * forwards to remote recipients (SRS, forward.h); NULL: mail_from.
	 * Local mailboxes keep mail_from. */
	char *queue_from;
	char *fwd_domain;	/* domain of the first forwarding RCPT */
	char **local;		/* deduplicated local mailboxes */
	size_t nlocal;
	char **remote;		/* deduplicated remote recipients */
	size_t nremote;
	/* RFC 3461: per local[i] / remote[i] (the RCPT that first named
	 * it), and the transaction's MAIL parameters; all owned. */
	struct dsn_rcpt *local_dsn;
	struct dsn_rcpt *remote_dsn;
	struct dsn_mail dsn;
	unsigned nrcpt;		/* accepted RCPT commands */
	uint64_t declared_size;	/* MAIL SIZE=, 0 if none */
	bool smtputf8;
	bool body8bit;
	int64_t sent_base;	/* remote rcpts in the last 24 h, -1 unknown */

	/*
	 * The spool: a message starts in memory (spool_mem, malloc'd, up to
	 * DELIVERY_SPOOL_MEM_MAX bytes) and moves to a disk spool file
	 * (spool_fd) when it grows past that, or to a memfd when a worker
	 * pool (DKIM signing, inbound checks) needs a file to read.
	 */
	int spool_fd;		/* -1 while in memory or before DATA */
	bool spool_in_mem;	/* the bytes so far are in spool_mem */
	unsigned char *spool_mem;
	size_t spool_cap;
	uint64_t size;		/* decoded bytes so far */
	enum smtp_tx_err error;	/* latched, see STYLE 4 */
	struct smtp_data_parser parser;
	uint64_t bdat_left;	/* bytes still to read of this chunk */
	bool bdat_last;		/* this chunk is the last one */
	bool bdat;		/* transaction uses BDAT */
	uint8_t step;		/* enum smtp_tx_step */
	uint64_t token;		/* token of the pending step, 0 if none */
	char *extra;		/* owned: header lines the checks added */
	char **rcpt_addrs;	/* owned: accepted RCPT addresses as given,
				 * in order (milters see them) */
	size_t nrcpt_addrs;
	/* Owned: our Received and check fields as a milter saw them, for
	 * the commit ("" once a milter's rewrite put them in the spool);
	 * NULL: the commit makes them. */
	char *prefix;
	struct smtp_milter *milter;	/* owned by milter_tx.c, or NULL */
	uint64_t end_ms;	/* util_now_ms() at the end of the data */
};

/* Which deadline of deadline.c is armed on the conn. */
enum smtp_deadline_kind {
	SMTP_DL_NONE,		/* none (async step, or not yet re-armed
				 * after a reply) */
	SMTP_DL_LINE,		/* the next command line, from the reply */
	SMTP_DL_LINE_SPENT,	/* still armed for a line already taken: the
				 * next wait re-arms, a clear disarms */
	SMTP_DL_DATA,		/* DATA/BDAT bytes: min_data_rate credit */
};

/* The command being answered, for failure logs: the first bytes of the
 * line (log_escape never shows more), AUTH data cut off. */
#define SMTP_CUR_CMD_MAX	200

struct smtp_session {
	TAILQ_ENTRY(smtp_session) entry;
	struct conn *conn;
	struct smtp_listener *lst;
	struct client_key key;		/* the client, for limits and penalty */
	struct ipcount_entry *ipc;	/* this client's counter (shared) */
	struct smtp_tx *tx;		/* NULL outside a transaction */
	uint64_t rcpt_token;		/* RCPT's lookup job, 0 if none */
	struct sasl sasl;		/* AUTH exchange and penalty wait */
	struct dnsbl_check *dnsbl;	/* before the greeting, or NULL */
	struct event *greet_timer;	/* [smtpd] greet_pause, or NULL */
	struct event *life_timer;	/* [smtpd] max_session_time, or NULL */
	uint64_t data_bytes;		/* DATA/BDAT bytes since the data
					 * deadline was armed */
	uint64_t data_credit_ms;	/* deadline they earned so far */
	uint8_t deadline;		/* enum smtp_deadline_kind */
	bool expired;			/* max_session_time passed: 421 at
					 * the next safe point */
	uint8_t greet_holds;		/* DNSBL check + pause still running */
	char *helo;			/* owned */
	char *auth_user;		/* owned: canonical address */
	const char *auth_mech;		/* static: "PLAIN", "LOGIN", or NULL */
	uint64_t start_ms;
	const char *close_reason;	/* static string, for the log */
	uint64_t skip_left;		/* SMTP_MODE_SKIP: bytes to discard */
	uint8_t state;			/* enum smtp_state */
	uint8_t mode;			/* enum smtp_mode */
	uint8_t errors;			/* protocol errors so far */
	uint8_t auth_failures;		/* failed AUTH checks so far */
	bool esmtp;			/* EHLO, not HELO */
	bool greeted;			/* 220 sent (after TLS on 465) */
	bool peer_eof;			/* EOF arrived during an async step */
	bool paused;			/* conn_pause_read in effect */
	bool out_blocked;		/* paused until the output drains */
	bool exempt;			/* in [smtpd] inbound_checks_exempt */
	uint8_t cur_cmd_len;
	char cur_cmd[SMTP_CUR_CMD_MAX];	/* see SMTP_CUR_CMD_MAX, not
					 * NUL-terminated */
	char sid[17];
};

/* session.c */
/* sa: the peer from accept4, or NULL to ask the socket. */
void smtp_session_accept(struct smtp_listener *lst, int fd,
    const struct sockaddr *sa, socklen_t salen);
/* SIGTERM: idle sessions get 421 4.3.2 and close; a session waiting for a
 * commit gets its 250 first; one in the middle of DATA is aborted. */
void smtp_session_shutdown_all(struct smtp_server *srv);
/* Exit: free every session still open, without replies. */
void smtp_session_free_all(struct smtp_server *srv);
void smtp_session_enter(struct smtp_session *s, enum smtp_state st);
/* All replies go through here: formats, appends CRLF, logs replies >= 400
 * with the current command. Never frees the session. */
void smtp_reply(struct smtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Reply and close after the output is flushed. */
void smtp_session_close(struct smtp_session *s, const char *reason);
/* An async step finished: back to command mode and read on. */
void smtp_session_resume(struct smtp_session *s);
/* Stop interpreting input for an async step (bytes that arrive meanwhile
 * stay buffered, up to SMTP_WAIT_BUFFER_MAX, then reading pauses). */
void smtp_session_wait(struct smtp_session *s);
/* The command whose reply is pending, for logs (AUTH data is never
 * kept). */
void smtp_session_set_cmd(struct smtp_session *s, const char *line,
    size_t len);
bool smtp_session_is_submission(const struct smtp_session *s);
const char *smtp_session_hostname(const struct smtp_session *s);

/* deadline.c: slow clients (per-line deadline, min_data_rate,
 * max_session_time). None of these frees the session. */
/* Accept: start the max_session_time timer. */
void smtp_deadline_start(struct smtp_session *s);
void smtp_deadline_stop(struct smtp_session *s);
/* A command (or SASL) line is awaited: its deadline runs from the first
 * call after smtp_deadline_clear or smtp_deadline_line_taken. */
void smtp_deadline_line(struct smtp_session *s);
/* A line was taken: the next one gets its own deadline. */
void smtp_deadline_line_taken(struct smtp_session *s);
/* DATA/BDAT/skipped bytes are awaited: the min_data_rate deadline. */
void smtp_deadline_data(struct smtp_session *s);
/* n data bytes were consumed: they earn time. */
void smtp_deadline_bytes(struct smtp_session *s, size_t n);
/* Nothing is awaited from the client (async step, output blocked). */
void smtp_deadline_clear(struct smtp_session *s);
/* CONN_EV_TIMEOUT (not while closing): 421 4.4.2 and close. */
void smtp_deadline_timeout(struct smtp_session *s);
/* If max_session_time passed: 421 4.4.2, close, true. */
bool smtp_deadline_expired(struct smtp_session *s);

/* commands.c */
void smtp_cmd_dispatch(struct smtp_session *s, const char *line, size_t len);
void smtp_cmd_ehlo(struct smtp_session *, const char *);
void smtp_cmd_helo(struct smtp_session *, const char *);
void smtp_cmd_rset(struct smtp_session *, const char *);
void smtp_cmd_noop(struct smtp_session *, const char *);
void smtp_cmd_help(struct smtp_session *, const char *);
void smtp_cmd_vrfy(struct smtp_session *, const char *);
void smtp_cmd_quit(struct smtp_session *, const char *);
void smtp_cmd_starttls(struct smtp_session *, const char *);
void smtp_cmd_auth(struct smtp_session *, const char *);
void smtp_cmd_mail(struct smtp_session *, const char *);
void smtp_cmd_rcpt(struct smtp_session *, const char *);
void smtp_cmd_data(struct smtp_session *, const char *);
void smtp_cmd_bdat(struct smtp_session *, const char *);
/* BDAT refused by the dispatcher: still skip the announced chunk. */
void smtp_cmd_bdat_reject(struct smtp_session *, const char *);
/* Whether AUTH may be used (and is advertised) on this session now. */
bool smtp_cmd_auth_allowed(const struct smtp_session *s);

/* sasl.c */
/* A continuation line in SMTP_MODE_SASL (borrowed; the caller wipes it). */
void smtp_sasl_line(struct smtp_session *s, const char *line, size_t len);
/* End the exchange (line too long, close): wipes, cancels the check. */
void smtp_sasl_free(struct smtp_session *s);

/* rcpt.c: the lookup pool (PostgreSQL only; no-op otherwise) and the
 * cancel of a session's pending lookup (smtp_session_free). */
void smtp_rcpt_pool_start(struct smtp_server *srv);
void smtp_rcpt_pool_stop(struct smtp_server *srv);
void smtp_rcpt_cancel(struct smtp_session *s);

/* tx.c (MAIL), rcpt.c (RCPT), tx_data.c (DATA, BDAT), tx_end.c (end of
 * data) */
void smtp_tx_free(struct smtp_tx *tx);
/* Add addr to a deduplicated list (case-insensitive), with its DSN
 * parameters in the parallel list dv (the first RCPT naming it wins). */
void smtp_tx_list_add(char ***v, struct dsn_rcpt **dv, size_t *n,
    const char *addr, const struct dsn_rcpt *dsn);
/* Reply for a MAIL/RCPT path parser error; is_mail picks the address
 * code. */
void smtp_tx_path_error(struct smtp_session *s, enum smtp_path_err err,
    const char *error, bool is_mail);
/* Destroy the session's transaction (RSET, EHLO, end of data, close). A
 * pending commit keeps running; its callback is cancelled. */
void smtp_tx_reset(struct smtp_session *s);
/* Feed buffered input in DATA/BDAT mode. Returns once the buffer is empty
 * or the mode changed. */
void smtp_tx_input(struct smtp_session *s);
/* Parse "BDAT <size> [LAST]". 0 / -1. */
int smtp_tx_parse_bdat(const char *args, uint64_t *size_r, bool *last_r);
/* tx_end.c: the data is complete (or a BDAT chunk failed): send the one
 * reply, now or from the async steps' callbacks. Ends the transaction. */
void smtp_tx_end(struct smtp_session *s);
/* tx_end.c: our Received and check fields for this message (caller
 * frees); the hand-off to delivery whose callback sends the reply. */
char *smtp_tx_prefix(struct smtp_session *s);
void smtp_tx_commit(struct smtp_session *s);
/* A spool write failed with errno err: latches SMTP_TX_ERR_FULL for lack
 * of space (and tells delivery.h the store is full), else ERR_IO. */
void smtp_tx_spool_failed(struct smtp_session *s, int err);

#endif
