/*
 * The bounce suppression list (schema 7): recipients that hard-bounced,
 * or that an admin added, with when and why. smtpd refuses them at RCPT
 * for [relay] suppress_days; carteiroctl suppress lists and edits them.
 */
#ifndef CARTEIRO_STORE_SUPPRESS_H
#define CARTEIRO_STORE_SUPPRESS_H

#include <stddef.h>
#include <stdint.h>

struct store;

struct store_suppress {
	char *address;
	int64_t created;		/* unix time */
	char *reason;			/* the remote reply, or the admin's */
	char *origin;			/* "bounce" or "admin" */
};

/* Add address, or renew it (created, reason, origin replaced). 0 or -1. */
int store_suppress_add(struct store *st, const char *address,
    int64_t created, const char *reason, const char *origin);
/* 0 deleted, 1 not listed, -1 store error. */
int store_suppress_del(struct store *st, const char *address);
/* address listed with created >= since: 0 and *row_r filled (free with
 * store_suppress_clear), 1 if not, -1 on a store error. */
int store_suppress_find(struct store *st, const char *address,
    int64_t since, struct store_suppress *row_r);
/* Every row, by address: 0 and *rows_r / *n_r (free with
 * store_suppress_free), -1. */
int store_suppress_list(struct store *st, struct store_suppress **rows_r,
    size_t *n_r);
void store_suppress_clear(struct store_suppress *row);
void store_suppress_free(struct store_suppress *rows, size_t n);

#endif
