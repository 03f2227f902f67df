/*
 * Migration 4 on a store written by the schema-3 code: fixtures/
 * store_v3.sql (generated at commit a48b646 by fixtures/store_v3_gen.c;
 * Return-Path was then the first line of the shared body). After
 * store_migrate, RETR bytes (store_message_open) and mailbox sizes are
 * what they were, the relay's reader (store_body_open on a queue row's
 * body) no longer returns the Return-Path line, and the new columns hold
 * exactly the parsed senders and line lengths.
 */
#include "t.h"
#include "store/store.h"
#include "store/store_internal.h"
#include "store/queue.h"
#include "store/schema.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T_ROWS 7	/* mailbox rows in the fixture */
#define T_OLD1 "Return-Path: <sender@remote.test>\r\n" \
	"Received: from client.remote.test ([192.0.2.7])\r\n"

struct t_old {
	unsigned char *bytes;	/* the body as stored: RETR before */
	size_t len;
	int64_t size;		/* mailbox.size */
	int64_t body_id;
};

static char t_dir[64];

/* The whole fixture file; caller frees. */
static char *
t_read_fixture(void)
{
	const char *src = getenv("CARTEIRO_SRC");
	char path[512];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s/tests/unit/fixtures/store_v3.sql",
	    src != NULL ? src : "..");
	f = fopen(path, "rb");
	if (f == NULL) {
		perror(path);
		exit(1);
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = xmalloc((size_t)n + 1);
	if (fread(buf, 1, (size_t)n, f) != (size_t)n)
		exit(1);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static struct store *
t_open(const char *path)
{
	const char *err;
	struct store *st = store_open(path, &err);

	if (st == NULL) {
		fprintf(stderr, "store_open: %s\n", err);
		exit(1);
	}
	return st;
}

/* A stored body's bytes the way the schema-3 reader returned them. */
static unsigned char *
t_raw_body(struct store *st, int64_t body_id, size_t *len_r)
{
	struct db_stmt *s;
	unsigned char *out = NULL;
	size_t len = 0;
	int n;

	t_assert(db_prepare(st->db, "SELECT data FROM bodies WHERE "
	    "id = ?1 AND data IS NOT NULL UNION ALL SELECT data FROM "
	    "(SELECT data FROM body_chunks WHERE body_id = ?1 ORDER BY seq)", false, &s) == DB_OK);
	db_bind_int64(s, 1, body_id);
	while (db_step(s) == DB_ROW) {
		n = db_column_bytes(s, 0);
		out = xrealloc(out, len + (size_t)n + 1);
		memcpy(out + len, db_column_blob(s, 0), (size_t)n);
		len += (size_t)n;
	}
	db_finalize(s);
	*len_r = len;
	return out;
}

static long long
q_int(struct store *st, const char *sql)
{
	struct db_stmt *s;
	long long v = -999;

	if (db_prepare(st->db, sql, false, &s) == DB_OK) {
		if (db_step(s) == DB_ROW)
			v = db_column_int64(s, 0);
		db_finalize(s);
	} else
		fprintf(stderr, "q_int: %s: %s\n", sql, db_errmsg(st->db));
	return v;
}

/* mailbox.return_path of row id, "(null)" for NULL; caller frees. */
static char *
q_return_path(struct store *st, int64_t id)
{
	struct db_stmt *s;
	char *v = xstrdup("(error)");

	if (db_prepare(st->db, "SELECT return_path FROM mailbox "
	    "WHERE id = ?1", false, &s) == DB_OK) {
		db_bind_int64(s, 1, id);
		if (db_step(s) == DB_ROW) {
			free(v);
			v = xstrdup(db_column_type(s, 0) == DB_NULL ?
			    "(null)" : db_column_text(s, 0));
		}
		db_finalize(s);
	}
	return v;
}

/* All of a reader's bytes, read in odd pieces (they straddle the head,
 * the skipped line and chunk boundaries). Caller frees. */
static unsigned char *
t_read_all(struct store_body *b, uint64_t size)
{
	unsigned char *out = xmalloc((size_t)size + 1);
	uint64_t off = 0;
	ssize_t n;

	while (off < size) {
		n = store_body_read(b, off, out + off, size - off < 7777 ?
		    (size_t)(size - off) : 7777);
		t_assert(n > 0);
		if (n <= 0)
			break;
		off += (uint64_t)n;
	}
	t_assert_int(store_body_read(b, size, out, 1), 0);
	return out;
}

static void
test_v3_migrates(const char *path)
{
	/* Senders the generator used, per mailbox row id 1..7. */
	static const char *const want_rp[T_ROWS + 1] = { NULL,
		"sender@remote.test", "alice@example.test",
		"alice@example.test", "", "(null)", "\"a>b\"@remote.test",
		"jos\xc3\xa9@xn--rmote-bsa.test",
	};
	struct t_old old[T_ROWS + 1];
	struct store_body *b;
	struct store_msg *msgs;
	struct store *st;
	unsigned char *got, *raw;
	uint64_t size;
	size_t n, rawlen, line;
	char *sql, *rp, sel[128];
	int64_t id;

	t_begin("schema 3 store: load the fixture");
	st = t_open(path);
	sql = t_read_fixture();
	t_assert_int(store_exec(st, sql), 0);
	free(sql);
	store_close(st);
	st = t_open(path);
	t_assert_int(store_schema_version(st), 3);
	t_assert_int(store_check_schema(st), -1);
	for (id = 1; id <= T_ROWS; id++) {
		snprintf(sel, sizeof(sel), "SELECT body_id FROM mailbox "
		    "WHERE id = %lld", (long long)id);
		old[id].body_id = q_int(st, sel);
		snprintf(sel, sizeof(sel), "SELECT size FROM mailbox "
		    "WHERE id = %lld", (long long)id);
		old[id].size = q_int(st, sel);
		old[id].bytes = t_raw_body(st, old[id].body_id, &old[id].len);
		t_assert_int(old[id].len, old[id].size);
	}
	/* What the generator wrote, so the fixture itself is checked. */
	t_assert(memcmp(old[1].bytes, T_OLD1, sizeof(T_OLD1) - 1) == 0);
	t_assert_int(old[2].body_id, old[3].body_id);
	t_assert_int(old[2].size, 64 * 1024 + 700 + 197);
	t_assert(memcmp(old[4].bytes, "Return-Path: <>\r\nFrom: Mail", 27) ==
	    0);
	t_assert(memcmp(old[5].bytes, "From: x@y.test\r\n", 16) == 0);
	t_end();

	t_begin("schema 3 store: migrate to the current schema");
	t_assert_int(store_migrate(st), 0);
	t_assert_int(store_schema_version(st),
	    (int)store_schema_migration_count());
	t_assert_int(store_check_schema(st), 0);
	t_assert_int(store_migrate(st), 0);
	t_end();

	t_begin("schema 3 store: new columns hold the senders exactly");
	for (id = 1; id <= T_ROWS; id++) {
		rp = q_return_path(st, id);
		t_assert_str(rp, want_rp[id]);
		free(rp);
	}
	/* data_offset: the old line's length, 0 where there was none. */
	t_assert_int(q_int(st, "SELECT group_concat(id || ':' || data_offset, "
	    "' ') = '1:35 2:35 3:17 4:0 5:0 6:34 7:41' FROM (SELECT id, "
	    "data_offset FROM bodies ORDER BY id)"), 1);
	/* Nothing else moved: sizes, refs, used, the queue. */
	t_assert_int(q_int(st, "SELECT sum(size) FROM mailbox"),
	    old[1].size + old[2].size + old[3].size + old[4].size +
	    old[5].size + old[6].size + old[7].size);
	t_assert_int(q_int(st, "SELECT sum(used) FROM users"),
	    q_int(st, "SELECT sum(size) FROM mailbox"));
	t_assert_int(q_int(st, "SELECT sum(refs) FROM bodies"), 9);
	t_assert_int(q_int(st, "SELECT count(*) FROM queue"), 2);
	t_end();

	t_begin("schema 3 store: RETR bytes and sizes unchanged");
	t_assert_int(store_mailbox_list(st, "alice@example.test", &msgs, &n),
	    0);
	t_assert_int(n, 4);
	free(msgs);
	for (id = 1; id <= T_ROWS; id++) {
		b = store_message_open(st, id, &size);
		t_assert(b != NULL);
		if (b == NULL)
			continue;
		t_assert_int(size, old[id].size);
		got = t_read_all(b, size);
		t_assert(memcmp(got, old[id].bytes, old[id].len) == 0);
		free(got);
		store_body_close(b);
	}
	t_end();

	t_begin("schema 3 store: queue bodies without the Return-Path line");
	/* Queue 1 shares body 2 with mailbox rows 2 and 3. */
	t_assert_int(q_int(st, "SELECT body_id FROM queue WHERE id = 1"),
	    old[2].body_id);
	line = strlen("Return-Path: <alice@example.test>\r\n");
	b = store_body_open(st, old[2].body_id, &size);
	t_assert(b != NULL);
	t_assert_int(size, old[2].len - line);
	if (b != NULL) {
		got = t_read_all(b, size);
		t_assert(memcmp(got, "Received: from me ([127.0.0.1])\r\n",
		    33) == 0);
		t_assert(memcmp(got, old[2].bytes + line, (size_t)size) == 0);
		free(got);
		store_body_close(b);
	}
	/* Queue 2: a queued DSN had no line; it stays as it was. */
	id = q_int(st, "SELECT body_id FROM queue WHERE id = 2");
	raw = t_raw_body(st, id, &rawlen);
	b = store_body_open(st, id, &size);
	t_assert(b != NULL);
	t_assert_int(size, rawlen);
	if (b != NULL) {
		got = t_read_all(b, size);
		t_assert(memcmp(got, raw, rawlen) == 0);
		t_assert(memcmp(got, "From: Mail Delivery System", 26) == 0);
		free(got);
		store_body_close(b);
	}
	free(raw);
	t_end();

	t_begin("schema 3 store: new mail, deletes and gc after migrating");
	{
		static const char *const bob[] = { "bob@example.test" };
		struct store_delivery d = {
			.prefix = "Received: x\r\n", .prefix_len = 13,
			.fd = -1, .mail_from = "new@remote.test",
			.local = bob, .nlocal = 1,
		};
		static const char want[] = "Return-Path: <new@remote.test>\r\n"
		    "Received: x\r\nhi\r\n";
		int64_t body;
		unsigned freed;
		size_t deleted;
		int64_t ids[2] = { 2, 3 };

		t_assert_int(store_deliver_mem(st, &d, "hi\r\n", 4, &body,
		    NULL), 0);
		id = q_int(st, "SELECT max(id) FROM mailbox");
		b = store_message_open(st, id, &size);
		t_assert(b != NULL);
		t_assert_int(size, sizeof(want) - 1);
		if (b != NULL) {
			got = t_read_all(b, size);
			t_assert(memcmp(got, want, sizeof(want) - 1) == 0);
			free(got);
			store_body_close(b);
		}
		t_assert_int(q_int(st, "SELECT size FROM bodies ORDER BY id "
		    "DESC LIMIT 1"), 17);
		/* The shared legacy body goes with its last reference. */
		t_assert_int(store_mailbox_delete(st, "alice@example.test",
		    ids, 1, &deleted), 0);
		t_assert_int(deleted, 1);
		t_assert_int(store_mailbox_delete(st, "bob@example.test",
		    ids + 1, 1, &deleted), 0);
		t_assert_int(deleted, 1);
		t_assert_int(store_gc(st, 10, &freed), 0);
		t_assert_int(freed, 0);
		b = store_body_open(st, old[2].body_id, &size);
		t_assert(b != NULL);
		store_body_close(b);
		t_assert_int(store_queue_delete(st, 1), 0);
		t_assert_int(store_gc(st, 10, &freed), 0);
		t_assert_int(freed, 1);
		t_assert_int(q_int(st, "SELECT count(*) FROM body_chunks "
		    "WHERE body_id = 2"), 0);
	}
	t_end();

	for (id = 1; id <= T_ROWS; id++)
		free(old[id].bytes);
	store_close(st);
}

/* A body line that does not rebuild to the same bytes stays in the body
 * (data_offset 0, no return_path): RETR cannot change. */
static void
test_v3_odd_lines(const char *path)
{
	static const char *const bodies[] = {
		"Return-Path: <a@b>\r\n",		/* converted */
		"Return-Path:  <a@b>\r\nX: y\r\n",	/* two spaces */
		"Return-Path: <a@b> \r\nX: y\r\n",	/* trailing space */
		"return-path: <a@b>\r\nX: y\r\n",	/* other case */
		"Return-Path: <a@b>\nX: y\r\n",	/* bare LF */
		"Return-Path: <a@b\r\n",		/* no '>' */
		"X: y\r\nReturn-Path: <a@b>\r\n",	/* not first */
	};
	static const char *const want = "1:20 2:0 3:0 4:0 5:0 6:0 7:0";
	struct store *st;
	char *sql, *rp;
	size_t i;

	t_begin("schema 3 store: only exact Return-Path lines are taken apart");
	st = t_open(path);
	t_assert_int(store_exec(st, "BEGIN"), 0);
	t_assert_int(store_exec(st, store_schema_migration(1)), 0);
	t_assert_int(store_exec(st, store_schema_migration(2)), 0);
	t_assert_int(store_exec(st, store_schema_migration(3)), 0);
	t_assert_int(store_exec(st, "PRAGMA user_version = 3; COMMIT"), 0);
	t_assert_int(store_domain_add(st, "x.test"), 0);
	t_assert_int(store_user_add(st, "u@x.test", "h"), 0);
	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		sql = xasprintf("INSERT INTO bodies(id, size, refs, created, "
		    "data) VALUES (%zu, %zu, 1, 0, CAST('%s' AS BLOB));"
		    "INSERT INTO mailbox(user_id, uidl, body_id, size, "
		    "arrived) VALUES (1, 'u%zu', %zu, %zu, 0)", i + 1, strlen(bodies[i]),
		    bodies[i], i, i + 1, strlen(bodies[i]));
		t_assert_int(store_exec(st, sql), 0);
		free(sql);
	}
	t_assert_int(store_migrate(st), 0);
	sql = xasprintf("SELECT group_concat(id || ':' || data_offset, ' ') "
	    "= '%s' FROM (SELECT id, data_offset FROM bodies ORDER BY id)",
	    want);
	t_assert_int(q_int(st, sql), 1);
	free(sql);
	rp = q_return_path(st, 1);
	t_assert_str(rp, "a@b");
	free(rp);
	for (i = 2; i <= sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct store_body *b;
		unsigned char *got;
		uint64_t size;

		rp = q_return_path(st, (int64_t)i);
		t_assert_str(rp, "(null)");
		free(rp);
		b = store_message_open(st, (int64_t)i, &size);
		t_assert(b != NULL);
		if (b == NULL)
			continue;
		t_assert_int(size, strlen(bodies[i - 1]));
		got = t_read_all(b, size);
		t_assert(memcmp(got, bodies[i - 1], (size_t)size) == 0);
		free(got);
		store_body_close(b);
	}
	store_close(st);
	t_end();
}

int
main(void)
{
	const char *tmp = getenv("TMPDIR");
	char path[128];

	snprintf(t_dir, sizeof(t_dir), "%s/test_store_migrate.XXXXXX",
	    tmp != NULL && strlen(tmp) < 40 ? tmp : "/tmp");
	if (mkdtemp(t_dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/v3.sqlite", t_dir);
	test_v3_migrates(path);
	snprintf(path, sizeof(path), "%s/odd.sqlite", t_dir);
	test_v3_odd_lines(path);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", t_dir);
	}
	return t_exit();
}
