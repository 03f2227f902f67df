/*
 * Unit test for smtpd/inbound.c: the SPF/DKIM/DMARC job runs on worker
 * threads whose lookups go to the loop's resolver (mailauth/dns.h) and
 * its one cache, answered by the in-process fake DNS server; the
 * Authentication-Results header and the DMARC verdict come back on the
 * loop.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relay_fakes.h"
#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "mailauth/dkim.h"
#include "mailauth/dns.h"
#include "smtpd/inbound.h"
#include "t.h"

/* RFC 8463 A.2's ed25519 key, and its key record. */
static const char dkim_seed[] =
    "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";

static const struct fake_rr zone[] = {
	{ "remote.test", FAKE_TXT, "v=spf1 ip4:192.0.2.0/24 -all", 0 },
	{ "_dmarc.remote.test", FAKE_TXT, "v=DMARC1; p=reject", 0 },
	{ "down.test", 0, NULL, FAKE_DROP },
	/* The selector name also carries unrelated TXT records, first in
	 * the answer: only the key record is the key. */
	{ "sel._domainkey.remote.test", FAKE_TXT,
	  "google-site-verification=abc123", 0 },
	{ "sel._domainkey.remote.test", FAKE_TXT, "v=spf1 -all", 0 },
	{ "sel._domainkey.remote.test", FAKE_TXT,
	  "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
	  0 },
	/* RFC 7489 6.6.4: pct=0 under p=reject still quarantines. */
	{ "sampled.test", FAKE_TXT, "v=spf1 -all", 0 },
	{ "_dmarc.sampled.test", FAKE_TXT, "v=DMARC1; p=reject; pct=0", 0 },
};

static const char msg[] =
    "From: Alice <alice@remote.test>\r\n"
    "To: bob@mx.test\r\n"
    "Subject: hi\r\n"
    "\r\n"
    "hello\r\n";

struct result {
	bool done;
	uint64_t at_ms;		/* util_now_ms() of the callback */
	char *headers;
	bool reject;
	char summary[160];
};

static struct event_base *base;
static struct fake_dns fdns;

static void
done_cb(uint64_t token, struct inbound_result *res, void *arg)
{
	struct result *r = arg;

	r->done = true;
	r->at_ms = util_now_ms();
	r->headers = xstrdup(res->headers);
	r->reject = res->reject;
	util_strlcpy(r->summary, res->summary, sizeof(r->summary));
	event_base_loopbreak(base);
}

static void
check_msg(struct inbound *in, const char *ip, const char *from,
    const char *body, struct result *r)
{
	struct inbound_req req = {
		.ip = ip, .helo = "mail.remote.test", .mail_from = from,
		.spool_fd = -1, .mem = (const unsigned char *)body,
		.data_size = strlen(body),
	};
	struct timeval tv = { 10, 0 };

	memset(r, 0, sizeof(*r));
	t_assert(inbound_submit(in, &req, done_cb, r) != 0);
	event_base_loopexit(base, &tv);
	while (!r->done)
		if (event_base_dispatch(base) != 0 || !r->done)
			break;
}

static void
check(struct inbound *in, const char *ip, const char *from,
    struct result *r)
{
	check_msg(in, ip, from, msg, r);
}

/* msg signed by remote.test, selector sel. Caller frees. */
static char *
signed_msg(void)
{
	struct dkim_key *k = dkim_key_load(DKIM_ALG_ED25519, "remote.test",
	    "sel", dkim_seed);
	struct dkim_msg *m = dkim_msg_new();
	char *sig, *out;

	dkim_msg_update(m, msg, sizeof(msg) - 1);
	sig = dkim_sign(m, k, 1790000000);
	out = xasprintf("%s%s", sig, msg);
	free(sig);
	dkim_msg_free(m);
	dkim_key_free(k);
	return out;
}

/* [smtpd] check_timeout: more messages than the pool has threads from a
 * sender whose DNS never answers, then one from a sender whose DNS does,
 * on a resolver that would wait 2 s x 2 tries per lookup. */
#define BUDGET_HOLES	9
static void
test_budget(struct cfg *cfg, const char *resolver)
{
	struct inbound_req req = {
		.ip = "192.0.2.7", .helo = "mail.remote.test",
		.spool_fd = -1, .mem = (const unsigned char *)msg,
		.data_size = sizeof(msg) - 1,
	};
	const char *err = NULL;
	struct dns *d = dns_new(base, resolver, 2000, 2, &err);
	struct result r[BUDGET_HOLES + 1];
	struct inbound *in;
	struct timeval tv = { 10, 0 };
	uint64_t t0;
	int i, ndone;

	t_begin("inbound: check_timeout ends every check; one sender cannot "
	    "hold the pool");
	dns_cache_flush();
	cfg->smtpd.check_timeout = 1;
	in = inbound_new(base, cfg, d);
	memset(r, 0, sizeof(r));
	t0 = util_now_ms();
	for (i = 0; i <= BUDGET_HOLES; i++) {
		req.mail_from = i < BUDGET_HOLES ? "x@down.test" :
		    "alice@remote.test";
		t_assert(inbound_submit(in, &req, done_cb, &r[i]) != 0);
	}
	event_base_loopexit(base, &tv);
	do {
		if (event_base_dispatch(base) != 0)
			break;
		for (ndone = 0, i = 0; i <= BUDGET_HOLES; i++)
			ndone += r[i].done;
	} while (ndone <= BUDGET_HOLES && util_now_ms() - t0 < 10000);
	/* The other sender is not behind the black hole. */
	t_assert(r[BUDGET_HOLES].done);
	t_assert(r[BUDGET_HOLES].at_ms - t0 < 500);
	t_assert_str(r[BUDGET_HOLES].summary, "spf=pass dkim=none dmarc=pass");
	/* The black-holed ones, most held while two ran: temperror at the
	 * budget, not at the resolver's timeouts. */
	for (i = 0; i < BUDGET_HOLES; i++) {
		t_assert(r[i].done);
		t_assert(r[i].at_ms - t0 >= 990 && r[i].at_ms - t0 < 1800);
		t_assert(strncmp(r[i].summary, "spf=temperror", 13) == 0);
		t_assert(r[i].headers != NULL && strstr(r[i].headers,
		    "spf=temperror smtp.mailfrom=") != NULL);
		free(r[i].headers);
	}
	free(r[BUDGET_HOLES].headers);
	t_end();
	inbound_free(in);
	dns_free(d);
	cfg->smtpd.check_timeout = 20;
}

