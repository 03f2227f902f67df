/*
 * Unit tests for the DNS module (mailauth/dns*.c) against the in-process
 * fake DNS server: typed requests, MX order, the TTL-honouring cache
 * (queries counted at the server), the blocking entry point from worker
 * threads while the loop runs, and the own-base mode of carteiroctl.
 */
#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "relay_fakes.h"
#include "mailauth/dns.h"
#include "mailauth/dns_int.h"
#include "common/util.h"
#include "t.h"

static const struct fake_rr zone[] = {
	{ "two.test", FAKE_MX, "20 mx2.two.test", 0 },
	{ "two.test", FAKE_MX, "10 mx1.two.test", 0 },
	{ "two.test", FAKE_MX, "30 mx3.two.test", 0 },
	{ "mx1.two.test", FAKE_A, "127.0.0.2", 0 },
	{ "mx1.two.test", FAKE_AAAA, "::1", 0 },
	{ "v6.test", FAKE_AAAA, "::1", 0 },
	{ "null.test", FAKE_MX, "0 .", 0 },
	{ "noMX.test", FAKE_A, "127.0.0.5", 0 },
	{ "fail.test", 0, NULL, FAKE_SERVFAIL },
	{ "silent.test", 0, NULL, FAKE_DROP },
	{ "txt.test", FAKE_TXT, "v=spf1 -all", 0 },
	{ "ttl1.test", FAKE_A, "127.0.0.11", 0 },
	{ "ttl300.test", FAKE_A, "127.0.0.12", 0 },
	{ "day.test", FAKE_A, "127.0.0.13", 0 },
	{ "zero.test", FAKE_A, "127.0.0.14", 0 },
	{ "1.0.0.127.in-addr.arpa", FAKE_PTR, "host.test", 0 },
};

/* The TTL the fake server gives each name's records. */
static unsigned
zone_ttl(const char *name)
{
	if (strcmp(name, "ttl1.test") == 0)
		return 1;
	if (strcmp(name, "ttl300.test") == 0)
		return 300;
	if (strcmp(name, "day.test") == 0)
		return 86400;
	if (strcmp(name, "zero.test") == 0)
		return 0x80000000u;	/* RFC 2181 8: counts as 0 */
	return 60;
}

struct result {
	struct dns_req *self;	/* cancelled from inside its callback */
	bool done;
	enum dns_status st;
	char text[512];
	size_t n;
};

static struct event_base *base;
static struct fake_dns fdns;

static void
mx_cb(enum dns_status st, const struct dns_mx *mx, size_t n, void *arg)
{
	struct result *r = arg;
	size_t i, o = 0;

	r->done = true;
	r->st = st;
	r->n = n;
	for (i = 0; i < n; i++)
		o += (size_t)snprintf(r->text + o, sizeof(r->text) - o, "%u:%s ",
		    mx[i].pref, mx[i].host);
	event_base_loopbreak(base);
}

static void
addr_cb(enum dns_status st, const struct sockaddr_storage *a, size_t n,
    void *arg)
{
	struct result *r = arg;
	size_t i, o = 0;
	char ip[64];

	r->done = true;
	r->st = st;
	r->n = n;
	for (i = 0; i < n; i++)
		o += (size_t)snprintf(r->text + o, sizeof(r->text) - o, "%s ",
		    dns_sockaddr_str(&a[i], ip, sizeof(ip)));
	event_base_loopbreak(base);
}

static void
txt_cb(enum dns_status st, const char *const *txt, size_t n, void *arg)
{
	struct result *r = arg;

	r->done = true;
	r->st = st;
	r->n = n;
	if (n > 0)
		snprintf(r->text, sizeof(r->text), "%s", txt[0]);
	dns_cancel(r->self);	/* allowed: a no-op inside the callback */
	event_base_loopbreak(base);
}

static void
run(struct result *r)
{
	struct timeval tv = { 10, 0 };

	event_base_loopexit(base, &tv);
	while (!r->done)
		if (event_base_dispatch(base) != 0 || !r->done)
			break;
}

