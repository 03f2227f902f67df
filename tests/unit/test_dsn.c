/*
 * Unit tests for smtpd/dsn.c (RFC 3461 parameters: NOTIFY, ORCPT, RET,
 * ENVID, xtext, limits), the parameters through smtp_path_parse, and the
 * RFC 3461 fields bounce_build writes from them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd/bounce.h"
#include "smtpd/dsn.h"
#include "smtpd/smtpd.h"
#include "t.h"

#define nitems_t(a) (sizeof(a) / sizeof((a)[0]))

enum { OTHER = DSN_PARAM_OTHER, OK = DSN_PARAM_OK, BAD = DSN_PARAM_BAD };

static void
test_xtext(void)
{
	static const struct {
		const char *in;
		int min;
		const char *out;	/* NULL: refused */
	} cases[] = {
		{ "abc", 33, "abc" },
		{ "a+2Bb", 33, "a+b" },
		{ "+3D+2B", 33, "=+" },
		{ "x+7E", 33, "x~" },
		{ "+20", 32, " " },
		{ "+20", 33, NULL },		/* min: graphic only */
		{ "+0A", 32, NULL },		/* no controls */
		{ "+7F", 32, NULL },
		{ "+C3+A9", 32, NULL },		/* US-ASCII only */
		{ "+2b", 33, NULL },		/* upper-case hex only */
		{ "+2", 33, NULL },		/* truncated */
		{ "ab+", 33, NULL },
		{ "a=b", 33, NULL },		/* "=" must be encoded */
		{ "a b", 32, NULL },		/* raw space is not xchar */
		{ "\xc3\xa9", 32, NULL },
		{ "", 33, "" },
	};
	size_t i;
	char *t;

	t_begin("xtext decoding");
	for (i = 0; i < nitems_t(cases); i++) {
		t = dsn_xtext_decode(cases[i].in, strlen(cases[i].in),
		    cases[i].min);
		if (cases[i].out == NULL) {
			if (t != NULL)
				printf("# %s decoded to %s\n", cases[i].in, t);
			t_assert(t == NULL);
		} else {
			t_assert(t != NULL);
			if (t != NULL)
				t_assert_str(t, cases[i].out);
		}
		free(t);
	}
	t_end();
}

static void
test_mail(void)
{
	static const struct {
		const char *k, *v;	/* v NULL: no "=" */
		int res;
		int ret;
		const char *envid;
	} cases[] = {
		{ "RET", "FULL", OK, DSN_RET_FULL, NULL },
		{ "ret", "hdrs", OK, DSN_RET_HDRS, NULL },
		{ "RET", "HEADERS", BAD, 0, NULL },
		{ "RET", "", BAD, 0, NULL },
		{ "RET", NULL, BAD, 0, NULL },
		{ "ENVID", "QQ314159", OK, 0, "QQ314159" },
		{ "Envid", "a+2Bb+3Dc", OK, 0, "a+2Bb+3Dc" },
		{ "ENVID", "", BAD, 0, NULL },
		{ "ENVID", NULL, BAD, 0, NULL },
		{ "ENVID", "a+20b", OK, 0, "a+20b" },	/* white space is ok */
		{ "ENVID", "a+09b", BAD, 0, NULL },	/* a control is not */
		{ "ENVID", "a+2xb", BAD, 0, NULL },
		{ "NOTIFY", "NEVER", OTHER, 0, NULL },	/* RCPT's */
		{ "ORCPT", "rfc822;a@b", OTHER, 0, NULL },
		{ "SIZE", "10", OTHER, 0, NULL },
	};
	struct dsn_mail d;
	const char *error;
	char name[100];
	size_t i;
	int res;

	for (i = 0; i < nitems_t(cases); i++) {
		snprintf(name, sizeof(name), "mail param %zu: %s=%s", i,
		    cases[i].k, cases[i].v ? cases[i].v : "(none)");
		t_begin(name);
		memset(&d, 0, sizeof(d));
		error = NULL;
		res = dsn_param_mail(&d, cases[i].k, strlen(cases[i].k),
		    cases[i].v, cases[i].v ? strlen(cases[i].v) : 0, &error);
		t_assert_int(res, cases[i].res);
		t_assert_int((int)d.ret, cases[i].ret);
		if (cases[i].envid != NULL) {
			t_assert(d.envid != NULL);
			if (d.envid != NULL)
				t_assert_str(d.envid, cases[i].envid);
		} else {
			t_assert(d.envid == NULL);
		}
		t_assert((res == BAD) == (error != NULL));
		dsn_mail_clear(&d);
		t_end();
	}

	t_begin("mail params: each at most once");
	memset(&d, 0, sizeof(d));
	t_assert_int(dsn_param_mail(&d, "RET", 3, "FULL", 4, &error), OK);
	t_assert_int(dsn_param_mail(&d, "RET", 3, "FULL", 4, &error), BAD);
	t_assert_str(error, "Bad RET parameter");
	t_assert_int((int)d.ret, DSN_RET_FULL);
	t_assert_int(dsn_param_mail(&d, "ENVID", 5, "x", 1, &error), OK);
	t_assert_int(dsn_param_mail(&d, "ENVID", 5, "y", 1, &error), BAD);
	t_assert_str(error, "Bad ENVID parameter");
	t_assert_str(d.envid, "x");
	dsn_mail_clear(&d);
	t_end();

	t_begin("ENVID limit: 100 characters");
	{
		char v[102];

		memset(v, 'e', sizeof(v));
		memset(&d, 0, sizeof(d));
		t_assert_int(dsn_param_mail(&d, "ENVID", 5, v, 100, &error),
		    OK);
		t_assert_int((int)strlen(d.envid), 100);
		dsn_mail_clear(&d);
		t_assert_int(dsn_param_mail(&d, "ENVID", 5, v, 101, &error),
		    BAD);
		t_assert(d.envid == NULL);
	}
	t_end();
}

