/*
 * The outbound queue runner inside carteiro-smtpd. Every second (and on
 * relay_kick) it picks due messages from the store, splits each message's
 * pending recipients by destination domain and runs one SMTP client
 * session (mta.c) per domain, within concurrency limits. After the
 * attempt it records results, sends DSNs (bounce.c), reschedules with
 * doubling back-off, or deletes the message. Does not own: DNS (dns.c),
 * the SMTP dialogue (mta.c), SQL (store/queue.c).
 *
 * Store writes happen on a writer thread with its own connection, in
 * batches (one fsync for every session that ended meanwhile), so the SMTP
 * listener never waits on the disk; the loop thread only reads.
 *
 * Crash safety (for the README): "A message accepted for a remote
 * recipient is in the outbound queue on disk before the 250. Each
 * recipient's result (delivered / bounced / deferred) is committed as soon
 * as the remote server has answered, before the message is retried or
 * removed; after kill -9 or a power cut nothing is lost and nothing already
 * recorded as delivered is sent again. Only a delivery that was in flight
 * at the crash (the remote server may already have accepted it, but its
 * answer was not yet on our disk) can be repeated once after the restart.
 * A bounce is created in the same transaction that marks the recipient
 * bounced, so it is neither lost nor sent twice."
 */
#include "smtpd/relay.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/config.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/util.h"
#include "smtpd/bounce.h"
#include "mailauth/dns.h"
#include "smtpd/mta.h"
#include "store/queue.h"
#include "store/store.h"

#define RELAY_TICK_MS		1000	/* due-row scan (flush latency) */
#define RELAY_MAX_SESSIONS	100	/* SMTP client sessions, in total */
#define RELAY_MAX_PER_DOMAIN	10	/* ... and per destination domain */
#define RELAY_MAX_MSGS		200	/* messages in flight */
#define RELAY_GC_EVERY		2	/* ticks between store_gc runs */
#define RELAY_GC_BODIES		128	/* bodies freed per run: ~30 ms */

struct relay_msg;

/* One destination domain of one message: one SMTP session. */
struct relay_job {
	struct relay_msg *rm;
	char *domain;
	struct mta_rcpt *rcpts;
	size_t *qidx;			/* index into rm->q.rcpts */
	size_t n;
	struct mta_msg mm;
	struct mta_session *s;		/* NULL while waiting */
	struct store_body *body;
	uint64_t skip;			/* leading Return-Path: bytes */
	bool done;
	TAILQ_ENTRY(relay_job) wait;	/* r->waiting */
};

struct relay_msg {
	struct relay *r;
	struct store_queue_msg q;
	char id[24];
	char **mx;			/* per q.rcpts: "host[ip]" that gave
					 * this attempt's reply, or NULL */
	bool *dirty;			/* per q.rcpts: result not yet stored */
	struct relay_job *jobs;
	size_t njobs, left;		/* left: sessions still running */
	bool flushing;			/* on r->flushq */
	TAILQ_ENTRY(relay_msg) entry;	/* r->msgs */
	TAILQ_ENTRY(relay_msg) fentry;	/* r->flushq */
};

/* One recipient result to store (phase 1 of a flush). */
struct relay_upd {
	struct relay_msg *rm;
	size_t idx;			/* in rm->q.rcpts */
	int64_t rcpt_id;
	int status;
	char *error;			/* owned copy */
};

/*
 * One batch of store writes, done by the writer thread with its own
 * connection so that no fsync ever runs on the event loop. While a batch
 * is out, the loop does not touch the messages in fin[] (no sessions run
 * for them) and keeps the upd[] messages alive.
 */
struct relay_batch {
	struct relay_upd *upd;
	size_t nupd;
	struct relay_msg **fin;		/* attempts to finish (phase 2) */
	size_t nfin;
	bool gc;			/* also run store_gc */
	/* results */
	bool upd_ok;
	bool kick;			/* a DSN was queued */
};

struct relay_domain {
	char *name;
	unsigned sessions;
	struct relay_domain *next;
};

struct relay {
	struct event_base *base;
	const struct cfg *cfg;
	struct store *st;		/* loop thread: reads only */
	struct store *wst;		/* writer thread: every write */
	pthread_t writer;
	bool writer_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct relay_batch *todo;	/* handed to the writer (mu) */
	struct relay_batch *done;	/* back from the writer (mu) */
	bool writer_stop;		/* (mu) */
	bool busy;			/* a batch is out (loop only) */
	bool gc_due;
	int efd;			/* eventfd: writer -> loop */
	struct event *efd_ev;
	struct dns *dns;
	struct tls_ctx *tls;
	struct mta *mta;
	struct event *tick;
	struct event *kick;
	struct event *flush;		/* batched result commit */
	struct event *flush_retry;	/* after a store error */
	bool stopping;
	unsigned ticks;
	unsigned sessions;
	size_t nmsgs;
	TAILQ_HEAD(, relay_msg) msgs;
	TAILQ_HEAD(, relay_msg) flushq;	/* results or finish to store */
	TAILQ_HEAD(, relay_job) waiting;
	struct relay_domain *domains;
};

