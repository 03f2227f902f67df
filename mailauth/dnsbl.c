/*
 * DNSBL lookups (dnsbl.h). Owns the per-connection check: one A lookup per
 * zone in flight, then the TXT of the first listing zone.
 */
#include "mailauth/dnsbl.h"
#include "mailauth/dns.h"
#include "common/config.h"
#include "common/log.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dnsbl_zone_q {
	struct dnsbl_check *c;
	const char *zone;		/* borrowed from the config */
	struct dns_req *req;
};

struct dnsbl_check {
	struct dns *d;
	dnsbl_done_cb *cb;
	void *arg;
	char ip[64];
	struct dnsbl_zone_q *zq;
	size_t nzones, outstanding;
	const char *listed_zone;	/* first zone that listed us */
	struct dns_req *txt_req;
	struct event *immediate;	/* "no zones": answer from the loop */
	bool done;
};

int
dnsbl_reverse_name(const char *ip, char *buf, size_t size)
{
	unsigned char a[16];

	if (inet_pton(AF_INET, ip, a) == 1) {
		snprintf(buf, size, "%u.%u.%u.%u", a[3], a[2], a[1], a[0]);
		return 0;
	}
	if (inet_pton(AF_INET6, ip, a) == 1) {
		size_t o = 0;
		for (int i = 15; i >= 0 && o + 4 < size; i--)
			o += (size_t)snprintf(buf + o, size - o, "%x.%x%s",
			    a[i] & 15, a[i] >> 4, i ? "." : "");
		return 0;
	}
	return -1;
}

bool
dnsbl_is_listing(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

	return ss->ss_family == AF_INET &&
	    (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
}

static void
dnsbl_finish(struct dnsbl_check *c, const char *zone, const char *reason)
{
	c->done = true;
	c->cb(zone, reason, c->arg);
	dnsbl_check_cancel(c);
}

static void
dnsbl_txt_cb(enum dns_status st, const char *const *txt, size_t n,
    void *arg)
{
	struct dnsbl_check *c = arg;

	c->txt_req = NULL;
	dnsbl_finish(c, c->listed_zone,
	    st == DNS_OK && n > 0 ? txt[0] : "listed");
}

static void
dnsbl_addr_cb(enum dns_status st, const struct sockaddr_storage *addrs,
    size_t n, void *arg)
{
	struct dnsbl_zone_q *zq = arg;
	struct dnsbl_check *c = zq->c;
	bool listed = false;

	zq->req = NULL;
	c->outstanding--;
	if (st == DNS_TEMPFAIL)
		log_warn("event=smtp.dnsbl result=temperror zone=%s ip=%s",
		    zq->zone, c->ip);
	for (size_t i = 0; st == DNS_OK && i < n; i++)
		if (dnsbl_is_listing(&addrs[i]))
			listed = true;
	if (listed && c->listed_zone == NULL) {
		char rev[128], *name;
		c->listed_zone = zq->zone;
		/* Stop the other zones; ask this one why. */
		for (size_t i = 0; i < c->nzones; i++) {
			if (c->zq[i].req != NULL) {
				dns_cancel(c->zq[i].req);
				c->zq[i].req = NULL;
			}
		}
		c->outstanding = 0;
		dnsbl_reverse_name(c->ip, rev, sizeof(rev));
		name = xasprintf("%s.%s", rev, zq->zone);
		c->txt_req = dns_txt(c->d, name, dnsbl_txt_cb, c);
		free(name);
		if (c->txt_req == NULL)
			dnsbl_finish(c, c->listed_zone, "listed");
		return;
	}
	if (c->outstanding == 0 && c->listed_zone == NULL)
		dnsbl_finish(c, NULL, NULL);
}

static void
dnsbl_immediate_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	dnsbl_finish(arg, NULL, NULL);
}

struct dnsbl_check *
dnsbl_check_start(struct event_base *base, struct dns *d,
    const struct cfg_strlist *zones, const char *ip, dnsbl_done_cb *cb,
    void *arg)
{
	struct dnsbl_check *c = xcalloc(1, sizeof(*c));
	char rev[128];

	c->d = d;
	c->cb = cb;
	c->arg = arg;
	util_strlcpy(c->ip, ip, sizeof(c->ip));
	c->zq = xcalloc(zones->n ? zones->n : 1, sizeof(*c->zq));
	if (d != NULL && dnsbl_reverse_name(ip, rev, sizeof(rev)) == 0) {
		for (size_t i = 0; i < zones->n; i++) {
			struct dnsbl_zone_q *zq = &c->zq[c->nzones];
			char *name = xasprintf("%s.%s", rev, zones->v[i]);
			zq->c = c;
			zq->zone = zones->v[i];
			c->nzones++;
			c->outstanding++;
			zq->req = dns_addr(d, name, 0, dnsbl_addr_cb, zq);
			free(name);
			if (zq->req == NULL)
				c->outstanding--;
		}
	}
	if (c->outstanding == 0) {
		c->immediate = evtimer_new(base, dnsbl_immediate_cb, c);
		struct timeval tv = { 0, 0 };
		evtimer_add(c->immediate, &tv);
	}
	return c;
}

void
dnsbl_check_cancel(struct dnsbl_check *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->nzones; i++)
		if (c->zq[i].req != NULL)
			dns_cancel(c->zq[i].req);
	if (c->txt_req != NULL)
		dns_cancel(c->txt_req);
	if (c->immediate != NULL)
		event_free(c->immediate);
	free(c->zq);
	free(c);
}
