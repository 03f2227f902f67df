/*
 * acksync.so: an LD_PRELOAD witness for "a 250 after DATA is sent only
 * after the delivery's COMMIT is fsync'd" (tests/integration/
 * test_smtpd_durability.py). A kill -9 cannot show a missing fsync (the
 * page cache survives it); this records the order instead.
 *
 * Inert unless ACKSYNC_LOG names a file. Then, in the process it is
 * preloaded into, one line per event is appended to that file (with one
 * write(2) each, so a SIGKILL loses nothing that happened before it):
 *
 *   W <seq> <tag>   the first write to a SQLite WAL file ("-wal") that
 *                   holds tag, a Message-ID tag ("Message-ID: <tag@")
 *                   read from a client before (a big message's pages
 *                   are matched by any occurrence of the tag, e.g. in
 *                   its body lines); seq counts the WAL writes
 *   S <seq>         an fsync/fdatasync of a WAL file returned that began
 *                   after write seq (so it covers writes 1..seq)
 *   A <seq> <tag>   "250 2.0.0 Ok: queued as" was sent on a socket whose
 *                   last message read carried that tag; seq is the
 *                   highest S so far
 *
 * The test then checks, for every message the client got a 250 for, that
 * its first W is <= the seq of its A. ACKSYNC_DROP_SYNC=1 makes WAL syncs
 * succeed without syncing or counting, i.e. what a commit with
 * synchronous=NORMAL would do: the check must then fail (it shows that the
 * test can fail).
 */
/* pwrite and pwrite64 are both defined here, as themselves (64-bit
 * off_t either way on the platforms we run on). */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define ACKSYNC_FDS	4096
#define ACKSYNC_TAG	128
#define ACKSYNC_MARK	"Message-ID: <"
#define ACKSYNC_ACK	"250 2.0.0 Ok: queued as"

enum acksync_kind { AK_UNKNOWN, AK_WAL, AK_SOCK, AK_OTHER };

static pthread_mutex_t acksync_mu = PTHREAD_MUTEX_INITIALIZER;
static int acksync_log = -2;		/* -2: not looked at yet, -1: off */
static bool acksync_drop;
static uint64_t acksync_wseq;		/* WAL writes that returned */
static uint64_t acksync_synced;		/* highest seq a finished sync covers */
static unsigned char acksync_kinds[ACKSYNC_FDS];
static char acksync_tags[ACKSYNC_FDS][ACKSYNC_TAG];
/* The end of the last read per socket: a mark split between two reads. */
#define ACKSYNC_CARRY	(ACKSYNC_TAG + 16)
static char acksync_carry[ACKSYNC_FDS][ACKSYNC_CARRY];
static unsigned char acksync_ncarry[ACKSYNC_FDS];
/* Tags read from clients and not yet seen in a WAL write. */
#define ACKSYNC_PENDING	256
static char acksync_pending[ACKSYNC_PENDING][ACKSYNC_TAG];
static size_t acksync_npending;

static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_read)(int, void *, size_t);
static ssize_t (*real_sendmsg)(int, const struct msghdr *, int);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_close)(int);

static void
acksync_init(void)
{
	const char *path;

	if (acksync_log != -2)
		return;
	real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
	real_pwrite = dlsym(RTLD_NEXT, "pwrite");
	real_write = dlsym(RTLD_NEXT, "write");
	real_read = dlsym(RTLD_NEXT, "read");
	real_sendmsg = dlsym(RTLD_NEXT, "sendmsg");
	real_fsync = dlsym(RTLD_NEXT, "fsync");
	real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
	real_close = dlsym(RTLD_NEXT, "close");
	path = getenv("ACKSYNC_LOG");
	acksync_drop = getenv("ACKSYNC_DROP_SYNC") != NULL &&
	    strcmp(getenv("ACKSYNC_DROP_SYNC"), "1") == 0;
	__atomic_store_n(&acksync_log, path == NULL || path[0] == '\0' ? -1 :
	    (int)syscall(SYS_open, path, O_WRONLY | O_CREAT | O_APPEND |
	    O_CLOEXEC, 0600), __ATOMIC_RELEASE);
}

/* Before any other use: the real functions and the log. The constructor
 * runs before main (no threads yet); a library calling in earlier takes
 * the lock. */
