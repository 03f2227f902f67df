/*
 * The relay's MTA-STS policies (RFC 8461 5): one entry per destination
 * domain, in memory, loaded from the store at start. A request looks up
 * _mta-sts.DOMAIN (the resolver caches it); with the entry's id and
 * unexpired it answers at once. Otherwise the entry fetches
 * https://mta-sts.DOMAIN/.well-known/mta-sts.txt: the host is resolved on
 * the loop (the relay's resolver) and the GET runs on a workq thread
 * (libcurl through acme/http.c, told the address with CURLOPT_RESOLVE,
 * no redirects, 64 KiB at most), which also saves a valid policy in the
 * store. Requests for the same domain wait on the one fetch. A failed
 * fetch keeps an unexpired cached policy (RFC 8461 5.1); without one no
 * policy applies, and that id is not fetched again for 5 minutes.
 * Refresh is on use: when the TXT id changed or the policy expired.
 */
#include "smtpd/mta_sts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "acme/acme.h"
#include "common/log.h"
#include "common/util.h"
#include "common/workq.h"
#include "mailauth/dns.h"
#include "store/mta_sts.h"
#include "store/store.h"

#define MTA_STS_THREADS		2
#define MTA_STS_PENDING		64
/* After a failed fetch, the same id is not fetched again for this long
 * (sessions to the domain meanwhile get what is cached, or none). */
#define MTA_STS_FAIL_HOLD_S	300

struct mta_sts_entry {
	struct mta_sts *sts;
	struct mta_sts_entry *next;
	char *domain;			/* lower case */
	struct mta_sts_policy *pol;	/* cached, or NULL */
	int64_t expires;		/* unix time */
	bool fetching;
	char fetch_id[MTA_STS_ID_MAX + 1];
	char fail_id[MTA_STS_ID_MAX + 1];	/* the last failed fetch */
	int64_t fail_until;
	struct dns_req *dreq;		/* mta-sts.DOMAIN's address */
	struct mta_sts_req *waiters;
};

struct mta_sts_req {
	struct mta_sts *sts;
	struct mta_sts_req *next;	/* in entry->waiters */
	struct mta_sts_entry *e;	/* set while waiting for a fetch */
	char *domain;
	struct dns_req *dreq;		/* the TXT lookup */
	mta_sts_cb *cb;
	void *arg;
};

/* One fetch, on a worker thread. */
struct mta_sts_job {
	struct mta_sts_entry *e;	/* only touched on the loop */
	char *domain, *id, *addr, *ca_file, *store_path;
	unsigned port;
	/* Results: */
	struct mta_sts_policy *pol;
	char *error;
	int64_t fetched;
};

struct mta_sts {
	struct event_base *base;
	struct dns *dns;
	struct workq *wq;
	char *store_path;
	char *ca_file;
	unsigned port;
	struct mta_sts_entry *entries;
};

static struct mta_sts_entry *mta_sts_entry(struct mta_sts *, const char *,
    bool);
static void mta_sts_txt_cb(enum dns_status, const char *const *, size_t,
    void *);
static void mta_sts_answer(struct mta_sts_req *, struct mta_sts_entry *);
static void mta_sts_fetch(struct mta_sts_entry *, const char *);
static void mta_sts_addr_cb(enum dns_status, const struct sockaddr_storage *,
    size_t, void *);
static void mta_sts_work(void *, void *);
static void mta_sts_done(void *, bool);
static void mta_sts_fetched(struct mta_sts_entry *, const char *);
static void mta_sts_job_free(struct mta_sts_job *);

struct mta_sts *
mta_sts_new(const struct mta_sts_params *p)
{
	struct mta_sts *sts = xcalloc(1, sizeof(*sts));
	struct store_mta_sts *rows = NULL;
	struct mta_sts_entry *e;
	const char *error;
	size_t n = 0, i;
	int64_t now = (int64_t)time(NULL);

	sts->base = p->base;
	sts->dns = p->dns;
	sts->store_path = xstrdup(p->store_path);
	sts->ca_file = p->ca_file ? xstrdup(p->ca_file) : NULL;
	sts->port = p->https_port ? p->https_port : 443;
	sts->wq = workq_new(p->base, MTA_STS_THREADS, MTA_STS_PENDING, NULL,
	    NULL, NULL);
	if (p->st != NULL && store_mta_sts_list(p->st, now, &rows, &n) < 0)
		log_warn("event=relay.mta_sts_load result=fail error=\"%s\"",
		    store_error(p->st));
	for (i = 0; i < n; i++) {
		struct mta_sts_policy *pol = mta_sts_policy_parse(
		    rows[i].policy, strlen(rows[i].policy), rows[i].id,
		    &error);

		if (pol == NULL)
			continue;
		e = mta_sts_entry(sts, rows[i].domain, true);
		mta_sts_policy_unref(e->pol);
		e->pol = pol;
		e->expires = rows[i].expires;
	}
	store_mta_sts_free(rows, n);
	return sts;
}

