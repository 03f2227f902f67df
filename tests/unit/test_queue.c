/*
 * Unit tests for store/queue.c (and bounce_send, which builds on it) on a
 * fresh database in a mkdtemp directory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "smtpd/bounce.h"
#include "smtpd/dsn.h"
#include "store/queue.h"
#include "store/store.h"
#include "t.h"

static char tmpdir[] = "/tmp/carteiro-test-queue-XXXXXX";

static struct store *
open_store(void)
{
	char path[256];
	const char *err = NULL;
	struct store *st;

	snprintf(path, sizeof(path), "%s/mail.db", tmpdir);
	st = store_open(path, &err);
	if (st == NULL || store_migrate(st) < 0 ||
	    store_domain_add(st, "ex.test") != 0 ||
	    store_user_add(st, "alice@ex.test", "h") != 0) {
		fprintf(stderr, "store setup failed: %s\n",
		    st ? store_error(st) : err);
		exit(1);
	}
	return st;
}

/* Queue one message from `from` to remote rcpts; returns its id. */
static int64_t
enqueue(struct store *st, const char *from, const char *const *rcpts,
    size_t n, bool is_bounce)
{
	static const char data[] = "Subject: queued\r\nFrom: x\r\n\r\nbody\r\n";
	struct store_delivery d;
	int64_t body_id = 0, qid = 0;

	memset(&d, 0, sizeof(d));
	d.prefix = "Received: test\r\n";
	d.prefix_len = strlen(d.prefix);
	d.fd = -1;
	d.mail_from = from;
	d.remote = rcpts;
	d.nremote = n;
	d.is_bounce = is_bounce;
	if (store_begin(st) < 0 ||
	    store_deliver_mem(st, &d, data, sizeof(data) - 1, &body_id,
	    &qid) < 0 || store_commit(st) < 0) {
		fprintf(stderr, "enqueue: %s\n", store_error(st));
		exit(1);
	}
	return qid;
}

