/*
 * The store API on both backends: one scenario (domains, users, aliases,
 * resolve, deliveries inline and chunked, RETR bytes, UIDLs never reused,
 * quota accounting, the send log, settings, delete, gc, verify) run on a
 * SQLite file and on a fresh PostgreSQL database (pg_cluster.h), with the
 * same expected answers. Catches SQL in store/ that only one engine
 * takes, or takes differently.
 */
#include "t.h"
#include "pg_cluster.h"
#include "store/store.h"
#include "store/store_internal.h"
#include "store/settings.h"
#include "store/verify.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define T_BIG (3 * STORE_CHUNK_SIZE + 17)

static void
t_count_cb(const char *s, void *arg)
{
	fprintf(stderr, "  %s\n", s);
	(*(int *)arg)++;
}

/* The message as RETR would send it. Caller frees; NULL on error. */
static unsigned char *
t_retr(struct store *st, int64_t id, uint64_t *size_r)
{
	struct store_body *b = store_message_open(st, id, size_r);
	unsigned char *buf;
	uint64_t off = 0;
	ssize_t n;

	if (b == NULL)
		return NULL;
	buf = xmalloc(*size_r + 1);
	while (off < *size_r && (n = store_body_read(b, off, buf + off,
	    4000)) > 0)
		off += (uint64_t)n;
	store_body_close(b);
	if (off != *size_r) {
		free(buf);
		return NULL;
	}
	return buf;
}

