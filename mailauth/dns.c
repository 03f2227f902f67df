/*
 * c-ares on libevent: the channel's sockets are watched through the
 * sock_state callback, its retransmissions by one timer re-armed from
 * ares_timeout() after every activity. Requests collect their c-ares
 * answers and complete through a zero-delay event, so user callbacks never
 * run inside dns_*() calls and a cancelled request is simply unlinked.
 * Does not own: what the callers do with the answers (mta.c, checks).
 */
#include "mailauth/dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth/dnsq.h"
#include "common/log.h"
#include "common/util.h"

enum dns_req_kind {
	DNS_REQ_RAW,
	DNS_REQ_MX,
	DNS_REQ_ADDR,
	DNS_REQ_TXT,
};

struct dns_sock {
	ares_socket_t fd;
	struct event *ev;
	struct dns *d;
	struct dns_sock *next;
};

struct dns_req {
	struct dns *d;
	enum dns_req_kind kind;
	struct dns_req *prev, *next;	/* d->reqs */
	struct event *done_ev;		/* completion, scheduled once */
	int pending;			/* c-ares queries outstanding */
	bool cancelled;
	bool in_cb;			/* the user callback is running */
	void *cb;
	void *arg;
	unsigned port;

	enum dns_status st;
	/* Per-query outcome of an address lookup (A, AAAA). */
	enum dns_status sub[2];
	unsigned char *raw;		/* DNS_REQ_RAW answer copy */
	int rawlen;
	struct dns_mx *mx;
	size_t nmx;
	struct sockaddr_storage *addrs;
	size_t naddrs;
	char **txt;
	size_t ntxt;
};

/*
 * A small answer cache in front of c-ares (1.18 has none): a relay asks
 * for the same MX and addresses over and over. Positive answers live for
 * their smallest TTL (capped), NXDOMAIN/NODATA for DNS_CACHE_NEG_TTL;
 * failures are never cached.
 */
#define DNS_CACHE_BUCKETS	256
#define DNS_CACHE_MAX		4096	/* entries; then the cache is reset */
#define DNS_CACHE_TTL_MAX	300	/* seconds */
#define DNS_CACHE_NEG_TTL	60

struct dns_centry {
	char *name;			/* lower case */
	int dnsclass, type;
	int status;			/* ARES_SUCCESS/ENOTFOUND/ENODATA */
	unsigned char *abuf;
	int alen;
	uint64_t expires_ms;		/* util_now_ms() clock */
	struct dns_centry *next;
};

/* One c-ares query through the cache (answered by c-ares or the cache). */
struct dns_call {
	struct dns *d;
	ares_callback cb;
	void *arg;
	char *name;
	int dnsclass, type;
	/* cache hit, delivered from the loop: */
	struct event *ev;
	int status;
	unsigned char *abuf;
	int alen;
	struct dns_call *prev, *next;	/* d->hits */
};

struct dns {
	struct event_base *base;
	ares_channel channel;
	struct event *timer;
	struct dns_sock *socks;
	struct dns_req *reqs;
	struct dns_centry *cache[DNS_CACHE_BUCKETS];
	size_t ncache;
	struct dns_call *hits;		/* cache answers not yet delivered */
	bool destroying;
};

struct dns_addr_sub {
	struct dns_req *req;
	int idx;			/* 0: A, 1: AAAA */
};

static void dns_sock_state(void *, ares_socket_t, int, int);
static void dns_sock_event(evutil_socket_t, short, void *);
static void dns_timer_event(evutil_socket_t, short, void *);
static void dns_rearm(struct dns *);
static struct dns_req *dns_req_new(struct dns *, enum dns_req_kind, void *,
    void *);
static struct dns_req *dns_req_start(struct dns *, enum dns_req_kind,
    void *, void *, const char *, int, int, ares_callback);
