/*
 * carteiroctl queue: list, show ID, flush, delete ID. Reads and writes the
 * outbound queue through store/queue.h only; works while carteiro-smtpd
 * runs (flush sets next_attempt = now, the runner notices within its 1 s
 * scan; delete drops the rows, a session in flight finds them gone).
 */
#include "tools/ctl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "store/queue.h"
#include "store/store.h"
#include "store/throttle.h"

#define CTL_QUEUE_HEADERS_MAX	(64 * 1024)

static int ctl_queue_list(struct ctl *);
static int ctl_queue_throttled(struct ctl *);
static int ctl_queue_show(struct ctl *, const char *);
static int ctl_queue_flush(struct ctl *);
static int ctl_queue_delete(struct ctl *, const char *);
static int ctl_queue_id(const char *, int64_t *);
static const char *ctl_queue_age(int64_t, char *, size_t);
static const char *ctl_queue_time(int64_t, char *, size_t);

int
ctl_cmd_queue(struct ctl *ctl, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : NULL;

	if (sub != NULL && strcmp(sub, "list") == 0 && argc == 2)
		return ctl_queue_list(ctl);
	if (sub != NULL && strcmp(sub, "show") == 0 && argc == 3)
		return ctl_queue_show(ctl, argv[2]);
	if (sub != NULL && strcmp(sub, "flush") == 0 && argc == 2)
		return ctl_queue_flush(ctl);
	if (sub != NULL && strcmp(sub, "delete") == 0 && argc == 3)
		return ctl_queue_delete(ctl, argv[2]);
	ctl_err("queue: expected list | show ID | flush | delete ID");
	return 1;
}

static int
ctl_queue_id(const char *s, int64_t *id_r)
{
	char *end;
	long long v;

	v = strtoll(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v <= 0) {
		ctl_err("queue: '%s' is not a queue id (see: queue list)", s);
		return -1;
	}
	*id_r = v;
	return 0;
}

/* "45s", "12m", "3h", "2d". */
static const char *
ctl_queue_age(int64_t secs, char *buf, size_t size)
{
	if (secs < 0)
		secs = 0;
	if (secs < 120)
		snprintf(buf, size, "%" PRId64 "s", secs);
	else if (secs < 2 * 3600)
		snprintf(buf, size, "%" PRId64 "m", secs / 60);
	else if (secs < 2 * 86400)
		snprintf(buf, size, "%" PRId64 "h", secs / 3600);
	else
		snprintf(buf, size, "%" PRId64 "d", secs / 86400);
	return buf;
}

