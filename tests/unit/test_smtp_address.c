/*
 * smtpd/address.c: MAIL/RCPT argument parsing, table-driven: brackets,
 * null and bare postmaster paths, source routes, literals, % hacks, quoted
 * local parts, parameters (SIZE, BODY, SMTPUTF8, AUTH, unknown) and the
 * SMTPUTF8 rule for non-ASCII; also the BDAT argument parser.
 */
#include "smtpd/smtpd.h"
#include "t.h"

#define nitems_t(a) (sizeof(a) / sizeof((a)[0]))

struct path_case {
	const char *in;
	int kind;			/* enum smtp_path_kind */
	bool utf8ok;			/* RCPT: MAIL had SMTPUTF8 */
	enum smtp_path_err err;
	const char *addr;		/* on success */
	const char *flags;		/* n=null p=postmaster r=route
					 * l=literal %=percent s=size u=utf8 */
	unsigned long long size;
};

#define M SMTP_PATH_MAIL
#define R SMTP_PATH_RCPT

static const struct path_case cases[] = {
	{ "FROM:<a@example.test>", M, 0, SMTP_PATH_OK, "a@example.test", "",
	    0 },
	{ "from:<a@EXAMPLE.test>", M, 0, SMTP_PATH_OK, "a@example.test", "",
	    0 },
	{ "FROM: <a@example.test>", M, 0, SMTP_PATH_OK, "a@example.test", "",
	    0 },
	{ "FROM:<>", M, 0, SMTP_PATH_OK, "", "n", 0 },
	{ "FROM:a@example.test", M, 0, SMTP_PATH_ERR_BRACKETS, NULL, "", 0 },
	{ "FROM:<a@example.test", M, 0, SMTP_PATH_ERR_BRACKETS, NULL, "", 0 },
	{ "FROM:<a@example.test>x", M, 0, SMTP_PATH_ERR_BRACKETS, NULL, "",
	    0 },
	{ "TO:<a@example.test>", M, 0, SMTP_PATH_ERR_SYNTAX, NULL, "", 0 },
	{ "FROM <a@example.test>", M, 0, SMTP_PATH_ERR_SYNTAX, NULL, "", 0 },
	{ "FROM:<a@example.test> SIZE=1000", M, 0, SMTP_PATH_OK,
	    "a@example.test", "s", 1000 },
	{ "FROM:<a@example.test> size=12 BODY=8BITMIME", M, 0, SMTP_PATH_OK,
	    "a@example.test", "s", 12 },
	{ "FROM:<a@example.test> SIZE=", M, 0, SMTP_PATH_ERR_VALUE, NULL, "",
	    0 },
	{ "FROM:<a@example.test> SIZE=12x", M, 0, SMTP_PATH_ERR_VALUE, NULL,
	    "", 0 },
	{ "FROM:<a@example.test> SIZE=99999999999999999999", M, 0,
	    SMTP_PATH_OK, "a@example.test", "s", UINT64_MAX },
	{ "FROM:<a@example.test> BODY=BINARYMIME", M, 0, SMTP_PATH_ERR_VALUE,
	    NULL, "", 0 },
	{ "FROM:<a@example.test> FOO=bar", M, 0, SMTP_PATH_ERR_PARAM, NULL,
	    "", 0 },
	/* RFC 3461: RET/ENVID on MAIL only (dsn.c has the details). */
	{ "FROM:<a@example.test> RET=HDRS", M, 0, SMTP_PATH_OK,
	    "a@example.test", "", 0 },
	{ "FROM:<a@example.test> RET=BOGUS", M, 0, SMTP_PATH_ERR_VALUE, NULL,
	    "", 0 },
	{ "FROM:<a@example.test> NOTIFY=NEVER", M, 0, SMTP_PATH_ERR_PARAM,
	    NULL, "", 0 },
	{ "FROM:<a@example.test> AUTH=<>", M, 0, SMTP_PATH_OK,
	    "a@example.test", "", 0 },
	{ "FROM:<a@example.test> =x", M, 0, SMTP_PATH_ERR_VALUE, NULL, "",
	    0 },
	{ "FROM:<\xc3\xa9@example.test>", M, 0, SMTP_PATH_ERR_UTF8, NULL, "",
	    0 },
	{ "FROM:<\xc3\xa9@example.test> SMTPUTF8", M, 0, SMTP_PATH_OK,
	    "\xc3\xa9@example.test", "u", 0 },
	{ "FROM:<a@example.test> SMTPUTF8=yes", M, 0, SMTP_PATH_ERR_VALUE,
	    NULL, "", 0 },
	{ "FROM:<\"a b\"@example.test>", M, 0, SMTP_PATH_OK,
	    "\"a b\"@example.test", "", 0 },
	{ "FROM:<\"a>b\"@example.test>", M, 0, SMTP_PATH_OK,
	    "\"a>b\"@example.test", "", 0 },
	{ "FROM:<a..b@example.test>", M, 0, SMTP_PATH_ERR_ADDRESS, NULL, "",
	    0 },
	{ "FROM:<a@>", M, 0, SMTP_PATH_ERR_ADDRESS, NULL, "", 0 },
	{ "FROM:<@example.test>", M, 0, SMTP_PATH_ERR_ADDRESS, NULL, "", 0 },
	{ "FROM:<a\x01@example.test>", M, 0, SMTP_PATH_ERR_ADDRESS, NULL, "",
	    0 },
	{ "TO:<b@example.test>", R, 0, SMTP_PATH_OK, "b@example.test", "",
	    0 },
	{ "TO:<>", R, 0, SMTP_PATH_ERR_ADDRESS, NULL, "", 0 },
	{ "TO:<Postmaster>", R, 0, SMTP_PATH_OK, "postmaster", "p", 0 },
	{ "TO:<postmaster@example.test>", R, 0, SMTP_PATH_OK,
	    "postmaster@example.test", "", 0 },
	{ "TO:<@relay.test,@other.test:b@example.test>", R, 0, SMTP_PATH_OK,
	    "b@example.test", "r", 0 },
	{ "TO:<@relay.test:b@example.test>", R, 0, SMTP_PATH_OK,
	    "b@example.test", "r", 0 },
	{ "TO:<@relay.test b@example.test>", R, 0, SMTP_PATH_ERR_ADDRESS, NULL,
	    "", 0 },
	{ "TO:<b%other.test@example.test>", R, 0, SMTP_PATH_OK,
	    "b%other.test@example.test", "%", 0 },
	{ "TO:<other!b@example.test>", R, 0, SMTP_PATH_OK,
	    "other!b@example.test", "%", 0 },
	{ "TO:<b@[192.0.2.1]>", R, 0, SMTP_PATH_OK, "b@[192.0.2.1]", "l", 0 },
	{ "TO:<b@[IPv6:2001:db8::1]>", R, 0, SMTP_PATH_OK,
	    "b@[IPv6:2001:db8::1]", "l", 0 },
	{ "TO:<b@[192.0.2.1>", R, 0, SMTP_PATH_ERR_ADDRESS, NULL, "", 0 },
	/* RFC 3461: NOTIFY/ORCPT on RCPT only. */
	{ "TO:<b@example.test> NOTIFY=NEVER", R, 0, SMTP_PATH_OK,
	    "b@example.test", "", 0 },
	{ "TO:<b@example.test> NOTIFY=NEVER,DELAY", R, 0, SMTP_PATH_ERR_VALUE,
	    NULL, "", 0 },
	{ "TO:<b@example.test> RET=FULL", R, 0, SMTP_PATH_ERR_PARAM, NULL,
	    "", 0 },
	{ "TO:<b@example.test> SIZE=10", R, 0, SMTP_PATH_ERR_PARAM, NULL, "",
	    0 },
	{ "TO:<\xc3\xa9@example.test>", R, 0, SMTP_PATH_ERR_UTF8, NULL, "",
	    0 },
	{ "TO:<\xc3\xa9@example.test>", R, 1, SMTP_PATH_OK,
	    "\xc3\xa9@example.test", "u", 0 },
	{ "TO:<b@b\xc3\xbc" "cher.test>", R, 1, SMTP_PATH_OK,
	    "b@xn--bcher-kva.test", "u", 0 },
	{ "TO:b@example.test", R, 0, SMTP_PATH_ERR_BRACKETS, NULL, "", 0 },
};