static void relay_tick(evutil_socket_t, short, void *);
static void relay_kick_event(evutil_socket_t, short, void *);
static void relay_scan(struct relay *);
static bool relay_is_active(struct relay *, int64_t);
static void relay_msg_start(struct relay *, int64_t);
static void relay_msg_free(struct relay_msg *);
static int relay_msg_finish(struct relay_msg *, struct store *, bool *);
static void relay_flush_event(evutil_socket_t, short, void *);
static void relay_flush(struct relay *);
static void relay_flush_add(struct relay_msg *);
static struct relay_batch *relay_batch_make(struct relay *);
static void relay_batch_run(struct relay *, struct store *,
    struct relay_batch *);
static void relay_batch_apply(struct relay *, struct relay_batch *);
static void *relay_writer_main(void *);
static void relay_writer_event(evutil_socket_t, short, void *);
static void relay_flush_sync(struct relay *);
static void relay_job_try_start(struct relay_job *);
static void relay_start_waiting(struct relay *);
static void relay_job_done(struct mta_session *, void *);
static void relay_job_rcpt(struct mta_session *, struct mta_rcpt *, void *);
static ssize_t relay_body_read(void *, uint64_t, void *, size_t);
static uint64_t relay_return_path_len(struct store_body *);
static struct relay_domain *relay_domain(struct relay *, const char *, bool);
static char *relay_read_password(const char *);
static int64_t relay_next_delay(const struct cfg *, unsigned);

struct relay *
relay_new(struct event_base *base, const struct cfg *cfg)
{
	struct relay *r;
	struct mta_params p;
	const char *error = NULL;
	char *pass = NULL;
	const char *env;
	struct timeval tv = { RELAY_TICK_MS / 1000, (RELAY_TICK_MS % 1000) *
	    1000 };
	int tmo = 0;

	r = xcalloc(1, sizeof(*r));
	r->base = base;
	r->cfg = cfg;
	r->efd = -1;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	TAILQ_INIT(&r->msgs);
	TAILQ_INIT(&r->flushq);
	TAILQ_INIT(&r->waiting);
	if ((r->st = store_open(cfg->store.path, &error)) == NULL) {
		log_error("event=relay.start result=fail error=\"store %s: "
		    "%s\"", cfg->store.path, error);
		goto fail;
	}
	if ((r->wst = store_open(cfg->store.path, &error)) == NULL) {
		log_error("event=relay.start result=fail error=\"store %s: "
		    "%s\"", cfg->store.path, error);
		goto fail;
	}
	r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->efd < 0) {
		log_error("event=relay.start result=fail error=\"eventfd: "
		    "%s\"", strerror(errno));
		goto fail;
	}
	r->efd_ev = event_new(base, r->efd, EV_READ | EV_PERSIST,
	    relay_writer_event, r);
	event_add(r->efd_ev, NULL);
	if (pthread_create(&r->writer, NULL, relay_writer_main, r) != 0) {
		log_error("event=relay.start result=fail error=\"cannot start "
		    "the writer thread\"");
		goto fail;
	}
	r->writer_started = true;
	r->dns = dns_new(base, cfg->relay.resolver, 0, 0, &error);
	if (r->dns == NULL) {
		log_error("event=relay.start result=fail error=\"resolver: "
		    "%s\"", error);
		goto fail;
	}
	error = NULL;
	/* A smarthost is verified against smarthost_ca (or the system's
	 * trust store); MX peers are only opportunistic. */
	if (tls_init() != 0 || (r->tls = tls_ctx_client_new(
	    cfg->relay.smarthost != NULL ? cfg->relay.smarthost_ca : NULL,
	    &error)) == NULL) {
		/* Opportunistic TLS is optional; a smarthost needs it. */
		log_warn("event=relay.start tls=unavailable error=\"%s\"",
		    error != NULL ? error : "tls init");
		r->tls = NULL;
	}
	if (cfg->relay.smarthost_password_file != NULL) {
		pass = relay_read_password(cfg->relay.smarthost_password_file);
		if (pass == NULL)
			goto fail;
	}
	/* Tests shorten the network timeouts (like smtpd's own knob). */
	if ((env = getenv("CARTEIRO_RELAY_TIMEOUT_MS")) != NULL)
		tmo = atoi(env);
	memset(&p, 0, sizeof(p));
	p.base = base;
	p.dns = r->dns;
	p.tls = r->tls;
	p.helo = cfg->server.hostname;
	p.port = cfg->relay.mx_port;
	p.smarthost = cfg->relay.smarthost;
	p.auth_user = cfg->relay.smarthost_user;
	p.auth_pass = pass;
	p.connect_timeout_ms = tmo;
	p.reply_timeout_ms = tmo;
	p.data_timeout_ms = tmo;
	r->mta = mta_new(&p);
	if (pass != NULL) {
		util_wipe(pass, strlen(pass));
		free(pass);
	}
	r->tick = event_new(base, -1, EV_PERSIST, relay_tick, r);
	event_add(r->tick, &tv);
	r->kick = event_new(base, -1, 0, relay_kick_event, r);
	r->flush = event_new(base, -1, 0, relay_flush_event, r);
	r->flush_retry = evtimer_new(base, relay_flush_event, r);
	/* Whatever is due from before a restart goes at once. */
	event_active(r->kick, EV_TIMEOUT, 1);
	log_info("event=relay.start mode=%s%s%s resolver=%s",
	    cfg->relay.smarthost ? "smarthost" : "mx",
	    cfg->relay.smarthost ? " smarthost=" : "",
	    cfg->relay.smarthost ? cfg->relay.smarthost : "",
	    cfg->relay.resolver ? cfg->relay.resolver : "system");
	return r;