static void
test_rcpt(void)
{
	static const struct {
		const char *k, *v;
		int res;
		unsigned notify;
		const char *orcpt;
	} cases[] = {
		{ "NOTIFY", "NEVER", OK, DSN_NOTIFY_NEVER, NULL },
		{ "NOTIFY", "SUCCESS", OK, DSN_NOTIFY_SUCCESS, NULL },
		{ "notify", "failure,Delay", OK,
		    DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY, NULL },
		{ "NOTIFY", "DELAY,SUCCESS,FAILURE", OK, DSN_NOTIFY_SUCCESS |
		    DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY, NULL },
		{ "NOTIFY", "NEVER,FAILURE", BAD, 0, NULL },
		{ "NOTIFY", "SUCCESS,NEVER", BAD, 0, NULL },
		{ "NOTIFY", "SUCCESS,SUCCESS", BAD, 0, NULL },
		{ "NOTIFY", "SUCCESS,", BAD, 0, NULL },
		{ "NOTIFY", ",SUCCESS", BAD, 0, NULL },
		{ "NOTIFY", "SUCCESS,,DELAY", BAD, 0, NULL },
		{ "NOTIFY", "ALWAYS", BAD, 0, NULL },
		{ "NOTIFY", "", BAD, 0, NULL },
		{ "NOTIFY", NULL, BAD, 0, NULL },
		{ "ORCPT", "rfc822;bob@example.test", OK, 0,
		    "rfc822;bob@example.test" },
		{ "ORCPT", "RFC822;b+2Bc@x.test", OK, 0,
		    "RFC822;b+2Bc@x.test" },
		{ "ORCPT", "rfc822;Bob+20Smith+20<b@x.test>", OK, 0,
		    "rfc822;Bob+20Smith+20<b@x.test>" },
		{ "ORCPT", "x-foo;a", OK, 0, "x-foo;a" },
		{ "ORCPT", "rfc822", BAD, 0, NULL },		/* no ";" */
		{ "ORCPT", ";a@b", BAD, 0, NULL },		/* no type */
		{ "ORCPT", "rfc822;", BAD, 0, NULL },		/* no address */
		{ "ORCPT", "rfc(822);a@b", BAD, 0, NULL },	/* not an atom */
		{ "ORCPT", "rfc822;a+2b@b", BAD, 0, NULL },
		{ "ORCPT", "rfc822;a+0D+0A@b", BAD, 0, NULL },
		{ "ORCPT", NULL, BAD, 0, NULL },
		{ "RET", "FULL", OTHER, 0, NULL },		/* MAIL's */
		{ "ENVID", "x", OTHER, 0, NULL },
		{ "FOO", "bar", OTHER, 0, NULL },
	};
	struct dsn_rcpt d;
	const char *error;
	char name[100];
	size_t i;
	int res;

	for (i = 0; i < nitems_t(cases); i++) {
		snprintf(name, sizeof(name), "rcpt param %zu: %s=%s", i,
		    cases[i].k, cases[i].v ? cases[i].v : "(none)");
		t_begin(name);
		memset(&d, 0, sizeof(d));
		error = NULL;
		res = dsn_param_rcpt(&d, cases[i].k, strlen(cases[i].k),
		    cases[i].v, cases[i].v ? strlen(cases[i].v) : 0, &error);
		t_assert_int(res, cases[i].res);
		t_assert_int((int)d.notify, (int)cases[i].notify);
		if (cases[i].orcpt != NULL) {
			t_assert(d.orcpt != NULL);
			if (d.orcpt != NULL)
				t_assert_str(d.orcpt, cases[i].orcpt);
		} else {
			t_assert(d.orcpt == NULL);
		}
		t_assert((res == BAD) == (error != NULL));
		dsn_rcpt_clear(&d);
		t_end();
	}

	t_begin("rcpt params: each at most once");
	memset(&d, 0, sizeof(d));
	t_assert_int(dsn_param_rcpt(&d, "NOTIFY", 6, "NEVER", 5, &error), OK);
	t_assert_int(dsn_param_rcpt(&d, "NOTIFY", 6, "NEVER", 5, &error),
	    BAD);
	t_assert_str(error, "Bad NOTIFY parameter");
	t_assert_int(dsn_param_rcpt(&d, "ORCPT", 5, "rfc822;a", 8, &error),
	    OK);
	t_assert_int(dsn_param_rcpt(&d, "ORCPT", 5, "rfc822;b", 8, &error),
	    BAD);
	t_assert_str(error, "Bad ORCPT parameter");
	t_assert_str(d.orcpt, "rfc822;a");
	t_assert_int((int)d.notify, DSN_NOTIFY_NEVER);
	dsn_rcpt_clear(&d);
	t_end();

	t_begin("ORCPT limit: 500 characters");
	{
		char v[502];

		memcpy(v, "rfc822;", 7);
		memset(v + 7, 'o', sizeof(v) - 7);
		memset(&d, 0, sizeof(d));
		t_assert_int(dsn_param_rcpt(&d, "ORCPT", 5, v, 500, &error),
		    OK);
		t_assert_int((int)strlen(d.orcpt), 500);
		dsn_rcpt_clear(&d);
		t_assert_int(dsn_param_rcpt(&d, "ORCPT", 5, v, 501, &error),
		    BAD);
		t_assert(d.orcpt == NULL);
	}
	t_end();
}

