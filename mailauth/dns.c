/*
 * The DNS module's transport (dns.h): c-ares on libevent. The channel's
 * sockets are watched through the sock_state callback, its
 * retransmissions by one timer re-armed from ares_timeout() after every
 * activity; handles with the same base and settings share one channel.
 * dns_call() is the one query every request goes through: the cache
 * first (dns_cache.c), then c-ares; the answer is parsed by dns_wire.c
 * and cached for its TTL. The only file that includes ares.h.
 * Does not own: the typed requests (dns_req.c), the blocking entry point
 * (dns_sync.c).
 */
#include "mailauth/dns_int.h"

#include <ares.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"

struct dns_sock {
	ares_socket_t fd;
	struct event *ev;
	struct dns_resolver *r;
	struct dns_sock *next;
};

/*
 * One c-ares channel on one event base, shared by every handle made with
 * the same base, server, timeout and tries (the daemon's DNSBL and
 * inbound checks, and the relay, get one resolver). Loop thread only.
 */
struct dns_resolver {
	struct dns_resolver *next;	/* dns_resolvers */
	unsigned refs;			/* handles */
	struct event_base *base;
	bool own_base;			/* never shared */
	char *view;			/* resolver string, "" = system */
	int timeout_ms, tries;
	ares_channel channel;
	struct event *timer;
	struct dns_sock *socks;
	bool destroying;
};

/* One query through the cache (answered by c-ares or the cache). */
struct dns_call {
	struct dns_resolver *r;
	struct dns *d;			/* NULL: orphaned by dns_free */
	dns_call_cb *cb;
	void *arg;
	char *name;			/* lower case */
	enum dns_type type;
	/* cache hit, delivered from the loop: */
	struct event *ev;
	enum dns_status st;
	struct dns_rr *rr;
	size_t n;
	struct dns_call *prev, *next;	/* d->calls */
	/* The same question asked again while this one is on the wire
	 * waits for its answer instead of a second query (a burst of
	 * sessions to one domain on a cold cache: one query, not ten). */
	bool querying;			/* its ares_query is out */
	struct dns_call *followers;	/* waiting for this answer */
	struct dns_call *fnext;
};

/* The shareable resolvers (not own-base ones), of every loop. */
static pthread_mutex_t dns_resolvers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dns_resolver *dns_resolvers;

static void dns_sock_state(void *, ares_socket_t, int, int);
static void dns_sock_event(evutil_socket_t, short, void *);
static void dns_timer_event(evutil_socket_t, short, void *);
static void dns_rearm(struct dns_resolver *);
static void dns_call_answer(void *, int, int, unsigned char *, int);
static void dns_call_sent(void *, int, int, unsigned char *, int);
static void dns_call_send(struct dns_call *);
static void dns_call_hit(evutil_socket_t, short, void *);
static void dns_call_deliver(struct dns_call *);
static void dns_call_unlink(struct dns_call *);
static void dns_call_free(struct dns_call *);
static bool dns_name_is_valid(const char *);

static const char *const dns_status_names[DNS_STATUS_COUNT] = {
	[DNS_OK] = "ok",
	[DNS_NXDOMAIN] = "nxdomain",
	[DNS_NODATA] = "nodata",
	[DNS_TEMPFAIL] = "tempfail",
	[DNS_NULLMX] = "nullmx",
};

static const struct {
	const char *name;
	int code;			/* RFC 1035 3.2.2, RFC 3596 */
} dns_types[DNS_TYPE_COUNT] = {
	[DNS_T_A] = { "A", 1 },
	[DNS_T_AAAA] = { "AAAA", 28 },
	[DNS_T_MX] = { "MX", 15 },
	[DNS_T_TXT] = { "TXT", 16 },
	[DNS_T_PTR] = { "PTR", 12 },
	[DNS_T_SRV] = { "SRV", 33 },	/* RFC 2782 */
	[DNS_T_TLSA] = { "TLSA", 52 },	/* RFC 6698 */
};

const char *
dns_status_str(enum dns_status st)
{
	return st < DNS_STATUS_COUNT ? dns_status_names[st] : "?";
}

const char *
dns_type_str(enum dns_type type)
{
	return type < DNS_TYPE_COUNT ? dns_types[type].name : "?";
}

int
dns_type_code(enum dns_type type)
{
	return type < DNS_TYPE_COUNT ? dns_types[type].code : 0;
}

