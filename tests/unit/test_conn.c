/*
 * Unit tests for common/conn*.c, common/tls.c and common/listener.c over
 * socketpairs and loopback, in one event loop: the line reader at every
 * split point, LOWAT, free-from-callback, close-after-flush, STARTTLS
 * injection defence, a full TLS handshake with a throwaway certificate.
 */
#include "t.h"

#include "common/config.h"
#include "common/conn.h"
#include "common/conn_internal.h"
#include "common/listener.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <event2/buffer.h>
#include <event2/event.h>

static struct event_base *base;
static char tmpdir[256];
static char certfile[300], keyfile[300];

/* ---- helpers ------------------------------------------------------------ */

static void
watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	*(bool *)arg = true;
}

/* Run the loop until *flag (or 5 s: a hang is a failure, not a stuck CI). */
static bool
run_until(bool *flag)
{
	bool expired = false;
	struct event *wd = evtimer_new(base, watchdog_cb, &expired);
	struct timeval tv = { 5, 0 };

	evtimer_add(wd, &tv);
	while (!*flag && !expired)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(wd);
	return *flag;
}

/* Let pending work run without blocking much. */
static void
run_briefly(int ms)
{
	bool done = false;
	struct event *wd = evtimer_new(base, watchdog_cb, &done);
	struct timeval tv = { 0, ms * 1000 };

	evtimer_add(wd, &tv);
	while (!done)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(wd);
}

static void
make_pair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	    sv) == -1) {
		perror("socketpair");
		exit(2);
	}
}

static void
write_all(int fd, const void *p, size_t len)
{
	const char *s = p;

	while (len > 0) {
		ssize_t n = write(fd, s, len);
		if (n == -1 && errno == EAGAIN) {
			run_briefly(1);
			continue;
		}
		if (n <= 0) {
			perror("write");
			exit(2);
		}
		s += n;
		len -= (size_t)n;
	}
}

/*
 * A recorder of conn_getline results: "L<len>[b]:<text>|" per line (b for
 * bare LF, NULs as '@'), "TOO_LONG|" for an overlong line.
 */
struct rec {
	char text[8192];
	size_t max;
	int events[CONN_EV_TIMEOUT + 1];
	bool done;
	bool free_on_input;
	bool free_on_eof;
	bool free_on_lowat;
	bool free_on_tls;
	bool pause_after_one;
	struct conn **self;		/* set to NULL when freed */
};

static void
rec_drain(struct conn *c, struct rec *r)
{
	enum conn_line lr;
	char *line;
	size_t len, o;
	bool bare;

	while ((lr = conn_getline(c, r->max, &line, &len, &bare)) !=
	    CONN_LINE_NONE) {
		o = strlen(r->text);
		if (lr == CONN_LINE_TOO_LONG) {
			snprintf(r->text + o, sizeof(r->text) - o,
			    "TOO_LONG|");
			continue;
		}
		t_assert(line[len] == '\0');
		o += (size_t)snprintf(r->text + o, sizeof(r->text) - o,
		    "L%zu%s:", len, bare ? "b" : "");
		for (size_t i = 0; i < len && o + 2 < sizeof(r->text); i++)
			r->text[o++] = line[i] ? line[i] : '@';
		r->text[o++] = '|';
		r->text[o] = '\0';
		if (r->pause_after_one) {
			conn_pause_read(c);
			return;
		}
	}
}

static void
rec_cb(struct conn *c, enum conn_event ev, void *arg)
{
	struct rec *r = arg;

	r->events[ev]++;
	switch (ev) {
	case CONN_EV_INPUT:
		if (r->free_on_input) {
			conn_free(c);
			/* A second free inside the callback is harmless. */
			conn_free(c);
			*r->self = NULL;
			r->done = true;
			return;
		}
		rec_drain(c, r);
		r->done = true;
		break;
	case CONN_EV_EOF:
		if (r->free_on_eof) {
			conn_free(c);
			*r->self = NULL;
		}
		r->done = true;
		break;
	case CONN_EV_LOWAT:
		if (r->free_on_lowat) {
			conn_free(c);
			*r->self = NULL;
		}
		r->done = true;
		break;
	case CONN_EV_TLS_READY:
		if (r->free_on_tls) {
			conn_free(c);
			*r->self = NULL;
		}
		r->done = true;
		break;
	default:
		r->done = true;
		break;
	}
}

/* ---- the line reader --------------------------------------------------- */

static const char line_input[] =
    "HELO a\r\n"
    "MAIL FROM:<x@y>\n"
    "\r\n"
    "\n"
    "cr\rinside\r\n"
    "nul\0byte\r\n"
    "last";
static const char line_expect[] =
    "L6:HELO a|L15b:MAIL FROM:<x@y>|L0:|L0b:|L9:cr\rinside|L8:nul@byte|";

/* Feed the buffer directly: every split point, then byte by byte. */
static void
test_getline_splits(void)
{
	size_t n = sizeof(line_input) - 1;
	struct rec r;
	struct conn *c;
	int sv[2];

	t_begin("getline every split point (buffer)");
	make_pair(sv);
	c = conn_new(base, sv[0], rec_cb, &r);
	for (size_t k = 0; k <= n; k++) {
		memset(&r, 0, sizeof(r));
		r.max = 512;
		evbuffer_add(conn_input(c), line_input, k);
		rec_drain(c, &r);
		evbuffer_add(conn_input(c), line_input + k, n - k);
		rec_drain(c, &r);
		t_assert_str(r.text, line_expect);
		/* "last" has no LF yet and stays buffered */
		t_assert_int(evbuffer_get_length(conn_input(c)), 4);
		evbuffer_drain(conn_input(c), 4);
	}
	memset(&r, 0, sizeof(r));
	r.max = 512;
	for (size_t k = 0; k < n; k++) {
		evbuffer_add(conn_input(c), line_input + k, 1);
		rec_drain(c, &r);
	}
	t_assert_str(r.text, line_expect);
	conn_free(c);
	close(sv[1]);
	t_end();
}

/* Through a socketpair and the loop: prefix, then the rest. */
static void
test_getline_socket(void)
{
	size_t n = sizeof(line_input) - 1;
	struct rec r;
	struct conn *c;
	int sv[2];

	t_begin("getline every split point (socketpair)");
	for (size_t k = 1; k < n; k++) {
		memset(&r, 0, sizeof(r));
		r.max = 512;
		make_pair(sv);
		c = conn_new(base, sv[0], rec_cb, &r);
		write_all(sv[1], line_input, k);
		r.done = false;
		t_assert(run_until(&r.done));
		write_all(sv[1], line_input + k, n - k);
		close(sv[1]);
		r.done = false;
		while (r.events[CONN_EV_EOF] == 0 && run_until(&r.done))
			r.done = false;
		t_assert_str(r.text, line_expect);
		t_assert_int(conn_bytes_in(c), n);
		t_assert_int(r.events[CONN_EV_EOF], 1);
		conn_free(c);
	}
	t_end();
}

