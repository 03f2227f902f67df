/*
 * Store micro-benchmark (run by bench/store/run, never by scripts/test):
 * the disk's fsync ceiling, deliveries/s of 4 KB messages to one local
 * user with one transaction per delivery and with group commit, and the
 * write-lock hold of a POP3-style delete of 10,000 messages plus the gc
 * batches that follow. Usage: store_bench [DIR] (default: a new directory
 * under $TMPDIR or /tmp; use a directory on the disk the store will use).
 */
#include "store/store.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BENCH_MSG_SIZE 4096
#define BENCH_PHASE_MS 3000		/* per throughput phase */
#define BENCH_BATCH 100			/* deliveries per transaction */
#define BENCH_DELETE 10000		/* messages in the delete test */
#define BENCH_GC_BATCH 100		/* bodies per store_gc call */

static const char *const bench_rcpt[] = { "alice@bench.test" };

static void bench_die(struct store *, const char *) __attribute__((noreturn));
static double bench_fsync(const char *);
static double bench_deliver(struct store *, int, unsigned, unsigned *);

static void
bench_die(struct store *st, const char *what)
{
	fprintf(stderr, "store_bench: %s: %s\n", what,
	    st != NULL ? store_error(st) : strerror(errno));
	exit(1);
}

/* write + fdatasync of 4 KB in place, for BENCH_PHASE_MS: ops/s. */
static double
bench_fsync(const char *dir)
{
	char *path = xasprintf("%s/fsync.test", dir), buf[BENCH_MSG_SIZE];
	uint64_t start, now;
	unsigned n = 0;
	int fd;

	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		bench_die(NULL, path);
	memset(buf, 'f', sizeof(buf));
	start = util_now_ms();
	do {
		if (pwrite(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf) ||
		    fdatasync(fd) < 0)
			bench_die(NULL, "fsync test");
		n++;
		now = util_now_ms();
	} while (now - start < BENCH_PHASE_MS / 2);
	close(fd);
	unlink(path);
	free(path);
	return n * 1000.0 / (double)(now - start);
}

/*
 * Deliver 4 KB messages from a spool file to one user, `batch` per
 * transaction, for BENCH_PHASE_MS (or until *done_r messages when it is
 * > 0 on entry). Returns deliveries/s; *done_r the number delivered.
 */
static double
bench_deliver(struct store *st, int spool_fd, unsigned batch,
    unsigned *done_r)
{
	/* The store adds "Return-Path: <bench@remote.test>" (mail_from). */
	static const char prefix[] =
	    "Received: from bench by bench.test; Thu, 1 Jan 2026 00:00:00 "
	    "+0000\r\n";
	struct store_delivery d = {
		.prefix = prefix,
		.prefix_len = sizeof(prefix) - 1,
		.fd = spool_fd,
		.data_size = BENCH_MSG_SIZE - (sizeof(prefix) - 1),
		.mail_from = "bench@remote.test",
		.local = bench_rcpt,
		.nlocal = 1,
	};
	unsigned n = 0, target = *done_r;
	uint64_t start = util_now_ms(), now;

	do {
		if (store_begin(st) < 0)
			bench_die(st, "begin");
		for (unsigned i = 0; i < batch; i++)
			if (store_deliver(st, &d, NULL, NULL) < 0)
				bench_die(st, "deliver");
		if (store_commit(st) < 0)
			bench_die(st, "commit");
		n += batch;
		now = util_now_ms();
	} while (target > 0 ? n < target : now - start < BENCH_PHASE_MS);
	*done_r = n;
	return n * 1000.0 / (double)(now - start > 0 ? now - start : 1);
}

