/*
 * The DNS module's blocking entry point (dns.h: dns_lookup_sync). A
 * cached answer is read from the (locked) cache on the calling thread.
 * Otherwise the worker thread queues its query under sync_lock, wakes
 * the loop through common/workq (the one thread-to-loop bridge; its
 * batch thread does nothing but hand the wake-up over) and waits on its
 * own condition variable; the loop starts the query with dns_lookup()
 * and hands the answer back. A
 * resolver without a loop (carteiroctl) runs its private event_base for
 * the duration of the call instead. Same resolver, same cache, either way.
 */
#include "mailauth/dns_int.h"

#include <assert.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "common/workq.h"

/* One blocking query. Owned by the waiting thread (on its stack); the
 * loop touches it only under d->sync_lock until it sets done. */
struct dns_sync {
	struct dns_sync *next;	/* d->sync_queue or d->sync_active */
	struct dns *d;
	enum dns_type type;
	const char *name;		/* the caller's */
	struct dns_req *req;		/* while active */
	pthread_cond_t cond;
	bool done;
	enum dns_status st;
	char **rr;
	size_t n;
};

static void dns_sync_wake_work(void *const *, size_t, void *);
static void dns_sync_start(void *, bool);
static void dns_sync_answer(enum dns_status, const char *const *, size_t,
    void *);

void
dns_sync_init(struct dns *d)
{
	d->loop_thread = pthread_self();
	pthread_mutex_init(&d->sync_lock, NULL);
	/* One wake-up is posted at a time (sync_wake_posted). */
	if (!d->own_base)
		d->sync_wake = workq_new_batch(d->base, 4, 4,
		    dns_sync_wake_work, NULL, NULL, NULL, NULL);
}

/* The wake-up's "work": nothing; what matters is its done() on the loop. */
static void
dns_sync_wake_work(void *const *jobs, size_t n, void *ctx)
{
}

/* Unlink s from the list at *head. Locked. */
static void
dns_sync_unlink(struct dns_sync **head, struct dns_sync *s)
{
	for (; *head != NULL; head = &(*head)->next)
		if (*head == s) {
			*head = s->next;
			return;
		}
}

void
dns_sync_close(struct dns *d)
{
	struct dns_sync *s;

	pthread_mutex_lock(&d->sync_lock);
	d->sync_closed = true;
	while ((s = d->sync_queue) != NULL || (s = d->sync_active) != NULL) {
		if (s->req != NULL)
			dns_cancel(s->req);
		dns_sync_unlink(s == d->sync_queue ? &d->sync_queue :
		    &d->sync_active, s);
		s->st = DNS_TEMPFAIL;
		s->done = true;
		pthread_cond_signal(&s->cond);
	}
	pthread_mutex_unlock(&d->sync_lock);
}

void
dns_sync_fini(struct dns *d)
{
	dns_sync_close(d);
	/* A wake-up still on its way gets done(cancelled): d is alive. */
	workq_free(d->sync_wake);
	pthread_mutex_destroy(&d->sync_lock);
}

/* On the loop (the wake-up's done): start every queued query. */
static void
dns_sync_start(void *arg, bool cancelled)
{
	struct dns *d = arg;
	struct dns_sync *s;

	pthread_mutex_lock(&d->sync_lock);
	/* Cleared under the lock that guards the queue: a query posted after
	 * this point posts a wake-up of its own. */
	d->sync_wake_posted = false;
	while (!cancelled && (s = d->sync_queue) != NULL) {
		d->sync_queue = s->next;
		s->next = d->sync_active;
		d->sync_active = s;
		/* Never answers from inside this call (dns.h). */
		s->req = dns_lookup(d, s->type, s->name, dns_sync_answer, s);
	}
	pthread_mutex_unlock(&d->sync_lock);
}

/* On the loop (or the own-base caller): the answer. The waiting thread
 * may free s as soon as the lock is released. */
static void
dns_sync_answer(enum dns_status st, const char *const *rr, size_t n,
    void *arg)
{
	struct dns_sync *s = arg;
	struct dns *d = s->d;
	char **copy = NULL;
	size_t i;

	if (st == DNS_OK) {
		copy = xcalloc(n, sizeof(char *));
		for (i = 0; i < n; i++)
			copy[i] = xstrdup(rr[i]);
	}
	pthread_mutex_lock(&d->sync_lock);
	dns_sync_unlink(&d->sync_active, s);
	s->req = NULL;
	s->st = st;
	s->rr = copy;
	s->n = copy != NULL ? n : 0;
	s->done = true;
	if (!d->own_base)
		pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&d->sync_lock);
}

/* A live cache entry answers on the calling thread: the loop is only
 * bothered for what must go on the wire. 1 and *st_r on a hit. */
static int
dns_sync_cached(struct dns *d, enum dns_type type, const char *name,
    enum dns_status *st_r, char ***rr_r, size_t *n_r)
{
	char *key = util_strlower(xstrdup(name));
	struct dns_rr *rr;
	enum dns_status st;
	size_t n;
	int hit;

	hit = dns_cache_get(d->view, key, type, &st, &rr, &n);
	free(key);
	if (!hit)
		return 0;
	*st_r = dns_rr_text(type, st, rr, n, rr_r, n_r);
	dns_rrs_free(rr, n);
	return 1;
}

enum dns_status
dns_lookup_sync(struct dns *d, enum dns_type type, const char *name,
    char ***rr_r, size_t *n_r)
{
	struct dns_sync s;
	enum dns_status st;

	*rr_r = NULL;
	*n_r = 0;
	if (dns_sync_cached(d, type, name, &st, rr_r, n_r))
		return st;
	memset(&s, 0, sizeof(s));
	s.d = d;
	s.type = type;
	s.name = name;
	s.st = DNS_TEMPFAIL;
	if (d->own_base) {
		s.req = dns_lookup(d, type, name, dns_sync_answer, &s);
		while (!s.done)
			if (event_base_loop(d->base, EVLOOP_ONCE) != 0)
				break;	/* nothing left to wait for */
		if (!s.done)
			dns_cancel(s.req);
		goto out;
	}
	/* From the loop thread this would wait for itself. */
	assert(!pthread_equal(pthread_self(), d->loop_thread));
	pthread_cond_init(&s.cond, NULL);
	pthread_mutex_lock(&d->sync_lock);
	if (!d->sync_closed && !d->sync_wake_posted &&
	    workq_submit(d->sync_wake, d, NULL, dns_sync_start) != 0)
		d->sync_wake_posted = true;
	if (!d->sync_closed && d->sync_wake_posted) {
		s.next = d->sync_queue;
		d->sync_queue = &s;
		while (!s.done)
			pthread_cond_wait(&s.cond, &d->sync_lock);
	}
	pthread_mutex_unlock(&d->sync_lock);
	pthread_cond_destroy(&s.cond);
out:
	if (s.st == DNS_OK) {
		*rr_r = s.rr;
		*n_r = s.n;
	} else
		dns_rr_free(s.rr, s.n);
	return s.st;
}
