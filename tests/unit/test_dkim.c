/*
 * DKIM: carteiro's signatures verify with python3-dkim, python3-dkim's
 * signatures verify in carteiro, a changed body fails, and feeding the
 * message in any pieces gives the same result.
 */
#include "mailauth/dkim.h"
#include "mailauth/dkim_crypto.h"
#include "common/util.h"
#include "t.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const messages[] = {
	/* body ends with CRLF */
	("From: Alice <alice@example.test>\r\nTo: bob@example.test\r\n"
	"Subject: hello\r\nDate: Thu, 26 Nov 2026 12:00:00 +0000\r\n"
	"Message-ID: <1@example.test>\r\n\r\nHello Bob,\r\n\r\nbye.\r\n"),
	/* no final CRLF, trailing whitespace and empty lines */
	("From: alice@example.test\r\nTo: bob@example.test\r\n"
	"Subject: no final newline\r\n\r\nline one  \r\n\t tabbed\t \r\n"
	"\r\n\r\nlast line without crlf"),
	/* 8-bit body */
	("From: alice@example.test\r\nTo: bob@example.test\r\n"
	"Subject: =?utf-8?q?ol=C3=A1?=\r\nMIME-Version: 1.0\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"Content-Transfer-Encoding: 8bit\r\n\r\n"
	"Ol\xc3\xa1, cora\xc3\xa7\xc3\xa3o \xe2\x82\xac\r\n\r\n\r\n"),
	/* long folded headers */
	("From: alice@example.test\r\nTo: bob@example.test,\r\n"
	"  carol@example.test,\r\n\tdave@example.test\r\n"
	"Subject: a very long subject line that goes on and on and on and\r\n"
	" on and on until it has to be folded\r\n   more than once\r\n"
	"X-Other:   spaced    value   \r\n\r\nbody\r\n"),
	/* empty body */
	("From: alice@example.test\r\nTo: bob@example.test\r\n"
	"Subject: empty\r\n\r\n"),
};

/* RFC 8463 Appendix A: keys (A.2) and the message signed with both
 * algorithms (A.3), byte for byte. */
static const char rfc8463_seed[] =
    "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";
static const char rfc8463_ed_txt[] =
    "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
static const char rfc8463_rsa_txt[] =
    "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWR"
    "iGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutAC"
    "DfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3"
    "Ip3G+2kryOTIKT+l/K4w3QIDAQAB";
static const char rfc8463_msg[] =
    "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
    " d=football.example.com; i=@football.example.com;\r\n"
    " q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
    " subject : date : message-id : from : subject : date;\r\n"
    " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
    " b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\r\n"
    " Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==\r\n"
    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n"
    " d=football.example.com; i=@football.example.com;\r\n"
    " q=dns/txt; s=test; t=1528637909; h=from : to : subject :\r\n"
    " date : message-id : from : subject : date;\r\n"
    " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
    " b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3\r\n"
    " DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz\r\n"
    " dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=\r\n"
    "From: Joe SixPack <joe@football.example.com>\r\n"
    "To: Suzie Q <suzie@shopping.example.net>\r\n"
    "Subject: Is dinner ready?\r\n"
    "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
    "Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
    "\r\n"
    "Hi.\r\n"
    "\r\n"
    "We lost the game.  Are you hungry yet?\r\n"
    "\r\n"
    "Joe.\r\n"
    "\r\n";

static char tmpdir[] = "/tmp/carteiro-dkim-XXXXXX";

static void
write_file(const char *name, const char *data, size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "wb");
	fwrite(data, 1, len, f);
	fclose(f);
}

static char *
read_file(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = xmalloc((size_t)n + 1);
	if (fread(buf, 1, (size_t)n, f) != (size_t)n)
		n = 0;
	buf[n] = '\0';
	fclose(f);
	*len_r = (size_t)n;
	return buf;
}

