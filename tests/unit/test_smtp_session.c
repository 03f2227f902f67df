/*
 * smtpd/session.c + commands.c without the network: a session on one end
 * of a socketpair, driven by writing command bytes to the other end and
 * running the event loop. Checks the dispatcher (500/501/503), replies in
 * pipelined order, the input modes (refused BDAT skips its chunk), the
 * error limit, and the EHLO keywords of an MX listener without TLS.
 */
#include "common/ipcount.h"
#include "smtpd/smtpd.h"
#include "t.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/config.h"
#include "common/log.h"
#include "common/util.h"

static struct event_base *base;
static struct smtp_server srv;
static struct smtp_listener lst;
static struct cfg cfg;
static int peer = -1;
static char out[65536];
static size_t outlen;
static bool peer_eof;

/* Final reply lines ("ddd ...") in out. */
static int
replies(void)
{
	int n = 0;
	size_t i;

	for (i = 0; i + 3 < outlen; i++)
		if ((i == 0 || out[i - 1] == '\n') && out[i + 3] == ' ')
			n++;
	return n;
}

/* Send in, run the loop until n final replies (or EOF, or 2 s). */
static void
talk(const char *in, int n)
{
	uint64_t deadline = util_now_ms() + 2000;
	ssize_t r;

	outlen = 0;
	out[0] = '\0';
	if (in != NULL && write(peer, in, strlen(in)) != (ssize_t)strlen(in))
		abort();
	while (replies() < n && !peer_eof && util_now_ms() < deadline) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		r = read(peer, out + outlen, sizeof(out) - 1 - outlen);
		if (r > 0) {
			outlen += (size_t)r;
			out[outlen] = '\0';
		} else if (r == 0) {
			peer_eof = true;
		} else {
			poll(NULL, 0, 1);
		}
	}
}

static void
start(void)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		abort();
	peer = sv[0];
	fcntl(peer, F_SETFL, fcntl(peer, F_GETFL) | O_NONBLOCK);
	peer_eof = false;
	smtp_session_accept(&lst, sv[1], NULL, 0);
}

static void
stop(void)
{
	close(peer);
	/* Let the session see EOF and free itself. */
	for (int i = 0; i < 20 && srv.nsessions > 0; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		poll(NULL, 0, 1);
	}
}

int
main(void)
{
	log_init("test_smtp_session", 1, LOG_LVL_ERROR);
	base = event_base_new();
	cfg.server.hostname = "mx.test";
	cfg.smtpd.max_message_size = 1000;
	cfg.smtpd.max_recipients = 2;
	cfg.smtpd.max_clients = 10;
	cfg.smtpd.max_clients_per_ip = 10;
	srv.base = base;
	srv.cfg = &cfg;
	srv.timeout_cmd_ms = 60000;
	srv.timeout_data_ms = 60000;
	TAILQ_INIT(&srv.sessions);
	srv.ipcount = ipcount_new();
	lst.srv = &srv;
	lst.kind = SMTP_LST_MX;

	t_begin("greeting and EHLO keywords");
	start();
	talk(NULL, 1);
	t_assert_str(out, "220 mx.test ESMTP carteiro\r\n");
	talk("EHLO client.test\r\n", 1);
	t_assert(strncmp(out, "250-mx.test\r\n", 13) == 0);
	t_assert(strstr(out, "250-PIPELINING\r\n") != NULL);
	t_assert(strstr(out, "250-SIZE 1000\r\n") != NULL);
	t_assert(strstr(out, "250-8BITMIME\r\n") != NULL);
	t_assert(strstr(out, "250-SMTPUTF8\r\n") != NULL);
	t_assert(strstr(out, "250-ENHANCEDSTATUSCODES\r\n") != NULL);
	t_assert(strstr(out, "250 CHUNKING\r\n") != NULL);
	t_assert(strstr(out, "STARTTLS") == NULL);	/* no TLS configured */
	t_assert(strstr(out, "AUTH") == NULL);		/* MX */
	t_end();

	t_begin("pipelined replies in order");
	talk("NOOP\r\nFOO\r\nMAIL FROM:<a@b.test>\r\nMAIL FROM:<a@b.test>\r\n"
	    "RSET\r\nRCPT TO:<x@y.test>\r\nDATA\r\n", 7);
	t_assert_str(out, "250 2.0.0 Ok\r\n"
	    "500 5.5.1 Error: command not recognized\r\n"
	    "250 2.1.0 Ok\r\n"
	    "503 5.5.1 Error: nested MAIL command\r\n"
	    "250 2.0.0 Ok\r\n"
	    "503 5.5.1 Error: need MAIL command\r\n"
	    "503 5.5.1 Error: need RCPT command\r\n");
	t_end();

	t_begin("STARTTLS without TLS configured, AUTH on MX");
	talk("STARTTLS\r\nAUTH PLAIN AGEAYg==\r\n", 2);
	t_assert_str(out, "454 4.7.0 TLS not available\r\n"
	    "503 5.5.1 Error: authentication not enabled\r\n");
	t_end();

	t_begin("argument policy");
	talk("RSET x\r\nQUIT now\r\nEHLO\r\nVRFY\r\nVRFY bob\r\n", 5);
	t_assert_str(out, "501 5.5.4 Syntax: RSET\r\n"
	    "501 5.5.4 Syntax: QUIT\r\n"
	    "501 5.5.4 Syntax: EHLO hostname\r\n"
	    "501 5.5.4 Syntax: VRFY address\r\n"
	    "252 2.5.0 Cannot VRFY user, but will accept message and attempt "
	    "delivery\r\n");
	t_end();
	stop();

	t_begin("refused BDAT skips its chunk");
	start();
	talk(NULL, 1);
	talk("EHLO c.test\r\nBDAT 6\r\nNOOP\r\nNOOP\r\n", 3);
	t_assert(strstr(out, "503 5.5.1 Error: need RCPT command\r\n"
	    "250 2.0.0 Ok\r\n") != NULL);
	t_assert_int(replies(), 3);
	t_end();

	t_begin("overlong line and bare LF");
	talk("NOOP ", 0);
	{
		char big[700];
		memset(big, 'x', sizeof(big) - 3);
		memcpy(big + sizeof(big) - 3, "\r\n", 3);
		talk(big, 1);
	}
	t_assert_str(out, "500 5.5.2 Error: line too long\r\n");
	talk("NOOP\n", 1);
	t_assert_str(out, "500 5.5.2 Error: bare LF in command line not "
	    "allowed\r\n");
	t_end();
	stop();

	t_begin("too many errors: 421 and close");
	start();
	talk(NULL, 1);
	talk("a\r\nb\r\nc\r\nd\r\ne\r\nf\r\ng\r\nh\r\ni\r\nj\r\nk\r\nl\r\n", 11);
	t_assert(strstr(out, "421 4.7.0 mx.test Error: too many errors\r\n")
	    != NULL);
	t_assert_int(replies(), 11);
	talk(NULL, 100);
	t_assert(peer_eof);
	t_end();
	stop();

	t_begin("QUIT closes");
	start();
	talk(NULL, 1);
	talk("QUIT\r\nNOOP\r\n", 1);
	t_assert_str(out, "221 2.0.0 Bye\r\n");
	talk(NULL, 100);
	t_assert(peer_eof);
	t_end();
	stop();
	t_assert_int(srv.nsessions, 0);

	smtp_session_free_all(&srv);
	ipcount_free(srv.ipcount);
	event_base_free(base);
	return t_exit();
}
