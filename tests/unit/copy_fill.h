/*
 * A SQLite store with rows in every table, for the store copy tests
 * (test_store_copy: SQLite -> SQLite, test_store_copy_pg: -> PostgreSQL):
 * users with hashes, quota, a disabled one, expire; aliases and a
 * catch-all; inline and chunked bodies; queued mail with DSN fields and
 * a recipient with an error; a deleted message (a UIDL gap); an import
 * with a foreign UIDL; settings, send log, suppressions, throttling,
 * MTA-STS, monitor listings. Header-only, included once per test.
 */
#ifndef CARTEIRO_TEST_COPY_FILL_H
#define CARTEIRO_TEST_COPY_FILL_H

#include "common/util.h"
#include "store/import.h"
#include "store/settings.h"
#include "store/store.h"
#include "store/store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALICE "alice@example.test"
#define BOB "bob@example.test"
#define CAROL "carol@other.test"

/* One integer from a query on st, -1 when there is none. */
static int64_t
cf_int(struct store *st, const char *sql)
{
	struct db_stmt *s;
	int64_t v = -1;

	if (db_prepare(st->db, sql, false, &s) != DB_OK)
		return -1;
	if (db_step(s) == DB_ROW)
		v = db_column_int64(s, 0);
	db_finalize(s);
	return v;
}

static void
cf_cat(char **buf, size_t *len, const void *p, size_t n)
{
	*buf = xrealloc(*buf, *len + n + 1);
	memcpy(*buf + *len, p, n);
	*len += n;
	(*buf)[*len] = '\0';
}

static int
cf_deliver(struct store *st, const char *data, size_t len,
    const char *const *local, size_t nlocal, const char *const *remote,
    size_t nremote)
{
	static const unsigned notify[] = { 2 | 4, 8 };
	static const char *const orcpt[] = { "rfc822;x@remote.test", NULL };
	struct store_delivery d = {
		.prefix = "Received: by test\r\n", .prefix_len = 19,
		.mail_from = "sender@remote.test", .local = local,
		.nlocal = nlocal, .remote = remote, .nremote = nremote,
		.auth_user = nremote > 0 ? ALICE : NULL, .dsn_ret = 2,
		.dsn_envid = "ENV+2Bid", .remote_notify = notify,
		.remote_orcpt = orcpt,
	};

	if (store_begin(st) < 0)
		return -1;
	return store_end(st, store_deliver_mem(st, &d, data, len, NULL,
	    NULL));
}

/* A source with rows in every table. */
static void
cf_fill(struct store *st)
{
	static const char *const ab[] = { ALICE, BOB };
	static const char *const a[] = { ALICE };
	static const char *const rem[] = { "x@remote.test", "y@far.test" };
	struct store_import_msg im = {
		.data = "Subject: old\r\n\r\nfrom the old server\r\n",
		.uidl = "UID77-foreign", .mbox_from = "old@server.test Mon",
	};
	struct store_msg *msgs = NULL;
	size_t n = 0, deleted = 0, big_len = 3 * STORE_CHUNK_SIZE + 1234;
	char *big, *v = NULL;
	int ok = 1;

	big = xmalloc(big_len);
	for (size_t i = 0; i < big_len; i++)
		big[i] = (i % 100) == 98 ? '\r' : (i % 100) == 99 ? '\n' :
		    (char)('A' + i % 26);
	im.len = strlen(im.data);
	ok &= store_domain_add(st, "example.test") == 0;
	ok &= store_domain_add(st, "other.test") == 0;
	ok &= store_user_add(st, ALICE, "$argon2id$v=19$alice") == 0;
	ok &= store_user_add(st, BOB, "$argon2id$v=19$bob") == 0;
	ok &= store_user_add(st, CAROL, "$argon2id$v=19$carol") == 0;
	ok &= store_user_set_quota(st, ALICE, 50000000) == 0;
	ok &= store_user_set_enabled(st, CAROL, false) == 0;
	ok &= store_alias_add(st, "info@example.test", ALICE) == 0;
	ok &= store_alias_add(st, "info@example.test", BOB) == 0;
	ok &= store_alias_add(st, "@other.test", CAROL) == 0;
	ok &= cf_deliver(st, "Subject: one\r\n\r\nfirst\r\n", 23, ab, 2,
	    NULL, 0) == 0;
	ok &= cf_deliver(st, "Subject: two\r\n\r\nsecond\r\n", 24, ab, 2,
	    rem, 2) == 0;
	ok &= cf_deliver(st, big, big_len, a, 1, rem, 1) == 0;
	ok &= cf_deliver(st, "Subject: three\r\n\r\nthird\r\n", 25, a, 1,
	    NULL, 0) == 0;
	/* Alice's second message goes: her UIDLs have a gap. */
	ok &= store_mailbox_list(st, ALICE, &msgs, &n) == 0 && n == 4;
	if (n == 4)
		ok &= store_mailbox_delete(st, ALICE, &msgs[1].id, 1,
		    &deleted) == 0 && deleted == 1;
	free(msgs);
	ok &= store_import(st, BOB, &im) == 0;
	ok &= store_setting_init(st, "srs_secret", "s3cret", &v) == 0;
	free(v);
	ok &= store_sent_add(st, ALICE, 1700000000, 2) == 0;
	ok &= store_exec(st, "UPDATE users SET expire = 86400 WHERE "
	    "address = 'bob@example.test';"
	    "UPDATE domains SET source_ip = '192.0.2.1', helo = "
	    "'mx.example.test' WHERE name = 'example.test';"
	    "UPDATE mailbox SET first_retrieved = 1700000100 WHERE id = 1;"
	    "UPDATE queue_rcpt SET status = 1, last_error = '451 later', "
	    "updated = 1700000200 WHERE id = 1;"
	    "INSERT INTO suppress VALUES ('gone@far.test', 1700000000, "
	    "'550 no such user', 'bounce');"
	    "INSERT INTO relay_throttle VALUES ('far.test', 2, 1700003600, "
	    "1700000000, '421 slow down');"
	    "INSERT INTO mta_sts VALUES ('far.test', '20240101', "
	    "'version: STSv1\r\nmode: enforce\r\n', 1700000000, 1700086400);"
	    "INSERT INTO monitor_listing VALUES ('192.0.2.1', "
	    "'zen.example', 1700000000, '127.0.0.2');") == 0;
	if (!ok) {
		fprintf(stderr, "fill: %s\n", store_error(st));
		exit(1);
	}
	free(big);
}

#endif