static void
test_mx(struct dns *d)
{
	struct result r;

	t_begin("dns mx sorted");
	memset(&r, 0, sizeof(r));
	dns_mx(d, "two.test", mx_cb, &r);
	t_assert(!r.done);	/* never synchronous */
	run(&r);
	t_assert_int(r.st, DNS_OK);
	t_assert_str(r.text, "10:mx1.two.test 20:mx2.two.test 30:mx3.two.test ");
	t_end();

	t_begin("dns answers are cached");
	{
		unsigned before = fdns.queries;

		memset(&r, 0, sizeof(r));
		dns_mx(d, "TWO.test", mx_cb, &r);
		t_assert(!r.done);	/* a cache hit is delivered later too */
		run(&r);
		t_assert_int(r.st, DNS_OK);
		t_assert_int(r.n, 3);
		t_assert_int(fdns.queries, before);
		/* Negative answers too; failures are not. */
		memset(&r, 0, sizeof(r));
		dns_mx(d, "nowhere.test", mx_cb, &r);
		run(&r);
		memset(&r, 0, sizeof(r));
		dns_mx(d, "nowhere.test", mx_cb, &r);
		run(&r);
		t_assert_int(r.st, DNS_NXDOMAIN);
		t_assert_int(fdns.queries, before + 1);
		memset(&r, 0, sizeof(r));
		dns_mx(d, "fail.test", mx_cb, &r);
		run(&r);
		memset(&r, 0, sizeof(r));
		dns_mx(d, "fail.test", mx_cb, &r);
		run(&r);
		t_assert_int(r.st, DNS_TEMPFAIL);
		t_assert(fdns.queries >= before + 3);
	}
	t_end();

	t_begin("dns: a question already on the wire is not asked again");
	{
		struct result r3[3];
		unsigned before;
		int i;

		dns_cache_flush();
		before = fdns.queries;
		memset(r3, 0, sizeof(r3));
		for (i = 0; i < 3; i++)
			dns_mx(d, i == 1 ? "Two.test" : "two.test", mx_cb,
			    &r3[i]);
		for (i = 0; i < 3; i++)
			run(&r3[i]);
		for (i = 0; i < 3; i++) {
			t_assert_int(r3[i].st, DNS_OK);
			t_assert_str(r3[i].text, "10:mx1.two.test "
			    "20:mx2.two.test 30:mx3.two.test ");
		}
		t_assert_int(fdns.queries, before + 1);
	}
	t_end();

	t_begin("dns null mx");
	memset(&r, 0, sizeof(r));
	dns_mx(d, "null.test", mx_cb, &r);
	run(&r);
	t_assert_int(r.st, DNS_NULLMX);
	t_end();

	t_begin("dns mx nodata -> implicit");
	memset(&r, 0, sizeof(r));
	dns_mx(d, "nomx.test", mx_cb, &r);
	run(&r);
	t_assert_int(r.st, DNS_NODATA);
	t_end();

	t_begin("dns nxdomain");
	memset(&r, 0, sizeof(r));
	dns_mx(d, "nowhere.test", mx_cb, &r);
	run(&r);
	t_assert_int(r.st, DNS_NXDOMAIN);
	t_end();

	/* RFC 7208 4.3: a name no query can carry does not exist; c-ares
	 * refused it from inside the call (a use after free), as a
	 * temporary failure. */
	t_begin("dns malformed names are nxdomain, without a query");
	{
		static const char *const bad[] = {
			"a..b.test", ".test", "a.test..",
			("a1234567890123456789012345678901234567890123456789"
			"01234567890123.test"),	/* a 64-octet label */
			"a\\.test",
		};
		char long_name[300];
		unsigned q = fdns.queries;

		memset(long_name, 'a', sizeof(long_name) - 1);
		for (size_t i = 1; i < sizeof(long_name) - 1; i += 2)
			long_name[i] = '.';
		long_name[sizeof(long_name) - 1] = '\0';
		for (size_t i = 0; i <= nitems(bad); i++) {
			memset(&r, 0, sizeof(r));
			dns_mx(d, i < nitems(bad) ? bad[i] : long_name, mx_cb,
			    &r);
			t_assert(!r.done);	/* never from inside the call */
			run(&r);
			t_assert_int(r.st, DNS_NXDOMAIN);
		}
		t_assert_int(fdns.queries, q);
	}
	t_end();

	t_begin("dns TXT: a NUL octet is 0x7f, the record is not cut");
	{
		/* one TXT record "a\0b" for x.test */
		static const unsigned char msg[] = {
			0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0,
			1, 'x', 4, 't', 'e', 's', 't', 0, 0, 16, 0, 1,
			0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 60, 0, 4,
			3, 'a', 0, 'b',
		};
		struct dns_rr *rr;
		size_t n;
		uint32_t ttl;

		t_assert_int(dns_wire_answer(msg, sizeof(msg), DNS_T_TXT, &rr,
		    &n, &ttl), 0);
		t_assert_int(n, 1);
		t_assert_str(rr[0].text, "a\x7f" "b");
		dns_rrs_free(rr, n);
	}
	t_end();

	t_begin("dns SRV: priority weight port target, \".\" for the root");
	{
		/* two SRV records for x.test: 0 1 465 mail.x.test (the
		 * target compressed onto the question) and 0 0 0 . */
		static const unsigned char msg[] = {
			0, 1, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0,
			1, 'x', 4, 't', 'e', 's', 't', 0, 0, 33, 0, 1,
			0xc0, 12, 0, 33, 0, 1, 0, 0, 0, 60, 0, 13,
			0, 0, 0, 1, 0x01, 0xd1, 4, 'm', 'a', 'i', 'l', 0xc0, 12,
			0xc0, 12, 0, 33, 0, 1, 0, 0, 0, 60, 0, 7,
			0, 0, 0, 0, 0, 0, 0,
		};
		struct dns_rr *rr;
		size_t n;
		uint32_t ttl;

		t_assert_int(dns_wire_answer(msg, sizeof(msg), DNS_T_SRV, &rr,
		    &n, &ttl), 0);
		t_assert_int(n, 2);
		t_assert_str(rr[0].text, "0 1 465 mail.x.test");
		t_assert_str(rr[1].text, "0 0 0 .");
		dns_rrs_free(rr, n);
		/* Too short for the three numbers and a name. */
		t_assert_int(dns_wire_answer(msg, sizeof(msg) - 1, DNS_T_SRV,
		    &rr, &n, &ttl), -1);
	}
	t_end();

	t_begin("dns TLSA: usage selector mtype hex, the AD bit per answer");
	{
		/* _25._tcp.x: 3 1 1 <4 octets> and 2 0 0 <1 octet>, the
		 * header with AD (0x20 in the fourth octet). */
		unsigned char msg[] = {
			0, 1, 0x81, 0xa0, 0, 1, 0, 2, 0, 0, 0, 0,
			3, '_', '2', '5', 4, '_', 't', 'c', 'p', 1, 'x', 0,
			0, 52, 0, 1,
			0xc0, 12, 0, 52, 0, 1, 0, 0, 0, 60, 0, 7,
			3, 1, 1, 0xde, 0xad, 0xbe, 0x0f,
			0xc0, 12, 0, 52, 0, 1, 0, 0, 0, 30, 0, 4,
			2, 0, 0, 0xa5,
		};
		struct dns_rr *rr;
		size_t n;
		uint32_t ttl;

		t_assert_int(dns_wire_answer(msg, sizeof(msg), DNS_T_TLSA,
		    &rr, &n, &ttl), 0);
		t_assert_int(n, 2);
		t_assert_str(rr[0].text, "3 1 1 deadbe0f");
		t_assert_str(rr[1].text, "2 0 0 a5");
		t_assert(rr[0].ad && rr[1].ad);
		t_assert_int(ttl, 30);
		dns_rrs_free(rr, n);
		/* Without the AD bit: the same records, not authenticated. */
		msg[3] = 0x80;
		t_assert_int(dns_wire_answer(msg, sizeof(msg), DNS_T_TLSA,
		    &rr, &n, &ttl), 0);
		t_assert_int(n, 2);
		t_assert(!rr[0].ad && !rr[1].ad);
		dns_rrs_free(rr, n);
		/* A record shorter than usage, selector, type and one octet
		 * of data is malformed. */
		msg[sizeof(msg) - 5] = 3;
		t_assert_int(dns_wire_answer(msg, sizeof(msg) - 1, DNS_T_TLSA,
		    &rr, &n, &ttl), -1);
		t_assert_str(dns_type_str(DNS_T_TLSA), "TLSA");
	}
	t_end();

	t_begin("dns servfail");
	memset(&r, 0, sizeof(r));
	dns_mx(d, "fail.test", mx_cb, &r);
	run(&r);
	t_assert_int(r.st, DNS_TEMPFAIL);
	t_end();

	t_begin("dns timeout");
	memset(&r, 0, sizeof(r));
	dns_mx(d, "silent.test", mx_cb, &r);
	run(&r);
	t_assert(r.done);
	t_assert_int(r.st, DNS_TEMPFAIL);
	t_end();
}