fail:
	relay_free(r);
	return NULL;
}

void
relay_kick(struct relay *r)
{
	if (r == NULL || r->stopping)
		return;
	event_active(r->kick, EV_TIMEOUT, 1);
}

void
relay_shutdown(struct relay *r)
{
	struct relay_msg *rm;

	if (r == NULL || r->stopping)
		return;
	r->stopping = true;
	if (r->tick != NULL)
		event_del(r->tick);
	if (r->kick != NULL)
		event_del(r->kick);
	/* Results already known go to the store first (else delivered mail
	 * would be sent again after the restart). */
	relay_flush_sync(r);
	if (r->flush != NULL)
		event_del(r->flush);
	if (r->flush_retry != NULL)
		event_del(r->flush_retry);
	/* Recipients of aborted sessions stay pending in the store. */
	while ((rm = TAILQ_FIRST(&r->msgs)) != NULL)
		relay_msg_free(rm);
	log_info("event=relay.stop");
}

void
relay_free(struct relay *r)
{
	struct relay_domain *d;

	if (r == NULL)
		return;
	relay_shutdown(r);
	mta_free(r->mta);
	if (r->tick != NULL)
		event_free(r->tick);
	if (r->kick != NULL)
		event_free(r->kick);
	if (r->flush != NULL)
		event_free(r->flush);
	if (r->flush_retry != NULL)
		event_free(r->flush_retry);
	if (r->writer_started) {
		pthread_mutex_lock(&r->mu);
		r->writer_stop = true;
		pthread_cond_signal(&r->cv);
		pthread_mutex_unlock(&r->mu);
		pthread_join(r->writer, NULL);
	}
	if (r->efd_ev != NULL)
		event_free(r->efd_ev);
	if (r->efd >= 0)
		close(r->efd);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	dns_free(r->dns);
	tls_ctx_free(r->tls);
	store_close(r->st);
	store_close(r->wst);
	while ((d = r->domains) != NULL) {
		r->domains = d->next;
		free(d->name);
		free(d);
	}
	free(r);
}

