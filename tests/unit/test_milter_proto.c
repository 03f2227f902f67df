/*
 * smtpd/milter_proto.c and milter_apply.c, without sockets: the exact
 * bytes of each command we send (libmilter's mfdef.h layout), packet
 * framing fed at every split point, each reply decoded (and malformed
 * ones refused), and the message view plus its rewrite for each
 * end-of-body modification, byte for byte.
 */
#include "smtpd/milter.h"
#include "smtpd/milter_proto.h"
#include "t.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define nitems_t(a) (sizeof(a) / sizeof((a)[0]))

static int
bytes_eq(const struct milter_buf *b, const void *want, size_t len)
{
	return b->len == len && memcmp(b->p, want, len) == 0;
}

static void
test_encode(void)
{
	struct milter_buf b = { 0 };
	const char *n[] = { "j", "{daemon_name}", "{auth_type}" };
	const char *v[] = { "mx.test", "carteiro-mx", NULL };
	const char *s[] = { "<a@b.test>" };

	t_begin("encode optneg");
	milter_enc_optneg(&b, 6, 0xff, 0x1ff7ff);
	t_assert(bytes_eq(&b, "\0\0\0\x0dO\0\0\0\x06\0\0\0\xff\0\x1f\xf7\xff",
	    17));
	milter_buf_free(&b);
	t_end();

	t_begin("encode macros (NULL values left out)");
	milter_enc_macros(&b, 'C', n, v, 3);
	t_assert(bytes_eq(&b, "\0\0\0\x26" "DCj\0mx.test\0{daemon_name}\0"
	    "carteiro-mx\0", 42));
	milter_buf_free(&b);
	t_end();

	t_begin("encode connect");
	milter_enc_connect(&b, "unknown", '4', 2525, "127.0.0.1");
	t_assert(bytes_eq(&b, "\0\0\0\x16" "Cunknown\0" "4\x09\xdd"
	    "127.0.0.1\0", 26));
	milter_buf_free(&b);
	milter_enc_connect(&b, "h", 'U', 0, NULL);
	t_assert(bytes_eq(&b, "\0\0\0\x04" "Ch\0U", 8));
	milter_buf_free(&b);
	t_end();

	t_begin("encode mail, header, body, eob");
	milter_enc_strs(&b, MILTER_CMD_MAIL, s, 1);
	milter_enc_header(&b, "Subject", "hi");
	milter_enc_body(&b, "x\r\n", 3);
	milter_enc_cmd(&b, MILTER_CMD_BODYEOB);
	t_assert(bytes_eq(&b, "\0\0\0\x0c" "M<a@b.test>\0"
	    "\0\0\0\x0c" "LSubject\0hi\0"
	    "\0\0\0\x04" "Bx\r\n"
	    "\0\0\0\x01" "E", 16 + 16 + 8 + 5));
	milter_buf_free(&b);
	t_end();
}

static void
test_take(void)
{
	static const unsigned char pkt[] = "\0\0\0\x03" "yab" "\0\0\0\x01" "c";
	const unsigned char *data;
	size_t dlen, used, i;
	char cmd;

	t_begin("packet framing at every split point");
	for (i = 0; i < 7; i++)
		t_assert_int(milter_pkt_take(pkt, i, &cmd, &data, &dlen,
		    &used), 1);
	t_assert_int(milter_pkt_take(pkt, 7, &cmd, &data, &dlen, &used), 0);
	t_assert_int(cmd, 'y');
	t_assert_int(dlen, 2);
	t_assert_int(used, 7);
	t_assert(memcmp(data, "ab", 2) == 0);
	t_assert_int(milter_pkt_take(pkt + 7, 5, &cmd, &data, &dlen, &used),
	    0);
	t_assert_int(cmd, 'c');
	t_assert_int(dlen, 0);
	t_assert_int(milter_pkt_take((const unsigned char *)"\0\0\0\0", 4,
	    &cmd, &data, &dlen, &used), -1);
	t_assert_int(milter_pkt_take((const unsigned char *)"\x7f\0\0\0", 4,
	    &cmd, &data, &dlen, &used), -1);
	t_end();
}

struct decode_case {
	char cmd;
	const char *data;
	size_t len;
	int rc;
	uint32_t index;
	const char *name, *value, *args;
};

