/*
 * A worker's own handle on a finished message (DKIM signer, inbound
 * checks): a dup of the session's spool file, or a private copy of a
 * message the session holds in memory (at most DELIVERY_SPOOL_MEM_MAX
 * bytes: copying it costs less than putting it in a file). Either way the
 * session may drop its spool while the worker still reads.
 */
#ifndef CARTEIRO_SMTPD_SPOOL_H
#define CARTEIRO_SMTPD_SPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct spool_copy {
	int fd;			/* -1 when mem is used */
	unsigned char *mem;	/* owned */
	uint64_t size;
};

/* From fd (dup'd; not closed) when fd >= 0, else from mem (size bytes,
 * copied). 0, or -1 with errno when the dup fails. */
int spool_copy_init(struct spool_copy *c, int fd, const unsigned char *mem,
    uint64_t size);
/* Like pread(2): bytes read, 0 at the end, -1 on error. */
ssize_t spool_copy_pread(const struct spool_copy *c, void *buf, size_t len,
    uint64_t off);
void spool_copy_clear(struct spool_copy *c);

#endif