int
main(void)
{
	static struct cfg cfg;
	char resolver[64], tdir[] = "/tmp/carteiro-inbound-XXXXXX", db[128];
	const char *err = NULL;
	struct inbound *in;
	struct result r;
	struct dns *d;
	unsigned q;

	log_init("test_inbound", 1, getenv("TEST_DEBUG") ? LOG_LVL_DEBUG :
	    LOG_LVL_ERROR);
	if (mkdtemp(tdir) == NULL)
		return 1;
	snprintf(db, sizeof(db), "%s/mail.db", tdir);
	cfg.server.hostname = "mx.test";
	cfg.store.path = db;
	cfg.store.locator = cfg.store.path;
	cfg.smtpd.check_timeout = 20;
	t_begin("inbound setup");
	base = event_base_new();
	fake_dns_start(&fdns, base, zone, nitems(zone));
	fdns.soa_ttl = fdns.soa_min = 60;
	snprintf(resolver, sizeof(resolver), "127.0.0.1:%u", fdns.port);
	d = dns_new(base, resolver, 300, 1, &err);
	t_assert(d != NULL);
	t_end();
	if (d == NULL)
		return t_exit();
	in = inbound_new(base, &cfg, d);

	t_begin("inbound: SPF and DMARC pass through the loop's resolver");
	q = fdns.queries;
	check(in, "192.0.2.7", "alice@remote.test", &r);
	t_assert(r.done);
	t_assert_str(r.summary, "spf=pass dkim=none dmarc=pass");
	t_assert(r.headers != NULL && strstr(r.headers,
	    "Authentication-Results: mx.test;\r\n\tspf=pass "
	    "smtp.mailfrom=alice@remote.test;\r\n\tdkim=none;\r\n\t"
	    "dmarc=pass header.from=remote.test\r\n") != NULL);
	t_assert(!r.reject);
	/* SPF TXT and _dmarc TXT. */
	t_assert_int(fdns.queries, q + 2);
	free(r.headers);
	t_end();

	t_begin("inbound: the second message is answered from the cache");
	q = fdns.queries;
	check(in, "198.51.100.1", "alice@remote.test", &r);
	t_assert_str(r.summary, "spf=fail dkim=none dmarc=fail");
	t_assert(r.reject);
	t_assert(r.headers != NULL && strstr(r.headers,
	    "dmarc=fail (p=reject) header.from=remote.test") != NULL);
	t_assert_int(fdns.queries, q);
	free(r.headers);
	t_end();

	t_begin("inbound: the DKIM key is the key record among the selector's "
	    "TXT records");
	{
		char *sm = signed_msg();

		check_msg(in, "198.51.100.1", "alice@remote.test", sm, &r);
		t_assert_str(r.summary, "spf=fail dkim=pass dmarc=pass");
		t_assert(!r.reject);
		t_assert(r.headers != NULL && strstr(r.headers,
		    "dkim=pass (good signature) header.d=remote.test "
		    "header.s=sel") != NULL);
		free(r.headers);
		free(sm);
	}
	t_end();

	t_begin("inbound: pct=0 under p=reject quarantines (RFC 7489 6.6.4)");
	{
		static const char smsg[] =
		    "From: Alice <alice@sampled.test>\r\n"
		    "To: bob@mx.test\r\n"
		    "Subject: hi\r\n"
		    "\r\n"
		    "hello\r\n";

		check_msg(in, "198.51.100.1", "alice@sampled.test", smsg, &r);
		t_assert_str(r.summary, "spf=fail dkim=none dmarc=fail");
		t_assert(!r.reject);
		t_assert(r.headers != NULL && strstr(r.headers,
		    "dmarc=fail (p=reject) header.from=sampled.test\r\n"
		    "X-Carteiro-DMARC: quarantine\r\n") != NULL);
		free(r.headers);
	}
	t_end();

	t_begin("inbound: a silent DNS is a temperror, not a hang");
	check(in, "192.0.2.7", "alice@down.test", &r);
	t_assert(r.done);
	t_assert(strncmp(r.summary, "spf=temperror", 13) == 0);
	free(r.headers);
	t_end();

	t_begin("inbound: freeing with the loop stopped releases workers");
	{
		struct inbound_req req = {
			.ip = "192.0.2.7", .helo = "h.test",
			.mail_from = "alice@down.test", .spool_fd = -1,
			.mem = (const unsigned char *)msg,
			.data_size = sizeof(msg) - 1,
		};
		uint64_t t0;

		memset(&r, 0, sizeof(r));
		t_assert(inbound_submit(in, &req, done_cb, &r) != 0);
		usleep(20000);	/* a worker is waiting on the loop now */
		t0 = util_now_ms();
		inbound_free(in);
		t_assert(util_now_ms() - t0 < 250);
		t_assert(!r.done);	/* cancelled: no callback */
	}
	t_end();
	dns_free(d);
	test_budget(&cfg, resolver);
	fake_dns_stop(&fdns);
	event_base_free(base);
	rmdir(tdir);
	return t_exit();
}