static const struct decode_case decode_cases[] = {
	{ 'O', "\0\0\0\x06\0\0\0\x3f\0\0\0\x10", 12, 0, 0, NULL, NULL, NULL },
	{ 'O', "\0\0\0\x06\0\0\0\x3f\0\0\0", 11, -1, 0, NULL, NULL, NULL },
	{ 'h', "X-A\0v 1\0", 8, 0, 0, "X-A", "v 1", NULL },
	{ 'h', "X-A\0v 1", 7, -1, 0, NULL, NULL, NULL },
	{ 'h', "\0v\0", 3, -1, 0, NULL, NULL, NULL },
	{ 'i', "\0\0\0\x02X-B\0w\0", 10, 0, 2, "X-B", "w", NULL },
	{ 'm', "\0\0\0\x01Subject\0\0", 13, 0, 1, "Subject", "", NULL },
	{ 'm', "\0\0\0", 3, -1, 0, NULL, NULL, NULL },
	{ '+', "<b@c>\0", 6, 0, 0, NULL, "<b@c>", NULL },
	{ '-', "<b@c>", 5, -1, 0, NULL, NULL, NULL },
	{ '2', "<b@c>\0NOTIFY=NEVER\0", 19, 0, 0, NULL, "<b@c>",
	  "NOTIFY=NEVER" },
	{ 'e', "<x@y>\0", 6, 0, 0, NULL, "<x@y>", NULL },
	{ 'q', "spam\0", 5, 0, 0, NULL, "spam", NULL },
	{ 'y', "554 5.7.1 Gtube pattern\0", 24, 0, 0, NULL,
	  "554 5.7.1 Gtube pattern", NULL },
	{ 'y', "250 ok\0", 7, -1, 0, NULL, NULL, NULL },
	{ 'y', "55x no\0", 7, -1, 0, NULL, NULL, NULL },
	{ 'c', "", 0, 0, 0, NULL, NULL, NULL },
};

static void
test_decode(void)
{
	struct milter_reply r;
	size_t i;

	t_begin("reply decoding");
	for (i = 0; i < nitems_t(decode_cases); i++) {
		const struct decode_case *c = &decode_cases[i];
		int rc = milter_reply_decode(c->cmd,
		    (const unsigned char *)c->data, c->len, &r);

		t_assert_int(rc, c->rc);
		if (rc != 0)
			continue;
		t_assert_int(r.cmd, c->cmd);
		t_assert_int(r.index, c->index);
		if (c->name != NULL)
			t_assert_str(r.name, c->name);
		if (c->value != NULL)
			t_assert_str(r.value, c->value);
		if (c->args != NULL)
			t_assert_str(r.args, c->args);
	}
	milter_reply_decode('O', (const unsigned char *)
	    "\0\0\0\x06\0\0\0\x3f\0\0\0\x10", 12, &r);
	t_assert_int(r.version, 6);
	t_assert_int(r.actions, 0x3f);
	t_assert_int(r.protocol, 0x10);
	milter_reply_decode('b', (const unsigned char *)"new\r\n", 5, &r);
	t_assert_int(r.bodylen, 5);
	t_assert_int(milter_replycode_class("451 4.7.1 later"), 4);
	t_assert_int(milter_replycode_class("550"), 5);
	t_assert_int(milter_replycode_class("550-multi"), 5);
	t_assert_int(milter_replycode_class("5500 x"), 0);
	t_end();
}

#define PREFIX "Received: from x\r\n\tby y; date\r\n" \
	"Authentication-Results: y; spf=none\r\n"
#define MSG "From: a@b\r\nSubject: one\r\n two\r\nX-A: 1\r\nX-A: 2\r\n" \
	"\r\nbody\r\n"

/* Rewrite MSG (behind PREFIX) with res; the new message, NUL-ended. */
static char *
rewrite(struct milter_result *res, size_t mem_max, int *fd_r)
{
	struct milter_msg m;
	unsigned char *mem;
	uint64_t size;
	char *out;
	int fd;

	t_assert_int(milter_msg_load(&m, PREFIX, -1,
	    (const unsigned char *)MSG, strlen(MSG), 1 << 20), 0);
	t_assert_int(milter_apply(&m, res, "/tmp", mem_max, &fd, &mem,
	    &size), 0);
	milter_msg_clear(&m);
	out = calloc(1, (size_t)size + 1);
	if (fd >= 0) {
		t_assert_int(pread(fd, out, (size_t)size, 0), (ssize_t)size);
		close(fd);
	} else {
		memcpy(out, mem, (size_t)size);
		free(mem);
	}
	if (fd_r != NULL)
		*fd_r = fd;
	return out;
}