static bool
has(const char *flags, char f)
{
	return strchr(flags, f) != NULL;
}

int
main(void)
{
	struct smtp_path p;
	const char *error;
	char name[300];
	size_t i;

	for (i = 0; i < nitems_t(cases); i++) {
		const struct path_case *c = &cases[i];
		enum smtp_path_err err;

		snprintf(name, sizeof(name), "path %zu: %s", i, c->in);
		t_begin(name);
		error = NULL;
		err = smtp_path_parse(c->in, (enum smtp_path_kind)c->kind,
		    c->utf8ok, &p, &error);
		t_assert_int(err, c->err);
		if (err == SMTP_PATH_OK && c->err == SMTP_PATH_OK) {
			t_assert_str(p.addr, c->addr);
			t_assert_int(p.null, has(c->flags, 'n'));
			t_assert_int(p.postmaster, has(c->flags, 'p'));
			t_assert_int(p.route, has(c->flags, 'r'));
			t_assert_int(p.literal, has(c->flags, 'l'));
			t_assert_int(p.percent, has(c->flags, '%'));
			t_assert_int(p.has_size, has(c->flags, 's'));
			t_assert_int(p.utf8, has(c->flags, 'u'));
			if (p.has_size)
				t_assert(p.size == c->size);
		} else {
			t_assert(error != NULL);
			t_assert(p.addr == NULL);
		}
		smtp_path_clear(&p);
		t_end();
	}

	t_begin("bdat args");
	{
		uint64_t n;
		bool last;
		t_assert_int(smtp_tx_parse_bdat("100", &n, &last), 0);
		t_assert(n == 100 && !last);
		t_assert_int(smtp_tx_parse_bdat("0 LAST", &n, &last), 0);
		t_assert(n == 0 && last);
		t_assert_int(smtp_tx_parse_bdat("5 last", &n, &last), 0);
		t_assert(n == 5 && last);
		t_assert_int(smtp_tx_parse_bdat("x", &n, &last), -1);
		t_assert_int(smtp_tx_parse_bdat("5 FIRST", &n, &last), -1);
		t_assert_int(smtp_tx_parse_bdat("5x", &n, &last), -1);
		t_assert_int(smtp_tx_parse_bdat("99999999999999999999999", &n,
		    &last), -1);
	}
	t_end();
	return t_exit();
}
