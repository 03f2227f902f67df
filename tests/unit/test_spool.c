/*
 * smtpd/spool.c: a worker's copy of a finished message reads the same
 * bytes from memory and from a file, stays valid after the session drops
 * its own spool, and pread edges (past the end, short reads) behave.
 */
#include "smtpd/spool.h"
#include "t.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
check_reads(const struct spool_copy *c, const char *want, size_t n)
{
	char buf[64];

	t_assert_int(spool_copy_pread(c, buf, sizeof(buf), 0), (long long)n);
	t_assert(memcmp(buf, want, n) == 0);
	t_assert_int(spool_copy_pread(c, buf, 4, 3), 4);
	t_assert(memcmp(buf, want + 3, 4) == 0);
	t_assert_int(spool_copy_pread(c, buf, 10, n - 2), 2);
	t_assert(memcmp(buf, want + n - 2, 2) == 0);
	t_assert_int(spool_copy_pread(c, buf, 10, n), 0);
	t_assert_int(spool_copy_pread(c, buf, 10, n + 100), 0);
}

int
main(void)
{
	static const char msg[] = "Subject: x\r\n\r\nbody\r\n";
	size_t n = sizeof(msg) - 1;
	struct spool_copy c;
	char path[] = "/tmp/carteiro-test-spool.XXXXXX";
	unsigned char *mem;
	int fd;

	t_begin("memory: a private copy");
	mem = (unsigned char *)strdup(msg);
	t_assert_int(spool_copy_init(&c, -1, mem, n), 0);
	memset(mem, 'X', n);		/* the session reuses its buffer */
	free(mem);
	check_reads(&c, msg, n);
	spool_copy_clear(&c);
	t_assert(c.mem == NULL && c.fd == -1);
	t_end();

	t_begin("memory: empty message");
	t_assert_int(spool_copy_init(&c, -1, NULL, 0), 0);
	{
		char b[4];
		t_assert_int(spool_copy_pread(&c, b, sizeof(b), 0), 0);
	}
	spool_copy_clear(&c);
	t_end();

	t_begin("file: a dup that outlives the session's fd");
	fd = mkstemp(path);
	t_assert(fd >= 0);
	unlink(path);
	t_assert(write(fd, msg, n) == (ssize_t)n);
	t_assert_int(spool_copy_init(&c, fd, NULL, n), 0);
	close(fd);
	check_reads(&c, msg, n);
	spool_copy_clear(&c);
	t_end();

	t_begin("file: a bad fd fails");
	t_assert_int(spool_copy_init(&c, 987654, NULL, 5), -1);
	t_end();
	return t_exit();
}
