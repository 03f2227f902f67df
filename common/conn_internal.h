/*
 * Internals shared by the connection's files: struct conn and the calls
 * across them. conn.c: lifetime, frames, event registration, timers;
 * conn_io.c: read, write, connect, the line reader; conn_tls.c: starting
 * TLS and the handshake. Session code uses conn.h only.
 */
#ifndef CARTEIRO_CONN_INTERNAL_H
#define CARTEIRO_CONN_INTERNAL_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/util.h>

#include "common/conn.h"

enum conn_tls_state {
	CONN_TLS_NONE,
	CONN_TLS_WAIT_FLUSH,	/* conn_starttls*: plaintext output first */
	CONN_TLS_HANDSHAKE,
	CONN_TLS_ON,
};

struct conn {
	struct event_base *base;
	int fd;
	struct event *ev_read;
	struct event *ev_kick;	/* re-runs the read side from the loop: an
				 * I/O event made active with event_active()
				 * is not registered by event_add() until it
				 * has run (libevent 2.1), so we never
				 * activate ev_read itself */
	struct event *ev_write;
	struct event *ev_flush;	/* the optimistic write for output queued
				 * outside our own callbacks (made active,
				 * never added) */
	struct event *ev_timer;	/* idle timeout, or connect timeout */
	struct event *ev_deadline; /* conn_set_deadline; NULL until first
				 * used (servers never pay for it) */
	bool deadline_passed;	/* ev_deadline fired since it was set */
	uint64_t deadline_at;	/* util_now_ms() the deadline is due, 0 =
				 * none; conn_extend_deadline moves it
				 * later without touching the timer */
	uint64_t deadline_timer_at; /* when ev_deadline, if pending, fires:
				 * <= deadline_at (it re-arms for the rest) */
	bool read_added;
	bool write_added;
	bool flush_pending;	/* ev_flush is active */
	bool write_blocked;	/* the last flush left output behind: wait
				 * for the socket to be writable */
	struct evbuffer *in;
	struct evbuffer *out;
	conn_cb *cb;
	void *arg;

	int timeout_ms;		/* idle timeout, 0 = none */
	uint64_t progress_ms;	/* util_now_ms() of the last progress */
	int timer_ms;		/* timeout ev_timer was armed for, 0 = none */
	int connect_timeout_ms;
	size_t lowat;
	bool lowat_armed;	/* output was above lowat since last LOWAT */

	bool connecting;
	int connect_errno;	/* connect(2) failed at once */
	bool paused;
	bool closing;		/* conn_close_after_flush */
	bool close_notified;	/* closing: the final LOWAT was reported */
	bool eof;
	bool failed;		/* CONN_EV_ERROR reported */
	bool redeliver;		/* resume: report buffered input again */
	int in_frame;		/* > 0 while a libevent callback runs */
	bool freed;		/* conn_free() inside a frame */

	enum conn_tls_state tls_state;
	struct tls_session *tls;
	int tls_hs_want;	/* TLS_IO_WANT_* while handshaking */
	/* A handshake step is on a worker (conn_tls.c): until its result is
	 * back on the loop the worker owns tls and tls_hs_result, and the
	 * loop neither watches the fd nor touches them; conn_free defers
	 * the free to the result. */
	bool tls_hs_busy;
	bool tls_server;	/* conn_starttls (not _client) */
	int tls_hs_result;	/* written by the worker */
	bool tls_read_wants_write;
	bool tls_write_wants_read;
	size_t tls_wlen;	/* GnuTLS E_AGAIN: retry with this length */
	size_t plain_left;	/* WAIT_FLUSH: plaintext bytes still to send;
				 * output queued later waits for TLS */

	char *line;		/* conn_getline scratch, line_cap bytes */
	size_t line_cap;
	bool line_skip;		/* discarding a too-long line up to LF */

	struct sockaddr_storage peer;
	socklen_t peer_len;
	char peer_ip[INET6_ADDRSTRLEN];
	bool peer_loopback;

	size_t bytes_in;	/* application bytes (after TLS) */
	size_t bytes_out;
	char error[256];
};

/* ---- conn.c ---- */

/* Every libevent callback runs inside a frame; conn_free() inside one only
 * marks the conn, and leaving the outermost frame frees it. */
static inline void
conn_frame_enter(struct conn *c)
{
	c->in_frame++;
}

void conn_frame_leave(struct conn *c);

/* Report ev; false if the callback freed the conn (stop touching it). */
static inline bool
conn_dispatch(struct conn *c, enum conn_event ev)
{
	assert(c->in_frame > 0);
	if (c->freed)
		return false;
	c->cb(c, ev, c->arg);
	return !c->freed;
}

/* Latch the error, report CONN_EV_ERROR once; always returns false. */
bool conn_fail(struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Make the registered events match the state. */
void conn_update(struct conn *c);
/* Progress: the idle (or connect) timeout starts again. */
void conn_timer_rearm(struct conn *c);

/* ---- conn_io.c: each step returns false when the caller must stop ---- */

bool conn_read_step(struct conn *c);
bool conn_flush_step(struct conn *c);
bool conn_connect_step(struct conn *c);
/* The read and write events of the fd (and the read kick). */
void conn_on_read(evutil_socket_t fd, short what, void *arg);
void conn_on_write(evutil_socket_t fd, short what, void *arg);

/* ---- conn_tls.c ---- */

/* The plaintext before it is out: the handshake begins. */
bool conn_handshake_start(struct conn *c);
bool conn_handshake_step(struct conn *c);

#endif
