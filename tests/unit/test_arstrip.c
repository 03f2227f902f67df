/*
 * smtpd/arstrip.c: forged Authentication-Results removal. Every variant
 * of our authserv-id (space before the colon, comments, quoted string,
 * case, folding, after 256 KB of other fields) is removed; foreign ids
 * and look-alikes stay byte-exact; the header-section limit; every
 * split point of every case. Then inbound_strip on an in-memory message
 * and on a spool file (rewritten in place).
 */
#include "smtpd/arstrip.h"
#include "smtpd/inbound.h"
#include "t.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define nitems_t(a) (sizeof(a) / sizeof((a)[0]))
#define ID "mail.example.test"
#define BODY "\r\nbody line\r\nAuthentication-Results: " ID "; spf=pass\r\n"

struct ar_case {
	const char *name;
	const char *in;
	const char *out;	/* NULL: the same as in (nothing removed) */
	unsigned removed;
};

static const struct ar_case cases[] = {
	/* Ours, every way a reader could see it: removed. */
	{ "exact", "Authentication-Results: " ID "; spf=pass\r\n"
	    "From: a@b.test\r\n" BODY, "From: a@b.test\r\n" BODY, 1 },
	{ "space-before-colon", "From: a@b.test\r\n"
	    "Authentication-Results : " ID "; spf=pass\r\n" BODY,
	    "From: a@b.test\r\n" BODY, 1 },
	{ "tab-before-colon", "Authentication-Results\t:\t" ID "; x=y\r\n"
	    BODY, BODY, 1 },
	{ "comment-before-id", "Authentication-Results: (x) " ID
	    "; spf=pass\r\n" BODY, BODY, 1 },
	{ "nested-comment", "Authentication-Results: (a (b \\) c) d)" ID
	    ";\r\n" BODY, BODY, 1 },
	{ "comment-no-space", "Authentication-Results:(x)" ID ";\r\n" BODY,
	    BODY, 1 },
	{ "quoted", "Authentication-Results: \"" ID "\"; spf=pass\r\n" BODY,
	    BODY, 1 },
	{ "quoted-pair", "Authentication-Results: \"mail.exa\\mple.test\"; "
	    "spf=pass\r\n" BODY, BODY, 1 },
	{ "quoted-spaces", "Authentication-Results: \" " ID " \"; x\r\n"
	    BODY, BODY, 1 },
	{ "upper-case", "AUTHENTICATION-RESULTS: MAIL.EXAMPLE.TEST; "
	    "SPF=PASS\r\n" BODY, BODY, 1 },
	{ "mixed-case", "authentication-results: Mail.Example.Test; "
	    "spf=pass\r\n" BODY, BODY, 1 },
	{ "folded-after-colon", "Subject: s\r\nAuthentication-Results:\r\n\t"
	    ID ";\r\n\tspf=pass smtp.mailfrom=x\r\n\tdkim=pass\r\n"
	    "To: c@d.test\r\n" BODY, "Subject: s\r\nTo: c@d.test\r\n" BODY,
	    1 },
	{ "folded-before-colon", "Authentication-Results\r\n : " ID
	    "; spf=pass\r\n" BODY, BODY, 1 },
	{ "folded-in-comment", "Authentication-Results: (a\r\n b) " ID
	    ";\r\n" BODY, BODY, 1 },
	/* Unfolding (RFC 5322 2.2.3) keeps the space: another id. */
	{ "folded-in-quotes", "Authentication-Results: \"mail.exa\r\n"
	    " mple.test\";\r\n" BODY, NULL, 0 },
	{ "no-space", "Authentication-Results:" ID ";spf=pass\r\n" BODY,
	    BODY, 1 },
	{ "no-semicolon", "Authentication-Results: " ID "\r\n" BODY, BODY,
	    1 },
	{ "version", "Authentication-Results: " ID " 1; spf=pass\r\n" BODY,
	    BODY, 1 },
	{ "trailing-dot", "Authentication-Results: " ID ".; spf=pass\r\n"
	    BODY, BODY, 1 },
	{ "comment-after-id", "Authentication-Results: " ID "(c); none\r\n"
	    BODY, BODY, 1 },
	{ "lf-only", "From: a\nAuthentication-Results: " ID "; x\n"
	    "\tspf=pass\nTo: b\n\nbody\n", "From: a\nTo: b\n\nbody\n", 1 },
	{ "several", "Authentication-Results: " ID "; a=1\r\n"
	    "Received: from x\r\n\tby y\r\n"
	    "Authentication-Results: other.example.net; spf=pass\r\n"
	    "authentication-results : (z) \"MAIL.example.test\"; b=2\r\n"
	    "Subject: s\r\n" BODY, "Received: from x\r\n\tby y\r\n"
	    "Authentication-Results: other.example.net; spf=pass\r\n"
	    "Subject: s\r\n" BODY, 2 },
	{ "no-body", "From: a\r\nAuthentication-Results: " ID "; x\r\n",
	    "From: a\r\n", 1 },
	{ "no-final-crlf", "From: a\r\nAuthentication-Results: " ID "; x",
	    "From: a\r\n", 1 },

	/* Not ours: kept byte-exact. */
	{ "foreign", "Authentication-Results: other.example.net; spf=pass\r\n"
	    BODY, NULL, 0 },
	{ "foreign-folded", "Authentication-Results:\r\n other.example.net;"
	    "\r\n\tspf=pass (" ID ")\r\n" BODY, NULL, 0 },
	{ "longer", "Authentication-Results: " ID ".evil; spf=pass\r\n" BODY,
	    NULL, 0 },
	{ "prefix", "Authentication-Results: x" ID "; spf=pass\r\n" BODY,
	    NULL, 0 },
	{ "subdomain", "Authentication-Results: sub." ID "; spf=pass\r\n"
	    BODY, NULL, 0 },
	{ "shorter", "Authentication-Results: mail.example.tes; spf=pass\r\n"
	    BODY, NULL, 0 },
	{ "id-in-comment", "Authentication-Results: (" ID ") other.test; "
	    "spf=pass\r\n" BODY, NULL, 0 },
	{ "quoted-other", "Authentication-Results: \"" ID " x\"; spf=pass\r\n"
	    BODY, NULL, 0 },
	{ "unclosed-comment", "Authentication-Results: (x " ID "; spf=pass\r\n"
	    BODY, NULL, 0 },
	{ "empty-id", "Authentication-Results: ; spf=pass\r\n" BODY, NULL, 0 },
	{ "no-colon", "Authentication-Results " ID "; spf=pass\r\n" BODY,
	    NULL, 0 },
	{ "arc", "ARC-Authentication-Results: i=1; " ID "; spf=pass\r\n"
	    BODY, NULL, 0 },
	{ "x-prefix", "X-Authentication-Results: " ID "; spf=pass\r\n" BODY,
	    NULL, 0 },
	{ "longer-name", "Authentication-Results-Copy: " ID "; spf=pass\r\n"
	    BODY, NULL, 0 },
	{ "continuation", "Subject: s\r\n Authentication-Results: " ID
	    "; x\r\n" BODY, NULL, 0 },
	{ "body-only", "\r\nAuthentication-Results: " ID "; spf=pass\r\n",
	    NULL, 0 },
	{ "empty", "", NULL, 0 },
};

