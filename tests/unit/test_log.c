/*
 * log: log_value / log_escape turn any input into exactly one key=value
 * field that decodes back to the input (issue #11 item 11: an address like
 * "x result=ok kind=failed"@ext.test must not forge fields), and a control
 * byte that reaches the sink never starts a second line.
 */
#include "common/log.h"
#include "t.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

/*
 * A strict parser for one value as a log reader would take it: a token
 * (no space, '"', '\\' or '=') or a quoted string whose only escape is
 * \xNN. Decodes into out; returns the bytes consumed, 0 when malformed.
 */
static size_t
parse_value(const char *s, char *out, size_t *outlen)
{
	size_t i = 0, o = 0;

	if (s[0] != '"') {
		while (s[i] != '\0' && s[i] != ' ') {
			if (s[i] == '"' || s[i] == '\\' || s[i] == '=')
				return 0;
			out[o++] = s[i++];
		}
		*outlen = o;
		return i;
	}
	for (i = 1; s[i] != '"'; i++) {
		if (s[i] == '\0')
			return 0;
		if (s[i] == '\\') {
			unsigned v;
			char hex[3] = { 0, 0, 0 };

			if (s[i + 1] != 'x' || s[i + 2] == '\0' ||
			    s[i + 3] == '\0')
				return 0;
			memcpy(hex, s + i + 2, 2);
			if (sscanf(hex, "%2x", &v) != 1)
				return 0;
			out[o++] = (char)v;
			i += 3;
			continue;
		}
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
		out[o++] = s[i];
	}
	*outlen = o;
	return i + 1;
}

/* "k=<value>" is one field, nothing after it, and decodes to s[0..len). */
static bool
one_field(const char *s, size_t len)
{
	char buf[LOG_ESCAPE_MAX], line[LOG_ESCAPE_MAX + 8], dec[LOG_ESCAPE_MAX];
	size_t n, declen = 0;

	snprintf(line, sizeof(line), "k=%s", log_value_n(buf, sizeof(buf), s,
	    len));
	n = parse_value(line + 2, dec, &declen);
	if (n == 0 || line[2 + n] != '\0')
		return false;
	if (len > 200)
		len = 200;
	return declen == len && memcmp(dec, s, len) == 0;
}

int
main(void)
{
	static const struct {
		const char *in;
		const char *want;
	} cases[] = {
		{ "alice@example.test", "alice@example.test" },
		{ "mx1.remote.test[127.0.0.2]", "mx1.remote.test[127.0.0.2]" },
		{ "<>", "<>" },
		{ "", "\"\"" },
		{ "\"x result=ok kind=failed\"@ext.test",
		  "\"\\x22x result=ok kind=failed\\x22@ext.test\"" },
		{ "a=b", "\"a=b\"" },
		{ "two words", "\"two words\"" },
		{ "back\\slash", "\"back\\x5cslash\"" },
		{ "x\r\nlevel=info event=forged",
		  "\"x\\x0d\\x0alevel=info event=forged\"" },
		{ "caf\xc3\xa9", "\"caf\\xc3\\xa9\"" },
		{ "tab\there", "\"tab\\x09here\"" },
	};
	char buf[LOG_ESCAPE_MAX], big[512];

	t_begin("log_value: tokens as they are, the rest quoted and escaped");
	for (size_t i = 0; i < nitems(cases); i++)
		t_assert_str(log_value(buf, sizeof(buf), cases[i].in),
		    cases[i].want);
	t_assert_str(log_value(buf, sizeof(buf), NULL), "-");
	t_assert_str(LOG_VALUE("a b"), "\"a b\"");
	t_assert_str(LOG_VALUE("ok"), "ok");
	/* log_value_n stops at len, NUL or not */
	t_assert_str(log_value_n(buf, sizeof(buf), "abc def", 3), "abc");
	t_assert_str(log_value_n(buf, sizeof(buf), "a\0b", 3),
	    "\"a\\x00b\"");
	t_end();

	t_begin("log_value: 200 bytes kept, more truncated and quoted");
	memset(big, 'a', sizeof(big));
	big[200] = '\0';
	t_assert_str(log_value(buf, sizeof(buf), big), big);
	big[200] = 'a';
	big[201] = '\0';
	{
		char want[204];

		want[0] = '"';
		memset(want + 1, 'a', 200);
		want[201] = '"';
		want[202] = '\0';
		t_assert_str(log_value(buf, sizeof(buf), big), want);
	}
	/* a small buffer never overflows */
	{
		char small[8];

		log_value(small, sizeof(small), "a b c d e f g");
		t_assert(strlen(small) < sizeof(small));
		t_assert(small[0] == '"' && small[strlen(small) - 1] == '"');
	}
	t_end();

	t_begin("log_value: every byte, alone and in company, is one field");
	for (unsigned c = 0; c < 256; c++) {
		char s[8];

		s[0] = (char)c;
		t_assert(one_field(s, 1));
		memcpy(s, "a", 1);
		s[1] = (char)c;
		s[2] = 'b';
		s[3] = ' ';
		s[4] = '=';
		t_assert(one_field(s, 5));
	}
	{
		unsigned seed = 11;

		for (int round = 0; round < 2000; round++) {
			size_t len = (size_t)(rand_r(&seed) % 260);

			for (size_t i = 0; i < len; i++) {
				/* mostly the dangerous bytes */
				static const char pick[] = " =\"\\\r\nak";
				int r = rand_r(&seed);

				big[i] = r % 3 ? pick[r % 8] : (char)(r >> 8);
			}
			t_assert(one_field(big, len));
		}
	}
	t_end();

	t_begin("the sink turns control bytes into '?': one event, one line");
	{
		char path[] = "/tmp/carteiro-log-XXXXXX";
		int fd = mkstemp(path), saved = dup(STDERR_FILENO);
		char out[256];
		ssize_t n;

		t_assert(fd >= 0 && saved >= 0);
		dup2(fd, STDERR_FILENO);
		log_init("test", 1, LOG_LVL_INFO);
		log_info("event=t.one v=%s", "a\nlevel=error event=forged\r");
		log_debug("event=t.hidden");
		log_warn("event=t.two v=%s", LOG_VALUE("a\nb"));
		dup2(saved, STDERR_FILENO);
		close(saved);
		n = pread(fd, out, sizeof(out) - 1, 0);
		t_assert(n > 0);
		out[n > 0 ? n : 0] = '\0';
		t_assert_str(out, "level=info event=t.one "
		    "v=a?level=error event=forged?\n"
		    "level=warn event=t.two v=\"a\\x0ab\"\n");
		close(fd);
		unlink(path);
	}
	t_end();

	return t_exit();
}
