/*
 * Unit tests for smtpd/mta*.c: the SMTP client against in-process fake DNS
 * and SMTP servers on 127.0.0.x (no external network), plus the pure
 * helpers (dot-stuffing, base64). Every delivery also records the state
 * transitions the session logged (debug event=relay.state), so each case
 * checks that the states chain without a gap.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relay_fakes.h"
#include "mailauth/dns.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/util.h"
#include "smtpd/mta.h"
#include "t.h"

static const struct fake_rr zone[] = {
	{ "one.test", FAKE_MX, "10 mx1.one.test", 0 },
	{ "mx1.one.test", FAKE_A, "127.0.0.2", 0 },
	/* backup.test: primary on .3 (refused or 421), backup on .4 */
	{ "backup.test", FAKE_MX, "10 mx1.backup.test", 0 },
	{ "backup.test", FAKE_MX, "20 mx2.backup.test", 0 },
	{ "mx1.backup.test", FAKE_A, "127.0.0.3", 0 },
	{ "mx2.backup.test", FAKE_A, "127.0.0.4", 0 },
	{ "implicit.test", FAKE_A, "127.0.0.2", 0 },
	{ "null.test", FAKE_MX, "0 .", 0 },
	{ "fail.test", 0, NULL, FAKE_SERVFAIL },
	{ "noaddr.test", FAKE_TXT, "x", 0 },
};

static struct event_base *base;
static struct dns *dns;
static unsigned port;

struct run {
	bool done;
	unsigned rcpt_calls;
	char results[1024];
	/* The session's path from its relay.state lines: "new>mx>addr>...";
	 * a "!" marks a line whose from= is not the previous to= (a state
	 * set without mta_enter), "?" a second session id, "#" a line not
	 * logged at debug level. */
	char states[512];
	char reply[512];	/* the last recipient's reply text */
};

/*
 * stderr into a temporary file while a delivery runs, at debug level, so
 * the test sees what mta_enter logged. log_capture_end turns the relay.state
 * lines into ru->states and passes every other non-debug line on to the
 * real stderr, as before.
 */
static FILE *cap_file;
static int cap_saved_fd = -1;

static void
log_capture_begin(void)
{
	cap_file = tmpfile();
	if (cap_file == NULL)
		abort();
	fflush(stderr);
	cap_saved_fd = dup(STDERR_FILENO);
	dup2(fileno(cap_file), STDERR_FILENO);
	log_set_level(LOG_LVL_DEBUG);
}

static void
log_capture_end(struct run *ru)
{
	char line[4096], sid[32], first_sid[32] = "", from[32], to[32];
	char last[32] = "new";
	const char *p;
	size_t l;

	log_set_level(LOG_LVL_INFO);
	fflush(stderr);
	dup2(cap_saved_fd, STDERR_FILENO);
	close(cap_saved_fd);
	cap_saved_fd = -1;
	rewind(cap_file);
	snprintf(ru->states, sizeof(ru->states), "new");
	while (fgets(line, sizeof(line), cap_file) != NULL) {
		p = strstr(line, "event=relay.state ");
		if (p == NULL) {
			if (strncmp(line, "level=debug ", 12) != 0)
				fputs(line, stderr);
			continue;
		}
		if (sscanf(p, "event=relay.state sid=%31s from=%31s to=%31s",
		    sid, from, to) != 3)
			abort();
		if (first_sid[0] == '\0')
			snprintf(first_sid, sizeof(first_sid), "%s", sid);
		l = strlen(ru->states);
		snprintf(ru->states + l, sizeof(ru->states) - l, "%s%s%s%s",
		    strncmp(line, "level=debug ", 12) != 0 ? "#" : "",
		    strcmp(sid, first_sid) != 0 ? "?" : "",
		    strcmp(from, last) != 0 ? "!" : ">", to);
		snprintf(last, sizeof(last), "%s", to);
	}
	fclose(cap_file);
	cap_file = NULL;
}

static ssize_t
mem_read(void *arg, uint64_t off, void *buf, size_t len)
{
	const char *s = arg;
	size_t n = strlen(s);

	if (off >= n)
		return 0;
	if (len > n - off)
		len = n - (size_t)off;
	memcpy(buf, s + off, len);
	return (ssize_t)len;
}