static void
test_helpers(void)
{
	char buf[32];

	t_begin("notify text and defaults");
	t_assert_str(dsn_notify_str(0, buf, sizeof(buf)), "");
	t_assert_str(dsn_notify_str(DSN_NOTIFY_NEVER, buf, sizeof(buf)),
	    "NEVER");
	t_assert_str(dsn_notify_str(DSN_NOTIFY_DELAY | DSN_NOTIFY_SUCCESS,
	    buf, sizeof(buf)), "SUCCESS,DELAY");
	t_assert_str(dsn_notify_str(DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE |
	    DSN_NOTIFY_DELAY, buf, sizeof(buf)), "SUCCESS,FAILURE,DELAY");
	/* No NOTIFY: failures and delays, never successes (RFC 3461 4.1). */
	t_assert(dsn_notify_wants(0, DSN_NOTIFY_FAILURE));
	t_assert(dsn_notify_wants(0, DSN_NOTIFY_DELAY));
	t_assert(!dsn_notify_wants(0, DSN_NOTIFY_SUCCESS));
	t_assert(!dsn_notify_wants(DSN_NOTIFY_NEVER, DSN_NOTIFY_FAILURE));
	t_assert(!dsn_notify_wants(DSN_NOTIFY_SUCCESS, DSN_NOTIFY_DELAY));
	t_assert(dsn_notify_wants(DSN_NOTIFY_SUCCESS, DSN_NOTIFY_SUCCESS));
	t_assert_str(dsn_ret_str(DSN_RET_FULL), "FULL");
	t_assert_str(dsn_ret_str(DSN_RET_HDRS), "HDRS");
	t_assert(dsn_ret_str(DSN_RET_NONE) == NULL);
	t_end();
}

