/*
 * The relay (smtpd/relay*.c) end to end inside one process: queue rows
 * written with the store API, the real relay on the test's loop, fake DNS
 * and fake MXes on 127.0.0.x from relay_fakes.h. Every case checks the
 * exact queue and mailbox state the relay left in the store, and what
 * the fake MXes received.
 */
#include "smtpd/relay.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "relay_fakes.h"
#include "common/config.h"
#include "common/log.h"
#include "common/notify.h"
#include "common/util.h"
#include "store/queue.h"
#include "store/store.h"
#include "t.h"

#define RETRY_FIRST	600

static const struct fake_rr zone[] = {
	{ "one.test", FAKE_MX, "10 mx1.one.test", 0 },
	{ "mx1.one.test", FAKE_A, "127.0.0.2", 0 },
	/* backup.test: the primary on .3 says 421, the backup on .4 takes */
	{ "backup.test", FAKE_MX, "10 mx1.backup.test", 0 },
	{ "backup.test", FAKE_MX, "20 mx2.backup.test", 0 },
	{ "mx1.backup.test", FAKE_A, "127.0.0.3", 0 },
	{ "mx2.backup.test", FAKE_A, "127.0.0.4", 0 },
	/* down.test: 421 on .3, nobody listening on .5 */
	{ "down.test", FAKE_MX, "10 mx1.down.test", 0 },
	{ "down.test", FAKE_MX, "20 mx2.down.test", 0 },
	{ "mx1.down.test", FAKE_A, "127.0.0.3", 0 },
	{ "mx2.down.test", FAKE_A, "127.0.0.5", 0 },
};

static char tdir[256];
static char dbpath[300];
static char resolver[64];
static struct event_base *base;
static struct store *st;		/* the test's own connection */
static struct cfg cfg;
static struct fake_dns fdns;
static struct fake_smtp mx2, mx3, mx4;	/* 127.0.0.2, .3, .4 */
static struct notify *queue_changed;
static unsigned nposts;

/* A Received line only: no Return-Path, so nothing is skipped whatever
 * the store does with the envelope sender. */
static const char body[] =
    "Received: from client.test by mx.example.test; "
    "Thu, 1 Jan 2026 00:00:00 +0000\r\n"
    "From: alice@example.test\r\nSubject: relay test\r\n\r\n"
    "line one\r\n.dot line\r\n";

static void
count_post(void *arg)
{
	nposts++;
}

static void
tick(evutil_socket_t fd, short what, void *arg)
{
}

/* Run the loop until pred() holds, at most ms. Returns pred(). */
static bool
run_until(bool (*pred)(void), unsigned ms)
{
	uint64_t deadline = util_now_ms() + ms;
	struct timeval tv = { 0, 10000 };
	struct event *t = event_new(base, -1, EV_PERSIST, tick, NULL);

	event_add(t, &tv);
	while (!pred() && util_now_ms() < deadline)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
	return pred();
}

static bool
never(void)
{
	return false;
}

static void
run_for(unsigned ms)
{
	(void)run_until(never, ms);
}

static size_t
queue_count(void)
{
	int64_t *ids = NULL;
	size_t n = 0;

	t_assert_int(store_queue_ids(st, &ids, &n), 0);
	free(ids);
	return n;
}

static bool
queue_empty(void)
{
	return queue_count() == 0;
}

static size_t
mailbox_count(const char *address)
{
	struct store_msg *msgs = NULL;
	size_t n = 0;

	t_assert_int(store_mailbox_list(st, address, &msgs, &n), 0);
	free(msgs);
	return n;
}

/* The newest message of a mailbox, NUL-terminated (caller frees). */
static char *
mailbox_last(const char *address)
{
	struct store_msg *msgs = NULL;
	struct store_body *b;
	size_t n = 0;
	uint64_t size = 0;
	char *s;

	t_assert_int(store_mailbox_list(st, address, &msgs, &n), 0);
	if (n == 0)
		return xstrdup("");
	b = store_body_open(st, msgs[n - 1].body_id, &size);
	free(msgs);
	t_assert(b != NULL);
	s = xcalloc(1, size + 1);
	t_assert(store_body_read(b, 0, s, size) == (ssize_t)size);
	store_body_close(b);
	return s;
}

