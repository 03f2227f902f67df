/*
 * The DNS module's blocking entry point (dns.h: dns_lookup_sync). A
 * cached answer is read from the (locked) cache on the calling thread.
 * Otherwise the worker thread queues its query under sync_lock, wakes
 * the loop through common/workq (the one thread-to-loop bridge; its
 * batch thread does nothing but hand the wake-up over) and waits on its
 * own condition variable, until the answer or its deadline; the loop
 * starts the query with dns_lookup() and hands the answer back. A query
 * whose waiter gave up at its deadline is cancelled on the loop (the
 * next wake-up) and freed there. A
 * resolver without a loop (carteiroctl) runs its private event_base for
 * the duration of the call instead. Same resolver, same cache, either way.
 */
#include "mailauth/dns_int.h"

#include <assert.h>
#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "common/workq.h"

/* One blocking query. Owned by the waiting thread until it returns; if
 * it gave up first (abandoned), by the loop, which frees it. The loop
 * touches it only under d->sync_lock. */
struct dns_sync {
	struct dns_sync *next;	/* d->sync_queue, _active or _cancel */
	struct dns *d;
	enum dns_type type;
	char *name;
	struct dns_req *req;		/* while active */
	pthread_cond_t cond;
	bool done;
	bool abandoned;			/* the waiter is gone */
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

static void
dns_sync_free(struct dns_sync *s)
{
	dns_rr_free(s->rr, s->n);
	pthread_cond_destroy(&s->cond);
	free(s->name);
	free(s);
}

/* Cancel and free every query whose waiter gave up. Locked, loop. */
static void
dns_sync_reap(struct dns *d)
{
	struct dns_sync *s;

	while ((s = d->sync_cancel) != NULL) {
		d->sync_cancel = s->next;
		if (s->req != NULL)
			dns_cancel(s->req);
		dns_sync_free(s);
	}
}

void
dns_sync_close(struct dns *d)
{
	struct dns_sync *s;

	pthread_mutex_lock(&d->sync_lock);
	d->sync_closed = true;
	dns_sync_reap(d);
	while ((s = d->sync_queue) != NULL || (s = d->sync_active) != NULL) {
		if (s->req != NULL)
			dns_cancel(s->req);
		dns_sync_unlink(s == d->sync_queue ? &d->sync_queue :
		    &d->sync_active, s);
		s->req = NULL;
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

/* On the loop (the wake-up's done): cancel what was given up, start
 * every queued query. */
static void
dns_sync_start(void *arg, bool cancelled)
{
	struct dns *d = arg;
	struct dns_sync *s;

	pthread_mutex_lock(&d->sync_lock);
	/* Cleared under the lock that guards the queue: a query posted after
	 * this point posts a wake-up of its own. */
	d->sync_wake_posted = false;
	if (!cancelled)
		dns_sync_reap(d);
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
	s->req = NULL;
	if (s->abandoned) {
		/* Answered before the loop got round to cancelling it. */
		dns_sync_unlink(&d->sync_cancel, s);
		dns_rr_free(copy, copy != NULL ? n : 0);
		dns_sync_free(s);
		pthread_mutex_unlock(&d->sync_lock);
		return;
	}
	dns_sync_unlink(&d->sync_active, s);
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

static void
dns_sync_expired(evutil_socket_t fd, short what, void *arg)
{
	*(bool *)arg = true;
}

/* carteiroctl: the resolver's own event_base, run until the answer or the
 * deadline. */
static enum dns_status
dns_sync_own_base(struct dns *d, struct dns_sync *s, uint64_t deadline_ms,
    char ***rr_r, size_t *n_r)
{
	struct event *timer = NULL;
	bool expired = false;
	uint64_t now;

	if (deadline_ms != 0) {
		now = util_now_ms();
		uint64_t left = deadline_ms > now ? deadline_ms - now : 0;
		struct timeval tv = { (time_t)(left / 1000),
		    (suseconds_t)(left % 1000) * 1000 };

		timer = evtimer_new(d->base, dns_sync_expired, &expired);
		if (timer == NULL)
			log_fatal("event=dns.sync error=\"evtimer_new\"");
		evtimer_add(timer, &tv);
	}
	s->req = dns_lookup(d, s->type, s->name, dns_sync_answer, s);
	while (!s->done && !expired)
		if (event_base_loop(d->base, EVLOOP_ONCE) != 0)
			break;	/* nothing left to wait for */
	if (!s->done)
		dns_cancel(s->req);
	if (timer != NULL)
		event_free(timer);
	if (s->done && s->st == DNS_OK) {
		*rr_r = s->rr;
		*n_r = s->n;
		s->rr = NULL;
		s->n = 0;
		return DNS_OK;
	}
	return s->done ? s->st : DNS_TEMPFAIL;
}

enum dns_status
dns_lookup_sync(struct dns *d, enum dns_type type, const char *name,
    char ***rr_r, size_t *n_r)
{
	return dns_lookup_sync_until(d, type, name, 0, rr_r, n_r);
}

enum dns_status
dns_lookup_sync_until(struct dns *d, enum dns_type type, const char *name,
    uint64_t deadline_ms, char ***rr_r, size_t *n_r)
{
	pthread_condattr_t attr;
	struct dns_sync *s;
	struct timespec ts;
	enum dns_status st;

	*rr_r = NULL;
	*n_r = 0;
	if (dns_sync_cached(d, type, name, &st, rr_r, n_r))
		return st;
	if (deadline_ms != 0 && util_now_ms() >= deadline_ms)
		return DNS_TEMPFAIL;	/* the budget is spent */
	s = xcalloc(1, sizeof(*s));
	s->d = d;
	s->type = type;
	s->name = xstrdup(name);
	s->st = DNS_TEMPFAIL;
	/* The deadline is on util_now_ms()'s clock. */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &attr);
	pthread_condattr_destroy(&attr);
	ts.tv_sec = (time_t)(deadline_ms / 1000);
	ts.tv_nsec = (long)(deadline_ms % 1000) * 1000000;
	if (d->own_base) {
		st = dns_sync_own_base(d, s, deadline_ms, rr_r, n_r);
		dns_sync_free(s);
		return st;
	}
	/* From the loop thread this would wait for itself. */
	assert(!pthread_equal(pthread_self(), d->loop_thread));
	pthread_mutex_lock(&d->sync_lock);
	if (!d->sync_closed && !d->sync_wake_posted &&
	    workq_submit(d->sync_wake, d, NULL, dns_sync_start) != 0)
		d->sync_wake_posted = true;
	if (!d->sync_closed && d->sync_wake_posted) {
		s->next = d->sync_queue;
		d->sync_queue = s;
		while (!s->done) {
			if (deadline_ms == 0) {
				pthread_cond_wait(&s->cond, &d->sync_lock);
				continue;
			}
			if (pthread_cond_timedwait(&s->cond, &d->sync_lock,
			    &ts) == ETIMEDOUT && !s->done)
				break;
		}
	}
	if (!s->done && s->req == NULL) {
		/* Queued (or never queued), not started: forget it. */
		dns_sync_unlink(&d->sync_queue, s);
	} else if (!s->done) {
		/* Started: the loop cancels and frees it at its next
		 * wake-up (or frees it if the answer comes first). */
		dns_sync_unlink(&d->sync_active, s);
		s->abandoned = true;
		s->next = d->sync_cancel;
		d->sync_cancel = s;
		if (!d->sync_wake_posted &&
		    workq_submit(d->sync_wake, d, NULL, dns_sync_start) != 0)
			d->sync_wake_posted = true;
		pthread_mutex_unlock(&d->sync_lock);
		return DNS_TEMPFAIL;
	}
	pthread_mutex_unlock(&d->sync_lock);
	st = s->done ? s->st : DNS_TEMPFAIL;
	if (st == DNS_OK) {
		*rr_r = s->rr;
		*n_r = s->n;
		s->rr = NULL;
		s->n = 0;
	}
	dns_sync_free(s);
	return st;
}
