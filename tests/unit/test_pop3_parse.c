/*
 * Unit tests for pop3d's pure parts (pop3d/parse.c): command splitting,
 * number arguments and dot-stuffing for RETR/TOP, fed at every split
 * point so the stuffing state across chunk boundaries is covered.
 */
#include <stdlib.h>
#include <string.h>

#include "pop3d/pop3d.h"
#include "t.h"

static void test_split(void);
static void test_number(void);
static void test_stuff_table(void);
static void test_stuff_splits(void);
static void test_top(void);
static char *stuff_all(const char *in, size_t len, bool top, uint64_t lines,
    const size_t *cuts, size_t ncuts, size_t *olen_r);

static void
test_split(void)
{
	static const struct {
		const char *line, *verb, *args;	/* verb NULL: error */
	} cases[] = {
		{ "STAT", "STAT", NULL },
		{ "stat", "STAT", NULL },
		{ "LIST 1", "LIST", "1" },
		{ "PASS  two  spaces ", "PASS", " two  spaces " },
		{ "TOP 1 10", "TOP", "1 10" },
		{ "USER ", "USER", "" },
		{ "", NULL, NULL },
		{ " STAT", NULL, NULL },
		{ "ST4T", NULL, NULL },
		{ "VERYLONGVERB x", NULL, NULL },
		{ "\x01\x02", NULL, NULL },
	};

	t_begin("split");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *line = strdup(cases[i].line), *verb, *args;
		int r = pop3_parse_split(line, &verb, &args);

		if (cases[i].verb == NULL) {
			t_assert_int(r, -1);
		} else {
			t_assert_int(r, 0);
			t_assert_str(verb, cases[i].verb);
			if (cases[i].args == NULL)
				t_assert(args == NULL);
			else
				t_assert_str(args, cases[i].args);
		}
		free(line);
	}
	t_end();
}

static void
test_number(void)
{
	uint32_t n;
	const char *rest;

	t_begin("number");
	t_assert_int(pop3_parse_number("1", &n, NULL), 0);
	t_assert_int(n, 1);
	t_assert_int(pop3_parse_number("0", &n, NULL), 0);
	t_assert_int(n, 0);
	t_assert_int(pop3_parse_number("4294967295", &n, NULL), 0);
	t_assert_int(n, 4294967295u);
	t_assert_int(pop3_parse_number("4294967296", &n, NULL), -1);
	t_assert_int(pop3_parse_number("99999999999999999999", &n, NULL), -1);
	t_assert_int(pop3_parse_number("-1", &n, NULL), -1);
	t_assert_int(pop3_parse_number("+1", &n, NULL), -1);
	t_assert_int(pop3_parse_number("1x", &n, NULL), -1);
	t_assert_int(pop3_parse_number("1 2", &n, NULL), -1);
	t_assert_int(pop3_parse_number("", &n, NULL), -1);
	t_assert_int(pop3_parse_number(NULL, &n, NULL), -1);
	t_assert_int(pop3_parse_number("3 10", &n, &rest), 0);
	t_assert_int(n, 3);
	t_assert_str(rest, "10");
	t_assert_int(pop3_parse_number("3", &n, &rest), 0);
	t_assert(rest == NULL);
	t_assert_int(pop3_parse_number("3  ", &n, &rest), 0);
	t_assert(rest == NULL);
	t_assert_int(pop3_parse_number("3x 1", &n, &rest), -1);
	t_end();
}

/* Stuff in with the given cut points (chunk boundaries), then end. */
static char *
stuff_all(const char *in, size_t len, bool top, uint64_t lines,
    const size_t *cuts, size_t ncuts, size_t *olen_r)
{
	struct pop3_stuff st;
	char *out = malloc(2 * len + 8);
	size_t o = 0, prev = 0;

	pop3_stuff_init(&st, top, lines);
	for (size_t i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : len;

		o += pop3_stuff_run(&st, in + prev, end - prev, out + o);
		prev = end;
	}
	o += pop3_stuff_end(&st, out + o);
	out[o] = '\0';
	*olen_r = o;
	return out;
}