static void dns_req_free(struct dns_req *);
static void dns_req_finish(struct dns_req *);
static void dns_req_done_event(evutil_socket_t, short, void *);
static enum dns_status dns_map_status(int);
static void dns_raw_answer(void *, int, int, unsigned char *, int);
static void dns_mx_answer(void *, int, int, unsigned char *, int);
static void dns_addr_answer(void *, int, int, unsigned char *, int);
static void dns_txt_answer(void *, int, int, unsigned char *, int);
static void dns_call(struct dns *, const char *, int, int, ares_callback,
    void *);
static void dns_call_answer(void *, int, int, unsigned char *, int);
static void dns_call_hit(evutil_socket_t, short, void *);
static void dns_call_free(struct dns_call *);
static void dns_cache_clear(struct dns *);

static const char *const dns_status_names[DNS_STATUS_COUNT] = {
	[DNS_OK] = "ok",
	[DNS_NXDOMAIN] = "nxdomain",
	[DNS_NODATA] = "nodata",
	[DNS_TEMPFAIL] = "tempfail",
	[DNS_NULLMX] = "nullmx",
};

const char *
dns_status_str(enum dns_status st)
{
	return st < DNS_STATUS_COUNT ? dns_status_names[st] : "?";
}

struct dns *
dns_new(struct event_base *base, const char *resolver, int timeout_ms,
    int tries, const char **error_r)
{
	static bool lib_init;
	struct ares_options opts;
	struct dns *d;
	int rc, mask;

	if (!lib_init) {
		if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
			*error_r = "ares_library_init failed";
			return NULL;
		}
		lib_init = true;
	}
	d = xcalloc(1, sizeof(*d));
	d->base = base;
	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb = dns_sock_state;
	opts.sock_state_cb_data = d;
	opts.timeout = timeout_ms > 0 ? timeout_ms : 2000;
	opts.tries = tries > 0 ? tries : 2;
	/* Names we ask for are always fully qualified: no search list. */
	opts.flags = ARES_FLAG_NOSEARCH;
	opts.ndomains = 0;
	mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
	    ARES_OPT_FLAGS | ARES_OPT_DOMAINS;
	rc = ares_init_options(&d->channel, &opts, mask);
	if (rc != ARES_SUCCESS) {
		*error_r = ares_strerror(rc);
		free(d);
		return NULL;
	}
	if (resolver != NULL) {
		rc = ares_set_servers_ports_csv(d->channel, resolver);
		if (rc != ARES_SUCCESS) {
			*error_r = "bad [relay] resolver address";
			ares_destroy(d->channel);
			free(d);
			return NULL;
		}
	}
	d->timer = evtimer_new(base, dns_timer_event, d);
	return d;
}

void
dns_free(struct dns *d)
{
	struct dns_sock *s;

	if (d == NULL)
		return;
	d->destroying = true;
	/* Runs every outstanding c-ares callback with ARES_EDESTRUCTION. */
	ares_destroy(d->channel);
	/* Cache answers not delivered yet: the same, so that per-query
	 * state (e.g. dns_addr's halves) is released. */
	while (d->hits != NULL) {
		struct dns_call *c = d->hits;

		c->cb(c->arg, ARES_EDESTRUCTION, 0, NULL, 0);
		dns_call_free(c);
	}
	dns_cache_clear(d);
	while (d->reqs != NULL)
		dns_req_free(d->reqs);
	while ((s = d->socks) != NULL) {
		d->socks = s->next;
		event_free(s->ev);
		free(s);
	}
	event_free(d->timer);
	free(d);
}

static void
dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *d = data;
	struct dns_sock *s, **sp;
	short what;

	for (sp = &d->socks; (s = *sp) != NULL; sp = &s->next)
		if (s->fd == fd)
			break;
	if (!readable && !writable) {
		if (s != NULL) {
			*sp = s->next;
			event_free(s->ev);
			free(s);
		}
		return;
	}
	what = EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);
	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		s->fd = fd;
		s->d = d;
		s->next = d->socks;
		d->socks = s;
	} else
		event_free(s->ev);
	s->ev = event_new(d->base, fd, what, dns_sock_event, s);
	event_add(s->ev, NULL);
}