static void
t_scenario(struct store *st, const char *backend)
{
	static const char small[] = "Subject: hi\r\n\r\nsmall body\r\n";
	const char *local[] = { "bob@example.org" };
	const char *remote[] = { "r@remote.test" };
	struct store_delivery d;
	struct store_user u;
	struct store_msg *msgs = NULL;
	enum store_rcpt_kind kind;
	char **l = NULL, **r = NULL, *v = NULL, name[128], uidl[80];
	unsigned char *big = xmalloc(T_BIG), *got;
	size_t nl = 0, nr = 0, n = 0, deleted = 0, i;
	uint64_t size, rp = STORE_RETURN_PATH_LEN(strlen("s@x.test"));
	int64_t now = (int64_t)time(NULL), qid = 0;
	unsigned freed = 9, problems = 9;
	int nproblems = 0;

	snprintf(name, sizeof(name), "store API on %s", backend);
	t_begin(name);
	for (i = 0; i < T_BIG; i++)
		big[i] = (unsigned char)(i * 13 + i / 251);
	t_assert_int(store_migrate(st), 0);
	t_assert_int(store_check_schema(st), 0);
	t_assert_int(store_domain_add(st, "Example.ORG"), 0);
	t_assert_int(store_domain_add(st, "example.org"), 1);
	t_assert_int(store_domain_is_local(st, "EXAMPLE.org"), 1);
	t_assert_int(store_domain_is_local(st, "remote.test"), 0);
	t_assert_int(store_user_add(st, "bob@example.org", "hash1"), 0);
	t_assert_int(store_user_add(st, "BOB@example.org", "hash2"), 1);
	t_assert_int(store_user_add(st, "amy@example.org", "hash3"), 0);
	t_assert_int(store_user_set_quota(st, "Amy@Example.org", 1000), 0);
	memset(&u, 0, sizeof(u));
	t_assert_int(store_user_get(st, "Bob@EXAMPLE.org", &u), 0);
	t_assert_str(u.address, "bob@example.org");
	t_assert_str(u.hash, "hash1");
	store_user_clear(&u);
	t_assert_int(store_alias_add(st, "@example.org", "bob@example.org"),
	    0);
	t_assert_int(store_alias_add(st, "@EXAMPLE.org", "bob@example.org"),
	    1);
	t_assert_int(store_resolve(st, "nobody@example.org", NULL, &kind, &l,
	    &nl, &r, &nr), 0);
	t_assert_int(kind, STORE_RCPT_LOCAL);
	t_assert_int(nl, 1);
	if (nl == 1)
		t_assert_str(l[0], "bob@example.org");
	store_rcpt_free_list(l, nl);
	store_rcpt_free_list(r, nr);
	t_assert_int(store_resolve(st, "x@remote.test", NULL, &kind, &l, &nl,
	    &r, &nr), 0);
	t_assert_int(kind, STORE_RCPT_REMOTE);
	store_rcpt_free_list(l, nl);
	store_rcpt_free_list(r, nr);

	/* Two deliveries in one transaction (group commit), one inline,
	 * one chunked, each with a queue row for the remote copy. */
	memset(&d, 0, sizeof(d));
	d.prefix = "";
	d.mail_from = "s@x.test";
	d.local = local;
	d.nlocal = 1;
	d.remote = remote;
	d.nremote = 1;
	d.auth_user = "bob@example.org";
	t_assert_int(store_begin(st), 0);
	t_assert_int(store_deliver_mem(st, &d, small, sizeof(small) - 1,
	    NULL, &qid), 0);
	t_assert(qid > 0);
	t_assert_int(store_deliver_mem(st, &d, big, T_BIG, NULL, NULL), 0);
	t_assert_int(store_commit(st), 0);
	t_assert(!store_in_transaction(st));
	/* Over quota: refused, nothing left behind. */
	d.local = (const char *[]){ "amy@example.org" };
	d.nremote = 0;
	d.check_quota = true;
	t_assert_int(store_deliver_mem(st, &d, big, T_BIG, NULL, NULL), -1);
	t_assert(store_error_is_quota(st));
	d.local = local;
	d.check_quota = false;

	t_assert_int(store_mailbox_list(st, "BOB@example.org", &msgs, &n), 0);
	t_assert_int(n, 2);
	if (n == 2) {
		t_assert_int(msgs[0].size, rp + sizeof(small) - 1);
		t_assert_int(msgs[1].size, rp + T_BIG);
		t_assert(strchr(msgs[0].uidl, '.') != NULL);
		t_assert_str(strchr(msgs[1].uidl, '.'), ".2");
		got = t_retr(st, msgs[1].id, &size);
		t_assert(got != NULL && size == rp + T_BIG &&
		    memcmp(got, "Return-Path: <s@x.test>\r\n", rp) == 0 &&
		    memcmp(got + rp, big, T_BIG) == 0);
		free(got);
		got = t_retr(st, msgs[0].id, &size);
		t_assert(got != NULL && size == rp + sizeof(small) - 1 &&
		    memcmp(got + rp, small, sizeof(small) - 1) == 0);
		free(got);
		snprintf(uidl, sizeof(uidl), "%s", msgs[0].uidl);
		*strchr(uidl, '.') = '\0';
	}
	memset(&u, 0, sizeof(u));
	t_assert_int(store_user_get(st, "bob@example.org", &u), 0);
	t_assert_int(u.used, 2 * rp + sizeof(small) - 1 + T_BIG);
	store_user_clear(&u);

	/* The send log, case-insensitive by user. */
	t_assert_int(store_sent_add(st, "bob@example.org", now - 5, 3), 0);
	t_assert_int(store_sent_add(st, "Bob@Example.org", now, 2), 0);
	t_assert_int(store_sent_count(st, "BOB@example.org", now - 60), 5);
	t_assert_int(store_sent_count(st, "bob@example.org", now - 1), 2);
	t_assert_int(store_sent_oldest(st, "bob@EXAMPLE.org", now - 60),
	    now - 5);
	t_assert_int(store_sent_count(st, "amy@example.org", now - 60), 0);

	/* Settings: the first value stays. */
	t_assert_int(store_setting_init(st, "srs_secret", "one", &v), 0);
	t_assert_str(v, "one");
	free(v);
	t_assert_int(store_setting_init(st, "srs_secret", "two", &v), 0);
	t_assert_str(v, "one");
	free(v);

	t_assert_int(store_verify(st, t_count_cb, &nproblems, &problems), 0);
	t_assert_int(problems, 0);

	/* Delete both: bodies stay for the queue rows; UIDLs go on. */
	if (n == 2) {
		int64_t ids[2] = { msgs[0].id, msgs[1].id };

		t_assert_int(store_mailbox_delete(st, "bob@example.org", ids,
		    2, &deleted), 0);
		t_assert_int(deleted, 2);
		t_assert_int(store_mailbox_delete(st, "bob@example.org", ids,
		    2, &deleted), 0);
		t_assert_int(deleted, 0);
	}
	free(msgs);
	msgs = NULL;
	t_assert_int(store_gc(st, 10, &freed), 0);
	t_assert_int(freed, 0);
	t_assert_int(store_deliver_mem(st, &d, small, sizeof(small) - 1,
	    NULL, NULL), 0);
	t_assert_int(store_mailbox_list(st, "bob@example.org", &msgs, &n), 0);
	t_assert_int(n, 1);
	if (n == 1) {
		char want[96];

		snprintf(want, sizeof(want), "%s.3", uidl);
		t_assert_str(msgs[0].uidl, want);	/* never reused */
	}
	free(msgs);
	memset(&u, 0, sizeof(u));
	t_assert_int(store_user_get(st, "bob@example.org", &u), 0);
	t_assert_int(u.used, rp + sizeof(small) - 1);
	store_user_clear(&u);
	nproblems = 0;
	t_assert_int(store_verify(st, t_count_cb, &nproblems, &problems), 0);
	t_assert_int(problems, 0);

	t_assert_int(store_user_del(st, "bob@example.org"), 0);
	t_assert_int(store_mailbox_list(st, "bob@example.org", &msgs, &n), 1);
	t_assert_int(store_domain_del(st, "example.org"), -1);	/* amy */
	t_assert_int(store_user_del(st, "amy@example.org"), 0);
	t_assert_int(store_domain_del(st, "EXAMPLE.org"), 0);
	t_assert_int(store_domain_is_local(st, "example.org"), 0);
	if (t_case_failed)
		fprintf(stderr, "%s: last store error: %s\n", backend,
		    store_error(st));
	free(big);
	t_end();
}

