/*
 * A worker's copy of a finished message: see spool.h.
 */
#include "smtpd/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"

int
spool_copy_init(struct spool_copy *c, int fd, const unsigned char *mem,
    uint64_t size)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->size = size;
	if (fd >= 0) {
		c->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		return c->fd < 0 ? -1 : 0;
	}
	c->mem = xmalloc(size > 0 ? (size_t)size : 1);
	if (size > 0)
		memcpy(c->mem, mem, (size_t)size);
	return 0;
}

ssize_t
spool_copy_pread(const struct spool_copy *c, void *buf, size_t len,
    uint64_t off)
{
	ssize_t n;

	if (c->fd >= 0) {
		do
			n = pread(c->fd, buf, len, (off_t)off);
		while (n < 0 && errno == EINTR);
		return n;
	}
	if (off >= c->size)
		return 0;
	if (len > c->size - off)
		len = (size_t)(c->size - off);
	memcpy(buf, c->mem + off, len);
	return (ssize_t)len;
}

void
spool_copy_clear(struct spool_copy *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->mem);
	c->fd = -1;
	c->mem = NULL;
}
