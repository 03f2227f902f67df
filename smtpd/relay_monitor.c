/*
 * Self-monitoring of the outbound addresses (issue 16 item 7): once a day
 * (and a minute after start) every address mail leaves from ([relay]
 * source_ip, else the hostname's A/AAAA records) is looked up on [relay]
 * monitor_dnsbl (empty: the [smtpd] dnsbl zones). A listing is logged at
 * warn each time, and mailed to the postmaster once: the table
 * monitor_listing remembers it until the address is seen clean again.
 * The whole run is one job on a worker thread (blocking lookups through
 * the relay's resolver, its own store handle), so the loop never waits.
 */
#include "smtpd/relay_monitor.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "common/workq.h"
#include "mailauth/dns.h"
#include "mailauth/dnsbl.h"
#include "store/domain_source.h"
#include "store/monitor.h"
#include "store/store.h"

#define MONITOR_PERIOD_MS	(24 * 3600 * 1000)
#define MONITOR_FIRST_MS	(60 * 1000)

struct relay_monitor {
	const struct cfg *cfg;
	struct dns *dns;
	struct workq *wq;
	struct event *timer;
	int period_ms;
	bool busy;
};

static void relay_monitor_tick(evutil_socket_t, short, void *);
static void relay_monitor_work(void *, void *);
static void relay_monitor_done(void *, bool);
static void relay_monitor_one(struct relay_monitor *, struct store *,
    const char *, const char *);
static int relay_monitor_mail(struct relay_monitor *, struct store *,
    const char *, const char *, const char *, const char *);

struct relay_monitor *
relay_monitor_new(struct event_base *base, const struct cfg *cfg,
    struct dns *dns)
{
	struct relay_monitor *mo;
	const char *env;
	int first = MONITOR_FIRST_MS;
	struct timeval tv;

	if (cfg->relay.monitor_dnsbl.n == 0 && cfg->smtpd.dnsbl.n == 0)
		return NULL;
	mo = xcalloc(1, sizeof(*mo));
	mo->cfg = cfg;
	mo->dns = dns;
	mo->period_ms = MONITOR_PERIOD_MS;
	/* Tests run it every few hundred milliseconds. */
	if ((env = getenv("CARTEIRO_TEST_MONITOR_MS")) != NULL &&
	    atoi(env) > 0)
		first = mo->period_ms = atoi(env);
	mo->wq = workq_new(base, 1, 1, NULL, NULL, NULL);
	mo->timer = evtimer_new(base, relay_monitor_tick, mo);
	tv.tv_sec = first / 1000;
	tv.tv_usec = (first % 1000) * 1000;
	evtimer_add(mo->timer, &tv);
	return mo;
}

void
relay_monitor_free(struct relay_monitor *mo)
{
	if (mo == NULL)
		return;
	event_free(mo->timer);
	/* A run in progress finishes its lookups (they time out when the
	 * resolver is closed) before this returns. */
	workq_free(mo->wq);
	free(mo);
}

static void
relay_monitor_tick(evutil_socket_t fd, short what, void *arg)
{
	struct relay_monitor *mo = arg;
	struct timeval tv = { mo->period_ms / 1000,
	    (mo->period_ms % 1000) * 1000 };

	(void)fd;
	(void)what;
	evtimer_add(mo->timer, &tv);
	if (mo->busy)
		return;
	if (workq_submit(mo->wq, mo, relay_monitor_work,
	    relay_monitor_done) != 0)
		mo->busy = true;
}

static void
relay_monitor_done(void *arg, bool cancelled)
{
	struct relay_monitor *mo = arg;

	if (!cancelled)
		mo->busy = false;
}

/* On the worker thread: every address on every zone. */
static void
relay_monitor_work(void *arg, void *ctx)
{
	struct relay_monitor *mo = arg;
	const struct cfg *cfg = mo->cfg;
	const struct cfg_strlist *zones = cfg->relay.monitor_dnsbl.n > 0 ?
	    &cfg->relay.monitor_dnsbl : &cfg->smtpd.dnsbl;
	char **ips = NULL, **a;
	size_t nips = 0, n, i, z;
	struct store *st;
	const char *error;

	(void)ctx;
	if ((st = store_open(cfg->store.locator, &error)) == NULL) {
		log_warn("event=relay.monitor result=fail error=\"store: %s\"",
		    error);
		return;
	}
	if (cfg->relay.source_ip.n > 0) {
		for (i = 0; i < cfg->relay.source_ip.n; i++) {
			ips = xrealloc(ips, (nips + 1) * sizeof(*ips));
			ips[nips++] = xstrdup(cfg->relay.source_ip.v[i]);
		}
	} else {
		for (int t = DNS_T_A; t <= DNS_T_AAAA; t++) {
			if (dns_lookup_sync(mo->dns, (enum dns_type)t,
			    cfg->server.hostname, &a, &n) != DNS_OK)
				continue;
			ips = xrealloc(ips, (nips + n) * sizeof(*ips));
			for (i = 0; i < n; i++)
				ips[nips++] = xstrdup(a[i]);
			dns_rr_free(a, n);
		}
	}
	/* Each local domain's own source address too (domain set). */
	if (store_domain_source_ips(st, &a, &n) == 0) {
		for (i = 0; i < n; i++) {
			bool dup = false;

			for (size_t j = 0; j < nips && !dup; j++)
				dup = strcmp(ips[j], a[i]) == 0;
			if (dup) {
				free(a[i]);
				continue;
			}
			ips = xrealloc(ips, (nips + 1) * sizeof(*ips));
			ips[nips++] = a[i];
		}
		free(a);
	} else
		log_warn("event=relay.monitor result=fail error=\"store: %s\"",
		    store_error(st));
	for (i = 0; i < nips; i++)
		for (z = 0; z < zones->n; z++)
			relay_monitor_one(mo, st, ips[i], zones->v[z]);
	log_info("event=relay.monitor addresses=%zu zones=%zu", nips,
	    zones->n);
	for (i = 0; i < nips; i++)
		free(ips[i]);
	free(ips);
	store_close(st);
}