static void
test_getline_too_long(void)
{
	/* max 16: the LF must be among the first 16 bytes. */
	static const struct {
		const char *in;
		const char *expect;
	} cases[] = {
		{ "aaaaaaaaaaaaaaa\n", "L15b:aaaaaaaaaaaaaaa|" },
		{ "aaaaaaaaaaaaaa\r\n", "L14:aaaaaaaaaaaaaa|" },
		{ "aaaaaaaaaaaaaaaa\n", "TOO_LONG|" },
		{ "aaaaaaaaaaaaaaa\r\n", "TOO_LONG|" },
		{ "ok\r\n"
		  "0123456789012345678901234567890123456789\r\n"
		  "next\r\n",
		  "L2:ok|TOO_LONG|L4:next|" },
		{ "0123456789012345678901234567890123456789"
		  "0123456789012345678901234567890123456789\n"
		  "\r\nx\r\n",
		  "TOO_LONG|L0:|L1:x|" },
	};
	struct rec r;
	struct conn *c;
	int sv[2];

	t_begin("getline too long, then recovery");
	make_pair(sv);
	c = conn_new(base, sv[0], rec_cb, &r);
	for (size_t i = 0; i < nitems(cases); i++) {
		size_t n = strlen(cases[i].in);

		for (size_t k = 0; k <= n; k++) {
			memset(&r, 0, sizeof(r));
			r.max = 16;
			evbuffer_add(conn_input(c), cases[i].in, k);
			rec_drain(c, &r);
			evbuffer_add(conn_input(c), cases[i].in + k, n - k);
			rec_drain(c, &r);
			t_assert_str(r.text, cases[i].expect);
			t_assert_int(evbuffer_get_length(conn_input(c)), 0);
		}
		memset(&r, 0, sizeof(r));
		r.max = 16;
		for (size_t k = 0; k < n; k++) {
			evbuffer_add(conn_input(c), cases[i].in + k, 1);
			rec_drain(c, &r);
		}
		t_assert_str(r.text, cases[i].expect);
	}
	conn_free(c);
	close(sv[1]);
	t_end();
}

/* ---- output ------------------------------------------------------------- */

struct sink {
	int fd;
	size_t got;
	struct event *ev;
	bool eof;
};

static void
sink_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sink *s = arg;
	char buf[65536];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		s->got += (size_t)n;
	if (n == 0) {
		s->eof = true;
		event_del(s->ev);
	}
}

static void
sink_start(struct sink *s, int fd)
{
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->ev = event_new(base, fd, EV_READ | EV_PERSIST, sink_cb, s);
	event_add(s->ev, NULL);
}

static void
sink_stop(struct sink *s)
{
	event_free(s->ev);
	close(s->fd);
}

static void
test_lowat(void)
{
	const size_t total = 4 * 1024 * 1024;
	char *big = xmalloc(total);
	struct sink sink;
	struct rec r;
	struct conn *c;
	int sv[2];

	t_begin("LOWAT after a large write drained by the peer");
	memset(big, 'x', total);
	make_pair(sv);
	memset(&r, 0, sizeof(r));
	c = conn_new(base, sv[0], rec_cb, &r);
	conn_write(c, big, total);
	t_assert_int(conn_output_len(c), total);
	t_assert_int(r.events[CONN_EV_LOWAT], 0);	/* never synchronous */
	sink_start(&sink, sv[1]);
	t_assert(run_until(&r.done));
	t_assert_int(r.events[CONN_EV_LOWAT], 1);
	t_assert_int(conn_output_len(c), 0);
	t_assert_int(conn_bytes_out(c), total);

	/* lowat > 0: reported while output is still above 0 */
	r.done = false;
	conn_set_lowat(c, 1024 * 1024);
	evbuffer_add(conn_output(c), big, total);	/* direct append */
	t_assert(run_until(&r.done));
	t_assert_int(r.events[CONN_EV_LOWAT], 2);
	t_assert(conn_output_len(c) <= 1024 * 1024);
	run_briefly(20);
	t_assert_int(conn_bytes_out(c), 2 * total);
	t_assert_int(sink.got, 2 * total);
	t_assert_int(r.events[CONN_EV_LOWAT], 2);
	conn_free(c);
	sink_stop(&sink);
	free(big);
	t_end();
}

static void
test_close_after_flush(void)
{
	const size_t total = 1024 * 1024;
	char *big = xmalloc(total);
	struct sink sink;
	struct rec r;
	struct conn *c;
	int sv[2];

	t_begin("close_after_flush: flushes, then LOWAT with empty output");
	memset(big, 'y', total);
	make_pair(sv);
	memset(&r, 0, sizeof(r));
	c = conn_new(base, sv[0], rec_cb, &r);
	r.self = &c;
	r.free_on_lowat = true;
	conn_write(c, big, total);
	conn_close_after_flush(c);
	t_assert(conn_is_closing(c));
	write_all(sv[1], "ignored\r\n", 9);
	sink_start(&sink, sv[1]);
	t_assert(run_until(&r.done));
	t_assert(c == NULL);
	t_assert_int(r.events[CONN_EV_LOWAT], 1);
	t_assert_int(r.events[CONN_EV_INPUT], 0);
	r.done = false;
	run_until(&sink.eof);
	t_assert(sink.eof);
	t_assert_int(sink.got, total);
	sink_stop(&sink);
	t_end();

	t_begin("close_after_flush: empty output still reports LOWAT");
	make_pair(sv);
	memset(&r, 0, sizeof(r));
	c = conn_new(base, sv[0], rec_cb, &r);
	conn_close_after_flush(c);
	t_assert_int(r.events[CONN_EV_LOWAT], 0);
	t_assert(run_until(&r.done));
	t_assert_int(r.events[CONN_EV_LOWAT], 1);
	conn_free(c);
	close(sv[1]);
	t_end();

	t_begin("close_after_flush: peer gone gives ERROR");
	make_pair(sv);
	memset(&r, 0, sizeof(r));
	c = conn_new(base, sv[0], rec_cb, &r);
	close(sv[1]);
	conn_write(c, big, total);
	conn_close_after_flush(c);
	t_assert(run_until(&r.done));
	t_assert_int(r.events[CONN_EV_ERROR], 1);
	t_assert_int(r.events[CONN_EV_LOWAT], 0);
	t_assert(strlen(conn_error(c)) > 0);
	conn_free(c);
	free(big);
	t_end();
}

