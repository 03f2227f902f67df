/*
 * The RCPT-time bounce suppression check (smtpd/tx.c calls it for a
 * remote recipient): store/suppress.h's list, [relay] suppress_days.
 */
#ifndef CARTEIRO_TX_SUPPRESS_H
#define CARTEIRO_TX_SUPPRESS_H

struct smtp_session;

/* 0: not suppressed; 1: refused with "550 5.1.1 <addr>: ... suppressed
 * since DATE after a hard bounce: REPLY" (reply sent); -1: store error
 * (nothing sent). */
int smtp_tx_suppressed(struct smtp_session *s, const char *addr);

#endif
