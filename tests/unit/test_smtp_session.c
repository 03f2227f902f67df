/*
 * smtpd/session.c + commands.c without the network: a session on one end
 * of a socketpair, driven by writing command bytes to the other end and
 * running the event loop. Checks the dispatcher (500/501/503), replies in
 * pipelined order, the input modes (refused BDAT skips its chunk), the
 * error limit, the EHLO keywords of an MX listener without TLS, and the
 * per-client limits (sessions, connect rate) keyed by the client key: the
 * exact IPv4 address, the IPv6 /64; trusted_networks exempt from them and
 * from greet_pause; refusals on the implicit-TLS listener send nothing.
 */
#include "common/ipcount.h"
#include "smtpd/smtpd.h"
#include "t.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
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
static struct smtp_listener lst, lst_tls;
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

/* A session on listener l whose peer address is ip; returns our end after
 * its first reply line, copied into first (NUL-terminated), or after EOF
 * (*eof_r). */
static int
accept_on(struct smtp_listener *l, const char *ip, char *first, size_t size,
    bool *eof_r)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	uint64_t deadline = util_now_ms() + 2000;
	size_t n = 0;
	ssize_t r;
	int sv[2];

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1)
		s4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1)
		s6->sin6_family = AF_INET6;
	else
		abort();
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		abort();
	fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
	smtp_session_accept(l, sv[1], (struct sockaddr *)&ss,
	    ss.ss_family == AF_INET ? sizeof(*s4) : sizeof(*s6));
	first[0] = '\0';
	*eof_r = false;
	while (strchr(first, '\n') == NULL && util_now_ms() < deadline) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		r = read(sv[0], first + n, size - 1 - n);
		if (r > 0) {
			n += (size_t)r;
			first[n] = '\0';
		} else if (r == 0) {
			*eof_r = true;
			break;
		} else {
			poll(NULL, 0, 1);
		}
	}
	return sv[0];
}

/* The same on the MX listener. */
static int
accept_from(const char *ip, char *first, size_t size)
{
	bool eof;

	return accept_on(&lst, ip, first, size, &eof);
}

/* Close our ends and let the sessions free themselves. */
static void
hang_up(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
	for (int i = 0; i < 50 && srv.nsessions > 0; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		poll(NULL, 0, 1);
	}
}

static const char busy[] = "421 4.7.0 mx.test Error: too many connections, "
    "try again later\r\n";
static const char hello[] = "220 mx.test ESMTP carteiro\r\n";

static void
test_client_key_limits(void)
{
	char r[256];
	int fds[8];
	size_t n = 0;

	t_begin("max_clients_per_ip: one IPv6 /64 is one client");
	cfg.smtpd.max_clients_per_ip = 1;
	fds[n++] = accept_from("2001:db8:1:2::1", r, sizeof(r));
	t_assert_str(r, hello);
	fds[n++] = accept_from("2001:db8:1:2:ffff::9", r, sizeof(r));
	t_assert_str(r, busy);
	fds[n++] = accept_from("2001:db8:1:3::1", r, sizeof(r));
	t_assert_str(r, hello);
	fds[n++] = accept_from("192.0.2.1", r, sizeof(r));
	t_assert_str(r, hello);
	fds[n++] = accept_from("192.0.2.2", r, sizeof(r));
	t_assert_str(r, hello);
	fds[n++] = accept_from("::ffff:192.0.2.2", r, sizeof(r));
	t_assert_str(r, busy);
	hang_up(fds, n);
	n = 0;
	t_assert_int(srv.nsessions, 0);
	cfg.smtpd.max_clients_per_ip = 10;
	t_end();

	t_begin("max_connect_rate_per_ip: one IPv6 /64 is one client");
	cfg.smtpd.max_connect_rate_per_ip = 1;
	fds[n++] = accept_from("2001:db8:7:8::1", r, sizeof(r));
	t_assert_str(r, hello);
	hang_up(fds, n);
	n = 0;
	/* Gone, but counted: another address of the /64 is over the rate. */
	fds[n++] = accept_from("2001:db8:7:8:1::1", r, sizeof(r));
	t_assert_str(r, busy);
	fds[n++] = accept_from("2001:db8:7:9::1", r, sizeof(r));
	t_assert_str(r, hello);
	fds[n++] = accept_from("198.51.100.1", r, sizeof(r));
	t_assert_str(r, hello);
	fds[n++] = accept_from("198.51.100.2", r, sizeof(r));
	t_assert_str(r, hello);
	fds[n++] = accept_from("198.51.100.1", r, sizeof(r));
	t_assert_str(r, busy);
	hang_up(fds, n);
	t_assert_int(srv.nsessions, 0);
	cfg.smtpd.max_connect_rate_per_ip = 0;
	t_end();
}