struct lastword {
	int lowats;
	size_t out_at_final;
	bool done;
};

static void
lastword_cb(struct conn *c, enum conn_event ev, void *arg)
{
	struct lastword *lw = arg;

	if (ev != CONN_EV_LOWAT) {
		lw->done = true;
		return;
	}
	if (++lw->lowats == 1) {
		/* Resumable-output style: the drain callback queues the
		 * final reply and closes. */
		conn_printf(c, "bye\r\n");
		conn_close_after_flush(c);
		return;
	}
	lw->out_at_final = conn_output_len(c);
	conn_free(c);
	lw->done = true;
}

static void
test_lowat_then_close(void)
{
	const size_t total = 100000;
	char *big = xmalloc(total);
	struct lastword lw;
	struct sink sink;
	struct conn *c;
	int sv[2];

	t_begin("LOWAT callback writes a last reply and closes");
	memset(big, 'q', total);
	memset(&lw, 0, sizeof(lw));
	make_pair(sv);
	c = conn_new(base, sv[0], lastword_cb, &lw);
	conn_write(c, big, total);
	sink_start(&sink, sv[1]);
	t_assert(run_until(&lw.done));
	t_assert_int(lw.lowats, 2);
	t_assert_int(lw.out_at_final, 0);
	run_until(&sink.eof);
	t_assert_int(sink.got, total + 5);
	sink_stop(&sink);
	free(big);
	t_end();
}

static void
test_free_from_callback(void)
{
	struct rec r;
	struct conn *c;
	int sv[2];

	t_begin("conn_free inside INPUT / EOF callbacks");
	make_pair(sv);
	memset(&r, 0, sizeof(r));
	c = conn_new(base, sv[0], rec_cb, &r);
	r.self = &c;
	r.free_on_input = true;
	write_all(sv[1], "QUIT\r\n", 6);
	t_assert(run_until(&r.done));
	t_assert(c == NULL);
	run_briefly(5);
	t_assert_int(r.events[CONN_EV_INPUT], 1);
	close(sv[1]);

	make_pair(sv);
	memset(&r, 0, sizeof(r));
	r.max = 512;
	c = conn_new(base, sv[0], rec_cb, &r);
	r.self = &c;
	r.free_on_eof = true;
	write_all(sv[1], "A\r\n", 3);
	close(sv[1]);
	t_assert(run_until(&r.done));
	if (r.events[CONN_EV_EOF] == 0) {
		r.done = false;
		t_assert(run_until(&r.done));
	}
	t_assert(c == NULL);
	t_assert_str(r.text, "L1:A|");
	t_assert_int(r.events[CONN_EV_EOF], 1);
	t_end();

	t_begin("conn_free with a redelivery pending");
	make_pair(sv);
	memset(&r, 0, sizeof(r));
	r.max = 512;
	r.pause_after_one = true;
	c = conn_new(base, sv[0], rec_cb, &r);
	write_all(sv[1], "A\r\nB\r\n", 6);
	t_assert(run_until(&r.done));
	t_assert_str(r.text, "L1:A|");
	conn_resume_read(c);		/* activates a redelivery ... */
	conn_free(c);			/* ... that must never run */
	run_briefly(5);
	t_assert_str(r.text, "L1:A|");
	close(sv[1]);
	t_end();
}

static void
test_pause_resume(void)
{
	struct rec r;
	struct conn *c;
	int sv[2];

	t_begin("pause stops reads; resume redelivers buffered input");
	make_pair(sv);
	memset(&r, 0, sizeof(r));
	r.max = 512;
	r.pause_after_one = true;
	c = conn_new(base, sv[0], rec_cb, &r);
	write_all(sv[1], "A\r\nB\r\nC\r\n", 9);
	t_assert(run_until(&r.done));
	t_assert_str(r.text, "L1:A|");
	write_all(sv[1], "D\r\n", 3);
	run_briefly(10);
	t_assert_str(r.text, "L1:A|");
	t_assert_int(r.events[CONN_EV_INPUT], 1);
	r.pause_after_one = false;
	r.done = false;
	conn_resume_read(c);
	t_assert_str(r.text, "L1:A|");	/* not from inside resume */
	t_assert(run_until(&r.done));
	run_briefly(10);
	t_assert_str(r.text, "L1:A|L1:B|L1:C|L1:D|");
	conn_free(c);
	close(sv[1]);
	t_end();
}

static void
test_timeout(void)
{
	struct rec r;
	struct conn *c;
	int sv[2];

	t_begin("idle timeout");
	make_pair(sv);
	memset(&r, 0, sizeof(r));
	c = conn_new(base, sv[0], rec_cb, &r);
	conn_set_timeout(c, 30);
	t_assert(run_until(&r.done));
	t_assert_int(r.events[CONN_EV_TIMEOUT], 1);
	conn_free(c);
	close(sv[1]);
	t_end();
}

/* A peer that sends one byte every 20 ms: progress for the idle timer. */
static void
trickle_cb(evutil_socket_t fd, short what, void *arg)
{
	write_all(*(int *)arg, "x", 1);
}

static void
test_deadline(void)
{
	struct rec r;
	struct conn *c;
	struct event *tr;
	struct timeval tv = { 0, 20 * 1000 };
	uint64_t t0, took;
	int sv[2];

	t_begin("deadline: not pushed back by a trickling peer");
	make_pair(sv);
	memset(&r, 0, sizeof(r));
	r.max = 100000;
	c = conn_new(base, sv[0], rec_cb, &r);
	tr = event_new(base, -1, EV_PERSIST, trickle_cb, &sv[1]);
	evtimer_add(tr, &tv);
	/* The idle timeout alone never fires while bytes keep coming. */
	conn_set_timeout(c, 100);
	run_briefly(300);
	t_assert_int(r.events[CONN_EV_TIMEOUT], 0);
	t_assert(r.events[CONN_EV_INPUT] > 0);
	t_assert(!conn_deadline_passed(c));
	/* A deadline does: once, 150 ms on, however much arrives. */
	conn_set_deadline(c, 400);
	conn_set_deadline(c, 150);	/* replaces the first */
	t0 = util_now_ms();
	while (r.events[CONN_EV_TIMEOUT] == 0 && util_now_ms() - t0 < 2000)
		event_base_loop(base, EVLOOP_ONCE);
	took = util_now_ms() - t0;
	t_assert_int(r.events[CONN_EV_TIMEOUT], 1);
	t_assert(conn_deadline_passed(c));
	t_assert(took >= 140 && took < 400);
	run_briefly(400);
	t_assert_int(r.events[CONN_EV_TIMEOUT], 1);	/* reported once */
	/* A new deadline clears the flag; 0 cancels it. */
	conn_set_deadline(c, 50);
	t_assert(!conn_deadline_passed(c));
	conn_set_deadline(c, 0);
	run_briefly(150);
	t_assert_int(r.events[CONN_EV_TIMEOUT], 1);
	t_assert(!conn_deadline_passed(c));
	event_free(tr);
	conn_free(c);
	close(sv[1]);
	t_end();
}