static void
on_rcpt(struct mta_session *s, struct mta_rcpt *r, void *arg)
{
	struct run *ru = arg;
	size_t l = strlen(ru->results);

	ru->rcpt_calls++;
	snprintf(ru->reply, sizeof(ru->reply), "%s", r->reply);
	snprintf(ru->results + l, sizeof(ru->results) - l, "%s=%s:%.3s;",
	    r->address, r->result == MTA_OK ? "ok" : r->result == MTA_TEMP ?
	    "temp" : r->result == MTA_PERM ? "perm" : "?", r->reply);
}

static void
on_done(struct mta_session *s, void *arg)
{
	struct run *ru = arg;

	ru->done = true;
}

static void
on_timeout(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(base);
}

/* Deliver body to rcpts (comma list) at domain; results in ru. */
static void
deliver(struct mta *m, const char *domain, const char *rcpts,
    const char *body, bool utf8, struct run *ru)
{
	struct mta_rcpt r[8];
	struct mta_msg msg;
	char *list = strdup(rcpts), *p, *save = NULL;
	size_t n = 0;
	struct event *t;
	struct timeval tv = { 10, 0 };

	memset(ru, 0, sizeof(*ru));
	memset(r, 0, sizeof(r));
	for (p = strtok_r(list, ",", &save); p != NULL && n < 8;
	    p = strtok_r(NULL, ",", &save))
		r[n++].address = p;
	memset(&msg, 0, sizeof(msg));
	msg.id = "1";
	msg.domain = domain;
	msg.mail_from = "alice@example.test";
	msg.smtputf8 = utf8;
	msg.size = strlen(body);
	msg.read = mem_read;
	msg.read_arg = (void *)body;
	msg.rcpts = r;
	msg.nrcpts = n;
	log_capture_begin();
	mta_session_start(m, &msg, on_rcpt, on_done, ru);
	t = evtimer_new(base, on_timeout, NULL);
	evtimer_add(t, &tv);
	while (!ru->done && event_base_loop(base, EVLOOP_ONCE) == 0 &&
	    evtimer_pending(t, NULL))
		;
	/* Let the QUIT exchange finish. */
	tv.tv_sec = 0;
	tv.tv_usec = 50000;
	evtimer_add(t, &tv);
	event_base_dispatch(base);
	log_capture_end(ru);
	event_free(t);
	free(list);
	/* Whatever the case: one session, every state entered through
	 * mta_enter, starting from "new". */
	t_assert(strchr(ru->states, '!') == NULL);
	t_assert(strchr(ru->states, '?') == NULL);
	t_assert(strchr(ru->states, '#') == NULL);
	t_assert(strncmp(ru->states, "new>", 4) == 0);
}

static struct mta *
new_mta_tls(const char *smarthost, struct tls_ctx *tls, int timeout_ms)
{
	struct mta_params p;

	memset(&p, 0, sizeof(p));
	p.base = base;
	p.dns = dns;
	p.tls = tls;
	p.helo = "mail.example.test";
	p.port = port;
	p.smarthost = smarthost;
	p.connect_timeout_ms = timeout_ms;
	p.greeting_timeout_ms = timeout_ms;
	p.reply_timeout_ms = timeout_ms;
	return mta_new(&p);
}

static struct mta *
new_mta(const char *smarthost)
{
	return new_mta_tls(smarthost, NULL, 2000);
}