/* A domain with one user, and d set to deliver to that user alone. */
static void
t_one_user(struct store *st, const char *domain, const char **local,
    const char *mail_from, struct store_delivery *d)
{
	t_assert_int(store_domain_add(st, domain), 0);
	t_assert_int(store_user_add(st, local[0], "h"), 0);
	memset(d, 0, sizeof(*d));
	d->prefix = "";
	d->mail_from = mail_from;
	d->local = local;
	d->nlocal = 1;
}

/*
 * Flat units (the delivery writer's mode on PostgreSQL): no savepoints,
 * so a refused delivery takes the whole transaction with it and leaves
 * nothing, not even the body row its statement inserted; on SQLite the
 * mode stays off and the refused unit alone is undone.
 */
static void
t_flat_units(struct store *st, bool pg)
{
	static const char small[] = "Subject: f\r\n\r\nflat\r\n";
	const char *local[] = { "dee@flat.test" };
	struct store_delivery d;
	struct store_msg *msgs = NULL;
	struct store_user u;
	unsigned problems = 0, nproblems = 0;
	unsigned char *big = xmalloc(T_BIG);
	size_t n = 0;

	t_begin(pg ? "flat units on PostgreSQL: a refused unit loses the "
	    "transaction" : "flat units stay off on SQLite");
	memset(big, 'q', T_BIG);
	t_one_user(st, "flat.test", local, "s@x.test", &d);
	t_assert_int(store_user_set_quota(st, "dee@flat.test", 1000), 0);
	t_assert(store_set_flat_units(st, true) == pg);
	d.check_quota = true;

	t_assert_int(store_begin(st), 0);
	t_assert_int(store_deliver_mem(st, &d, small, sizeof(small) - 1,
	    NULL, NULL), 0);
	t_assert_int(store_deliver_mem(st, &d, big, T_BIG, NULL, NULL), -1);
	t_assert(store_error_is_quota(st));
	if (pg) {
		/* Nothing more runs in it, and it cannot commit. */
		t_assert_int(store_begin(st), -1);
		t_assert_int(store_commit(st), -1);
		t_assert(store_error_is_quota(st));
	} else
		t_assert_int(store_commit(st), 0);
	t_assert(!store_in_transaction(st));
	t_assert_int(store_mailbox_list(st, "dee@flat.test", &msgs, &n), 0);
	t_assert_int(n, pg ? 0 : 1);
	free(msgs);

	/* Redone without the refused one, as the writer does. */
	t_assert_int(store_begin(st), 0);
	t_assert_int(store_deliver_mem(st, &d, small, sizeof(small) - 1,
	    NULL, NULL), 0);
	t_assert_int(store_commit(st), 0);
	t_assert_int(store_mailbox_list(st, "dee@flat.test", &msgs, &n), 0);
	t_assert_int(n, pg ? 1 : 2);
	free(msgs);
	memset(&u, 0, sizeof(u));
	t_assert_int(store_user_get(st, "dee@flat.test", &u), 0);
	t_assert_int(u.used, (pg ? 1 : 2) * (STORE_RETURN_PATH_LEN(8) +
	    sizeof(small) - 1));
	store_user_clear(&u);
	/* No body row left over from the lost transaction. */
	t_assert_int(store_verify(st, t_count_cb, &nproblems, &problems), 0);
	t_assert_int(problems, 0);

	t_assert(!store_set_flat_units(st, false));
	t_assert_int(store_user_del(st, "dee@flat.test"), 0);
	t_assert_int(store_domain_del(st, "flat.test"), 0);
	free(big);
	t_end();
}

