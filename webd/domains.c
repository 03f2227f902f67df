/*
 * webd's reads of the store: the local domains, looked up for each request
 * (so a domain added with carteiroctl is served at once), and the queue
 * figures for /metrics. One store connection shared by the listener
 * threads behind a mutex; each read is one indexed row or one aggregate.
 */
#include <pthread.h>
#include <stdlib.h>

#include "common/util.h"
#include "store/queue.h"
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

int
webd_domains_queue(struct webd_domains *d, int64_t *n_r, int64_t *oldest_r)
{
	int r;

	pthread_mutex_lock(&d->lock);
	r = store_queue_stats(d->st, n_r, oldest_r);
	pthread_mutex_unlock(&d->lock);
	return r;
}
