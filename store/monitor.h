/*
 * DNSBL listings of our outbound addresses the postmaster was told of
 * (schema 10, smtpd/relay_monitor.c).
 */
#ifndef CARTEIRO_STORE_MONITOR_H
#define CARTEIRO_STORE_MONITOR_H

#include <stdint.h>

struct store;

/* Remember ip listed on zone: 0 if it is new, 1 if it was known, -1. */
int store_monitor_listed(struct store *st, const char *ip, const char *zone,
    int64_t since, const char *reason);
/* Forget it: 0 if it was known, 1 if not, -1. */
int store_monitor_clear(struct store *st, const char *ip, const char *zone);

#endif
