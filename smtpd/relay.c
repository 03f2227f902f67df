/*
 * The outbound queue runner, lifecycle and scheduling: every second, on a
 * "queue changed" post and when there is room again, due messages are
 * split by destination domain into jobs started within the concurrency
 * limits. Not here: one attempt (relay_attempt.c), storing results
 * (relay_flush.c), DNS, the SMTP dialogue (mta.c), SQL.
 */
/*
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
#include "smtpd/relay_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/config.h"
#include "common/log.h"
#include "common/notify.h"
#include "common/tls.h"
#include "common/util.h"
#include "common/workq.h"
#include "mailauth/dns.h"
#include "smtpd/mta_sts.h"
#include "smtpd/relay_monitor.h"
#include "smtpd/tlsrpt_send.h"
#include "store/domain_source.h"
#include "store/store.h"

static void relay_tick(evutil_socket_t, short, void *);
static void relay_kick_event(evutil_socket_t, short, void *);
static void relay_queue_changed(void *);
static void relay_scan(struct relay *);
static void relay_msg_identity(struct relay_msg *);
static char *relay_read_password(const char *);
static int relay_source_join(struct relay *);

void
relay_set_srs(struct relay *r, const struct srs *srs)
{
	r->srs = srs;
}

struct relay *
relay_new(struct event_base *base, const struct cfg *cfg,
    struct notify *queue_changed)
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
	TAILQ_INIT(&r->msgs);
	TAILQ_INIT(&r->flushq);
	TAILQ_INIT(&r->waiting);
	if ((r->st = store_open(cfg->store.locator, &error)) == NULL) {
		log_error("event=relay.start result=fail error=\"store %s: "
		    "%s\"", cfg->store.path, error);
		goto fail;
	}
	if ((r->wst = store_open(cfg->store.locator, &error)) == NULL) {
		log_error("event=relay.start result=fail error=\"store %s: "
		    "%s\"", cfg->store.path, error);
		goto fail;
	}
	/* One batch at a time (r->busy), so one job per pass. */
	r->writer = workq_new_batch(base, 1, 1, relay_writer_batch, NULL,
	    NULL, NULL, r);
	r->dns = dns_new(base, cfg->relay.resolver, 0, 0, &error);
	if (r->dns == NULL) {
		log_error("event=relay.start result=fail error=\"resolver: "
		    "%s\"", error);
		goto fail;
	}
	error = NULL;
	/* A smarthost is verified against smarthost_ca (or the system's
	 * trust store); MX peers against the system's (tests: their CA),
	 * which only matters under an MTA-STS policy. */
	if (tls_init() != 0 || (r->tls = tls_ctx_client_new(
	    cfg->relay.smarthost != NULL ? cfg->relay.smarthost_ca :
	    getenv("CARTEIRO_TEST_CA_FILE"), &error)) == NULL) {
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
	if (tmo > 0) {
		p.connect_timeout_ms = p.greeting_timeout_ms = tmo;
		p.reply_timeout_ms = p.data_init_timeout_ms = tmo;
		p.block_timeout_ms = p.data_timeout_ms = tmo;
	} else {
		/* RFC 5321 4.5.3.2 from three keys: greeting 5 min,
		 * MAIL/RCPT 5, DATA 2, each block 3, final dot 10. */
		p.greeting_timeout_ms = (int)cfg->relay.connect_timeout * 1000;
		p.connect_timeout_ms = p.greeting_timeout_ms < 30000 ?
		    p.greeting_timeout_ms : 30000;
		p.reply_timeout_ms = (int)cfg->relay.command_timeout * 1000;
		p.data_init_timeout_ms = p.reply_timeout_ms / 5 * 2;
		p.block_timeout_ms = (int)cfg->relay.data_timeout * 1000;
		p.data_timeout_ms = p.block_timeout_ms / 3 * 10;
	}
	p.max_msgs_per_conn = cfg->relay.max_messages_per_connection;
	p.idle_max = cfg->relay.max_connections;
	if ((env = getenv("CARTEIRO_RELAY_IDLE_MS")) != NULL)
		p.idle_ms = atoi(env);
	r->throttle_reset = true;
	if (relay_source_join(r) < 0 || relay_claim_init(r) < 0)
		goto fail;
	if (cfg->relay.mta_sts && cfg->relay.smarthost == NULL) {
		struct mta_sts_params sp = {
			.base = base, .dns = r->dns, .st = r->st,
			.store_path = cfg->store.locator,
			.ca_file = getenv("CARTEIRO_TEST_CA_FILE"),
			/* Tests serve the policy on another port. */
			.https_port = (env = getenv(
			    "CARTEIRO_TEST_MTA_STS_PORT")) != NULL ?
			    (unsigned)atoi(env) : 443,
		};

		r->sts = mta_sts_new(&sp);
		p.sts = r->sts;
	}
	r->monitor = relay_monitor_new(base, cfg, r->dns);
	/* TLS-RPT (RFC 8460): the sessions count, a timer mails reports. */
	r->tlsrpt = tlsrpt_sender_new(base, cfg, r->dns);
	p.tlsrpt = tlsrpt_sender_counts(r->tlsrpt);
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
	r->queue_changed = queue_changed;
	if (queue_changed != NULL)
		notify_subscribe(queue_changed, relay_queue_changed, r);
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

static void
relay_queue_changed(void *arg)
{
	relay_kick(arg);
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
	relay_claim_release_all(r);
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
	mta_sts_free(r->sts);
	if (r->monitor != NULL) {
		/* Its thread may wait on a lookup the stopped loop will never
		 * answer: answer TEMPFAIL now. */
		dns_sync_close(r->dns);
		relay_monitor_free(r->monitor);
	}
	if (r->tick != NULL)
		event_free(r->tick);
	if (r->kick != NULL)
		event_free(r->kick);
	if (r->flush != NULL)
		event_free(r->flush);
	if (r->flush_retry != NULL)
		event_free(r->flush_retry);
	if (r->queue_changed != NULL)
		notify_unsubscribe(r->queue_changed, relay_queue_changed, r);
	workq_free(r->writer);
	tlsrpt_sender_free(r->tlsrpt);
	dns_free(r->dns);
	tls_ctx_free(r->tls);
	store_close(r->st);
	store_close(r->wst);
	while ((d = r->domains) != NULL) {
		r->domains = d->next;
		free(d->name);
		free(d->reason);
		free(d);
	}
	free(r->source);
	free(r->node);
	free(r);
}

/* [relay] source_ip as the "ip,ip" list struct mta_msg takes; at most
 * one address per family. -1 and logged if one is not an address. */
static int
relay_source_join(struct relay *r)
{
	const struct cfg_strlist *l = &r->cfg->relay.source_ip;
	struct sockaddr_storage ss;
	int fams[2] = { 0, 0 };
	size_t i, len = 0;

	for (i = 0; i < l->n; i++) {
		if (dns_parse_ip(l->v[i], 0, &ss, NULL) < 0 || (i > 0 &&
		    fams[0] == ss.ss_family) || i > 1) {
			log_error("event=relay.start result=fail "
			    "error=\"source_ip: '%s' is not an address, or a "
			    "second one of its family\"", l->v[i]);
			return -1;
		}
		fams[i] = ss.ss_family;
		len += strlen(l->v[i]) + 1;
	}
	if (l->n == 0)
		return 0;
	r->source = xcalloc(1, len + 1);
	for (i = 0; i < l->n; i++) {
		if (i > 0)
			strcat(r->source, ",");
		strcat(r->source, l->v[i]);
	}
	return 0;
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
	} else if (r->nmsgs > 0 && util_time() >= r->renew_at) {
		relay_flush(r);		/* the leases of our claims */
	}
	/* Domains whose throttling hold ran out. */
	relay_start_waiting(r);
	relay_scan(r);
}

