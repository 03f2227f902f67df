/*
 * A connection: a non-blocking socket, an input and an output evbuffer,
 * optional TLS (via tls.h), a bounded line reader, an idle timeout and a
 * write-low-water callback. Session code (smtpd, pop3d, relay client) talks
 * only to conn_*; it never touches the fd or GnuTLS. Modelled on OpenSMTPD's
 * ioev.c: one callback, explicit events.
 */
#ifndef CARTEIRO_CONN_H
#define CARTEIRO_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct evbuffer;
struct tls_ctx;
struct conn;

enum conn_event {
	CONN_EV_INPUT,		/* new bytes in conn_input() */
	CONN_EV_LOWAT,		/* output drained to <= lowat bytes */
	CONN_EV_CONNECTED,	/* conn_connect() finished */
	CONN_EV_TLS_READY,	/* TLS handshake done */
	CONN_EV_EOF,		/* peer closed (or TLS close_notify) */
	CONN_EV_ERROR,		/* I/O or TLS error: see conn_error() */
	CONN_EV_TIMEOUT,	/* no progress for conn_set_timeout(), or
				 * the conn_set_deadline() passed */
};

/*
 * The callback may call conn_free() on the connection (for example on EOF):
 * conn.c never touches the conn after a callback returns if it was freed
 * inside it.
 */
typedef void conn_cb(struct conn *c, enum conn_event ev, void *arg);

/*
 * Events are only ever reported from the event loop, never from inside a
 * conn_* call. After CONN_EV_EOF, CONN_EV_ERROR or a TIMEOUT while closing,
 * the owner is expected to conn_free(). After CONN_EV_ERROR no more events
 * come. On CONN_EV_INPUT, consume every complete line (conn_getline until
 * CONN_LINE_NONE): the same bytes are not reported twice.
 */

/* Takes ownership of fd (closed by conn_free); makes it non-blocking. */
struct conn *conn_new(struct event_base *base, int fd, conn_cb *cb, void *arg);
/* The same for a socket whose peer address is known (from accept4): saves
 * the getpeername. sa may be NULL (peer "unknown"). */
struct conn *conn_new_peer(struct event_base *base, int fd,
    const struct sockaddr *sa, socklen_t salen, conn_cb *cb, void *arg);
/* Start a non-blocking TCP connect: exactly one CONN_EV_CONNECTED or
 * CONN_EV_ERROR follows (also on timeout_ms, or an immediate failure).
 * NULL with errno only if no socket could be created. */
struct conn *conn_connect(struct event_base *base, const struct sockaddr *sa,
    socklen_t salen, int timeout_ms, conn_cb *cb, void *arg);
/* The same, bound first to src (the local address; port 0) unless NULL:
 * a bind failure is reported as the CONN_EV_ERROR of the connect. */
struct conn *conn_connect_from(struct event_base *base,
    const struct sockaddr *sa, socklen_t salen, const struct sockaddr *src,
    socklen_t srclen, int timeout_ms, conn_cb *cb, void *arg);
/* Hand the connection's events to another owner (a pooled connection). */
void conn_set_callback(struct conn *c, conn_cb *cb, void *arg);
/* Closes the socket, frees buffers and TLS. Accepts NULL. Safe inside the
 * callback (the memory goes when the callback returns). */
void conn_free(struct conn *c);

/* Idle timeout (0 = none): CONN_EV_TIMEOUT when neither a read nor a write
 * made progress for timeout_ms. Also bounds a TLS handshake and a
 * conn_close_after_flush. Reported once, re-armed by the next progress. */
void conn_set_timeout(struct conn *c, int timeout_ms);
/* Deadline (0 = none): CONN_EV_TIMEOUT once ms from now, however much
 * I/O happens meanwhile (a peer trickling a byte at a time cannot push it
 * back, unlike the idle timeout). Each call replaces the previous
 * deadline; the idle timeout keeps running next to it. During a
 * conn_connect it fails the connect like the connect timeout. */
void conn_set_deadline(struct conn *c, int ms);
/* Push a pending deadline back by ms, but to no more than max_ms from now
 * (Postfix's smtpd_min_data_rate: the bytes a client sends earn it time,
 * so a client below the rate runs out of it). Cheap enough to call per
 * read: the timer is not touched, it re-arms itself for the rest when it
 * comes early. Nothing happens without a pending deadline. */
void conn_extend_deadline(struct conn *c, int ms, int max_ms);
/* The last CONN_EV_TIMEOUT came from the deadline (until the next
 * conn_set_deadline). */
bool conn_deadline_passed(struct conn *c);
/* TCP_NODELAY: small request/reply exchanges on a kept connection (a
 * milter) must not wait for Nagle and delayed ACKs. -1 with errno on a
 * socket that is no TCP socket (AF_UNIX: harmless). */
int conn_set_nodelay(struct conn *c);
/* CONN_EV_LOWAT is reported when output drains to <= lowat (default 0)
 * after having been above it (also after direct evbuffer writes to
 * conn_output()). */
void conn_set_lowat(struct conn *c, size_t lowat);
/* No reads while paused (output still flows). On resume, input that is
 * already buffered is reported again as CONN_EV_INPUT from the loop. */
void conn_pause_read(struct conn *c);
void conn_resume_read(struct conn *c);

