/*
 * Group-commit delivery: the loop thread queues finished transactions, one
 * writer thread (its own store connection) delivers every waiting job in
 * one BEGIN IMMEDIATE ... COMMIT and hands the results back through an
 * eventfd watched on the loop. Owns the job copies and their spool fds; does
 * not own sessions (callbacks carry the caller's token and arg, and a
 * cancelled token's callback never runs). No SQL here: store/ does that.
 */
#include "smtpd/delivery.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "smtpd/relay.h"
#include "store/store.h"

/* Jobs per transaction: bounds the time the write lock is held and the
 * latency the first job of a batch sees. */
#define DELIVERY_BATCH_MAX 256
/* Attempts of a batch that fails with SQLITE_BUSY (each already waited the
 * store's busy timeout), then the jobs get 451. */
#define DELIVERY_ATTEMPTS 4
#define DELIVERY_BACKOFF_MS 50

struct delivery_item {
	struct delivery_item *next;	/* queue or done list, under d->mu */
	/* Outstanding list (submitted, callback not yet run or dropped):
	 * touched by the loop thread only. */
	struct delivery_item *out_prev, *out_next;
	uint64_t token;
	delivery_done_cb *cb;
	void *arg;
	bool cancelled;			/* loop thread only */

	/* The job, deep-copied; every pointer is owned here. */
	int spool_fd;
	unsigned char *mem;		/* instead of spool_fd */
	uint64_t data_size;
	char *prefix;
	size_t prefix_len;
	char *mail_from;
	char **local;
	size_t nlocal;
	char **remote;
	size_t nremote;
	char *auth_user;
	bool smtputf8;
	bool count_sent;
	char *msgid;

	/* Writer thread while in a batch, then read by the loop. */
	enum delivery_result res;
	int64_t queue_id;
	bool decided;			/* res is final (failed before commit) */
};

struct delivery {
	struct event_base *base;
	struct event *ev_done;
	int efd;			/* eventfd: writer -> loop "done list grew" */
	struct store *st;		/* writer thread only once started */
	pthread_t writer;
	bool writer_started;
	/*
	 * The writer's connection never checkpoints (that would put the copy
	 * from the WAL into the database on the commit path, in front of
	 * the 250s); this thread runs PASSIVE checkpoints with its own
	 * connection every DELIVERY_CKPT_MS instead.
	 */
	struct store *ckpt_st;
	pthread_t ckpt;
	bool ckpt_started;
	pthread_cond_t ckpt_cv;		/* stopping, or ckpt_wanted */
	bool ckpt_wanted;		/* the writer asks for a pass now */
	struct relay *relay;		/* borrowed, may be NULL */

	pthread_mutex_t mu;
	pthread_cond_t cv;		/* queue grew, hold lifted or stopping */
	struct delivery_item *q_head, **q_tail;
	struct delivery_item *done_head, **done_tail;
	bool stopping;
	bool hold;
	uint64_t n_batches;		/* committed transactions */
	uint64_t n_jobs;		/* jobs finished (any result) */

	/* Loop thread only. */
	uint64_t next_token;
	struct delivery_item *out_head;
	size_t n_outstanding;
};

#define DELIVERY_CKPT_MS	200
/*
 * Checkpoints. The background thread copies the WAL into the database
 * every DELIVERY_CKPT_MS, and at once when the writer sees the WAL pass
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

static void *
delivery_ckpt_main(void *arg)
{
	struct delivery *d = arg;
	struct timespec ts;

	pthread_mutex_lock(&d->mu);
	while (!d->stopping) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += DELIVERY_CKPT_MS * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		if (!d->ckpt_wanted)
			pthread_cond_timedwait(&d->ckpt_cv, &d->mu, &ts);
		d->ckpt_wanted = false;
		pthread_mutex_unlock(&d->mu);
		if (store_checkpoint(d->ckpt_st) != 0)
			log_warn("event=delivery.checkpoint error=\"%s\"",
			    store_error(d->ckpt_st));
		pthread_mutex_lock(&d->mu);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

static void
delivery_maybe_checkpoint(struct delivery *d)
{
	int frames = store_wal_frames(d->st);

	if (frames >= DELIVERY_CKPT_WAKE && d->ckpt_started) {
		pthread_mutex_lock(&d->mu);
		d->ckpt_wanted = true;
		pthread_cond_signal(&d->ckpt_cv);
		pthread_mutex_unlock(&d->mu);
	}
	if (frames < DELIVERY_CKPT_FRAMES)
		return;
	if (store_checkpoint(d->st) != 0)
		log_warn("event=delivery.checkpoint error=\"%s\"",
		    store_error(d->st));
}

enum delivery_try {
	DELIVERY_TRY_OK,
	DELIVERY_TRY_RETRY,		/* busy/locked: back off, run again */
	DELIVERY_TRY_BADJOB,		/* one job failed: drop it, run again */
	DELIVERY_TRY_SPLIT,		/* commit failed: deliver one by one */
};