static void
test_basic(void)
{
	struct fake_smtp_cfg cfg = { 220, "PIPELINING\nSIZE 100000\n8BITMIME",
	    250, 250 };
	struct fake_smtp f;
	struct mta *m;
	struct run ru;
	const char *body = "Subject: hi\r\n\r\n.leading dot\r\nline\r\n"
	    "..two\r\n.\r\nend\r\n";
	char *got;

	fake_smtp_start(&f, base, "127.0.0.2", port, &cfg);
	m = new_mta(NULL);

	t_begin("mta delivers all rcpts in one transaction, byte-exact");
	deliver(m, "one.test", "a@one.test,b@one.test,p5x@one.test,t4y@one.test",
	    body, false, &ru);
	t_assert(ru.done);
	t_assert_int(ru.rcpt_calls, 4);
	t_assert_str(ru.results, "p5x@one.test=perm:550;t4y@one.test=temp:450;"
	    "a@one.test=ok:250;b@one.test=ok:250;");
	t_assert_int(f.msgs, 1);
	t_assert_int(f.conns, 1);
	t_assert_str(f.rcpts, "a@one.test,b@one.test,");
	got = fake_smtp_data(&f);
	t_assert_str(got, body);
	free(got);
	t_assert(strstr(f.mailcmd, "SIZE=") != NULL);
	t_assert(strstr(f.mailcmd, "BODY=8BITMIME") != NULL);
	t_end();

	t_begin("mta body without final CRLF is terminated");
	deliver(m, "one.test", "a@one.test", "Subject: x\r\n\r\nno eol", false,
	    &ru);
	got = fake_smtp_data(&f);
	t_assert_str(got, "Subject: x\r\n\r\nno eol\r\n");
	free(got);
	t_end();

	t_begin("mta implicit MX");
	deliver(m, "implicit.test", "a@implicit.test", body, false, &ru);
	t_assert_str(ru.results, "a@implicit.test=ok:250;");
	t_end();

	t_begin("mta all rcpts refused: no DATA");
	f.msgs = 0;
	deliver(m, "one.test", "p5a@one.test,t4b@one.test", body, false, &ru);
	t_assert_str(ru.results, "p5a@one.test=perm:550;t4b@one.test=temp:450;");
	t_assert_int(f.msgs, 0);
	t_end();

	t_begin("mta SMTPUTF8 needed, not offered: permanent");
	deliver(m, "one.test", "a@one.test", body, true, &ru);
	t_assert_str(ru.results, "a@one.test=perm:553;");
	t_end();

	mta_free(m);
	fake_smtp_stop(&f);

	t_begin("mta SIZE too small: permanent");
	cfg.ext = "SIZE 10";
	fake_smtp_start(&f, base, "127.0.0.2", port, &cfg);
	m = new_mta(NULL);
	deliver(m, "one.test", "a@one.test", body, false, &ru);
	t_assert_str(ru.results, "a@one.test=perm:552;");
	t_end();
	mta_free(m);
	fake_smtp_stop(&f);

	t_begin("mta no EHLO: HELO fallback, no pipelining");
	cfg.ext = NULL;
	fake_smtp_start(&f, base, "127.0.0.2", port, &cfg);
	m = new_mta(NULL);
	deliver(m, "one.test", "a@one.test,p5@one.test,b@one.test", body, false,
	    &ru);
	t_assert_str(ru.results, "p5@one.test=perm:550;a@one.test=ok:250;"
	    "b@one.test=ok:250;");
	t_assert(strstr(f.mailcmd, "SIZE=") == NULL);
	t_end();
	mta_free(m);
	fake_smtp_stop(&f);

	t_begin("mta 5xx after data");
	cfg.ext = "PIPELINING";
	cfg.dot = 554;
	fake_smtp_start(&f, base, "127.0.0.2", port, &cfg);
	m = new_mta(NULL);
	deliver(m, "one.test", "a@one.test", body, false, &ru);
	t_assert_str(ru.results, "a@one.test=perm:554;");
	cfg.dot = 250;
	t_end();
	mta_free(m);
	fake_smtp_stop(&f);
}

