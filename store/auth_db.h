/*
 * The store as common/auth.c's user database (struct auth_db): the
 * daemons hand store_auth_db to auth_pool_new, so that common/ needs
 * nothing from store/.
 */
#ifndef CARTEIRO_STORE_AUTH_DB_H
#define CARTEIRO_STORE_AUTH_DB_H

struct auth_db;

/* open = store_open(path), lookup = store_user_get, set_hash =
 * store_user_set_hash. */
extern const struct auth_db store_auth_db;

#endif
