/*
 * TLS on a connection: conn_starttls / conn_starttls_client (discard the
 * plaintext input, let the queued plaintext reply go out first), the
 * handshake step, and what a session may ask about TLS. The record I/O
 * is in conn_io.c; GnuTLS itself stays behind tls.h.
 *
 * Handshake steps run on a worker pool (conn_tls_offload_start): a full
 * server handshake is one RSA or ECDSA signature plus ECDHE, far more CPU
 * than anything else a session does, and GnuTLS has no asynchronous
 * private-key hook. So the step itself (one gnutls_handshake call on the
 * non-blocking fd, which returns at EAGAIN) moves: the conn stops watching
 * its fd (tls_hs_busy), a worker runs the step, and the result comes back
 * on the loop through the workq, which resumes watching in the direction
 * GnuTLS asked for or reports TLS_READY. While busy the worker owns
 * c->tls and c->tls_hs_result and nothing else; conn_free defers the free
 * to the result.
 */
#include "common/conn_internal.h"
#include "common/tls.h"
#include "common/workq.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include <event2/buffer.h>
#include <event2/event.h>

static int conn_starttls_common(struct conn *c, struct tls_ctx *ctx,
    int is_server, const char *server_name);
static bool conn_handshake_result(struct conn *c, int r);
static void *conn_tls_thread_init(void *arg);
static void conn_tls_hs_work(void *job, void *thread_ctx);
static void conn_tls_hs_done(void *job, bool cancelled);

/* The handshake pool and the loop its results go to (one per process). */
static struct workq *conn_tls_wq;
static struct event_base *conn_tls_wq_base;

static void *
conn_tls_thread_init(void *arg)
{
	/* "top -H" and perf show the handshake workers by name. */
	(void)pthread_setname_np(pthread_self(), "tls-hs");
	return arg;
}

void
conn_tls_offload_start(struct event_base *base, unsigned nthreads)
{
	if (conn_tls_wq != NULL)
		return;
	if (nthreads == 0)
		nthreads = workq_ncpu();
	/* A conn has at most one step in at a time: no limit needed. */
	conn_tls_wq = workq_new(base, nthreads, UINT32_MAX,
	    conn_tls_thread_init, NULL, NULL);
	conn_tls_wq_base = base;
}

void
conn_tls_offload_stop(void)
{
	struct workq *q = conn_tls_wq;

	/* Steps still out come back (cancelled if not run) and complete
	 * their deferred frees; new ones run on the loop meanwhile. */
	conn_tls_wq = NULL;
	conn_tls_wq_base = NULL;
	workq_free(q);
}

void
conn_tls_offload_hold(bool hold)
{
	if (conn_tls_wq != NULL)
		workq_hold(conn_tls_wq, hold);
}

/* On a worker: the only thing it touches is the session and the result. */
static void
conn_tls_hs_work(void *job, void *thread_ctx)
{
	struct conn *c = job;

	(void)thread_ctx;
	c->tls_hs_result = tls_session_handshake(c->tls);
}

/* On the loop: the step is back. */
static void
conn_tls_hs_done(void *job, bool cancelled)
{
	struct conn *c = job;

	conn_frame_enter(c);
	c->tls_hs_busy = false;
	if (c->freed || c->failed) {
		/* leaving the frame frees it */
	} else if (cancelled) {
		(void)conn_fail(c, "handshake: server shutting down");
	} else if (c->closing) {
		/* Closed meanwhile (a timeout): conn_update lets
		 * conn_on_write finish the close. */
	} else {
		(void)conn_handshake_result(c, c->tls_hs_result);
	}
	conn_frame_leave(c);
}

/*
 * The plaintext before the handshake is out. With the pool a server waits
 * for the ClientHello on the loop rather than send a worker a step that
 * would find nothing to read; a client sends its ClientHello.
 */
bool
conn_handshake_start(struct conn *c)
{
	c->tls_state = CONN_TLS_HANDSHAKE;
	if (c->tls_server && conn_tls_wq != NULL &&
	    c->base == conn_tls_wq_base) {
		c->tls_hs_want = TLS_IO_WANT_READ;
		return true;
	}
	return conn_handshake_step(c);
}

