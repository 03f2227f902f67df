/*
 * smtpd/delivery.c: jobs go in on the loop, come back through callbacks,
 * and land in a real store (temp dir) byte-exact; group commit, quota,
 * cancel, a bad job among good ones, and delivery_free draining the queue.
 */
#include "smtpd/delivery.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/config.h"
#include "common/log.h"
#include "common/notify.h"
#include "common/util.h"
#include "store/store.h"
#include "t.h"

#define NJOBS_MAX 256

static char tdir[256];
static char dbpath[300];
static struct event_base *base;
static struct store *st;		/* the test's own connection */
static struct cfg cfg;

struct result {
	bool called;
	enum delivery_result res;
	int64_t queue_id;
	uint64_t token;
};
static struct result results[NJOBS_MAX];
static unsigned ncalled;

static void
done_cb(uint64_t token, enum delivery_result res, int64_t queue_id,
    void *arg)
{
	struct result *r = arg;

	t_assert(!r->called);
	r->called = true;
	r->res = res;
	r->queue_id = queue_id;
	t_assert_int(token, r->token);
	ncalled++;
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* Run the loop until want callbacks arrived or d has nothing pending. */
static void
run_until(struct delivery *d, unsigned want)
{
	uint64_t deadline = util_now_ms() + 30000;
	struct timeval tv = { 0, 50000 };
	struct event *tick;

	tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	event_add(tick, &tv);
	while ((ncalled < want || delivery_pending(d) > 0) &&
	    util_now_ms() < deadline)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(tick);
	t_assert(util_now_ms() < deadline);
}

static void
reset_results(void)
{
	memset(results, 0, sizeof(results));
	ncalled = 0;
}

/* A spool fd holding data. */
static int
spool_with(const void *data, size_t len)
{
	int fd = delivery_spool_open(tdir);

	t_assert(fd >= 0);
	t_assert(write(fd, data, len) == (ssize_t)len);
	return fd;
}

static uint64_t
submit(struct delivery *d, unsigned slot, const char *prefix,
    const void *data, size_t len, const char *const *local, size_t nlocal,
    const char *const *remote, size_t nremote)
{
	struct delivery_job job;
	char msgid[32];

	snprintf(msgid, sizeof(msgid), "test%u", slot);
	memset(&job, 0, sizeof(job));
	job.spool_fd = spool_with(data, len);
	job.data_size = len;
	job.prefix = prefix;
	job.prefix_len = strlen(prefix);
	job.mail_from = "sender@remote.test";
	job.local = local;
	job.nlocal = nlocal;
	job.remote = remote;
	job.nremote = nremote;
	job.msgid = msgid;
	results[slot].token = delivery_submit(d, &job, done_cb, &results[slot]);
	t_assert(results[slot].token != 0);
	return results[slot].token;
}

/* Every message of a mailbox, concatenated in arrival order with a '|'
 * after each (caller frees), and the count. */
static char *
mailbox_dump(const char *address, size_t *n_r)
{
	struct store_msg *msgs = NULL;
	size_t n = 0, len = 0;
	char *out = xmalloc(1);

	t_assert_int(store_mailbox_list(st, address, &msgs, &n), 0);
	for (size_t i = 0; i < n; i++) {
		struct store_body *b;
		uint64_t size = 0, off = 0;
		ssize_t r;

		b = store_message_open(st, msgs[i].id, &size);
		t_assert(b != NULL);
		if (b == NULL)
			continue;
		t_assert_int(size, msgs[i].size);
		out = xrealloc(out, len + size + 2);
		while (off < size && (r = store_body_read(b, off, out + len +
		    off, (size_t)(size - off))) > 0)
			off += (uint64_t)r;
		t_assert_int(off, size);
		len += size;
		out[len++] = '|';
		store_body_close(b);
	}
	out[len] = '\0';
	free(msgs);
	*n_r = n;
	return out;
}

static size_t
mailbox_count(const char *address)
{
	size_t n;

	free(mailbox_dump(address, &n));
	return n;
}

static struct delivery *
new_delivery(void)
{
	struct delivery *d = delivery_new(base, &cfg);

	t_assert(d != NULL);
	if (d == NULL)
		exit(1);
	return d;
}

static const char *const alice[] = { "alice@example.test" };
static const char *const bob[] = { "bob@example.test" };
static const char *const both[] = { "alice@example.test",
    "bob@example.test" };
static const char *const carol[] = { "carol@example.test" };
static const char *const ghost[] = { "ghost@example.test" };
static const char *const far[] = { "x@remote.test", "y@other.test" };

static void
test_basic(void)
{
	struct delivery *d;
	struct delivery_job job;
	char *dump, *big, *want;
	size_t n, biglen = 3 * STORE_CHUNK_SIZE + 1234;
	/* The store adds the Return-Path line (mailbox.return_path). */
	const char *rp = "Return-Path: <sender@remote.test>\r\n";
	const char *prefix = "Received: by test\r\n";
	const char *data = "Subject: hi\r\n\r\n8bit \xc3\xa9\r\n..dot\r\n";

	t_begin("delivery: byte-exact, multi-chunk, two rcpts, remote");
	reset_results();
	d = new_delivery();
	submit(d, 0, prefix, data, strlen(data), alice, 1, NULL, 0);
	big = xmalloc(biglen);
	for (size_t i = 0; i < biglen; i++)
		big[i] = (char)(i * 7 + i / 251);
	submit(d, 1, "", big, biglen, both, 2, NULL, 0);
	submit(d, 2, prefix, data, strlen(data), carol, 1, far, 2);
	/* submission with the sending log kept in the same transaction */
	memset(&job, 0, sizeof(job));
	job.spool_fd = spool_with(data, strlen(data));
	job.data_size = strlen(data);
	job.mail_from = "carol@example.test";
	job.remote = far;
	job.nremote = 2;
	job.auth_user = "carol@example.test";
	job.count_sent = true;
	results[3].token = delivery_submit(d, &job, done_cb, &results[3]);
	run_until(d, 4);
	t_assert(results[3].called && results[3].res == DELIVERY_OK);
	t_assert(results[3].queue_id > results[2].queue_id);
	t_assert_int(store_sent_count(st, "carol@example.test", 0), 2);
	t_assert(results[0].called && results[0].res == DELIVERY_OK);
	t_assert(results[1].called && results[1].res == DELIVERY_OK);
	t_assert(results[2].called && results[2].res == DELIVERY_OK);
	t_assert_int(results[0].queue_id, 0);
	t_assert(results[2].queue_id > 0);
	delivery_free(d);

	dump = mailbox_dump("alice@example.test", &n);
	t_assert_int(n, 2);
	want = xmalloc(2 * strlen(rp) + strlen(prefix) + strlen(data) +
	    biglen + 3);
	n = 0;
	memcpy(want + n, rp, strlen(rp));
	n += strlen(rp);
	memcpy(want + n, prefix, strlen(prefix));
	n += strlen(prefix);
	memcpy(want + n, data, strlen(data));
	n += strlen(data);
	want[n++] = '|';
	memcpy(want + n, rp, strlen(rp));
	n += strlen(rp);
	memcpy(want + n, big, biglen);
	n += biglen;
	want[n++] = '|';
	t_assert(memcmp(dump, want, n) == 0);
	free(dump);
	dump = mailbox_dump("bob@example.test", &n);
	t_assert_int(n, 1);
	t_assert(memcmp(dump, rp, strlen(rp)) == 0);
	t_assert(memcmp(dump + strlen(rp), big, biglen) == 0);
	free(dump);
	t_assert_int(mailbox_count("carol@example.test"), 1);
	free(want);
	free(big);
	t_end();
}

static void
test_group_commit(void)
{
	struct delivery *d;
	uint64_t batches, jobs, held;
	char data[64];
	size_t before = mailbox_count("alice@example.test");

	t_begin("delivery: 50 jobs at once share transactions");
	reset_results();
	d = new_delivery();
	for (unsigned i = 0; i < 50; i++) {
		snprintf(data, sizeof(data), "Subject: %u\r\n\r\nbody\r\n", i);
		submit(d, i, "", data, strlen(data), alice, 1, NULL, 0);
	}
	run_until(d, 50);
	delivery_stats(d, &batches, &jobs);
	t_assert_int(jobs, 50);
	t_assert(batches >= 1 && batches < 50);
	printf("# 50 jobs in %llu transactions\n", (unsigned long long)batches);
	for (unsigned i = 0; i < 50; i++)
		t_assert(results[i].called && results[i].res == DELIVERY_OK);
	t_assert_int(mailbox_count("alice@example.test"), before + 50);

	/* Held: everything submitted meanwhile is exactly one commit. */
	reset_results();
	delivery_hold(d, true);
	for (unsigned i = 0; i < 50; i++)
		submit(d, i, "", "x\r\n", 3, alice, 1, NULL, 0);
	delivery_hold(d, false);
	run_until(d, 50);
	delivery_stats(d, &held, NULL);
	t_assert_int(held, batches + 1);
	delivery_free(d);
	t_assert_int(mailbox_count("alice@example.test"), before + 100);
	t_end();
}

static void
test_quota(void)
{
	struct delivery *d;
	uint64_t b0, b1;
	char body[2000];
	size_t na = mailbox_count("alice@example.test");

	t_begin("delivery: quota fails one job, not its batch");
	reset_results();
	memset(body, 'q', sizeof(body));
	/* bob has 0 used (fresh user) */
	t_assert_int(store_user_set_quota(st, "dave@example.test", 3000), 0);
	d = new_delivery();
	delivery_hold(d, true);
	submit(d, 0, "", "a\r\n", 3, alice, 1, NULL, 0);
	submit(d, 1, "", body, sizeof(body), (const char *const[]){
	    "dave@example.test" }, 1, NULL, 0);
	/* 2000 + 2000 > 3000: over only counting the first job of this
	 * very batch, so the check must see the transaction's own writes. */
	submit(d, 2, "", body, sizeof(body), (const char *const[]){
	    "dave@example.test" }, 1, NULL, 0);
	/* one of two recipients over quota: the whole job is refused */
	submit(d, 3, "", body, sizeof(body), (const char *const[]){
	    "alice@example.test", "dave@example.test" }, 2, NULL, 0);
	submit(d, 4, "", "c\r\n", 3, alice, 1, NULL, 0);
	delivery_stats(d, &b0, NULL);
	delivery_hold(d, false);
	run_until(d, 5);
	delivery_stats(d, &b1, NULL);
	t_assert_int(b1 - b0, 1);
	t_assert(results[0].res == DELIVERY_OK);
	t_assert(results[1].res == DELIVERY_OK);
	t_assert(results[2].res == DELIVERY_QUOTA);
	t_assert(results[3].res == DELIVERY_QUOTA);
	t_assert(results[4].res == DELIVERY_OK);
	delivery_free(d);
	t_assert_int(mailbox_count("dave@example.test"), 1);
	t_assert_int(mailbox_count("alice@example.test"), na + 2);
	t_end();
}

static void
test_bad_job(void)
{
	struct delivery *d;
	uint64_t tok;
	size_t na = mailbox_count("alice@example.test");
	struct delivery_job job;

	t_begin("delivery: a failing job never fails the others");
	reset_results();
	d = new_delivery();
	delivery_hold(d, true);
	submit(d, 0, "", "a\r\n", 3, alice, 1, NULL, 0);
	submit(d, 1, "", "g\r\n", 3, ghost, 1, NULL, 0);	/* no such user */
	/* spool shorter than data_size */
	memset(&job, 0, sizeof(job));
	job.spool_fd = spool_with("short", 5);
	job.data_size = 5000;
	job.prefix = "";
	job.mail_from = "";
	job.local = alice;
	job.nlocal = 1;
	tok = delivery_submit(d, &job, done_cb, &results[2]);
	results[2].token = tok;
	submit(d, 3, "", "b\r\n", 3, alice, 1, NULL, 0);
	delivery_hold(d, false);
	run_until(d, 4);
	t_assert(results[0].res == DELIVERY_OK);
	t_assert(results[1].res == DELIVERY_TEMPFAIL);
	t_assert(results[2].res == DELIVERY_TEMPFAIL);
	t_assert(results[3].res == DELIVERY_OK);
	delivery_free(d);
	t_assert_int(mailbox_count("alice@example.test"), na + 2);
	t_end();
}

static void
test_cancel(void)
{
	struct delivery *d;
	uint64_t tok;
	size_t na = mailbox_count("alice@example.test");

	t_begin("delivery: cancel drops the callback, keeps the mail");
	reset_results();
	d = new_delivery();
	delivery_hold(d, true);
	tok = submit(d, 0, "", "c\r\n", 3, alice, 1, NULL, 0);
	submit(d, 1, "", "d\r\n", 3, alice, 1, NULL, 0);
	delivery_cancel(d, tok);
	delivery_cancel(d, 987654);	/* unknown token: ignored */
	t_assert_int(delivery_pending(d), 2);
	delivery_hold(d, false);
	run_until(d, 1);
	t_assert(!results[0].called);
	t_assert(results[1].called && results[1].res == DELIVERY_OK);
	t_assert_int(ncalled, 1);
	t_assert_int(delivery_pending(d), 0);
	delivery_free(d);
	t_assert_int(mailbox_count("alice@example.test"), na + 2);
	t_end();
}

static unsigned nposts;

static void
count_post(void *arg)
{
	t_assert(arg == &nposts);
	nposts++;
}

static void
test_notify(void)
{
	struct delivery *d;
	struct notify *n = notify_new();

	t_begin("delivery: queued remote mail posts queue-changed, local not");
	reset_results();
	notify_subscribe(n, count_post, &nposts);
	nposts = 0;
	d = new_delivery();
	delivery_set_notify(d, n);
	submit(d, 0, "", "l\r\n", 3, alice, 1, NULL, 0);
	run_until(d, 1);
	t_assert(results[0].res == DELIVERY_OK && results[0].queue_id == 0);
	t_assert_int(nposts, 0);
	submit(d, 1, "", "r\r\n", 3, NULL, 0, far, 2);
	run_until(d, 2);
	t_assert(results[1].res == DELIVERY_OK && results[1].queue_id > 0);
	t_assert_int(nposts, 1);
	/* A refused job queues nothing. */
	submit(d, 2, "", "g\r\n", 3, ghost, 1, far, 2);
	run_until(d, 3);
	t_assert(results[2].res == DELIVERY_TEMPFAIL);
	t_assert_int(nposts, 1);
	delivery_free(d);
	notify_free(n);
	t_end();
}

static void
test_free_drains(void)
{
	struct delivery *d;
	size_t nb = mailbox_count("bob@example.test");

	t_begin("delivery: delivery_free commits every queued job");
	reset_results();
	d = new_delivery();
	delivery_hold(d, true);
	for (unsigned i = 0; i < 20; i++)
		submit(d, i, "", "z\r\n", 3, bob, 1, NULL, 0);
	delivery_free(d);	/* lifts the hold, drains, joins */
	t_assert_int(ncalled, 0);
	t_assert_int(mailbox_count("bob@example.test"), nb + 20);
	t_end();
}

static void
test_spool(void)
{
	DIR *dir;
	struct dirent *e;
	char buf[8];
	int fd, named = 0;

	t_begin("delivery: spool files are anonymous");
	fd = delivery_spool_open(tdir);
	t_assert(fd >= 0);
	t_assert(write(fd, "abc", 3) == 3);
	t_assert(pread(fd, buf, 3, 0) == 3 && memcmp(buf, "abc", 3) == 0);
	dir = opendir(tdir);
	while ((e = readdir(dir)) != NULL)
		if (strncmp(e->d_name, ".spool", 6) == 0)
			named++;
	closedir(dir);
	t_assert_int(named, 0);
	close(fd);
	t_assert(delivery_spool_open("/nonexistent/dir") == -1);
	t_end();
}

static void
test_spool_recycled(void)
{
	struct delivery *d;
	struct stat sb;
	char big[10000], buf[4];
	int fd;

	t_begin("delivery: recycled spool files come back empty");
	reset_results();
	memset(big, 'r', sizeof(big));
	d = new_delivery();
	submit(d, 0, "", big, sizeof(big), alice, 1, NULL, 0);
	run_until(d, 1);
	t_assert(results[0].res == DELIVERY_OK);
	fd = delivery_spool_open(tdir);
	t_assert(fd >= 0);
	t_assert(fstat(fd, &sb) == 0 && sb.st_size == 0 && sb.st_nlink == 0);
	t_assert_int(lseek(fd, 0, SEEK_CUR), 0);
	t_assert(write(fd, "xyz", 3) == 3);
	t_assert(pread(fd, buf, 4, 0) == 3 && memcmp(buf, "xyz", 3) == 0);
	close(fd);
	delivery_free(d);
	t_end();
}

static void
test_bad_store(void)
{
	struct cfg bad;

	t_begin("delivery: delivery_new fails cleanly without a store");
	memset(&bad, 0, sizeof(bad));
	bad.store.path = (char *)"/nonexistent/dir/mail.db";
	bad.store.locator = bad.store.path;
	t_assert(delivery_new(base, &bad) == NULL);
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
	const char *tmp = getenv("TMPDIR");
	const char *err = NULL;
	int rc;

	log_init("test_delivery", 1, getenv("TEST_DEBUG") ? LOG_LVL_DEBUG :
	    LOG_LVL_ERROR);
	snprintf(tdir, sizeof(tdir), "%s/carteiro-delivery-XXXXXX",
	    tmp != NULL ? tmp : "/tmp");
	if (mkdtemp(tdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(dbpath, sizeof(dbpath), "%s/mail.db", tdir);
	cfg.store.path = dbpath;
	cfg.store.locator = cfg.store.path;
	st = store_open(dbpath, &err);
	if (st == NULL || store_migrate(st) != 0) {
		fprintf(stderr, "store: %s\n", st ? store_error(st) : err);
		return 1;
	}
	if (store_domain_add(st, "example.test") != 0 ||
	    store_user_add(st, "alice@example.test", "x") != 0 ||
	    store_user_add(st, "bob@example.test", "x") != 0 ||
	    store_user_add(st, "carol@example.test", "x") != 0 ||
	    store_user_add(st, "dave@example.test", "x") != 0) {
		fprintf(stderr, "store setup: %s\n", store_error(st));
		return 1;
	}
	base = event_base_new();

	test_spool();
	test_bad_store();
	test_basic();
	test_group_commit();
	test_quota();
	test_bad_job();
	test_cancel();
	test_notify();
	test_free_drains();
	test_spool_recycled();

	event_base_free(base);
	store_close(st);
	cleanup();
	rc = t_exit();
	return rc;
}