struct evbuffer *conn_input(struct conn *c);
struct evbuffer *conn_output(struct conn *c);
size_t conn_output_len(struct conn *c);
void conn_write(struct conn *c, const void *data, size_t len);
void conn_printf(struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Stop reading (buffered input is dropped), flush the output (and a TLS
 * close_notify), then report CONN_EV_LOWAT once with the output empty:
 * the owner frees the conn then. A peer that is gone gives CONN_EV_ERROR,
 * one that stops reading CONN_EV_TIMEOUT (if a timeout is set): free on
 * those too. */
void conn_close_after_flush(struct conn *c);
bool conn_is_closing(struct conn *c);

enum conn_line {
	CONN_LINE_OK,		/* *line_r valid */
	CONN_LINE_NONE,		/* no complete line yet */
	CONN_LINE_TOO_LONG,	/* max bytes without LF: input discarded up
				 * to and including the next LF as it comes;
				 * reported once per overlong line */
};

/*
 * Take one line from the input: up to LF, with the LF and a preceding CR
 * stripped. max counts the line with its CRLF (SMTP: 512 for commands,
 * 1000 for text lines), so the LF must be among the first max bytes.
 * *bare_lf_r (may be NULL) says it ended in LF without CR (a CR elsewhere
 * in the line is left in place). The line is NUL-terminated; *line_r is
 * borrowed and valid until the next conn_getline or conn_free on c. Lines
 * containing NUL bytes are returned whole, with their length in *len_r
 * (may be NULL).
 */
enum conn_line conn_getline(struct conn *c, size_t max, char **line_r,
    size_t *len_r, bool *bare_lf_r);

/* The last line held a secret (a password or its base64): wipe the line
 * buffer and this thread's read buffer. conn_getline already wiped the
 * input bytes it consumed; *line_r is invalid afterwards. */
void conn_wipe_line(struct conn *c);

/* Begin TLS as server (STARTTLS/STLS, or implicit TLS right after
 * conn_new). Any input already buffered is discarded (plaintext injection
 * defence), output already queued (the "220 Ready" reply) is sent in
 * plaintext first, then the handshake runs; output queued after this call
 * only ever travels inside TLS. Reports CONN_EV_TLS_READY or
 * CONN_EV_ERROR (or TIMEOUT); no INPUT/LOWAT before that. -1 (and
 * conn_error) if TLS is already on or the session cannot be created. */
int conn_starttls(struct conn *c, struct tls_ctx *ctx);
/* Begin TLS as client (relay). server_name: SNI and the name checked for
 * conn_tls_verified (may be NULL). Same discarding and events. */
int conn_starttls_client(struct conn *c, struct tls_ctx *ctx,
    const char *server_name);
/*
 * TLS handshakes off the loop thread: from now on each handshake step of
 * a conn on base (server or client side) runs on one of nthreads worker
 * threads (0: one per CPU) while the conn does not watch its socket, and
 * the result comes back on the loop (workq.h). Without it, or for a conn
 * on another base, the steps run on the loop. Once per process, on the
 * loop thread. conn_tls_offload_stop: after the sessions' conn_free (it
 * completes frees deferred while a step was out; a live conn with a step
 * out gets CONN_EV_ERROR) and before event_base_free.
 */
void conn_tls_offload_start(struct event_base *base, unsigned nthreads);
void conn_tls_offload_stop(void);
/* Tests: while held, steps submitted wait (the conns stay busy). */
void conn_tls_offload_hold(bool hold);
/* True once the handshake is done. */
bool conn_is_tls(struct conn *c);
/* Client side: the server's certificate verified for server_name. */
bool conn_tls_verified(struct conn *c);
/* Client side: the server's chain against TLSA records (DANE, RFC 7672;
 * tls_session_dane_match in tls.h). 1 match; 0 and *why_r. */
int conn_tls_dane_match(struct conn *c, const char *const *tlsa, size_t n,
    const char *host, const char **why_r);
/* "TLSv1.3", "TLS_AES_256_GCM_SHA384", or NULL without TLS. */
const char *conn_tls_version(struct conn *c);
const char *conn_tls_cipher(struct conn *c);
/* Text of the last error ("" if none); valid while c lives. */
const char *conn_error(struct conn *c);
/*
 * After CONN_EV_ERROR, the disconnect reason every daemon logs for it:
 * "tls_handshake" (the handshake failed; conn_error says what the client
 * did), "tls_error" (TLS failed after it) or "io_error" (the socket).
 * Static string.
 */
const char *conn_error_reason(struct conn *c);

/* Peer address as text ("127.0.0.1", "::1"; IPv4-mapped IPv6 is shown as
 * IPv4; "local" for AF_UNIX) and whether it is loopback (127.0.0.0/8, ::1,
 * ::ffff:127.x, AF_UNIX). */
const char *conn_peer_ip(struct conn *c);
bool conn_peer_is_loopback(struct conn *c);
/* The peer's sockaddr (*len_r set), or NULL if unknown. Borrowed. */
const struct sockaddr *conn_peer_addr(struct conn *c, socklen_t *len_r);

/* Application bytes read/written so far (after TLS decryption; for logs). */
size_t conn_bytes_in(struct conn *c);
size_t conn_bytes_out(struct conn *c);

#endif