/* Wait for the first CONN_EV_TIMEOUT (up to 3 s); ms it took from t0. */
static uint64_t
wait_timeout(struct rec *r, uint64_t t0)
{
	while (r->events[CONN_EV_TIMEOUT] == 0 && util_now_ms() - t0 < 3000)
		event_base_loop(base, EVLOOP_ONCE);
	return util_now_ms() - t0;
}

struct extender {
	struct conn *c;
	int ms, max_ms;
};

static void
extend_cb(evutil_socket_t fd, short what, void *arg)
{
	struct extender *x = arg;

	conn_extend_deadline(x->c, x->ms, x->max_ms);
}

static void
test_deadline_extend(void)
{
	struct rec r;
	struct conn *c;
	struct extender x;
	struct event *ev;
	struct timeval tv = { 0, 20 * 1000 };
	uint64_t t0, took;
	int sv[2];

	t_begin("deadline: a later deadline replaces an earlier timer");
	make_pair(sv);
	memset(&r, 0, sizeof(r));
	c = conn_new(base, sv[0], rec_cb, &r);
	t0 = util_now_ms();
	conn_set_deadline(c, 100);
	conn_set_deadline(c, 400);	/* the 100 ms timer re-arms */
	took = wait_timeout(&r, t0);
	t_assert_int(r.events[CONN_EV_TIMEOUT], 1);
	t_assert(conn_deadline_passed(c));
	t_assert(took >= 395 && took < 1200);
	/* ... and an earlier one a later timer. */
	memset(r.events, 0, sizeof(r.events));
	t0 = util_now_ms();
	conn_set_deadline(c, 1000);
	conn_set_deadline(c, 80);
	took = wait_timeout(&r, t0);
	t_assert_int(r.events[CONN_EV_TIMEOUT], 1);
	t_assert(took >= 75 && took < 600);
	t_end();

	t_begin("deadline: extended, up to the cap");
	memset(r.events, 0, sizeof(r.events));
	t0 = util_now_ms();
	conn_set_deadline(c, 100);
	conn_extend_deadline(c, 250, 1000);	/* due at 350 */
	took = wait_timeout(&r, t0);
	t_assert_int(r.events[CONN_EV_TIMEOUT], 1);
	t_assert(took >= 345 && took < 1200);
	memset(r.events, 0, sizeof(r.events));
	t0 = util_now_ms();
	conn_set_deadline(c, 100);
	conn_extend_deadline(c, 5000, 200);	/* capped: due at 200 */
	took = wait_timeout(&r, t0);
	t_assert_int(r.events[CONN_EV_TIMEOUT], 1);
	t_assert(took >= 195 && took < 1000);
	/* Nothing to extend once it passed. */
	conn_extend_deadline(c, 100, 100);
	run_briefly(200);
	t_assert_int(r.events[CONN_EV_TIMEOUT], 1);
	t_end();

	t_begin("deadline: kept ahead while extended, passes when not");
	memset(r.events, 0, sizeof(r.events));
	x.c = c;
	x.ms = 20;
	x.max_ms = 150;
	ev = event_new(base, -1, EV_PERSIST, extend_cb, &x);
	conn_set_deadline(c, 150);
	evtimer_add(ev, &tv);
	run_briefly(600);
	t_assert_int(r.events[CONN_EV_TIMEOUT], 0);
	event_del(ev);
	t0 = util_now_ms();
	took = wait_timeout(&r, t0);
	t_assert_int(r.events[CONN_EV_TIMEOUT], 1);
	t_assert(took < 1000);
	event_free(ev);
	conn_free(c);
	close(sv[1]);
	t_end();
}

static void
test_deadline_connect(void)
{
	struct rec r;
	struct conn *c;
	struct sockaddr_in sin;

	/* A blackholed address (TEST-NET-1 is not routed): the deadline
	 * fails the connect before the 5 s connect timeout. */
	t_begin("deadline: bounds a connect");
	memset(&r, 0, sizeof(r));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(9);
	inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr);
	c = conn_connect(base, (struct sockaddr *)&sin, sizeof(sin), 5000,
	    rec_cb, &r);
	t_assert(c != NULL);
	conn_set_deadline(c, 50);
	t_assert(run_until(&r.done));
	t_assert_int(r.events[CONN_EV_ERROR], 1);
	t_assert_int(r.events[CONN_EV_CONNECTED], 0);
	conn_free(c);
	t_end();
}

/* ---- TLS ---------------------------------------------------------------- */

/*
 * A tiny protocol over two conns: the server answers "STARTTLS" with
 * "220 go" and starts TLS; afterwards it echoes "echo <line>" for every
 * line; the client checks.
 */
struct tside {
	struct conn *c;
	struct tls_ctx *ctx;
	bool is_server;
	bool ready;
	bool starttls_cmd;	/* server: handle STARTTLS in plaintext */
	char lines[4096];
	size_t big_expect;	/* client: bytes of 'z' lines to receive */
	size_t big_got;
	bool error;
	bool eof;
	const char *server_name;
};

static void
tside_cb(struct conn *c, enum conn_event ev, void *arg)
{
	struct tside *t = arg;
	enum conn_line lr;
	char *line;
	size_t len;

	switch (ev) {
	case CONN_EV_TLS_READY:
		t->ready = true;
		break;
	case CONN_EV_INPUT:
		while ((lr = conn_getline(c, 400000, &line, &len, NULL)) ==
		    CONN_LINE_OK) {
			if (t->is_server && !conn_is_tls(c) &&
			    strcmp(line, "STARTTLS") == 0) {
				conn_printf(c, "220 go\r\n");
				t_assert(conn_starttls(c, t->ctx) == 0);
				/* Must not see any more plaintext. */
				t_assert(conn_getline(c, 512, &line, &len,
				    NULL) == CONN_LINE_NONE);
				return;
			}
			if (!t->is_server && !conn_is_tls(c) &&
			    strcmp(line, "220 go") == 0) {
				t_assert(conn_starttls_client(c, t->ctx,
				    t->server_name) == 0);
				/* Queued before the handshake: must travel
				 * inside TLS, never in plaintext. */
				conn_printf(c, "EARLY\r\n");
				return;
			}
			if (len > 1000) {
				t->big_got += len;
				if (t->is_server)
					conn_printf(c, "got %zu\r\n", len);
				continue;
			}
			size_t o = strlen(t->lines);
			snprintf(t->lines + o, sizeof(t->lines) - o, "%s|",
			    line);
			if (t->is_server)
				conn_printf(c, "echo %s\r\n", line);
		}
		break;
	case CONN_EV_EOF:
		t->eof = true;
		break;
	case CONN_EV_ERROR:
		t->error = true;
		break;
	default:
		break;
	}
}