void
mta_sts_free(struct mta_sts *sts)
{
	struct mta_sts_entry *e;
	struct mta_sts_req *r;

	if (sts == NULL)
		return;
	/* Jobs come back cancelled and leave the entries alone. */
	workq_free(sts->wq);
	while ((e = sts->entries) != NULL) {
		sts->entries = e->next;
		dns_cancel(e->dreq);
		while ((r = e->waiters) != NULL) {
			e->waiters = r->next;
			free(r->domain);
			free(r);
		}
		mta_sts_policy_unref(e->pol);
		free(e->domain);
		free(e);
	}
	free(sts->store_path);
	free(sts->ca_file);
	free(sts);
}

static struct mta_sts_entry *
mta_sts_entry(struct mta_sts *sts, const char *domain, bool create)
{
	struct mta_sts_entry *e;

	for (e = sts->entries; e != NULL; e = e->next)
		if (strcasecmp(e->domain, domain) == 0)
			return e;
	if (!create)
		return NULL;
	e = xcalloc(1, sizeof(*e));
	e->sts = sts;
	e->domain = xstrdup(domain);
	for (char *c = e->domain; *c != '\0'; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	e->next = sts->entries;
	sts->entries = e;
	return e;
}

struct mta_sts_req *
mta_sts_get(struct mta_sts *sts, const char *domain, mta_sts_cb *cb,
    void *arg)
{
	struct mta_sts_req *r = xcalloc(1, sizeof(*r));
	char *name = xasprintf("_mta-sts.%s", domain);

	r->sts = sts;
	r->domain = xstrdup(domain);
	r->cb = cb;
	r->arg = arg;
	r->dreq = dns_txt(sts->dns, name, mta_sts_txt_cb, r);
	free(name);
	return r;
}

void
mta_sts_cancel(struct mta_sts_req *r)
{
	struct mta_sts_req **pp;

	if (r == NULL)
		return;
	dns_cancel(r->dreq);
	if (r->e != NULL) {
		for (pp = &r->e->waiters; *pp != NULL; pp = &(*pp)->next)
			if (*pp == r) {
				*pp = r->next;
				break;
			}
	}
	free(r->domain);
	free(r);
}

/* Hand r the entry's policy if it may still be used, and free r. */
static void
mta_sts_answer(struct mta_sts_req *r, struct mta_sts_entry *e)
{
	struct mta_sts_policy *pol = NULL;

	if (e != NULL && e->pol != NULL && e->expires > (int64_t)time(NULL))
		pol = mta_sts_policy_ref(e->pol);
	r->cb(pol, r->arg);
	free(r->domain);
	free(r);
}

static void
mta_sts_txt_cb(enum dns_status st, const char *const *rr, size_t n,
    void *arg)
{
	struct mta_sts_req *r = arg;
	struct mta_sts *sts = r->sts;
	struct mta_sts_entry *e = mta_sts_entry(sts, r->domain, false);
	char id[MTA_STS_ID_MAX + 1];

	r->dreq = NULL;
	if (st != DNS_OK || mta_sts_txt_id(rr, n, id) < 0) {
		/* No (valid) record now: a cached policy still applies
		 * until it expires (RFC 8461 5.1). */
		mta_sts_answer(r, e);
		return;
	}
	if (e != NULL && e->pol != NULL && strcmp(e->pol->id, id) == 0 &&
	    e->expires > (int64_t)time(NULL)) {
		mta_sts_answer(r, e);
		return;
	}
	if (e != NULL && !e->fetching && strcmp(e->fail_id, id) == 0 &&
	    e->fail_until > (int64_t)time(NULL)) {
		mta_sts_answer(r, e);
		return;
	}
	e = mta_sts_entry(sts, r->domain, true);
	r->e = e;
	r->next = e->waiters;
	e->waiters = r;
	if (!e->fetching)
		mta_sts_fetch(e, id);
}

static void
mta_sts_fetch(struct mta_sts_entry *e, const char *id)
{
	char *host = xasprintf("mta-sts.%s", e->domain);

	e->fetching = true;
	snprintf(e->fetch_id, sizeof(e->fetch_id), "%s", id);
	e->dreq = dns_addr(e->sts->dns, host, e->sts->port, mta_sts_addr_cb,
	    e);
	free(host);
}

static void
mta_sts_addr_cb(enum dns_status st, const struct sockaddr_storage *addrs,
    size_t n, void *arg)
{
	struct mta_sts_entry *e = arg;
	struct mta_sts_job *j;
	char ip[64], *why;

	e->dreq = NULL;
	if (st != DNS_OK || n == 0) {
		why = xasprintf("mta-sts.%s: no address (DNS: %s)", e->domain,
		    dns_status_str(st));
		mta_sts_fetched(e, why);
		free(why);
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->e = e;
	j->domain = xstrdup(e->domain);
	j->id = xstrdup(e->fetch_id);
	j->addr = xstrdup(dns_sockaddr_str(&addrs[0], ip, sizeof(ip)));
	j->ca_file = e->sts->ca_file ? xstrdup(e->sts->ca_file) : NULL;
	j->store_path = xstrdup(e->sts->store_path);
	j->port = e->sts->port;
	if (workq_submit(e->sts->wq, j, mta_sts_work, mta_sts_done) == 0) {
		mta_sts_job_free(j);
		mta_sts_fetched(e, "too many policy fetches at once");
	}
}

/* On a worker thread: GET, parse, save. */
static void
mta_sts_work(void *arg, void *ctx)
{
	struct mta_sts_job *j = arg;
	struct acme_http *h;
	struct acme_resp resp;
	struct store *st;
	struct store_mta_sts row;
	const char *error = NULL;
	char *host = xasprintf("mta-sts.%s", j->domain), *url;

	(void)ctx;
	url = j->port == 443 ?
	    xasprintf("https://%s/.well-known/mta-sts.txt", host) :
	    xasprintf("https://%s:%u/.well-known/mta-sts.txt", host, j->port);
	if ((h = acme_http_new(j->ca_file)) == NULL) {
		j->error = xstrdup("cannot start libcurl");
		goto out;
	}
	acme_http_set_max(h, MTA_STS_BODY_MAX);
	acme_http_resolve(h, host, j->port, j->addr);
	if (acme_http_do(h, url, NULL, false, &resp, &error) < 0) {
		j->error = xasprintf("%s", error);
		acme_http_free(h);
		goto out;
	}
	acme_http_free(h);
	/* RFC 8461 3.3: 200 only, text/plain, no redirects (libcurl
	 * follows none). */
	if (resp.status != 200)
		j->error = xasprintf("%s: HTTP status %ld", url, resp.status);
	else if (resp.content_type == NULL ||
	    strncasecmp(resp.content_type, "text/plain", 10) != 0 ||
	    (resp.content_type[10] != '\0' && resp.content_type[10] != ';' &&
	    resp.content_type[10] != ' '))
		j->error = xasprintf("%s: not text/plain", url);
	else if ((j->pol = mta_sts_policy_parse(resp.body, resp.len, j->id,
	    &error)) == NULL)
		j->error = xasprintf("%s: %s", url, error);
	acme_resp_clear(&resp);
	if (j->pol == NULL)
		goto out;
	j->fetched = (int64_t)time(NULL);
	if ((st = store_open(j->store_path, &error)) == NULL) {
		log_warn("event=relay.mta_sts_save domain=%s result=fail "
		    "error=\"%s\"", LOG_VALUE(j->domain), error);
		goto out;
	}
	row.domain = j->domain;
	row.id = j->id;
	row.policy = j->pol->text;
	row.fetched = j->fetched;
	row.expires = j->fetched + (int64_t)j->pol->max_age;
	if (store_mta_sts_put(st, &row) < 0)
		log_warn("event=relay.mta_sts_save domain=%s result=fail "
		    "error=\"%s\"", LOG_VALUE(j->domain),
		    store_error(st));
	store_close(st);
out:
	free(url);
	free(host);
}

static void
mta_sts_done(void *arg, bool cancelled)
{
	struct mta_sts_job *j = arg;
	struct mta_sts_entry *e = j->e;

	if (cancelled) {
		mta_sts_job_free(j);
		return;
	}
	if (j->pol != NULL) {
		mta_sts_policy_unref(e->pol);
		e->pol = j->pol;
		j->pol = NULL;
		e->expires = j->fetched + (int64_t)e->pol->max_age;
		log_info("event=relay.mta_sts_fetch domain=%s id=%s result=ok "
		    "mode=%s max_age=%u mx=%zu", LOG_VALUE(e->domain),
		    e->pol->id, mta_sts_mode_str(e->pol->mode),
		    e->pol->max_age, e->pol->nmx);
	}
	mta_sts_fetched(e, j->error);
	mta_sts_job_free(j);
}

/* The fetch is over (error NULL: e->pol is new): answer every waiter. */
static void
mta_sts_fetched(struct mta_sts_entry *e, const char *error)
{
	struct mta_sts_req *r;
	char esc[LOG_ESCAPE_MAX];

	if (error != NULL)
		log_warn("event=relay.mta_sts_fetch domain=%s id=%s "
		    "result=fail cached=%s error=%s", LOG_VALUE(e->domain),
		    e->fetch_id,
		    e->pol != NULL && e->expires > (int64_t)time(NULL) ?
		    e->pol->id : "none",
		    log_escape(esc, sizeof(esc), error, strlen(error)));
	e->fetching = false;
	if (error != NULL) {
		memcpy(e->fail_id, e->fetch_id, sizeof(e->fail_id));
		e->fail_until = (int64_t)time(NULL) + MTA_STS_FAIL_HOLD_S;
	} else
		e->fail_id[0] = '\0';
	while ((r = e->waiters) != NULL) {
		e->waiters = r->next;
		r->e = NULL;
		mta_sts_answer(r, e);
	}
}

static void
mta_sts_job_free(struct mta_sts_job *j)
{
	mta_sts_policy_unref(j->pol);
	free(j->domain);
	free(j->id);
	free(j->addr);
	free(j->ca_file);
	free(j->store_path);
	free(j->error);
	free(j);
}