/* First line of the smarthost password file; NULL and logged on error. */
static char *
relay_read_password(const char *path)
{
	FILE *f;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	if ((f = fopen(path, "r")) == NULL) {
		log_error("event=relay.start result=fail "
		    "error=\"smarthost_password_file %s: %s\"", path,
		    strerror(errno));
		return NULL;
	}
	n = getline(&line, &cap, f);
	fclose(f);
	if (n < 0) {
		free(line);
		return xstrdup("");
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return line;
}

static void
relay_tick(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;

	/* Bodies whose last reference went (delivered mail): a few at a
	 * time on the writer keeps every write short. */
	if (++r->ticks % RELAY_GC_EVERY == 0) {
		r->gc_due = true;
		relay_flush(r);
	}
	relay_scan(r);
}

static void
relay_kick_event(evutil_socket_t fd, short what, void *arg)
{
	relay_scan(arg);
}

static bool
relay_is_active(struct relay *r, int64_t id)
{
	struct relay_msg *rm;

	TAILQ_FOREACH(rm, &r->msgs, entry)
		if (rm->q.id == id)
			return true;
	return false;
}

/* Start every due message we have room for. */
static void
relay_scan(struct relay *r)
{
	int64_t *ids = NULL;
	size_t n = 0, i;
	uint64_t t0 = util_now_ms();

	if (r->stopping || r->nmsgs >= RELAY_MAX_MSGS)
		return;
	/* Messages in flight are still due: ask for that many more. */
	if (store_queue_due(r->st, util_time(), RELAY_MAX_MSGS + r->nmsgs, &ids,
	    &n) < 0) {
		log_warn("event=relay.scan result=fail error=\"%s\"",
		    store_error(r->st));
		return;
	}
	for (i = 0; i < n && r->nmsgs < RELAY_MAX_MSGS; i++)
		if (!relay_is_active(r, ids[i]))
			relay_msg_start(r, ids[i]);
	free(ids);
	if (n > 0)
		log_debug("event=relay.scan due=%zu active=%zu sessions=%u "
		    "ms=%" PRIu64, n, r->nmsgs, r->sessions,
		    util_now_ms() - t0);
}

static void
relay_msg_start(struct relay *r, int64_t id)
{
	struct relay_msg *rm;
	struct relay_job *job;
	struct store_queue_rcpt *qr;
	size_t i, j;
	int rc;

	rm = xcalloc(1, sizeof(*rm));
	rm->r = r;
	rc = store_queue_load(r->st, id, &rm->q);
	if (rc != 0) {
		if (rc < 0)
			log_warn("event=relay.load qid=%" PRId64 " result=fail "
			    "error=\"%s\"", id, store_error(r->st));
		free(rm);
		return;
	}
	snprintf(rm->id, sizeof(rm->id), "%" PRId64, id);
	TAILQ_INSERT_TAIL(&r->msgs, rm, entry);
	r->nmsgs++;

	rm->mx = xcalloc(rm->q.nrcpts ? rm->q.nrcpts : 1, sizeof(*rm->mx));
	rm->dirty = xcalloc(rm->q.nrcpts ? rm->q.nrcpts : 1,
	    sizeof(*rm->dirty));
	/* Group pending recipients by domain: one session each. */
	rm->jobs = xcalloc(rm->q.nrcpts ? rm->q.nrcpts : 1, sizeof(*rm->jobs));
	for (i = 0; i < rm->q.nrcpts; i++) {
		qr = &rm->q.rcpts[i];
		if (qr->status != STORE_QUEUE_RCPT_PENDING)
			continue;
		for (j = 0; j < rm->njobs; j++)
			if (strcasecmp(rm->jobs[j].domain, qr->domain) == 0)
				break;
		job = &rm->jobs[j];
		if (j == rm->njobs) {
			rm->njobs++;
			job->rm = rm;
			job->domain = xstrdup(qr->domain);
			job->rcpts = xcalloc(rm->q.nrcpts,
			    sizeof(*job->rcpts));
			job->qidx = xcalloc(rm->q.nrcpts, sizeof(*job->qidx));
		}
		job->rcpts[job->n].address = qr->address;
		job->qidx[job->n] = i;
		job->n++;
	}
	rm->left = rm->njobs;
	log_debug("event=relay.attempt qid=%s from=<%s> rcpts=%zu domains=%zu "
	    "attempts=%u", rm->id, rm->q.mail_from, rm->q.nrcpts, rm->njobs,
	    rm->q.attempts);
	if (rm->njobs == 0) {
		/* Only DSN work left (e.g. after a crash). */
		relay_flush_add(rm);
		return;
	}
	for (j = 0; j < rm->njobs; j++)
		relay_job_try_start(&rm->jobs[j]);
}

static struct relay_domain *
relay_domain(struct relay *r, const char *name, bool create)
{
	struct relay_domain *d;

	for (d = r->domains; d != NULL; d = d->next)
		if (strcasecmp(d->name, name) == 0)
			return d;
	if (!create)
		return NULL;
	d = xcalloc(1, sizeof(*d));
	d->name = xstrdup(name);
	d->next = r->domains;
	r->domains = d;
	return d;
}

/* Start the job's session now if the limits allow, else queue it. */
static void
relay_job_try_start(struct relay_job *job)
{
	struct relay_msg *rm = job->rm;
	struct relay *r = rm->r;
	struct relay_domain *d = relay_domain(r, job->domain, true);
	uint64_t size = 0;

	if (r->sessions >= RELAY_MAX_SESSIONS ||
	    d->sessions >= RELAY_MAX_PER_DOMAIN) {
		TAILQ_INSERT_TAIL(&r->waiting, job, wait);
		job->s = NULL;
		return;
	}
	job->body = store_body_open(r->st, rm->q.body_id, &size);
	if (job->body == NULL)
		log_warn("event=relay.body qid=%s result=fail error=\"%s\"",
		    rm->id, store_error(r->st));
	else
		job->skip = relay_return_path_len(job->body);
	size -= job->skip;
	job->mm.id = rm->id;
	job->mm.domain = job->domain;
	job->mm.mail_from = rm->q.mail_from;
	job->mm.smtputf8 = rm->q.smtputf8;
	job->mm.size = size;
	job->mm.read = relay_body_read;
	job->mm.read_arg = job;
	job->mm.rcpts = job->rcpts;
	job->mm.nrcpts = job->n;
	r->sessions++;
	d->sessions++;
	log_debug("event=relay.session qid=%s domain=%s rcpts=%zu sessions=%u "
	    "domain_sessions=%u", rm->id, job->domain, job->n, r->sessions,
	    d->sessions);
	job->s = mta_session_start(r->mta, &job->mm, relay_job_rcpt,
	    relay_job_done, job);
}

static void
relay_start_waiting(struct relay *r)
{
	struct relay_job *job, *next;
	struct relay_domain *d;

	for (job = TAILQ_FIRST(&r->waiting); job != NULL &&
	    r->sessions < RELAY_MAX_SESSIONS; job = next) {
		next = TAILQ_NEXT(job, wait);
		d = relay_domain(r, job->domain, true);
		if (d->sessions >= RELAY_MAX_PER_DOMAIN)
			continue;
		TAILQ_REMOVE(&r->waiting, job, wait);
		relay_job_try_start(job);
	}
}

static ssize_t
relay_body_read(void *arg, uint64_t off, void *buf, size_t len)
{
	struct relay_job *job = arg;

	if (job->body == NULL)
		return -1;
	return store_body_read(job->body, off + job->skip, buf, len);
}

/*
 * The stored body starts with the prefix smtpd wrote for the mailbox
 * copies (Return-Path + Received). RFC 5321 4.4: Return-Path is added at
 * final delivery only, so it is not sent on: its bytes are skipped.
 */
static uint64_t
relay_return_path_len(struct store_body *b)
{
	char buf[1024];
	ssize_t n;
	size_t i;

	n = store_body_read(b, 0, buf, sizeof(buf));
	if (n < 14 || strncasecmp(buf, "Return-Path:", 12) != 0)
		return 0;
	for (i = 0; i + 2 < (size_t)n; i++)
		if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] != ' ' &&
		    buf[i + 2] != '\t')
			return i + 2;
	return 0;
}