/* Offset just past the empty line ending the header section, or 0 when
 * there is none. */
static size_t
test_need(const char *m, size_t len)
{
	size_t pos = 0;

	while (pos < len) {
		const char *lf = memchr(m + pos, '\n', len - pos);
		size_t end = lf ? (size_t)(lf - m) + 1 : len;

		if (lf != NULL && (end - pos == 1 || (end - pos == 2 &&
		    m[pos] == '\r')))
			return end;
		pos = end;
	}
	return 0;
}

/* Run the scanner on a copy of in[0..len); on DONE the stripped message
 * (kept header + the rest of the copy) in a malloc'd *out_r. */
static enum arstrip_status
test_run(const char *in, size_t len, bool complete, size_t max,
    char **out_r, size_t *outlen_r, size_t *hlen_r, unsigned *removed_r)
{
	char *buf = malloc(len + 1);
	size_t hlen = 0, kept = 0;
	unsigned removed = 0;
	enum arstrip_status st;

	memcpy(buf, in, len);
	st = arstrip_header(buf, len, complete, ID, max, &hlen, &kept,
	    &removed);
	if (st == ARSTRIP_DONE) {
		memmove(buf + kept, buf + hlen, len - hlen);
		*outlen_r = len - (hlen - kept);
		*hlen_r = hlen;
		*removed_r = removed;
		*out_r = buf;
	} else {
		if (memcmp(buf, in, len) != 0)
			st = (enum arstrip_status)-1;	/* touched: a bug */
		free(buf);
		*out_r = NULL;
	}
	return st;
}