static bool
lines_contain(struct tside *t, const char *s)
{
	return strstr(t->lines, s) != NULL;
}

static void
wait_lines(struct tside *t, const char *s)
{
	bool expired = false;
	struct event *wd = evtimer_new(base, watchdog_cb, &expired);
	struct timeval tv = { 5, 0 };

	evtimer_add(wd, &tv);
	while (!lines_contain(t, s) && !expired && !t->error)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(wd);
}

static void
test_tls_certs(void)
{
	const char *err = NULL;
	struct stat st;

	t_begin("tls_selfsigned_write");
	snprintf(certfile, sizeof(certfile), "%s/cert.pem", tmpdir);
	snprintf(keyfile, sizeof(keyfile), "%s/key.pem", tmpdir);
	t_assert(tls_selfsigned_write(certfile, keyfile, "mail.example.test",
	    &err) == 0);
	t_assert(stat(keyfile, &st) == 0 && (st.st_mode & 0777) == 0600);
	t_assert(stat(certfile, &st) == 0 && st.st_size > 100);
	t_end();
}

static void
test_tls_key_secrecy(void)
{
	const char *err = NULL;
	struct tls_ctx *ctx;

	t_begin("TLS key readable by group/other is refused");
	chmod(keyfile, 0640);
	ctx = tls_ctx_server_new(certfile, keyfile, &err);
	t_assert(ctx == NULL);
	t_assert(err != NULL && strstr(err, "group or others") != NULL);
	chmod(keyfile, 0604);
	t_assert(tls_ctx_server_new(certfile, keyfile, &err) == NULL);
	chmod(keyfile, 0600);
	ctx = tls_ctx_server_new(certfile, keyfile, &err);
	t_assert(ctx != NULL);
	tls_ctx_free(ctx);
	t_assert(tls_ctx_server_new(certfile, "/nonexistent/key.pem",
	    &err) == NULL);
	t_assert(err != NULL && strstr(err, "/nonexistent/key.pem") != NULL);
	t_end();
}

static void
test_tls_session(bool implicit)
{
	const size_t bigsz = 300 * 1000;
	struct tside srv, cli;
	const char *err = NULL;
	char *big;
	int sv[2];

	t_begin(implicit ? "implicit TLS: handshake, data both ways" :
	    "STARTTLS: handshake, injection discarded, data both ways");
	memset(&srv, 0, sizeof(srv));
	memset(&cli, 0, sizeof(cli));
	srv.is_server = true;
	srv.ctx = tls_ctx_server_new(certfile, keyfile, &err);
	cli.ctx = tls_ctx_client_new(certfile, &err);
	cli.server_name = "mail.example.test";
	t_assert(srv.ctx != NULL && cli.ctx != NULL);
	make_pair(sv);
	srv.c = conn_new(base, sv[0], tside_cb, &srv);
	cli.c = conn_new(base, sv[1], tside_cb, &cli);
	conn_set_timeout(srv.c, 5000);
	if (implicit) {
		t_assert(conn_starttls(srv.c, srv.ctx) == 0);
		t_assert(conn_starttls_client(cli.c, cli.ctx,
		    cli.server_name) == 0);
		conn_printf(cli.c, "EARLY\r\n");
	} else {
		/* One write: the injected line sits in the same read. */
		conn_printf(cli.c, "STARTTLS\r\nINJECTED\r\n");
	}
	{
		bool expired = false;
		struct event *wd = evtimer_new(base, watchdog_cb, &expired);
		struct timeval tv = { 5, 0 };
		evtimer_add(wd, &tv);
		while (!(srv.ready && cli.ready) && !srv.error && !cli.error &&
		    !expired)
			event_base_loop(base, EVLOOP_ONCE);
		event_free(wd);
	}
	t_assert(srv.ready && cli.ready);
	t_assert(!srv.error && !cli.error);
	if (!srv.ready || !cli.ready) {
		conn_free(srv.c);
		conn_free(cli.c);
		tls_ctx_free(srv.ctx);
		tls_ctx_free(cli.ctx);
		t_end();
		return;
	}
	t_assert(conn_is_tls(srv.c) && conn_is_tls(cli.c));
	t_assert_str(conn_tls_version(srv.c), "TLSv1.3");
	t_assert(conn_tls_cipher(srv.c) != NULL &&
	    strncmp(conn_tls_cipher(srv.c), "TLS_", 4) == 0);
	t_assert_str(conn_tls_cipher(srv.c), conn_tls_cipher(cli.c));
	t_assert(conn_tls_verified(cli.c));
	t_assert(!conn_tls_verified(srv.c));

	conn_printf(cli.c, "AFTER\r\n");
	wait_lines(&cli, "echo AFTER|");
	t_assert_str(srv.lines, "EARLY|AFTER|");
	t_assert_str(cli.lines, "echo EARLY|echo AFTER|");
	t_assert(!lines_contain(&srv, "INJECTED"));

	/*
	 * Data left decrypted inside GnuTLS must be drained without another
	 * readable event: a 3-byte record then a full 16 KB record, read
	 * with a 16 KB budget, leaves 3 bytes (the CRLF) pending.
	 */
	conn_pause_read(srv.c);
	conn_printf(cli.c, "x\r\n");
	for (int i = 0; i < 1000 && conn_output_len(cli.c) > 0; i++)
		run_briefly(1);
	{
		char rec16[16384];
		memset(rec16, 'z', sizeof(rec16) - 2);
		memcpy(rec16 + sizeof(rec16) - 2, "\r\n", 2);
		conn_write(cli.c, rec16, sizeof(rec16));
	}
	for (int i = 0; i < 1000 && conn_output_len(cli.c) > 0; i++)
		run_briefly(1);
	conn_resume_read(srv.c);
	wait_lines(&cli, "got 16382|");
	t_assert(lines_contain(&cli, "echo x|got 16382|"));
	srv.big_got = cli.big_got = 0;

	/* Bulk both ways: many records, GnuTLS-pending data, LOWAT. */
	big = xmalloc(bigsz + 2);
	memset(big, 'z', bigsz);
	memcpy(big + bigsz, "\r\n", 2);
	for (int i = 0; i < 3; i++)
		conn_write(cli.c, big, bigsz + 2);
	for (int i = 0; i < 2; i++)
		conn_write(srv.c, big, bigsz + 2);
	conn_printf(srv.c, "server done\r\n");
	conn_printf(cli.c, "client done\r\n");
	wait_lines(&cli, "echo client done|");
	t_assert_int(srv.big_got, 3 * bigsz);
	t_assert_int(cli.big_got, 2 * bigsz);
	t_assert(lines_contain(&cli, "got 300000|got 300000|got 300000|"));
	t_assert(lines_contain(&cli, "server done|"));
	t_assert(conn_bytes_in(srv.c) >= 3 * bigsz);
	t_assert(conn_bytes_out(cli.c) >= 3 * bigsz);

	/* SIGHUP-style reload while a session uses the old credentials;
	 * freeing the ctx before the sessions must be safe too. */
	t_assert(tls_selfsigned_write(certfile, keyfile, "mail.example.test",
	    &err) == 0);
	t_assert(tls_ctx_reload(srv.ctx, &err) == 0);
	tls_ctx_free(srv.ctx);
	tls_ctx_free(cli.ctx);
	conn_printf(cli.c, "still there\r\n");
	wait_lines(&cli, "echo still there|");
	t_assert(lines_contain(&cli, "echo still there|"));

	/* close_notify: the client sees a clean EOF. */
	conn_close_after_flush(srv.c);
	run_until(&cli.eof);
	t_assert(cli.eof);
	conn_free(srv.c);
	conn_free(cli.c);
	free(big);
	t_end();
}

