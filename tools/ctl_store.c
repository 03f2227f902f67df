/*
 * carteiroctl store copy --to URL: the configured (SQLite) store, live,
 * into an empty PostgreSQL store (store/copy.c). URL is what [store] url
 * takes: a libpq URI (postgresql://...) or a keyword string
 * (service=NAME); never a password (it comes from a passfile or the
 * service file: db_open_pg refuses one). A path instead of a URL copies
 * into a new SQLite file. DKIM private keys are files beside the store,
 * not rows: the output says where they are, to be copied to each node.
 */
#include "tools/ctl.h"
#include "tools/ctl_admin.h"
#include "common/config.h"
#include "common/util.h"
#include "mailauth/dkim_keys.h"
#include "store/copy.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool ctl_store_is_pg(const char *url);

/* A PostgreSQL URL or conninfo, not a file path. */
static bool
ctl_store_is_pg(const char *url)
{
	return strncmp(url, "postgresql://", 13) == 0 ||
	    strncmp(url, "postgres://", 11) == 0 || strchr(url, '=') != NULL;
}

int
ctl_store_copy(struct ctl *ctl, int argc, char **argv)
{
	struct store_copy_counts c;
	struct store *dst;
	const char *url, *err;
	char *locator, *keys, *s;
	int ret = 1;

	(void)argc;
	if (strcmp(argv[2], "--to") != 0) {
		ctl_err("usage: carteiroctl -c CONF store copy --to URL");
		return 1;
	}
	url = argv[3];
	if (*url == '\0') {
		ctl_err("store copy: empty URL");
		return 1;
	}
	/* A path: a SQLite file, created if missing (store_copy refuses
	 * one that holds mail, the source itself included). */
	locator = ctl_store_is_pg(url) ? cfg_store_locator(url) :
	    xstrdup(url);
	if ((dst = store_open(locator, &err)) == NULL) {
		s = ctl_oneline(err);
		ctl_err("store copy: %s", s);
		free(s);
		goto out;
	}
	if (store_copy(ctl->st, dst, &c) < 0) {
		s = ctl_oneline(store_error(dst));
		ctl_err("store copy: %s", s);
		free(s);
		goto out;
	}
	ctl_done("copied %lld users, %lld messages, %lld bodies, %lld "
	    "queued (%lld rows)", (long long)c.users, (long long)c.messages,
	    (long long)c.bodies, (long long)c.queue, (long long)c.rows);
	keys = dkim_keys_dir(ctl->cfg);
	ctl_done("DKIM keys are files, not copied: copy %s to every node",
	    keys);
	free(keys);
	ret = 0;
out:
	store_close(dst);
	free(locator);
	return ret;
}