/* Results are collected in relay_job_done, which mta.c calls right after
 * the last one (same call stack). */
static void
relay_job_rcpt(struct mta_session *s, struct mta_rcpt *mr, void *arg)
{
}

/*
 * A session is over: its results go into memory now and into the store
 * from relay_flush, in one transaction with every other session that
 * ended in this loop iteration (one fsync per burst, not per session; a
 * burst of 100 fsyncs would stall the listener). Nothing else reaches the
 * network before that commit.
 */
static void
relay_job_done(struct mta_session *s, void *arg)
{
	struct relay_job *job = arg;
	struct relay_msg *rm = job->rm;
	struct relay *r = rm->r;
	struct relay_domain *d = relay_domain(r, job->domain, false);
	struct store_queue_rcpt *qr;
	struct mta_rcpt *mr;
	char esc[LOG_ESCAPE_MAX];
	bool no_dsn = rm->q.mail_from[0] == '\0' || rm->q.is_bounce;
	enum store_queue_rcpt_status st;
	size_t i, k;

	job->s = NULL;
	job->done = true;
	r->sessions--;
	if (d != NULL)
		d->sessions--;
	store_body_close(job->body);
	job->body = NULL;

	for (i = 0; i < job->n; i++) {
		mr = &job->rcpts[i];
		k = job->qidx[i];
		qr = &rm->q.rcpts[k];
		st = mr->result == MTA_OK ? STORE_QUEUE_RCPT_DELIVERED :
		    mr->result == MTA_PERM ? (no_dsn ? STORE_QUEUE_RCPT_BOUNCED :
		    STORE_QUEUE_RCPT_FAILED) : STORE_QUEUE_RCPT_PENDING;
		qr->status = st;
		free(rm->mx[k]);
		rm->mx[k] = mr->mx != NULL ? xstrdup(mr->mx) : NULL;
		free(qr->last_error);
		qr->last_error = xstrdup(mr->reply ? mr->reply : "");
		rm->dirty[k] = true;
		log_info("event=relay.delivery qid=%s rcpt=%s domain=%s "
		    "mx=%s status=%s attempt=%u reply=%s", rm->id,
		    qr->address, job->domain, mr->mx ? mr->mx : "-",
		    st == STORE_QUEUE_RCPT_DELIVERED ? "sent" : st ==
		    STORE_QUEUE_RCPT_PENDING ? "deferred" : "bounced",
		    rm->q.attempts + 1, log_escape(esc, sizeof(esc),
		    qr->last_error, strlen(qr->last_error)));
	}
	rm->left--;
	relay_flush_add(rm);
	relay_start_waiting(r);
}

