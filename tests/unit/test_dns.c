/* Unit tests for mailauth/dns.c against the in-process fake DNS server. */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "relay_fakes.h"
#include "mailauth/dns.h"
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
};

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
	test_txt_cancel(d);
	test_sort();
	dns_free(d);
	fake_dns_stop(&fdns);
	event_base_free(base);
	return t_exit();
}
