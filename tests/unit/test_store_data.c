/*
 * The store side of issue 14 (data safety and migration): store_import
 * (given UIDLs, keys, never-reused UIDLs, carteiro's own UIDL form),
 * store_message_origin, store_verify's exact problem lines,
 * store_backup and store_counts, the retention queries (never-retrieved
 * mail is never a candidate; per-user overrides; never), and
 * cfg_parse_expire.
 */
#include "t.h"
#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "store/backup.h"
#include "store/import.h"
#include "store/retention.h"
#include "store/store.h"
#include "store/verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ALICE "alice@example.test"
#define BOB "bob@example.test"

static char t_dir[256], t_db[300];
static struct store *st;

struct t_lines {
	char buf[4096];
	unsigned n;
};

static void
t_collect(const char *problem, void *arg)
{
	struct t_lines *l = arg;
	size_t len = strlen(l->buf);

	snprintf(l->buf + len, sizeof(l->buf) - len, "%s\n", problem);
	l->n++;
}

static int
t_import(const char *address, const char *data, const char *uidl,
    const char *key, const char *from)
{
	struct store_import_msg m = {
		.data = data, .len = strlen(data), .uidl = uidl, .key = key,
		.mbox_from = from,
	};

	return store_import(st, address, &m);
}

static void
test_import(void)
{
	struct store_msg *msgs;
	char *rp, *from, gen[64];
	int64_t epoch;
	size_t n;

	t_begin("import keeps a given UIDL, refuses it twice");
	t_assert_int(t_import(ALICE, "Subject: a\r\n\r\nx\r\n", "OLD-1", NULL,
	    "a@example.org Thu Dec  3 10:00:00 2026"), 0);
	t_assert_int(t_import(ALICE, "Subject: a\r\n\r\nx\r\n", "OLD-1", NULL,
	    NULL), 1);
	t_assert_int(t_import(ALICE, "Subject: b\r\n\r\ny\r\n", NULL, "k:1",
	    NULL), 0);
	t_assert_int(t_import(ALICE, "Subject: b\r\n\r\ny\r\n", NULL, "k:1",
	    NULL), 1);
	t_assert_int(store_import_known(st, ALICE, "OLD-1", NULL), 1);
	t_assert_int(store_import_known(st, ALICE, NULL, "k:1"), 1);
	t_assert_int(store_import_known(st, BOB, "OLD-1", NULL), 0);
	t_assert(store_mailbox_list(st, ALICE, &msgs, &n) == 0);
	t_assert_int(n, 2);
	t_assert_str(msgs[0].uidl, "OLD-1");
	t_assert_int(msgs[0].size, strlen("Subject: a\r\n\r\nx\r\n"));
	t_assert_int(store_message_origin(st, msgs[0].id, &rp, &from), 0);
	t_assert(rp == NULL);
	t_assert_str(from, "a@example.org Thu Dec  3 10:00:00 2026");
	free(from);
	t_assert_int(store_message_origin(st, msgs[1].id, &rp, &from), 0);
	t_assert(rp == NULL && from == NULL);
	/* Deleted, then imported again: nothing comes back. */
	t_assert(store_mailbox_delete(st, ALICE, &msgs[0].id, 1, &n) == 0);
	t_assert_int(t_import(ALICE, "Subject: a\r\n\r\nx\r\n", "OLD-1", NULL,
	    NULL), 1);
	free(msgs);
	t_end();

	t_begin("import refuses bad UIDLs");
	t_assert_int(t_import(ALICE, "x\r\n", "has space", NULL, NULL), -1);
	t_assert_str(store_error(st), "invalid UIDL 'has space' (RFC 1939: 1 "
	    "to 70 printable characters, no spaces)");
	t_assert_int(t_import(ALICE, "x\r\n", "", NULL, NULL), -1);
	t_assert_int(t_import(ALICE, "x\r\n", "01234567890123456789012345678901"
	    "234567890123456789012345678901234567890", NULL, NULL), -1);
	t_assert_int(store_uidl_valid("0123456789012345678901234567890123456"
	    "789012345678901234567890123456789"), 0);	/* 70 */
	t_assert(store_mailbox_list(st, ALICE, &msgs, &n) == 0);
	t_assert_int(n, 1);
	/* "<uid_epoch hex>.<digits>" is carteiro's own form */
	epoch = 0;
	sscanf(msgs[0].uidl, "%llx.", (unsigned long long *)&epoch);
	snprintf(gen, sizeof(gen), "%llx.12345", (unsigned long long)epoch);
	t_assert_int(t_import(ALICE, "x\r\n", gen, NULL, NULL), -1);
	snprintf(gen, sizeof(gen), "%llx.12a", (unsigned long long)epoch);
	t_assert_int(t_import(ALICE, "x\r\n", gen, NULL, NULL), 0);
	/* one already in the mailbox */
	t_assert_int(t_import(BOB, "y\r\n", msgs[0].uidl, NULL, NULL), 0);
	t_assert_int(t_import(BOB, "z\r\n", msgs[0].uidl, "other", NULL), 1);
	free(msgs);
	t_end();
}

