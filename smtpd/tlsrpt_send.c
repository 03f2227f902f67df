/*
 * The TLS-RPT sender (tlsrpt_send.h). A timer takes the period's counts;
 * each policy domain's _smtp._tls TXT record is looked up on the loop;
 * the report message (RFC 8460 5.3: multipart/report, report-type
 * "tlsrpt", the JSON gzipped as application/tlsrpt+gzip) is built there
 * and queued by one worker thread with a store of its own, so the
 * fsync never runs on the loop. The relay then delivers it like any
 * queued message (null sender: nothing ever bounces for a report).
 */
#include "smtpd/tlsrpt_send.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/auth.h"
#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "common/workq.h"
#include "mailauth/dns.h"
#include "smtpd/tlsrpt.h"
#include "store/store.h"

#define TLSRPT_RUA_MAX		10	/* addresses per report */

struct tlsrpt_snap {
	struct tlsrpt *t;
	time_t start, end;		/* the period, end inclusive */
	unsigned refs;
};

struct tlsrpt_job {
	struct tlsrpt_sender *s;
	struct tlsrpt_job *prev, *next;	/* s->jobs: TXT lookups */
	struct tlsrpt_snap *snap;
	char *domain;
	struct dns_req *dreq;
	char *rua[TLSRPT_RUA_MAX];
	size_t nrua;
	char *text;
	size_t len;
	int rc;				/* store_deliver_mem's */
	int64_t qid;
};

struct tlsrpt_sender {
	struct event_base *base;
	const struct cfg *cfg;
	struct dns *dns;
	struct tlsrpt *counts;
	struct event *timer;
	struct workq *wq;
	time_t since;
	struct tlsrpt_job *jobs;
};

static void tlsrpt_send_tick(evutil_socket_t, short, void *);
static void tlsrpt_send_txt(enum dns_status, const char *const *, size_t,
    void *);
static void tlsrpt_job_free(struct tlsrpt_job *);

static void *
tlsrpt_send_thread_init(void *arg)
{
	const struct cfg *cfg = arg;
	const char *error = NULL;
	struct store *st = store_open(cfg->store.locator, &error);

	if (st == NULL)
		log_error("event=tlsrpt.start result=fail error=\"store: %s\"",
		    error != NULL ? error : "?");
	return st;
}

static void
tlsrpt_send_thread_fini(void *ctx)
{
	if (ctx != NULL)
		store_close(ctx);
}

struct tlsrpt_sender *
tlsrpt_sender_new(struct event_base *base, const struct cfg *cfg,
    struct dns *dns)
{
	struct tlsrpt_sender *s;
	struct timeval tv = { (time_t)cfg->relay.tls_report_interval, 0 };

	if (cfg->relay.tls_report_interval == 0)
		return NULL;
	s = xcalloc(1, sizeof(*s));
	s->base = base;
	s->cfg = cfg;
	s->dns = dns;
	s->counts = tlsrpt_new();
	s->since = time(NULL);
	s->wq = workq_new(base, 1, 64, tlsrpt_send_thread_init,
	    tlsrpt_send_thread_fini, (void *)cfg);
	s->timer = event_new(base, -1, EV_PERSIST, tlsrpt_send_tick, s);
	event_add(s->timer, &tv);
	return s;
}

struct tlsrpt *
tlsrpt_sender_counts(struct tlsrpt_sender *s)
{
	return s != NULL ? s->counts : NULL;
}

void
tlsrpt_sender_free(struct tlsrpt_sender *s)
{
	if (s == NULL)
		return;
	while (s->jobs != NULL)
		tlsrpt_job_free(s->jobs);
	workq_free(s->wq);
	event_free(s->timer);
	tlsrpt_free(s->counts);
	free(s);
}

static void
tlsrpt_job_free(struct tlsrpt_job *job)
{
	struct tlsrpt_sender *s = job->s;
	size_t i;

	if (job->prev != NULL)
		job->prev->next = job->next;
	else if (s->jobs == job)
		s->jobs = job->next;
	if (job->next != NULL)
		job->next->prev = job->prev;
	dns_cancel(job->dreq);
	if (--job->snap->refs == 0) {
		tlsrpt_free(job->snap->t);
		free(job->snap);
	}
	for (i = 0; i < job->nrua; i++)
		free(job->rua[i]);
	free(job->domain);
	free(job->text);
	free(job);
}

