/*
 * Spool files for messages being received: anonymous files (O_TMPFILE
 * next to the database, or mkstemp + unlink) and the pool that recycles
 * them once their job is done. Does not read or write message data (the
 * session writes, the delivery writer reads).
 */
#include "smtpd/delivery.h"
#include "smtpd/delivery_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

/* Recycled spool files (see delivery_spool_recycle): one pool per
 * process, for the filesystem of the spool directory in use. */
#define DELIVERY_SPOOL_POOL_MAX 256
static struct {
	pthread_mutex_t mu;
	bool have_dev;
	dev_t dev;
	size_t n;
	int fds[DELIVERY_SPOOL_POOL_MAX];
} delivery_spool_pool = { .mu = PTHREAD_MUTEX_INITIALIZER };

/*
 * Spool files are recycled: creating and dropping an inode per message
 * costs ext4 far more than the message itself (inode allocation scans
 * past every recently deleted inode: ~1 ms of system time per message at
 * a few thousand messages/s). A delivered job's file is truncated, rewound
 * and kept here for the next delivery_spool_open on the same filesystem.
 * Truncation frees the data, so the pool holds no message bytes.
 */
void
delivery_spool_recycle(int fd)
{
	struct stat sb;
	bool keep = false;

	if (fstat(fd, &sb) == 0 && sb.st_nlink == 0 &&
	    ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0) {
		pthread_mutex_lock(&delivery_spool_pool.mu);
		if (delivery_spool_pool.have_dev &&
		    delivery_spool_pool.dev == sb.st_dev &&
		    delivery_spool_pool.n < DELIVERY_SPOOL_POOL_MAX) {
			delivery_spool_pool.fds[delivery_spool_pool.n++] = fd;
			keep = true;
		}
		pthread_mutex_unlock(&delivery_spool_pool.mu);
	}
	if (!keep)
		close(fd);
}

void
delivery_spool_pool_drain(void)
{
	pthread_mutex_lock(&delivery_spool_pool.mu);
	while (delivery_spool_pool.n > 0)
		close(delivery_spool_pool.fds[--delivery_spool_pool.n]);
	pthread_mutex_unlock(&delivery_spool_pool.mu);
}

int
delivery_spool_open(const char *dir)
{
	struct stat sb;
	char *tmpl;
	int fd, saved;

	if (stat(dir, &sb) != 0)
		return -1;
	pthread_mutex_lock(&delivery_spool_pool.mu);
	if (!delivery_spool_pool.have_dev || delivery_spool_pool.dev !=
	    sb.st_dev) {
		/* First use, or another filesystem: start over there. */
		while (delivery_spool_pool.n > 0)
			close(delivery_spool_pool.fds[--delivery_spool_pool.n]);
		delivery_spool_pool.dev = sb.st_dev;
		delivery_spool_pool.have_dev = true;
	}
	fd = delivery_spool_pool.n > 0 ?
	    delivery_spool_pool.fds[--delivery_spool_pool.n] : -1;
	pthread_mutex_unlock(&delivery_spool_pool.mu);
	if (fd != -1)
		return fd;

	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd != -1)
		return fd;
	/* Filesystems without O_TMPFILE (EOPNOTSUPP, EISDIR on old kernels):
	 * a named file unlinked at once is just as private. */
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
		return -1;
	tmpl = xasprintf("%s/.spool.XXXXXX", dir);
	fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd != -1 && unlink(tmpl) != 0) {
		saved = errno;
		close(fd);
		errno = saved;
		fd = -1;
	}
	saved = errno;
	free(tmpl);
	errno = saved;
	return fd;
}
