/*
 * Destinations the relay is throttling itself for (schema 7,
 * relay_throttle): written by carteiro-smtpd's relay whenever it backs
 * off or recovers, read by carteiroctl queue list. The relay's memory is
 * the truth; the table is its report.
 */
#ifndef CARTEIRO_STORE_THROTTLE_H
#define CARTEIRO_STORE_THROTTLE_H

#include <stddef.h>
#include <stdint.h>

struct store;

struct store_throttle {
	char *domain;
	unsigned concurrency;		/* connections it allows itself */
	int64_t held_until;		/* no new connection before */
	int64_t since;			/* first throttling reply */
	char *reason;			/* the last throttling reply */
};

/* Insert or replace the domain's row. 0 or -1. */
int store_throttle_set(struct store *st, const struct store_throttle *t);
/* Remove the domain's row (recovered), or every row (domain NULL: a
 * relay starting afresh). 0 or -1. */
int store_throttle_del(struct store *st, const char *domain);
/* Every row, by domain: 0 and *rows_r / *n_r (store_throttle_free), -1. */
int store_throttle_list(struct store *st, struct store_throttle **rows_r,
    size_t *n_r);
void store_throttle_free(struct store_throttle *rows, size_t n);

#endif