static void
test_cases(void)
{
	for (size_t c = 0; c < nitems_t(cases); c++) {
		const struct ar_case *tc = &cases[c];
		const char *want = tc->out ? tc->out : tc->in;
		size_t len = strlen(tc->in), outlen = 0, hlen = 0, need;
		unsigned removed = 0;
		char *out = NULL;

		t_begin(tc->name);
		t_assert_int(test_run(tc->in, len, true, ARSTRIP_MAX_HEADER,
		    &out, &outlen, &hlen, &removed), ARSTRIP_DONE);
		t_assert_int(removed, tc->removed);
		t_assert_int(outlen, strlen(want));
		t_assert(out != NULL && memcmp(out, want, outlen) == 0);
		free(out);

		/* Every prefix of a message still arriving: MORE (buf
		 * untouched) until the empty line is in, then the same
		 * answer. */
		need = test_need(tc->in, len);
		for (size_t k = 0; k <= len; k++) {
			size_t h2 = 0, o2 = 0;
			unsigned r2 = 0;
			char *p = NULL;
			enum arstrip_status st = test_run(tc->in, k, false,
			    ARSTRIP_MAX_HEADER, &p, &o2, &h2, &r2);

			if (need == 0 || k < need) {
				t_assert_int(st, ARSTRIP_MORE);
			} else {
				t_assert_int(st, ARSTRIP_DONE);
				t_assert_int(h2, hlen);
				t_assert_int(r2, tc->removed);
				t_assert_int(o2, outlen - (len - k));
				t_assert(p != NULL &&
				    memcmp(p, want, o2) == 0);
			}
			free(p);
		}
		t_end();
	}
}

/* Ours after 300 KB of other fields, then a body: still removed. */
static void
test_deep(void)
{
	size_t fill = 300 * 1024, len, outlen = 0, hlen = 0;
	const char *ar = "Authentication-Results: (x) \"" ID "\"; spf=pass\r\n";
	const char *tail = "Subject: deep\r\n\r\nbody\r\n";
	char *m, *want, *out = NULL;
	unsigned removed = 0;

	t_begin("after-300k-of-fields");
	m = malloc(fill + 200);
	want = malloc(fill + 200);
	for (size_t i = 0; i < fill; i += 100) {
		memcpy(m + i, "X-Filler: ", 10);
		memset(m + i + 10, 'a', 88);
		memcpy(m + i + 98, "\r\n", 2);
	}
	memcpy(want, m, fill);
	strcpy(want + fill, tail);
	strcpy(m + fill, ar);
	strcat(m + fill, tail);
	len = strlen(m);
	t_assert_int(test_run(m, len, true, ARSTRIP_MAX_HEADER, &out, &outlen,
	    &hlen, &removed), ARSTRIP_DONE);
	t_assert_int(removed, 1);
	t_assert_int(outlen, strlen(want));
	t_assert(out != NULL && memcmp(out, want, outlen) == 0);
	free(out);
	free(m);
	free(want);
	t_end();
}

