/*
 * Small named values the server keeps for itself in the database (the
 * settings table, schema 5): generated once and then read by every
 * process, such as the SRS secret. Not configuration: the operator's
 * settings are in carteiro.conf.
 */
#ifndef CARTEIRO_STORE_SETTINGS_H
#define CARTEIRO_STORE_SETTINGS_H

struct store;

/* The value of name: 0 and *value_r (caller frees), 1 if unset (*value_r
 * NULL), -1 on a store error. */
int store_setting_get(struct store *st, const char *name, char **value_r);

/*
 * The value of name, setting it to initial first if it is unset. Safe
 * against another process doing the same at once: both end up with the
 * one value that was stored first. 0 and *value_r (caller frees), or -1.
 */
int store_setting_init(struct store *st, const char *name,
    const char *initial, char **value_r);

#endif