/* Queue body from sender to remote rcpts; the queue id. */
static int64_t
enqueue(const char *from, const char *const *rcpts, size_t n)
{
	struct store_delivery d;
	int64_t body_id = 0, qid = 0;

	memset(&d, 0, sizeof(d));
	d.fd = -1;
	d.prefix = "";
	d.mail_from = from;
	d.remote = rcpts;
	d.nremote = n;
	t_assert_int(store_deliver_mem(st, &d, body, strlen(body), &body_id,
	    &qid), 0);
	t_assert(qid > 0);
	return qid;
}

static void
fakes_reset(void)
{
	struct fake_smtp *f[] = { &mx2, &mx3, &mx4 };

	for (size_t i = 0; i < 3; i++) {
		f[i]->conns = f[i]->msgs = 0;
		f[i]->from[0] = f[i]->rcpts[0] = '\0';
		evbuffer_drain(f[i]->data, evbuffer_get_length(f[i]->data));
	}
	nposts = 0;
}

static struct relay *
relay_start(void)
{
	struct relay *r = relay_new(base, &cfg, queue_changed);

	t_assert(r != NULL);
	if (r == NULL)
		exit(1);
	return r;
}

static void
test_primary(void)
{
	const char *const rcpts[] = { "bob@one.test", "carol@one.test" };
	struct relay *r;
	char *got;

	t_begin("relay: delivery to the primary MX empties the queue");
	fakes_reset();
	enqueue("alice@example.test", rcpts, 2);
	t_assert_int(queue_count(), 1);
	r = relay_start();
	t_assert(run_until(queue_empty, 10000));
	t_assert_int(mx2.conns, 1);
	t_assert_int(mx2.msgs, 1);
	t_assert_str(mx2.from, "alice@example.test");
	t_assert_str(mx2.rcpts, "bob@one.test,carol@one.test,");
	got = fake_smtp_data(&mx2);
	t_assert_str(got, body);
	free(got);
	t_assert_int(queue_count(), 0);
	/* A success owes no DSN. */
	t_assert_int(mailbox_count("alice@example.test"), 0);
	relay_free(r);
	t_end();
}

static void
test_backup(void)
{
	const char *const rcpts[] = { "dave@backup.test" };
	struct relay *r;
	char *got;

	t_begin("relay: the backup MX takes it when the primary says 4xx");
	fakes_reset();
	enqueue("alice@example.test", rcpts, 1);
	r = relay_start();
	t_assert(run_until(queue_empty, 10000));
	t_assert_int(mx3.conns, 1);	/* tried first: 421 */
	t_assert_int(mx3.msgs, 0);
	t_assert_int(mx4.conns, 1);
	t_assert_int(mx4.msgs, 1);
	t_assert_str(mx4.from, "alice@example.test");
	t_assert_str(mx4.rcpts, "dave@backup.test,");
	got = fake_smtp_data(&mx4);
	t_assert_str(got, body);
	free(got);
	t_assert_int(mailbox_count("alice@example.test"), 0);
	relay_free(r);
	t_end();
}

static int64_t defer_qid;

static bool
attempted_once(void)
{
	struct store_queue_msg m;
	bool ok;

	memset(&m, 0, sizeof(m));
	if (store_queue_load(st, defer_qid, &m) != 0)
		return false;
	ok = m.attempts == 1;
	store_queue_msg_clear(&m);
	return ok;
}

static void
test_defer(void)
{
	const char *const rcpts[] = { "erin@down.test" };
	struct store_queue_msg m;
	struct relay *r;
	int64_t t0, t1;

	t_begin("relay: no MX answers: deferred with the retry time");
	fakes_reset();
	t0 = util_time();
	defer_qid = enqueue("alice@example.test", rcpts, 1);
	r = relay_start();
	t_assert(run_until(attempted_once, 15000));
	t1 = util_time();
	/* Not tried again before its time. */
	run_for(200);
	t_assert_int(mx3.conns, 1);
	memset(&m, 0, sizeof(m));
	t_assert_int(store_queue_load(st, defer_qid, &m), 0);
	t_assert_int(m.attempts, 1);
	t_assert(!m.warned);
	t_assert(m.next_attempt >= t0 + RETRY_FIRST);
	t_assert(m.next_attempt <= t1 + RETRY_FIRST);
	t_assert_int(m.nrcpts, 1);
	if (m.nrcpts == 1) {
		t_assert_str(m.rcpts[0].address, "erin@down.test");
		t_assert_int(m.rcpts[0].status, STORE_QUEUE_RCPT_PENDING);
		/* The last MX tried gives the reason. */
		t_assert_str(m.rcpts[0].last_error, "451 4.4.1 "
		    "mx2.down.test[127.0.0.5]: connect 127.0.0.5: "
		    "Connection refused");
	}
	store_queue_msg_clear(&m);
	t_assert_int(queue_count(), 1);
	t_assert_int(mailbox_count("alice@example.test"), 0);
	relay_free(r);
	/* Out of the way of the next cases. */
	t_assert_int(store_queue_delete(st, defer_qid), 0);
	t_end();
}