static void
test_load(void)
{
	struct milter_msg m;
	char buf[16];

	t_begin("message view: prefix fields, folds as LF, body offset");
	t_assert_int(milter_msg_load(&m, PREFIX, -1,
	    (const unsigned char *)MSG, strlen(MSG), 1 << 20), 0);
	t_assert_int(m.nh, 6);
	t_assert_str(m.h[0].name, "Received");
	t_assert_str(m.h[0].value, " from x\n\tby y; date");
	t_assert_str(m.h[1].name, "Authentication-Results");
	t_assert_str(m.h[3].value, " one\n two");
	t_assert_str(m.h[3].raw, "Subject: one\r\n two\r\n");
	t_assert(m.blank);
	t_assert_int(m.body_len, 6);
	t_assert_int(milter_msg_body_read(&m, buf, sizeof(buf), 0), 6);
	t_assert(memcmp(buf, "body\r\n", 6) == 0);
	milter_msg_clear(&m);
	/* No empty line: the body starts at the first non-field line. */
	t_assert_int(milter_msg_load(&m, "", -1,
	    (const unsigned char *)"A: 1\r\nnot a field\r\n", 19, 1 << 20), 0);
	t_assert_int(m.nh, 1);
	t_assert(!m.blank);
	t_assert_int(m.body_off, 6);
	milter_msg_clear(&m);
	/* The header limit. */
	t_assert_int(milter_msg_load(&m, "", -1,
	    (const unsigned char *)"A: 1\r\nB: 2\r\n\r\n", 14, 8), -1);
	t_end();
}

static void
test_apply(void)
{
	struct milter_mod mods[] = {
		{ MILTER_R_ADDHEADER, 0, "X-New", "v" },
		{ MILTER_R_INSHEADER, 0, "X-Top", "t" },
		{ MILTER_R_CHGHEADER, 2, "x-a", "two\n\tfolded" },
		{ MILTER_R_CHGHEADER, 1, "Subject", "" },
		{ MILTER_R_CHGHEADER, 1, "X-Missing", "added" },
		{ MILTER_R_CHGHEADER, 1, "X-Gone", "" },
		{ MILTER_R_ADDRCPT, 0, NULL, "<c@d>" },
	};
	struct milter_result res;
	char *out;
	int fd;

	t_begin("apply: add, insert, change (nth, folded), delete");
	memset(&res, 0, sizeof(res));
	res.mods = mods;
	res.nmods = nitems_t(mods);
	t_assert(milter_result_rewrites(&res));
	t_assert(!milter_result_flags_spam(&res));
	out = rewrite(&res, 1 << 20, NULL);
	t_assert_str(out, "X-Top: t\r\n" PREFIX "From: a@b\r\nX-A: 1\r\n"
	    "X-A: two\r\n\tfolded\r\nX-New: v\r\nX-Missing: added\r\n"
	    "\r\nbody\r\n");
	free(out);
	t_end();

	t_begin("apply: replaced body (LF to CRLF), to a file past mem_max");
	memset(&res, 0, sizeof(res));
	res.body_replaced = true;
	res.body = (unsigned char *)"new\nbody\r\n";
	res.bodylen = 10;
	out = rewrite(&res, 16, &fd);
	t_assert(fd >= 0);
	t_assert(strcmp(out, PREFIX "From: a@b\r\nSubject: one\r\n two\r\n"
	    "X-A: 1\r\nX-A: 2\r\n\r\nnew\r\nbody\r\n") == 0);
	free(out);
	t_end();

	t_begin("apply: quarantine and X-Spam: Yes flag for Thunderbird");
	memset(&res, 0, sizeof(res));
	res.quarantine = (char *)"bad\x01stuff";
	out = rewrite(&res, 1 << 20, NULL);
	t_assert_str(out, PREFIX "From: a@b\r\nSubject: one\r\n two\r\n"
	    "X-A: 1\r\nX-A: 2\r\nX-Spam-Flag: YES\r\n"
	    "X-Spam-Status: Yes, quarantined=\"bad?stuff\"\r\n\r\nbody\r\n");
	free(out);
	memset(&res, 0, sizeof(res));
	mods[0].name = (char *)"X-Spam";
	mods[0].value = (char *)"Yes";
	res.mods = mods;
	res.nmods = 1;
	t_assert(milter_result_flags_spam(&res));
	out = rewrite(&res, 1 << 20, NULL);
	t_assert(strstr(out, "X-A: 2\r\nX-Spam: Yes\r\nX-Spam-Flag: YES\r\n"
	    "X-Spam-Status: Yes, flagged by content filter\r\n\r\nbody\r\n")
	    != NULL);
	free(out);
	t_end();
}

int
main(void)
{
	test_encode();
	test_take();
	test_decode();
	test_load();
	test_apply();
	return t_exit();
}