static void
test_backup(void)
{
	struct fake_smtp_cfg ok = { 220, "PIPELINING", 250, 250 };
	struct fake_smtp_cfg busy = { 421, "PIPELINING", 250, 250 };
	struct fake_smtp f1, f2;
	struct mta *m;
	struct run ru;

	m = new_mta(NULL);
	fake_smtp_start(&f2, base, "127.0.0.4", port, &ok);

	t_begin("mta primary refuses connection: backup");
	deliver(m, "backup.test", "a@backup.test", "x\r\n", false, &ru);
	t_assert_str(ru.results, "a@backup.test=ok:250;");
	t_assert_int(f2.msgs, 1);
	t_end();

	t_begin("mta primary 421: backup");
	fake_smtp_start(&f1, base, "127.0.0.3", port, &busy);
	deliver(m, "backup.test", "a@backup.test", "x\r\n", false, &ru);
	t_assert_str(ru.results, "a@backup.test=ok:250;");
	t_assert_int(f1.conns, 1);
	t_assert_int(f2.msgs, 2);
	t_end();
	fake_smtp_stop(&f1);

	t_begin("mta primary 4xx to MAIL: backup");
	busy.greeting = 220;
	busy.mail = 451;
	fake_smtp_start(&f1, base, "127.0.0.3", port, &busy);
	deliver(m, "backup.test", "a@backup.test", "x\r\n", false, &ru);
	t_assert_str(ru.results, "a@backup.test=ok:250;");
	t_assert_int(f2.msgs, 3);
	t_end();
	fake_smtp_stop(&f2);

	t_begin("mta every MX temporary: temp with the last reply");
	deliver(m, "backup.test", "a@backup.test", "x\r\n", false, &ru);
	t_assert(strncmp(ru.results, "a@backup.test=temp:451;", 23) == 0);
	t_end();
	fake_smtp_stop(&f1);

	t_begin("mta primary silent (timeout): backup");
	{
		struct fake_smtp_cfg silent = { 0, "PIPELINING", 250, 250 };
		struct mta *mt = new_mta_tls(NULL, NULL, 300);

		fake_smtp_start(&f1, base, "127.0.0.3", port, &silent);
		fake_smtp_start(&f2, base, "127.0.0.4", port, &ok);
		deliver(mt, "backup.test", "a@backup.test", "x\r\n", false,
		    &ru);
		t_assert_str(ru.results, "a@backup.test=ok:250;");
		t_assert_int(f2.msgs, 1);
		fake_smtp_stop(&f2);
		fake_smtp_stop(&f1);
		mta_free(mt);
	}
	t_end();

	t_begin("mta broken STARTTLS: same host again in clear");
	{
		struct fake_smtp_cfg tlsbad = { 220, "STARTTLS\nPIPELINING",
		    250, 250 };
		const char *err = NULL;
		struct tls_ctx *tls = tls_ctx_client_new(NULL, &err);
		struct mta *mt = new_mta_tls(NULL, tls, 2000);
		struct fake_smtp f3;

		t_assert(tls != NULL);
		fake_smtp_start(&f3, base, "127.0.0.2", port, &tlsbad);
		deliver(mt, "one.test", "a@one.test", "x\r\n", false, &ru);
		t_assert_str(ru.results, "a@one.test=ok:250;");
		t_assert_int(f3.conns, 2);
		t_assert_int(f3.msgs, 1);
		fake_smtp_stop(&f3);
		mta_free(mt);
		tls_ctx_free(tls);
	}
	t_end();

	t_begin("mta 5xx to MAIL: permanent");
	busy.mail = 553;
	fake_smtp_start(&f1, base, "127.0.0.3", port, &busy);
	deliver(m, "backup.test", "a@backup.test", "x\r\n", false, &ru);
	t_assert_str(ru.results, "a@backup.test=perm:553;");
	t_end();
	fake_smtp_stop(&f1);
	mta_free(m);
}