static void
relay_flush_add(struct relay_msg *rm)
{
	struct relay *r = rm->r;

	if (!rm->flushing) {
		rm->flushing = true;
		TAILQ_INSERT_TAIL(&r->flushq, rm, fentry);
	}
	if (!r->busy && !evtimer_pending(r->flush_retry, NULL))
		event_active(r->flush, EV_TIMEOUT, 1);
}

static void
relay_flush_event(evutil_socket_t fd, short what, void *arg)
{
	relay_flush(arg);
}

/*
 * Take what is on the flush queue: a snapshot of every unstored recipient
 * result (phase 1) and the messages whose sessions are all over (phase 2,
 * handed to the batch). NULL if there is nothing to do.
 */
static struct relay_batch *
relay_batch_make(struct relay *r)
{
	struct relay_batch *b;
	struct relay_msg *rm;
	size_t i, nupd = 0, nfin = 0;

	TAILQ_FOREACH(rm, &r->flushq, fentry) {
		for (i = 0; i < rm->q.nrcpts; i++)
			nupd += rm->dirty[i];
		nfin += rm->left == 0;
	}
	if (nupd == 0 && nfin == 0 && !r->gc_due)
		return NULL;
	b = xcalloc(1, sizeof(*b));
	b->upd = xcalloc(nupd + 1, sizeof(*b->upd));
	b->fin = xcalloc(nfin + 1, sizeof(*b->fin));
	b->gc = r->gc_due;
	r->gc_due = false;
	while ((rm = TAILQ_FIRST(&r->flushq)) != NULL) {
		TAILQ_REMOVE(&r->flushq, rm, fentry);
		rm->flushing = false;
		for (i = 0; i < rm->q.nrcpts; i++) {
			struct relay_upd *u;

			if (!rm->dirty[i])
				continue;
			rm->dirty[i] = false;
			u = &b->upd[b->nupd++];
			u->rm = rm;
			u->idx = i;
			u->rcpt_id = rm->q.rcpts[i].id;
			u->status = rm->q.rcpts[i].status;
			u->error = xstrdup(rm->q.rcpts[i].last_error ?
			    rm->q.rcpts[i].last_error : "");
		}
		if (rm->left == 0)
			b->fin[b->nfin++] = rm;
	}
	return b;
}

/*
 * Writer thread (or the loop at shutdown, when the writer is idle).
 * Phase 1: every recipient result, one transaction. Phase 2 only if that
 * committed: each finished attempt in its own SAVEPOINT inside one
 * transaction (DSNs, reschedule or delete); one that fails is undone
 * alone and stays due in the store, to be tried again.
 */
static void
relay_batch_run(struct relay *r, struct store *st, struct relay_batch *b)
{
	int64_t now = util_time();
	uint64_t t0 = util_now_ms();
	bool ok;
	size_t i;

	b->upd_ok = true;
	if (b->nupd > 0) {
		ok = store_begin(st) == 0;
		for (i = 0; ok && i < b->nupd; i++)
			if (store_queue_rcpt_set(st, b->upd[i].rcpt_id,
			    (enum store_queue_rcpt_status)b->upd[i].status,
			    b->upd[i].error, now) < 0)
				ok = false;
		if (ok && store_commit(st) < 0)
			ok = false;
		if (!ok) {
			store_rollback(st);
			log_error("event=relay.store result=fail error=\"%s\" "
			    "retry=1s", store_error(st));
			b->upd_ok = false;
			return;
		}
	}
	if (b->nfin > 0) {
		if (store_begin(st) < 0) {
			log_error("event=relay.store result=fail error=\"%s\"",
			    store_error(st));
			return;
		}
		for (i = 0; i < b->nfin; i++) {
			if (store_begin(st) < 0)
				break;
			if (relay_msg_finish(b->fin[i], st, &b->kick) < 0) {
				log_error("event=relay.store qid=%s result=fail "
				    "error=\"%s\"", b->fin[i]->id,
				    store_error(st));
				store_rollback(st);
			} else if (store_commit(st) < 0)
				break;
		}
		if (store_commit(st) < 0) {
			store_rollback(st);
			log_error("event=relay.store result=fail error=\"%s\"",
			    store_error(st));
		}
	}
	if (b->gc && store_gc(st, RELAY_GC_BODIES, NULL) < 0)
		log_warn("event=relay.gc result=fail error=\"%s\"",
		    store_error(st));
	log_debug("event=relay.flush rcpts=%zu finished=%zu ms=%" PRIu64,
	    b->nupd, b->nfin, util_now_ms() - t0);
}