static void
test_verify_backup(void)
{
	struct t_lines l = { "", 0 };
	struct store_counts c;
	struct store *b;
	char path[400];
	const char *err;
	unsigned problems;

	t_begin("verify: a consistent store has no problems");
	t_assert(store_verify(st, t_collect, &l, &problems) == 0);
	t_assert_int(problems, 0);
	t_assert_str(l.buf, "");
	t_end();

	t_begin("backup: a copy with the same counts that verifies");
	snprintf(path, sizeof(path), "%s/backup.db", t_dir);
	t_assert(store_backup(st, path, &c) == 0);
	t_assert_int(c.users, 2);
	t_assert_int(c.messages, 3);
	t_assert_int(c.schema, store_schema_version(st));
	t_assert(store_backup(st, path, &c) < 0);	/* exists */
	b = store_open(path, &err);
	t_assert(b != NULL);
	problems = 9;
	t_assert(b != NULL && store_verify(b, t_collect, &l, &problems) == 0);
	t_assert_int(problems, 0);
	store_close(b);
	t_end();

	t_begin("verify: planted problems, exact lines");
	/* the store API has no way to break itself: go around it */
	b = store_open(t_db, &err);
	t_assert(b != NULL);
	store_close(b);
	{
		char cmd[1024];

		snprintf(cmd, sizeof(cmd), "sqlite3 '%s' \"UPDATE bodies SET "
		    "refs = 5 WHERE id = (SELECT min(body_id) FROM mailbox); "
		    "INSERT INTO body_chunks VALUES (777, 0, x'00');\"", t_db);
		t_assert(system(cmd) == 0);
	}
	l.buf[0] = '\0';
	l.n = 0;
	t_assert(store_verify(st, t_collect, &l, &problems) == 0);
	t_assert_int(problems, 2);
	t_assert(strstr(l.buf, ": refs is 5, but 1 mailbox and 0 queue rows "
	    "use it\norphan chunks: 1 chunk rows of body 777, which does not "
	    "exist\n") != NULL);
	{
		char cmd[1024];

		snprintf(cmd, sizeof(cmd), "sqlite3 '%s' \"UPDATE bodies SET "
		    "refs = 1 WHERE id = (SELECT min(body_id) FROM mailbox); DELETE "
		    "FROM body_chunks WHERE body_id = 777;\"", t_db);
		t_assert(system(cmd) == 0);
	}
	t_end();
}