static void
dns_sock_event(evutil_socket_t fd, short what, void *arg)
{
	struct dns_sock *s = arg;
	struct dns *d = s->d;

	/* s may be freed inside ares_process_fd (socket closed). */
	ares_process_fd(d->channel,
	    (what & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_rearm(d);
}

static void
dns_timer_event(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;

	ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_rearm(d);
}

static void
dns_rearm(struct dns *d)
{
	struct timeval tv, *tvp;

	if (d->destroying)
		return;
	tvp = ares_timeout(d->channel, NULL, &tv);
	if (tvp == NULL) {
		evtimer_del(d->timer);
		return;
	}
	evtimer_add(d->timer, tvp);
}

static struct dns_req *
dns_req_new(struct dns *d, enum dns_req_kind kind, void *cb, void *arg)
{
	struct dns_req *req;

	req = xcalloc(1, sizeof(*req));
	req->d = d;
	req->kind = kind;
	req->cb = cb;
	req->arg = arg;
	req->st = DNS_TEMPFAIL;
	req->done_ev = event_new(d->base, -1, 0, dns_req_done_event, req);
	req->next = d->reqs;
	if (d->reqs != NULL)
		d->reqs->prev = req;
	d->reqs = req;
	return req;
}

/* A request of one query (MX, TXT, raw): sent now, cb from the loop. */
static struct dns_req *
dns_req_start(struct dns *d, enum dns_req_kind kind, void *cb, void *arg,
    const char *name, int dnsclass, int type, ares_callback answer)
{
	struct dns_req *req = dns_req_new(d, kind, cb, arg);

	req->pending = 1;
	dns_call(d, name, dnsclass, type, answer, req);
	dns_rearm(d);
	return req;
}

static void
dns_req_free(struct dns_req *req)
{
	struct dns *d = req->d;
	size_t i;

	if (req->prev != NULL)
		req->prev->next = req->next;
	else
		d->reqs = req->next;
	if (req->next != NULL)
		req->next->prev = req->prev;
	event_free(req->done_ev);
	free(req->raw);
	for (i = 0; i < req->nmx; i++)
		free(req->mx[i].host);
	free(req->mx);
	free(req->addrs);
	for (i = 0; i < req->ntxt; i++)
		free(req->txt[i]);
	free(req->txt);
	free(req);
}

void
dns_cancel(struct dns_req *req)
{
	if (req == NULL || req->in_cb)
		return;		/* inside its own callback: freed after it */
	/* c-ares still holds req as its callback argument: let the last
	 * answer free it. */
	if (req->pending > 0) {
		req->cancelled = true;
		return;
	}
	dns_req_free(req);
}

/* A c-ares answer arrived (or the channel is going away). */
static void
dns_req_finish(struct dns_req *req)
{
	if (--req->pending > 0)
		return;
	if (req->d->destroying)
		return;		/* dns_free frees every req */
	if (req->cancelled) {
		dns_req_free(req);
		return;
	}
	event_active(req->done_ev, EV_TIMEOUT, 1);
}

static void
dns_req_done_event(evutil_socket_t fd, short what, void *arg)
{
	struct dns_req *req = arg;
	const char **txt;

	req->in_cb = true;
	switch (req->kind) {
	case DNS_REQ_RAW:
		((dns_raw_cb *)req->cb)(req->st, req->raw, req->rawlen,
		    req->arg);
		break;
	case DNS_REQ_MX:
		((dns_mx_cb *)req->cb)(req->st, req->mx, req->nmx, req->arg);
		break;
	case DNS_REQ_ADDR:
		((dns_addr_cb *)req->cb)(req->st, req->addrs, req->naddrs,
		    req->arg);
		break;
	case DNS_REQ_TXT:
		txt = (const char **)req->txt;
		((dns_txt_cb *)req->cb)(req->st, txt, req->ntxt, req->arg);
		break;
	}
	dns_req_free(req);
}

static enum dns_status
dns_map_status(int status)
{
	switch (status) {
	case ARES_SUCCESS:
		return DNS_OK;
	case ARES_ENOTFOUND:
		return DNS_NXDOMAIN;
	case ARES_ENODATA:
		return DNS_NODATA;
	default:
		/* ESERVFAIL, ETIMEOUT, EREFUSED, ECONNREFUSED, EBADRESP...:
		 * nothing proves the name bad, so try again later. */
		return DNS_TEMPFAIL;
	}
}

struct dns_req *
dns_query(struct dns *d, const char *name, int dnsclass, int type,
    dns_raw_cb *cb, void *arg)
{
	return dns_req_start(d, DNS_REQ_RAW, (void *)cb, arg, name, dnsclass,
	    type, dns_raw_answer);
}

static void
dns_raw_answer(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct dns_req *req = arg;

	req->st = dns_map_status(status);
	if (req->st == DNS_OK && abuf != NULL && alen > 0) {
		req->raw = xmalloc((size_t)alen);
		memcpy(req->raw, abuf, (size_t)alen);
		req->rawlen = alen;
	}
	dns_req_finish(req);
}

/* ---- MX ---- */

static int
dns_mx_cmp(const void *a, const void *b)
{
	const struct dns_mx *x = a, *y = b;

	return x->pref < y->pref ? -1 : x->pref > y->pref;
}

void
dns_mx_sort(struct dns_mx *mx, size_t n)
{
	size_t i, j, k;
	struct dns_mx t;

	qsort(mx, n, sizeof(*mx), dns_mx_cmp);
	/* RFC 5321 5.1: randomise among hosts of equal preference. */
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && mx[j].pref == mx[i].pref; j++)
			;
		for (k = j - 1; k > i; k--) {
			size_t r = i + (size_t)(util_random64() % (k - i + 1));

			t = mx[k];
			mx[k] = mx[r];
			mx[r] = t;
		}
	}
}

