/*
 * SRS (mailauth/srs.c) and its smtpd policy (smtpd/forward.c): the exact
 * SRS0/SRS1 shapes with a known key, round trips, case-insensitive
 * hashes, tampered values, the age limit across the stamp's wrap, the
 * null sender, and the secret kept once in the store.
 */
#include "mailauth/srs.h"
#include "smtpd/forward.h"
#include "smtpd/smtpd.h"
#include "store/settings.h"
#include "store/store.h"
#include "t.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DAY		86400
/* 1700000000: day 19675, 19675 % 1024 = 219 = "G3". */
#define T0		1700000000
#define KEY_HEX		"000102030405060708090a0b0c0d0e0f" \
			"101112131415161718191a1b1c1d1e1f"

static struct srs key;

/* reverse() result and address, for table checks. */
static enum srs_result
rev(const char *addr, int64_t now, char **out)
{
	return srs_reverse(&key, addr, now, out);
}

static void
test_forward_shape(void)
{
	char *a;

	t_begin("SRS0 exact shape (known-answer hash)");
	a = srs_forward(&key, "Alice@example.org", "fwd.test", T0);
	/* HMAC-SHA256(key, "srs0\0g3\0example.org\0alice\0"), 40 bits
	 * in base32 (computed with Python's hmac). */
	t_assert_str(a, "SRS0=7NWWP24V=G3=example.org=Alice@fwd.test");
	free(a);
	t_end();

	t_begin("null sender and unwrappable senders stay as they are");
	t_assert(srs_forward(&key, "", "fwd.test", T0) == NULL);
	t_assert(srs_forward(&key, "nodomain", "fwd.test", T0) == NULL);
	t_assert(srs_forward(&key, "\"a b\"@example.org", "fwd.test",
	    T0) == NULL);
	t_end();
}

static void
test_round_trip(void)
{
	char *a, *o;

	t_begin("SRS0 round trip");
	a = srs_forward(&key, "bob+tag=x@sub.example.org", "fwd.test", T0);
	t_assert(a != NULL && strncmp(a, "SRS0=", 5) == 0);
	t_assert_int(rev(a, T0, &o), SRS_OK);
	t_assert_str(o, "bob+tag=x@sub.example.org");
	free(o);
	t_assert(srs_is_srs(a));
	free(a);
	t_end();

	t_begin("srs_is_srs");
	t_assert(srs_is_srs("SRS0=a=b=c=d@x"));
	t_assert(srs_is_srs("srs1=a=b=c@x"));
	t_assert(!srs_is_srs("SRS2=a=b=c@x"));
	t_assert(!srs_is_srs("SRS0+a=b=c@x"));
	t_assert(!srs_is_srs("alice@x"));
	t_assert(!srs_is_srs("SRS0=abc"));
	t_assert_int(rev("alice@fwd.test", T0, &o), SRS_NOT_SRS);
	t_assert(o == NULL);
	t_end();
}

