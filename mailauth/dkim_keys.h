/*
 * DKIM key files: <keydir>/<domain>/<selector>.key, mode 0600 in a 0700
 * directory, where keydir is "dkim" beside the database file. The first
 * line names the algorithm ("# carteiro dkim ed25519"), the rest is the
 * key text of dkim_keygen(). carteiroctl writes them; the relay reads them
 * to sign.
 */
#ifndef CARTEIRO_DKIM_KEYS_H
#define CARTEIRO_DKIM_KEYS_H

#include "mailauth/dkim.h"

#include <stddef.h>

struct cfg;

/* "<dir of store.path>/dkim". Caller frees. */
char *dkim_keys_dir(const struct cfg *cfg);

struct dkim_keyfile {
	char *domain;
	char *selector;
	enum dkim_alg alg;
	char *privkey;		/* key text (wiped by dkim_keyfile_clear) */
};
void dkim_keyfile_clear(struct dkim_keyfile *k);

/* Every key of domain (NULL: of every domain), sorted by domain then
 * selector. Caller frees with dkim_keyfiles_free. 0 / -1 (*error_r). */
int dkim_keys_list(const char *keydir, const char *domain,
    struct dkim_keyfile **keys_r, size_t *n_r, const char **error_r);
void dkim_keyfiles_free(struct dkim_keyfile *keys, size_t n);

/* Write a new key; 1 if that selector already exists. uid/gid: owner to
 * give the file and directories when running as root (-1: unchanged). */
int dkim_keys_write(const char *keydir, const struct dkim_keyfile *k,
    int uid, int gid, const char **error_r);
/* 1 if missing. */
int dkim_keys_delete(const char *keydir, const char *domain,
    const char *selector, const char **error_r);

/* Selector syntax: DNS labels, [a-z0-9-] separated by dots, <= 63. */
int dkim_selector_valid(const char *s);

#endif
