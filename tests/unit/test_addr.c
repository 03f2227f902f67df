/*
 * common/addr.c: table-driven domain and address normalisation, IDN,
 * length limits, bad characters, UTF-8 validity.
 */
#include "common/addr.h"
#include "common/util.h"
#include "t.h"

#include <stdlib.h>
#include <string.h>

int main(void);

struct addr_case {
	const char *in;
	const char *out;	/* NULL: must be rejected */
};

static const struct addr_case domain_cases[] = {
	{ "example.test", "example.test" },
	{ "Example.TEST", "example.test" },
	{ "localhost", "localhost" },
	{ "a.b.c.d.e", "a.b.c.d.e" },
	{ "mail-1.example.test", "mail-1.example.test" },
	{ "1example.test", "1example.test" },
	{ "123.example", "123.example" },
	{ "b\xc3\xbc" "cher.example", "xn--bcher-kva.example" },
	{ "B\xc3\x9c" "CHER.Example", "xn--bcher-kva.example" },
	{ "xn--bcher-kva.example", "xn--bcher-kva.example" },
	{ "XN--BCHER-KVA.EXAMPLE", "xn--bcher-kva.example" },
	{ "fa\xc3\x9f.de", "xn--fa-hia.de" },	/* nontransitional: keeps sharp s */
	/* NFC: u + combining diaeresis == u-umlaut */
	{ "bu\xcc\x88" "cher.example", "xn--bcher-kva.example" },
	{ "\xe4\xbe\x8b\xe3\x81\x88.\xe3\x83\x86\xe3\x82\xb9\xe3\x83\x88",
	  "xn--r8jz45g.xn--zckzah" },
	{ "", NULL },
	{ ".", NULL },
	{ "example.test.", NULL },
	{ ".example.test", NULL },
	{ "example..test", NULL },
	{ "-example.test", NULL },
	{ "example-.test", NULL },
	{ "exa_mple.test", NULL },
	{ "exa mple.test", NULL },
	{ "exa$mple.test", NULL },
	{ "exa@mple.test", NULL },
	{ "exa\tmple.test", NULL },
	{ "[192.0.2.1]", NULL },
	{ "192.0.2.1", NULL },
	{ "example.123", NULL },
	{ "xn--zz.example", NULL },		/* bad punycode */
	{ "\xf0\x9f\x98\x80.example", NULL },	/* emoji: disallowed */
	{ "\xff.example", NULL },		/* not UTF-8 */
	{ "\xc3.example", NULL },		/* truncated UTF-8 */
	{ "\xc0\xae.example", NULL },		/* overlong */
	{ "\xed\xa0\x80.example", NULL },	/* surrogate */
};

static const struct addr_case address_cases[] = {
	{ "alice@example.test", "alice@example.test" },
	{ "Alice@Example.TEST", "Alice@example.test" },	/* local kept */
	{ "a.b.c@example.test", "a.b.c@example.test" },
	{ "a+tag@example.test", "a+tag@example.test" },
	{ "!#$%&'*+-/=?^_`{|}~@example.test", "!#$%&'*+-/=?^_`{|}~@example.test" },
	{ "\"john doe\"@example.test", "\"john doe\"@example.test" },
	{ "\"a@b\"@example.test", "\"a@b\"@example.test" },
	{ "\"a\\\"b\"@example.test", "\"a\\\"b\"@example.test" },
	{ "\"\"@example.test", "\"\"@example.test" },
	{ "j\xc3\xbcrgen@b\xc3\xbc" "cher.example",
	  "j\xc3\xbcrgen@xn--bcher-kva.example" },	/* SMTPUTF8 */
	{ "postmaster@localhost", "postmaster@localhost" },
	{ "", NULL },
	{ "alice", NULL },
	{ "@example.test", NULL },
	{ "alice@", NULL },
	{ "alice@@example.test", NULL },
	{ "a@b@example.test", NULL },
	{ ".alice@example.test", NULL },
	{ "alice.@example.test", NULL },
	{ "al..ice@example.test", NULL },
	{ "al ice@example.test", NULL },
	{ "al(ice@example.test", NULL },
	{ "al,ice@example.test", NULL },
	{ "al<ice@example.test", NULL },
	{ "al\\ice@example.test", NULL },
	{ "al\"ice@example.test", NULL },
	{ "\"alice@example.test", NULL },
	{ "\"al\"ice\"@example.test", NULL },
	{ "\"al\\\"@example.test", NULL },
	{ "\"al\x01\"@example.test", NULL },
	{ "al\x7fice@example.test", NULL },
	{ "al\xffice@example.test", NULL },
	{ "alice@exa_mple.test", NULL },
	{ "alice@[192.0.2.1]", NULL },
	{ "alice@example.test.", NULL },
	{ "<alice@example.test>", NULL },
	{ "alice@example.test ", NULL },
};

static void
test_domains(void)
{
	const char *error;
	char *out;
	size_t i;

	t_begin("domain: table");
	for (i = 0; i < nitems(domain_cases); i++) {
		const struct addr_case *c = &domain_cases[i];
		int r;

		out = NULL;
		error = NULL;
		r = addr_normalize_domain(c->in, &out, &error);
		if (c->out == NULL) {
			if (r == 0)
				fprintf(stderr, "accepted %zu: %s -> %s\n", i,
				    c->in, out);
			t_assert_int(r, -1);
			t_assert(out == NULL);
			t_assert(error != NULL && *error != '\0');
		} else {
			if (r != 0)
				fprintf(stderr, "rejected %zu: %s: %s\n", i,
				    c->in, error);
			t_assert_int(r, 0);
			t_assert_str(out, c->out);
		}
		free(out);
	}
	t_end();
}

