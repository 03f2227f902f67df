/*
 * The relay backing off by itself: a destination domain that answers
 * with throttling replies (421, or 4.7.x about rates and "too many";
 * mta_reply_is_throttle) gets fewer connections (halved, at least one)
 * and no new one for a while (1 s, doubling to 60 s while it goes on);
 * each round of deliveries at the lowered concurrency raises it by one
 * until [relay] max_connections_per_domain is back. Logged as
 * event=relay.throttle, and kept in the store's relay_throttle table for
 * carteiroctl queue list (written by the flush batch, relay_flush.c).
 * The deferred recipients themselves follow the normal retry schedule.
 */
#include "smtpd/relay_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/log.h"
#include "common/util.h"

#define RELAY_THROTTLE_DELAY_MS		1000	/* the first hold */
#define RELAY_THROTTLE_DELAY_MAX_MS	60000

static unsigned relay_domain_cap(const struct relay *,
    const struct relay_domain *);
static void relay_throttle_hit(struct relay *, struct relay_domain *,
    const char *);
static void relay_throttle_ok(struct relay *, struct relay_domain *);

static unsigned
relay_domain_cap(const struct relay *r, const struct relay_domain *d)
{
	return d->limit != 0 ? d->limit :
	    r->cfg->relay.max_connections_per_domain;
}

bool
relay_domain_can_start(struct relay *r, struct relay_domain *d)
{
	if (d->sessions >= relay_domain_cap(r, d))
		return false;
	return d->held_until_ms == 0 || util_now_ms() >= d->held_until_ms;
}

void
relay_throttle_job(struct relay *r, struct relay_domain *d,
    const struct relay_job *job)
{
	const char *throttle = NULL;
	bool ok = false;
	size_t i;

	for (i = 0; i < job->n; i++) {
		if (job->rcpts[i].result == MTA_OK)
			ok = true;
		else if (throttle == NULL &&
		    mta_reply_is_throttle(job->rcpts[i].reply))
			throttle = job->rcpts[i].reply;
	}
	if (throttle != NULL)
		relay_throttle_hit(r, d, throttle);
	else if (ok)
		relay_throttle_ok(r, d);
}

static void
relay_throttle_hit(struct relay *r, struct relay_domain *d,
    const char *reply)
{
	uint64_t now = util_now_ms(), delay;
	unsigned cap = relay_domain_cap(r, d);
	char esc[LOG_ESCAPE_MAX];

	free(d->reason);
	d->reason = xstrdup(reply);
	d->oks = 0;
	d->dirty = true;
	r->throttle_dirty = true;
	/* Sessions that were running when it started throttling report
	 * one after another: one back-off per hold, not one each. */
	if (d->held_until_ms != 0 && now < d->held_until_ms)
		return;
	if (d->limit == 0 && d->level == 0)
		d->since = util_time();
	delay = (uint64_t)RELAY_THROTTLE_DELAY_MS << (d->level < 6 ?
	    d->level : 6);
	if (delay > RELAY_THROTTLE_DELAY_MAX_MS)
		delay = RELAY_THROTTLE_DELAY_MAX_MS;
	d->level++;
	d->limit = cap / 2 > 0 ? cap / 2 : 1;
	d->held_until_ms = now + delay;
	log_warn("event=relay.throttle domain=%s state=backoff concurrency=%u "
	    "delay_ms=%" PRIu64 " reply=%s", LOG_VALUE(d->name), d->limit,
	    delay, log_escape(esc, sizeof(esc), reply, strlen(reply)));
}

static void
relay_throttle_ok(struct relay *r, struct relay_domain *d)
{
	unsigned max = r->cfg->relay.max_connections_per_domain;

	if (d->limit == 0)
		return;
	/* A full round at this concurrency went through: one more. */
	if (++d->oks < d->limit)
		return;
	d->oks = 0;
	d->limit++;
	d->level = 0;
	d->dirty = true;
	r->throttle_dirty = true;
	if (d->limit >= max) {
		d->limit = 0;
		d->held_until_ms = 0;
		log_info("event=relay.throttle domain=%s state=recovered "
		    "concurrency=%u", LOG_VALUE(d->name), max);
		return;
	}
	log_info("event=relay.throttle domain=%s state=recovering "
	    "concurrency=%u", LOG_VALUE(d->name), d->limit);
}