static void
test_queue(struct store *st)
{
	const char *rc[] = { "a@remote.test", "b@other.test" };
	struct store_queue_msg m;
	int64_t *ids, qid, qid2, now = time(NULL);
	size_t n;

	qid = enqueue(st, "alice@ex.test", rc, 2, false);
	qid2 = enqueue(st, "alice@ex.test", rc, 1, false);

	t_begin("queue due and load");
	t_assert_int(store_queue_due(st, now + 1, 10, &ids, &n), 0);
	t_assert_int(n, 2);
	t_assert(n == 2 && ids[0] == qid && ids[1] == qid2);
	free(ids);
	t_assert_int(store_queue_due(st, now + 1, 1, &ids, &n), 0);
	t_assert_int(n, 1);
	free(ids);
	t_assert_int(store_queue_load(st, qid, &m), 0);
	t_assert_str(m.mail_from, "alice@ex.test");
	t_assert_int(m.nrcpts, 2);
	t_assert_str(m.rcpts[0].address, "a@remote.test");
	t_assert_str(m.rcpts[1].domain, "other.test");
	t_assert_int(m.rcpts[0].status, STORE_QUEUE_RCPT_PENDING);
	t_assert(m.rcpts[0].last_error == NULL);
	t_assert_int(m.attempts, 0);
	t_assert(!m.is_bounce && !m.warned);
	t_end();

	t_begin("queue rcpt status, reschedule, warned");
	t_assert_int(store_queue_rcpt_set(st, m.rcpts[0].id,
	    STORE_QUEUE_RCPT_DELIVERED, "250 ok", now), 0);
	t_assert_int(store_queue_rcpt_set(st, m.rcpts[1].id,
	    STORE_QUEUE_RCPT_PENDING, "451 later", now), 0);
	t_assert_int(store_queue_reschedule(st, qid, now + 100, 1), 0);
	t_assert_int(store_queue_set_warned(st, qid), 0);
	store_queue_msg_clear(&m);
	t_assert_int(store_queue_load(st, qid, &m), 0);
	t_assert_int(m.rcpts[0].status, STORE_QUEUE_RCPT_DELIVERED);
	t_assert_str(m.rcpts[1].last_error, "451 later");
	t_assert_int(m.rcpts[1].updated, now);
	t_assert_int(m.attempts, 1);
	t_assert(m.warned);
	t_assert_int(m.next_attempt, now + 100);
	t_assert_int(store_queue_rcpt_set(st, m.rcpts[1].id,
	    STORE_QUEUE_RCPT_BOUNCED, NULL, now), 0);
	store_queue_msg_clear(&m);
	t_assert_int(store_queue_load(st, qid, &m), 0);
	t_assert_int(m.rcpts[1].status, STORE_QUEUE_RCPT_BOUNCED);
	t_assert_str(m.rcpts[1].last_error, "451 later");	/* kept */
	store_queue_msg_clear(&m);
	t_assert_int(store_queue_due(st, now + 1, 10, &ids, &n), 0);
	t_assert(n == 1 && ids[0] == qid2);
	free(ids);
	t_end();

	t_begin("queue flush");
	t_assert_int(store_queue_flush(st, now, &n), 0);
	t_assert_int(n, 1);
	t_assert_int(store_queue_due(st, now, 10, &ids, &n), 0);
	t_assert_int(n, 2);
	free(ids);
	t_end();

	t_begin("queue delete drops the body reference once");
	t_assert_int(store_queue_delete(st, qid), 0);
	t_assert_int(store_queue_delete(st, qid), 1);
	t_assert_int(store_queue_load(st, qid, &m), 1);
	t_assert_int(store_queue_ids(st, &ids, &n), 0);
	t_assert(n == 1 && ids[0] == qid2);
	free(ids);
	t_assert_int(store_queue_delete(st, qid2), 0);
	t_assert_int(store_queue_ids(st, &ids, &n), 0);
	t_assert_int(n, 0);
	free(ids);
	{
		unsigned freed = 0;

		t_assert_int(store_gc(st, 10, &freed), 0);
		t_assert_int(freed, 2);
	}
	t_end();

	t_begin("queue status names");
	t_assert_str(store_queue_rcpt_status_str(STORE_QUEUE_RCPT_FAILED),
	    "failed");
	t_assert_str(store_queue_rcpt_status_str(42), "unknown");
	t_end();
}