/* Recycled spool files (see delivery_spool_recycle): one pool per
 * process, for the filesystem of the spool directory in use. */
#define DELIVERY_SPOOL_POOL_MAX 256
static struct {
	pthread_mutex_t mu;
	bool have_dev;
	dev_t dev;
	size_t n;
	int fds[DELIVERY_SPOOL_POOL_MAX];
} delivery_spool_pool = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void delivery_item_free(struct delivery_item *);
static void delivery_spool_recycle(int);
static void delivery_spool_pool_drain(void);
static void *delivery_writer_main(void *);
static void delivery_run_batch(struct delivery *, struct delivery_item **,
    size_t);
static enum delivery_try delivery_try_batch(struct delivery *,
    struct delivery_item **, size_t, size_t *);
static void delivery_finish(struct delivery *, struct delivery_item **,
    size_t);
static void delivery_on_done(evutil_socket_t, short, void *);
static void delivery_sleep_ms(unsigned);
static const char *delivery_result_name(enum delivery_result);
static char **delivery_strv_dup(const char *const *, size_t);
static void delivery_strv_free(char **, size_t);

/* ---- setup and teardown ---- */

struct delivery *
delivery_new(struct event_base *base, const struct cfg *cfg)
{
	struct delivery *d;
	const char *err = NULL;
	sigset_t all, old;
	int rc;

	d = xcalloc(1, sizeof(*d));
	d->base = base;
	d->efd = -1;
	d->q_tail = &d->q_head;
	d->done_tail = &d->done_head;
	d->next_token = 1;
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv, NULL);
	pthread_cond_init(&d->ckpt_cv, NULL);

	d->st = store_open(cfg->store.path, &err);
	if (d->st == NULL) {
		log_error("event=delivery.open path=%s error=\"%s\"",
		    cfg->store.path, err ? err : "unknown");
		goto fail;
	}
	if (store_check_schema(d->st) != 0) {
		log_error("event=delivery.open path=%s error=\"%s\"",
		    cfg->store.path, store_error(d->st));
		goto fail;
	}
	d->ckpt_st = store_open(cfg->store.path, &err);
	if (d->ckpt_st == NULL) {
		log_error("event=delivery.open path=%s error=\"%s\"",
		    cfg->store.path, err ? err : "unknown");
		goto fail;
	}
	store_set_autocheckpoint(d->st, 0);
	d->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (d->efd == -1) {
		log_error("event=delivery.open error=\"eventfd: %s\"",
		    strerror(errno));
		goto fail;
	}
	d->ev_done = event_new(base, d->efd, EV_READ | EV_PERSIST,
	    delivery_on_done, d);
	if (d->ev_done == NULL || event_add(d->ev_done, NULL) != 0) {
		log_error("event=delivery.open error=\"event_add failed\"");
		goto fail;
	}

	/* Signals belong to the loop thread (libevent's handlers). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&d->writer, NULL, delivery_writer_main, d);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		log_error("event=delivery.open error=\"pthread_create: %s\"",
		    strerror(rc));
		goto fail;
	}
	d->writer_started = true;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&d->ckpt, NULL, delivery_ckpt_main, d);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		log_error("event=delivery.open error=\"pthread_create: %s\"",
		    strerror(rc));
		goto fail;
	}
	d->ckpt_started = true;
	return d;

fail:
	delivery_free(d);
	return NULL;
}

void
delivery_free(struct delivery *d)
{
	struct delivery_item *it, *next;

	if (d == NULL)
		return;
	if (d->writer_started) {
		/* SIGTERM must not lose accepted mail: the writer drains the
		 * whole queue before it leaves. */
		pthread_mutex_lock(&d->mu);
		d->stopping = true;
		d->hold = false;
		pthread_cond_broadcast(&d->cv);
		pthread_cond_broadcast(&d->ckpt_cv);
		pthread_mutex_unlock(&d->mu);
		pthread_join(d->writer, NULL);
	}
	/* Jobs per commit: how well group commit worked (the bench reads
	 * it). */
	log_info("event=delivery.stats batches=%" PRIu64 " jobs=%" PRIu64,
	    d->n_batches, d->n_jobs);
	if (d->ckpt_started) {
		pthread_mutex_lock(&d->mu);
		d->stopping = true;
		pthread_cond_broadcast(&d->ckpt_cv);
		pthread_mutex_unlock(&d->mu);
		pthread_join(d->ckpt, NULL);
	}
	/* Results nobody will hear about any more: the jobs are complete,
	 * the callers are going away with us. */
	for (it = d->done_head; it != NULL; it = next) {
		next = it->next;
		delivery_item_free(it);
	}
	for (it = d->q_head; it != NULL; it = next) {
		next = it->next;
		delivery_item_free(it);
	}
	if (d->ev_done != NULL)
		event_free(d->ev_done);
	if (d->efd != -1)
		close(d->efd);
	/* The last connection to close checkpoints what is left. */
	store_close(d->ckpt_st);
	store_close(d->st);
	delivery_spool_pool_drain();
	pthread_cond_destroy(&d->cv);
	pthread_cond_destroy(&d->ckpt_cv);
	pthread_mutex_destroy(&d->mu);
	free(d);
}

