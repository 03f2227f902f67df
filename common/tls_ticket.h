/*
 * Server session tickets (RFC 5077, TLS 1.3 NewSessionTicket): the key
 * that seals them. Private to the TLS module: only tls.c calls in here.
 */
#ifndef CARTEIRO_TLS_TICKET_H
#define CARTEIRO_TLS_TICKET_H

#include <gnutls/gnutls.h>

/* Let session gs issue and accept tickets. Creates the process's ticket
 * key on first use; without one (logged once) sessions just get none. */
void tls_ticket_enable(gnutls_session_t gs);

#endif