static void
test_tls_garbage(void)
{
	struct tside srv;
	const char *err = NULL;
	int sv[2];

	t_begin("TLS handshake with garbage gives ERROR");
	memset(&srv, 0, sizeof(srv));
	srv.is_server = true;
	srv.ctx = tls_ctx_server_new(certfile, keyfile, &err);
	make_pair(sv);
	srv.c = conn_new(base, sv[0], tside_cb, &srv);
	t_assert(conn_starttls(srv.c, srv.ctx) == 0);
	static const char junk[] = "EHLO plain text\r\n\r\n\r\n\r\n\r\n";
	write_all(sv[1], junk, sizeof(junk) - 1);
	bool expired = false;
	struct event *wd = evtimer_new(base, watchdog_cb, &expired);
	struct timeval tv = { 5, 0 };
	evtimer_add(wd, &tv);
	while (!srv.error && !expired)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(wd);
	t_assert(srv.error);
	t_assert(strlen(conn_error(srv.c)) > 0);
	conn_free(srv.c);
	close(sv[1]);
	tls_ctx_free(srv.ctx);
	t_end();

	t_begin("TLS: free inside TLS_READY");
	struct rec r;
	struct tside cli;
	struct conn *c;
	memset(&r, 0, sizeof(r));
	memset(&cli, 0, sizeof(cli));
	srv.ctx = tls_ctx_server_new(certfile, keyfile, &err);
	cli.ctx = tls_ctx_client_new(NULL, &err);
	make_pair(sv);
	c = conn_new(base, sv[0], rec_cb, &r);
	r.self = &c;
	r.free_on_tls = true;
	cli.c = conn_new(base, sv[1], tside_cb, &cli);
	conn_starttls(c, srv.ctx);
	conn_starttls_client(cli.c, cli.ctx, "mail.example.test");
	t_assert(run_until(&r.done));
	t_assert(c == NULL);
	run_briefly(20);
	/* self-signed and not in the system store: not verified */
	t_assert(!cli.ready || !conn_tls_verified(cli.c));
	conn_free(cli.c);
	tls_ctx_free(srv.ctx);
	tls_ctx_free(cli.ctx);
	t_end();
}

struct hs_timeout {
	int timeouts;
	int lowats;
	bool done;
};

static void
hs_timeout_cb(struct conn *c, enum conn_event ev, void *arg)
{
	struct hs_timeout *h = arg;

	switch (ev) {
	case CONN_EV_TIMEOUT:
		h->timeouts++;
		conn_printf(c, "421 timeout\r\n");
		conn_close_after_flush(c);
		break;
	case CONN_EV_LOWAT:
		h->lowats++;
		conn_free(c);
		h->done = true;
		break;
	default:
		h->done = true;
		break;
	}
}

static void
test_tls_handshake_timeout(void)
{
	struct hs_timeout h;
	struct tls_ctx *ctx;
	const char *err = NULL;
	struct conn *c;
	char buf[64];
	int sv[2];

	t_begin("TLS: silent client times out, close completes at once");
	memset(&h, 0, sizeof(h));
	ctx = tls_ctx_server_new(certfile, keyfile, &err);
	make_pair(sv);
	c = conn_new(base, sv[0], hs_timeout_cb, &h);
	conn_set_timeout(c, 30);
	t_assert(conn_starttls(c, ctx) == 0);
	t_assert(run_until(&h.done));
	t_assert_int(h.timeouts, 1);
	t_assert_int(h.lowats, 1);
	/* the plaintext 421 must not leak into a TLS port */
	t_assert(read(sv[1], buf, sizeof(buf)) <= 0);
	close(sv[1]);
	tls_ctx_free(ctx);
	t_end();
}

/* Loop until the server conn's handshake step is out on a worker. */
static bool
wait_hs_busy(struct conn *c)
{
	for (int i = 0; i < 5000 && !c->tls_hs_busy; i++)
		run_briefly(1);
	return c->tls_hs_busy;
}

/* A client's first flight (ClientHello), from a conn whose reply nobody
 * reads. Its step runs on a worker too: call it while not held. */
static size_t
client_hello(unsigned char *buf, size_t cap)
{
	struct tside cli;
	const char *err = NULL;
	size_t got = 0;
	ssize_t n;
	int cv[2];

	memset(&cli, 0, sizeof(cli));
	cli.ctx = tls_ctx_client_new(certfile, &err);
	make_pair(cv);
	cli.c = conn_new(base, cv[1], tside_cb, &cli);
	t_assert(conn_starttls_client(cli.c, cli.ctx,
	    "mail.example.test") == 0);
	for (int i = 0; i < 5000 && got == 0; i++) {
		run_briefly(1);
		while (got < cap && (n = read(cv[0], buf + got,
		    cap - got)) > 0)
			got += (size_t)n;
	}
	t_assert(got > 0 && buf[0] == 0x16);
	conn_free(cli.c);
	close(cv[0]);
	tls_ctx_free(cli.ctx);
	return got;
}