void
delivery_set_relay(struct delivery *d, struct relay *r)
{
	d->relay = r;
}

/* ---- loop side ---- */

uint64_t
delivery_submit(struct delivery *d, const struct delivery_job *job,
    delivery_done_cb *cb, void *arg)
{
	struct delivery_item *it;

	it = xcalloc(1, sizeof(*it));
	it->token = d->next_token++;
	it->cb = cb;
	it->arg = arg;
	it->spool_fd = job->spool_fd;
	it->mem = job->mem;
	it->data_size = job->data_size;
	it->prefix_len = job->prefix != NULL ? job->prefix_len : 0;
	it->prefix = xmalloc(it->prefix_len + 1);
	if (it->prefix_len > 0)
		memcpy(it->prefix, job->prefix, it->prefix_len);
	it->prefix[it->prefix_len] = '\0';
	it->mail_from = xstrdup(job->mail_from != NULL ? job->mail_from : "");
	it->local = delivery_strv_dup(job->local, job->nlocal);
	it->nlocal = job->nlocal;
	it->remote = delivery_strv_dup(job->remote, job->nremote);
	it->nremote = job->nremote;
	it->auth_user = job->auth_user != NULL ? xstrdup(job->auth_user) :
	    NULL;
	it->smtputf8 = job->smtputf8;
	it->count_sent = job->count_sent && it->auth_user != NULL &&
	    it->nremote > 0;
	it->msgid = xstrdup(job->msgid != NULL ? job->msgid : "-");
	it->res = DELIVERY_TEMPFAIL;

	it->out_next = d->out_head;
	if (d->out_head != NULL)
		d->out_head->out_prev = it;
	d->out_head = it;
	d->n_outstanding++;

	pthread_mutex_lock(&d->mu);
	*d->q_tail = it;
	d->q_tail = &it->next;
	pthread_cond_signal(&d->cv);
	pthread_mutex_unlock(&d->mu);
	return it->token;
}

void
delivery_cancel(struct delivery *d, uint64_t token)
{
	/* The outstanding list is loop-thread only, so no lock: the writer
	 * never reads 'cancelled'. O(outstanding), and cancels are rare
	 * (a client vanished while its mail was being committed). */
	for (struct delivery_item *it = d->out_head; it != NULL;
	    it = it->out_next) {
		if (it->token == token) {
			it->cancelled = true;
			return;
		}
	}
}

size_t
delivery_pending(const struct delivery *d)
{
	return d->n_outstanding;
}