int
main(int argc, char **argv)
{
	char *dir, *path, *db, data[BENCH_MSG_SIZE];
	const char *err, *tmp;
	struct store_msg *msgs;
	struct store *st;
	unsigned n, freed, batches = 0;
	uint64_t t0, t, del_ms, gc_worst = 0, gc_total = 0;
	double fs, r1, r100;
	size_t nmsgs, deleted;
	int64_t *ids;
	int fd;

	if (argc > 1)
		dir = xstrdup(argv[1]);
	else {
		tmp = getenv("TMPDIR");
		dir = xasprintf("%s/store_bench.XXXXXX",
		    tmp != NULL ? tmp : "/tmp");
		if (mkdtemp(dir) == NULL)
			bench_die(NULL, "mkdtemp");
	}
	printf("store_bench: dir=%s message=%d bytes\n", dir, BENCH_MSG_SIZE);

	path = xasprintf("%s/spool", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	memset(data, 'm', sizeof(data));
	if (fd < 0 || write(fd, data, sizeof(data)) != (ssize_t)sizeof(data))
		bench_die(NULL, path);
	unlink(path);
	free(path);

	db = xasprintf("%s/bench.db", dir);
	unlink(db);
	st = store_open(db, &err);
	if (st == NULL) {
		fprintf(stderr, "store_bench: %s\n", err);
		return 1;
	}
	if (store_migrate(st) < 0 || store_domain_add(st, "bench.test") < 0 ||
	    store_user_add(st, bench_rcpt[0], "x") < 0)
		bench_die(st, "setup");

	fs = bench_fsync(dir);
	printf("fsync ceiling:          %8.0f ops/s (4 KB pwrite + fdatasync)"
	    "\n", fs);
	fflush(stdout);

	n = 0;
	r1 = bench_deliver(st, fd, 1, &n);
	printf("deliver, 1 per tx:      %8.0f deliveries/s (%u in %d ms)\n",
	    r1, n, BENCH_PHASE_MS);
	fflush(stdout);
	n = 0;
	r100 = bench_deliver(st, fd, BENCH_BATCH, &n);
	printf("deliver, %d per tx:    %8.0f deliveries/s (%u in %d ms)\n",
	    BENCH_BATCH, r100, n, BENCH_PHASE_MS);
	fflush(stdout);

	/* A fresh mailbox of exactly BENCH_DELETE messages. */
	if (store_user_del(st, bench_rcpt[0]) < 0 ||
	    store_user_add(st, bench_rcpt[0], "x") < 0)
		bench_die(st, "reset user");
	while (store_gc(st, 1000, &freed) == 0 && freed > 0)
		;
	n = BENCH_DELETE;
	bench_deliver(st, fd, 500, &n);
	if (store_mailbox_list(st, bench_rcpt[0], &msgs, &nmsgs) != 0)
		bench_die(st, "list");
	ids = xmalloc(nmsgs * sizeof(*ids));
	for (size_t i = 0; i < nmsgs; i++)
		ids[i] = msgs[i].id;
	free(msgs);

	/* Wall time of the call = BEGIN IMMEDIATE .. COMMIT (incl. fsync):
	 * the time another writer would have to wait. */
	t0 = util_now_ms();
	if (store_mailbox_delete(st, bench_rcpt[0], ids, nmsgs, &deleted) < 0)
		bench_die(st, "delete");
	del_ms = util_now_ms() - t0;
	free(ids);
	for (;;) {
		t0 = util_now_ms();
		if (store_gc(st, BENCH_GC_BATCH, &freed) < 0)
			bench_die(st, "gc");
		t = util_now_ms() - t0;
		if (freed == 0)
			break;
		batches++;
		gc_total += t;
		if (t > gc_worst)
			gc_worst = t;
	}
	printf("delete %zu messages:  write lock held %llu ms "
	    "(store_mailbox_delete, one transaction)\n", deleted,
	    (unsigned long long)del_ms);
	printf("gc afterwards:          %u batches of <= %d bodies, worst "
	    "%llu ms, total %llu ms\n", batches, BENCH_GC_BATCH,
	    (unsigned long long)gc_worst, (unsigned long long)gc_total);
	printf("worst write-lock hold:  %llu ms\n", (unsigned long long)
	    (del_ms > gc_worst ? del_ms : gc_worst));

	store_close(st);
	close(fd);
	unlink(db);
	path = xasprintf("%s-wal", db);
	unlink(path);
	free(path);
	path = xasprintf("%s-shm", db);
	unlink(path);
	free(path);
	free(db);
	if (argc <= 1)
		rmdir(dir);
	free(dir);
	return 0;
}