/* The parameters as MAIL and RCPT arguments, with the reply class. */
static void
test_path(void)
{
	static const struct {
		int kind;
		const char *in;
		int err;
	} cases[] = {
		{ SMTP_PATH_MAIL, "FROM:<a@x.test> RET=FULL ENVID=id1 SIZE=5",
		    SMTP_PATH_OK },
		{ SMTP_PATH_MAIL, "FROM:<a@x.test> RET=FULL RET=HDRS",
		    SMTP_PATH_ERR_VALUE },
		{ SMTP_PATH_MAIL, "FROM:<a@x.test> ENVID=a+2",
		    SMTP_PATH_ERR_VALUE },
		{ SMTP_PATH_MAIL, "FROM:<a@x.test> NOTIFY=SUCCESS",
		    SMTP_PATH_ERR_PARAM },
		{ SMTP_PATH_RCPT, "TO:<b@x.test> NOTIFY=SUCCESS,FAILURE "
		    "ORCPT=rfc822;b+2Bx@x.test", SMTP_PATH_OK },
		{ SMTP_PATH_RCPT, "TO:<b@x.test> NOTIFY=NEVER,SUCCESS",
		    SMTP_PATH_ERR_VALUE },
		{ SMTP_PATH_RCPT, "TO:<b@x.test> ORCPT=b@x.test",
		    SMTP_PATH_ERR_VALUE },
		{ SMTP_PATH_RCPT, "TO:<b@x.test> ENVID=x",
		    SMTP_PATH_ERR_PARAM },
	};
	struct smtp_path p;
	const char *error;
	size_t i;

	t_begin("parameters through smtp_path_parse");
	for (i = 0; i < nitems_t(cases); i++) {
		error = NULL;
		t_assert_int(smtp_path_parse(cases[i].in,
		    (enum smtp_path_kind)cases[i].kind, false, &p, &error),
		    cases[i].err);
		if (cases[i].err != SMTP_PATH_OK) {
			t_assert(p.dsn_mail.envid == NULL);
			t_assert(p.dsn_rcpt.orcpt == NULL);
		}
		if (i == 0) {
			t_assert_int((int)p.dsn_mail.ret, DSN_RET_FULL);
			t_assert_str(p.dsn_mail.envid, "id1");
			t_assert(p.has_size && p.size == 5);
		}
		if (i == 4) {
			t_assert_int((int)p.dsn_rcpt.notify,
			    DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE);
			t_assert_str(p.dsn_rcpt.orcpt,
			    "rfc822;b+2Bx@x.test");
		}
		smtp_path_clear(&p);
	}
	t_end();
}

