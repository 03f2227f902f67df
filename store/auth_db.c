/*
 * struct auth_db over the store: see auth_db.h. Adapts only; password
 * checking stays in common/auth.c.
 */
#include "store/auth_db.h"

#include <string.h>

#include "common/auth.h"
#include "store/store.h"

static void *store_auth_db_open(const char *path, const char **error_r);
static void store_auth_db_close(void *handle);
static int store_auth_db_lookup(void *handle, const char *address,
    struct auth_user *u);
static int store_auth_db_set_hash(void *handle, const char *address,
    const char *hash);

const struct auth_db store_auth_db = {
	.open = store_auth_db_open,
	.close = store_auth_db_close,
	.lookup = store_auth_db_lookup,
	.set_hash = store_auth_db_set_hash,
};

static void *
store_auth_db_open(const char *path, const char **error_r)
{
	return store_open(path, error_r);
}

static void
store_auth_db_close(void *handle)
{
	store_close(handle);
}

static int
store_auth_db_lookup(void *handle, const char *address, struct auth_user *u)
{
	struct store_user su;
	int r;

	memset(&su, 0, sizeof(su));
	r = store_user_get(handle, address, &su);
	if (r == 0) {
		/* The strings change owner. */
		u->address = su.address;
		u->hash = su.hash;
		u->enabled = su.enabled;
		su.address = su.hash = NULL;
	}
	store_user_clear(&su);
	return r;
}

static int
store_auth_db_set_hash(void *handle, const char *address, const char *hash)
{
	return store_user_set_hash(handle, address, hash);
}