/*
 * conn_tls_offload_start: the steps run on workers. A conn freed, or
 * timed out and closed, while its step is out must wait for the step (the
 * worker owns the session and the fd): no use after free (ASan), no
 * plaintext on the TLS port, the close completes once the step is back.
 */
static void
test_tls_offload_lifetime(void)
{
	struct hs_timeout h;
	struct tside srv;
	struct tls_ctx *ctx;
	const char *err = NULL;
	struct conn *c;
	unsigned char buf[4096], hello[4096];
	size_t len;
	int sv[2];
	ssize_t n;

	t_begin("TLS offload: free while a handshake step is on a worker");
	len = client_hello(hello, sizeof(hello));
	memset(&srv, 0, sizeof(srv));
	srv.is_server = true;
	ctx = tls_ctx_server_new(certfile, keyfile, &err);
	make_pair(sv);
	srv.c = conn_new(base, sv[0], tside_cb, &srv);
	conn_tls_offload_hold(true);
	t_assert(conn_starttls(srv.c, ctx) == 0);
	write_all(sv[1], hello, len);
	t_assert(wait_hs_busy(srv.c));
	conn_free(srv.c);
	/* Still held: the step has not run, the fd is still open. */
	run_briefly(20);
	n = read(sv[1], buf, sizeof(buf));
	t_assert(n == -1 && errno == EAGAIN);
	conn_tls_offload_hold(false);
	/* The step runs (the server's flight goes out), comes back, and
	 * the conn goes: then the socket closes. */
	{
		size_t total = 0;

		for (int i = 0; i < 5000; i++) {
			n = read(sv[1], buf, sizeof(buf));
			if (n == 0)
				break;
			if (n > 0) {
				if (total == 0)
					t_assert(buf[0] == 0x16);
				total += (size_t)n;
				continue;
			}
			run_briefly(1);
		}
		t_assert(n == 0 && total > 0);
	}
	t_assert(!srv.ready);
	close(sv[1]);
	tls_ctx_free(ctx);
	t_end();

	t_begin("TLS offload: timeout while a step is out closes after it");
	memset(&h, 0, sizeof(h));
	len = client_hello(hello, sizeof(hello));
	ctx = tls_ctx_server_new(certfile, keyfile, &err);
	make_pair(sv);
	c = conn_new(base, sv[0], hs_timeout_cb, &h);
	conn_set_timeout(c, 30);
	conn_tls_offload_hold(true);
	t_assert(conn_starttls(c, ctx) == 0);
	write_all(sv[1], hello, len);
	t_assert(wait_hs_busy(c));
	/* The idle timeout fires while the step is held. */
	for (int i = 0; i < 5000 && h.timeouts == 0; i++)
		run_briefly(1);
	t_assert_int(h.timeouts, 1);
	t_assert(!h.done);
	conn_tls_offload_hold(false);
	t_assert(run_until(&h.done));
	t_assert_int(h.lowats, 1);
	/* What the server sent is TLS (a handshake record, 0x16), never
	 * the plaintext 421. */
	n = read(sv[1], buf, sizeof(buf));
	t_assert(n > 0 && buf[0] == 0x16);
	close(sv[1]);
	tls_ctx_free(ctx);
	t_end();
}

/* ---- connect, listener ------------------------------------------------ */

struct acc {
	struct conn *c;
	struct rec r;
	int n;
};

static void
accept_cb(int fd, const struct sockaddr *sa, socklen_t salen, void *arg)
{
	struct acc *a = arg;

	a->n++;
	a->r.max = 512;
	a->c = conn_new(base, fd, rec_cb, &a->r);
}

static void
test_listener_connect(void)
{
	struct cfg_hostport hp = { "127.0.0.1", "0" };
	struct cfg_hostports hps = { 1, &hp };
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	socklen_t len = sizeof(sin);
	struct listener *l;
	struct acc a;
	struct rec r;
	struct conn *c;
	int *fds = NULL;
	size_t n = 0;
	char *err = NULL;

	t_begin("listener + conn_connect on loopback");
	memset(&a, 0, sizeof(a));
	t_assert(listener_bind(&hps, &fds, &n, &err) == 0);
	t_assert_int(n, 1);
	getsockname(fds[0], (struct sockaddr *)&sin, &len);
	t_assert(fcntl(fds[0], F_GETFL) & O_NONBLOCK);
	l = listener_new(base, fds[0], accept_cb, &a);
	memset(&r, 0, sizeof(r));
	r.max = 512;
	c = conn_connect(base, (struct sockaddr *)&sin, sizeof(sin), 2000,
	    rec_cb, &r);
	t_assert(c != NULL);
	t_assert_str(conn_peer_ip(c), "127.0.0.1");
	t_assert(conn_peer_is_loopback(c));
	t_assert_int(r.events[CONN_EV_CONNECTED], 0);
	t_assert(run_until(&r.done));
	t_assert_int(r.events[CONN_EV_CONNECTED], 1);
	conn_printf(c, "hello\r\n");
	run_until(&a.r.done);
	t_assert_int(a.n, 1);
	t_assert(a.c != NULL && conn_peer_is_loopback(a.c));
	t_assert_str(a.c ? conn_peer_ip(a.c) : NULL, "127.0.0.1");
	t_assert_str(a.r.text, "L5:hello|");
	conn_free(a.c);
	conn_free(c);

	/* paused: no accept */
	listener_pause(l);
	memset(&r, 0, sizeof(r));
	c = conn_connect(base, (struct sockaddr *)&sin, sizeof(sin), 2000,
	    rec_cb, &r);
	run_until(&r.done);	/* the kernel completes it via the backlog */
	run_briefly(10);
	t_assert_int(a.n, 1);
	listener_resume(l);
	run_briefly(20);
	t_assert_int(a.n, 2);
	conn_free(a.c);
	conn_free(c);

	/* IPv4-mapped address text and loopback-ness */
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = sin.sin_port;
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6.sin6_addr);
	memset(&r, 0, sizeof(r));
	c = conn_connect(base, (struct sockaddr *)&sin6, sizeof(sin6), 2000,
	    rec_cb, &r);
	if (c != NULL) {
		t_assert_str(conn_peer_ip(c), "127.0.0.1");
		t_assert(conn_peer_is_loopback(c));
		run_until(&r.done);
		run_briefly(10);
		conn_free(a.c);
		conn_free(c);
	}
	listener_free(l);

	/* Refused: the port is closed now. */
	memset(&r, 0, sizeof(r));
	c = conn_connect(base, (struct sockaddr *)&sin, sizeof(sin), 2000,
	    rec_cb, &r);
	t_assert(run_until(&r.done));
	t_assert_int(r.events[CONN_EV_ERROR], 1);
	t_assert_int(r.events[CONN_EV_CONNECTED], 0);
	t_assert(strstr(conn_error(c), "refused") != NULL);
	conn_free(c);
	free(fds);
	t_end();

	t_begin("listener_bind errors");
	fds = NULL;
	n = 0;
	hp.host = (char *)"192.0.2.1";	/* TEST-NET: not ours */
	t_assert(listener_bind(&hps, &fds, &n, &err) == -1);
	t_assert(err != NULL && strstr(err, "bind 192.0.2.1:0") != NULL);
	t_assert_int(n, 0);
	free(err);
	hp.host = (char *)"::1";
	if (listener_bind(&hps, &fds, &n, &err) == 0) {
		int v6only = 0;
		len = sizeof(v6only);
		getsockopt(fds[0], IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len);
		t_assert(v6only == 1);
		close(fds[0]);
	} else {
		free(err);	/* no IPv6 in this sandbox */
	}
	free(fds);
	t_end();
}

