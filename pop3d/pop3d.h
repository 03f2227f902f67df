/*
 * pop3d internals shared by the files of pop3d/: the server (listeners,
 * store, auth pool, maildrop locks), the session and its state machine, the
 * command table and the pure parsers (command splitting, message numbers,
 * dot-stuffing). Never included outside pop3d/ except by unit tests.
 */
#ifndef CARTEIRO_POP3D_H
#define CARTEIRO_POP3D_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/clientkey.h"
#include "common/conn.h"
#include "common/sasl.h"
#include "common/workq.h"
#include "store/store.h"

struct cfg;
struct event;
struct event_base;
struct auth_pool;
struct tls_ctx;
struct listener;

/* RFC 2449: a command line is at most 255 octets including CRLF; we accept
 * a little more for lenient clients. SASL responses (base64) may be longer. */
#define POP3_LINE_MAX		512
#define POP3_SASL_LINE_MAX	2048
/* Bad commands (unknown, wrong state, bad syntax) before we hang up. */
#define POP3_BAD_CMDS_MAX	10
/* RFC 1939 3: the autologout timer is at least 10 minutes. */
#define POP3_TIMEOUT_MS		(10 * 60 * 1000)
/* Long output: refill when the output drains to LOWAT, stop at HIGH. */
#define POP3_OUT_LOWAT		(16 * 1024)
#define POP3_OUT_HIGH		(32 * 1024)
/* Unprocessed input while busy (long output, auth, slow reader) before
 * we hang up: pipelined commands are short. */
#define POP3_INPUT_MAX		(64 * 1024)
/* Commands waiting while a command runs, past which reading pauses. */
#define POP3_INPUT_PAUSE	(16 * 1024)
/* Bytes read from the store per step of RETR/TOP. */
#define POP3_READ_CHUNK		(16 * 1024)
/* PostgreSQL: RETR/TOP reads a message of at most this size on a readq
 * thread (fetch.c), a bigger one on the loop. One chunk: one statement
 * (the body's first chunk comes with the message's row). */
#define POP3_FETCH_MEM		STORE_CHUNK_SIZE
/* A RETR/TOP whose client has not read for this long lets go of its open
 * message until it reads again (stall.c). */
#define POP3_STALL_MS		1000
/* Bodies freed by the store_gc after each QUIT (keeps the write short). */
#define POP3_GC_BOUND		16

/* readq.c: the pools of reads off the loop. */
enum pop3_readq_kind {
	POP3_READQ_LOGIN,	/* login.c: the maildrop's listing */
	POP3_READQ_FETCH,	/* fetch.c: RETR/TOP */
	POP3_READQ_NKINDS
};

enum pop3_state {
	POP3_ST_AUTH = 1 << 0,		/* AUTHORIZATION */
	POP3_ST_TRANS = 1 << 1,		/* TRANSACTION */
	POP3_ST_UPDATE = 1 << 2,	/* UPDATE (after QUIT) */
};

/* The command line deadline on the conn (deadline.c). */
enum pop3_line_deadline {
	POP3_DL_NONE,
	POP3_DL_ARMED,		/* for the line being awaited */
	POP3_DL_SPENT,		/* still armed for a line already taken: the
				 * next wait re-arms, a clear disarms */
};

enum pop3_input {
	POP3_IN_CMD,		/* command lines */
	POP3_IN_SASL,		/* SASL continuation ("+ " sent) */
	POP3_IN_WAIT,		/* auth check or RETR's read (fetch.c)
				 * waiting or running, input paused */
};

/*
 * Dot-stuffing state for RETR/TOP (RFC 1939 3: lines beginning with "."
 * get one more "."). Carried across chunk boundaries. For TOP, `top` limits
 * the output to the header, the blank line and `lines_left` body lines.
 */
struct pop3_stuff {
	bool bol;		/* next byte starts a line */
	bool cr;		/* last byte seen was CR */
	uint64_t linelen;	/* bytes of the current line so far */
	bool top;		/* TOP: stop after lines_left body lines */
	bool in_body;		/* past the header/body separator */
	uint64_t lines_left;
	bool done;		/* TOP limit reached: ignore the rest */
};

void pop3_stuff_init(struct pop3_stuff *st, bool top, uint64_t lines);
/*
 * Stuff in[0..len) into out, which must hold 2 * len bytes. Returns the
 * bytes written. Once st->done is set (TOP limit), the rest of the input is
 * ignored.
 */
size_t pop3_stuff_run(struct pop3_stuff *st, const char *in, size_t len,
    char *out);
/* The terminator: CRLF first if the data did not end a line, then ".\r\n".
 * out holds 5 bytes. Returns the bytes written. */
size_t pop3_stuff_end(struct pop3_stuff *st, char *out);

