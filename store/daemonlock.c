/*
 * The daemons' lock file beside the database: carteiro-smtpd and
 * carteiro-pop3d hold a shared flock on "<db>.lock" while they run, so
 * carteiroctl restore can refuse to replace a store under them. Not an
 * SQLite lock: SQLite's own locks come and go with transactions.
 */
#include "store/backup.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* The daemon's lock fd: open until the process exits. */
static int store_daemon_lock_fd = -1;

int
store_daemon_lock(const char *db_path, const char **error_r)
{
	static char err[256];
	char *path;
	int fd;

	if (store_daemon_lock_fd >= 0)
		return 0;
	path = xasprintf("%s.lock", db_path);
	/* Not secret: 0644 so a non-root carteiroctl can probe it. */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || flock(fd, LOCK_SH | LOCK_NB) < 0) {
		snprintf(err, sizeof(err), "lock file %s: %s", path,
		    strerror(errno));
		*error_r = err;
		if (fd >= 0)
			close(fd);
		free(path);
		return -1;
	}
	(void)fchmod(fd, 0644);
	free(path);
	store_daemon_lock_fd = fd;
	return 0;
}

int
store_daemon_running(const char *db_path)
{
	char *path = xasprintf("%s.lock", db_path);
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	/* An exclusive lock is refused while any daemon holds its
	 * shared one. */
	if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
		(void)flock(fd, LOCK_UN);
		ret = 0;
	} else
		ret = errno == EWOULDBLOCK ? 1 : -1;
	close(fd);
	return ret;
}
