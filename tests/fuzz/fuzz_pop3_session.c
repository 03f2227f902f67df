/*
 * Fuzz a whole POP3 session (pop3d/session.c and commands.c) the way
 * tests/unit/test_pop3_session.c drives it: a fake conn (defined here, so
 * conn.o is never linked) takes the client's byte stream line by line,
 * a fake auth pool answers each check at once (alice@example.test /
 * "secret" logs in, "temp" is a temporary failure, anything else fails;
 * the SASL engine is the real one), and the store is an in-memory
 * SQLite database with the user and three messages (one with dot lines,
 * one with bare LFs and no final newline, one of 40 KB so RETR runs in
 * several output steps). The client reads everything: after each line
 * the output is taken and LOWAT given until nothing moves. At the end
 * of the input the client hangs up. The first input byte sets
 * lock_session, allow_plaintext_auth, max_auth_failures and whether the
 * hang-up is a timeout first. Checked: the greeting, no lock left after
 * the session, the session freed. FUZZ_POP3_ECHO=1 in the environment
 * prints the replies (to read what a crash input does).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <event2/buffer.h>
#include <sodium.h>

#include "common/auth.h"
#include "common/config.h"
#include "common/ipcount.h"
#include "common/log.h"
#include "common/util.h"
#include "pop3d/pop3d.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/* ---- fake conn ---- */
struct conn {
	conn_cb *cb;
	void *arg;
	struct evbuffer *in;
	char *out;
	size_t outlen, outcap;
	char *line;
	bool closing;
};

static struct conn *fake;