static char *
sign_msg(const char *msg, const struct dkim_key *k, size_t piece)
{
	struct dkim_msg *m = dkim_msg_new();
	size_t len = strlen(msg);
	char *sig, *out;

	for (size_t i = 0; i < len; i += piece)
		dkim_msg_update(m, msg + i, len - i < piece ? len - i : piece);
	sig = dkim_sign(m, k, 1790000000);
	dkim_msg_free(m);
	if (sig == NULL)
		return NULL;
	out = xasprintf("%s%s", sig, msg);
	free(sig);
	return out;
}

static enum dkim_result
verify_msg_why(const char *msg, size_t len, size_t idx, const char *txt,
    size_t piece, const char **why_r)
{
	struct dkim_msg *m = dkim_msg_new();
	enum dkim_result r;

	for (size_t i = 0; i < len; i += piece)
		dkim_msg_update(m, msg + i, len - i < piece ? len - i : piece);
	*why_r = "";
	r = dkim_verify(m, idx, txt, why_r);
	dkim_msg_free(m);
	return r;
}

static enum dkim_result
verify_msg(const char *msg, size_t len, size_t idx, const char *txt,
    size_t piece)
{
	const char *why;

	return verify_msg_why(msg, len, idx, txt, piece, &why);
}

/*
 * RFC 8301 3.2: a signature made with an RSA key of `bits` bits, the key
 * made now (never a committed key), checked against its own record.
 */
static enum dkim_result
verify_rsa_bits(unsigned bits, const char **why_r)
{
	char *priv = NULL, *txt = NULL, *s;
	struct dkim_key *k;
	enum dkim_result r = DKIM_NEUTRAL;

	*why_r = "no key";
	t_assert(dkim_privkey_generate_rsa(bits, &priv) == 0);
	if (priv == NULL)
		return r;
	t_assert(dkim_txt_for_key(DKIM_ALG_RSA, priv, &txt) == 0);
	k = dkim_key_load(DKIM_ALG_RSA, "example.test", "small", priv);
	t_assert(k != NULL);
	if (k != NULL && txt != NULL) {
		s = sign_msg(messages[0], k, 1 << 20);
		t_assert(s != NULL);
		if (s != NULL)
			r = verify_msg_why(s, strlen(s), 0, txt, 13, why_r);
		free(s);
	}
	dkim_key_free(k);
	free(txt);
	free(priv);
	return r;
}