static void
tlsrpt_send_tick(evutil_socket_t fd, short what, void *arg)
{
	struct tlsrpt_sender *s = arg;
	struct tlsrpt_snap *snap;
	const char **doms;
	size_t n, i;
	time_t now = time(NULL);
	char name[300];

	snap = xcalloc(1, sizeof(*snap));
	snap->t = tlsrpt_take(s->counts);
	snap->start = s->since;
	snap->end = now > s->since ? now - 1 : now;
	s->since = now;
	n = tlsrpt_domains(snap->t, &doms);
	snap->refs = 1;			/* this loop's */
	for (i = 0; i < n; i++) {
		struct tlsrpt_job *job = xcalloc(1, sizeof(*job));

		job->s = s;
		job->snap = snap;
		snap->refs++;
		job->domain = xstrdup(doms[i]);
		job->next = s->jobs;
		if (s->jobs != NULL)
			s->jobs->prev = job;
		s->jobs = job;
		snprintf(name, sizeof(name), "_smtp._tls.%s", doms[i]);
		job->dreq = dns_txt(s->dns, name, tlsrpt_send_txt, job);
	}
	if (--snap->refs == 0) {
		tlsrpt_free(snap->t);
		free(snap);
	}
}

/* RFC 8460 3: "v=TLSRPTv1; rua=mailto:a@b,mailto:c@d". The mailto:
 * addresses into job->rua; the count. */
static size_t
tlsrpt_send_parse(struct tlsrpt_job *job, const char *rec)
{
	char *copy, *field, *save = NULL;

	if (strncmp(rec, "v=TLSRPTv1", 10) != 0 || (rec[10] != ';' &&
	    rec[10] != ' ' && rec[10] != '\0'))
		return 0;
	copy = xstrdup(rec);
	for (field = strtok_r(copy, ";", &save); field != NULL;
	    field = strtok_r(NULL, ";", &save)) {
		char *uri, *usave = NULL;

		while (*field == ' ' || *field == '\t')
			field++;
		if (strncasecmp(field, "rua=", 4) != 0)
			continue;
		for (uri = strtok_r(field + 4, ",", &usave); uri != NULL;
		    uri = strtok_r(NULL, ",", &usave)) {
			size_t l;

			while (*uri == ' ' || *uri == '\t')
				uri++;
			l = strcspn(uri, " \t");
			uri[l] = '\0';
			if (strncasecmp(uri, "mailto:", 7) != 0 ||
			    strchr(uri + 7, '@') == NULL ||
			    strpbrk(uri + 7, "<>\"\\\r\n") != NULL ||
			    job->nrua >= TLSRPT_RUA_MAX)
				continue;
			job->rua[job->nrua++] = xstrdup(uri + 7);
		}
	}
	free(copy);
	return job->nrua;
}