static void
test_domain_lengths(void)
{
	char buf[600], *out;
	const char *error;
	size_t i;

	t_begin("domain: label and total length limits");
	memset(buf, 'a', 63);
	strcpy(buf + 63, ".test");
	t_assert_int(addr_normalize_domain(buf, &out, &error), 0);
	free(out);
	memset(buf, 'a', 64);
	strcpy(buf + 64, ".test");
	t_assert_int(addr_normalize_domain(buf, &out, &error), -1);

	/* 253 octets: 63 + 1 + 63 + 1 + 63 + 1 + 61 */
	memset(buf, 0, sizeof(buf));
	for (i = 0; i < 253; i++)
		buf[i] = (i == 63 || i == 127 || i == 191) ? '.' : 'a';
	t_assert_int(strlen(buf), 253);
	t_assert_int(addr_normalize_domain(buf, &out, &error), 0);
	free(out);
	buf[253] = 'a';		/* 254 */
	t_assert_int(addr_normalize_domain(buf, &out, &error), -1);

	/* Junk far beyond the limits is refused early. */
	memset(buf, 'a', sizeof(buf) - 1);
	buf[sizeof(buf) - 1] = '\0';
	for (i = 50; i < sizeof(buf) - 1; i += 50)
		buf[i] = '.';
	t_assert_int(addr_normalize_domain(buf, &out, &error), -1);

	/* A U-label whose A-label passes 63 octets. */
	strcpy(buf, "");
	for (i = 0; i < 30; i++)
		strcat(buf, "\xc3\xbc");	/* 30 x u-umlaut */
	strcat(buf, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.test");
	t_assert_int(addr_normalize_domain(buf, &out, &error), -1);
	t_end();
}

static void
test_addresses(void)
{
	const char *error;
	char *out;
	size_t i;

	t_begin("address: table");
	for (i = 0; i < nitems(address_cases); i++) {
		const struct addr_case *c = &address_cases[i];
		int r;

		out = NULL;
		error = NULL;
		r = addr_normalize(c->in, &out, &error);
		if (c->out == NULL) {
			if (r == 0)
				fprintf(stderr, "accepted %zu: %s -> %s\n", i,
				    c->in, out);
			t_assert_int(r, -1);
			t_assert(out == NULL);
			t_assert(error != NULL && *error != '\0');
		} else {
			if (r != 0)
				fprintf(stderr, "rejected %zu: %s: %s\n", i,
				    c->in, error);
			t_assert_int(r, 0);
			t_assert_str(out, c->out);
		}
		free(out);
	}
	t_end();
}

static void
test_address_lengths(void)
{
	char buf[400], *out;
	const char *error;
	size_t i;

	t_begin("address: local part 64 octets, whole address 254");
	memset(buf, 'l', 64);
	strcpy(buf + 64, "@example.test");
	t_assert_int(addr_normalize(buf, &out, &error), 0);
	free(out);
	memset(buf, 'l', 65);
	strcpy(buf + 65, "@example.test");
	t_assert_int(addr_normalize(buf, &out, &error), -1);

	/* 64 + 1 + 189 = 254 */
	memset(buf, 0, sizeof(buf));
	memset(buf, 'l', 64);
	buf[64] = '@';
	for (i = 0; i < 189; i++)
		buf[65 + i] = (i % 60 == 59) ? '.' : 'd';
	t_assert_int(strlen(buf), 254);
	t_assert_int(addr_normalize(buf, &out, &error), 0);
	free(out);
	buf[254] = 'd';
	t_assert_int(addr_normalize(buf, &out, &error), -1);
	t_end();
}

static void
test_helpers(void)
{
	const char *error;

	t_begin("addr_domain, addr_is_utf8, addr_check_local");
	t_assert_str(addr_domain("a@b.test"), "b.test");
	t_assert_str(addr_domain("\"a@b\"@c.test"), "c.test");
	t_assert_str(addr_domain("@c.test"), "c.test");
	t_assert(addr_domain("nodomain") == NULL);
	t_assert(!addr_is_utf8("alice@example.test"));
	t_assert(addr_is_utf8("j\xc3\xbcrgen@example.test"));
	t_assert_int(addr_check_local("alice", 5, &error), 0);
	t_assert_int(addr_check_local("alice", 0, &error), -1);
	t_assert_int(addr_check_local("a\0b", 3, &error), -1);
	t_assert(addr_utf8_valid("\xf4\x8f\xbf\xbf", 4));	/* U+10FFFF */
	t_assert(!addr_utf8_valid("\xf4\x90\x80\x80", 4));	/* > U+10FFFF */
	t_assert(!addr_utf8_valid("\xe0\x80\x80", 3));		/* overlong */
	t_assert(!addr_utf8_valid("\xe2\x82", 2));		/* truncated */
	t_assert(addr_utf8_valid("\xe2\x82\xac", 3));		/* euro */
	t_end();
}

int
main(void)
{
	test_domains();
	test_domain_lengths();
	test_addresses();
	test_address_lengths();
	test_helpers();
	return t_exit();
}