static void
test_addr(struct dns *d)
{
	struct result r;

	t_begin("dns addr v4 first");
	memset(&r, 0, sizeof(r));
	dns_addr(d, "mx1.two.test", 25, addr_cb, &r);
	run(&r);
	t_assert_int(r.st, DNS_OK);
	t_assert_str(r.text, "127.0.0.2 ::1 ");
	t_end();

	t_begin("dns addr v6 only");
	memset(&r, 0, sizeof(r));
	dns_addr(d, "v6.test", 25, addr_cb, &r);
	run(&r);
	t_assert_int(r.st, DNS_OK);
	t_assert_str(r.text, "::1 ");
	t_end();

	t_begin("dns addr literal");
	memset(&r, 0, sizeof(r));
	dns_addr(d, "127.0.0.9", 25, addr_cb, &r);
	t_assert(!r.done);
	run(&r);
	t_assert_int(r.st, DNS_OK);
	t_assert_str(r.text, "127.0.0.9 ");
	t_end();

	t_begin("dns addr missing host");
	memset(&r, 0, sizeof(r));
	dns_addr(d, "mx2.two.test", 25, addr_cb, &r);
	run(&r);
	t_assert_int(r.st, DNS_NXDOMAIN);
	t_end();

	t_begin("dns addr servfail");
	memset(&r, 0, sizeof(r));
	dns_addr(d, "fail.test", 25, addr_cb, &r);
	run(&r);
	t_assert_int(r.st, DNS_TEMPFAIL);
	t_end();
}