static void
test_dns_errors(void)
{
	struct mta *m = new_mta(NULL);
	struct run ru;

	t_begin("mta null MX: permanent");
	deliver(m, "null.test", "a@null.test", "x\r\n", false, &ru);
	t_assert_str(ru.results, "a@null.test=perm:556;");
	t_end();

	t_begin("mta NXDOMAIN: permanent");
	deliver(m, "nowhere.test", "a@nowhere.test,b@nowhere.test", "x\r\n",
	    false, &ru);
	t_assert_str(ru.results, "a@nowhere.test=perm:550;"
	    "b@nowhere.test=perm:550;");
	t_end();

	t_begin("mta SERVFAIL: temporary");
	deliver(m, "fail.test", "a@fail.test", "x\r\n", false, &ru);
	t_assert_str(ru.results, "a@fail.test=temp:451;");
	t_end();

	t_begin("mta no MX, no address: permanent");
	deliver(m, "noaddr.test", "a@noaddr.test", "x\r\n", false, &ru);
	t_assert_str(ru.results, "a@noaddr.test=perm:550;");
	t_end();

	t_begin("mta abort before any answer");
	{
		struct mta_rcpt r = { .address = "a@one.test" };
		struct mta_msg msg = { .id = "2", .domain = "one.test",
		    .mail_from = "", .read = mem_read, .read_arg = "x",
		    .rcpts = &r, .nrcpts = 1 };
		struct mta_session *s;

		memset(&ru, 0, sizeof(ru));
		s = mta_session_start(m, &msg, on_rcpt, on_done, &ru);
		t_assert_int(mta_session_count(m), 1);
		mta_session_abort(s);
		t_assert_int(mta_session_count(m), 0);
		event_base_loop(base, EVLOOP_NONBLOCK);
		t_assert(!ru.done);
	}
	t_end();
	mta_free(m);
}

/* The exact path each kind of delivery takes through the states, as
 * mta_enter logs it. */
/*
 * A hostile MX: at accept it sends burst "220-" lines at once, then one
 * more every 20 ms for ever (trickle), never the final "220 " line.
 */
struct trickler {
	struct evconnlistener *lis;
	struct event *tick;
	int fds[8];
	size_t nfds;
	unsigned burst;
	bool trickle;
	unsigned sent;
};

static void
trickler_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct trickler *t = arg;
	unsigned i;

	if (t->nfds == 8) {
		close(fd);
		return;
	}
	t->fds[t->nfds++] = fd;
	for (i = 0; i < t->burst; i++)
		if (send(fd, "220-slow.test\r\n", 15, MSG_NOSIGNAL) != 15)
			abort();
}

static void
trickler_tick(evutil_socket_t fd, short what, void *arg)
{
	struct trickler *t = arg;
	size_t i;

	for (i = 0; i < t->nfds && t->trickle; i++)
		if (send(t->fds[i], "220-slow.test\r\n", 15,
		    MSG_NOSIGNAL) == 15)
			t->sent++;
}

static void
trickler_start(struct trickler *t, const char *ip, unsigned burst,
    bool trickle)
{
	struct sockaddr_in sin;
	struct timeval tv = { 0, 20 * 1000 };

	memset(t, 0, sizeof(*t));
	t->burst = burst;
	t->trickle = trickle;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, ip, &sin.sin_addr);
	sin.sin_port = htons((uint16_t)port);
	t->lis = evconnlistener_new_bind(base, trickler_accept, t,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
	    (struct sockaddr *)&sin, sizeof(sin));
	if (t->lis == NULL)
		abort();
	t->tick = event_new(base, -1, EV_PERSIST, trickler_tick, t);
	evtimer_add(t->tick, &tv);
}

static void
trickler_stop(struct trickler *t)
{
	size_t i;

	for (i = 0; i < t->nfds; i++)
		close(t->fds[i]);
	event_free(t->tick);
	evconnlistener_free(t->lis);
}

