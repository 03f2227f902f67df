/*
 * TLS on a connection: conn_starttls / conn_starttls_client (discard the
 * plaintext input, let the queued plaintext reply go out first), the
 * handshake step, and what a session may ask about TLS. The record I/O
 * is in conn_io.c; GnuTLS itself stays behind tls.h.
 */
#include "common/conn_internal.h"
#include "common/tls.h"

#include <stdio.h>

#include <event2/buffer.h>
#include <event2/event.h>

static int conn_starttls_common(struct conn *c, struct tls_ctx *ctx,
    int is_server, const char *server_name);

/* The handshake ran a step: TLS_READY once done, ERROR on failure. */
bool
conn_handshake_step(struct conn *c)
{
	int r;

	r = tls_session_handshake(c->tls);
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
	 * socket's. */
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