static void
test_txt_cancel(struct dns *d)
{
	struct result r, r2;
	struct dns_req *req;

	t_begin("dns txt");
	memset(&r, 0, sizeof(r));
	r.self = dns_txt(d, "txt.test", txt_cb, &r);
	run(&r);
	t_assert_int(r.st, DNS_OK);
	t_assert_str(r.text, "v=spf1 -all");
	t_end();

	t_begin("dns cancel");
	memset(&r, 0, sizeof(r));
	memset(&r2, 0, sizeof(r2));
	req = dns_mx(d, "two.test", mx_cb, &r);
	dns_cancel(req);
	req = dns_addr(d, "127.0.0.1", 25, addr_cb, &r);
	dns_cancel(req);
	dns_txt(d, "txt.test", txt_cb, &r2);
	run(&r2);
	t_assert(r2.done);
	t_assert(!r.done);
	t_end();

	/* Pending at dns_free: freed without callbacks (ASan checks). */
	dns_mx(d, "silent.test", mx_cb, &r);
}

/* One blocking A lookup on the test thread's loop, as text. */
static enum dns_status
lookup_a(struct dns *d, const char *name, char *text, size_t size)
{
	struct result r;

	memset(&r, 0, sizeof(r));
	dns_lookup(d, DNS_T_A, name, txt_cb, &r);
	run(&r);
	util_strlcpy(text, r.text, size);
	return r.st;
}

/*
 * name's answer (status st) is asked once, served from the cache until
 * secs seconds have passed, and asked again after that: queries are
 * counted at the fake server.
 */
static void
assert_cached_for(struct dns *d, const char *name, enum dns_status st,
    unsigned secs)
{
	char text[64];
	unsigned q = fdns.queries;

	t_assert_int(lookup_a(d, name, text, sizeof(text)), st);
	dns_cache_advance(secs - 1);
	t_assert_int(lookup_a(d, name, text, sizeof(text)), st);
	t_assert_int(fdns.queries, q + 1);
	dns_cache_advance(2);
	t_assert_int(lookup_a(d, name, text, sizeof(text)), st);
	t_assert_int(fdns.queries, q + 2);
}