static void
test_deadlines(void)
{
	struct trickler t;
	struct mta *m;
	struct run ru;
	uint64_t t0, took;

	t_begin("mta greeting trickled line by line: given up at the deadline");
	trickler_start(&t, "127.0.0.2", 0, true);
	/* Idle timeout and deadline are both 300 ms; a line comes every
	 * 20 ms, so only a deadline can end this. */
	m = new_mta_tls(NULL, NULL, 300);
	t0 = util_now_ms();
	deliver(m, "one.test", "a@one.test", "x\r\n", false, &ru);
	took = util_now_ms() - t0;
	t_assert(ru.done);
	t_assert_str(ru.results, "a@one.test=temp:451;");
	t_assert(strstr(ru.reply, "451 4.4.1 ") == ru.reply);
	t_assert(strstr(ru.reply, "timeout: no complete greeting reply "
	    "within 300 ms") != NULL);
	t_assert(took >= 290 && took < 1500);
	t_assert(t.sent >= 5);
	t_assert_str(ru.states, "new>mx>addr>connect>greeting");
	mta_free(m);
	trickler_stop(&t);
	t_end();

	t_begin("mta 101-line reply ends the attempt, 100 lines do not");
	trickler_start(&t, "127.0.0.2", 101, false);
	m = new_mta_tls(NULL, NULL, 2000);
	t0 = util_now_ms();
	deliver(m, "one.test", "a@one.test", "x\r\n", false, &ru);
	took = util_now_ms() - t0;
	t_assert_str(ru.results, "a@one.test=temp:451;");
	t_assert(strstr(ru.reply, "451 4.5.0 reply in state greeting longer "
	    "than 100 lines or 65536 bytes") == ru.reply);
	t_assert(took < 1000);		/* at once, not at the deadline */
	trickler_stop(&t);
	/* 100 continuation lines and nothing more: the deadline ends it,
	 * not the line limit. */
	trickler_start(&t, "127.0.0.2", 100, false);
	deliver(m, "one.test", "a@one.test", "x\r\n", false, &ru);
	t_assert(strstr(ru.reply, "timeout: no complete greeting reply "
	    "within 2000 ms") != NULL);
	trickler_stop(&t);
	mta_free(m);
	t_end();
}

static void
test_states(void)
{
	struct fake_smtp_cfg ok = { 220, "PIPELINING", 250, 250 };
	struct fake_smtp_cfg old = { 220, NULL, 250, 250 };
	struct fake_smtp_cfg tlsbad = { 220, "STARTTLS\nPIPELINING", 250, 250 };
	struct fake_smtp f;
	struct mta *m;
	struct run ru;
	char smarthost[64];

	t_begin("mta states: MX delivery, pipelined");
	fake_smtp_start(&f, base, "127.0.0.2", port, &ok);
	m = new_mta(NULL);
	deliver(m, "one.test", "a@one.test,b@one.test", "x\r\n", false, &ru);
	t_assert_str(ru.results, "a@one.test=ok:250;b@one.test=ok:250;");
	t_assert_str(ru.states, "new>mx>addr>connect>greeting>ehlo>mail>rcpt>"
	    "data>body>dot>quit");
	t_end();

	t_begin("mta states: smarthost without STARTTLS gives up after EHLO");
	snprintf(smarthost, sizeof(smarthost), "127.0.0.2:%u", port);
	{
		struct mta *ms = new_mta(smarthost);

		deliver(ms, "one.test", "a@one.test", "x\r\n", false, &ru);
		t_assert_str(ru.results, "a@one.test=temp:451;");
		t_assert_str(ru.states, "new>addr>connect>greeting>ehlo");
		mta_free(ms);
	}
	t_end();
	mta_free(m);
	fake_smtp_stop(&f);

	t_begin("mta states: EHLO refused, HELO");
	fake_smtp_start(&f, base, "127.0.0.2", port, &old);
	m = new_mta(NULL);
	deliver(m, "one.test", "a@one.test", "x\r\n", false, &ru);
	t_assert_str(ru.results, "a@one.test=ok:250;");
	t_assert_str(ru.states, "new>mx>addr>connect>greeting>ehlo>helo>mail>"
	    "rcpt>data>body>dot>quit");
	t_end();
	mta_free(m);
	fake_smtp_stop(&f);

	t_begin("mta states: primary refuses, backup host");
	fake_smtp_start(&f, base, "127.0.0.4", port, &ok);
	m = new_mta(NULL);
	deliver(m, "backup.test", "a@backup.test", "x\r\n", false, &ru);
	t_assert_str(ru.results, "a@backup.test=ok:250;");
	t_assert_str(ru.states, "new>mx>addr>connect>addr>connect>greeting>"
	    "ehlo>mail>rcpt>data>body>dot>quit");
	t_end();
	fake_smtp_stop(&f);

	t_begin("mta states: null MX ends at the lookup");
	deliver(m, "null.test", "a@null.test", "x\r\n", false, &ru);
	t_assert_str(ru.results, "a@null.test=perm:556;");
	t_assert_str(ru.states, "new>mx");
	t_end();
	mta_free(m);

	t_begin("mta states: broken STARTTLS, same address in clear");
	{
		const char *err = NULL;
		struct tls_ctx *tls = tls_ctx_client_new(NULL, &err);

		t_assert(tls != NULL);
		fake_smtp_start(&f, base, "127.0.0.2", port, &tlsbad);
		m = new_mta_tls(NULL, tls, 2000);
		deliver(m, "one.test", "a@one.test", "x\r\n", false, &ru);
		t_assert_str(ru.results, "a@one.test=ok:250;");
		t_assert_str(ru.states, "new>mx>addr>connect>greeting>ehlo>"
		    "starttls>tls>connect>greeting>ehlo>mail>rcpt>data>body>"
		    "dot>quit");
		mta_free(m);
		fake_smtp_stop(&f);
		tls_ctx_free(tls);
	}
	t_end();
}

