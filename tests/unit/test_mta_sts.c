/* MTA-STS pure parts (smtpd/mta_sts_policy.c): the TXT record, the
 * policy file, MX patterns (RFC 8461 3.1, 3.2, 4.1). */
#include "smtpd/mta_sts.h"

#include <stdlib.h>
#include <string.h>

#include "tests/unit/t.h"

static int
txt(const char *a, const char *b, char *id)
{
	const char *rr[2] = { a, b };

	return mta_sts_txt_id(rr, b != NULL ? 2 : 1, id);
}

static void
test_txt(void)
{
	char id[MTA_STS_ID_MAX + 1];

	t_begin("txt");
	t_assert_int(txt("v=STSv1; id=20160831085700Z;", NULL, id), 0);
	t_assert_str(id, "20160831085700Z");
	t_assert_int(txt("v=STSv1;id=abc", NULL, id), 0);
	t_assert_str(id, "abc");
	/* Other records are ignored; two STS records are none. */
	t_assert_int(txt("v=spf1 -all", "v=STSv1; id=x1", id), 0);
	t_assert_str(id, "x1");
	t_assert_int(txt("v=STSv1; id=a", "v=STSv1; id=b", id), -1);
	/* The version first; an id of 1..32 alphanumerics. */
	t_assert_int(txt("id=a; v=STSv1", NULL, id), -1);
	t_assert_int(txt("v=STSv1;", NULL, id), -1);
	t_assert_int(txt("v=STSv1; id=a-b", NULL, id), -1);
	t_assert_int(txt("v=STSv1; id=", NULL, id), -1);
	t_assert_int(txt("v=STSv1; id=123456789012345678901234567890123",
	    NULL, id), -1);
	t_assert_int(txt("v=STSv10; id=a", NULL, id), -1);
	/* Extensions are allowed. */
	t_assert_int(txt("v=STSv1; ext=1; id=z9 ;", NULL, id), 0);
	t_assert_str(id, "z9");
	t_end();
}

static struct mta_sts_policy *
parse(const char *body, const char **error_r)
{
	return mta_sts_policy_parse(body, strlen(body), "id1", error_r);
}

static void
test_policy(void)
{
	struct mta_sts_policy *p;
	const char *e = NULL;
	char *big;

	t_begin("policy");
	p = parse("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
	    "mx: *.Example.NET.\r\nmax_age: 604800\r\n", &e);
	t_assert(p != NULL);
	t_assert_int(p->mode, MTA_STS_ENFORCE);
	t_assert_int(p->max_age, 604800);
	t_assert_int(p->nmx, 2);
	t_assert_str(p->mx[1], "*.example.net");
	t_assert_str(p->id, "id1");
	t_assert(mta_sts_mx_match(p, "MAIL.example.com."));
	t_assert(mta_sts_mx_match(p, "mx1.example.net"));
	t_assert(!mta_sts_mx_match(p, "example.net"));
	t_assert(!mta_sts_mx_match(p, "a.mx1.example.net"));
	t_assert(!mta_sts_mx_match(p, "mail.example.com.evil"));
	t_assert(!mta_sts_mx_match(p, "xmail.example.com"));
	mta_sts_policy_unref(p);

	/* LF only, blanks around ":", max_age capped at a year. */
	p = parse("version:STSv1\nmode :testing\nmx: a.test\n"
	    "max_age: 9999999999\nfoo: bar\n", &e);
	t_assert(p != NULL);
	t_assert_int(p->mode, MTA_STS_TESTING);
	t_assert_int(p->max_age, MTA_STS_MAX_AGE_MAX);
	mta_sts_policy_unref(p);

	/* none needs no mx. */
	p = parse("version: STSv1\nmode: none\nmax_age: 1\n", &e);
	t_assert(p != NULL);
	mta_sts_policy_unref(p);

	t_assert(parse("version: STSv2\nmode: enforce\nmx: a\nmax_age: 1\n",
	    &e) == NULL);
	t_assert(parse("version: STSv1\nmode: enforce\nmax_age: 1\n", &e) ==
	    NULL);
	t_assert_str(e, "no mx");
	t_assert(parse("version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n",
	    &e) == NULL);
	t_assert(parse("version: STSv1\nmode: enforce\nmx: a\n", &e) ==
	    NULL);
	t_assert(parse("version: STSv1\nmode: enforce\nmx: a\n"
	    "max_age: 12345678901\n", &e) == NULL);
	t_assert(parse("version: STSv1\nmode: enforce\nmx: a b\n"
	    "max_age: 1\n", &e) == NULL);
	t_assert(parse("version: STSv1\nmode: enforce\nmx: a..b\n"
	    "max_age: 1\n", &e) == NULL);
	t_assert(parse("<html>\nmode: enforce\n", &e) == NULL);

	/* Size limit. */
	big = malloc(MTA_STS_BODY_MAX + 2);
	memset(big, '\n', MTA_STS_BODY_MAX + 1);
	big[MTA_STS_BODY_MAX + 1] = '\0';
	t_assert(parse(big, &e) == NULL);
	t_assert_str(e, "policy larger than 64 KiB");
	free(big);
	t_end();
}

int
main(void)
{
	test_txt();
	test_policy();
	return t_exit();
}
