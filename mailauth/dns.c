/*
 * The DNS module's transport (dns.h): c-ares on libevent. The channel's
 * sockets are watched through the sock_state callback, its
 * retransmissions by one timer re-armed from ares_timeout() after every
 * activity. dns_call() is the one query every request goes through: the
 * cache first (dns_cache.c), then c-ares; the answer is parsed by
 * dns_wire.c and cached for its TTL. The only file that includes ares.h.
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
	struct dns *d;
	struct dns_sock *next;
};

/* One query through the cache (answered by c-ares or the cache). */
struct dns_call {
	struct dns *d;
	dns_call_cb *cb;
	void *arg;
	char *name;			/* lower case */
	enum dns_type type;
	/* cache hit, delivered from the loop: */
	struct event *ev;
	enum dns_status st;
	struct dns_rr *rr;
	size_t n;
	struct dns_call *prev, *next;	/* d->hits */
};

static void dns_sock_state(void *, ares_socket_t, int, int);
static void dns_sock_event(evutil_socket_t, short, void *);
static void dns_timer_event(evutil_socket_t, short, void *);
static void dns_rearm(struct dns *);
static void dns_call_answer(void *, int, int, unsigned char *, int);
static void dns_call_hit(evutil_socket_t, short, void *);
static void dns_call_free(struct dns_call *);

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

struct dns *
dns_new(struct event_base *base, const char *resolver, int timeout_ms,
    int tries, const char **error_r)
{
	static pthread_mutex_t lib_lock = PTHREAD_MUTEX_INITIALIZER;
	static bool lib_init;
	struct ares_options opts;
	ares_channel ch;
	struct dns *d;
	int rc, mask;

	pthread_mutex_lock(&lib_lock);
	if (!lib_init && ares_library_init(ARES_LIB_INIT_ALL) == ARES_SUCCESS)
		lib_init = true;
	pthread_mutex_unlock(&lib_lock);
	if (!lib_init) {
		*error_r = "ares_library_init failed";
		return NULL;
	}
	d = xcalloc(1, sizeof(*d));
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
	rc = ares_init_options(&ch, &opts, mask);
	if (rc != ARES_SUCCESS) {
		*error_r = ares_strerror(rc);
		free(d);
		return NULL;
	}
	if (resolver != NULL && resolver[0] != '\0' &&
	    ares_set_servers_ports_csv(ch, resolver) != ARES_SUCCESS) {
		*error_r = "bad [relay] resolver address";
		ares_destroy(ch);
		free(d);
		return NULL;
	}
	if (base == NULL) {
		if ((base = event_base_new()) == NULL) {
			*error_r = "event_base_new failed";
			ares_destroy(ch);
			free(d);
			return NULL;
		}
		d->own_base = true;
	}
	d->channel = ch;
	d->base = base;
	d->view = xstrdup(resolver != NULL ? resolver : "");
	d->timer = evtimer_new(base, dns_timer_event, d);
	dns_sync_init(d);
	return d;
}

void
dns_free(struct dns *d)
{
	struct dns_sock *s;

	if (d == NULL)
		return;
	/* Waiting worker threads first: their requests are cancelled. */
	dns_sync_fini(d);
	d->destroying = true;
	/* Runs every outstanding c-ares callback with ARES_EDESTRUCTION. */
	ares_destroy(d->channel);
	/* Cache answers not delivered yet: the same, so that per-query
	 * state (e.g. dns_addr's halves) is released. */
	while (d->hits != NULL) {
		struct dns_call *c = d->hits;

		c->cb(c->arg, DNS_TEMPFAIL, NULL, 0);
		dns_call_free(c);
	}
	while (d->reqs != NULL)
		dns_req_free(d->reqs);
	while ((s = d->socks) != NULL) {
		d->socks = s->next;
		event_free(s->ev);
		free(s);
	}
	event_free(d->timer);
	if (d->own_base)
		event_base_free(d->base);
	free(d->view);
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
	what = EV_PERSIST | (readable ? EV_READ : 0) |
	    (writable ? EV_WRITE : 0);
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

void
dns_call(struct dns *d, const char *name, enum dns_type type,
    dns_call_cb *cb, void *arg)
{
	struct dns_call *c;

	c = xcalloc(1, sizeof(*c));
	c->d = d;
	c->cb = cb;
	c->arg = arg;
	c->name = util_strlower(xstrdup(name));
	c->type = type;
	if (dns_cache_get(d->view, c->name, type, &c->st, &c->rr, &c->n)) {
		/* Delivered from the loop like any answer. */
		c->ev = event_new(d->base, -1, 0, dns_call_hit, c);
		c->next = d->hits;
		if (d->hits != NULL)
			d->hits->prev = c;
		d->hits = c;
		event_active(c->ev, EV_TIMEOUT, 1);
		return;
	}
	ares_query(d->channel, c->name, 1 /* IN */, dns_type_code(type),
	    dns_call_answer, c);
	dns_rearm(d);
}

static void
dns_call_answer(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct dns_call *c = arg;
	struct dns *d = c->d;
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
	if (!d->destroying)
		dns_cache_put(d->view, c->name, c->type, c->st, c->rr, c->n,
		    ttl);
	c->cb(c->arg, c->st, c->rr, c->n);
	dns_call_free(c);
}

static void
dns_call_hit(evutil_socket_t fd, short what, void *arg)
{
	struct dns_call *c = arg;

	c->cb(c->arg, c->st, c->rr, c->n);
	dns_call_free(c);
}

static void
dns_call_free(struct dns_call *c)
{
	struct dns *d = c->d;

	if (c->ev != NULL) {
		if (c->prev != NULL)
			c->prev->next = c->next;
		else if (d->hits == c)
			d->hits = c->next;
		if (c->next != NULL)
			c->next->prev = c->prev;
		event_free(c->ev);
	}
	dns_rrs_free(c->rr, c->n);
	free(c->name);
	free(c);
}
