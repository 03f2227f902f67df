/*
 * What a DSN quotes of the original (smtpd/bounce.c bounce_quote_len):
 * the header section only, at most BOUNCE_QUOTE_MAX bytes, cut at a line
 * end; and bounce_build keeps to it for failed and delayed notices alike,
 * whatever headers_len it is handed.
 */
#include "smtpd/bounce.h"
#include "t.h"

#include <stdlib.h>
#include <string.h>

/* hdr_bytes of "X-Pad-NNN: aaa...\r\n" lines, then the empty line and a
 * body. Caller frees. */
static char *
big_message(size_t hdr_bytes, size_t *len_r)
{
	char *m = malloc(hdr_bytes + 4096), *p = m;
	unsigned n = 0;

	p += sprintf(p, "Subject: big\r\n");
	while ((size_t)(p - m) < hdr_bytes) {
		p += sprintf(p, "X-Pad-%03u: ", n++);
		memset(p, 'a', 900);
		p += 900;
		p += sprintf(p, "\r\n");
	}
	p += sprintf(p, "X-Last: end\r\n\r\nBODY-SECRET\r\n");
	*len_r = (size_t)(p - m);
	return m;
}

static void
test_quote_len(void)
{
	static const struct {
		const char *in;
		size_t want;
	} cases[] = {
		{ "A: b\r\nC: d\r\n\r\nbody\r\n", 12 },
		{ "A: b\r\n\r\n", 6 },
		{ "A: b\r\nC: d\r\n", 12 },	/* no body */
		{ "A: b\r\nC: d", 6 },		/* cut: last whole line */
		{ "A: b", 0 },
		{ "\r\nbody: not a header\r\n\r\n", 0 },	/* no headers */
		{ "", 0 },
	};
	char *m;
	size_t len, q;

	t_begin("bounce_quote_len: the header section, whole lines");
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
		t_assert_int(bounce_quote_len(cases[i].in,
		    strlen(cases[i].in)), cases[i].want);
	t_assert_int(bounce_quote_len(NULL, 10), 0);
	t_end();

	t_begin("bounce_quote_len: 64 KB of headers -> at most 16 KB");
	m = big_message(64 * 1024, &len);
	q = bounce_quote_len(m, len);
	t_assert(q <= BOUNCE_QUOTE_MAX);
	t_assert(q > BOUNCE_QUOTE_MAX - 1000);
	t_assert(m[q - 2] == '\r' && m[q - 1] == '\n');
	t_assert(memmem(m, q, "X-Last", 6) == NULL);
	free(m);
	t_end();
}

static void
test_build_bounded(void)
{
	struct bounce_rcpt rc = { "x@remote.test", "550 5.1.1 no", NULL,
	    NULL };
	struct bounce_info bi = {
		.hostname = "mail.example.test", .mail_from = "a@far.test",
		.queue_id = 1, .arrival = 1700000000, .rcpts = &rc,
		.nrcpts = 1,
	};
	static const enum bounce_kind kinds[] = { BOUNCE_FAILED,
	    BOUNCE_DELAYED };
	char *m, *t, *part;
	size_t len, tlen;

	m = big_message(64 * 1024, &len);
	bi.headers = m;
	bi.headers_len = len;	/* the whole message, body and all */
	for (size_t k = 0; k < 2; k++) {
		t_begin(k == 0 ? "failed DSN quotes <= 16 KB of headers" :
		    "delay warning quotes <= 16 KB of headers");
		bi.kind = kinds[k];
		bi.retry_until = k == 1 ? 1700400000 : 0;
		t = bounce_build(&bi, &tlen);
		t_assert(tlen < BOUNCE_QUOTE_MAX + 4096);
		part = strstr(t, "Subject: big\r\n");
		t_assert(part != NULL);
		t_assert(strstr(t, "X-Last") == NULL);
		t_assert(strstr(t, "BODY-SECRET") == NULL);
		t_assert(part != NULL && strstr(part, "\r\n\r\n--") != NULL &&
		    (size_t)(strstr(part, "\r\n\r\n--") + 2 - part) <=
		    BOUNCE_QUOTE_MAX);
		free(t);
		t_end();
	}
	free(m);
}

int
main(void)
{
	test_quote_len();
	test_build_bounded();
	return t_exit();
}