/* The notify post reaches the loop after the store write the tests wait
 * for, so it is waited for on its own. */
static bool
posted(void)
{
	return nposts >= 1;
}

static bool
alice_has_mail(void)
{
	return mailbox_count("alice@example.test") > 0 && queue_empty();
}

static void
test_bounce(void)
{
	const char *const rcpts[] = { "p5frank@one.test", "grace@one.test" };
	struct relay *r;
	char *dsn;

	t_begin("relay: a 5xx bounces to the local sender, the rest goes");
	fakes_reset();
	enqueue("alice@example.test", rcpts, 2);
	r = relay_start();
	t_assert(run_until(alice_has_mail, 10000));
	t_assert_int(queue_count(), 0);
	t_assert_int(mx2.msgs, 1);
	t_assert_str(mx2.rcpts, "grace@one.test,");
	t_assert_int(mailbox_count("alice@example.test"), 1);
	dsn = mailbox_last("alice@example.test");
	t_assert(strstr(dsn, "From: Mail Delivery System "
	    "<MAILER-DAEMON@mx.example.test>\r\n") != NULL);
	t_assert(strstr(dsn, "Final-Recipient: rfc822; p5frank@one.test\r\n"
	    "Action: failed\r\nStatus: 5.1.1\r\n") != NULL);
	t_assert(strstr(dsn, "Diagnostic-Code: smtp; 550 5.1.1 no such user "
	    "here\r\n") != NULL);
	/* Only the failed recipient is in the report. */
	t_assert(strstr(dsn, "grace@one.test") == NULL);
	free(dsn);
	/* The DSN went into the store: the relay said so on the signal. */
	t_assert(run_until(posted, 5000));
	relay_free(r);
	t_end();
}

static bool
dsn_sent(void)
{
	return mx2.msgs == 1 && queue_empty();
}

static void
test_bounce_remote(void)
{
	const char *const rcpts[] = { "p5henry@one.test" };
	struct relay *r;
	char *dsn;

	t_begin("relay: a DSN for a remote sender is queued and sent with <>");
	fakes_reset();
	enqueue("ivan@one.test", rcpts, 1);
	r = relay_start();
	/* The failed attempt (no DATA: the only RCPT was refused), then
	 * the DSN, queued and sent on at once, over the same connection
	 * (kept after the refused RCPT, RSET before the DSN's MAIL). */
	t_assert(run_until(dsn_sent, 10000));
	t_assert_int(mx2.conns, 1);
	t_assert_int(mx2.msgs, 1);
	t_assert_str(mx2.from, "");
	t_assert_str(mx2.rcpts, "ivan@one.test,");
	dsn = fake_smtp_data(&mx2);
	t_assert(strstr(dsn, "Final-Recipient: rfc822; p5henry@one.test\r\n"
	    "Action: failed\r\n") != NULL);
	free(dsn);
	t_assert_int(queue_count(), 0);
	t_assert(run_until(posted, 5000));
	relay_free(r);
	t_end();
}

static bool
mx2_got_one(void)
{
	return mx2.msgs == 1;
}

static void
test_queue_changed(void)
{
	const char *const rcpts[] = { "judy@one.test" };
	struct relay *r;
	uint64_t t0;

	t_begin("relay: a post on queue-changed starts it before the tick");
	fakes_reset();
	r = relay_start();
	t0 = util_now_ms();
	run_for(50);			/* the start-up scan: nothing due */
	enqueue("alice@example.test", rcpts, 1);
	run_for(250);
	/* Queued behind its back: nothing happens until the tick ... */
	t_assert_int(mx2.conns, 0);
	/* ... or until somebody says the queue changed. */
	notify_post(queue_changed);
	t_assert(run_until(mx2_got_one, 5000));
	t_assert(util_now_ms() - t0 < 1000);	/* the tick is at 1000 */
	t_assert(run_until(queue_empty, 5000));
	relay_free(r);
	t_end();
}