/* Feed lines[] (NULL-terminated) to mta_reply_line into a reply buffer of
 * size bytes; the last result, the reply text and the code left over. */
static int
reply_lines(const char *const *lines, size_t size, char *reply, int *code)
{
	size_t replylen = 0;
	int r = 0;

	*code = 0;
	reply[0] = '\0';
	for (; *lines != NULL; lines++)
		if ((r = mta_reply_line(code, reply, size, &replylen, *lines,
		    strlen(*lines))) < 0)
			break;
	t_assert_int(strlen(reply), replylen);
	return r;
}

static void
test_reply_lines(void)
{
	static const char *const one[] = { "250 ok", NULL };
	static const char *const multi[] = { "250-mx.test hi", "250-SIZE 10",
	    "250 PIPELINING", NULL };
	static const char *const bare[] = { "354", NULL };
	static const char *const empty[] = { "250-", "250-", "250 x", NULL };
	static const char *const open_[] = { "220-a", "220-b", NULL };
	static const char *const bad_code[] = { "250-a", "251 b", NULL };
	static const char *const bad[] = { "25", "199 x", "600 x", "2x0 x",
	    "250x", "250_x", NULL };
	static const char *const cut[] = { "550-aaaaaaaa", "550 bbbbbbbbbb",
	    NULL };
	char reply[1024], small[12];
	const char *line[2] = { NULL, NULL };
	int code;
	size_t i;

	t_begin("mta reply lines join into one reply");
	t_assert_int(reply_lines(one, sizeof(reply), reply, &code), 250);
	t_assert_str(reply, "250 ok");
	t_assert_int(code, 0);
	t_assert_int(reply_lines(multi, sizeof(reply), reply, &code), 250);
	t_assert_str(reply, "250 mx.test hi SIZE 10 PIPELINING");
	t_assert_int(code, 0);
	t_assert_int(reply_lines(bare, sizeof(reply), reply, &code), 354);
	t_assert_str(reply, "354");
	t_assert_int(reply_lines(empty, sizeof(reply), reply, &code), 250);
	t_assert_str(reply, "250  x");
	t_assert_int(reply_lines(open_, sizeof(reply), reply, &code), 0);
	t_assert_str(reply, "220 a b");
	t_assert_int(code, 220);
	t_end();

	t_begin("mta reply lines: malformed, inconsistent, cut to size");
	t_assert_int(reply_lines(bad_code, sizeof(reply), reply, &code),
	    MTA_REPLY_INCONSISTENT);
	for (i = 0; bad[i] != NULL; i++) {
		line[0] = bad[i];
		t_assert_int(reply_lines(line, sizeof(reply), reply, &code),
		    MTA_REPLY_MALFORMED);
	}
	t_assert_int(reply_lines(cut, sizeof(small), small, &code), 550);
	t_assert_str(small, "550 aaaaaaa");
	t_end();
}

