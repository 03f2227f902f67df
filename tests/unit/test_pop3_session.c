/*
 * Unit test of pop3d's state machine without sockets: session.c and
 * commands.c are driven through a fake conn (defined here, so conn.o is
 * never linked) that records the replies, a fake auth pool that the test
 * completes by hand (auth.c is replaced; the SASL engine, sasl.c, is the
 * real one), and a real store in a temporary file.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <event2/buffer.h>
#include <sodium.h>

#include "common/ipcount.h"
#include "common/auth.h"
#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "pop3d/pop3d.h"
#include "t.h"

/* ---- fake conn ---- */
struct conn {
	conn_cb *cb;
	void *arg;
	struct evbuffer *in;
	char *out;
	size_t outlen, outcap;
	char *line;
	bool closing, tls, starttls;
	int deadline_ms;		/* last conn_set_deadline */
	unsigned deadline_sets;		/* conn_set_deadline calls > 0 */
	bool deadline_passed;		/* set by the test */
};

static struct conn *fake;

struct conn *
conn_new(struct event_base *base, int fd, conn_cb *cb, void *arg)
{
	struct conn *c = xcalloc(1, sizeof(*c));

	c->cb = cb;
	c->arg = arg;
	c->in = evbuffer_new();
	fake = c;
	return c;
}

void
conn_free(struct conn *c)
{
	if (c == NULL)
		return;
	evbuffer_free(c->in);
	free(c->out);
	free(c->line);
	free(c);
	if (fake == c)
		fake = NULL;
}

void conn_set_timeout(struct conn *c, int ms) { }
void conn_set_lowat(struct conn *c, size_t lowat) { }

void
conn_set_deadline(struct conn *c, int ms)
{
	c->deadline_ms = ms;
	c->deadline_passed = false;
	if (ms > 0)
		c->deadline_sets++;
}

bool conn_deadline_passed(struct conn *c) { return c->deadline_passed; }
void conn_pause_read(struct conn *c) { }
void conn_resume_read(struct conn *c) { }
struct evbuffer *conn_input(struct conn *c) { return c->in; }
size_t conn_output_len(struct conn *c) { return c->outlen; }
void conn_close_after_flush(struct conn *c) { c->closing = true; }
bool conn_is_closing(struct conn *c) { return c->closing; }
bool conn_is_tls(struct conn *c) { return c->tls; }
const char *conn_tls_version(struct conn *c) { return "TLSv1.3"; }
const char *conn_tls_cipher(struct conn *c) { return "X"; }
const char *conn_error(struct conn *c) { return "none"; }
const char *conn_error_reason(struct conn *c) { return "io_error"; }
const char *conn_peer_ip(struct conn *c) { return "192.0.2.1"; }

const struct sockaddr *
conn_peer_addr(struct conn *c, socklen_t *len_r)
{
	static struct sockaddr_in sin;

	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(0xc0000201);	/* 192.0.2.1 */
	if (len_r != NULL)
		*len_r = sizeof(sin);
	return (const struct sockaddr *)&sin;
}
bool conn_peer_is_loopback(struct conn *c) { return true; }
size_t conn_bytes_out(struct conn *c) { return c->outlen; }

/* Records that the line was wiped (and wipes it). */
static unsigned wiped_lines;

void
conn_wipe_line(struct conn *c)
{
	if (c->line != NULL)
		sodium_memzero(c->line, strlen(c->line));
	wiped_lines++;
}

int
conn_starttls(struct conn *c, struct tls_ctx *ctx)
{
	evbuffer_drain(c->in, evbuffer_get_length(c->in));
	c->starttls = true;
	return 0;
}

void
conn_write(struct conn *c, const void *data, size_t len)
{
	if (c->outlen + len + 1 > c->outcap) {
		c->outcap = (c->outlen + len + 1) * 2;
		c->out = xrealloc(c->out, c->outcap);
	}
	memcpy(c->out + c->outlen, data, len);
	c->outlen += len;
	c->out[c->outlen] = '\0';
}

enum conn_line
conn_getline(struct conn *c, size_t max, char **line_r, size_t *len_r,
    bool *bare_lf_r)
{
	struct evbuffer_ptr p = evbuffer_search(c->in, "\n", 1, NULL);
	size_t n;

	if (p.pos < 0)
		return evbuffer_get_length(c->in) >= max ?
		    CONN_LINE_TOO_LONG : CONN_LINE_NONE;
	if ((size_t)p.pos >= max) {
		evbuffer_drain(c->in, (size_t)p.pos + 1);
		return CONN_LINE_TOO_LONG;
	}
	n = (size_t)p.pos;
	free(c->line);
	c->line = xmalloc(n + 1);
	evbuffer_remove(c->in, c->line, n);
	evbuffer_drain(c->in, 1);
	if (n > 0 && c->line[n - 1] == '\r')
		n--;
	c->line[n] = '\0';
	*line_r = c->line;
	*len_r = n;
	return CONN_LINE_OK;
}

