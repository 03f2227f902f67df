/*
 * A whole-connection deadline for webd. libmicrohttpd's timeout only
 * counts idle time, so a client that trickles a byte now and then could
 * hold a connection for hours; here every connection is remembered with
 * its start, and a sweep from the main thread shuts down (shutdown(2))
 * the sockets older than the deadline, which the listener thread then
 * sees as a closed connection and cleans up. It knows nothing of HTTP.
 */
#include <stdlib.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <pthread.h>

#include "common/util.h"
#include "webd/webd.h"

struct webd_deadline_conn {
	TAILQ_ENTRY(webd_deadline_conn) entry;
	int fd;			/* borrowed: the listener thread owns it */
	uint64_t start_ms;
	bool cut;		/* shut down, waiting for its close */
};

TAILQ_HEAD(webd_deadline_list, webd_deadline_conn);

struct webd_deadline {
	pthread_mutex_t lock;	/* guards both lists */
	struct webd_deadline_list live;	/* oldest first */
	struct webd_deadline_list cut;
	uint64_t max_ms;
};

struct webd_deadline *
webd_deadline_new(unsigned max_s)
{
	struct webd_deadline *d = xcalloc(1, sizeof(*d));

	pthread_mutex_init(&d->lock, NULL);
	TAILQ_INIT(&d->live);
	TAILQ_INIT(&d->cut);
	d->max_ms = (uint64_t)max_s * 1000;
	return d;
}

void
webd_deadline_free(struct webd_deadline *d)
{
	struct webd_deadline_conn *c;

	if (d == NULL)
		return;
	while ((c = TAILQ_FIRST(&d->live)) != NULL) {
		TAILQ_REMOVE(&d->live, c, entry);
		free(c);
	}
	while ((c = TAILQ_FIRST(&d->cut)) != NULL) {
		TAILQ_REMOVE(&d->cut, c, entry);
		free(c);
	}
	pthread_mutex_destroy(&d->lock);
	free(d);
}

struct webd_deadline_conn *
webd_deadline_add(struct webd_deadline *d, int fd)
{
	struct webd_deadline_conn *c = xcalloc(1, sizeof(*c));

	c->fd = fd;
	c->start_ms = util_now_ms();
	pthread_mutex_lock(&d->lock);
	TAILQ_INSERT_TAIL(&d->live, c, entry);
	pthread_mutex_unlock(&d->lock);
	return c;
}

void
webd_deadline_del(struct webd_deadline *d, struct webd_deadline_conn *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&d->lock);
	TAILQ_REMOVE(c->cut ? &d->cut : &d->live, c, entry);
	pthread_mutex_unlock(&d->lock);
	free(c);
}

size_t
webd_deadline_sweep(struct webd_deadline *d)
{
	struct webd_deadline_conn *c;
	uint64_t now = util_now_ms();
	size_t n = 0;

	/* Under the lock the fd is still open: the listener thread closes
	 * it only after webd_deadline_del, which waits for the lock. */
	pthread_mutex_lock(&d->lock);
	while ((c = TAILQ_FIRST(&d->live)) != NULL &&
	    now - c->start_ms >= d->max_ms) {
		TAILQ_REMOVE(&d->live, c, entry);
		(void)shutdown(c->fd, SHUT_RDWR);
		c->cut = true;
		TAILQ_INSERT_TAIL(&d->cut, c, entry);
		n++;
	}
	pthread_mutex_unlock(&d->lock);
	return n;
}
