/*
 * The MTA-STS policy cache (schema 9): per destination domain, the policy
 * the relay last fetched (RFC 8461), kept across restarts.
 */
#ifndef CARTEIRO_STORE_MTA_STS_H
#define CARTEIRO_STORE_MTA_STS_H

#include <stddef.h>
#include <stdint.h>

struct store;

struct store_mta_sts {
	char *domain;
	char *id;			/* the TXT record's id */
	char *policy;			/* the policy file */
	int64_t fetched, expires;	/* unix time */
};

/* Insert or replace domain's row. 0 or -1. */
int store_mta_sts_put(struct store *st, const struct store_mta_sts *row);
/* Rows with expires > now: 0 and *rows_r / *n_r (free with
 * store_mta_sts_free), -1. */
int store_mta_sts_list(struct store *st, int64_t now,
    struct store_mta_sts **rows_r, size_t *n_r);
void store_mta_sts_free(struct store_mta_sts *rows, size_t n);

#endif
