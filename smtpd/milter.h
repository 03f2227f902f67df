/*
 * The milter client: one conversation with one milter about one message
 * (milter.c, a non-blocking state machine on conn.h), the message view a
 * milter sees and the rewrite its end-of-body modifications ask for
 * (milter_apply.c), and the glue that runs [smtpd] milters in order for a
 * transaction (milter_tx.c). The wire format is milter_proto.h.
 *
 * carteiro holds the whole conversation after the end of data (and after
 * the inbound checks, so Authentication-Results is in the header stream):
 * connect, HELO, MAIL, each RCPT, DATA, the headers, EOH, the body in
 * chunks and end of body, each stage with the macros Postfix sends then.
 */
#ifndef CARTEIRO_SMTPD_MILTER_H
#define CARTEIRO_SMTPD_MILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct event_base;
struct milter_run;
struct smtp_session;

/* ---- the message as milters see it (milter_apply.c) ---------------------- */

struct milter_hdr {
	char *name;		/* owned: field name as written */
	char *value;		/* owned: what follows the colon, folds as LF,
				 * no final line end (leading space kept) */
	char *raw;		/* owned: the field as received with its CRLF,
				 * or NULL when a milter wrote it */
	size_t rawlen;
};

struct milter_msg {
	struct milter_hdr *h;	/* owned, nh entries */
	size_t nh;
	bool blank;		/* the header section ended in an empty line */
	/* The body: body_len bytes at body_off of the spool (fd >= 0, read
	 * with pread) or of mem. Both borrowed from the transaction. */
	int fd;
	const unsigned char *mem;
	uint64_t body_off;
	uint64_t body_len;
};

/*
 * Load the header section of prefix (our trace and check fields, CRLF)
 * followed by the spool (fd >= 0, or mem; size bytes). The header section
 * is at most limit bytes. 0, or -1 with errno (read error; EMSGSIZE when
 * the header section is too large).
 */
int milter_msg_load(struct milter_msg *m, const char *prefix, int fd,
    const unsigned char *mem, uint64_t size, size_t limit);
void milter_msg_clear(struct milter_msg *m);
/* Read up to len body bytes at off: bytes read, or -1 with errno. */
ssize_t milter_msg_body_read(const struct milter_msg *m, void *buf,
    size_t len, uint64_t off);

/* ---- one conversation (milter.c) ----------------------------------------- */

enum milter_verdict {
	MILTER_V_CONTINUE,	/* accept or continue: deliver, with mods */
	MILTER_V_REJECT,	/* 5xx (reply or the default text) */
	MILTER_V_TEMPFAIL,	/* 4xx (reply or the default text) */
	MILTER_V_DISCARD,	/* 250, dropped */
	MILTER_V_FAILED,	/* down, timed out, broke the protocol:
				 * [smtpd] milter_default_action */
};

/* One end-of-body modification, in the order the milter sent them. */
struct milter_mod {
	char cmd;		/* MILTER_R_ADDHEADER, _INSHEADER,
				 * _CHGHEADER, _ADDRCPT(_PAR), _DELRCPT,
				 * _CHGFROM */
	uint32_t index;
	char *name;		/* owned, or NULL */
	char *value;		/* owned */
};

struct milter_result {
	enum milter_verdict verdict;
	char *reply;		/* owned: the milter's SMTP reply, or NULL */
	const char *error;	/* static: why FAILED, for the log */
	char *quarantine;	/* owned: reason, or NULL */
	struct milter_mod *mods;	/* owned, nmods */
	size_t nmods;
	bool body_replaced;
	unsigned char *body;	/* owned: the replacement body */
	size_t bodylen;
	char **rcpt_rejected;	/* owned: RCPTs the milter refused */
	size_t nrcpt_rejected;
	uint32_t actions;	/* negotiated (MILTER_F_*) */
};

/* Everything the conversation tells the milter; borrowed for the run. */
struct milter_info {
	const char *hostname;		/* j */
	const char *daemon_name;	/* {daemon_name} */
	const char *client_addr;	/* {client_addr} */
	const char *client_name;	/* {client_name} */
	char family;			/* '4', '6', 'U' */
	uint16_t client_port;
	const char *helo;		/* NULL: HELO not sent */
	const char *tls_version;	/* NULL without TLS */
	const char *cipher;
	const char *auth_type;		/* NULL without AUTH */
	const char *auth_authen;
	const char *queue_id;		/* i */
	const char *mail_from;		/* "" for <> */
	const char *const *rcpts;
	size_t nrcpts;
	uint64_t max_body;		/* a replaced body may be this long */
	int connect_timeout_ms;
	int command_timeout_ms;
	int content_timeout_ms;
};

/*
 * Idle milter connections, shared by every session (one per process, in
 * struct smtp_server): at most max_idle, each closed after idle_ms.
 */
struct milter_pool;
struct milter_pool *milter_pool_new(struct event_base *base, size_t max_idle,
    int idle_ms);
/* Closes every idle connection. Accepts NULL. */
void milter_pool_free(struct milter_pool *p);
size_t milter_pool_idle(const struct milter_pool *p);

/* Called once, from the event loop, when the run is over; the callee
 * reads milter_run_result and then calls milter_run_free (allowed here). */
typedef void milter_done_cb(struct milter_run *r, void *arg);

/*
 * Start a conversation with the milter at spec ("inet:HOST:PORT",
 * "unix:/path") about msg (borrowed, must live until done), on an idle
 * connection from pool if there is one (a stale one is replaced once,
 * transparently). NULL when spec cannot be used (logged; treat as
 * FAILED). done is never called from inside this function.
 */
struct milter_run *milter_run_start(struct milter_pool *pool, const char *spec,
    const char *sid, const struct milter_info *info,
    const struct milter_msg *msg, milter_done_cb *done, void *arg);
/* The verdict and modifications; valid until milter_run_free. */
struct milter_result *milter_run_result(struct milter_run *r);
/* Ends the conversation: after a clean end of body the connection goes
 * back to the pool (QUIT_NC), else ABORT and QUIT. Accepts NULL. */
void milter_run_free(struct milter_run *r);

/* ---- rewriting (milter_apply.c) ------------------------------------------ */

/*
 * Apply res's header and body modifications to m and write the whole new
 * message; a spam flag (milter_result_flags_spam) adds the X-Spam-Flag /
 * X-Spam-Status pair unless the milter set them. The message goes to
 * *mem_r (malloc'd) when it fits in mem_max bytes, else to a spool file
 * from delivery_spool_open(dir) in *fd_r (*mem_r NULL). *size_r: its
 * length. 0, or -1 with errno.
 */
int milter_apply(const struct milter_msg *m, const struct milter_result *res,
    const char *dir, size_t mem_max, int *fd_r, unsigned char **mem_r,
    uint64_t *size_r);
/* Whether the milter marked the message as spam: quarantine, or an
 * "X-Spam: Yes" field (rspamd's add_header action). */
bool milter_result_flags_spam(const struct milter_result *res);
/* Whether res changes the message bytes (headers, body, quarantine). */
bool milter_result_rewrites(const struct milter_result *res);

/* ---- the transaction glue (milter_tx.c) ---------------------------------- */

/* Whether this session's mail goes through [smtpd] milters. */
bool smtp_milter_wanted(const struct smtp_session *s);
/*
 * Run every milter on the session's finished message in order (the
 * session waits), then commit through smtp_tx_commit or send the one
 * reply. Called from smtp_tx_end after the checks.
 */
void smtp_milter_start(struct smtp_session *s);
/* The transaction goes away: stop the running conversation. */
void smtp_milter_cancel(struct smtp_session *s);

#endif