static void
relay_kick_event(evutil_socket_t fd, short what, void *arg)
{
	relay_scan(arg);
}

bool
relay_is_active(struct relay *r, int64_t id)
{
	struct relay_msg *rm;

	TAILQ_FOREACH(rm, &r->msgs, entry)
		if (rm->q.id == id)
			return true;
	return false;
}

/*
 * Due mail we have room for: claim it on the writer (relay_claim.c), which
 * starts what it got when the batch is back. A read first, so that an idle
 * queue costs no write transaction: messages in flight are still due, so
 * one more than those tells whether anything else is.
 */
static void
relay_scan(struct relay *r)
{
	int64_t *ids = NULL;
	size_t n = 0, i, other = 0;

	if (r->stopping || r->nmsgs >= RELAY_MAX_MSGS)
		return;
	if (store_queue_due(r->st, util_time(), r->nmsgs + 1, &ids, &n) < 0) {
		log_warn("event=relay.scan result=fail error=\"%s\"",
		    store_error(r->st));
		return;
	}
	for (i = 0; i < n; i++)
		other += !relay_is_active(r, ids[i]);
	free(ids);
	if (other == 0)
		return;
	log_debug("event=relay.scan due=%zu active=%zu sessions=%u", n,
	    r->nmsgs, r->sessions);
	r->claim_due = true;
	relay_flush(r);
}

void
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
	relay_msg_identity(rm);
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
		job->rcpts[job->n].dsn_notify = qr->dsn_notify;
		job->rcpts[job->n].dsn_orcpt = qr->dsn_orcpt;
		job->qidx[job->n] = i;
		job->n++;
	}
	rm->left = rm->njobs;
	log_debug("event=relay.attempt qid=%s from=%s rcpts=%zu domains=%zu "
	    "attempts=%u", rm->id, LOG_VALUE(rm->q.mail_from), rm->q.nrcpts, rm->njobs,
	    rm->q.attempts);
	if (rm->njobs == 0) {
		/* Only DSN work left (e.g. after a crash). */
		relay_flush_add(rm);
		return;
	}
	for (j = 0; j < rm->njobs; j++)
		relay_job_try_start(&rm->jobs[j]);
}

/* A local sender domain with its own source address or HELO name
 * (carteiroctl domain set) sends from it; else [relay] source_ip and
 * [server] hostname. Bounces (<>) use the server's. */
static void
relay_msg_identity(struct relay_msg *rm)
{
	struct store_domain_source row;
	const char *at = strrchr(rm->q.mail_from, '@');

	if (at == NULL || at[1] == '\0')
		return;
	if (store_domain_source_get(rm->r->st, at + 1, &row) != 0)
		return;		/* not local (a forward), or a read error */
	rm->source = row.source_ip;
	rm->helo = row.helo;
	row.source_ip = row.helo = NULL;
	store_domain_source_clear(&row);
}

struct relay_domain *
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

void
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
	free(rm->source);
	free(rm->helo);
	if (rm->flushing)
		TAILQ_REMOVE(&r->flushq, rm, fentry);
	TAILQ_REMOVE(&r->msgs, rm, entry);
	r->nmsgs--;
	store_queue_msg_clear(&rm->q);
	free(rm);
}