/* name is asked every time. */
static void
assert_not_cached(struct dns *d, const char *name, enum dns_status st)
{
	char text[64];
	unsigned q = fdns.queries;

	t_assert_int(lookup_a(d, name, text, sizeof(text)), st);
	t_assert_int(lookup_a(d, name, text, sizeof(text)), st);
	t_assert_int(fdns.queries, q + 2);
}

static void
test_ttl(struct dns *d)
{
	char text[64];

	dns_cache_flush();
	t_begin("dns cache: TTL 1 is asked again once it expired");
	t_assert_int(lookup_a(d, "ttl1.test", text, sizeof(text)), DNS_OK);
	t_assert_str(text, "127.0.0.11");
	dns_cache_advance(2);
	assert_cached_for(d, "ttl1.test", DNS_OK, 1);
	t_end();

	t_begin("dns cache: TTL 300 is served from the cache for 300 s");
	assert_cached_for(d, "ttl300.test", DNS_OK, 300);
	t_end();

	t_begin("dns cache: a long TTL is capped");
	assert_cached_for(d, "day.test", DNS_OK, DNS_CACHE_POS_MAX);
	t_end();

	t_begin("dns cache: TTL 0 (and 2^31, RFC 2181 8) is not cached");
	assert_not_cached(d, "zero.test", DNS_OK);
	t_end();

	t_begin("dns cache: negative answers live for the SOA minimum");
	fdns.soa_ttl = 3600;
	fdns.soa_min = 5;
	assert_cached_for(d, "gone1.test", DNS_NXDOMAIN, 5);
	/* NODATA the same; the SOA's own TTL when it is smaller. */
	fdns.soa_ttl = 3;
	fdns.soa_min = 600;
	assert_cached_for(d, "v6.test", DNS_NODATA, 3);
	t_end();

	t_begin("dns cache: negative caching is capped");
	fdns.soa_ttl = 86400;
	fdns.soa_min = 86400;
	assert_cached_for(d, "gone2.test", DNS_NXDOMAIN, DNS_CACHE_NEG_MAX);
	t_end();

	t_begin("dns cache: a negative answer without SOA is not cached");
	fdns.soa_ttl = fdns.soa_min = 0;
	assert_not_cached(d, "gone3.test", DNS_NXDOMAIN);
	t_end();

	t_begin("dns cache: temporary failures are not cached");
	assert_not_cached(d, "fail.test", DNS_TEMPFAIL);
	t_end();
	fdns.soa_ttl = fdns.soa_min = 60;
}

/* Handles with the same base and settings share one resolver; freeing
 * one cancels only its own requests. */
static void
test_shared(const char *resolver)
{
	const char *err = NULL;
	struct dns *d1 = dns_new(base, resolver, 300, 1, &err);
	struct dns *d2 = dns_new(base, resolver, 300, 1, &err);
	struct dns *d3 = dns_new(base, resolver, 300, 2, &err);
	struct result r1, r2;
	unsigned q;

	dns_cache_flush();
	t_begin("dns handles share one resolver per base and settings");
	t_assert(d1 != NULL && d2 != NULL && d3 != NULL);
	t_assert(d1->res == d2->res);
	t_assert(d1->res != d3->res);
	t_end();

	t_begin("dns_free of one handle leaves the other's requests");
	memset(&r1, 0, sizeof(r1));
	memset(&r2, 0, sizeof(r2));
	q = fdns.queries;
	dns_txt(d1, "txt.test", txt_cb, &r1);	/* orphaned on the wire */
	dns_mx(d2, "two.test", mx_cb, &r2);
	dns_free(d1);
	run(&r2);
	t_assert(!r1.done);
	t_assert_int(r2.st, DNS_OK);
	t_assert_str(r2.text, "10:mx1.two.test 20:mx2.two.test 30:mx3.two.test ");
	/* The orphan's answer still filled the cache. */
	event_base_loop(base, EVLOOP_NONBLOCK);
	memset(&r2, 0, sizeof(r2));
	dns_txt(d2, "txt.test", txt_cb, &r2);
	run(&r2);
	t_assert_int(r2.st, DNS_OK);
	t_assert_str(r2.text, "v=spf1 -all");
	t_assert_int(fdns.queries, q + 2);
	t_end();
	dns_free(d2);
	dns_free(d3);
}

