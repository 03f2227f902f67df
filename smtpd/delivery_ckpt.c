/*
 * WAL checkpoints for the delivery writer: a batch workq of its own (one
 * thread, its own connection) running one PASSIVE checkpoint per pass,
 * asked for by a loop timer and by the writer between two batches. Does
 * not deliver anything.
 */
#include "smtpd/delivery_int.h"

#include <event2/event.h>

#include "common/log.h"
#include "common/workq.h"
#include "store/store.h"

#define DELIVERY_CKPT_MS	200
/*
 * The background pass copies the WAL into the database every
 * DELIVERY_CKPT_MS, and at once when the writer sees the WAL pass
 * DELIVERY_CKPT_WAKE frames: that copying (all of a big message's pages)
 * stays off the commit path and on the other core.
 *
 * But a background checkpoint alone never completes under load: the
 * writer appends while it copies, so the WAL is never all copied, never
 * restarts from its start, and grows; every commit then extends the file
 * and fdatasync must write the inode too (about twice the cost of an
 * overwrite here). So past DELIVERY_CKPT_FRAMES the writer checkpoints
 * itself between two batches (after the results went back to the loop):
 * it only has to copy what was committed since the background pass, and
 * the next commit restarts the WAL over blocks already allocated.
 */
#define DELIVERY_CKPT_WAKE	1000
#define DELIVERY_CKPT_FRAMES	4000
/* One pass running and one asked for: more requests add nothing. */
#define DELIVERY_CKPT_PENDING	2

static void delivery_ckpt_batch(void *const *, size_t, void *);
static void delivery_ckpt_tick(evutil_socket_t, short, void *);

/* Checkpoint thread: however many requests, one pass. */
static void
delivery_ckpt_batch(void *const *jobs, size_t n, void *arg)
{
	struct delivery *d = arg;

	if (store_checkpoint(d->ckpt_st) != 0)
		log_warn("event=delivery.checkpoint error=\"%s\"",
		    store_error(d->ckpt_st));
}

/* Loop timer. A request has no done(): nothing comes back to the loop. */
static void
delivery_ckpt_tick(evutil_socket_t fd, short what, void *arg)
{
	struct delivery *d = arg;

	(void)workq_submit(d->ckpt, d, NULL, NULL);
}

int
delivery_ckpt_start(struct delivery *d)
{
	/* Normalised: libevent asserts on a persistent timer whose
	 * tv_usec is 2^20 or more. */
	struct timeval tv = { DELIVERY_CKPT_MS / 1000,
	    (DELIVERY_CKPT_MS % 1000) * 1000 };

	d->ckpt = workq_new_batch(d->base, DELIVERY_CKPT_PENDING,
	    DELIVERY_CKPT_PENDING, delivery_ckpt_batch, NULL, NULL, NULL, d);
	d->ckpt_tick = event_new(d->base, -1, EV_PERSIST, delivery_ckpt_tick,
	    d);
	if (d->ckpt_tick == NULL || event_add(d->ckpt_tick, &tv) != 0) {
		log_error("event=delivery.open error=\"event_add failed\"");
		return -1;
	}
	return 0;
}

void
delivery_ckpt_stop(struct delivery *d)
{
	if (d->ckpt_tick != NULL)
		event_free(d->ckpt_tick);
	d->ckpt_tick = NULL;
	workq_free(d->ckpt);
	d->ckpt = NULL;
}

/* Writer thread, after a batch went back to the loop. */
void
delivery_ckpt_after(void *arg)
{
	struct delivery *d = arg;
	int frames = store_wal_frames(d->st);

	if (frames >= DELIVERY_CKPT_WAKE)
		(void)workq_submit(d->ckpt, d, NULL, NULL);
	if (frames < DELIVERY_CKPT_FRAMES)
		return;
	if (store_checkpoint(d->st) != 0)
		log_warn("event=delivery.checkpoint error=\"%s\"",
		    store_error(d->st));
}
