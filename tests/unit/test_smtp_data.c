/*
 * smtpd/data.c: the DATA/BDAT decoder, fed every split point of every
 * case (each prefix then the rest, and byte by byte): end of data only at
 * <CRLF>.<CRLF>, dot-unstuffing, bare CR/LF flagged, the six smuggling
 * variants never end data.
 */
#include "smtpd/smtpd.h"
#include "t.h"

#include <stdlib.h>
#include <string.h>

#define nitems_t(a) (sizeof(a) / sizeof((a)[0]))

struct data_case {
	const char *name;
	const char *in;		/* DATA input after "DATA\r\n" */
	const char *out;	/* decoded message */
	bool done;		/* end of data seen */
	size_t consumed;	/* input bytes consumed (0: all) */
	bool bare;
	bool dot;		/* DATA (true) or BDAT (false) */
};

static const struct data_case cases[] = {
	{ "empty", ".\r\n", "", true, 0, false, true },
	{ "simple", "a\r\nb\r\n.\r\n", "a\r\nb\r\n", true, 0, false, true },
	{ "stuffed", "..x\r\n..\r\n.\r\n", ".x\r\n.\r\n", true, 0, false,
	    true },
	{ "trailing", "a\r\n.\r\nMAIL FROM:<>\r\n", "a\r\n", true, 6, false,
	    true },
	{ "8bit", "\xc3\xa9t\xc3\xa9\r\n.\r\n", "\xc3\xa9t\xc3\xa9\r\n", true,
	    0, false, true },
	{ "notend-dotx", "a\r\n.x\r\n", "a\r\nx\r\n", false, 0, false, true },
	/* The six SMTP smuggling variants: never an end of data. */
	{ "smuggle-lf-dot-lf", "a\n.\nb", "a\n.\nb", false, 0, true, true },
	{ "smuggle-cr-dot-cr", "a\r.\rb", "a\r.\rb", false, 0, true, true },
	{ "smuggle-lf-dot-crlf", "a\n.\r\nb", "a\n.\r\nb", false, 0, true,
	    true },
	{ "smuggle-crlf-dot-lf", "a\r\n.\nb", "a\r\n\nb", false, 0, true,
	    true },
	{ "smuggle-crlf-dot-cr", "a\r\n.\rb", "a\r\n\rb", false, 0, true,
	    true },
	{ "smuggle-cr-dot-crlf", "a\r.\r\nb", "a\r.\r\nb", false, 0, true,
	    true },
	{ "crlf-dot-cr-cr-lf", "a\r\n.\r\r\nb", "a\r\n\r\r\nb", false, 0,
	    true, true },
	{ "bare-lf-line", "a\nb\r\n.\r\n", "a\nb\r\n", true, 0, true, true },
	{ "cr-cr-lf", "a\r\r\n.\r\n", "a\r\r\n", true, 0, true, true },
	{ "bdat-plain", "a\r\n.\r\nb", "a\r\n.\r\nb", false, 0, false,
	    false },
	{ "bdat-bare", "a\nb", "a\nb", false, 0, true, false },
	{ "bdat-trailing-cr", "a\r", "a\r", false, 0, true, false },
};

/* Feed in as the given pieces; returns the decoded output (caller frees). */
static char *
run(const struct data_case *c, const size_t *cuts, size_t ncuts,
    struct smtp_data_parser *p, size_t *consumed_r)
{
	size_t len = strlen(c->in), pos = 0, olen, used, total = 0, k;
	char *out = calloc(1, 2 * len + 8);
	char *buf = malloc(len + 2);

	smtp_data_init(p, c->dot);
	for (k = 0; k <= ncuts && !smtp_data_is_done(p); k++) {
		size_t end = k < ncuts ? cuts[k] : len;
		if (end < pos)
			end = pos;
		used = smtp_data_feed(p, c->in + pos, end - pos, buf, &olen);
		memcpy(out + total, buf, olen);
		total += olen;
		pos += used;
	}
	if (!c->dot) {
		olen = smtp_data_finish(p, buf);
		memcpy(out + total, buf, olen);
		total += olen;
	}
	out[total] = '\0';
	*consumed_r = pos;
	free(buf);
	return out;
}

static void
check(const struct data_case *c, const size_t *cuts, size_t ncuts)
{
	struct smtp_data_parser p;
	size_t consumed;
	char *out = run(c, cuts, ncuts, &p, &consumed);

	t_assert_str(out, c->out);
	t_assert_int(smtp_data_is_done(&p), c->done);
	t_assert_int(p.bare, c->bare);
	t_assert_int(consumed, c->consumed ? c->consumed : strlen(c->in));
	free(out);
}