static void
relay_monitor_one(struct relay_monitor *mo, struct store *st, const char *ip,
    const char *zone)
{
	struct dnsbl_answer a;
	const char *reason;
	int rc;

	if (dnsbl_query_sync(mo->dns, zone, ip, &a) < 0)
		return;
	reason = a.reason != NULL ? a.reason : "(no TXT reason given)";
	switch (a.verdict) {
	case DNSBL_LISTED:
		log_warn("event=relay.monitor ip=%s zone=%s result=listed "
		    "answer=%s reason=%s", ip, LOG_VALUE(zone),
		    LOG_VALUE(a.addrs ? a.addrs : "?"), LOG_VALUE(reason));
		rc = store_monitor_listed(st, ip, zone, (int64_t)time(NULL),
		    reason);
		/* Not told: try again on the next run. */
		if (rc == 0 && relay_monitor_mail(mo, st, ip, zone, a.addrs ?
		    a.addrs : "?", reason) < 0)
			(void)store_monitor_clear(st, ip, zone);
		else if (rc < 0)
			log_warn("event=relay.monitor result=fail "
			    "error=\"store: %s\"", store_error(st));
		break;
	case DNSBL_CLEAN:
		if (store_monitor_clear(st, ip, zone) == 0)
			log_info("event=relay.monitor ip=%s zone=%s "
			    "result=delisted", ip, LOG_VALUE(zone));
		break;
	default:
		log_info("event=relay.monitor ip=%s zone=%s result=temperror",
		    ip, LOG_VALUE(zone));
		break;
	}
	dnsbl_answer_clear(&a);
}

/* The postmaster hears of a new listing once. 0 / -1 (told nobody). */
static int
relay_monitor_mail(struct relay_monitor *mo, struct store *st,
    const char *ip, const char *zone, const char *answer, const char *reason)
{
	const struct cfg *cfg = mo->cfg;
	const char *pm = cfg->server.postmaster;
	struct store_delivery d;
	enum store_rcpt_kind rk;
	char **local = NULL, **remote = NULL, date[64], *text;
	size_t nlocal = 0, nremote = 0;
	int64_t now = (int64_t)time(NULL);
	int ret = -1;

	if (pm == NULL || pm[0] == '\0')
		return -1;
	if (store_resolve(st, pm, pm, &rk, &local, &nlocal, &remote,
	    &nremote) < 0 || rk == STORE_RCPT_NOUSER) {
		log_warn("event=relay.monitor ip=%s zone=%s result=fail "
		    "error=\"postmaster %s cannot be resolved\"", ip,
		    LOG_VALUE(zone), LOG_VALUE(pm));
		goto out;
	}
	util_rfc5322_date(date, sizeof(date), now);
	text = xasprintf("From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
	    "To: <%s>\r\n"
	    "Subject: %s is listed on %s\r\n"
	    "Date: %s\r\n"
	    "Message-ID: <monitor.%" PRId64 ".%s@%s>\r\n"
	    "Auto-Submitted: auto-generated\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "\r\n"
	    "The outbound address %s of %s is listed on the DNS blacklist\r\n"
	    "%s (answer %s). Receivers that use this list will refuse or\r\n"
	    "junk mail from it.\r\n"
	    "\r\n"
	    "The list's reason (its TXT record):\r\n"
	    "  %s\r\n"
	    "\r\n"
	    "To be removed: find out why (an infected machine, an open\r\n"
	    "form, a compromised account), fix it, then follow the removal\r\n"
	    "address in the reason above, or the delisting page of %s.\r\n"
	    "You get this message once per listing; carteiroctl check\r\n"
	    "shows the current state.\r\n",
	    cfg->server.hostname, pm, ip, zone, date, now, ip,
	    cfg->server.hostname, ip, cfg->server.hostname, zone, answer,
	    reason, zone);
	memset(&d, 0, sizeof(d));
	d.mail_from = "";
	d.is_bounce = true;
	d.local = (const char *const *)local;
	d.nlocal = nlocal;
	d.remote = rk == STORE_RCPT_LOCAL ? (const char *const *)remote :
	    (const char *const *)&pm;
	d.nremote = rk == STORE_RCPT_LOCAL ? nremote : 1;
	d.prefix = "";
	d.fd = -1;
	if (store_deliver_mem(st, &d, text, strlen(text), NULL, NULL) < 0)
		log_warn("event=relay.monitor ip=%s zone=%s result=fail "
		    "error=\"store: %s\"", ip, LOG_VALUE(zone),
		    store_error(st));
	else {
		log_info("event=relay.monitor ip=%s zone=%s result=notified "
		    "to=%s", ip, LOG_VALUE(zone), LOG_VALUE(pm));
		ret = 0;
	}
	free(text);
out:
	store_rcpt_free_list(local, nlocal);
	store_rcpt_free_list(remote, nremote);
	return ret;
}