static void
test_bounce_send(struct store *st)
{
	const char *rc[] = { "x@remote.test" };
	struct bounce_rcpt br = { "x@remote.test", "550 5.1.1 unknown",
	    "mx.remote.test[1.2.3.4]", NULL };
	struct store_msg *msgs;
	struct store_queue_msg m, b;
	int64_t qid, *ids;
	size_t n, n0;
	struct store_body *sb;
	uint64_t size;
	char buf[8192];
	ssize_t got;

	t_begin("bounce to a local sender lands in its mailbox");
	qid = enqueue(st, "alice@ex.test", rc, 1, false);
	t_assert_int(store_queue_load(st, qid, &m), 0);
	t_assert_int(bounce_send(st, "mail.ex.test", NULL, &m, BOUNCE_FAILED,
	    0, &br, 1), 0);
	t_assert_int(store_mailbox_list(st, "alice@ex.test", &msgs, &n), 0);
	t_assert_int(n, 1);
	if (n == 1) {
		sb = store_message_open(st, msgs[0].id, &size);
		t_assert(sb != NULL);
		got = store_body_read(sb, 0, buf, sizeof(buf) - 1);
		t_assert(got > 0);
		buf[got > 0 ? got : 0] = '\0';
		t_assert(strncmp(buf, "Return-Path: <>\r\nFrom: Mail Delivery "
		    "System <MAILER-DAEMON@mail.ex.test>", 70) == 0);
		t_assert(strstr(buf, "Diagnostic-Code: smtp; 550 5.1.1 unknown")
		    != NULL);
		t_assert(strstr(buf, "\r\n\r\nReceived: test\r\n"
		    "Subject: queued\r\nFrom: x\r\n\r\n--") != NULL);
		t_assert(strstr(buf, "body\r\n") == NULL);
		store_body_close(sb);
	}
	free(msgs);
	store_queue_msg_clear(&m);
	store_queue_delete(st, qid);
	t_end();

	t_begin("bounce to a remote sender is queued with <>");
	qid = enqueue(st, "bob@far.test", rc, 1, false);
	t_assert_int(store_queue_load(st, qid, &m), 0);
	t_assert_int(bounce_send(st, "mail.ex.test", NULL, &m, BOUNCE_FAILED,
	    0, &br, 1), 0);
	t_assert_int(store_queue_ids(st, &ids, &n), 0);
	t_assert_int(n, 2);
	if (n == 2) {
		t_assert_int(store_queue_load(st, ids[1], &b), 0);
		t_assert_str(b.mail_from, "");
		t_assert(b.is_bounce);
		t_assert_int(b.nrcpts, 1);
		t_assert_str(b.rcpts[0].address, "bob@far.test");
		/* The sender is the row's mail_from, not a body line. */
		sb = store_body_open(st, b.body_id, &size);
		t_assert(sb != NULL);
		got = sb != NULL ? store_body_read(sb, 0, buf, 38) : -1;
		t_assert_int(got, 38);
		t_assert(got == 38 && memcmp(buf, "From: Mail Delivery System "
		    "<MAILER-DAE", 38) == 0);
		store_body_close(sb);
		store_queue_msg_clear(&b);
		store_queue_delete(st, ids[1]);
	}
	free(ids);
	store_queue_msg_clear(&m);
	store_queue_delete(st, qid);
	t_end();

	t_begin("no bounce for a bounce or an unknown local sender");
	t_assert_int(store_queue_ids(st, &ids, &n0), 0);
	free(ids);
	qid = enqueue(st, "", rc, 1, true);
	t_assert_int(store_queue_load(st, qid, &m), 0);
	t_assert_int(bounce_send(st, "mail.ex.test", NULL, &m, BOUNCE_FAILED,
	    0, &br, 1), 1);
	store_queue_msg_clear(&m);
	store_queue_delete(st, qid);
	qid = enqueue(st, "nobody@ex.test", rc, 1, false);
	t_assert_int(store_queue_load(st, qid, &m), 0);
	t_assert_int(bounce_send(st, "mail.ex.test", NULL, &m, BOUNCE_FAILED,
	    0, &br, 1), 1);
	store_queue_msg_clear(&m);
	store_queue_delete(st, qid);
	t_assert_int(store_queue_ids(st, &ids, &n), 0);
	t_assert_int(n, n0);
	free(ids);
	t_end();
}

/* Schema 5: the RFC 3461 parameters round-trip through the queue, and
 * bounce_send returns the whole message on RET=FULL up to
 * BOUNCE_FULL_MAX. */
