/* Small files for the ACME state: atomic writes, bounded reads. */
#include "acme/acme.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

int
acme_file_write(const char *path, const void *data, size_t len,
    unsigned mode, const char **error_r)
{
	static char err[512];
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	const char *p = data;
	int fd;

	(void)unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		goto fail;
	/* The umask may have taken bits away: the mode is the contract. */
	if (fchmod(fd, mode) < 0)
		goto fail_fd;
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fail_fd;
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	if (rename(tmp, path) < 0)
		goto fail;
	free(tmp);
	return 0;
fail_fd:
	(void)close(fd);
fail:
	snprintf(err, sizeof(err), "%s: %s", path, strerror(errno));
	(void)unlink(tmp);
	free(tmp);
	*error_r = err;
	return -1;
}

char *
acme_file_read(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "re");
	char *buf;
	size_t n;

	if (f == NULL)
		return NULL;
	buf = xmalloc(ACME_HTTP_MAX + 1);
	n = fread(buf, 1, ACME_HTTP_MAX + 1, f);
	if (ferror(f) || n > ACME_HTTP_MAX) {
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	if (len_r != NULL)
		*len_r = n;
	return buf;
}