static void
test_bad_store(void)
{
	struct cfg bad = cfg;

	t_begin("relay: relay_new fails cleanly (store, resolver)");
	bad.store.path = (char *)"/nonexistent/dir/mail.db";
	bad.store.locator = bad.store.path;
	t_assert(relay_new(base, &bad, queue_changed) == NULL);
	/* Later: the store and the writer are up, the resolver is not. */
	bad = cfg;
	bad.relay.resolver = (char *)"not an address";
	t_assert(relay_new(base, &bad, queue_changed) == NULL);
	t_end();
}

static void
cleanup(void)
{
	DIR *dir = opendir(tdir);
	struct dirent *e;
	char p[600];

	if (dir != NULL) {
		while ((e = readdir(dir)) != NULL) {
			if (e->d_name[0] == '.' && (e->d_name[1] == '\0' ||
			    (e->d_name[1] == '.' && e->d_name[2] == '\0')))
				continue;
			snprintf(p, sizeof(p), "%s/%s", tdir, e->d_name);
			unlink(p);
		}
		closedir(dir);
	}
	rmdir(tdir);
}

int
main(void)
{
	struct fake_smtp_cfg ok = { 220, "PIPELINING\n8BITMIME", 250, 250 };
	struct fake_smtp_cfg busy = { 421, "PIPELINING", 250, 250 };
	struct fake_smtp probe;
	const char *tmp = getenv("TMPDIR");
	const char *err = NULL;

	log_init("test_relay", 1, getenv("TEST_DEBUG") ? LOG_LVL_DEBUG :
	    LOG_LVL_ERROR);
	/* Short network timeouts for the MX that never answers. */
	setenv("CARTEIRO_RELAY_TIMEOUT_MS", "2000", 1);
	snprintf(tdir, sizeof(tdir), "%s/carteiro-relay-XXXXXX",
	    tmp != NULL ? tmp : "/tmp");
	if (mkdtemp(tdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(dbpath, sizeof(dbpath), "%s/mail.db", tdir);
	st = store_open(dbpath, &err);
	if (st == NULL || store_migrate(st) != 0 ||
	    store_domain_add(st, "example.test") != 0 ||
	    store_user_add(st, "alice@example.test", "x") != 0) {
		fprintf(stderr, "store: %s\n", st ? store_error(st) : err);
		return 1;
	}
	base = event_base_new();
	fake_dns_start(&fdns, base, zone, sizeof(zone) / sizeof(zone[0]));
	snprintf(resolver, sizeof(resolver), "127.0.0.1:%u", fdns.port);
	/* One port for every fake MX (like [relay] mx_port). */
	fake_smtp_start(&probe, base, "127.0.0.2", 0, &ok);
	cfg.relay.mx_port = probe.port;
	fake_smtp_stop(&probe);
	fake_smtp_start(&mx2, base, "127.0.0.2", cfg.relay.mx_port, &ok);
	fake_smtp_start(&mx3, base, "127.0.0.3", cfg.relay.mx_port, &busy);
	fake_smtp_start(&mx4, base, "127.0.0.4", cfg.relay.mx_port, &ok);

	cfg.server.hostname = (char *)"mx.example.test";
	cfg.store.path = dbpath;
	cfg.store.locator = cfg.store.path;
	cfg.relay.resolver = resolver;
	cfg.relay.retry_first = RETRY_FIRST;
	cfg.relay.retry_max = 4 * RETRY_FIRST;
	cfg.relay.queue_lifetime = 5 * 86400;
	cfg.relay.max_connections = 100;
	cfg.relay.max_connections_per_domain = 10;
	cfg.relay.max_messages_per_connection = 100;
	queue_changed = notify_new();
	notify_subscribe(queue_changed, count_post, NULL);

	test_bad_store();
	test_primary();
	test_backup();
	test_defer();
	test_bounce();
	test_bounce_remote();
	test_queue_changed();

	notify_free(queue_changed);
	/* The relay kept connections for reuse until relay_free closed
	 * them: the fakes see the EOF and free their sessions. */
	run_for(200);
	fake_smtp_stop(&mx2);
	fake_smtp_stop(&mx3);
	fake_smtp_stop(&mx4);
	fake_dns_stop(&fdns);
	event_base_free(base);
	store_close(st);
	cleanup();
	return t_exit();
}
