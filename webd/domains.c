/*
 * The local domains, looked up in the store for each request (so a domain
 * added with carteiroctl is served at once). One store connection shared
 * by the listener threads behind a mutex; a lookup is one indexed row.
 */
#include <pthread.h>
#include <stdlib.h>

#include "common/util.h"
#include "store/store.h"
#include "webd/webd.h"

struct webd_domains {
	pthread_mutex_t lock;	/* guards st */
	struct store *st;
};

struct webd_domains *
webd_domains_open(const char *path, const char **error_r)
{
	struct webd_domains *d;
	struct store *st;

	st = store_open(path, error_r);
	if (st == NULL)
		return NULL;
	if (store_check_schema(st) < 0) {
		store_close(st);
		*error_r = "schema is not current, run carteiroctl init";
		return NULL;
	}
	d = xcalloc(1, sizeof(*d));
	pthread_mutex_init(&d->lock, NULL);
	d->st = st;
	return d;
}

void
webd_domains_close(struct webd_domains *d)
{
	if (d == NULL)
		return;
	store_close(d->st);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

int
webd_domains_is_local(struct webd_domains *d, const char *domain)
{
	int r;

	pthread_mutex_lock(&d->lock);
	r = store_domain_is_local(d->st, domain);
	pthread_mutex_unlock(&d->lock);
	return r;
}