__attribute__((constructor)) static void
acksync_ctor(void)
{
	if (__atomic_load_n(&acksync_log, __ATOMIC_ACQUIRE) != -2)
		return;
	pthread_mutex_lock(&acksync_mu);
	acksync_init();
	pthread_mutex_unlock(&acksync_mu);
}

/* Under acksync_mu. */
static void
acksync_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
acksync_line(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0 && acksync_log >= 0)
		(void)syscall(SYS_write, acksync_log, buf,
		    (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* Under acksync_mu. What fd is, looked up once per open. */
static enum acksync_kind
acksync_kind(int fd)
{
	char link[64], target[512];
	struct stat st;
	ssize_t n;
	size_t len;

	if (fd < 0 || fd >= ACKSYNC_FDS)
		return AK_OTHER;
	if (acksync_kinds[fd] != AK_UNKNOWN)
		return acksync_kinds[fd];
	acksync_kinds[fd] = AK_OTHER;
	if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) {
		acksync_kinds[fd] = AK_SOCK;
	} else {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = '\0';
			len = (size_t)n;
			if (len > 4 && strcmp(target + len - 4, "-wal") == 0)
				acksync_kinds[fd] = AK_WAL;
		}
	}
	return acksync_kinds[fd];
}

/* Copies the tag after each ACKSYNC_MARK in buf (up to '@' or '>') to cb. */
static void
acksync_tags_in(const char *buf, size_t len,
    void (*cb)(const char *tag, void *arg), void *arg)
{
	const char *p = buf, *end = buf + len;
	size_t ml = strlen(ACKSYNC_MARK);
	char tag[ACKSYNC_TAG];

	while ((p = memmem(p, (size_t)(end - p), ACKSYNC_MARK, ml)) != NULL) {
		size_t i = 0;

		p += ml;
		while (p + i < end && i < sizeof(tag) - 1 && p[i] != '@' &&
		    p[i] != '>' && p[i] > ' ' && p[i] < 127) {
			tag[i] = p[i];
			i++;
		}
		tag[i] = '\0';
		if (i > 0)
			cb(tag, arg);
	}
}

static void
acksync_sock_tag(const char *tag, void *arg)
{
	char *slot = arg;
	size_t i;

	snprintf(slot, ACKSYNC_TAG, "%s", tag);
	for (i = 0; i < acksync_npending; i++)
		if (strcmp(acksync_pending[i], tag) == 0)
			return;
	if (acksync_npending < ACKSYNC_PENDING)
		snprintf(acksync_pending[acksync_npending++], ACKSYNC_TAG,
		    "%s", tag);
}

static void
acksync_wrote(int fd, const void *buf, ssize_t n)
{
	uint64_t seq;

	if (n <= 0)
		return;
	pthread_mutex_lock(&acksync_mu);
	if (acksync_log >= 0 && acksync_kind(fd) == AK_WAL) {
		seq = ++acksync_wseq;
		for (size_t i = 0; i < acksync_npending; ) {
			const char *t = acksync_pending[i];

			if (memmem(buf, (size_t)n, t, strlen(t)) == NULL) {
				i++;
				continue;
			}
			acksync_line("W %llu %s\n", (unsigned long long)seq, t);
			memmove(acksync_pending[i],
			    acksync_pending[--acksync_npending], ACKSYNC_TAG);
		}
	}
	pthread_mutex_unlock(&acksync_mu);
}

ssize_t
pwrite64(int fd, const void *buf, size_t count, off_t off)
{
	ssize_t n;

	acksync_ctor();
	n = real_pwrite64(fd, buf, count, off);
	acksync_wrote(fd, buf, n);
	return n;
}

ssize_t
pwrite(int fd, const void *buf, size_t count, off_t off)
{
	ssize_t n;

	acksync_ctor();
	n = real_pwrite(fd, buf, count, off);
	acksync_wrote(fd, buf, n);
	return n;
}

ssize_t
write(int fd, const void *buf, size_t count)
{
	ssize_t n;

	acksync_ctor();
	n = real_write(fd, buf, count);
	acksync_wrote(fd, buf, n);
	return n;
}