/*
 * The decoder as a plain byte-at-a-time state machine (how data.c was
 * first written): the reference the bulk-copying one must match.
 */
static size_t
ref_feed(struct smtp_data_parser *p, const char *in, size_t len, char *out,
    size_t *outlen_r)
{
	size_t i, o = 0;
	char ch;

	for (i = 0; i < len && p->state != SMTP_DATA_END; i++) {
		ch = in[i];
		switch (p->state) {
		case SMTP_DATA_BOL:
			if (ch == '.' && p->dot) {
				p->state = SMTP_DATA_DOT;
				break;
			}
			/* FALLTHROUGH */
		case SMTP_DATA_MID:
			if (ch == '\r') {
				p->state = SMTP_DATA_CR;
			} else {
				if (ch == '\n')
					p->bare = true;
				out[o++] = ch;
				p->state = SMTP_DATA_MID;
			}
			break;
		case SMTP_DATA_CR:
			out[o++] = '\r';
			if (ch == '\n') {
				out[o++] = '\n';
				p->state = SMTP_DATA_BOL;
			} else if (ch == '\r') {
				p->bare = true;
			} else {
				p->bare = true;
				out[o++] = ch;
				p->state = SMTP_DATA_MID;
			}
			break;
		case SMTP_DATA_DOT:
			if (ch == '\r') {
				p->state = SMTP_DATA_DOT_CR;
			} else {
				if (ch == '\n')
					p->bare = true;
				out[o++] = ch;
				p->state = SMTP_DATA_MID;
			}
			break;
		case SMTP_DATA_DOT_CR:
			if (ch == '\n') {
				p->state = SMTP_DATA_END;
				break;
			}
			p->bare = true;
			out[o++] = '\r';
			if (ch == '\r') {
				p->state = SMTP_DATA_CR;
			} else {
				out[o++] = ch;
				p->state = SMTP_DATA_MID;
			}
			break;
		}
	}
	*outlen_r = o;
	return i;
}

/* Random inputs over a small alphabet (so CR, LF, dots and line starts
 * are frequent), random splits: same output, state and consumption. */
static void
test_random_equivalence(void)
{
	static const char alphabet[] = "\r\n.ab";
	char in[256], out_a[600], out_b[600], buf[300];
	unsigned seed = 12345;

	t_begin("bulk decoder matches the byte-at-a-time reference");
	for (int round = 0; round < 20000; round++) {
		struct smtp_data_parser pa, pb;
		size_t len, pos_a = 0, pos_b = 0, na = 0, nb = 0, olen, used;
		bool dot;

		seed = seed * 1103515245u + 12345u;
		len = (seed >> 16) % sizeof(in);
		dot = (seed >> 8) & 1;
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			in[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
		}
		smtp_data_init(&pa, dot);
		smtp_data_init(&pb, dot);
		while (pos_a < len && !smtp_data_is_done(&pa)) {
			size_t piece;

			seed = seed * 1103515245u + 12345u;
			piece = 1 + (seed >> 16) % 40;
			if (piece > len - pos_a)
				piece = len - pos_a;
			used = smtp_data_feed(&pa, in + pos_a, piece, buf,
			    &olen);
			memcpy(out_a + na, buf, olen);
			na += olen;
			pos_a += used;
		}
		used = ref_feed(&pb, in, len, out_b, &nb);
		pos_b = used;
		t_assert_int(pos_a, pos_b);
		t_assert_int(na, nb);
		t_assert(memcmp(out_a, out_b, na) == 0);
		t_assert_int(pa.state, pb.state);
		t_assert_int(pa.bare, pb.bare);
	}
	t_end();
}

int
main(void)
{
	size_t i, j, len;
	size_t *cuts;

	for (i = 0; i < nitems_t(cases); i++) {
		const struct data_case *c = &cases[i];

		len = strlen(c->in);
		t_begin(c->name);
		check(c, NULL, 0);
		/* Each prefix, then the rest. */
		for (j = 0; j <= len; j++)
			check(c, &j, 1);
		/* Byte by byte. */
		cuts = malloc((len + 1) * sizeof(*cuts));
		for (j = 0; j < len; j++)
			cuts[j] = j + 1;
		check(c, cuts, len);
		free(cuts);
		t_end();
	}
	test_random_equivalence();
	return t_exit();
}