struct dns_req *
dns_mx(struct dns *d, const char *domain, dns_mx_cb *cb, void *arg)
{
	return dns_req_start(d, DNS_REQ_MX, (void *)cb, arg, domain, ns_c_in,
	    ns_t_mx, dns_mx_answer);
}

static void
dns_mx_answer(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct dns_req *req = arg;
	struct ares_mx_reply *mx = NULL, *m;
	size_t n = 0;
	int rc;

	req->st = dns_map_status(status);
	if (req->st != DNS_OK || req->d->destroying || req->cancelled)
		goto out;
	rc = ares_parse_mx_reply(abuf, alen, &mx);
	if (rc != ARES_SUCCESS) {
		/* An answer without MX records (e.g. only a CNAME). */
		req->st = rc == ARES_ENODATA ? DNS_NODATA : DNS_TEMPFAIL;
		goto out;
	}
	for (m = mx; m != NULL; m = m->next)
		n++;
	if (n == 0) {
		req->st = DNS_NODATA;
		goto out;
	}
	req->mx = xcalloc(n, sizeof(*req->mx));
	for (m = mx; m != NULL; m = m->next) {
		/* RFC 7505: a single "0 ." record means no mail at all. */
		if (m->host[0] == '\0' || strcmp(m->host, ".") == 0) {
			if (n == 1) {
				req->st = DNS_NULLMX;
				goto out;
			}
			continue;	/* malformed mix: ignore the root */
		}
		req->mx[req->nmx].host = xstrdup(m->host);
		req->mx[req->nmx].pref = m->priority;
		req->nmx++;
	}
	if (req->nmx == 0)
		req->st = DNS_NULLMX;
	else
		dns_mx_sort(req->mx, req->nmx);
out:
	if (mx != NULL)
		ares_free_data(mx);
	dns_req_finish(req);
}

/* ---- addresses ---- */