/* ---- the blocking entry point ---- */

struct sync_job {
	struct dns *d;
	const char *resolver;	/* own-base mode: make a resolver */
	enum dns_type type;
	const char *name;
	enum dns_status st;
	char text[256];
	size_t n;
	unsigned budget_ms;	/* dns_lookup_sync_until now + this */
	uint64_t took_ms;
	atomic_bool done;
};

static void *
sync_thread(void *arg)
{
	struct sync_job *j = arg;
	struct dns *d = j->d;
	const char *err = NULL;
	char **rr;
	size_t o = 0;

	if (j->resolver != NULL)
		d = dns_new(NULL, j->resolver, 300, 1, &err);
	uint64_t t0 = util_now_ms();
	if (j->budget_ms != 0)
		j->st = dns_lookup_sync_until(d, j->type, j->name,
		    t0 + j->budget_ms, &rr, &j->n);
	else
		j->st = dns_lookup_sync(d, j->type, j->name, &rr, &j->n);
	j->took_ms = util_now_ms() - t0;
	for (size_t i = 0; i < j->n; i++)
		o += (size_t)snprintf(j->text + o, sizeof(j->text) - o, "%s%s",
		    i ? " " : "", rr[i]);
	dns_rr_free(rr, j->n);
	if (j->resolver != NULL)
		dns_free(d);
	atomic_store(&j->done, true);
	return NULL;
}

static void
tick(evutil_socket_t fd, short what, void *arg)
{
}

/* Run the loop (the fake server, the resolver) until every job is done;
 * the tick keeps the loop returning to look. */