/* ISO 8601 UTC, "2026-11-26T12:00:00Z". */
static const char *
ctl_queue_time(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

static int
ctl_queue_store_err(struct ctl *ctl, const char *what)
{
	if (store_error_is_busy(ctl->st))
		ctl_err("queue %s: the database is busy, try again", what);
	else
		ctl_err("queue %s: %s", what, store_error(ctl->st));
	return 1;
}

/* One line per message: id age from rcpts next-attempt last-error. */
static int
ctl_queue_list(struct ctl *ctl)
{
	int64_t *ids = NULL, now = util_time();
	size_t n = 0, i, j;
	struct store_queue_msg m;
	const char *err;
	char age[32], next[32];
	int rc;

	if (store_queue_ids(ctl->st, &ids, &n) < 0)
		return ctl_queue_store_err(ctl, "list");
	for (i = 0; i < n; i++) {
		rc = store_queue_load(ctl->st, ids[i], &m);
		if (rc == 1)
			continue;	/* delivered meanwhile */
		if (rc < 0) {
			free(ids);
			return ctl_queue_store_err(ctl, "list");
		}
		printf("%" PRId64 " %s <%s> ", m.id,
		    ctl_queue_age(now - m.created, age, sizeof(age)),
		    m.mail_from);
		err = NULL;
		for (j = 0; j < m.nrcpts; j++) {
			if (m.rcpts[j].status != STORE_QUEUE_RCPT_PENDING)
				continue;
			printf("%s%s", err != NULL ? "," : "",
			    m.rcpts[j].address);
			if (err == NULL)
				err = m.rcpts[j].last_error != NULL &&
				    m.rcpts[j].last_error[0] != '\0' ?
				    m.rcpts[j].last_error : "";
		}
		if (err == NULL)
			printf("-");
		printf(" %s %s\n", ctl_queue_time(m.next_attempt, next,
		    sizeof(next)), err != NULL && err[0] != '\0' ? err : "-");
		store_queue_msg_clear(&m);
	}
	free(ids);
	return ctl_queue_throttled(ctl);
}

/*
 * After the messages, one line per destination the relay is throttling
 * itself for (it answered 421 or a 4.7.x rate-limit reply):
 *   throttled DOMAIN concurrency=N held-until=TIME since=TIME reason=TEXT
 */
static int
ctl_queue_throttled(struct ctl *ctl)
{
	struct store_throttle *t = NULL;
	size_t n = 0, i;
	char held[32], since[32];

	if (store_throttle_list(ctl->st, &t, &n) < 0)
		return ctl_queue_store_err(ctl, "list");
	for (i = 0; i < n; i++)
		printf("throttled %s concurrency=%u held-until=%s since=%s "
		    "reason=%s\n", t[i].domain, t[i].concurrency,
		    ctl_queue_time(t[i].held_until, held, sizeof(held)),
		    ctl_queue_time(t[i].since, since, sizeof(since)),
		    t[i].reason);
	store_throttle_free(t, n);
	return 0;
}

static int
ctl_queue_show(struct ctl *ctl, const char *arg)
{
	struct store_queue_msg m;
	struct store_body *b;
	int64_t id, now = util_time();
	uint64_t size = 0;
	char t1[32], t2[32], *buf, *end;
	ssize_t got;
	size_t i, have = 0;
	int rc;

	if (ctl_queue_id(arg, &id) < 0)
		return 1;
	rc = store_queue_load(ctl->st, id, &m);
	if (rc == 1) {
		ctl_err("queue show: no queued message %" PRId64, id);
		return 1;
	}
	if (rc < 0)
		return ctl_queue_store_err(ctl, "show");
	b = store_body_open(ctl->st, m.body_id, &size);
	printf("id: %" PRId64 "\n", m.id);
	printf("from: <%s>\n", m.mail_from);
	printf("created: %s (%s ago)\n", ctl_queue_time(m.created, t1,
	    sizeof(t1)), ctl_queue_age(now - m.created, t2, sizeof(t2)));
	printf("next-attempt: %s\n", ctl_queue_time(m.next_attempt, t1,
	    sizeof(t1)));
	printf("attempts: %u\n", m.attempts);
	printf("auth-user: %s\n", m.auth_user ? m.auth_user : "-");
	printf("size: %" PRIu64 "\n", size);
	printf("smtputf8: %s\n", m.smtputf8 ? "yes" : "no");
	printf("bounce: %s\n", m.is_bounce ? "yes" : "no");
	printf("delay-warning-sent: %s\n", m.warned ? "yes" : "no");
	/* The relay sending it now (several relays share a queue). */
	if (m.claimed_by != NULL && m.lease_until > now)
		printf("claimed-by: %s until %s\n", m.claimed_by,
		    ctl_queue_time(m.lease_until, t1, sizeof(t1)));
	else
		printf("claimed-by: -\n");
	for (i = 0; i < m.nrcpts; i++)
		printf("rcpt: %s %s %s\n", m.rcpts[i].address,
		    store_queue_rcpt_status_str(m.rcpts[i].status),
		    m.rcpts[i].last_error && m.rcpts[i].last_error[0] ?
		    m.rcpts[i].last_error : "-");
	printf("\n");
	if (b != NULL) {
		buf = xmalloc(CTL_QUEUE_HEADERS_MAX + 1);
		while (have < CTL_QUEUE_HEADERS_MAX) {
			got = store_body_read(b, have, buf + have,
			    CTL_QUEUE_HEADERS_MAX - have);
			if (got <= 0)
				break;
			have += (size_t)got;
			if (memmem(buf, have, "\r\n\r\n", 4) != NULL)
				break;
		}
		end = memmem(buf, have, "\r\n\r\n", 4);
		if (end != NULL)
			have = (size_t)(end - buf) + 2;
		for (i = 0; i < have; i++)
			if (buf[i] != '\r')
				putchar(buf[i]);
		free(buf);
		store_body_close(b);
	} else
		printf("(message body unavailable: %s)\n",
		    store_error(ctl->st));
	store_queue_msg_clear(&m);
	return 0;
}

static int
ctl_queue_flush(struct ctl *ctl)
{
	size_t n = 0;

	if (store_queue_flush(ctl->st, util_time(), &n) < 0)
		return ctl_queue_store_err(ctl, "flush");
	printf("flushed %zu message%s\n", n, n == 1 ? "" : "s");
	return 0;
}

static int
ctl_queue_delete(struct ctl *ctl, const char *arg)
{
	int64_t id;
	int rc;

	if (ctl_queue_id(arg, &id) < 0)
		return 1;
	rc = store_queue_delete(ctl->st, id);
	if (rc == 1) {
		ctl_err("queue delete: no queued message %" PRId64, id);
		return 1;
	}
	if (rc < 0)
		return ctl_queue_store_err(ctl, "delete");
	printf("deleted %" PRId64 "\n", id);
	return 0;
}
