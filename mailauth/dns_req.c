/*
 * The DNS module's typed requests (dns.h): MX (RFC 5321 5.1 order, RFC
 * 7505 null MX), addresses (A + AAAA, IPv4 first), and the generic text
 * lookup that TXT, PTR and the blocking entry point use. Each request
 * rides on dns_call() queries and completes through a zero-delay event,
 * so user callbacks never run inside dns_*() calls and a cancelled
 * request is simply unlinked. Also the socket-address helpers.
 */
#include "mailauth/dns_int.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

enum dns_req_kind {
	DNS_REQ_LOOKUP,
	DNS_REQ_LOOKUP_AD,
	DNS_REQ_MX,
	DNS_REQ_ADDR,
};

struct dns_req {
	struct dns *d;
	enum dns_req_kind kind;
	enum dns_type type;		/* DNS_REQ_LOOKUP */
	struct dns_req *prev, *next;	/* d->reqs */
	struct event *done_ev;		/* completion, scheduled once */
	int pending;			/* dns_call queries outstanding */
	bool cancelled;
	bool in_cb;			/* the user callback is running */
	void *cb;
	void *arg;
	unsigned port;

	enum dns_status st;
	bool secure;			/* DNS_OK with the AD bit */
	enum dns_status sub[2];		/* dns_addr: A, AAAA outcome */
	struct dns_mx *mx;
	size_t nmx;
	struct sockaddr_storage *addrs;
	size_t naddrs;
	char **text;
	size_t ntext;
};

struct dns_addr_sub {
	struct dns_req *req;
	int idx;			/* 0: A, 1: AAAA */
};

static struct dns_req *dns_req_new(struct dns *, enum dns_req_kind, void *,
    void *);
static void dns_req_finish(struct dns_req *);
static void dns_req_done_event(evutil_socket_t, short, void *);
static void dns_lookup_answer(void *, enum dns_status, const struct dns_rr *,
    size_t);
static void dns_mx_answer(void *, enum dns_status, const struct dns_rr *,
    size_t);
static void dns_addr_answer(void *, enum dns_status, const struct dns_rr *,
    size_t);

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

void
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
	for (i = 0; i < req->nmx; i++)
		free(req->mx[i].host);
	free(req->mx);
	free(req->addrs);
	dns_rr_free(req->text, req->ntext);
	free(req);
}

void
dns_rr_free(char **rr, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(rr[i]);
	free(rr);
}

void
dns_cancel(struct dns_req *req)
{
	if (req == NULL || req->in_cb)
		return;	/* inside its own callback: freed after it */
	/* A query still holds req as its callback argument: let the last
	 * answer free it. */
	if (req->pending > 0) {
		req->cancelled = true;
		return;
	}
	dns_req_free(req);
}

/* A query answered (or the resolver is going away). */
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

	req->in_cb = true;
	switch (req->kind) {
	case DNS_REQ_LOOKUP:
		((dns_lookup_cb *)req->cb)(req->st,
		    (const char *const *)req->text, req->ntext, req->arg);
		break;
	case DNS_REQ_LOOKUP_AD:
		((dns_lookup_ad_cb *)req->cb)(req->st,
		    (const char *const *)req->text, req->ntext,
		    req->st == DNS_OK && req->secure, req->arg);
		break;
	case DNS_REQ_MX:
		((dns_mx_cb *)req->cb)(req->st, req->mx, req->nmx, req->arg);
		break;
	case DNS_REQ_ADDR:
		((dns_addr_cb *)req->cb)(req->st, req->addrs, req->naddrs,
		    req->arg);
		break;
	}
	dns_req_free(req);
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

/* The MX records of an answer (n >= 1) into *mx_r (caller frees the
 * hosts and the array), sorted: DNS_OK, or DNS_NULLMX. */
static enum dns_status
dns_mx_build(const struct dns_rr *rr, size_t n, struct dns_mx **mx_r,
    size_t *nmx_r)
{
	struct dns_mx *mx = xcalloc(n, sizeof(*mx));
	size_t i, nmx = 0;

	*mx_r = mx;
	*nmx_r = 0;
	for (i = 0; i < n; i++) {
		/* RFC 7505: a single "0 ." record means no mail at all. */
		if (rr[i].text[0] == '\0') {
			if (n == 1)
				return DNS_NULLMX;
			continue;	/* malformed mix: ignore the root */
		}
		mx[nmx].host = xstrdup(rr[i].text);
		mx[nmx].pref = rr[i].pref;
		nmx++;
	}
	*nmx_r = nmx;
	if (nmx == 0)
		return DNS_NULLMX;
	dns_mx_sort(mx, nmx);
	return DNS_OK;
}

