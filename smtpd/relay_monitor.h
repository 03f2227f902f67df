/*
 * The daily DNSBL check of the relay's own outbound addresses (issue 16
 * item 7): listings are logged and mailed to the postmaster once.
 */
#ifndef CARTEIRO_RELAY_MONITOR_H
#define CARTEIRO_RELAY_MONITOR_H

struct event_base;
struct cfg;
struct dns;
struct relay_monitor;

/* NULL when no zone is configured ([relay] monitor_dnsbl, [smtpd]
 * dnsbl). cfg and dns are borrowed and outlive it. */
struct relay_monitor *relay_monitor_new(struct event_base *base,
    const struct cfg *cfg, struct dns *dns);
/* Before dns_free. Accepts NULL. */
void relay_monitor_free(struct relay_monitor *mo);

#endif