/* The report message (RFC 8460 5.3) into job->text. */
static int
tlsrpt_send_build(struct tlsrpt_job *job)
{
	const char *host = job->s->cfg->server.hostname;
	struct tlsrpt_snap *snap = job->snap;
	char *json, *contact, *id, *b64, date[64], start[32];
	unsigned char *gz;
	size_t gzlen, i, blen;
	struct tm tm;
	time_t now = time(NULL);
	FILE *f;
	char boundary[17];

	gmtime_r(&snap->start, &tm);
	strftime(start, sizeof(start), "%Y-%m-%dT%H:%M:%SZ", &tm);
	id = xasprintf("%s_%s@%s", start, job->domain, host);
	contact = xasprintf("postmaster@%s", host);
	json = tlsrpt_json(snap->t, job->domain, host, contact, id,
	    snap->start, snap->end);
	free(contact);
	if (json == NULL) {
		free(id);
		return -1;
	}
	gz = tlsrpt_gzip(json, strlen(json), &gzlen);
	free(json);
	if (gz == NULL) {
		free(id);
		return -1;
	}
	b64 = auth_base64_encode(gz, gzlen);
	free(gz);
	util_session_id(boundary);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000",
	    gmtime_r(&now, &tm));
	f = open_memstream(&job->text, &job->len);
	fprintf(f, "From: <postmaster@%s>\r\nDate: %s\r\nTo: ", host, date);
	for (i = 0; i < job->nrua; i++)
		fprintf(f, "%s<%s>", i > 0 ? ",\r\n " : "", job->rua[i]);
	fprintf(f, "\r\nSubject: Report Domain: %s Submitter: %s "
	    "Report-ID: <%s>\r\n"
	    "TLS-Report-Domain: %s\r\nTLS-Report-Submitter: %s\r\n"
	    "Message-ID: <tlsrpt.%s.%s@%s>\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n"
	    "\tboundary=\"%s\"\r\n\r\n"
	    "--%s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
	    "This is an aggregate TLS report (RFC 8460) from %s.\r\n"
	    "--%s\r\nContent-Type: application/tlsrpt+gzip\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "Content-Disposition: attachment;\r\n"
	    "\tfilename=\"%s!%s!%lld!%lld.json.gz\"\r\n\r\n",
	    job->domain, host, id, job->domain, host, boundary,
	    job->domain, host, boundary, boundary, host, boundary, host,
	    job->domain, (long long)snap->start, (long long)snap->end);
	blen = strlen(b64);
	for (i = 0; i < blen; i += 76)
		fprintf(f, "%.*s\r\n", (int)(blen - i < 76 ? blen - i : 76),
		    b64 + i);
	fprintf(f, "--%s--\r\n", boundary);
	fclose(f);
	free(b64);
	free(id);
	return 0;
}

/* Worker thread: queue the report for its rua addresses. */
static void
tlsrpt_send_work(void *arg, void *ctx)
{
	struct tlsrpt_job *job = arg;
	struct store *st = ctx;
	struct store_delivery d;
	int64_t body_id = 0;

	job->rc = -1;
	if (st == NULL)
		return;
	memset(&d, 0, sizeof(d));
	d.mail_from = "";
	d.is_bounce = true;		/* null sender: never a DSN for it */
	d.remote = (const char *const *)job->rua;
	d.nremote = job->nrua;
	d.prefix = "";
	d.fd = -1;
	job->rc = store_deliver_mem(st, &d, job->text, job->len, &body_id,
	    &job->qid);
}

static void
tlsrpt_send_done(void *arg, bool cancelled)
{
	struct tlsrpt_job *job = arg;

	if (!cancelled && job->rc == 0)
		log_info("event=tlsrpt.sent domain=%s rua=%zu bytes=%zu "
		    "qid=%" PRId64, LOG_VALUE(job->domain), job->nrua,
		    job->len, job->qid);
	else if (!cancelled)
		log_warn("event=tlsrpt.sent domain=%s result=fail "
		    "error=\"cannot queue the report\"",
		    LOG_VALUE(job->domain));
	tlsrpt_job_free(job);
}

static void
tlsrpt_send_txt(enum dns_status st, const char *const *rr, size_t n,
    void *arg)
{
	struct tlsrpt_job *job = arg;
	struct tlsrpt_sender *s = job->s;
	size_t i;

	job->dreq = NULL;
	/* Off the lookup list: from here the worker queue owns it. */
	if (job->prev != NULL)
		job->prev->next = job->next;
	else
		s->jobs = job->next;
	if (job->next != NULL)
		job->next->prev = job->prev;
	job->prev = job->next = NULL;
	for (i = 0; st == DNS_OK && i < n; i++)
		if (tlsrpt_send_parse(job, rr[i]) > 0)
			break;
	if (job->nrua == 0) {
		log_debug("event=tlsrpt.skip domain=%s reason=\"no TLSRPTv1 "
		    "rua=mailto: (DNS: %s)\"", LOG_VALUE(job->domain),
		    dns_status_str(st));
		tlsrpt_job_free(job);
		return;
	}
	if (tlsrpt_send_build(job) < 0 || workq_submit(s->wq, job,
	    tlsrpt_send_work, tlsrpt_send_done) == 0) {
		log_warn("event=tlsrpt.sent domain=%s result=fail "
		    "error=\"cannot build or queue the report\"",
		    LOG_VALUE(job->domain));
		tlsrpt_job_free(job);
	}
}