/*
 * Split a command line into verb and arguments (in place): the verb ends at
 * the first space; *args_r is what follows that one space (NULL when there
 * is none, "" is possible). 0, or -1 when the line is empty or the verb is
 * longer than 8 bytes or not ASCII letters.
 */
int pop3_parse_split(char *line, char **verb_r, char **args_r);
/*
 * A decimal number argument: digits only, no sign, < 2^32 (RFC 1939 msg
 * numbers and TOP line counts). With rest_r, parsing stops at a space and
 * *rest_r points after the spaces (NULL at the end); without it, anything
 * after the digits is an error. 0 / -1.
 */
int pop3_parse_number(const char *s, uint32_t *n_r, const char **rest_r);

/* ---- server ---- */
struct pop3_session;

struct ipcount;
struct ipcount_entry;

/* One locked maildrop, and the store_maildrop_lock_epoch it was taken
 * under (the store's lock is gone once that changes). */
struct pop3_lock {
	char *maildrop;
	unsigned epoch;
};

struct pop3_server {
	struct event_base *base;
	struct cfg *cfg;
	struct store *store;		/* main-loop connection */
	struct auth_pool *auth;
	struct tls_ctx *tls;		/* NULL: no TLS configured */
	struct listener **listeners;
	size_t nlisteners;
	struct pop3_session *sessions;	/* doubly linked, newest first */
	unsigned nsessions;
	struct ipcount *ipcount;	/* sessions per client key */
	struct pop3_lock *locks;	/* lock_session: locked maildrops */
	size_t nlocks, locks_cap;
	/* Every lock's epoch is this one (0: not known, check them). */
	unsigned locks_epoch;
	bool nonlocal;			/* CARTEIRO_TEST_NONLOCAL: no loopback trust */
	int timeout_ms;			/* autologout (CARTEIRO_TEST_TIMEOUT_MS) */
	bool stopping;			/* SIGTERM seen */
	struct event *stall_ev;		/* stall.c sweep timer */
	/* The login's listing and (PostgreSQL) RETR/TOP's reads on threads
	 * with a connection each (readq.c); NULL: on the loop. */
	struct workq *readq[POP3_READQ_NKINDS];
	bool read_tx;			/* a read snapshot is open on store
					 * (pop3_store_snapshot) */
	char *scratch;			/* stuffing buffer, 2*POP3_READ_CHUNK+8 */
	char *readbuf;			/* store read buffer, POP3_READ_CHUNK */

	/* retention.c: the expiry sweep and LOGIN-DELAY */
	struct event *expire_ev;	/* sweep timer */
	int64_t expire_cursor;		/* last mailbox id of this pass */
	unsigned expire_interval_ms;	/* between passes */
	struct pop3_login_time *logins;	/* last login per user, only
					 * those within login_delay */
	size_t nlogins, logins_cap;
};

/* Long-output step; returns true when the output is complete. */
typedef bool pop3_cont_fn(struct pop3_session *s);

struct pop3_session {
	struct pop3_session *prev, *next;
	struct pop3_server *srv;
	struct conn *conn;
	char sid[17];
	char ip[64];
	struct client_key key;		/* the client, for limits and penalty */
	struct ipcount_entry *ipc;	/* this client's counter (shared) */
	enum pop3_state state;
	enum pop3_input input;
	uint64_t started_ms;
	bool implicit_tls;
	bool tls_pending;		/* handshake running (STLS or implicit) */
	bool in_input;			/* inside pop3_session_input */
	const char *close_reason;	/* static string, set when closing */
	struct event *life_timer;	/* [pop3d] max_session_time, or NULL */
	uint8_t line_deadline;		/* enum pop3_line_deadline */
	bool expired;			/* max_session_time passed: -ERR at
					 * the next safe point */

	/* AUTHORIZATION */
	char *user;			/* USER argument, owned */
	struct sasl sasl;		/* AUTH exchange or USER/PASS check,
					 * penalty wait */
	const char *auth_mech;		/* "USER", "PLAIN", "LOGIN" (static) */
	unsigned bad_cmds;
	unsigned auth_failures;		/* failed logins, [pop3d]
					 * max_auth_failures ends the session */

	/* TRANSACTION: the snapshot taken at login. Message number n (1-based,
	 * as the client sees it) is msgs[n - 1]; numbers never change during
	 * the session. */
	char *maildrop;			/* canonical address, owned */
	bool locked;			/* holds srv lock on maildrop */
	/* The store's lock went with its connection and another node has
	 * the maildrop now: the next command ends the session. */
	bool lock_lost;
	struct store_msg *msgs;
	size_t nmsgs;
	uint8_t *deleted;		/* deleted[i]: msgs[i] marked by DELE */
	size_t ndeleted;
	uint64_t deleted_size;

