/* Unit tests for smtpd/bounce.c: the DSN text and status extraction. */
#include <stdlib.h>
#include <string.h>

#include "smtpd/bounce.h"
#include "t.h"

static void
test_status(void)
{
	static const struct {
		const char *reply, *status;
	} cases[] = {
		{ "550 5.1.1 <a@b>: no such user", "5.1.1" },
		{ "452 4.2.2 over quota", "4.2.2" },
		{ "556 5.1.10 null MX", "5.1.10" },
		{ "550 no enhanced code", "5.0.0" },
		{ "451 try later", "4.0.0" },
		{ "550 4.1.1 wrong class", "5.0.0" },
		{ "550 5.1.1234 too long", "5.0.0" },
		{ "550 5.1.1", "5.1.1" },
		{ "", "5.0.0" },
		{ NULL, "5.0.0" },
	};
	char buf[16];
	size_t i;

	t_begin("bounce status from reply");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		t_assert_str(bounce_status(cases[i].reply, buf, sizeof(buf)),
		    cases[i].status);
	t_end();
}

static void
test_build(void)
{
	const char hdrs[] = "From: a@example.test\r\nSubject: hi\r\n";
	struct bounce_rcpt rc[2] = {
		{ "x@remote.test", "550 5.1.1 <x@remote.test>: unknown\r\nuser",
		  "mx1.remote.test[127.0.0.2]", NULL },
		{ "y@null.test", "556 5.1.10 null MX", NULL, NULL },
	};
	struct bounce_info bi = {
		.kind = BOUNCE_FAILED, .hostname = "mail.example.test",
		.mail_from = "a@example.test", .queue_id = 7,
		.arrival = 1700000000, .rcpts = rc, .nrcpts = 2,
		.headers = hdrs, .headers_len = sizeof(hdrs) - 1,
	};
	char *t, *p;
	size_t len;

	t_begin("bounce failed DSN");
	t = bounce_build(&bi, &len);
	t_assert(strlen(t) == len);
	t_assert(strncmp(t, "From: Mail Delivery System "
	    "<MAILER-DAEMON@mail.example.test>\r\nTo: <a@example.test>\r\n",
	    80) == 0);
	t_assert(strstr(t, "Content-Type: multipart/report; "
	    "report-type=delivery-status;") != NULL);
	t_assert(strstr(t, "Auto-Submitted: auto-replied\r\n") != NULL);
	t_assert(strstr(t, "Reporting-MTA: dns; mail.example.test\r\n") != NULL);
	t_assert(strstr(t, "Final-Recipient: rfc822; x@remote.test\r\n"
	    "Action: failed\r\nStatus: 5.1.1\r\n"
	    "Remote-MTA: dns; mx1.remote.test\r\n"
	    "Diagnostic-Code: smtp; 550 5.1.1 <x@remote.test>: unknown  user\r\n")
	    != NULL);
	t_assert(strstr(t, "Final-Recipient: rfc822; y@null.test\r\n"
	    "Action: failed\r\nStatus: 5.1.10\r\n") != NULL);
	t_assert(strstr(t, "<x@remote.test>: host mx1.remote.test[127.0.0.2] "
	    "said: 550 5.1.1") != NULL);
	t_assert(strstr(t, "Content-Type: text/rfc822-headers\r\n") != NULL);
	t_assert(strstr(t, "\r\n\r\nFrom: a@example.test\r\nSubject: hi\r\n"
	    "\r\n--") != NULL);
	/* Every line ends in CRLF, no bare LF/CR from the reply. */
	for (p = t; *p != '\0'; p++)
		if (*p == '\n')
			t_assert(p > t && p[-1] == '\r');
	t_assert(strstr(t, "Will-Retry-Until") == NULL);
	free(t);
	t_end();

	t_begin("bounce delayed DSN");
	bi.kind = BOUNCE_DELAYED;
	bi.retry_until = 1700400000;
	rc[0].reply = "451 4.3.0 later";
	bi.nrcpts = 1;
	bi.headers = NULL;
	bi.headers_len = 0;
	t = bounce_build(&bi, &len);
	t_assert(strstr(t, "Subject: Delayed Mail (still being retried)") !=
	    NULL);
	t_assert(strstr(t, "Action: delayed\r\nStatus: 4.3.0\r\n") != NULL);
	t_assert(strstr(t, "Will-Retry-Until: ") != NULL);
	t_assert(strstr(t, "y@null.test") == NULL);
	free(t);
	t_end();
}

int
main(void)
{
	test_status();
	test_build();
	return t_exit();
}