static void
test_trusted_networks(void)
{
	static char net6[] = "2001:db8:aa::/48", net4[] = "203.0.113.0/24";
	static char *nets[] = { net6, net4 };
	char r[256];
	int fds[16];
	size_t n = 0;
	uint64_t t0;

	t_begin("trusted_networks: exempt from the per-client limits");
	cfg.smtpd.trusted_networks.n = 2;
	cfg.smtpd.trusted_networks.v = nets;
	cfg.smtpd.max_clients_per_ip = 1;
	cfg.smtpd.max_connect_rate_per_ip = 1;
	for (int i = 0; i < 3; i++) {
		fds[n++] = accept_from("203.0.113.5", r, sizeof(r));
		t_assert_str(r, hello);
	}
	/* Rotating inside a trusted /48: all in. */
	fds[n++] = accept_from("2001:db8:aa:1::1", r, sizeof(r));
	t_assert_str(r, hello);
	fds[n++] = accept_from("2001:db8:aa:1::2", r, sizeof(r));
	t_assert_str(r, hello);
	/* Next door, untrusted: limited. */
	fds[n++] = accept_from("2001:db8:ab:1::1", r, sizeof(r));
	t_assert_str(r, hello);
	fds[n++] = accept_from("2001:db8:ab:1::2", r, sizeof(r));
	t_assert_str(r, busy);
	fds[n++] = accept_from("203.0.114.5", r, sizeof(r));
	t_assert_str(r, hello);
	fds[n++] = accept_from("203.0.114.5", r, sizeof(r));
	t_assert_str(r, busy);
	/* max_clients holds for trusted clients too. */
	cfg.smtpd.max_clients = srv.nsessions;
	fds[n++] = accept_from("203.0.113.5", r, sizeof(r));
	t_assert_str(r, busy);
	cfg.smtpd.max_clients = 10;
	hang_up(fds, n);
	n = 0;
	t_assert_int(srv.nsessions, 0);
	t_end();

	t_begin("trusted_networks: no greet pause");
	cfg.smtpd.max_clients_per_ip = 10;
	cfg.smtpd.max_connect_rate_per_ip = 0;
	cfg.smtpd.greet_pause = 1;
	t0 = util_now_ms();
	fds[n++] = accept_from("203.0.113.9", r, sizeof(r));
	t_assert_str(r, hello);
	t_assert(util_now_ms() - t0 < 500);
	t0 = util_now_ms();
	fds[n++] = accept_from("198.51.100.9", r, sizeof(r));
	t_assert_str(r, hello);
	t_assert(util_now_ms() - t0 >= 900);
	cfg.smtpd.greet_pause = 0;
	hang_up(fds, n);
	t_assert_int(srv.nsessions, 0);
	cfg.smtpd.trusted_networks.n = 0;
	cfg.smtpd.trusted_networks.v = NULL;
	t_end();
}

/* Over a limit on the implicit-TLS listener: no cleartext 421 (a TLS
 * client would read it as a bad record), the connection just closes. */
static void
test_refusal_implicit_tls(void)
{
	char r[256];
	int fds[4];
	size_t n = 0;
	bool eof;

	t_begin("refusal on the implicit-TLS listener: closed, no bytes");
	cfg.smtpd.max_clients_per_ip = 1;
	fds[n++] = accept_from("192.0.2.77", r, sizeof(r));
	t_assert_str(r, hello);
	fds[n++] = accept_on(&lst_tls, "192.0.2.77", r, sizeof(r), &eof);
	t_assert_str(r, "");
	t_assert(eof);
	/* The plaintext listeners still say why. */
	fds[n++] = accept_from("192.0.2.77", r, sizeof(r));
	t_assert_str(r, busy);
	hang_up(fds, n);
	t_assert_int(srv.nsessions, 0);
	cfg.smtpd.max_clients_per_ip = 10;
	t_end();
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
	lst_tls.srv = &srv;
	lst_tls.kind = SMTP_LST_SUBMISSIONS;

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

	test_client_key_limits();
	test_trusted_networks();
	test_refusal_implicit_tls();

	smtp_session_free_all(&srv);
	ipcount_free(srv.ipcount);
	event_base_free(base);
	return t_exit();
}