	/* current command (for logs) */
	char cmd[12];			/* verb of the current command */
	bool multi;			/* multi-line response under way */
	char cmd_args[64];		/* raw arguments, truncated (not PASS/AUTH) */
	size_t cmd_args_len;
	uint64_t cmd_bytes;		/* multi-line output so far */

	/* long output (RETR, TOP, LIST, UIDL), resumed on CONN_EV_LOWAT */
	pop3_cont_fn *cont;
	size_t cont_idx;		/* LIST/UIDL: next message index */
	struct store_body *body;	/* RETR/TOP: open body */
	uint64_t body_off, body_size;
	uint64_t fetch_stall_ms;	/* RETR/TOP: waiting for LOWAT since
					 * (util_now_ms), 0 = running */
	struct pop3_stuff stuff;
	uint64_t read_token;		/* readq.c's job, 0 if none */
	enum pop3_readq_kind read_kind;	/* its pool */
	unsigned char *fetch_mem;	/* PostgreSQL: the message's first */
	size_t fetch_mem_len;		/* fetch_mem_len bytes, or NULL */

	/* retention.c (RFC 2449 EXPIRE) */
	int64_t expire_s;		/* this user's: seconds, -1 = never */
	uint8_t *retrieved_msg;		/* [i]: msgs[i] was RETR'd whole */
	size_t fetch_idx;		/* RETR/TOP: index of its message */

	/* statistics for pop3.disconnect: RETR and TOP responses sent
	 * whole, and their bytes (status line and terminator included) */
	unsigned retrieved;
	uint64_t retrieved_bytes;
};

/* commands.c: one read snapshot (store_read_begin) for the RETR/TOP store
 * reads of one connection callback, so that a pipelined RETR-all takes one
 * WAL read lock per batch of messages instead of one per statement. Ended
 * by pop3_store_snapshot_end: when the callback returns (session.c) and
 * before anything is written (QUIT). */
void pop3_store_snapshot(struct pop3_server *srv);
void pop3_store_snapshot_end(struct pop3_server *srv);

/* stall.c */
void pop3_stall_start(struct pop3_server *srv);
void pop3_stall_stop(struct pop3_server *srv);

/* session.c */
void pop3_session_accept(struct pop3_server *srv, int fd, bool implicit_tls);
/* Reply one line (CRLF appended); -ERR replies are logged with the command.
 * Never frees the session. */
void pop3_reply(struct pop3_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A multi-line response's data line (no stuffing: the caller's text never
 * starts with '.'). Counts cmd_bytes. */