int
dns_parse_ip(const char *s, unsigned port, struct sockaddr_storage *ss,
    socklen_t *len_r)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	char buf[INET6_ADDRSTRLEN + 2];
	size_t len = strlen(s);

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, s, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		if (len_r != NULL)
			*len_r = sizeof(*sin);
		return 0;
	}
	if (len >= 2 && s[0] == '[' && s[len - 1] == ']' &&
	    len - 2 < sizeof(buf)) {
		memcpy(buf, s + 1, len - 2);
		buf[len - 2] = '\0';
		s = buf;
	}
	if (inet_pton(AF_INET6, s, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		if (len_r != NULL)
			*len_r = sizeof(*sin6);
		return 0;
	}
	return -1;
}

socklen_t
dns_sockaddr_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
}

const char *
dns_sockaddr_str(const struct sockaddr_storage *ss, char *buf, size_t size)
{
	const void *a;

	if (ss->ss_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
	else
		a = &((const struct sockaddr_in *)ss)->sin_addr;
	if (inet_ntop(ss->ss_family, a, buf, (socklen_t)size) == NULL)
		util_strlcpy(buf, "?", size);
	return buf;
}

struct dns_req *
dns_addr(struct dns *d, const char *host, unsigned port, dns_addr_cb *cb,
    void *arg)
{
	struct dns_req *req;
	struct dns_addr_sub *sub;
	int i;

	req = dns_req_new(d, DNS_REQ_ADDR, (void *)cb, arg);
	req->port = port;
	req->addrs = xcalloc(1, sizeof(*req->addrs));
	if (dns_parse_ip(host, port, &req->addrs[0], NULL) == 0) {
		req->naddrs = 1;
		req->st = DNS_OK;
		event_active(req->done_ev, EV_TIMEOUT, 1);
		return req;
	}
	req->pending = 2;
	for (i = 0; i < 2; i++) {
		/* The sub structs are freed by dns_addr_answer. */
		sub = xcalloc(1, sizeof(*sub));
		sub->req = req;
		sub->idx = i;
		dns_call(d, host, ns_c_in, i == 0 ? ns_t_a : ns_t_aaaa,
		    dns_addr_answer, sub);
	}
	dns_rearm(d);
	return req;
}

static void
dns_addr_add(struct dns_req *req, int family, const void *a)
{
	struct sockaddr_storage *ss;

	req->addrs = xrealloc(req->addrs, (req->naddrs + 1) * sizeof(*ss));
	ss = &req->addrs[req->naddrs++];
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)req->port);
		memcpy(&sin->sin_addr, a, sizeof(sin->sin_addr));
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)req->port);
		memcpy(&sin6->sin6_addr, a, sizeof(sin6->sin6_addr));
	}
}

static void
dns_addr_answer(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct dns_addr_sub *sub = arg;
	struct dns_req *req = sub->req;
	struct ares_addrttl a4[32];
	struct ares_addr6ttl a6[32];
	int i, n = 32, rc;
	enum dns_status st;

	st = dns_map_status(status);
	if (st == DNS_OK && !req->d->destroying && !req->cancelled) {
		if (sub->idx == 0)
			rc = ares_parse_a_reply(abuf, alen, NULL, a4, &n);
		else
			rc = ares_parse_aaaa_reply(abuf, alen, NULL, a6, &n);
		if (rc != ARES_SUCCESS)
			st = dns_map_status(rc);
		else if (n == 0)
			st = DNS_NODATA;
		for (i = 0; rc == ARES_SUCCESS && i < n; i++) {
			if (sub->idx == 0)
				dns_addr_add(req, AF_INET, &a4[i].ipaddr);
			else
				dns_addr_add(req, AF_INET6, &a6[i].ip6addr);
		}
	}
	req->sub[sub->idx] = st;
	/* IPv4 answers first whatever order they arrive in. */
	if (req->pending == 1 && req->naddrs > 0) {
		size_t n4 = 0, k;

		for (k = 0; k < req->naddrs; k++)
			if (req->addrs[k].ss_family == AF_INET) {
				struct sockaddr_storage t = req->addrs[n4];

				req->addrs[n4++] = req->addrs[k];
				req->addrs[k] = t;
			}
	}
	if (req->naddrs > 0)
		req->st = DNS_OK;
	else if (req->sub[0] == DNS_TEMPFAIL || req->sub[1] == DNS_TEMPFAIL)
		req->st = DNS_TEMPFAIL;
	else if (req->sub[0] == DNS_NXDOMAIN || req->sub[1] == DNS_NXDOMAIN)
		req->st = DNS_NXDOMAIN;
	else
		req->st = DNS_NODATA;
	free(sub);
	dns_req_finish(req);
}