static void
test_case(void)
{
	char *a, *o;

	t_begin("hash and stamp verify in any case");
	a = srs_forward(&key, "Alice@example.org", "fwd.test", T0);
	for (char *p = a; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	t_assert_str(a, "srs0=7nwwp24v=g3=example.org=alice@fwd.test");
	t_assert_int(rev(a, T0, &o), SRS_OK);
	t_assert_str(o, "alice@example.org");
	free(o);
	free(a);
	t_end();
}

static void
test_tampered(void)
{
	static const char *const bad_hash[] = {
		"SRS0=7NWWP24W=G3=example.org=Alice@fwd.test",	/* hash */
		"SRS0=7NWWP24V=G4=example.org=Alice@fwd.test",	/* stamp */
		"SRS0=7NWWP24V=G3=example.com=Alice@fwd.test",	/* domain */
		"SRS0=7NWWP24V=G3=example.org=Alicf@fwd.test",	/* local */
		"SRS0=7NWWP24=G3=example.org=Alice@fwd.test",	/* short */
		"SRS0=7NWWP24VV=G3=example.org=Alice@fwd.test",	/* long */
		"SRS0==G3=example.org=Alice@fwd.test",		/* empty */
		/* the field boundary cannot move: d@a.bc -> cd@a.b */
		"SRS0=7NWWP24V=G3=example.or=gAlice@fwd.test",
	};
	static const char *const bad_syntax[] = {
		"SRS0=7NWWP24V@fwd.test",
		"SRS0=7NWWP24V=G3@fwd.test",
		"SRS0=7NWWP24V=G3=example.org@fwd.test",
		"SRS0=7NWWP24V=G3=example.org=@fwd.test",
		"SRS0=7NWWP24V=G3==Alice@fwd.test",
		"SRS0=7NWWP24V=G=example.org=Alice@fwd.test",
		"SRS0=7NWWP24V=G1=example.org=Alice@fwd.test",	/* '1' */
		"SRS1=7NWWP24V=fwd1@fwd.test",
		"SRS1=7NWWP24V=fwd1=@fwd.test",
		"SRS1=7NWWP24V==x=y@fwd.test",
	};
	struct srs other;
	char *o, *a;

	t_begin("tampered SRS0 values fail the hash");
	for (size_t i = 0; i < sizeof(bad_hash) / sizeof(*bad_hash); i++) {
		if (rev(bad_hash[i], T0, &o) != SRS_BAD_HASH)
			fprintf(stderr, "not bad-hash: %s\n", bad_hash[i]);
		t_assert_int(rev(bad_hash[i], T0, &o), SRS_BAD_HASH);
		t_assert(o == NULL);
	}
	t_end();

	t_begin("malformed SRS values are syntax errors");
	for (size_t i = 0; i < sizeof(bad_syntax) / sizeof(*bad_syntax);
	    i++) {
		if (rev(bad_syntax[i], T0, &o) != SRS_BAD_SYNTAX)
			fprintf(stderr, "not syntax: %s\n", bad_syntax[i]);
		t_assert_int(rev(bad_syntax[i], T0, &o), SRS_BAD_SYNTAX);
		t_assert(o == NULL);
	}
	t_end();

	t_begin("another secret does not verify ours");
	t_assert_int(srs_init(&other, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab"), 0);
	a = srs_forward(&key, "Alice@example.org", "fwd.test", T0);
	t_assert_int(srs_reverse(&other, a, T0, &o), SRS_BAD_HASH);
	free(a);
	t_assert_int(srs_init(&other, "xyz"), -1);
	t_assert_int(srs_init(&other, "g0000000000000000000000000000000"
	    "00000000000000000000000000000000"), -1);
	t_end();
}

static void
test_expiry(void)
{
	const char *a = "SRS0=7NWWP24V=G3=example.org=Alice@fwd.test";
	char *o, *b;

	t_begin("age limit: 21 days ok, 22 expired, future expired");
	t_assert_int(rev(a, T0 + SRS_MAX_AGE_DAYS * DAY, &o), SRS_OK);
	free(o);
	t_assert_int(rev(a, T0 + (SRS_MAX_AGE_DAYS + 1) * DAY, &o),
	    SRS_EXPIRED);
	t_assert(o == NULL);
	t_assert_int(rev(a, T0 - DAY, &o), SRS_EXPIRED);
	/* A stamp is only 10 bits of days: 1024 days later it is "new". */
	t_assert_int(rev(a, T0 + 1024 * (int64_t)DAY, &o), SRS_OK);
	free(o);
	t_end();

	t_begin("age across the stamp's wrap (day 1023 -> 1029)");
	/* day 19455 = 18 * 1024 + 1023: stamp "77" */
	b = srs_forward(&key, "a@b.test", "fwd.test", 19455LL * DAY + 5);
	t_assert(b != NULL && strncmp(b + 13, "=77=", 4) == 0);
	t_assert_int(rev(b, (19455LL + 6) * DAY, &o), SRS_OK);
	t_assert_str(o, "a@b.test");
	free(o);
	t_assert_int(rev(b, (19455LL + 22) * DAY, &o), SRS_EXPIRED);
	free(b);
	t_end();
}

static void
test_srs1(void)
{
	const char *fwd1 = "SRS0=ABCDEFGH=G3=example.org=alice@fwd1.test";
	char *a, *b, *o;

	t_begin("forwarding an SRS0 sender gives SRS1 (libsrs2 shape)");
	a = srs_forward(&key, fwd1, "fwd.test", T0);
	t_assert_str(a,
	    "SRS1=LVHRPHEF=fwd1.test==ABCDEFGH=G3=example.org=alice@fwd.test");
	t_assert_int(rev(a, T0 + 400 * (int64_t)DAY, &o), SRS_OK);
	t_assert_str(o, fwd1);
	free(o);
	t_end();

	t_begin("forwarding an SRS1 sender keeps the first forwarder");
	b = srs_forward(&key, "SRS1=XXXX=fwd1.test==ABCDEFGH=G3=example.org="
	    "alice@fwd2.test", "fwd.test", T0);
	t_assert_str(b, a);
	free(b);
	a[6] = a[6] == 'A' ? 'B' : 'A';
	t_assert_int(rev(a, T0, &o), SRS_BAD_HASH);
	free(a);
	/* Not libsrs2's SRS1 shape: wrapped as a plain sender. */
	b = srs_forward(&key, "SRS1=x@odd.test", "fwd.test", T0);
	t_assert(b != NULL && strncmp(b, "SRS0=", 5) == 0);
	t_assert_int(rev(b, T0, &o), SRS_OK);
	t_assert_str(o, "SRS1=x@odd.test");
	free(o);
	free(b);
	t_end();
}

static void
test_long_local(void)
{
	struct smtp_path p;
	const char *err;

	t_begin("SRS local parts may pass 64 octets, others may not");
	memset(&p, 0, sizeof(p));
	t_assert_int(smtp_path_parse("TO:<SRS0=7NWWP24V=G3=a-rather-long-"
	    "domain.example.org=a.rather.long.local.part@Fwd.Test>",
	    SMTP_PATH_RCPT, false, &p, &err), SMTP_PATH_OK);
	t_assert_str(p.addr, "SRS0=7NWWP24V=G3=a-rather-long-domain."
	    "example.org=a.rather.long.local.part@fwd.test");
	smtp_path_clear(&p);
	t_assert_int(smtp_path_parse("FROM:<srs1=LVHRPHEF=fwd1.test==ABCDEFGH"
	    "=G3=example.org=alice.with.a.long.name@fwd.test>",
	    SMTP_PATH_MAIL, false, &p, &err), SMTP_PATH_OK);
	smtp_path_clear(&p);
	t_assert_int(smtp_path_parse("TO:<XRS0=7NWWP24V=G3=a-rather-long-"
	    "domain.example.org=a.rather.long.local.part@fwd.test>",
	    SMTP_PATH_RCPT, false, &p, &err), SMTP_PATH_ERR_ADDRESS);
	smtp_path_clear(&p);
	t_end();
}

static void
test_store_secret(void)
{
	char dir[] = "/tmp/test_srs.XXXXXX", path[64], *v;
	struct store *st, *st2;
	struct srs k1, k2;
	const char *err;
	char *a, *o, *s;
	enum srs_result res;

	t_begin("the secret is made once and kept in the store");
	t_assert(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/db.sqlite", dir);
	st = store_open(path, &err);
	t_assert(st != NULL && store_migrate(st) == 0);
	t_assert_int(store_setting_get(st, FORWARD_SETTING, &v), 1);
	t_assert(v == NULL);
	t_assert_int(forward_srs_load(st, &k1, &err), 0);
	t_assert_int(store_setting_get(st, FORWARD_SETTING, &v), 0);
	t_assert(v != NULL && strlen(v) == SRS_SECRET_HEX_LEN);
	free(v);
	st2 = store_open(path, &err);
	t_assert_int(forward_srs_load(st2, &k2, &err), 0);
	t_assert(memcmp(k1.secret, k2.secret, SRS_SECRET_LEN) == 0);
	t_assert(memcmp(k1.secret, key.secret, SRS_SECRET_LEN) != 0);
	/* The first writer wins. */
	t_assert_int(store_setting_init(st2, "x", "one", &v), 0);
	t_assert_str(v, "one");
	free(v);
	t_assert_int(store_setting_init(st, "x", "two", &v), 0);
	t_assert_str(v, "one");
	free(v);
	t_end();

	t_begin("forward policy: our domains, senders and RCPTs");
	t_assert_int(store_domain_add(st, "fwd.test"), 0);
	t_assert_int(forward_sender(st, &k1, "", "fwd.test", T0, &s), 0);
	t_assert(s == NULL);
	/* Our own domain's senders need no SRS. */
	t_assert_int(forward_sender(st, &k1, "u@fwd.test", "fwd.test", T0,
	    &s), 0);
	t_assert(s == NULL);
	t_assert_int(forward_sender(st, &k1, "u@example.org", "fwd.test",
	    T0, &s), 0);
	t_assert(s != NULL && strncmp(s, "SRS0=", 5) == 0);
	t_assert_int(forward_rcpt(st, &k1, s, T0, &o, &res), 1);
	t_assert_str(o, "u@example.org");
	free(o);
	t_assert_int(forward_rcpt(st, &k1, s, T0 + 30 * DAY, &o, &res), 2);
	t_assert_int(res, SRS_EXPIRED);
	/* Another secret's address at our domain: refused. */
	a = srs_forward(&key, "u@example.org", "fwd.test", T0);
	t_assert_int(forward_rcpt(st, &k1, a, T0, &o, &res), 2);
	t_assert_int(res, SRS_BAD_HASH);
	free(a);
	/* SRS at someone else's domain is not ours to judge. */
	a = srs_forward(&k1, "u@example.org", "other.test", T0);
	t_assert_int(forward_rcpt(st, &k1, a, T0, &o, &res), 0);
	t_assert_int(forward_dsn_rcpt(st, &k1, a, T0, &o, &res), 0);
	free(a);
	/* A DSN is judged as of the time the copy was queued. */
	t_assert_int(forward_dsn_rcpt(st, &k1, s, T0, &o, &res), 1);
	t_assert_str(o, "u@example.org");
	free(o);
	t_assert_int(forward_rcpt(st, &k1, "alice@fwd.test", T0, &o, &res),
	    0);
	free(s);
	t_end();

	store_close(st);
	store_close(st2);
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	t_assert(system(path) == 0);
}

int
main(void)
{
	if (srs_init(&key, KEY_HEX) != 0) {
		fprintf(stderr, "srs_init\n");
		return 1;
	}
	test_forward_shape();
	test_round_trip();
	test_case();
	test_tampered();
	test_expiry();
	test_srs1();
	test_long_local();
	test_store_secret();
	return t_exit();
}
