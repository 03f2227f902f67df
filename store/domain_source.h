/*
 * A local domain's own outbound identity (schema 7, domains.source_ip and
 * domains.helo): the address its mail leaves from and the name it greets
 * with, for a business that sends from its own address. Set with
 * carteiroctl domain set; the relay picks it by the sender's domain.
 */
#ifndef CARTEIRO_STORE_DOMAIN_SOURCE_H
#define CARTEIRO_STORE_DOMAIN_SOURCE_H

#include <stddef.h>

struct store;

struct store_domain_source {
	char *domain;
	char *source_ip;		/* "ip" or "ip,ip"; NULL: unset */
	char *helo;			/* NULL: unset */
};

/* Set one column (which: "source_ip" or "helo"; value NULL or "" unsets
 * it). 0, 1 if the domain is not local, -1. */
int store_domain_source_set(struct store *st, const char *domain,
    const char *which, const char *value);
/* 0 and *row_r (free with store_domain_source_clear; columns may be
 * NULL), 1 if the domain is not local, -1. */
int store_domain_source_get(struct store *st, const char *domain,
    struct store_domain_source *row_r);
void store_domain_source_clear(struct store_domain_source *row);
/* Every address some domain's source_ip names, each once (the daily
 * DNSBL self-check): 0 and *ips_r, *n_r (caller frees each and the
 * array), -1. */
int store_domain_source_ips(struct store *st, char ***ips_r, size_t *n_r);

#endif