/* ---- TXT ---- */

struct dns_req *
dns_txt(struct dns *d, const char *name, dns_txt_cb *cb, void *arg)
{
	return dns_req_start(d, DNS_REQ_TXT, (void *)cb, arg, name, ns_c_in,
	    ns_t_txt, dns_txt_answer);
}

static void
dns_txt_answer(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct dns_req *req = arg;
	int rc;

	req->st = dns_map_status(status);
	if (req->st != DNS_OK || req->d->destroying || req->cancelled)
		goto out;
	rc = dnsq_parse_txt(abuf, alen, &req->txt, &req->ntxt);
	if (rc != ARES_SUCCESS) {
		req->st = rc == ARES_ENODATA ? DNS_NODATA : DNS_TEMPFAIL;
		goto out;
	}
	if (req->ntxt == 0)
		req->st = DNS_NODATA;
out:
	dns_req_finish(req);
}

/* ---- the answer cache ---- */

static unsigned
dns_cache_hash(const char *name, int type)
{
	unsigned h = (unsigned)type * 31u;

	for (; *name != '\0'; name++)
		h = h * 33u + (unsigned char)*name;
	return h % DNS_CACHE_BUCKETS;
}

static void
dns_cache_clear(struct dns *d)
{
	struct dns_centry *e;
	size_t i;

	for (i = 0; i < DNS_CACHE_BUCKETS; i++)
		while ((e = d->cache[i]) != NULL) {
			d->cache[i] = e->next;
			free(e->name);
			free(e->abuf);
			free(e);
		}
	d->ncache = 0;
}

/* Skip a (possibly compressed) name at p; NULL if it runs past end. */
static const unsigned char *
dns_skip_name(const unsigned char *p, const unsigned char *end)
{
	while (p < end) {
		if (*p == 0)
			return p + 1;
		if ((*p & 0xc0) == 0xc0)
			return p + 2 <= end ? p + 2 : NULL;
		p += 1 + *p;
	}
	return NULL;
}

/* Smallest TTL of the answer section, capped; 0 if unparsable. */
static unsigned
dns_answer_ttl(const unsigned char *abuf, int alen)
{
	const unsigned char *p = abuf + 12, *end = abuf + alen;
	unsigned qd, an, i, ttl, min = DNS_CACHE_TTL_MAX;

	if (alen < 12)
		return 0;
	qd = (unsigned)abuf[4] << 8 | abuf[5];
	an = (unsigned)abuf[6] << 8 | abuf[7];
	for (i = 0; i < qd; i++)
		if ((p = dns_skip_name(p, end)) == NULL || (p += 4) > end)
			return 0;
	for (i = 0; i < an; i++) {
		if ((p = dns_skip_name(p, end)) == NULL || p + 10 > end)
			return 0;
		ttl = (unsigned)p[4] << 24 | (unsigned)p[5] << 16 |
		    (unsigned)p[6] << 8 | p[7];
		if (ttl < min)
			min = ttl;
		p += 10 + ((unsigned)p[8] << 8 | p[9]);
	}
	return min;
}