/*
 * RETR's one statement: store_message_open brings the first chunk with
 * the row. Bodies at the edges (inline, one chunk, exactly one chunk,
 * one byte into the second) read back byte for byte on both engines.
 */
static void
t_chunk_edges(struct store *st, const char *backend)
{
	static const size_t sizes[] = { 100, STORE_INLINE_MAX + 1, 5000,
	    STORE_CHUNK_SIZE, STORE_CHUNK_SIZE + 1 };
	const size_t nsizes = sizeof(sizes) / sizeof(sizes[0]);
	const char *local[] = { "eve@edge.test" };
	struct store_delivery d;
	struct store_msg *msgs = NULL;
	unsigned char *data = xmalloc(STORE_CHUNK_SIZE + 1), *got;
	size_t rp = STORE_RETURN_PATH_LEN(8), n = 0;
	uint64_t size;
	char name[96];

	snprintf(name, sizeof(name), "message bodies at the chunk edges read "
	    "back whole (%s)", backend);
	t_begin(name);
	for (size_t i = 0; i < STORE_CHUNK_SIZE + 1; i++)
		data[i] = (unsigned char)('a' + i % 26);
	t_one_user(st, "edge.test", local, "s@x.test", &d);
	for (size_t i = 0; i < nsizes; i++)
		t_assert_int(store_deliver_mem(st, &d, data, sizes[i], NULL,
		    NULL), 0);
	t_assert_int(store_mailbox_list(st, "eve@edge.test", &msgs, &n), 0);
	t_assert_int(n, nsizes);
	for (size_t i = 0; i < n && i < nsizes; i++) {
		got = t_retr(st, msgs[i].id, &size);
		t_assert(got != NULL && size == rp + sizes[i] &&
		    memcmp(got, "Return-Path: <s@x.test>\r\n", rp) == 0 &&
		    memcmp(got + rp, data, sizes[i]) == 0);
		free(got);
	}
	free(msgs);
	t_assert_int(store_user_del(st, "eve@edge.test"), 0);
	t_assert_int(store_domain_del(st, "edge.test"), 0);
	free(data);
	t_end();
}