int
main(void)
{
	char *priv[DKIM_ALG_COUNT], *txt[DKIM_ALG_COUNT];
	struct dkim_key *key[DKIM_ALG_COUNT];
	const char *srcdir = getenv("CARTEIRO_SRC");
	char cmd[1024];

	if (mkdtemp(tmpdir) == NULL)
		return 1;
	if (srcdir == NULL)
		srcdir = ".";

	t_begin("RFC 8463 A: the Ed25519 key's public half");
	{
		char *t = NULL;

		t_assert(dkim_txt_for_key(DKIM_ALG_ED25519, rfc8463_seed,
		    &t) == 0);
		t_assert_str(t, rfc8463_ed_txt);
		free(t);
	}
	t_end();

	t_begin("RFC 8463 A.3: both signatures verify, in any pieces");
	{
		size_t len = strlen(rfc8463_msg);
		const size_t pieces[] = { len, 1, 3, 64 };

		for (size_t i = 0; i < nitems(pieces); i++) {
			t_assert_int(verify_msg(rfc8463_msg, len, 0,
			    rfc8463_ed_txt, pieces[i]), DKIM_PASS);
			t_assert_int(verify_msg(rfc8463_msg, len, 1,
			    rfc8463_rsa_txt, pieces[i]), DKIM_PASS);
		}
		/* Swapped keys and a changed byte fail. */
		t_assert_int(verify_msg(rfc8463_msg, len, 0, rfc8463_rsa_txt,
		    len), DKIM_PERMERROR);
		char *bad = xstrdup(rfc8463_msg);
		char *p = strstr(bad, "hungry");
		p[0] = 'H';
		t_assert_int(verify_msg(bad, len, 0, rfc8463_ed_txt, len),
		    DKIM_FAIL);
		t_assert_int(verify_msg(bad, len, 1, rfc8463_rsa_txt, len),
		    DKIM_FAIL);
		free(bad);
	}
	t_end();

	t_begin("key record selection among a selector's TXT records");
	{
		static const struct {
			const char *txt;
			bool key;
		} recs[] = {
			{ "v=DKIM1; k=ed25519; p=abc", true },
			{ "k=rsa; p=abc", true },
			{ "p=", true },		/* revoked: still the key */
			{ "v=DKIM1", true },	/* no p=: permerror later */
			{ "v=spf1 -all", false },
			{ "google-site-verification=abc", false },
			{ "v=DKIM2; p=abc", false },
			{ "P=abc", false },	/* tag names are case-sensitive */
			{ "", false },
		};
		for (size_t i = 0; i < nitems(recs); i++)
			t_assert(dkim_is_key_record(recs[i].txt) ==
			    recs[i].key);

		struct dkim_msg *m = dkim_msg_new();
		size_t len = strlen(rfc8463_msg);
		const char *why = NULL;
		const char *two[] = { "v=spf1 -all", rfc8463_ed_txt };
		const char *revoked_first[] = { "v=DKIM1; k=ed25519; p=",
		    rfc8463_ed_txt };
		const char *none[] = { "hello", "v=spf1 -all" };
		const char *wrong[] = { rfc8463_rsa_txt, "x=y" };

		dkim_msg_update(m, rfc8463_msg, len);
		t_assert_int(dkim_verify_records(m, 0, two, 2, &why),
		    DKIM_PASS);
		t_assert_str(why, "good signature");
		t_assert_int(dkim_verify_records(m, 0, revoked_first, 2, &why),
		    DKIM_PASS);
		t_assert_int(dkim_verify_records(m, 0, none, 2, &why),
		    DKIM_PERMERROR);
		t_assert_str(why, "no DKIM key record at the selector");
		t_assert_int(dkim_verify_records(m, 0, wrong, 2, &why),
		    DKIM_PERMERROR);
		t_assert_str(why, "key type does not match signature");
		t_assert_str(dkim_result_str(DKIM_PERMERROR), "permerror");
		const char *d, *s, *a;
		dkim_msg_signature_info(m, 1, &d, &s, &a);
		t_assert_str(d, "football.example.com");
		t_assert_str(s, "test");
		t_assert_str(a, "rsa-sha256");
		dkim_msg_signature_info(m, 2, &d, &s, &a);
		t_assert(d == NULL && s == NULL && a == NULL);
		dkim_msg_free(m);
	}
	t_end();

	t_begin("RFC 8463 key signs deterministically (RFC 8032)");
	{
		struct dkim_key *k = dkim_key_load(DKIM_ALG_ED25519,
		    "football.example.com", "brisbane", rfc8463_seed);
		char *s1, *s2;

		t_assert(k != NULL);
		s1 = sign_msg(messages[0], k, 1 << 20);
		s2 = sign_msg(messages[0], k, 3);
		t_assert(s1 != NULL && s2 != NULL);
		t_assert_str(s1, s2);
		t_assert_int(verify_msg(s1, strlen(s1), 0, rfc8463_ed_txt,
		    strlen(s1)), DKIM_PASS);
		write_file("rfc8463-signed.eml", s1, strlen(s1));
		/* Known answer, made with libsodium before DKIM moved to
		 * GnuTLS: the same key signs the same bytes. */
		static const char want[] = "DKIM-Signature: v=1; "
		    "a=ed25519-sha256; c=relaxed/relaxed;\r\n"
		    "\td=football.example.com; s=brisbane; t=1790000000;\r\n"
		    "\th=from:from:subject:date:to:message-id;\r\n"
		    "\tbh=8JaQO8GKVE7TmGUGatr6iOYwlGyY/Go8Hbi5f8YUVDM=;\r\n"
		    "\tb=UVZP5MXNErtwb33ewY4hS3kzZRE/bEkAwW7quo5TopH0zOfZwInD"
		    "npCKbqWei53g5+Fgwuvh\r\n"
		    "\t KfsV4qE7tEP+Ag==\r\n"
		    "From: Alice";

		t_assert(s1 != NULL && strncmp(s1, want, strlen(want)) == 0);
		free(s1);
		free(s2);
		dkim_key_free(k);
	}
	t_end();

	t_begin("keygen both algorithms");
	for (int a = 0; a < DKIM_ALG_COUNT; a++) {
		t_assert(dkim_keygen((enum dkim_alg)a, &priv[a], &txt[a]) == 0);
		key[a] = dkim_key_load((enum dkim_alg)a, "example.test",
		    dkim_alg_name((enum dkim_alg)a), priv[a]);
		t_assert(key[a] != NULL);
		char fn[64];
		snprintf(fn, sizeof(fn), "%s.txt", dkim_alg_name((enum dkim_alg)a));
		write_file(fn, txt[a], strlen(txt[a]));
	}
	t_assert(strncmp(txt[DKIM_ALG_ED25519], "v=DKIM1; k=ed25519; p=", 22) == 0);
	t_assert(strncmp(txt[DKIM_ALG_RSA], "v=DKIM1; k=rsa; p=MII", 21) == 0);
	t_end();

	t_begin("sign, verify ourselves, pieces do not matter, tamper fails");
	for (size_t i = 0; i < nitems(messages); i++) {
		for (int a = 0; a < DKIM_ALG_COUNT; a++) {
			char *s1 = sign_msg(messages[i], key[a], 1 << 20);
			char *s2 = sign_msg(messages[i], key[a], 1);
			char *s3 = sign_msg(messages[i], key[a], 7);
			t_assert(s1 != NULL && s2 != NULL && s3 != NULL);
			if (s1 == NULL || s2 == NULL || s3 == NULL)
				continue;
			/* Ed25519 is deterministic: identical fields. */
			if (a == DKIM_ALG_ED25519) {
				t_assert_str(s1, s2);
				t_assert_str(s1, s3);
			}
			size_t len = strlen(s1);
			t_assert_int(verify_msg(s1, len, 0, txt[a], len), DKIM_PASS);
			t_assert_int(verify_msg(s1, len, 0, txt[a], 1), DKIM_PASS);
			t_assert_int(verify_msg(s3, len, 0, txt[a], 5), DKIM_PASS);
			/* wrong key type */
			t_assert(verify_msg(s1, len, 0, txt[1 - a], len) != DKIM_PASS);
			/* modified body */
			char *bad = xasprintf("%sX", s1);
			t_assert_int(verify_msg(bad, len + 1, 0, txt[a], len + 1),
			    DKIM_FAIL);
			free(bad);
			/* modified signed header */
			bad = xstrdup(s1);
			char *subj = strstr(bad, "Subject: ");
			if (subj != NULL)
				subj[9] ^= 0x20;
			t_assert_int(verify_msg(bad, len, 0, txt[a], len), DKIM_FAIL);
			free(bad);
			/* a second From added above: oversigning catches it */
			bad = xasprintf("From: mallory@evil.test\r\n%s", s1);
			t_assert_int(verify_msg(bad, strlen(bad), 0, txt[a],
			    strlen(bad)), DKIM_FAIL);
			free(bad);

			char fn[64];
			snprintf(fn, sizeof(fn), "signed-%zu-%s.eml", i,
			    dkim_alg_name((enum dkim_alg)a));
			write_file(fn, s1, len);
			free(s1);
			free(s2);
			free(s3);
		}
		/* Both signatures on one message. */
		char *both = sign_msg(messages[i], key[DKIM_ALG_RSA], 1 << 20);
		char *both2 = sign_msg(both, key[DKIM_ALG_ED25519], 1 << 20);
		size_t bl = strlen(both2);
		t_assert_int(verify_msg(both2, bl, 0, txt[DKIM_ALG_ED25519], bl),
		    DKIM_PASS);
		t_assert_int(verify_msg(both2, bl, 1, txt[DKIM_ALG_RSA], bl),
		    DKIM_PASS);
		char fn[64];
		snprintf(fn, sizeof(fn), "signed-%zu-both.eml", i);
		write_file(fn, both2, bl);
		free(both);
		free(both2);
	}
	t_end();

	t_begin("RFC 8301 3.2: RSA keys under 1024 bits never verify");
	{
		const char *why;

		t_assert_int(verify_rsa_bits(512, &why), DKIM_FAIL);
		t_assert_str(why, "RSA key shorter than 1024 bits (RFC 8301)");
		t_assert_int(verify_rsa_bits(768, &why), DKIM_FAIL);
		t_assert_str(why, "RSA key shorter than 1024 bits (RFC 8301)");
		t_assert_int(verify_rsa_bits(1024, &why), DKIM_PASS);
		t_assert_str(why, "good signature");
	}
	t_end();

	t_begin("revoked and malformed key records");
	{
		char *s = sign_msg(messages[0], key[DKIM_ALG_ED25519], 100);
		t_assert_int(verify_msg(s, strlen(s), 0, "v=DKIM1; k=ed25519; p=",
		    strlen(s)), DKIM_PERMERROR);
		t_assert_int(verify_msg(s, strlen(s), 0, "v=DKIM1; k=ed25519",
		    strlen(s)), DKIM_PERMERROR);
		t_assert_int(verify_msg(s, strlen(s), 3, txt[0], strlen(s)),
		    DKIM_NEUTRAL);
		free(s);
	}
	t_end();

	t_begin("python3-dkim verifies carteiro's signatures");
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s/tests/unit/dkim_interop.py"
	    " verify %s", srcdir, tmpdir);
	t_assert(system(cmd) == 0);
	t_end();

	t_begin("carteiro verifies python3-dkim's signatures");
	for (size_t i = 0; i < nitems(messages); i++) {
		char fn[64];
		snprintf(fn, sizeof(fn), "plain-%zu.eml", i);
		write_file(fn, messages[i], strlen(messages[i]));
	}
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s/tests/unit/dkim_interop.py"
	    " sign %s", srcdir, tmpdir);
	t_assert(system(cmd) == 0);
	{
		char path[512];
		size_t len, n = 0;
		char *pyrsa, *pyed, *pytxt[DKIM_ALG_COUNT];
		snprintf(path, sizeof(path), "%s/py-rsa.key", tmpdir);
		pyrsa = read_file(path, &len);
		snprintf(path, sizeof(path), "%s/py-ed25519.key", tmpdir);
		pyed = read_file(path, &len);
		t_assert(pyrsa != NULL && pyed != NULL);
		t_assert(dkim_txt_for_key(DKIM_ALG_RSA, pyrsa, &pytxt[DKIM_ALG_RSA]) == 0);
		t_assert(dkim_txt_for_key(DKIM_ALG_ED25519, pyed,
		    &pytxt[DKIM_ALG_ED25519]) == 0);
		DIR *dir = opendir(tmpdir);
		struct dirent *de;
		while ((de = readdir(dir)) != NULL) {
			if (strncmp(de->d_name, "py-", 3) != 0 ||
			    strstr(de->d_name, ".eml") == NULL)
				continue;
			enum dkim_alg a = strstr(de->d_name, "ed25519") ?
			    DKIM_ALG_ED25519 : DKIM_ALG_RSA;
			snprintf(path, sizeof(path), "%s/%s", tmpdir, de->d_name);
			char *msg = read_file(path, &len);
			enum dkim_result r = verify_msg(msg, len, 0, pytxt[a], len);
			if (r != DKIM_PASS)
				fprintf(stderr, "%s: %d\n", de->d_name, r);
			t_assert_int(r, DKIM_PASS);
			/* and a modified body fails */
			char *bad = xasprintf("%.*sX\r\n", (int)len, msg);
			t_assert_int(verify_msg(bad, len + 3, 0, pytxt[a], len + 3),
			    DKIM_FAIL);
			free(bad);
			free(msg);
			n++;
		}
		closedir(dir);
		t_assert_int(n, nitems(messages) * 6);
		free(pyrsa);
		free(pyed);
		free(pytxt[0]);
		free(pytxt[1]);
	}
	t_end();

	for (int a = 0; a < DKIM_ALG_COUNT; a++) {
		dkim_key_free(key[a]);
		free(priv[a]);
		free(txt[a]);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		return 1;
	return t_exit();
}