static void
test_helpers(void)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "", ".\r\n" },
		{ "a\r\n", "a\r\n.\r\n" },
		{ ".a\r\n.\r\n", "..a\r\n..\r\n.\r\n" },
		{ "a\nb", "a\r\nb\r\n.\r\n" },		/* bare LF repaired */
		{ "a\r.b\r\n", "a\r\n..b\r\n.\r\n" },	/* bare CR repaired */
		{ "a\r", "a\r\n.\r\n" },
		{ "x\r\n\r\n.\r\n", "x\r\n\r\n..\r\n.\r\n" },
	};
	unsigned char out[256];
	size_t i, j, o, len;
	unsigned st;

	t_begin("mta dot-stuffing at every split point");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		len = strlen(cases[i].in);
		for (j = 0; j <= len; j++) {
			st = 0;
			o = mta_stuff(&st, (const unsigned char *)cases[i].in,
			    j, out);
			o += mta_stuff(&st, (const unsigned char *)cases[i].in +
			    j, len - j, out + o);
			o += mta_stuff_end(&st, out + o);
			out[o] = '\0';
			t_assert_str((char *)out, cases[i].out);
		}
	}
	t_end();

	test_reply_lines();
}

static void
test_throttle_text(void)
{
	t_begin("mta: throttling replies are told from other 4xx");
	t_assert(mta_reply_is_throttle("421 4.7.0 Try again later"));
	t_assert(mta_reply_is_throttle("421 mx.example closing (mx[1.2.3.4])"));
	t_assert(mta_reply_is_throttle("451 4.7.1 Rate limit exceeded"));
	t_assert(mta_reply_is_throttle("450 4.7.28 too many messages from "
	    "your IP"));
	t_assert(mta_reply_is_throttle("452 4.7.0 THROTTLED"));
	t_assert(!mta_reply_is_throttle("451 4.7.1 greylisted, come back"));
	t_assert(!mta_reply_is_throttle("452 4.5.3 too many recipients"));
	t_assert(!mta_reply_is_throttle("550 5.7.1 rate limited forever"));
	t_assert(!mta_reply_is_throttle("4211 x"));
	t_assert(!mta_reply_is_throttle(""));
	t_assert(!mta_reply_is_throttle(NULL));
	t_end();
}

static void
test_hard_bounce_text(void)
{
	t_begin("mta: hard bounces are told from other refusals");
	t_assert(mta_reply_is_hard_bounce("550 5.1.1 no such user"));
	t_assert(mta_reply_is_hard_bounce("550 5.1.2 domain x does not exist "
	    "(DNS: NXDOMAIN)"));
	t_assert(mta_reply_is_hard_bounce("556 5.1.10 null MX"));
	t_assert(mta_reply_is_hard_bounce("550 5.2.1 mailbox disabled"));
	t_assert(mta_reply_is_hard_bounce("551 5.1.6 moved"));
	t_assert(!mta_reply_is_hard_bounce("550 5.1.100 x"));
	t_assert(!mta_reply_is_hard_bounce("550 5.7.1 relay denied"));
	t_assert(!mta_reply_is_hard_bounce("552 5.2.2 over quota"));
	t_assert(!mta_reply_is_hard_bounce("450 4.1.1 try later"));
	t_assert(!mta_reply_is_hard_bounce("550 no enhanced code"));
	t_assert(!mta_reply_is_hard_bounce(NULL));
	t_end();
}

int
main(void)
{
	struct fake_dns fd;
	const char *err;
	char resolver[64];
	struct fake_smtp probe;
	struct fake_smtp_cfg cfg = { 220, "", 250, 250 };

	base = event_base_new();
	fake_dns_start(&fd, base, zone, sizeof(zone) / sizeof(zone[0]));
	snprintf(resolver, sizeof(resolver), "127.0.0.1:%u", fd.port);
	dns = dns_new(base, resolver, 500, 1, &err);
	/* One port for every fake MX (like [relay] mx_port). */
	fake_smtp_start(&probe, base, "127.0.0.2", 0, &cfg);
	port = probe.port;
	fake_smtp_stop(&probe);

	test_helpers();
	test_throttle_text();
	test_hard_bounce_text();
	test_basic();
	test_backup();
	test_dns_errors();
	test_states();
	test_deadlines();

	dns_free(dns);
	fake_dns_stop(&fd);
	event_base_free(base);
	return t_exit();
}