enum dns_status
dns_rr_text(enum dns_type type, enum dns_status st, const struct dns_rr *rr,
    size_t n, char ***text_r, size_t *n_r)
{
	struct dns_mx *mx;
	size_t i, nmx;

	*text_r = NULL;
	*n_r = 0;
	if (st != DNS_OK)
		return st;
	if (type != DNS_T_MX) {
		*text_r = xcalloc(n, sizeof(char *));
		for (i = 0; i < n; i++)
			(*text_r)[i] = xstrdup(rr[i].text);
		*n_r = n;
		return DNS_OK;
	}
	/* Exchanges in delivery order. */
	st = dns_mx_build(rr, n, &mx, &nmx);
	if (st == DNS_OK) {
		*text_r = xcalloc(nmx, sizeof(char *));
		for (i = 0; i < nmx; i++)
			(*text_r)[i] = mx[i].host;
		*n_r = nmx;
	} else
		for (i = 0; i < nmx; i++)
			free(mx[i].host);
	free(mx);
	return st;
}

struct dns_req *
dns_mx(struct dns *d, const char *domain, dns_mx_cb *cb, void *arg)
{
	struct dns_req *req = dns_req_new(d, DNS_REQ_MX, (void *)cb, arg);

	req->pending = 1;
	dns_call(d, domain, DNS_T_MX, dns_mx_answer, req);
	return req;
}

static void
dns_mx_answer(void *arg, enum dns_status st, const struct dns_rr *rr,
    size_t n)
{
	struct dns_req *req = arg;

	req->st = st;
	if (st == DNS_OK && !req->d->destroying && !req->cancelled)
		req->st = dns_mx_build(rr, n, &req->mx, &req->nmx);
	dns_req_finish(req);
}

/* ---- any type, as text ---- */

struct dns_req *
dns_lookup(struct dns *d, enum dns_type type, const char *name,
    dns_lookup_cb *cb, void *arg)
{
	struct dns_req *req = dns_req_new(d, DNS_REQ_LOOKUP, (void *)cb, arg);

	req->type = type;
	req->pending = 1;
	dns_call(d, name, type, dns_lookup_answer, req);
	return req;
}

struct dns_req *
dns_lookup_ad(struct dns *d, enum dns_type type, const char *name,
    dns_lookup_ad_cb *cb, void *arg)
{
	struct dns_req *req = dns_req_new(d, DNS_REQ_LOOKUP_AD, (void *)cb,
	    arg);

	req->type = type;
	req->pending = 1;
	dns_call(d, name, type, dns_lookup_answer, req);
	return req;
}

struct dns_req *
dns_txt(struct dns *d, const char *name, dns_txt_cb *cb, void *arg)
{
	return dns_lookup(d, DNS_T_TXT, name, cb, arg);
}

static void
dns_lookup_answer(void *arg, enum dns_status st, const struct dns_rr *rr,
    size_t n)
{
	struct dns_req *req = arg;

	req->st = st;
	if (st == DNS_OK && !req->d->destroying && !req->cancelled)
		req->st = dns_rr_text(req->type, st, rr, n, &req->text,
		    &req->ntext);
	req->secure = st == DNS_OK && n > 0 && rr[0].ad;
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
		dns_call(d, host, i == 0 ? DNS_T_A : DNS_T_AAAA,
		    dns_addr_answer, sub);
	}
	return req;
}

static void
dns_addr_answer(void *arg, enum dns_status st, const struct dns_rr *rr,
    size_t n)
{
	struct dns_addr_sub *sub = arg;
	struct dns_req *req = sub->req;
	size_t i;

	if (st == DNS_OK && !req->d->destroying && !req->cancelled) {
		req->addrs = xrealloc(req->addrs, (req->naddrs + n) *
		    sizeof(*req->addrs));
		for (i = 0; i < n; i++)
			if (dns_parse_ip(rr[i].text, req->port,
			    &req->addrs[req->naddrs], NULL) == 0)
				req->naddrs++;
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