static void
run_jobs(struct sync_job *jobs, size_t n, bool close_early, struct dns *d)
{
	struct timeval tv = { 0, 5000 };
	struct event *ev = event_new(base, -1, EV_PERSIST, tick, NULL);
	pthread_t th[8];
	uint64_t start = util_now_ms();
	size_t i, ndone;

	event_add(ev, &tv);
	for (i = 0; i < n; i++)
		pthread_create(&th[i], NULL, sync_thread, &jobs[i]);
	do {
		event_base_loop(base, EVLOOP_ONCE);
		if (close_early && util_now_ms() - start > 50) {
			dns_sync_close(d);
			close_early = false;
		}
		for (ndone = 0, i = 0; i < n; i++)
			ndone += atomic_load(&jobs[i].done);
	} while (ndone < n && util_now_ms() - start < 10000);
	for (i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	event_free(ev);
}

static void
test_sync(struct dns *d, const char *resolver)
{
	struct sync_job jobs[6];
	unsigned q;

	dns_cache_flush();
	memset(jobs, 0, sizeof(jobs));
	jobs[0] = (struct sync_job){ .d = d, .type = DNS_T_TXT,
	    .name = "txt.test" };
	jobs[1] = (struct sync_job){ .d = d, .type = DNS_T_MX,
	    .name = "two.test" };
	jobs[2] = (struct sync_job){ .d = d, .type = DNS_T_PTR,
	    .name = "1.0.0.127.in-addr.arpa" };
	jobs[3] = (struct sync_job){ .d = d, .type = DNS_T_AAAA,
	    .name = "mx1.two.test" };
	jobs[4] = (struct sync_job){ .d = d, .type = DNS_T_A,
	    .name = "nowhere.test" };
	jobs[5] = (struct sync_job){ .d = d, .type = DNS_T_MX,
	    .name = "null.test" };
	t_begin("dns sync from worker threads while the loop runs");
	q = fdns.queries;
	run_jobs(jobs, 6, false, d);
	t_assert_int(jobs[0].st, DNS_OK);
	t_assert_str(jobs[0].text, "v=spf1 -all");
	t_assert_int(jobs[1].st, DNS_OK);
	t_assert_str(jobs[1].text, "mx1.two.test mx2.two.test mx3.two.test");
	t_assert_int(jobs[2].st, DNS_OK);
	t_assert_str(jobs[2].text, "host.test");
	t_assert_int(jobs[3].st, DNS_OK);
	t_assert_str(jobs[3].text, "::1");
	t_assert_int(jobs[4].st, DNS_NXDOMAIN);
	t_assert_int(jobs[4].n, 0);
	t_assert_int(jobs[5].st, DNS_NULLMX);
	t_assert_int(fdns.queries, q + 6);
	t_end();

	t_begin("dns sync shares the loop resolver's cache");
	/* Answered on the worker thread from the cache: no query. */
	memset(jobs, 0, sizeof(jobs));
	jobs[0] = (struct sync_job){ .d = d, .type = DNS_T_MX,
	    .name = "two.test" };
	q = fdns.queries;
	run_jobs(jobs, 1, false, d);
	t_assert_int(jobs[0].st, DNS_OK);
	t_assert_int(fdns.queries, q);
	{
		struct result r;

		memset(&r, 0, sizeof(r));
		dns_txt(d, "txt.test", txt_cb, &r);
		run(&r);
		t_assert_int(r.st, DNS_OK);
		t_assert_int(fdns.queries, q);
	}
	t_end();

	t_begin("dns sync timeout");
	memset(jobs, 0, sizeof(jobs));
	jobs[0] = (struct sync_job){ .d = d, .type = DNS_T_TXT,
	    .name = "silent.test" };
	run_jobs(jobs, 1, false, d);
	t_assert_int(jobs[0].st, DNS_TEMPFAIL);
	t_end();

	t_begin("dns sync own event_base (carteiroctl)");
	memset(jobs, 0, sizeof(jobs));
	jobs[0] = (struct sync_job){ .resolver = resolver, .type = DNS_T_A,
	    .name = "mx1.two.test" };
	jobs[1] = (struct sync_job){ .resolver = resolver, .type = DNS_T_TXT,
	    .name = "silent.test" };
	run_jobs(jobs, 2, false, d);
	t_assert_int(jobs[0].st, DNS_OK);
	t_assert_str(jobs[0].text, "127.0.0.2");
	t_assert_int(jobs[1].st, DNS_TEMPFAIL);
	t_end();

	t_begin("dns sync close releases waiting threads");
	memset(jobs, 0, sizeof(jobs));
	jobs[0] = (struct sync_job){ .d = d, .type = DNS_T_TXT,
	    .name = "silent.test" };
	jobs[1] = (struct sync_job){ .d = d, .type = DNS_T_A,
	    .name = "silent.test" };
	{
		uint64_t t0 = util_now_ms();

		run_jobs(jobs, 2, true, d);
		t_assert(util_now_ms() - t0 < 250);	/* not the timeout */
	}
	t_assert_int(jobs[0].st, DNS_TEMPFAIL);
	t_assert_int(jobs[1].st, DNS_TEMPFAIL);
	/* Later calls that need the wire fail at once; what the cache
	 * holds is still answered. */
	memset(jobs, 0, sizeof(jobs));
	jobs[0] = (struct sync_job){ .d = d, .type = DNS_T_TXT,
	    .name = "two.test" };
	jobs[1] = (struct sync_job){ .d = d, .type = DNS_T_TXT,
	    .name = "txt.test" };
	q = fdns.queries;
	run_jobs(jobs, 2, false, d);
	t_assert_int(jobs[0].st, DNS_TEMPFAIL);
	t_assert_int(jobs[1].st, DNS_OK);
	t_assert_str(jobs[1].text, "v=spf1 -all");
	t_assert_int(fdns.queries, q);
	t_end();
}

/* A deadline far inside the resolver's own timeout (2 s x 2 tries). */
static void
test_sync_deadline(const char *resolver)
{
	struct sync_job jobs[3];
	const char *err = NULL;
	struct dns *d = dns_new(base, resolver, 2000, 2, &err);
	unsigned q;

	t_begin("dns sync deadline: tempfail at the deadline, not the timeout");
	t_assert(d != NULL);
	dns_cache_flush();
	memset(jobs, 0, sizeof(jobs));
	jobs[0] = (struct sync_job){ .d = d, .type = DNS_T_TXT,
	    .name = "silent.test", .budget_ms = 300 };
	jobs[1] = (struct sync_job){ .d = d, .type = DNS_T_A,
	    .name = "silent.test", .budget_ms = 600 };
	/* An answer within the budget is an answer. */
	jobs[2] = (struct sync_job){ .d = d, .type = DNS_T_TXT,
	    .name = "txt.test", .budget_ms = 1000 };
	run_jobs(jobs, 3, false, d);
	t_assert_int(jobs[0].st, DNS_TEMPFAIL);
	t_assert(jobs[0].took_ms >= 290 && jobs[0].took_ms < 900);
	t_assert_int(jobs[1].st, DNS_TEMPFAIL);
	t_assert(jobs[1].took_ms >= 590 && jobs[1].took_ms < 1200);
	t_assert_int(jobs[2].st, DNS_OK);
	t_assert_str(jobs[2].text, "v=spf1 -all");
	t_end();

	t_begin("dns sync deadline spent: no query at all");
	memset(jobs, 0, sizeof(jobs));
	jobs[0] = (struct sync_job){ .d = d, .type = DNS_T_MX,
	    .name = "two.test" };
	q = fdns.queries;
	{
		char **rr;
		size_t n;

		t_assert_int(dns_lookup_sync_until(d, DNS_T_MX, "two.test",
		    util_now_ms() - 1, &rr, &n), DNS_TEMPFAIL);
		t_assert(rr == NULL && n == 0);
	}
	t_assert_int(fdns.queries, q);
	t_end();

	t_begin("dns sync deadline: the resolver still works afterwards");
	/* The given-up queries were cancelled on the loop (no callback into
	 * freed memory: ASan), and the handle goes on. */
	memset(jobs, 0, sizeof(jobs));
	jobs[0] = (struct sync_job){ .d = d, .type = DNS_T_MX,
	    .name = "two.test", .budget_ms = 2000 };
	run_jobs(jobs, 1, false, d);
	t_assert_int(jobs[0].st, DNS_OK);
	t_assert_str(jobs[0].text, "mx1.two.test mx2.two.test mx3.two.test");
	t_end();
	dns_free(d);
}

static void
test_sort(void)
{
	struct dns_mx mx[6] = {
		{ "c", 20 }, { "a", 10 }, { "b", 10 }, { "d", 20 },
		{ "e", 5 }, { "f", 10 },
	};
	int i, firsts[6] = { 0 };

	t_begin("dns mx sort shuffles equal preferences");
	for (i = 0; i < 300; i++) {
		dns_mx_sort(mx, 6);
		t_assert_str(mx[0].host, "e");
		t_assert(mx[1].pref == 10 && mx[3].pref == 10);
		t_assert(mx[4].pref == 20 && mx[5].pref == 20);
		firsts[mx[1].host[0] - 'a']++;
	}
	t_assert(firsts[0] > 0 && firsts[1] > 0 && firsts[5] > 0);
	t_end();
}

int
main(void)
{
	struct dns *d;
	const char *err = NULL;
	char resolver[64];

	base = event_base_new();
	fake_dns_start(&fdns, base, zone, sizeof(zone) / sizeof(zone[0]));
	fdns.soa_ttl = fdns.soa_min = 60;
	fdns.ttl = zone_ttl;
	snprintf(resolver, sizeof(resolver), "127.0.0.1:%u", fdns.port);

	t_begin("dns new bad resolver");
	t_assert(dns_new(base, "nonsense:x:y", 0, 0, &err) == NULL);
	t_end();

	d = dns_new(base, resolver, 300, 1, &err);
	t_begin("dns new");
	t_assert(d != NULL);
	t_end();
	if (d == NULL)
		return t_exit();
	test_mx(d);
	test_addr(d);
	test_ttl(d);
	test_txt_cancel(d);
	test_sort();
	dns_free(d);
	/* Let the fake server read what is still in its socket. */
	event_base_loop(base, EVLOOP_NONBLOCK);
	test_shared(resolver);
	/* A second resolver for the thread tests: the first has a request
	 * pending on purpose (test_txt_cancel). */
	d = dns_new(base, resolver, 300, 1, &err);
	test_sync(d, resolver);
	dns_free(d);
	test_sync_deadline(resolver);
	fake_dns_stop(&fdns);
	event_base_free(base);
	return t_exit();
}
