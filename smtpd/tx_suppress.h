/*
 * The RCPT-time bounce suppression check (smtpd/rcpt.c calls it for a
 * remote recipient, on the loop or a lookup thread): store/suppress.h's
 * list, [relay] suppress_days.
 */
#ifndef CARTEIRO_TX_SUPPRESS_H
#define CARTEIRO_TX_SUPPRESS_H

#include <stddef.h>

struct store;

/* 0: not suppressed (days 0: never); 1: refused, reply holds "550 5.1.1
 * <addr>: ... suppressed since DATE after a hard bounce: REASON"; -1:
 * store error. */
int smtp_tx_suppressed(struct store *st, unsigned days, const char *addr,
    char *reply, size_t reply_len);

#endif