static void
test_dsn_columns(struct store *st)
{
	const char *rc[] = { "x@remote.test", "y@remote.test" };
	const unsigned notify[] = { DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE,
	    0 };
	const char *orcpt[] = { "rfc822;X+2B1@remote.test", NULL };
	struct bounce_rcpt br = { "x@remote.test", "550 5.1.1 unknown", NULL,
	    "rfc822;X+2B1@remote.test" };
	static const char head[] = "Subject: big\r\nFrom: x\r\n\r\n";
	struct store_delivery d;
	struct store_queue_msg m;
	struct store_msg *msgs;
	struct store_body *sb;
	int64_t body_id, qid;
	uint64_t size;
	size_t n, i, big = BOUNCE_FULL_MAX + 1;
	char *data, *buf;
	ssize_t got;

	t_begin("DSN parameters stored with the queued message");
	data = malloc(big);
	memcpy(data, head, sizeof(head) - 1);
	memset(data + sizeof(head) - 1, 'b', big - (sizeof(head) - 1));
	memset(&d, 0, sizeof(d));
	d.prefix = "";
	d.fd = -1;
	d.mail_from = "carol@ex.test";
	d.remote = rc;
	d.nremote = 2;
	/* RET=FULL is honoured for authenticated submitters (bounce.c). */
	d.auth_user = "carol@ex.test";
	d.dsn_ret = DSN_RET_FULL;
	d.dsn_envid = "E+2B1";
	d.remote_notify = notify;
	d.remote_orcpt = orcpt;
	t_assert_int(store_deliver_mem(st, &d, data, 40, &body_id, &qid), 0);
	t_assert_int(store_queue_load(st, qid, &m), 0);
	t_assert_int(m.dsn_ret, DSN_RET_FULL);
	t_assert_str(m.dsn_envid, "E+2B1");
	t_assert_int(m.nrcpts, 2);
	t_assert_int((int)m.rcpts[0].dsn_notify, (int)notify[0]);
	t_assert_str(m.rcpts[0].dsn_orcpt, "rfc822;X+2B1@remote.test");
	t_assert_int((int)m.rcpts[1].dsn_notify, 0);
	t_assert(m.rcpts[1].dsn_orcpt == NULL);
	t_end();

	t_begin("RET=FULL: the message whole, or its headers when too large, "
	    "or when nobody authenticated the sender");
	t_assert_int(store_user_add(st, "carol@ex.test", "h"), 0);
	for (i = 0; i < 3; i++) {
		if (i > 0) {
			/* 2: taken on the MX listener (no auth_user). */
			if (i == 2)
				d.auth_user = NULL;
			store_queue_msg_clear(&m);
			t_assert_int(store_deliver_mem(st, &d, data,
			    i == 1 ? big : 40, &body_id, &qid), 0);
			t_assert_int(store_queue_load(st, qid, &m), 0);
		}
		t_assert_int(bounce_send(st, "mail.ex.test", NULL, &m,
		    BOUNCE_FAILED, 0, &br, 1), 0);
		store_queue_delete(st, qid);
	}
	store_queue_msg_clear(&m);
	t_assert_int(store_mailbox_list(st, "carol@ex.test", &msgs, &n), 0);
	t_assert_int(n, 3);
	buf = malloc(16384);
	for (i = 0; i < n && i < 3; i++) {
		sb = store_message_open(st, msgs[i].id, &size);
		t_assert(sb != NULL);
		t_assert(size < 16000);
		got = sb != NULL ? store_body_read(sb, 0, buf, 16383) : -1;
		t_assert(got > 0);
		buf[got > 0 ? got : 0] = '\0';
		t_assert(strstr(buf, "Original-Envelope-Id: E+1\r\n") != NULL);
		t_assert(strstr(buf, "Original-Recipient: rfc822;X+1@remote.test"
		    "\r\nFinal-Recipient: rfc822; x@remote.test\r\n") != NULL);
		if (i == 0)
			t_assert(strstr(buf, "Content-Type: message/rfc822\r\n"
			    "Content-Description: Undelivered Message\r\n\r\n"
			    "Subject: big\r\nFrom: x\r\n\r\nbbbbbbbbbbbbbbb\r\n\r\n--")
			    != NULL);
		else if (i == 2)
			t_assert(strstr(buf, "Content-Type: text/rfc822-headers"
			    "\r\nContent-Description: Undelivered Message Headers"
			    "\r\n\r\nSubject: big\r\nFrom: x\r\n\r\n--") != NULL &&
			    strstr(buf, "too large") == NULL &&
			    strstr(buf, "bbbb") == NULL);
		else
			t_assert(strstr(buf, "too large to return in full") !=
			    NULL && strstr(buf, "Content-Type: "
			    "text/rfc822-headers\r\n") != NULL &&
			    strstr(buf, "bbbb") == NULL);
		store_body_close(sb);
	}
	free(buf);
	free(msgs);
	free(data);
	t_end();
}

/* Claims (store/queue_claim.c): two connections to one file stand for
 * two relays on one database. */
