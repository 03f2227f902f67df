/*
 * bench/smtp/flushwait.c: an LD_PRELOAD for measurement only, never for a
 * server that keeps mail. bench/smtp/run builds it when FLUSH_US is set
 * and preloads it into carteiro-smtpd.
 *
 *   FLUSH_US=real  fsync(2) and fdatasync(2) run as usual and are timed
 *   FLUSH_US=N     they write nothing to the disk and take N us instead:
 *                  a disk whose cache flush costs N us (N = 0: no flush)
 *
 * At exit it appends one line to stderr (smtpd.log): the number of
 * fdatasync calls on WAL files (the delivery writer's commits) and their
 * mean and 99th percentile in microseconds, as measured from inside the
 * call. So a run answers "how long does this disk's flush take under this
 * load" and "what would the throughput be with a faster one".
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define FLUSHWAIT_BUCKETS 2000	/* 10 us each: 0 .. 20 ms */

static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static long flush_us = -1;	/* -1: real */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned long n_wal, hist[FLUSHWAIT_BUCKETS + 1];
static unsigned long long sum_us;

static unsigned long long
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000ULL;
}

static int
is_wal(int fd)
{
	char link[64], path[4096];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n < 4)
		return 0;
	path[n] = '\0';
	return strcmp(path + n - 4, "-wal") == 0;
}

static int
flush(int fd, int (*real)(int))
{
	unsigned long long t0 = now_us(), d;
	int rc = 0;

	if (flush_us < 0)
		rc = real(fd);
	else if (flush_us > 0) {
		struct timespec ts = { flush_us / 1000000,
		    (flush_us % 1000000) * 1000 };

		/* The default 50 us timer slack would be most of a short
		 * wait. */
		prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
		nanosleep(&ts, NULL);
	}
	d = now_us() - t0;
	if (real == real_fdatasync && is_wal(fd)) {
		pthread_mutex_lock(&mu);
		n_wal++;
		sum_us += d;
		hist[d / 10 < FLUSHWAIT_BUCKETS ? d / 10 : FLUSHWAIT_BUCKETS]++;
		pthread_mutex_unlock(&mu);
	}
	return rc;
}

int
fsync(int fd)
{
	return flush(fd, real_fsync);
}

int
fdatasync(int fd)
{
	return flush(fd, real_fdatasync);
}

__attribute__((constructor)) static void
flushwait_init(void)
{
	const char *e = getenv("FLUSH_US");

	real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	if (e != NULL && strcmp(e, "real") != 0)
		flush_us = atol(e);
}

__attribute__((destructor)) static void
flushwait_report(void)
{
	unsigned long seen = 0, p99 = 0;

	for (unsigned i = 0; i <= FLUSHWAIT_BUCKETS && n_wal > 0; i++) {
		seen += hist[i];
		if (seen * 100 >= n_wal * 99) {
			p99 = (i + 1) * 10;
			break;
		}
	}
	fprintf(stderr, "flushwait: mode=%s wal_fdatasync=%lu mean_us=%llu "
	    "p99_us<=%lu\n", flush_us < 0 ? "real" : "wait", n_wal,
	    n_wal ? sum_us / n_wal : 0, p99);
}