static void
t_lines_cb(const char *s, void *arg)
{
	char *buf = arg;

	snprintf(buf + strlen(buf), 4096 - strlen(buf), "%s\n", s);
}

/* verify on PostgreSQL finds what is wrong (its own SQL there). */
static void
t_verify_finds(struct store *st, const char *url)
{
	const char *local[] = { "carl@example.org" };
	struct db_pg *db = t_open(url);
	struct store_delivery d;
	struct store_msg *msgs = NULL;
	char lines[4096] = "", sql[512];
	unsigned problems = 0;
	size_t n = 0;

	t_begin("verify on PostgreSQL finds each kind of damage");
	t_one_user(st, "example.org", local, "", &d);
	t_assert_int(store_deliver_mem(st, &d, "a\r\n", 3, NULL, NULL), 0);
	t_assert_int(store_deliver_mem(st, &d, "b\r\n", 3, NULL, NULL), 0);
	t_assert_int(store_mailbox_list(st, "carl@example.org", &msgs, &n),
	    0);
	t_assert_int(n, 2);
	if (n == 2) {
		snprintf(sql, sizeof(sql), "UPDATE users SET used = used + 1;"
		    "UPDATE mailbox SET uidl = 'bad uidl' WHERE id = %lld;"
		    "UPDATE mailbox SET uidl = to_hex(uid_epoch) || '.7' "
		    "FROM users WHERE mailbox.id = %lld;"
		    "UPDATE bodies SET refs = refs + 1 WHERE id = %lld",
		    (long long)msgs[0].id, (long long)msgs[1].id,
		    (long long)msgs[1].body_id);
		t_assert_int(pg_exec(db, sql), DB_OK);
	}
	free(msgs);
	t_assert_int(store_verify(st, t_lines_cb, lines, &problems), 0);
	t_assert_int(problems, 4);
	t_assert(strstr(lines, "refs is 2, but 1 mailbox and 0 queue") !=
	    NULL);
	t_assert(strstr(lines, "invalid UIDL (hex 626164207569646C)") !=
	    NULL);
	t_assert(strstr(lines, ".7 is not below next_uid 3") != NULL);
	t_assert(strstr(lines, "user carl@example.org: used is") != NULL);
	if (t_case_failed)
		fprintf(stderr, "verify said:\n%s", lines);
	pg_close(db);
	t_end();
}

int
main(void)
{
	const char *tmp = getenv("TMPDIR"), *err = NULL;
	char path[256], locator[1024], *url;
	struct store *st;

	snprintf(path, sizeof(path), "%s/test_store_pg-%d.db",
	    tmp != NULL ? tmp : "/tmp", (int)getpid());
	if ((st = store_open(path, &err)) == NULL) {
		fprintf(stderr, "FAIL: store_open %s: %s\n", path, err);
		return 1;
	}
	t_scenario(st, "SQLite");
	t_flat_units(st, false);
	t_chunk_edges(st, "SQLite");
	store_close(st);
	unlink(path);
	snprintf(locator, sizeof(locator), "%s-wal", path);
	unlink(locator);
	snprintf(locator, sizeof(locator), "%s-shm", path);
	unlink(locator);

	t_pg_setup();
	url = t_newdb("store");
	snprintf(locator, sizeof(locator), "postgresql:%s", url);
	if ((st = store_open(locator, &err)) == NULL) {
		fprintf(stderr, "FAIL: store_open %s: %s\n", locator, err);
		return 1;
	}
	t_scenario(st, "PostgreSQL");
	t_flat_units(st, true);
	t_chunk_edges(st, "PostgreSQL");
	t_verify_finds(st, url);
	store_close(st);
	free(url);
	return t_exit();
}
