/*
 * DKIM: carteiro's signatures verify with python3-dkim, python3-dkim's
 * signatures verify in carteiro, a changed body fails, and feeding the
 * message in any pieces gives the same result.
 */
#include "mailauth/dkim.h"
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
verify_msg(const char *msg, size_t len, size_t idx, const char *txt,
    size_t piece)
{
	struct dkim_msg *m = dkim_msg_new();
	const char *why;
	enum dkim_result r;

	for (size_t i = 0; i < len; i += piece)
		dkim_msg_update(m, msg + i, len - i < piece ? len - i : piece);
	r = dkim_verify(m, idx, txt, &why);
	dkim_msg_free(m);
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