/* A header section of n bytes ("X: aaa...\r\n" lines, the last one
 * shortened to fit), then body (may be ""). n >= 8. */
static char *
test_header_of(size_t n, const char *body, size_t *len_r)
{
	size_t blen = strlen(body), i = 0;
	char *m = malloc(n + blen + 1);

	while (i < n) {
		size_t line = n - i >= 200 + 8 ? 200 : n - i;

		m[i] = 'X';
		m[i + 1] = ':';
		memset(m + i + 2, 'a', line - 4);
		m[i + line - 2] = '\r';
		m[i + line - 1] = '\n';
		i += line;
	}
	memcpy(m + n, body, blen + 1);
	*len_r = n + blen;
	return m;
}

static void
test_limit(void)
{
	size_t maxes[] = { 100, ARSTRIP_MAX_HEADER };

	for (size_t k = 0; k < nitems_t(maxes); k++) {
		size_t max = maxes[k], len = 0, outlen = 0, hlen = 0;
		unsigned removed = 0;
		char *m, *out = NULL;

		t_begin(k == 0 ? "limit-100" : "limit-1MiB");
		/* Exactly max bytes of header section: scanned. */
		m = test_header_of(max, "\r\nbody\r\n", &len);
		t_assert_int(test_run(m, len, true, max, &out, &outlen, &hlen,
		    &removed), ARSTRIP_DONE);
		t_assert_int(hlen, max);
		t_assert(out != NULL && outlen == len &&
		    memcmp(out, m, len) == 0);
		free(out);
		/* Arriving: known once the empty line is in (max + 2). */
		t_assert_int(test_run(m, max + 1, false, max, &out, &outlen,
		    &hlen, &removed), ARSTRIP_MORE);
		t_assert_int(test_run(m, max + 2, false, max, &out, &outlen,
		    &hlen, &removed), ARSTRIP_DONE);
		free(out);
		free(m);
		/* One byte more: refused, complete or not. */
		m = test_header_of(max + 1, "\r\nbody\r\n", &len);
		t_assert_int(test_run(m, len, true, max, &out, &outlen, &hlen,
		    &removed), ARSTRIP_TOO_LARGE);
		t_assert_int(test_run(m, max + 2, false, max, &out, &outlen,
		    &hlen, &removed), ARSTRIP_TOO_LARGE);
		free(m);
		/* No body at all: the whole message is header section. */
		m = test_header_of(max, "", &len);
		t_assert_int(test_run(m, len, true, max, &out, &outlen, &hlen,
		    &removed), ARSTRIP_DONE);
		t_assert_int(hlen, max);
		free(out);
		free(m);
		m = test_header_of(max + 1, "", &len);
		t_assert_int(test_run(m, len, true, max, &out, &outlen, &hlen,
		    &removed), ARSTRIP_TOO_LARGE);
		free(m);
		/* One line longer than max, no LF yet. */
		m = malloc(max + 3);
		memset(m, 'a', max + 2);
		t_assert_int(test_run(m, max + 1, false, max, &out, &outlen,
		    &hlen, &removed), ARSTRIP_MORE);
		t_assert_int(test_run(m, max + 2, false, max, &out, &outlen,
		    &hlen, &removed), ARSTRIP_TOO_LARGE);
		free(m);
		/* A big body after a small header section is no problem. */
		m = malloc(2 * max + 64);
		strcpy(m, "Authentication-Results: " ID "; x\r\n\r\n");
		len = strlen(m);
		memset(m + len, 'b', 2 * max);
		len += 2 * max;
		t_assert_int(test_run(m, len, true, max, &out, &outlen, &hlen,
		    &removed), ARSTRIP_DONE);
		t_assert_int(removed, 1);
		free(out);
		free(m);
		t_end();
	}
}