/* A new channel; base NULL: on a base of its own. NULL and *error_r. */
static struct dns_resolver *
dns_resolver_new(struct event_base *base, const char *view, int timeout_ms,
    int tries, const char **error_r)
{
	static pthread_mutex_t lib_lock = PTHREAD_MUTEX_INITIALIZER;
	static bool lib_init;
	struct ares_options opts;
	struct dns_resolver *r;
	int rc, mask;

	pthread_mutex_lock(&lib_lock);
	if (!lib_init && ares_library_init(ARES_LIB_INIT_ALL) == ARES_SUCCESS)
		lib_init = true;
	pthread_mutex_unlock(&lib_lock);
	if (!lib_init) {
		*error_r = "ares_library_init failed";
		return NULL;
	}
	r = xcalloc(1, sizeof(*r));
	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb = dns_sock_state;
	opts.sock_state_cb_data = r;
	opts.timeout = timeout_ms;
	opts.tries = tries;
	/* Names we ask for are always fully qualified: no search list. */
	opts.flags = ARES_FLAG_NOSEARCH;
	opts.ndomains = 0;
	mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
	    ARES_OPT_FLAGS | ARES_OPT_DOMAINS;
	rc = ares_init_options(&r->channel, &opts, mask);
	if (rc != ARES_SUCCESS) {
		*error_r = ares_strerror(rc);
		free(r);
		return NULL;
	}
	if (view[0] != '\0' &&
	    ares_set_servers_ports_csv(r->channel, view) != ARES_SUCCESS) {
		*error_r = "bad [relay] resolver address";
		ares_destroy(r->channel);
		free(r);
		return NULL;
	}
	if (base == NULL) {
		if ((base = event_base_new()) == NULL) {
			*error_r = "event_base_new failed";
			ares_destroy(r->channel);
			free(r);
			return NULL;
		}
		r->own_base = true;
	}
	r->base = base;
	r->view = xstrdup(view);
	r->timeout_ms = timeout_ms;
	r->tries = tries;
	r->timer = evtimer_new(base, dns_timer_event, r);
	return r;
}

/* The last handle is gone (and r off dns_resolvers). */
static void
dns_resolver_free(struct dns_resolver *r)
{
	struct dns_sock *s;

	r->destroying = true;
	/* Runs every outstanding c-ares callback (orphans by now) with
	 * ARES_EDESTRUCTION. */
	ares_destroy(r->channel);
	while ((s = r->socks) != NULL) {
		r->socks = s->next;
		event_free(s->ev);
		free(s);
	}
	event_free(r->timer);
	if (r->own_base)
		event_base_free(r->base);
	free(r->view);
	free(r);
}

struct dns *
dns_new(struct event_base *base, const char *resolver, int timeout_ms,
    int tries, const char **error_r)
{
	const char *view = resolver != NULL ? resolver : "";
	struct dns_resolver *r = NULL;
	struct dns *d;

	timeout_ms = timeout_ms > 0 ? timeout_ms : 2000;
	tries = tries > 0 ? tries : 2;
	pthread_mutex_lock(&dns_resolvers_lock);
	for (r = base != NULL ? dns_resolvers : NULL; r != NULL; r = r->next)
		if (r->base == base && r->timeout_ms == timeout_ms &&
		    r->tries == tries && strcmp(r->view, view) == 0)
			break;
	if (r == NULL) {
		r = dns_resolver_new(base, view, timeout_ms, tries, error_r);
		if (r != NULL && !r->own_base) {
			r->next = dns_resolvers;
			dns_resolvers = r;
		}
	}
	if (r != NULL)
		r->refs++;
	pthread_mutex_unlock(&dns_resolvers_lock);
	if (r == NULL)
		return NULL;
	d = xcalloc(1, sizeof(*d));
	d->res = r;
	d->base = r->base;
	d->own_base = r->own_base;
	d->view = r->view;
	dns_sync_init(d);
	return d;
}

void
dns_free(struct dns *d)
{
	struct dns_resolver **rp;
	struct dns_call *c;
	bool last;

	if (d == NULL)
		return;
	/* Waiting worker threads first: their requests are cancelled. */
	dns_sync_fini(d);
	d->destroying = true;
	/* Every query in flight answers now (TEMPFAIL), so per-query state
	 * (e.g. dns_addr's halves) is released; the requests see
	 * d->destroying and wait to be freed below. A query still on the
	 * wire is orphaned: c-ares' answer only fills the cache. */
	while ((c = d->calls) != NULL) {
		dns_call_unlink(c);
		c->cb(c->arg, DNS_TEMPFAIL, NULL, 0);
		if (c->ev != NULL)
			dns_call_free(c);
	}
	while (d->reqs != NULL)
		dns_req_free(d->reqs);
	pthread_mutex_lock(&dns_resolvers_lock);
	last = --d->res->refs == 0;
	if (last)
		for (rp = &dns_resolvers; *rp != NULL; rp = &(*rp)->next)
			if (*rp == d->res) {
				*rp = d->res->next;
				break;
			}
	pthread_mutex_unlock(&dns_resolvers_lock);
	if (last)
		dns_resolver_free(d->res);
	free(d);
}