static int
acksync_sync(int fd, int (*real)(int))
{
	uint64_t start = 0;
	bool wal;
	int rc;

	pthread_mutex_lock(&acksync_mu);
	wal = acksync_log >= 0 && acksync_kind(fd) == AK_WAL;
	start = acksync_wseq;
	pthread_mutex_unlock(&acksync_mu);
	if (wal && acksync_drop)
		return 0;
	rc = real(fd);
	if (wal && rc == 0) {
		pthread_mutex_lock(&acksync_mu);
		if (start > acksync_synced)
			acksync_synced = start;
		acksync_line("S %llu\n", (unsigned long long)start);
		pthread_mutex_unlock(&acksync_mu);
	}
	return rc;
}

int
fsync(int fd)
{
	acksync_ctor();
	return acksync_sync(fd, real_fsync);
}

int
fdatasync(int fd)
{
	acksync_ctor();
	return acksync_sync(fd, real_fdatasync);
}

/* Under acksync_mu: the tag of the last mark seen on socket fd, across
 * read boundaries. */
static void
acksync_sock_read(int fd, const char *buf, size_t n)
{
	char joined[2 * ACKSYNC_CARRY];
	size_t c = acksync_ncarry[fd], head = n < ACKSYNC_CARRY ? n :
	    ACKSYNC_CARRY;

	/* Marks across the boundary: the carry plus the start of buf (a mark
	 * entirely inside buf is found again below, to the same tag). */
	memcpy(joined, acksync_carry[fd], c);
	memcpy(joined + c, buf, head);
	acksync_tags_in(joined, c + head, acksync_sock_tag, acksync_tags[fd]);
	acksync_tags_in(buf, n, acksync_sock_tag, acksync_tags[fd]);
	if (n >= ACKSYNC_CARRY) {
		memcpy(acksync_carry[fd], buf + n - ACKSYNC_CARRY,
		    ACKSYNC_CARRY);
		acksync_ncarry[fd] = ACKSYNC_CARRY;
	} else {
		size_t keep = c + n > ACKSYNC_CARRY ? ACKSYNC_CARRY - n : c;

		memmove(acksync_carry[fd], acksync_carry[fd] + c - keep, keep);
		memcpy(acksync_carry[fd] + keep, buf, n);
		acksync_ncarry[fd] = (unsigned char)(keep + n);
	}
}

ssize_t
read(int fd, void *buf, size_t count)
{
	ssize_t n;

	acksync_ctor();
	n = real_read(fd, buf, count);
	if (n > 0) {
		pthread_mutex_lock(&acksync_mu);
		if (acksync_log >= 0 && acksync_kind(fd) == AK_SOCK)
			acksync_sock_read(fd, buf, (size_t)n);
		pthread_mutex_unlock(&acksync_mu);
	}
	return n;
}

ssize_t
sendmsg(int fd, const struct msghdr *msg, int flags)
{
	char head[sizeof(ACKSYNC_ACK)];
	size_t have = 0;

	acksync_ctor();
	/* Replies start a buffer: the first bytes are enough. */
	for (size_t i = 0; i < msg->msg_iovlen && have < sizeof(head) - 1;
	    i++) {
		size_t take = msg->msg_iov[i].iov_len;

		if (take > sizeof(head) - 1 - have)
			take = sizeof(head) - 1 - have;
		memcpy(head + have, msg->msg_iov[i].iov_base, take);
		have += take;
	}
	head[have] = '\0';
	if (strcmp(head, ACKSYNC_ACK) == 0) {
		pthread_mutex_lock(&acksync_mu);
		if (acksync_log >= 0 && fd >= 0 && fd < ACKSYNC_FDS)
			acksync_line("A %llu %s\n",
			    (unsigned long long)acksync_synced,
			    acksync_tags[fd][0] != '\0' ? acksync_tags[fd] :
			    "-");
		pthread_mutex_unlock(&acksync_mu);
	}
	return real_sendmsg(fd, msg, flags);
}

int
close(int fd)
{
	acksync_ctor();
	pthread_mutex_lock(&acksync_mu);
	if (fd >= 0 && fd < ACKSYNC_FDS) {
		acksync_kinds[fd] = AK_UNKNOWN;
		acksync_tags[fd][0] = '\0';
		acksync_ncarry[fd] = 0;
	}
	pthread_mutex_unlock(&acksync_mu);
	return real_close(fd);
}
