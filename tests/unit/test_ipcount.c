/*
 * The one per-client key (common/clientkey.c) and the tables keyed by it:
 * sessions per client (common/ipcount.c) and the failed-login penalty
 * (common/auth.c). IPv4 counts per address, IPv6 per /64, IPv4-mapped IPv6
 * as IPv4; a released key starts again from one. (The SMTP connect rate,
 * the third table, is tested with real sessions in test_smtp_session.c.)
 */
#include "common/auth.h"
#include "common/clientkey.h"
#include "common/ipcount.h"
#include "common/util.h"
#include "t.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

static struct client_key
key(const char *ip)
{
	struct client_key k;

	client_key_from_ip(&k, ip);
	return k;
}

static struct client_key
key_sa(const char *ip)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	struct client_key k;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1)
		s4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1)
		s6->sin6_family = AF_INET6;
	client_key_from_sockaddr(&k, (struct sockaddr *)&ss);
	return k;
}

static bool
same(const char *a, const char *b)
{
	struct client_key ka = key(a), kb = key(b);

	return client_key_equal(&ka, &kb);
}

static void
test_key(void)
{
	struct client_key a, b;
	struct sockaddr_un un;

	t_begin("client key: IPv4 exact, IPv6 /64, mapped IPv4");
	t_assert(same("192.0.2.1", "192.0.2.1"));
	t_assert(!same("192.0.2.1", "192.0.2.2"));
	t_assert(same("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"));
	t_assert(!same("2001:db8:1:2::1", "2001:db8:1:3::1"));
	t_assert(!same("2001:db8:1:2::1", "2001:db9:1:2::1"));
	t_assert(same("::ffff:192.0.2.1", "192.0.2.1"));
	t_assert(!same("::ffff:192.0.2.1", "::ffff:192.0.2.2"));
	/* 0.0.0.0 is not ::/64 */
	t_assert(!same("0.0.0.0", "::"));
	t_assert(!same("::1", "127.0.0.1"));
	t_assert(same("unix-socket", "unix-socket"));
	t_assert(!same("unix-socket", "unix-socket2"));
	t_assert(!same("unix-socket", "192.0.2.1"));
	t_end();

	t_begin("client key: sockaddr and text agree");
	a = key_sa("192.0.2.7");
	b = key("192.0.2.7");
	t_assert(client_key_equal(&a, &b));
	a = key_sa("2001:db8::1");
	b = key("2001:db8::ffff");
	t_assert(client_key_equal(&a, &b));
	a = key_sa("::ffff:198.51.100.1");
	b = key("198.51.100.1");
	t_assert(client_key_equal(&a, &b));
	a = key_sa("2001:db8:0:1::1");
	t_assert(!client_key_equal(&a, &b));
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	client_key_from_sockaddr(&a, (struct sockaddr *)&un);
	client_key_from_sockaddr(&b, NULL);
	t_assert(client_key_equal(&a, &b));
	b = key("local");
	t_assert(client_key_equal(&a, &b));
	t_end();
}

static void
test_ipcount(void)
{
	struct ipcount *t = ipcount_new();
	struct ipcount_entry *a1, *a2, *b, *v6a, *v6b, *v6c, *e[3000];
	struct client_key k;
	char ip[64];

	t_begin("counts per key, released keys start over");
	k = key("192.0.2.1");
	a1 = ipcount_ref(t, &k);
	a2 = ipcount_ref(t, &k);
	k = key("2001:db8::1");
	b = ipcount_ref(t, &k);
	t_assert(a1 == a2);
	t_assert_int(ipcount_n(a1), 2);
	t_assert_int(ipcount_n(b), 1);
	ipcount_unref(t, a2);
	t_assert_int(ipcount_n(a1), 1);
	ipcount_unref(t, a1);
	ipcount_unref(t, b);
	/* Freed: a new entry starts at one. */
	k = key("192.0.2.1");
	a1 = ipcount_ref(t, &k);
	t_assert_int(ipcount_n(a1), 1);
	ipcount_unref(t, a1);
	t_end();

	t_begin("IPv6: one /64 shares a count, another /64 does not");
	k = key("2001:db8:5:6::1");
	v6a = ipcount_ref(t, &k);
	k = key_sa("2001:db8:5:6:aaaa::2");
	v6b = ipcount_ref(t, &k);
	k = key("2001:db8:5:7::1");
	v6c = ipcount_ref(t, &k);
	t_assert(v6a == v6b);
	t_assert_int(ipcount_n(v6a), 2);
	t_assert(v6c != v6a);
	t_assert_int(ipcount_n(v6c), 1);
	k = key("192.0.2.8");
	a1 = ipcount_ref(t, &k);
	k = key("192.0.2.9");
	a2 = ipcount_ref(t, &k);
	t_assert(a1 != a2);
	t_assert_int(ipcount_n(a1), 1);
	ipcount_unref(t, a1);
	ipcount_unref(t, a2);
	ipcount_unref(t, v6a);
	ipcount_unref(t, v6b);
	ipcount_unref(t, v6c);
	t_end();

	t_begin("many addresses");
	for (int i = 0; i < 3000; i++) {
		snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 256, i % 256);
		k = key(ip);
		e[i] = ipcount_ref(t, &k);
	}
	for (int i = 0; i < 3000; i++)
		t_assert_int(ipcount_n(e[i]), 1);
	k = key("10.0.11.183");
	t_assert(ipcount_ref(t, &k) == e[11 * 256 + 183]);
	t_assert_int(ipcount_n(e[11 * 256 + 183]), 2);
	ipcount_unref(t, e[11 * 256 + 183]);
	for (int i = 0; i < 3000; i++)
		ipcount_unref(t, e[i]);
	t_end();
	ipcount_free(t);
}

static uint64_t test_now;

static uint64_t
test_clock(void)
{
	return test_now;
}

static void
test_penalty(void)
{
	struct client_key k;

	auth_penalty_set_clock(test_clock);
	auth_penalty_reset();
	t_begin("penalty: one /64 shares it, IPv4 is exact");
	k = key("2001:db8:9:9::1");
	auth_penalty_fail(&k);
	k = key_sa("2001:db8:9:9:1:2:3:4");
	t_assert_int(auth_penalty_delay_ms(&k), 1000);
	auth_penalty_fail(&k);
	k = key("2001:db8:9:9::77");
	t_assert_int(auth_penalty_delay_ms(&k), 2000);
	k = key("2001:db8:9:a::1");
	t_assert_int(auth_penalty_delay_ms(&k), 0);
	k = key("192.0.2.50");
	auth_penalty_fail(&k);
	t_assert_int(auth_penalty_delay_ms(&k), 1000);
	k = key("::ffff:192.0.2.50");
	t_assert_int(auth_penalty_delay_ms(&k), 1000);
	k = key("192.0.2.51");
	t_assert_int(auth_penalty_delay_ms(&k), 0);
	/* A success anywhere in the /64 clears it. */
	k = key("2001:db8:9:9::dead");
	auth_penalty_success(&k);
	k = key("2001:db8:9:9::1");
	t_assert_int(auth_penalty_delay_ms(&k), 0);
	t_end();
	auth_penalty_set_clock(NULL);
	auth_penalty_reset();
}

int
main(void)
{
	test_key();
	test_ipcount();
	test_penalty();
	return t_exit();
}