static void
test_retention(void)
{
	struct store_expired *v;
	struct store_msg *msgs;
	int64_t e, now = util_time(), ids[8];
	size_t n, nv;

	t_begin("user expire: default, never, seconds");
	t_assert_int(store_user_get_expire(st, ALICE, &e), 0);
	t_assert_int(e, STORE_EXPIRE_DEFAULT);
	t_assert_int(store_user_set_expire(st, ALICE, 3600), 0);
	t_assert_int(store_user_get_expire(st, ALICE, &e), 0);
	t_assert_int(e, 3600);
	t_assert_int(store_user_set_expire(st, "no@example.test", 1), 1);
	t_assert_int(store_user_get_expire(st, "no@example.test", &e), 1);
	t_end();

	t_begin("expire candidates: only retrieved, due mail");
	t_assert(store_mailbox_list(st, ALICE, &msgs, &n) == 0);
	t_assert_int(n, 2);
	/* none retrieved: nothing, even with expire 0 by default */
	t_assert(store_expire_candidates(st, 0, now + 1000000, 0, 10, &v,
	    &nv) == 0);
	t_assert_int(nv, 0);
	free(v);
	ids[0] = msgs[0].id;
	t_assert(store_mailbox_retrieved(st, ALICE, ids, 1, now - 7200) == 0);
	/* a second QUIT does not move the first retrieval */
	t_assert(store_mailbox_retrieved(st, ALICE, ids, 1, now) == 0);
	t_assert(store_expire_candidates(st, -1, now, 0, 10, &v, &nv) == 0);
	t_assert_int(nv, 1);		/* alice's 3600 s beats "never" */
	t_assert(nv == 1 && v[0].id == msgs[0].id);
	t_assert(nv == 1 && strcmp(v[0].address, ALICE) == 0);
	t_assert(nv == 1 && v[0].first_retrieved == now - 7200);
	free(v);
	t_assert_int(store_user_set_expire(st, ALICE, STORE_EXPIRE_NEVER), 0);
	t_assert(store_expire_candidates(st, 0, now, 0, 10, &v, &nv) == 0);
	t_assert_int(nv, 0);		/* alice: never, whatever the default */
	free(v);
	t_assert_int(store_user_set_expire(st, ALICE, STORE_EXPIRE_DEFAULT),
	    0);
	t_assert(store_expire_candidates(st, 7201, now, 0, 10, &v, &nv) == 0);
	t_assert_int(nv, 0);		/* not due yet */
	free(v);
	t_assert(store_expire_candidates(st, 7200, now, msgs[0].id, 10, &v,
	    &nv) == 0);
	t_assert_int(nv, 0);		/* past the cursor */
	free(v);
	free(msgs);
	t_end();
}

static void
test_parse_expire(void)
{
	static const struct {
		const char *in;
		int ret;
		unsigned secs;
	} cases[] = {
		{ "never", 0, CFG_EXPIRE_NEVER },
		{ "0", 0, CFG_EXPIRE_AT_QUIT },
		{ "0d", 0, CFG_EXPIRE_AT_QUIT },
		{ "30", 0, 30 * 86400 },
		{ "12h", 0, 12 * 3600 },
		{ "36525", 0, 36525u * 86400 },
		{ "36526", -1, 0 },
		{ "-1", -1, 0 },
		{ "soon", -1, 0 },
		{ "", -1, 0 },
	};

	t_begin("cfg_parse_expire");
	for (size_t i = 0; i < nitems(cases); i++) {
		unsigned s = 12345;
		int r = cfg_parse_expire(cases[i].in, &s);

		t_assert_int(r, cases[i].ret);
		if (r == 0)
			t_assert_int(s, cases[i].secs);
	}
	t_end();
}

int
main(void)
{
	const char *tmp = getenv("TMPDIR"), *err = NULL;
	char cmd[600];
	int rc;

	log_init("test_store_data", 1, LOG_LVL_ERROR);
	snprintf(t_dir, sizeof(t_dir), "%s/carteiro-data-XXXXXX",
	    tmp != NULL ? tmp : "/tmp");
	if (mkdtemp(t_dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(t_db, sizeof(t_db), "%s/mail.db", t_dir);
	st = store_open(t_db, &err);
	if (st == NULL || store_migrate(st) != 0 ||
	    store_domain_add(st, "example.test") != 0 ||
	    store_user_add(st, ALICE, "x") != 0 ||
	    store_user_add(st, BOB, "x") != 0) {
		fprintf(stderr, "store: %s\n", st ? store_error(st) : err);
		return 1;
	}
	test_import();
	test_verify_backup();
	test_retention();
	test_parse_expire();
	store_close(st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t_dir);
	rc = system(cmd);
	(void)rc;
	return t_exit();
}
