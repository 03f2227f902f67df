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
	CONN_EV_ERROR,		/* I/O or TLS error; conn_error() says which */
	CONN_EV_TIMEOUT,	/* no input for the idle timeout */
};

/*
 * The callback may call conn_free() on the connection (for example on EOF):
 * conn.c never touches the conn after a callback returns if it was freed
 * inside it.
 */
typedef void conn_cb(struct conn *c, enum conn_event ev, void *arg);

/* Takes ownership of fd (closed by conn_free). */
struct conn *conn_new(struct event_base *base, int fd, conn_cb *cb, void *arg);
/* Start a non-blocking TCP connect; CONN_EV_CONNECTED or CONN_EV_ERROR. */
struct conn *conn_connect(struct event_base *base, const struct sockaddr *sa,
    socklen_t salen, int timeout_ms, conn_cb *cb, void *arg);
/* Closes the socket, frees buffers and TLS. Accepts NULL. */
void conn_free(struct conn *c);

/* Idle timeout for reads (0 = none); re-armed by every read. */
void conn_set_timeout(struct conn *c, int timeout_ms);
/* CONN_EV_LOWAT is reported when output drains to <= lowat. */
void conn_set_lowat(struct conn *c, size_t lowat);
void conn_pause_read(struct conn *c);
void conn_resume_read(struct conn *c);

struct evbuffer *conn_input(struct conn *c);
struct evbuffer *conn_output(struct conn *c);
size_t conn_output_len(struct conn *c);
void conn_write(struct conn *c, const void *data, size_t len);
void conn_printf(struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Flush the output, then close: the callback gets CONN_EV_EOF-like
 * teardown by calling conn_free itself later; after this only output is
 * flushed and input is ignored. The callback receives CONN_EV_LOWAT once
 * output is empty so the owner can free. */
void conn_close_after_flush(struct conn *c);
bool conn_is_closing(struct conn *c);

enum conn_line {
	CONN_LINE_OK,		/* *line_r valid */
	CONN_LINE_NONE,		/* no complete line yet */
	CONN_LINE_TOO_LONG,	/* max bytes without LF: input discarded up
				 * to and including the next LF as it comes */
};

/*
 * Take one line from the input: up to LF, with the LF and a preceding CR
 * stripped. *bare_lf_r (may be NULL) says it ended in LF without CR.
 * The line is NUL-terminated; *line_r is borrowed and valid until the next
 * conn_* call on c. Lines containing NUL bytes are returned with *len_r.
 */
enum conn_line conn_getline(struct conn *c, size_t max, char **line_r,
    size_t *len_r, bool *bare_lf_r);

/* Begin TLS as server (STARTTLS/STLS or implicit TLS). Any input already
 * buffered is discarded first (plaintext injection defence). Reports
 * CONN_EV_TLS_READY or CONN_EV_ERROR. */
int conn_starttls(struct conn *c, struct tls_ctx *ctx);
/* Begin TLS as client. */
int conn_starttls_client(struct conn *c, struct tls_ctx *ctx,
    const char *server_name);
bool conn_is_tls(struct conn *c);
/* "TLSv1.3", "TLS_AES_256_GCM_SHA384", or NULL without TLS. */
const char *conn_tls_version(struct conn *c);
const char *conn_tls_cipher(struct conn *c);
const char *conn_error(struct conn *c);

/* Peer address as text ("127.0.0.1", "::1") and whether it is loopback. */
const char *conn_peer_ip(struct conn *c);
bool conn_peer_is_loopback(struct conn *c);

/* Bytes read/written on this connection so far (for logs). */
size_t conn_bytes_in(struct conn *c);
size_t conn_bytes_out(struct conn *c);

#endif