static void
dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns_resolver *r = data;
	struct dns_sock *s, **sp;
	short what;

	for (sp = &r->socks; (s = *sp) != NULL; sp = &s->next)
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
	what = EV_PERSIST | (readable ? EV_READ : 0) |
	    (writable ? EV_WRITE : 0);
	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		s->fd = fd;
		s->r = r;
		s->next = r->socks;
		r->socks = s;
	} else
		event_free(s->ev);
	s->ev = event_new(r->base, fd, what, dns_sock_event, s);
	event_add(s->ev, NULL);
}

static void
dns_sock_event(evutil_socket_t fd, short what, void *arg)
{
	struct dns_sock *s = arg;
	struct dns_resolver *r = s->r;

	/* s may be freed inside ares_process_fd (socket closed). */
	ares_process_fd(r->channel,
	    (what & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_rearm(r);
}

static void
dns_timer_event(evutil_socket_t fd, short what, void *arg)
{
	struct dns_resolver *r = arg;

	ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_rearm(r);
}

static void
dns_rearm(struct dns_resolver *r)
{
	struct timeval tv, *tvp;

	if (r->destroying)
		return;
	tvp = ares_timeout(r->channel, NULL, &tv);
	if (tvp == NULL) {
		evtimer_del(r->timer);
		return;
	}
	evtimer_add(r->timer, tvp);
}

/*
 * Can name be put in a query (RFC 1035 2.3.4)? Labels of 1-63 octets,
 * at most 253 in all (without the root's dot); a backslash would be read
 * by c-ares as an escape. Any other octet is left to the server.
 */
static bool
dns_name_is_valid(const char *name)
{
	size_t len = strlen(name), label = 0;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (name[i] == '\\')
			return false;
		if (name[i] != '.') {
			if (++label > 63)
				return false;
			continue;
		}
		if (label == 0)
			return false;
		label = 0;
	}
	return label > 0;
}

void
dns_call(struct dns *d, const char *name, enum dns_type type,
    dns_call_cb *cb, void *arg)
{
	struct dns_resolver *r;
	struct dns_call *c;

	c = xcalloc(1, sizeof(*c));
	c->r = d->res;
	c->d = d;
	c->cb = cb;
	c->arg = arg;
	c->name = util_strlower(xstrdup(name));
	c->type = type;
	c->next = d->calls;
	if (d->calls != NULL)
		d->calls->prev = c;
	d->calls = c;
	/* A name no query can carry does not exist (RFC 7208 4.3, RFC 1035
	 * 2.3.4); c-ares would refuse it from inside ares_query(). */
	if (!dns_name_is_valid(c->name))
		c->st = DNS_NXDOMAIN;
	if (c->st == DNS_NXDOMAIN ||
	    dns_cache_get(d->view, c->name, type, &c->st, &c->rr, &c->n)) {
		/* Delivered from the loop like any answer. */
		c->ev = event_new(d->base, -1, 0, dns_call_hit, c);
		event_active(c->ev, EV_TIMEOUT, 1);
		return;
	}
	for (struct dns_call *q = c->next; q != NULL; q = q->next)
		if (q->querying && q->type == type &&
		    strcmp(q->name, c->name) == 0) {
			struct dns_call **fp = &q->followers;

			while (*fp != NULL)
				fp = &(*fp)->fnext;
			*fp = c;	/* answered in the order asked */
			return;
		}
	c->querying = true;
	r = c->r;		/* c is freed if the send fails at once */
	dns_call_send(c);
	dns_rearm(r);
}

/*
 * ares_query() as c-ares 1.18 builds it, with the AD bit set: RFC 6840
 * 5.7, a validating resolver then says in its answer's AD bit whether
 * the data was authenticated (DANE, RFC 7672 2.1, needs to know).
 */
static void
dns_call_send(struct dns_call *c)
{
	unsigned char *q;
	int qlen;

	if (ares_create_query(c->name, 1 /* IN */, dns_type_code(c->type),
	    (unsigned short)(util_random64() & 0xffff), 1, &q, &qlen, 0) !=
	    ARES_SUCCESS) {
		dns_call_answer(c, ARES_EBADNAME, 0, NULL, 0);
		return;
	}
	q[3] |= DNS_HDR_AD;
	ares_send(c->r->channel, q, qlen, dns_call_sent, c);
	ares_free_string(q);
}

/* ares_send() hands over any reply: the response codes as ares_query()
 * maps them. */
static void
dns_call_sent(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	if (status == ARES_SUCCESS && abuf != NULL && alen >= 12) {
		unsigned an = (unsigned)abuf[6] << 8 | abuf[7];

		switch (abuf[3] & 0x0f) {
		case 0:
			if (an == 0)
				status = ARES_ENODATA;
			break;
		case 1:
			status = ARES_EFORMERR;
			break;
		case 2:
			status = ARES_ESERVFAIL;
			break;
		case 3:
			status = ARES_ENOTFOUND;
			break;
		case 4:
			status = ARES_ENOTIMP;
			break;
		case 5:
			status = ARES_EREFUSED;
			break;
		}
	}
	dns_call_answer(arg, status, timeouts, abuf, alen);
}

static void
dns_call_answer(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct dns_call *c = arg;
	uint32_t ttl = 0;

	switch (status) {
	case ARES_SUCCESS:
		if (dns_wire_answer(abuf, (size_t)alen, c->type, &c->rr, &c->n,
		    &ttl) < 0) {
			c->st = DNS_TEMPFAIL;
			break;
		}
		if (c->n > 0) {
			c->st = DNS_OK;
			if (ttl > DNS_CACHE_POS_MAX)
				ttl = DNS_CACHE_POS_MAX;
			break;
		}
		/* Only other types (a CNAME chain): no data. */
		c->st = DNS_NODATA;
		ttl = dns_wire_negative_ttl(abuf, (size_t)alen);
		break;
	case ARES_ENOTFOUND:
	case ARES_ENODATA:
		c->st = status == ARES_ENOTFOUND ? DNS_NXDOMAIN : DNS_NODATA;
		/* RFC 2308 5; without an SOA, not cached. */
		ttl = dns_wire_negative_ttl(abuf, abuf != NULL ?
		    (size_t)alen : 0);
		break;
	default:
		/* ESERVFAIL, ETIMEOUT, EREFUSED, ECONNREFUSED, EBADRESP,
		 * EDESTRUCTION...: nothing proves the name bad, so try again
		 * later; not cached. */
		c->st = DNS_TEMPFAIL;
		break;
	}
	if (c->st != DNS_OK && ttl > DNS_CACHE_NEG_MAX)
		ttl = DNS_CACHE_NEG_MAX;
	if (!c->r->destroying)
		dns_cache_put(c->r->view, c->name, c->type, c->st, c->rr, c->n,
		    ttl);
	dns_call_deliver(c);
}

/* c's answer to its caller and to every call that waited for it (the
 * answer is borrowed by each callback, freed after the last). A waiter
 * orphaned by dns_free already heard TEMPFAIL: it is only freed. */
static void
dns_call_deliver(struct dns_call *c)
{
	struct dns_call *f, *fnext;

	if (c->d != NULL) {
		dns_call_unlink(c);
		c->cb(c->arg, c->st, c->rr, c->n);
	}
	f = c->followers;
	c->followers = NULL;
	for (; f != NULL; f = fnext) {
		fnext = f->fnext;
		if (f->d != NULL) {
			dns_call_unlink(f);
			f->cb(f->arg, c->st, c->rr, c->n);
		}
		dns_call_free(f);
	}
	dns_call_free(c);
}

static void
dns_call_hit(evutil_socket_t fd, short what, void *arg)
{
	struct dns_call *c = arg;

	dns_call_unlink(c);
	c->cb(c->arg, c->st, c->rr, c->n);
	dns_call_free(c);
}

/* Off its handle's list; an orphan from then on. */
static void
dns_call_unlink(struct dns_call *c)
{
	struct dns *d = c->d;

	if (d == NULL)
		return;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		d->calls = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	c->d = NULL;
}

static void
dns_call_free(struct dns_call *c)
{
	dns_call_unlink(c);
	if (c->ev != NULL)
		event_free(c->ev);
	dns_rrs_free(c->rr, c->n);
	free(c->name);
	free(c);
}