/* ---- fake auth ---- */
static auth_done_cb *auth_cb;
static void *auth_arg;
static uint64_t auth_token;
static char auth_user[128], auth_pass[128];

uint64_t
auth_pool_submit(struct auth_pool *pool, const char *address,
    const char *password, auth_done_cb *cb, void *arg)
{
	auth_cb = cb;
	auth_arg = arg;
	util_strlcpy(auth_user, address, sizeof(auth_user));
	util_strlcpy(auth_pass, password, sizeof(auth_pass));
	return ++auth_token;
}

void auth_pool_cancel(struct auth_pool *pool, uint64_t token) { auth_cb = NULL; }
unsigned auth_penalty_delay_ms(const struct client_key *k) { return 0; }
unsigned auth_penalty_wait_ms(const struct client_key *k) { return 0; }
void auth_penalty_start(const struct client_key *k) { }
void auth_penalty_fail(const struct client_key *k) { }
void auth_penalty_success(const struct client_key *k) { }
void auth_wipe(void *p, size_t n) { sodium_memzero(p, n); }

void
auth_wipe_free(char *s)
{
	if (s != NULL)
		sodium_memzero(s, strlen(s));
	free(s);
}

char *
auth_base64_decode(const char *b64, size_t *len_r)
{
	size_t cap = strlen(b64) + 1;
	unsigned char *bin = xmalloc(cap);

	if (sodium_base642bin(bin, cap, b64, strlen(b64), NULL, len_r, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0) {
		free(bin);
		return NULL;
	}
	bin[*len_r] = '\0';
	return (char *)bin;
}

/* ---- helpers ---- */
static struct pop3_server srv;
static struct cfg cfg;

static void
feed(const char *s)
{
	evbuffer_add(fake->in, s, strlen(s));
	fake->cb(fake, CONN_EV_INPUT, fake->arg);
}

/* Everything written since the last call, then forget it. */
static char *
take(void)
{
	static char buf[1 << 16];

	util_strlcpy(buf, fake->out ? fake->out : "", sizeof(buf));
	fake->outlen = 0;
	if (fake->out)
		fake->out[0] = '\0';
	return buf;
}

static void
finish_auth(enum auth_result r)
{
	auth_done_cb *cb = auth_cb;

	t_assert(cb != NULL);
	auth_cb = NULL;
	if (cb != NULL)
		cb(auth_token, r, r == AUTH_OK ? "alice@example.test" : NULL,
		    auth_arg);
}

static void
deliver(const char *msg)
{
	const char *local[] = { "alice@example.test" };
	struct store_delivery d = { .prefix = "", .mail_from = NULL,
	    .local = local, .nlocal = 1, .fd = -1 };
	int64_t bid, qid;

	d.data_size = strlen(msg);
	t_assert(store_begin(srv.store) == 0);
	t_assert(store_deliver_mem(srv.store, &d, msg, strlen(msg), &bid,
	    &qid) == 0);
	t_assert(store_commit(srv.store) == 0);
}

int
main(void)
{
	char path[] = "/tmp/carteiro-test-pop3-session-XXXXXX";
	char db[256];
	const char *err;
	struct pop3_session *s;
	char *out;

	t_assert(sodium_init() >= 0);
	log_set_level(LOG_LVL_WARN);
	t_assert(mkdtemp(path) != NULL);
	snprintf(db, sizeof(db), "%s/mail.db", path);
	srv.store = store_open(db, &err);
	t_assert(srv.store != NULL);
	t_assert(store_migrate(srv.store) == 0);
	t_assert(store_domain_add(srv.store, "example.test") == 0);
	t_assert(store_user_add(srv.store, "alice@example.test", "x") == 0);
	deliver("Subject: one\r\n\r\nbody\r\n.dot\r\n");
	deliver("Subject: two\r\n\r\nb1\r\nb2\r\nb3\r\n");
	srv.cfg = &cfg;
	srv.ipcount = ipcount_new();
	srv.auth = (struct auth_pool *)&srv;	/* non-NULL, never used */
	srv.timeout_ms = POP3_TIMEOUT_MS;
	srv.readbuf = xmalloc(POP3_READ_CHUNK);
	srv.scratch = xmalloc(2 * POP3_READ_CHUNK + 8);

	t_begin("greeting and authorization state");
	pop3_session_accept(&srv, -1, false);
	s = srv.sessions;
	t_assert_str(take(), "+OK carteiro ready.\r\n");
	feed("STAT\r\nNOOP\r\n");
	t_assert_str(take(), "-ERR Unknown command in AUTHORIZATION state.\r\n"
	    "-ERR Unknown command in AUTHORIZATION state.\r\n");
	t_end();

	t_begin("USER/PASS waits for the auth pool, pipelined STAT after");
	feed("USER alice@example.test\r\nPASS secret\r\nSTAT\r\n");
	t_assert_str(take(), "+OK\r\n");
	t_assert_str(auth_user, "alice@example.test");
	t_assert_str(auth_pass, "secret");
	t_assert(s->input == POP3_IN_WAIT);
	finish_auth(AUTH_OK);
	out = take();
	t_assert_str(out, "+OK Logged in.\r\n+OK 2 56\r\n");
	t_assert(s->state == POP3_ST_TRANS);
	t_end();

	t_begin("RETR stuffing, TOP, pipelined order");
	feed("RETR 1\r\nTOP 2 1\r\nNOOP\r\n");
	t_assert_str(take(), "+OK 28 octets\r\nSubject: one\r\n\r\nbody\r\n"
	    "..dot\r\n.\r\n+OK\r\nSubject: two\r\n\r\nb1\r\n.\r\n+OK\r\n");
	t_end();

	t_begin("DELE, deleted message, RSET, out of range");
	feed("DELE 1\r\nRETR 1\r\nLIST\r\nRSET\r\nLIST 3\r\nUIDL 9\r\n");
	t_assert_str(take(), "+OK Marked to be deleted.\r\n"
	    "-ERR Message is deleted.\r\n+OK 1 messages:\r\n2 28\r\n.\r\n"
	    "+OK\r\n-ERR There's no message 3.\r\n"
	    "-ERR There's no message 9.\r\n");
	t_end();

	t_begin("QUIT applies deletions");
	feed("DELE 2\r\nQUIT\r\nNOOP\r\n");
	t_assert_str(take(), "+OK Marked to be deleted.\r\n"
	    "+OK Logging out, messages deleted.\r\n");
	t_assert(fake->closing);
	t_assert(s->state == POP3_ST_UPDATE);
	pop3_session_free(s, "test");
	t_assert(srv.sessions == NULL);
	{
		struct store_msg *msgs;
		size_t n;

		t_assert(store_mailbox_list(srv.store, "alice@example.test",
		    &msgs, &n) == 0);
		t_assert_int(n, 1);
		free(msgs);
	}
	t_end();

	t_begin("AUTH PLAIN continuation, failure, cancel");
	pop3_session_accept(&srv, -1, false);
	s = srv.sessions;
	take();
	feed("AUTH PLAIN\r\n");
	t_assert_str(take(), "+ \r\n");
	feed("*\r\n");
	t_assert_str(take(), "-ERR Authentication aborted by client.\r\n");
	feed("AUTH PLAIN\r\nAGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw==\r\n");
	t_assert_str(take(), "+ \r\n");
	t_assert_str(auth_pass, "wrong");
	finish_auth(AUTH_FAIL);
	t_assert_str(take(), "-ERR [AUTH] Authentication failed.\r\n");
	wiped_lines = 0;
	feed("AUTH LOGIN YWxpY2VAZXhhbXBsZS50ZXN0\r\nc2VjcmV0\r\n");
	t_assert_str(take(), "+ UGFzc3dvcmQ6\r\n");
	t_assert_str(auth_pass, "secret");
	/* Both lines (AUTH with the user, the password) were wiped. */
	t_assert_int(wiped_lines, 2);
	finish_auth(AUTH_OK);
	t_assert_str(take(), "+OK Logged in.\r\n");
	t_end();

	t_begin("AUTH: one SASL rule for both daemons");
	pop3_session_accept(&srv, -1, false);
	s = srv.sessions;
	take();
	/* "=" (empty) as the LOGIN user, and "*" as initial response. */
	feed("AUTH LOGIN =\r\nAUTH PLAIN *\r\n");
	t_assert_str(take(), "-ERR [AUTH] Invalid SASL response.\r\n"
	    "-ERR Authentication aborted by client.\r\n");
	/* An empty LOGIN password. */
	feed("AUTH LOGIN YWxpY2VAZXhhbXBsZS50ZXN0\r\n\r\n");
	t_assert_str(take(), "+ UGFzc3dvcmQ6\r\n"
	    "-ERR [AUTH] Invalid SASL response.\r\n");
	/* A different authzid. */
	feed("AUTH PLAIN Ym9iQGV4YW1wbGUudGVzdABhbGljZUBleGFtcGxlLnRlc3QAcHc="
	    "\r\n");
	t_assert_str(take(), "-ERR [AUTH] Invalid SASL response.\r\n");
	t_assert(auth_cb == NULL);
	pop3_session_free(s, "test");
	s = srv.sessions;
	t_end();

	t_begin("lock_session: second login IN-USE");
	cfg.pop3d.lock_session = true;
	{
		struct pop3_session *s2;

		pop3_session_accept(&srv, -1, false);
		s2 = srv.sessions;
		take();
		feed("USER alice@example.test\r\nPASS secret\r\n");
		take();
		/* the first session logged in before locks were on: take
		 * the lock now on its behalf */
		t_assert(pop3_lock_take(&srv, "alice@example.test") == 0);
		finish_auth(AUTH_OK);
		t_assert_str(take(), "-ERR [IN-USE] Mailbox is locked by "
		    "another POP3 session.\r\n");
		pop3_lock_release(&srv, "alice@example.test");
		pop3_session_free(s2, "test");
		fake = s->conn;
	}
	cfg.pop3d.lock_session = false;
	t_end();

	t_begin("limits: long line, bad commands");
	feed("CAPA\r\n");
	out = take();
	t_assert(strstr(out, "IMPLEMENTATION carteiro\r\n.\r\n") != NULL);
	t_assert(strstr(out, "USER\r\n") == NULL);
	{
		char big[POP3_LINE_MAX + 10];

		memset(big, 'A', sizeof(big) - 3);
		memcpy(big + sizeof(big) - 3, "\r\n", 3);
		feed(big);
		t_assert_str(take(), "-ERR Input line too long.\r\n");
		t_assert(fake->closing);
	}
	pop3_session_free(s, "test");
	t_end();

	t_begin("a command line's deadline runs from the reply, not per byte");
	pop3_session_accept(&srv, -1, false);
	s = srv.sessions;
	t_assert_str(take(), "+OK carteiro ready.\r\n");
	t_assert_int(fake->deadline_sets, 1);
	t_assert_int(fake->deadline_ms, POP3_TIMEOUT_MS);
	feed("CA");
	feed("P");
	/* The bytes push nothing back. */
	t_assert_int(fake->deadline_sets, 1);
	feed("A\r\nNO");
	t_assert(strstr(take(), "IMPLEMENTATION carteiro") != NULL);
	t_assert_int(fake->deadline_sets, 2);	/* from the CAPA reply */
	feed("OP");
	t_assert_int(fake->deadline_sets, 2);
	fake->deadline_passed = true;
	fake->cb(fake, CONN_EV_TIMEOUT, fake->arg);
	t_assert_str(take(), "-ERR Command line not completed in time.\r\n");
	t_assert(fake->closing);
	pop3_session_free(s, "test");
	t_end();

	t_begin("no command line deadline while a login is checked");
	pop3_session_accept(&srv, -1, false);
	s = srv.sessions;
	take();
	feed("USER alice@example.test\r\nPASS secret\r\n");
	t_assert(s->input == POP3_IN_WAIT);
	t_assert_int(fake->deadline_ms, 0);	/* the PASS line's is gone */
	finish_auth(AUTH_OK);
	t_assert_str(take(), "+OK\r\n+OK Logged in.\r\n");
	t_assert_int(fake->deadline_ms, POP3_TIMEOUT_MS);
	pop3_session_free(s, "test");
	t_end();

	t_begin("pipelined input at every split point");
	{
		static const char script[] = "STAT\r\nLIST\r\nUIDL 1\r\n"
		    "TOP 1 0\r\nRETR 1\r\nDELE 1\r\nLIST 1\r\nRSET\r\n"
		    "NOOP\r\n";
		size_t len = strlen(script);
		char *ref = NULL;

		for (size_t cut = 0; cut <= len + 1; cut++) {
			pop3_session_accept(&srv, -1, false);
			s = srv.sessions;
			feed("USER alice@example.test\r\nPASS secret\r\n");
			finish_auth(AUTH_OK);
			take();
			if (cut <= len) {
				/* two pieces */
				char a[256];

				memcpy(a, script, cut);
				a[cut] = '\0';
				feed(a);
				feed(script + cut);
			} else {
				/* byte by byte */
				for (size_t i = 0; i < len; i++) {
					char b[2] = { script[i], '\0' };

					feed(b);
				}
			}
			out = take();
			if (ref == NULL) {
				ref = xstrdup(out);
				t_assert(strstr(ref, "+OK 1 messages:") != NULL);
			} else
				t_assert_str(out, ref);
			pop3_session_free(s, "test");
		}
		free(ref);
	}
	t_end();

	store_close(srv.store);
	ipcount_free(srv.ipcount);
	free(srv.readbuf);
	free(srv.scratch);
	unlink(db);
	{
		char p2[300];

		snprintf(p2, sizeof(p2), "%s-wal", db);
		unlink(p2);
		snprintf(p2, sizeof(p2), "%s-shm", db);
		unlink(p2);
	}
	rmdir(path);
	return t_exit();
}