static void
test_listener_emfile(void)
{
	struct cfg_hostport hp = { "127.0.0.1", "0" };
	struct cfg_hostports hps = { 1, &hp };
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	struct listener *l;
	struct acc a;
	struct rec r;
	struct conn *c;
	int *fds = NULL, dups[4096], ndups = 0, loops = 0;
	size_t n = 0;
	char *err = NULL;
	bool expired = false;
	struct rlimit rl, low;

	t_begin("listener out of fds: backs off without spinning");
	/* A low soft limit makes running out of fds cheap. */
	getrlimit(RLIMIT_NOFILE, &rl);
	low = rl;
	if (low.rlim_cur > 1024)
		low.rlim_cur = 1024;
	setrlimit(RLIMIT_NOFILE, &low);
	memset(&a, 0, sizeof(a));
	t_assert(listener_bind(&hps, &fds, &n, &err) == 0);
	getsockname(fds[0], (struct sockaddr *)&sin, &len);
	l = listener_new(base, fds[0], accept_cb, &a);
	listener_pause(l);
	memset(&r, 0, sizeof(r));
	c = conn_connect(base, (struct sockaddr *)&sin, sizeof(sin), 2000,
	    rec_cb, &r);
	t_assert(run_until(&r.done));		/* in the backlog */
	t_assert_int(a.n, 0);			/* accept not run yet */
	while (ndups < (int)nitems(dups)) {
		int d = dup(0);
		if (d == -1)
			break;
		dups[ndups++] = d;
	}
	if (ndups == (int)nitems(dups)) {
		/* fd limit too high to exhaust cheaply: skip */
		while (ndups > 0)
			close(dups[--ndups]);
		listener_resume(l);
	} else {
		struct event *wd = evtimer_new(base, watchdog_cb, &expired);
		struct timeval tv = { 0, 100 * 1000 };
		listener_resume(l);
		evtimer_add(wd, &tv);
		while (!expired) {
			event_base_loop(base, EVLOOP_ONCE);
			loops++;
		}
		event_free(wd);
		t_assert(loops < 10);
		t_assert_int(a.n, 0);
		while (ndups > 0)
			close(dups[--ndups]);
		for (int i = 0; i < 200 && a.n == 0; i++)
			run_briefly(5);
		t_assert_int(a.n, 1);
	}
	conn_free(a.c);
	conn_free(c);
	listener_free(l);
	free(fds);
	setrlimit(RLIMIT_NOFILE, &rl);
	t_end();
}

static void
test_peer_loopback(void)
{
	static const struct {
		const char *ip;
		bool loop;
		const char *text;
	} cases[] = {
		{ "127.0.0.1", true, "127.0.0.1" },
		{ "127.1.2.3", true, "127.1.2.3" },
		{ "128.0.0.1", false, "128.0.0.1" },
		{ "10.0.0.1", false, "10.0.0.1" },
		{ "::1", true, "::1" },
		{ "::2", false, "::2" },
		{ "::ffff:127.9.9.9", true, "127.9.9.9" },
		{ "::ffff:10.0.0.1", false, "10.0.0.1" },
		{ "2001:db8::1", false, "2001:db8::1" },
	};

	t_begin("peer ip text and loopback");
	for (size_t i = 0; i < nitems(cases); i++) {
		struct sockaddr_storage ss;
		socklen_t len;
		struct conn *c;
		struct rec r;

		memset(&ss, 0, sizeof(ss));
		if (strchr(cases[i].ip, ':')) {
			struct sockaddr_in6 *s6 = (void *)&ss;
			s6->sin6_family = AF_INET6;
			s6->sin6_port = htons(9);
			inet_pton(AF_INET6, cases[i].ip, &s6->sin6_addr);
			len = sizeof(*s6);
		} else {
			struct sockaddr_in *s4 = (void *)&ss;
			s4->sin_family = AF_INET;
			s4->sin_port = htons(9);
			inet_pton(AF_INET, cases[i].ip, &s4->sin_addr);
			len = sizeof(*s4);
		}
		memset(&r, 0, sizeof(r));
		/* Never run the loop: only the address bookkeeping. */
		c = conn_connect(base, (struct sockaddr *)&ss, len, 1000,
		    rec_cb, &r);
		if (c == NULL)
			continue;
		t_assert_str(conn_peer_ip(c), cases[i].text);
		t_assert_int(conn_peer_is_loopback(c), cases[i].loop);
		conn_free(c);
	}
	t_end();
}

static void
rmtree(void)
{
	unlink(certfile);
	unlink(keyfile);
	rmdir(tmpdir);
}

int
main(void)
{
	const char *t = getenv("TMPDIR");

	log_init("test_conn", 1, LOG_LVL_WARN);
	snprintf(tmpdir, sizeof(tmpdir), "%s/test_conn.XXXXXX",
	    t ? t : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	base = event_base_new();
	test_getline_splits();
	test_getline_socket();
	test_getline_too_long();
	test_lowat();
	test_close_after_flush();
	test_lowat_then_close();
	test_free_from_callback();
	test_pause_resume();
	test_timeout();
	test_deadline();
	test_deadline_extend();
	test_deadline_connect();
	test_tls_certs();
	test_tls_key_secrecy();
	test_tls_session(false);
	test_tls_session(true);
	test_tls_garbage();
	test_tls_handshake_timeout();
	/* The same with the handshake steps on two workers. */
	conn_tls_offload_start(base, 2);
	test_tls_session(false);
	test_tls_session(true);
	test_tls_garbage();
	test_tls_handshake_timeout();
	test_tls_offload_lifetime();
	conn_tls_offload_stop();
	test_listener_connect();
	test_listener_emfile();
	test_peer_loopback();
	event_base_free(base);
	rmtree();
	return t_exit();
}