/* The handshake ran a step: TLS_READY once done, ERROR on failure. */
bool
conn_handshake_step(struct conn *c)
{
	if (c->tls_hs_busy)
		return true;
	if (conn_tls_wq != NULL && c->base == conn_tls_wq_base) {
		c->tls_hs_busy = true;
		if (workq_submit(conn_tls_wq, c, conn_tls_hs_work,
		    conn_tls_hs_done) != 0) {
			/* Leaving the frame stops watching the fd. */
			return true;
		}
		c->tls_hs_busy = false;
	}
	return conn_handshake_result(c, tls_session_handshake(c->tls));
}

static bool
conn_handshake_result(struct conn *c, int r)
{
	if (r == TLS_IO_WANT_READ || r == TLS_IO_WANT_WRITE) {
		c->tls_hs_want = r;
		return true;
	}
	if (r != TLS_IO_OK)
		return conn_fail(c, "%s", tls_session_error(c->tls));
	c->tls_state = CONN_TLS_ON;
	c->tls_hs_want = 0;
	conn_timer_rearm(c);
	if (!conn_dispatch(c, CONN_EV_TLS_READY))
		return false;
	/* Application data may have arrived with the client's Finished. */
	event_active(c->ev_kick, EV_READ, 1);
	return true;
}

static int
conn_starttls_common(struct conn *c, struct tls_ctx *ctx, int is_server,
    const char *server_name)
{
	if (c->tls_state != CONN_TLS_NONE || c->failed || c->freed ||
	    c->closing || c->connecting) {
		snprintf(c->error, sizeof(c->error), "starttls: bad state");
		return -1;
	}
	c->tls = tls_session_new(ctx, c->fd, is_server, server_name);
	if (c->tls == NULL) {
		snprintf(c->error, sizeof(c->error),
		    "starttls: cannot create TLS session");
		return -1;
	}
	/* RFC 3207 6 / RFC 2595 4: anything the peer sent before the
	 * handshake is discarded, never executed after it. */
	evbuffer_drain(c->in, evbuffer_get_length(c->in));
	c->tls_server = is_server != 0;
	c->line_skip = false;
	c->redeliver = false;
	c->lowat_armed = false;
	c->plain_left = evbuffer_get_length(c->out);
	c->tls_state = CONN_TLS_WAIT_FLUSH;
	conn_timer_rearm(c);
	conn_update(c);
	return 0;
}

int
conn_starttls(struct conn *c, struct tls_ctx *ctx)
{
	return conn_starttls_common(c, ctx, 1, NULL);
}

int
conn_starttls_client(struct conn *c, struct tls_ctx *ctx,
    const char *server_name)
{
	return conn_starttls_common(c, ctx, 0, server_name);
}

bool
conn_is_tls(struct conn *c)
{
	return c->tls_state == CONN_TLS_ON;
}

bool
conn_tls_verified(struct conn *c)
{
	return c->tls_state == CONN_TLS_ON && tls_session_verified(c->tls);
}

int
conn_tls_dane_match(struct conn *c, const char *const *tlsa, size_t n,
    const char *host, const char **why_r)
{
	if (c->tls_state != CONN_TLS_ON) {
		*why_r = "no TLS";
		return 0;
	}
	return tls_session_dane_match(c->tls, tlsa, n, host, why_r);
}

const char *
conn_tls_version(struct conn *c)
{
	return c->tls_state == CONN_TLS_ON ? tls_session_version(c->tls) :
	    NULL;
}

const char *
conn_error_reason(struct conn *c)
{
	const char *r = NULL;

	/* Before the handshake starts, failures are the plaintext
	 * socket's. While a worker has the session, do not look. */
	if (c->tls_hs_busy)
		return TLS_REASON_HANDSHAKE;
	if (c->tls != NULL && c->tls_state != CONN_TLS_WAIT_FLUSH)
		r = tls_session_error_reason(c->tls);
	return r != NULL ? r : TLS_REASON_IO;
}

const char *
conn_tls_cipher(struct conn *c)
{
	return c->tls_state == CONN_TLS_ON ? tls_session_cipher(c->tls) :
	    NULL;
}