struct conn *
conn_new(struct event_base *base, int fd, conn_cb *cb, void *arg)
{
	struct conn *c = xcalloc(1, sizeof(*c));

	(void)base;
	(void)fd;
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

void conn_set_timeout(struct conn *c, int ms) { (void)c; (void)ms; }
void conn_set_lowat(struct conn *c, size_t lowat) { (void)c; (void)lowat; }
void conn_set_deadline(struct conn *c, int ms) { (void)c; (void)ms; }
bool conn_deadline_passed(struct conn *c) { (void)c; return false; }
void conn_pause_read(struct conn *c) { (void)c; }
void conn_resume_read(struct conn *c) { (void)c; }
struct evbuffer *conn_input(struct conn *c) { return c->in; }
size_t conn_output_len(struct conn *c) { return c->outlen; }
void conn_close_after_flush(struct conn *c) { c->closing = true; }
bool conn_is_closing(struct conn *c) { return c->closing; }
bool conn_is_tls(struct conn *c) { (void)c; return false; }
const char *conn_tls_version(struct conn *c) { (void)c; return NULL; }
const char *conn_tls_cipher(struct conn *c) { (void)c; return NULL; }
const char *conn_error(struct conn *c) { (void)c; return "none"; }
const char *conn_error_reason(struct conn *c) { (void)c; return "io_error"; }
const char *conn_peer_ip(struct conn *c) { (void)c; return "192.0.2.1"; }

const struct sockaddr *
conn_peer_addr(struct conn *c, socklen_t *len_r)
{
	static struct sockaddr_in sin;

	(void)c;
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(0xc0000201);	/* 192.0.2.1 */
	if (len_r != NULL)
		*len_r = sizeof(sin);
	return (const struct sockaddr *)&sin;
}
bool conn_peer_is_loopback(struct conn *c) { (void)c; return true; }
size_t conn_bytes_out(struct conn *c) { return c->outlen; }

void
conn_wipe_line(struct conn *c)
{
	if (c->line != NULL)
		sodium_memzero(c->line, strlen(c->line));
}

int
conn_starttls(struct conn *c, struct tls_ctx *ctx)
{
	(void)c;
	(void)ctx;
	return -1;
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

	(void)bare_lf_r;
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

/* ---- fake auth: answered by the harness right after the line ---- */
static auth_done_cb *auth_cb;
static void *auth_arg;
static uint64_t auth_token;
static char auth_user[256], auth_pass[256];

uint64_t
auth_pool_submit(struct auth_pool *pool, const char *address,
    const char *password, auth_done_cb *cb, void *arg)
{
	(void)pool;
	assert(auth_cb == NULL);
	auth_cb = cb;
	auth_arg = arg;
	util_strlcpy(auth_user, address, sizeof(auth_user));
	util_strlcpy(auth_pass, password, sizeof(auth_pass));
	return ++auth_token;
}

void
auth_pool_cancel(struct auth_pool *pool, uint64_t token)
{
	(void)pool;
	(void)token;
	auth_cb = NULL;
}
unsigned auth_penalty_delay_ms(const struct client_key *k) { (void)k; return 0; }
unsigned auth_penalty_wait_ms(const struct client_key *k) { (void)k; return 0; }
void auth_penalty_start(const struct client_key *k) { (void)k; }
void auth_penalty_fail(const struct client_key *k) { (void)k; }
void auth_penalty_success(const struct client_key *k) { (void)k; }
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

/* ---- the server ---- */
static struct pop3_server srv;
static struct cfg cfg;
static char *big;
static bool echo;		/* FUZZ_POP3_ECHO set: replies to stderr */

static void
deliver(const char *msg, size_t len)
{
	const char *local[] = { "alice@example.test" };
	struct store_delivery d = { .prefix = "", .mail_from = NULL,
	    .local = local, .nlocal = 1, .fd = -1 };
	int64_t bid, qid;

	d.data_size = len;
	assert(store_begin(srv.store) == 0);
	assert(store_deliver_mem(srv.store, &d, msg, len, &bid, &qid) == 0);
	assert(store_commit(srv.store) == 0);
}

/* A fresh store when the last session changed the mailbox. */
static void
store_setup(void)
{
	static const char one[] = "Subject: one\r\n\r\nbody\r\n.dot\r\n.\r\n";
	static const char two[] = "Subject: two\n\nb1\nb2\n..\nno end";
	struct store_msg *msgs;
	const char *err;
	size_t n;

	if (srv.store != NULL) {
		if (store_mailbox_list(srv.store, "alice@example.test", &msgs,
		    &n) == 0) {
			free(msgs);
			if (n == 3)
				return;
		}
		store_close(srv.store);
	}
	srv.store = store_open(":memory:", &err);
	assert(srv.store != NULL);
	assert(store_migrate(srv.store) == 0);
	assert(store_domain_add(srv.store, "example.test") == 0);
	assert(store_user_add(srv.store, "alice@example.test", "x") == 0);
	deliver(one, sizeof(one) - 1);
	deliver(two, sizeof(two) - 1);
	deliver(big, strlen(big));
}

static void
init(void)
{
	size_t i;

	assert(sodium_init() >= 0);
	echo = getenv("FUZZ_POP3_ECHO") != NULL;
	log_set_level(LOG_LVL_ERROR);
	big = xmalloc(40 * 1024 + 1);
	memcpy(big, "Subject: big\r\n\r\n", 16);
	for (i = 16; i < 40 * 1024; i++)
		big[i] = i % 64 == 62 ? '\r' : i % 64 == 63 ? '\n' :
		    i % 64 == 0 ? '.' : 'a' + i % 26;
	big[40 * 1024] = '\0';
	srv.cfg = &cfg;
	srv.ipcount = ipcount_new();
	srv.auth = (struct auth_pool *)&srv;	/* non-NULL, never used */
	srv.timeout_ms = POP3_TIMEOUT_MS;
	srv.readbuf = xmalloc(POP3_READ_CHUNK);
	srv.scratch = xmalloc(2 * POP3_READ_CHUNK + 8);
}

/* The client reads: answer a pending check, take the output, give LOWAT,
 * until nothing moves or the session is gone. */
static void
settle(void)
{
	int k;

	for (k = 0; k < 256 && srv.sessions != NULL && fake != NULL; k++) {
		if (auth_cb != NULL) {
			auth_done_cb *cb = auth_cb;
			enum auth_result r = AUTH_FAIL;

			auth_cb = NULL;
			if (strcmp(auth_pass, "temp") == 0)
				r = AUTH_TEMPFAIL;
			else if (strcmp(auth_user, "alice@example.test") == 0 &&
			    strcmp(auth_pass, "secret") == 0)
				r = AUTH_OK;
			cb(auth_token, r, r == AUTH_OK ? auth_user : NULL,
			    auth_arg);
			continue;
		}
		if (fake->outlen == 0)
			break;
		if (echo)
			fwrite(fake->out, 1, fake->outlen, stderr);
		fake->outlen = 0;
		fake->cb(fake, CONN_EV_LOWAT, fake->arg);
	}
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static bool inited;
	const unsigned char *p, *nl, *end;
	unsigned flags;

	if (!inited) {
		init();
		inited = true;
	}
	if (size < 1)
		return 0;
	flags = data[0];
	store_setup();
	cfg.pop3d.lock_session = flags & 1;
	cfg.pop3d.allow_plaintext_auth = (flags & 2) != 0;
	cfg.pop3d.max_auth_failures = (flags >> 2) & 3;
	auth_cb = NULL;

	pop3_session_accept(&srv, -1, false);
	assert(srv.sessions != NULL && fake != NULL);
	assert(strcmp(fake->out, "+OK carteiro ready.\r\n") == 0);
	/* A second session holding the lock, sometimes. */
	if ((flags & 16) && cfg.pop3d.lock_session)
		assert(pop3_lock_take(&srv, "alice@example.test") == 0);
	settle();
	end = data + size;
	for (p = data + 1; p < end && srv.sessions != NULL && fake != NULL;
	    p = nl) {
		nl = memchr(p, '\n', (size_t)(end - p));
		nl = nl != NULL ? nl + 1 : end;
		evbuffer_add(fake->in, p, (size_t)(nl - p));
		fake->cb(fake, CONN_EV_INPUT, fake->arg);
		settle();
	}
	if (srv.sessions != NULL && fake != NULL) {
		if (flags & 32) {
			fake->cb(fake, CONN_EV_TIMEOUT, fake->arg);
			settle();
		}
	}
	if (srv.sessions != NULL && fake != NULL)
		fake->cb(fake, CONN_EV_EOF, fake->arg);
	assert(srv.sessions == NULL && srv.nsessions == 0 && fake == NULL);
	if ((flags & 16) && cfg.pop3d.lock_session)
		pop3_lock_release(&srv, "alice@example.test");
	assert(srv.nlocks == 0);
	return 0;
}