void pop3_reply_line(struct pop3_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* End a multi-line response (".") and log the command. */
void pop3_reply_end(struct pop3_session *s);
/* A multi-line response was completed by the caller: log the command. */
void pop3_session_cmd_done(struct pop3_session *s);
void pop3_session_enter(struct pop3_session *s, enum pop3_state st);
/* Start long output: cont runs now and on every LOWAT until it returns
 * true; input is paused meanwhile. */
void pop3_session_start_cont(struct pop3_session *s, pop3_cont_fn *cont);
/* Flush, then close and free the session later. */
void pop3_session_close(struct pop3_session *s, const char *reason);
/* Free now (sends nothing). Releases the maildrop lock; deletes nothing. */
void pop3_session_free(struct pop3_session *s, const char *reason);
/* Whether USER/PASS/AUTH may be used on this connection now. */
bool pop3_session_plaintext_ok(struct pop3_session *s);
/* Start the check of the credentials in s->sasl (USER+PASS, SASL): input
 * waits until the reply. */
void pop3_session_auth(struct pop3_session *s);
/* Turn a SASL step's result into the reply (or the check). */
void pop3_session_sasl_result(struct pop3_session *s, enum sasl_status st,
    const char *challenge);
/* Feed a SASL continuation line (session.c's input mode; borrowed, the
 * caller wipes it). */
void pop3_session_sasl_line(struct pop3_session *s, const char *line,
    size_t len);
/* Run the commands already buffered if the session is ready for them
 * (not in long output, an auth check or a TLS handshake). */
void pop3_session_kick(struct pop3_session *s);
/* Shut every session down (SIGTERM). */
void pop3_server_close_all(struct pop3_server *srv);

/* lock.c: maildrop locks (lock_session = yes). 0, -1 if already locked
 * (here or, on PostgreSQL, by another node), -2 on a store error
 * (logged). */
int pop3_lock_take(struct pop3_server *srv, const char *maildrop);
void pop3_lock_release(struct pop3_server *srv, const char *maildrop);
/* Before a command of a session that holds a lock: take again what a
 * reconnected store connection lost (store_maildrop_lock_epoch); probe
 * first asks the server whether the connection is still there (QUIT,
 * before its deletions). false if this session's maildrop went to
 * another node meanwhile: it has been told so and is closing. */
bool pop3_lock_check(struct pop3_session *s, bool probe);
/* Another connection to the store found the server gone and came back
 * (fetch.c's threads): ask the server on the loop's connection too, and
 * take again what it lost, now rather than at a later command. */
void pop3_locks_recheck(struct pop3_server *srv);

/* deadline.c: slow clients (per-line deadline, max_session_time). */
/* Accept: start the max_session_time timer. */
void pop3_deadline_start(struct pop3_session *s);
void pop3_deadline_stop(struct pop3_session *s);
/* A command (or SASL) line is awaited: its deadline runs from the first
 * call after pop3_deadline_line_taken or pop3_deadline_clear. */
void pop3_deadline_line(struct pop3_session *s);
/* A line was taken: the next one gets its own deadline. */
void pop3_deadline_line_taken(struct pop3_session *s);
/* Nothing is awaited from the client (long output, auth, TLS). */
void pop3_deadline_clear(struct pop3_session *s);
/* CONN_EV_TIMEOUT (not while closing): true when handled here (a line
 * deadline: -ERR and close; a response that outlived max_session_time:
 * the session is FREED); false: an idle timeout for the caller. */
bool pop3_deadline_timeout(struct pop3_session *s);
/* If max_session_time passed: -ERR [SYS/TEMP], close, true. */
bool pop3_deadline_expired(struct pop3_session *s);
/* retention.c: RFC 2449 EXPIRE and LOGIN-DELAY */
/* Start the expiry sweep (every interval_ms; 0 = the default minute). */
void pop3_retention_start(struct pop3_server *srv, unsigned interval_ms);
void pop3_retention_stop(struct pop3_server *srv);
/* CAPA's EXPIRE and LOGIN-DELAY lines for the session's state. */
void pop3_retention_capa(struct pop3_session *s);
/* Before a login of canonical: 0 go on, or -1 when it comes sooner than
 * [pop3d] login_delay after the last one (-ERR [LOGIN-DELAY] sent). */
int pop3_retention_login_check(struct pop3_session *s,
    const char *canonical);
/* After the login snapshot: the user's EXPIRE (store_user_get_expire's
 * result: expire_rc, expire, and its error when it failed) and the RETR
 * marks. */
void pop3_retention_login(struct pop3_session *s, int expire_rc,
    int64_t expire, const char *error);
/* A RETR of msgs[s->fetch_idx] was sent whole. */
void pop3_retention_retrieved(struct pop3_session *s);
/* QUIT's store work in one transaction: DELE marks, EXPIRE 0 deletions,
 * first-retrieved times. *deleted_r: DELE'd rows removed; *expired_r:
 * removed by EXPIRE 0. 0 / -1 (store_error). */
int pop3_retention_quit(struct pop3_session *s, size_t *deleted_r,
    size_t *expired_r);

/* commands.c */
/* Dispatch one command line (borrowed, may be modified). */
void pop3_cmd_dispatch(struct pop3_session *s, char *line, size_t len);
/* The message for a number argument (*idx_r its index), or NULL after
 * replying -ERR (RFC 1939: a deleted message may not be referred to).
 * rest_r: the text after the number, or NULL if none may follow. */
struct store_msg *pop3_cmd_msg(struct pop3_session *s, const char *arg,
    const char **rest_r, size_t *idx_r);

/* fetch.c: RETR and TOP. */
void pop3_fetch_cmd(struct pop3_session *s, char *args, bool top);
/* Frees the read-ahead, s->fetch_mem (the response's end, a stall,
 * pop3_session_free). */
void pop3_fetch_readahead_free(struct pop3_session *s);

/* readq.c: reads on threads (srv->readq[kind] NULL: on the loop). */
void pop3_readq_start(struct pop3_server *srv);
void pop3_readq_stop(struct pop3_server *srv);
/* work(job, store) on a thread, then done(job, cancelled) on the loop,
 * which calls pop3_readq_done first unless cancelled. The session waits
 * (POP3_IN_WAIT) meanwhile. false: the queue is full, nothing submitted. */
bool pop3_readq_submit(struct pop3_session *s, enum pop3_readq_kind kind,
    void *job, workq_work_fn *work, workq_done_fn *done);
/* The read is back: input resumes; reconnected: the thread found the
 * server restarted (pop3_locks_recheck). */
void pop3_readq_done(struct pop3_session *s, bool reconnected);
/* Its done() gets cancelled = true (pop3_session_free). */
void pop3_readq_cancel(struct pop3_session *s);

/* login.c: authenticated as canonical: lock (if configured), take the
 * snapshot (on a readq thread) and enter TRANSACTION, or reply -ERR
 * and stay in AUTHORIZATION. */
void pop3_session_login(struct pop3_session *s, const char *canonical);

#endif