static struct dns_centry *
dns_cache_find(struct dns *d, const char *name, int dnsclass, int type)
{
	struct dns_centry *e, **ep;
	unsigned h = dns_cache_hash(name, type);
	uint64_t now = util_now_ms();

	for (ep = &d->cache[h]; (e = *ep) != NULL; ep = &e->next) {
		if (e->type != type || e->dnsclass != dnsclass ||
		    strcmp(e->name, name) != 0)
			continue;
		if (e->expires_ms > now)
			return e;
		*ep = e->next;
		free(e->name);
		free(e->abuf);
		free(e);
		d->ncache--;
		return NULL;
	}
	return NULL;
}

static void
dns_cache_put(struct dns *d, const char *name, int dnsclass, int type,
    int status, const unsigned char *abuf, int alen)
{
	struct dns_centry *e;
	unsigned ttl, h;

	if (status == ARES_SUCCESS)
		ttl = abuf != NULL ? dns_answer_ttl(abuf, alen) : 0;
	else if (status == ARES_ENOTFOUND || status == ARES_ENODATA)
		ttl = DNS_CACHE_NEG_TTL;
	else
		return;
	if (ttl == 0 || dns_cache_find(d, name, dnsclass, type) != NULL)
		return;
	if (d->ncache >= DNS_CACHE_MAX)
		dns_cache_clear(d);
	e = xcalloc(1, sizeof(*e));
	e->name = xstrdup(name);
	e->dnsclass = dnsclass;
	e->type = type;
	e->status = status;
	if (status == ARES_SUCCESS && abuf != NULL && alen > 0) {
		e->abuf = xmalloc((size_t)alen);
		memcpy(e->abuf, abuf, (size_t)alen);
		e->alen = alen;
	}
	e->expires_ms = util_now_ms() + (uint64_t)ttl * 1000;
	h = dns_cache_hash(name, type);
	e->next = d->cache[h];
	d->cache[h] = e;
	d->ncache++;
}

/* ares_query through the cache; cb always runs from the loop. */
static void
dns_call(struct dns *d, const char *name, int dnsclass, int type,
    ares_callback cb, void *arg)
{
	struct dns_call *c;
	struct dns_centry *e;

	c = xcalloc(1, sizeof(*c));
	c->d = d;
	c->cb = cb;
	c->arg = arg;
	c->name = util_strlower(xstrdup(name));
	c->dnsclass = dnsclass;
	c->type = type;
	if ((e = dns_cache_find(d, c->name, dnsclass, type)) != NULL) {
		c->status = e->status;
		if (e->abuf != NULL) {
			c->abuf = xmalloc((size_t)e->alen);
			memcpy(c->abuf, e->abuf, (size_t)e->alen);
			c->alen = e->alen;
		}
		c->ev = event_new(d->base, -1, 0, dns_call_hit, c);
		c->next = d->hits;
		if (d->hits != NULL)
			d->hits->prev = c;
		d->hits = c;
		event_active(c->ev, EV_TIMEOUT, 1);
		return;
	}
	ares_query(d->channel, name, dnsclass, type, dns_call_answer, c);
}

static void
dns_call_answer(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct dns_call *c = arg;

	if (!c->d->destroying)
		dns_cache_put(c->d, c->name, c->dnsclass, c->type, status,
		    abuf, alen);
	c->cb(c->arg, status, timeouts, abuf, alen);
	dns_call_free(c);
}

static void
dns_call_hit(evutil_socket_t fd, short what, void *arg)
{
	struct dns_call *c = arg;
	struct dns *d = c->d;

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		d->hits = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	c->cb(c->arg, c->status, 0, c->abuf, c->alen);
	dns_call_free(c);
}

static void
dns_call_free(struct dns_call *c)
{
	struct dns *d = c->d;

	if (c->ev != NULL) {
		/* Still listed when dns_free delivers it. */
		if (c->prev != NULL)
			c->prev->next = c->next;
		else if (d->hits == c)
			d->hits = c->next;
		if (c->next != NULL)
			c->next->prev = c->prev;
		event_free(c->ev);
	}
	free(c->name);
	free(c->abuf);
	free(c);
}