/* Loop thread: the batch is back; free what it finished. */
static void
relay_batch_apply(struct relay *r, struct relay_batch *b)
{
	struct timeval tv = { 1, 0 };
	size_t i;

	for (i = 0; i < b->nupd; i++) {
		if (!b->upd_ok) {
			/* Store them with the next batch. */
			b->upd[i].rm->dirty[b->upd[i].idx] = true;
			relay_flush_add(b->upd[i].rm);
		}
		free(b->upd[i].error);
	}
	for (i = 0; i < b->nfin; i++) {
		if (b->upd_ok)
			relay_msg_free(b->fin[i]);	/* done, or due again */
		else
			relay_flush_add(b->fin[i]);
	}
	if (!b->upd_ok)
		evtimer_add(r->flush_retry, &tv);
	/* A queued DSN, or room for more messages: look again now. */
	if (b->kick || (b->nfin > 0 && r->nmsgs + b->nfin >= RELAY_MAX_MSGS))
		relay_kick(r);
	free(b->upd);
	free(b->fin);
	free(b);
}

/* Hand the next batch to the writer unless one is out already. */
static void
relay_flush(struct relay *r)
{
	struct relay_batch *b;

	if (r->busy || r->stopping || evtimer_pending(r->flush_retry, NULL))
		return;
	if ((b = relay_batch_make(r)) == NULL)
		return;
	r->busy = true;
	pthread_mutex_lock(&r->mu);
	r->todo = b;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static void *
relay_writer_main(void *arg)
{
	struct relay *r = arg;
	struct relay_batch *b;
	uint64_t one = 1;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (r->todo == NULL && !r->writer_stop)
			pthread_cond_wait(&r->cv, &r->mu);
		if (r->todo == NULL)
			break;
		b = r->todo;
		r->todo = NULL;
		pthread_mutex_unlock(&r->mu);
		relay_batch_run(r, r->wst, b);
		pthread_mutex_lock(&r->mu);
		r->done = b;
		pthread_cond_broadcast(&r->cv);
		/* eventfd writes only fail when the counter would overflow. */
		(void)!write(r->efd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

static void
relay_writer_event(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;
	struct relay_batch *b;
	uint64_t n;

	(void)!read(fd, &n, sizeof(n));
	pthread_mutex_lock(&r->mu);
	b = r->done;
	r->done = NULL;
	pthread_mutex_unlock(&r->mu);
	if (b == NULL)
		return;
	r->busy = false;
	relay_batch_apply(r, b);
	relay_flush(r);
}

/*
 * Shutdown: wait for the batch that is out, then store whatever results
 * are left right here (the writer is idle), so mail delivered before
 * SIGTERM is never sent again.
 */
static void
relay_flush_sync(struct relay *r)
{
	struct relay_batch *b;

	if (r->wst == NULL)
		return;
	pthread_mutex_lock(&r->mu);
	while (r->busy && r->done == NULL)
		pthread_cond_wait(&r->cv, &r->mu);
	b = r->done;
	r->done = NULL;
	pthread_mutex_unlock(&r->mu);
	if (b != NULL) {
		r->busy = false;
		relay_batch_apply(r, b);
	}
	evtimer_del(r->flush_retry);
	if ((b = relay_batch_make(r)) != NULL) {
		relay_batch_run(r, r->wst, b);
		relay_batch_apply(r, b);
	}
}

/* Delay before attempt number attempts+1: retry_first doubling, capped. */
static int64_t
relay_next_delay(const struct cfg *cfg, unsigned attempts)
{
	int64_t d = cfg->relay.retry_first;
	unsigned i;

	for (i = 1; i < attempts && d < (int64_t)cfg->relay.retry_max; i++)
		d *= 2;
	if (d > (int64_t)cfg->relay.retry_max)
		d = cfg->relay.retry_max;
	return d;
}

/*
 * The attempt is over for every domain: DSNs for new permanent failures
 * (and expired recipients), a delay warning if due, then reschedule or
 * delete. Runs inside relay_flush's transaction; *kick_r is set when a
 * DSN was queued. 0 or -1 (store error: the caller rolls this back).
 */
static int
relay_msg_finish(struct relay_msg *rm, struct store *st, bool *kick_r)
{
	struct relay *r = rm->r;
	const struct cfg *cfg = r->cfg;
	struct store_queue_msg *q = &rm->q;
	struct bounce_rcpt *fail, *delay;
	size_t nfail = 0, ndelay = 0, npending = 0, i;
	int64_t now = util_time(), expires, next;
	unsigned attempts = q->attempts + 1;
	bool expired, warn;
	int rc, ret = -1;

	expires = q->created + (int64_t)cfg->relay.queue_lifetime;
	expired = now >= expires;
	warn = !expired && !q->warned && cfg->relay.delay_warning > 0 &&
	    now >= q->created + (int64_t)cfg->relay.delay_warning;
	fail = xcalloc(q->nrcpts + 1, sizeof(*fail));
	delay = xcalloc(q->nrcpts + 1, sizeof(*delay));
	for (i = 0; i < q->nrcpts; i++) {
		struct store_queue_rcpt *qr = &q->rcpts[i];

		if (qr->status == STORE_QUEUE_RCPT_FAILED ||
		    (qr->status == STORE_QUEUE_RCPT_PENDING && expired)) {
			fail[nfail].address = qr->address;
			fail[nfail].reply = qr->last_error != NULL &&
			    qr->last_error[0] != '\0' ? qr->last_error :
			    "451 4.4.7 delivery time expired";
			fail[nfail].remote_mta = rm->mx[i];
			nfail++;
		} else if (qr->status == STORE_QUEUE_RCPT_PENDING) {
			delay[ndelay].address = qr->address;
			delay[ndelay].reply = qr->last_error;
			delay[ndelay].remote_mta = rm->mx[i];
			ndelay++;
			npending++;
		}
	}

	if (nfail > 0) {
		rc = bounce_send(st, cfg->server.hostname,
		    cfg->server.postmaster, q, BOUNCE_FAILED, 0, fail, nfail);
		if (rc < 0)
			goto out;
		*kick_r |= rc == 0;
		for (i = 0; i < q->nrcpts; i++) {
			struct store_queue_rcpt *qr = &q->rcpts[i];

			if (qr->status == STORE_QUEUE_RCPT_FAILED ||
			    (qr->status == STORE_QUEUE_RCPT_PENDING && expired)) {
				if (store_queue_rcpt_set(st, qr->id,
				    STORE_QUEUE_RCPT_BOUNCED, NULL, now) < 0)
					goto out;
				if (qr->status == STORE_QUEUE_RCPT_PENDING)
					log_info("event=relay.expire qid=%s "
					    "rcpt=%s status=bounced", rm->id,
					    qr->address);
			}
		}
	}
	if (warn && npending > 0) {
		rc = bounce_send(st, cfg->server.hostname,
		    cfg->server.postmaster, q, BOUNCE_DELAYED, expires, delay,
		    ndelay);
		if (rc < 0)
			goto out;
		*kick_r |= rc == 0;
		if (store_queue_set_warned(st, q->id) < 0)
			goto out;
	}
	if (npending == 0 || expired) {
		if (store_queue_delete(st, q->id) < 0)
			goto out;
		log_info("event=relay.done qid=%s attempts=%u", rm->id,
		    attempts);
	} else {
		next = now + relay_next_delay(cfg, attempts);
		/* The last retry lands on the expiry, not days after it. */
		if (next > expires)
			next = expires;
		if (store_queue_reschedule(st, q->id, next, attempts) < 0)
			goto out;
		log_info("event=relay.retry qid=%s attempts=%u pending=%zu "
		    "next_in=%" PRId64 "s", rm->id, attempts, npending,
		    next - now);
	}
	ret = 0;
out:
	free(fail);
	free(delay);
	return ret;
}

/* Forget a message in flight (aborting its sessions, no callbacks). */
static void
relay_msg_free(struct relay_msg *rm)
{
	struct relay *r = rm->r;
	struct relay_domain *d;
	struct relay_job *job;
	size_t j;

	for (j = 0; j < rm->njobs; j++) {
		job = &rm->jobs[j];
		if (job->s != NULL) {
			mta_session_abort(job->s);
			r->sessions--;
			if ((d = relay_domain(r, job->domain, false)) != NULL)
				d->sessions--;
		} else if (!job->done) {
			TAILQ_REMOVE(&r->waiting, job, wait);
		}
		store_body_close(job->body);
		free(job->domain);
		free(job->rcpts);
		free(job->qidx);
	}
	free(rm->jobs);
	for (j = 0; j < rm->q.nrcpts; j++)
		free(rm->mx[j]);
	free(rm->mx);
	free(rm->dirty);
	if (rm->flushing)
		TAILQ_REMOVE(&r->flushq, rm, fentry);
	TAILQ_REMOVE(&r->msgs, rm, entry);
	r->nmsgs--;
	store_queue_msg_clear(&rm->q);
	free(rm);
}