static const struct {
	const char *in, *out;
} stuff_cases[] = {
	{ "", ".\r\n" },
	{ "a\r\n", "a\r\n.\r\n" },
	{ ".\r\n", "..\r\n.\r\n" },
	{ "..\r\n", "...\r\n.\r\n" },
	{ "a\r\n.\r\nb\r\n", "a\r\n..\r\nb\r\n.\r\n" },
	{ "x.y\r\n.z\r\n", "x.y\r\n..z\r\n.\r\n" },
	{ "no eol", "no eol\r\n.\r\n" },
	{ ".", "..\r\n.\r\n" },
	{ "a\r\n\r\n.\r\n.", "a\r\n\r\n..\r\n..\r\n.\r\n" },
	{ "bare\n.lf\n", "bare\n..lf\n.\r\n" },
};

static void
test_stuff_table(void)
{
	t_begin("stuff table");
	for (size_t i = 0; i < sizeof(stuff_cases) / sizeof(stuff_cases[0]);
	    i++) {
		size_t olen;
		char *out = stuff_all(stuff_cases[i].in,
		    strlen(stuff_cases[i].in), false, 0, NULL, 0, &olen);

		t_assert_str(out, stuff_cases[i].out);
		free(out);
	}
	t_end();
}

/* Every split point, every pair of split points, and byte by byte. */
static void
test_stuff_splits(void)
{
	const char *msg = "From: a\r\n.Subject: x\r\n\r\n.\r\n..two\r\n"
	    "mid.dle\r\n.\r\n.last";
	size_t len = strlen(msg), olen, rlen;
	char *ref = stuff_all(msg, len, false, 0, NULL, 0, &rlen);
	size_t *cuts = malloc(len * sizeof(*cuts));

	t_begin("stuff every split");
	for (size_t a = 0; a <= len; a++) {
		for (size_t b = a; b <= len; b++) {
			size_t c[2] = { a, b };
			char *out = stuff_all(msg, len, false, 0, c, 2, &olen);

			t_assert(olen == rlen && memcmp(out, ref, olen) == 0);
			free(out);
		}
	}
	for (size_t i = 0; i < len; i++)
		cuts[i] = i;
	{
		char *out = stuff_all(msg, len, false, 0, cuts, len, &olen);

		t_assert(olen == rlen && memcmp(out, ref, olen) == 0);
		free(out);
	}
	t_end();

	/* TOP at every split point too. */
	t_begin("top every split");
	for (uint64_t lines = 0; lines < 6; lines++) {
		char *tref = stuff_all(msg, len, true, lines, NULL, 0, &rlen);

		for (size_t a = 0; a <= len; a++) {
			size_t c[1] = { a };
			char *out = stuff_all(msg, len, true, lines, c, 1,
			    &olen);

			t_assert(olen == rlen && memcmp(out, tref, olen) == 0);
			free(out);
		}
		{
			char *out = stuff_all(msg, len, true, lines, cuts, len,
			    &olen);

			t_assert(olen == rlen && memcmp(out, tref, olen) == 0);
			free(out);
		}
		free(tref);
	}
	t_end();
	free(cuts);
	free(ref);
}

static void
test_top(void)
{
	static const struct {
		const char *in;
		uint64_t lines;
		const char *out;
	} cases[] = {
		{ "H: 1\r\n\r\nb1\r\nb2\r\nb3\r\n", 0, "H: 1\r\n\r\n.\r\n" },
		{ "H: 1\r\n\r\nb1\r\nb2\r\nb3\r\n", 2,
		  "H: 1\r\n\r\nb1\r\nb2\r\n.\r\n" },
		{ "H: 1\r\n\r\nb1\r\n", 10, "H: 1\r\n\r\nb1\r\n.\r\n" },
		{ "H: 1\r\nH: 2\r\n", 3, "H: 1\r\nH: 2\r\n.\r\n" },
		{ "H: 1\r\n\r\n.b1\r\n\r\nb3\r\n", 2,
		  "H: 1\r\n\r\n..b1\r\n\r\n.\r\n" },
		{ "H: 1\n\n.b1\nb2\n", 1, "H: 1\n\n..b1\n.\r\n" },
		{ "\r\nbody\r\n", 0, "\r\n.\r\n" },
	};

	t_begin("top");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t olen;
		char *out = stuff_all(cases[i].in, strlen(cases[i].in), true,
		    cases[i].lines, NULL, 0, &olen);

		t_assert_str(out, cases[i].out);
		free(out);
	}
	t_end();
}

int
main(void)
{
	test_split();
	test_number();
	test_stuff_table();
	test_stuff_splits();
	test_top();
	return t_exit();
}