static void
test_claims(struct store *a)
{
	const char *rc[] = { "c@remote.test" };
	const char *err = NULL;
	char path[256], **owners;
	struct store *b;
	int64_t *ids, *ids2, q[3], now = time(NULL) + 1000, skip;
	size_t n, n2, i;

	snprintf(path, sizeof(path), "%s/mail.db", tmpdir);
	b = store_open(path, &err);
	t_begin("queue claims: one owner each, lease, release, reschedule");
	t_assert(b != NULL);
	/* Only the three messages of this test are due at now. */
	t_assert_int(store_queue_ids(a, &ids, &n), 0);
	for (i = 0; i < n; i++)
		t_assert_int(store_queue_reschedule(a, ids[i], now + 5000, 0),
		    0);
	free(ids);
	for (i = 0; i < 3; i++) {
		q[i] = enqueue(a, "alice@ex.test", rc, 1, false);
		t_assert_int(store_queue_reschedule(a, q[i], now - 10 + (int)i,
		    0), 0);
	}
	/* A takes two, B gets the third only. */
	t_assert_int(store_queue_claim(a, now, now + 60, "A", 2, NULL, 0,
	    &ids, &n), 0);
	t_assert(n == 2 && ids[0] == q[0] && ids[1] == q[1]);
	free(ids);
	t_assert_int(store_queue_claim(b, now, now + 60, "B", 10, NULL, 0,
	    &ids, &n), 0);
	t_assert(n == 1 && ids[0] == q[2]);
	free(ids);
	t_assert_int(store_queue_claim(b, now, now + 60, "B2", 10, NULL, 0,
	    &ids, &n), 0);
	t_assert(n == 0 && ids == NULL);
	/* A's own claims are free to A again, less the ones it skips (in
	 * flight). */
	skip = q[0];
	t_assert_int(store_queue_claim(a, now, now + 60, "A", 10, &skip, 1,
	    &ids, &n), 0);
	t_assert(n == 1 && ids[0] == q[1]);
	free(ids);
	/* The lease runs out: B takes them; renewing moves it. */
	t_assert_int(store_queue_claim(b, now + 60, now + 120, "B", 10, NULL,
	    0, &ids, &n), 0);
	t_assert(n == 3 && ids[0] == q[0] && ids[1] == q[1] && ids[2] == q[2]);
	free(ids);
	t_assert_int(store_queue_renew(b, "B", now + 500, &n), 0);
	t_assert(n == 3);
	t_assert_int(store_queue_claim(a, now + 400, now + 460, "A", 10, NULL,
	    0, &ids, &n), 0);
	t_assert(n == 0);
	t_assert_int(store_queue_claimers(a, &owners, &n), 0);
	t_assert(n == 1 && strcmp(owners[0], "B") == 0);
	for (i = 0; i < n; i++)
		free(owners[i]);
	free(owners);
	/* Reschedule clears the claim (due again at once); release of one
	 * and of all. */
	t_assert_int(store_queue_reschedule(b, q[0], now, 1), 0);
	t_assert_int(store_queue_release(b, "B", q[1], &n), 0);
	t_assert(n == 1);
	t_assert_int(store_queue_release(b, "A", -1, &n), 0);
	t_assert(n == 0);
	t_assert_int(store_queue_claim(a, now, now + 60, "A", 10, NULL, 0,
	    &ids, &n), 0);
	/* earliest next_attempt first: q[0] was rescheduled to now */
	t_assert(n == 2 && ids[0] == q[1] && ids[1] == q[0]);
	free(ids);
	t_assert_int(store_queue_release(b, "B", -1, &n), 0);
	t_assert(n == 1);
	t_assert_int(store_queue_claim(b, now, now + 60, "B", 10, NULL, 0,
	    &ids2, &n2), 0);
	t_assert(n2 == 1 && ids2[0] == q[2]);
	free(ids2);
	/* Delete takes the claim with the row. */
	for (i = 0; i < 3; i++)
		t_assert_int(store_queue_delete(a, q[i]), 0);
	t_assert_int(store_queue_claimers(a, &owners, &n), 0);
	t_assert(n == 0);
	free(owners);
	store_close(b);
	t_end();
}

int
main(void)
{
	struct store *st;
	char cmd[300];

	if (mkdtemp(tmpdir) == NULL)
		return 1;
	st = open_store();
	test_queue(st);
	test_bounce_send(st);
	test_dsn_columns(st);
	test_claims(st);
	store_close(st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		return 1;
	return t_exit();
}
