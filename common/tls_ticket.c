/*
 * Session ticket key. One random master key per process, made on the first
 * server session and kept only in memory (never written, wiped at exit),
 * so a restart invalidates every ticket: the client then does a full
 * handshake, which is all a lost ticket costs. GnuTLS (>= 3.6.13) derives
 * the key that actually encrypts tickets from this master key and the
 * time, and rotates it every ticket lifetime (gnutls_db_set_cache_expiration,
 * 6 h by default), accepting the previous one too; so we never rotate the
 * master key ourselves. The same call serves TLS 1.2 tickets and TLS 1.3
 * NewSessionTicket resumption (PSK), for smtpd and pop3d alike.
 *
 * The second of the two files that include <gnutls/gnutls.h>; tls.c calls
 * tls_ticket_enable() from tls_session_new() for server sessions.
 */
#include "common/tls_ticket.h"
#include "common/log.h"

#include <pthread.h>
#include <stdlib.h>

static gnutls_datum_t ticket_key;	/* owned here, freed at exit */
static int ticket_ok;
static pthread_once_t ticket_once = PTHREAD_ONCE_INIT;

static void
tls_ticket_free(void)
{
	if (ticket_key.data == NULL)
		return;
	gnutls_memset(ticket_key.data, 0, ticket_key.size);
	gnutls_free(ticket_key.data);
	ticket_key.data = NULL;
	ticket_key.size = 0;
}

static void
tls_ticket_make(void)
{
	int ret;

	if ((ret = gnutls_session_ticket_key_generate(&ticket_key)) < 0) {
		log_error("event=tls.ticket error=\"%s\"",
		    gnutls_strerror(ret));
		return;
	}
	ticket_ok = 1;
	atexit(tls_ticket_free);
}

void
tls_ticket_enable(gnutls_session_t gs)
{
	int ret;

	pthread_once(&ticket_once, tls_ticket_make);
	if (!ticket_ok)
		return;
	if ((ret = gnutls_session_ticket_enable_server(gs, &ticket_key)) < 0)
		log_error("event=tls.ticket error=\"%s\"",
		    gnutls_strerror(ret));
}