void
delivery_stats(struct delivery *d, uint64_t *batches_r, uint64_t *jobs_r)
{
	pthread_mutex_lock(&d->mu);
	if (batches_r != NULL)
		*batches_r = d->n_batches;
	if (jobs_r != NULL)
		*jobs_r = d->n_jobs;
	pthread_mutex_unlock(&d->mu);
}

void
delivery_hold(struct delivery *d, bool hold)
{
	pthread_mutex_lock(&d->mu);
	d->hold = hold;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

static void
delivery_on_done(evutil_socket_t fd, short what, void *arg)
{
	struct delivery *d = arg;
	struct delivery_item *list, *it;
	uint64_t n;
	bool kick = false;

	(void)what;
	while (read(fd, &n, sizeof(n)) == (ssize_t)sizeof(n))
		;
	pthread_mutex_lock(&d->mu);
	list = d->done_head;
	d->done_head = NULL;
	d->done_tail = &d->done_head;
	pthread_mutex_unlock(&d->mu);

	/*
	 * Each item stays on the outstanding list until its own turn, so a
	 * callback may still cancel a later token of this same pass. A
	 * callback may also submit new jobs (they go to the queue, not here).
	 */
	while ((it = list) != NULL) {
		list = it->next;
		if (it->out_prev != NULL)
			it->out_prev->out_next = it->out_next;
		else
			d->out_head = it->out_next;
		if (it->out_next != NULL)
			it->out_next->out_prev = it->out_prev;
		d->n_outstanding--;
		if (it->res == DELIVERY_OK && it->queue_id != 0)
			kick = true;
		if (!it->cancelled && it->cb != NULL)
			it->cb(it->token, it->res, it->queue_id, it->arg);
		delivery_item_free(it);
	}
	if (kick && d->relay != NULL)
		relay_kick(d->relay);
}

/* ---- writer thread ---- */

static void *
delivery_writer_main(void *arg)
{
	struct delivery *d = arg;
	struct delivery_item *batch[DELIVERY_BATCH_MAX];
	size_t n;

	pthread_mutex_lock(&d->mu);
	for (;;) {
		while ((d->q_head == NULL || d->hold) && !d->stopping)
			pthread_cond_wait(&d->cv, &d->mu);
		if (d->q_head == NULL && d->stopping)
			break;
		/* Everything that is waiting now shares one commit. */
		for (n = 0; n < DELIVERY_BATCH_MAX && d->q_head != NULL; n++) {
			batch[n] = d->q_head;
			d->q_head = batch[n]->next;
			batch[n]->next = NULL;
		}
		if (d->q_head == NULL)
			d->q_tail = &d->q_head;
		pthread_mutex_unlock(&d->mu);

		delivery_run_batch(d, batch, n);
		delivery_finish(d, batch, n);
		delivery_maybe_checkpoint(d);

		pthread_mutex_lock(&d->mu);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

/*
 * Deliver items[0..n) in as few transactions as possible. On return every
 * item has its final res. One failing job never fails the others: it is
 * dropped and the rest is redone; a failed commit falls back to one
 * transaction per job.
 */
static void
delivery_run_batch(struct delivery *d, struct delivery_item **items,
    size_t n)
{
	unsigned attempt = 0;
	uint64_t t0 = util_now_ms();
	size_t bad, ok;

	for (size_t i = 0; i < n; i++)
		items[i]->decided = false;
	for (;;) {
		switch (delivery_try_batch(d, items, n, &bad)) {
		case DELIVERY_TRY_OK:
			ok = 0;
			for (size_t i = 0; i < n; i++)
				if (!items[i]->decided &&
				    items[i]->res == DELIVERY_OK)
					ok++;
			for (size_t i = 0; i < n; i++)
				items[i]->decided = true;
			pthread_mutex_lock(&d->mu);
			d->n_batches++;
			pthread_mutex_unlock(&d->mu);
			log_debug("event=delivery.commit jobs=%zu ms=%" PRIu64,
			    ok, util_now_ms() - t0);
			return;
		case DELIVERY_TRY_BADJOB:
			log_warn("event=delivery.fail msgid=%s error=\"%s\"",
			    items[bad]->msgid, store_error(d->st));
			items[bad]->res = DELIVERY_TEMPFAIL;
			items[bad]->decided = true;
			continue;
		case DELIVERY_TRY_SPLIT:
			for (size_t i = 0; i < n; i++)
				if (!items[i]->decided)
					delivery_run_batch(d, &items[i], 1);
			return;
		case DELIVERY_TRY_RETRY:
			if (++attempt >= DELIVERY_ATTEMPTS) {
				log_warn("event=delivery.fail jobs=%zu "
				    "error=\"%s\" attempts=%u", n,
				    store_error(d->st), attempt);
				for (size_t i = 0; i < n; i++) {
					if (!items[i]->decided) {
						items[i]->res =
						    DELIVERY_TEMPFAIL;
						items[i]->decided = true;
					}
				}
				return;
			}
			delivery_sleep_ms(DELIVERY_BACKOFF_MS << attempt);
			continue;
		}
	}
}

/* One transaction over the undecided items. Quota results are tentative
 * until the commit (they depend on what the transaction saw). */
static enum delivery_try
delivery_try_batch(struct delivery *d, struct delivery_item **items,
    size_t n, size_t *bad_r)
{
	size_t delivered = 0, undecided = 0;

	for (size_t i = 0; i < n; i++)
		if (!items[i]->decided)
			undecided++;
	if (undecided == 0)
		return DELIVERY_TRY_OK;
	if (store_begin(d->st) != 0)
		return DELIVERY_TRY_RETRY;
	for (size_t i = 0; i < n; i++) {
		struct delivery_item *it = items[i];
		struct store_delivery sd;
		int64_t body_id = 0, queue_id = 0;

		if (it->decided)
			continue;
		it->queue_id = 0;
		memset(&sd, 0, sizeof(sd));
		sd.prefix = it->prefix;
		sd.prefix_len = it->prefix_len;
		sd.fd = it->spool_fd;
		sd.data_size = it->data_size;
		sd.mail_from = it->mail_from;
		sd.local = (const char *const *)it->local;
		sd.nlocal = it->nlocal;
		sd.remote = (const char *const *)it->remote;
		sd.nremote = it->nremote;
		sd.auth_user = it->auth_user;
		sd.smtputf8 = it->smtputf8;
		/* Checked inside the transaction by the same statement that
		 * counts the message; a refused job leaves nothing (its own
		 * savepoint) and the other jobs of the batch are untouched. */
		sd.check_quota = true;
		if ((it->mem != NULL ? store_deliver_mem(d->st, &sd, it->mem,
		    (size_t)it->data_size, &body_id, &queue_id) :
		    store_deliver(d->st, &sd, &body_id, &queue_id)) != 0 ||
		    (it->count_sent && store_sent_add(d->st, it->auth_user,
		    util_time(), (unsigned)it->nremote) != 0)) {
			if (store_error_is_quota(d->st)) {
				it->res = DELIVERY_QUOTA;
				continue;
			}
			store_rollback(d->st);
			if (store_error_is_busy(d->st))
				return DELIVERY_TRY_RETRY;
			*bad_r = i;
			return DELIVERY_TRY_BADJOB;
		}
		it->res = DELIVERY_OK;
		it->queue_id = queue_id;
		delivered++;
	}
	if (store_commit(d->st) != 0) {
		/* store_commit has rolled back. */
		if (store_error_is_busy(d->st) || delivered <= 1)
			return DELIVERY_TRY_RETRY;
		return DELIVERY_TRY_SPLIT;
	}
	return DELIVERY_TRY_OK;
}

/* Log each job, close its spool and hand the batch to the loop. */
static void
delivery_finish(struct delivery *d, struct delivery_item **items, size_t n)
{
	uint64_t one = 1;
	ssize_t w;

	for (size_t i = 0; i < n; i++) {
		struct delivery_item *it = items[i];

		log_info("event=smtp.deliver msgid=%s rcpts=%zu bytes=%" PRIu64
		    " result=%s queue_id=%" PRId64, it->msgid,
		    it->nlocal + it->nremote, it->prefix_len + it->data_size,
		    delivery_result_name(it->res), it->queue_id);
		if (it->spool_fd != -1) {
			delivery_spool_recycle(it->spool_fd);
			it->spool_fd = -1;
		}
		free(it->mem);
		it->mem = NULL;
	}
	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < n; i++) {
		*d->done_tail = items[i];
		d->done_tail = &items[i]->next;
	}
	d->n_jobs += n;
	pthread_mutex_unlock(&d->mu);
	/* eventfd writes only fail when the counter would overflow. */
	w = write(d->efd, &one, sizeof(one));
	(void)w;
}

/* ---- spool ---- */

/*
 * Spool files are recycled: creating and dropping an inode per message
 * costs ext4 far more than the message itself (inode allocation scans
 * past every recently deleted inode: ~1 ms of system time per message at
 * a few thousand messages/s). A delivered job's file is truncated, rewound
 * and kept here for the next delivery_spool_open on the same filesystem.
 * Truncation frees the data, so the pool holds no message bytes.
 */
static void
delivery_spool_recycle(int fd)
{
	struct stat sb;
	bool keep = false;

	if (fstat(fd, &sb) == 0 && sb.st_nlink == 0 &&
	    ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0) {
		pthread_mutex_lock(&delivery_spool_pool.mu);
		if (delivery_spool_pool.have_dev &&
		    delivery_spool_pool.dev == sb.st_dev &&
		    delivery_spool_pool.n < DELIVERY_SPOOL_POOL_MAX) {
			delivery_spool_pool.fds[delivery_spool_pool.n++] = fd;
			keep = true;
		}
		pthread_mutex_unlock(&delivery_spool_pool.mu);
	}
	if (!keep)
		close(fd);
}

/* Close every pooled spool file (delivery_free). */
static void
delivery_spool_pool_drain(void)
{
	pthread_mutex_lock(&delivery_spool_pool.mu);
	while (delivery_spool_pool.n > 0)
		close(delivery_spool_pool.fds[--delivery_spool_pool.n]);
	pthread_mutex_unlock(&delivery_spool_pool.mu);
}

int
delivery_spool_open(const char *dir)
{
	struct stat sb;
	char *tmpl;
	int fd, saved;

	if (stat(dir, &sb) != 0)
		return -1;
	pthread_mutex_lock(&delivery_spool_pool.mu);
	if (!delivery_spool_pool.have_dev || delivery_spool_pool.dev !=
	    sb.st_dev) {
		/* First use, or another filesystem: start over there. */
		while (delivery_spool_pool.n > 0)
			close(delivery_spool_pool.fds[--delivery_spool_pool.n]);
		delivery_spool_pool.dev = sb.st_dev;
		delivery_spool_pool.have_dev = true;
	}
	fd = delivery_spool_pool.n > 0 ?
	    delivery_spool_pool.fds[--delivery_spool_pool.n] : -1;
	pthread_mutex_unlock(&delivery_spool_pool.mu);
	if (fd != -1)
		return fd;

	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd != -1)
		return fd;
	/* Filesystems without O_TMPFILE (EOPNOTSUPP, EISDIR on old kernels):
	 * a named file unlinked at once is just as private. */
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
		return -1;
	tmpl = xasprintf("%s/.spool.XXXXXX", dir);
	fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd != -1 && unlink(tmpl) != 0) {
		saved = errno;
		close(fd);
		errno = saved;
		fd = -1;
	}
	saved = errno;
	free(tmpl);
	errno = saved;
	return fd;
}

/* ---- helpers ---- */

static void
delivery_item_free(struct delivery_item *it)
{
	if (it->spool_fd != -1)
		close(it->spool_fd);
	free(it->mem);
	free(it->prefix);
	free(it->mail_from);
	delivery_strv_free(it->local, it->nlocal);
	delivery_strv_free(it->remote, it->nremote);
	free(it->auth_user);
	free(it->msgid);
	free(it);
}

static void
delivery_sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
	    .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static const char *
delivery_result_name(enum delivery_result res)
{
	switch (res) {
	case DELIVERY_OK:
		return "ok";
	case DELIVERY_TEMPFAIL:
		return "tempfail";
	case DELIVERY_QUOTA:
		return "quota";
	}
	return "unknown";
}

static char **
delivery_strv_dup(const char *const *v, size_t n)
{
	char **r;

	if (n == 0)
		return NULL;
	r = xcalloc(n, sizeof(*r));
	for (size_t i = 0; i < n; i++)
		r[i] = xstrdup(v[i]);
	return r;
}

static void
delivery_strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}