/* bounce_build with ENVID, ORCPT, RET=FULL and the success actions. */
static void
test_notice(void)
{
	const char hdrs[] = "From: a@example.test\r\nSubject: hi\r\n";
	const char full[] = "From: a@example.test\r\nSubject: hi\r\n\r\nbody\r\n";
	struct bounce_rcpt rc[2] = {
		{ "x@remote.test", "250 2.0.0 Ok: queued",
		  "mx1.remote.test[127.0.0.2]", "rfc822;X+2Bme@remote.test" },
		{ "y@remote.test", "250 2.0.0 Ok: queued",
		  "mx1.remote.test[127.0.0.2]", NULL },
	};
	struct bounce_info bi = {
		.kind = BOUNCE_RELAYED, .hostname = "mail.example.test",
		.mail_from = "a@example.test", .queue_id = 7,
		.arrival = 1700000000, .rcpts = rc, .nrcpts = 2,
		.headers = hdrs, .headers_len = sizeof(hdrs) - 1,
		.envid = "env+2B1",
	};
	char *t;
	size_t len;

	t_begin("relayed notice: ENVID, ORCPT, headers only");
	t = bounce_build(&bi, &len);
	t_assert(strstr(t, "Subject: Successful Mail Delivery Report\r\n") !=
	    NULL);
	t_assert(strstr(t, "\r\n\r\nOriginal-Envelope-Id: env+1\r\n"
	    "Reporting-MTA: dns; mail.example.test\r\n") != NULL);
	t_assert(strstr(t, "\r\n\r\nOriginal-Recipient: "
	    "rfc822;X+me@remote.test\r\n"
	    "Final-Recipient: rfc822; x@remote.test\r\n"
	    "Action: relayed\r\nStatus: 2.0.0\r\n"
	    "Remote-MTA: dns; mx1.remote.test\r\n"
	    "Diagnostic-Code: smtp; 250 2.0.0 Ok: queued\r\n") != NULL);
	t_assert(strstr(t, "\r\n\r\nFinal-Recipient: rfc822; y@remote.test\r\n"
	    "Action: relayed\r\n") != NULL);
	t_assert(strstr(t, "Content-Type: text/rfc822-headers\r\n"
	    "Content-Description: Relayed Message Headers\r\n") != NULL);
	free(t);
	t_end();

	t_begin("delivered notice");
	rc[0].reply = NULL;
	rc[0].remote_mta = NULL;
	bi.kind = BOUNCE_DELIVERED;
	bi.nrcpts = 1;
	bi.queue_id = 0;
	bi.envid = NULL;
	t = bounce_build(&bi, &len);
	t_assert(strstr(t, "<x@remote.test>: delivered to mailbox\r\n") !=
	    NULL);
	t_assert(strstr(t, "Final-Recipient: rfc822; x@remote.test\r\n"
	    "Action: delivered\r\nStatus: 2.0.0\r\nLast-Attempt-Date: ") !=
	    NULL);
	t_assert(strstr(t, "Original-Envelope-Id") == NULL);
	t_assert(strstr(t, "X-Carteiro-Queue-ID") == NULL);
	free(t);
	t_end();

	t_begin("failed with RET=FULL: message/rfc822");
	rc[0].reply = "550 5.1.1 unknown";
	bi.kind = BOUNCE_FAILED;
	bi.full = full;
	bi.full_len = sizeof(full) - 1;
	t = bounce_build(&bi, &len);
	t_assert(strstr(t, "Action: failed\r\nStatus: 5.1.1\r\n") != NULL);
	t_assert(strstr(t, "Content-Type: message/rfc822\r\n"
	    "Content-Description: Undelivered Message\r\n\r\n"
	    "From: a@example.test\r\nSubject: hi\r\n\r\nbody\r\n\r\n--") !=
	    NULL);
	t_assert(strstr(t, "text/rfc822-headers") == NULL);
	free(t);
	/* Too large to return (BOUNCE_FULL_MAX): headers, and a word why. */
	bi.full = NULL;
	bi.full_len = 0;
	bi.full_cut = true;
	t = bounce_build(&bi, &len);
	t_assert(strstr(t, "The message was too large to return in full; its"
	    "\r\nheaders are attached instead.\r\n") != NULL);
	t_assert(strstr(t, "Content-Type: text/rfc822-headers\r\n"
	    "Content-Description: Undelivered Message Headers\r\n\r\n"
	    "From: a@example.test\r\nSubject: hi\r\n\r\n--") != NULL);
	t_assert(strstr(t, "message/rfc822") == NULL);
	free(t);
	bi.full = full;
	bi.full_len = sizeof(full) - 1;
	bi.full_cut = false;
	/* A delay never returns the body, whatever RET says. */
	bi.kind = BOUNCE_DELAYED;
	t = bounce_build(&bi, &len);
	t_assert(strstr(t, "message/rfc822") == NULL);
	t_assert(strstr(t, "Content-Type: text/rfc822-headers\r\n") != NULL);
	free(t);
	t_end();
}

int
main(void)
{
	test_xtext();
	test_mail();
	test_rcpt();
	test_helpers();
	test_path();
	test_notice();
	return t_exit();
}