/* The spool file holds exactly want (size and bytes). */
static bool
test_file_is(int fd, const char *want, size_t len)
{
	struct stat st;
	char *got;
	bool same;

	if (fstat(fd, &st) != 0 || (size_t)st.st_size != len)
		return false;
	got = malloc(len + 1);
	same = pread(fd, got, len, 0) == (ssize_t)len &&
	    memcmp(got, want, len) == 0;
	free(got);
	return same;
}

static int
test_spool(const char *dir, const char *m, size_t len)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/spool.XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	unlink(path);
	if (write(fd, m, len) != (ssize_t)len) {
		close(fd);
		return -1;
	}
	return fd;
}

static void
test_inbound_strip(void)
{
	char dir[] = "/tmp/carteiro-test-arstrip.XXXXXX";
	const char *ar = "Authentication-Results: (x) " ID "; spf=pass\r\n";
	size_t hsize = 150 * 1024, bsize = 300 * 1024, len, wlen;
	unsigned removed;
	uint64_t size;
	char *m, *want;
	int fd;

	t_assert(mkdtemp(dir) != NULL);

	t_begin("inbound_strip-mem");
	{
		char mem[] = "From: a\r\nAuthentication-Results: " ID
		    "; x\r\n\r\nbody\r\n";
		size = sizeof(mem) - 1;
		t_assert_int(inbound_strip(ID, -1, (unsigned char *)mem,
		    &size, &removed), 0);
		t_assert_int(removed, 1);
		t_assert_int(size, strlen("From: a\r\n\r\nbody\r\n"));
		t_assert(memcmp(mem, "From: a\r\n\r\nbody\r\n", size) == 0);
		size = 0;
		t_assert_int(inbound_strip(ID, -1, NULL, &size, &removed), 0);
	}
	t_end();

	/* A spool file whose forged field lies past the first 64 KB read,
	 * with a body longer than the copy buffer. */
	t_begin("inbound_strip-file");
	m = test_header_of(hsize, "", &len);
	want = malloc(hsize + bsize + 256);
	memcpy(want, m, hsize);
	wlen = hsize;
	m = realloc(m, hsize + strlen(ar) + bsize + 16);
	strcpy(m + hsize, ar);
	len = hsize + strlen(ar);
	memcpy(m + len, "\r\n", 2);
	memcpy(want + wlen, "\r\n", 2);
	len += 2;
	wlen += 2;
	for (size_t i = 0; i < bsize; i++)
		m[len + i] = want[wlen + i] = (char)('a' + i % 26);
	len += bsize;
	wlen += bsize;
	fd = test_spool(dir, m, len);
	t_assert(fd >= 0);
	size = len;
	t_assert_int(inbound_strip(ID, fd, NULL, &size, &removed), 0);
	t_assert_int(removed, 1);
	t_assert_int(size, wlen);
	t_assert(test_file_is(fd, want, wlen));
	close(fd);
	/* Nothing ours: the file is left alone. */
	fd = test_spool(dir, want, wlen);
	size = wlen;
	t_assert_int(inbound_strip(ID, fd, NULL, &size, &removed), 0);
	t_assert_int(removed, 0);
	t_assert_int(size, wlen);
	t_assert(test_file_is(fd, want, wlen));
	close(fd);
	free(m);
	free(want);
	t_end();

	t_begin("inbound_strip-too-large");
	m = test_header_of(ARSTRIP_MAX_HEADER + 1, "\r\nbody\r\n", &len);
	fd = test_spool(dir, m, len);
	size = len;
	t_assert_int(inbound_strip(ID, fd, NULL, &size, &removed), 1);
	t_assert_int(size, len);
	t_assert(test_file_is(fd, m, len));
	close(fd);
	free(m);
	t_end();

	rmdir(dir);
}

int
main(void)
{
	test_cases();
	test_deep();
	test_limit();
	test_inbound_strip();
	return t_exit();
}
