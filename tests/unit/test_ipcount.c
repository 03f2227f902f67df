/*
 * common/ipcount.c: sessions per client address for max_clients_per_ip
 * (smtpd and pop3d): counts per address, independent addresses, and a
 * released address starting again from one.
 */
#include "common/ipcount.h"
#include "t.h"

#include <stdio.h>

int
main(void)
{
	struct ipcount *t = ipcount_new();
	struct ipcount_entry *a1, *a2, *b, *e[3000];
	char ip[48];

	t_begin("counts per address");
	a1 = ipcount_ref(t, "192.0.2.1");
	a2 = ipcount_ref(t, "192.0.2.1");
	b = ipcount_ref(t, "2001:db8::1");
	t_assert(a1 == a2);
	t_assert_int(ipcount_n(a1), 2);
	t_assert_int(ipcount_n(b), 1);
	ipcount_unref(t, a2);
	t_assert_int(ipcount_n(a1), 1);
	ipcount_unref(t, a1);
	ipcount_unref(t, b);
	/* Released: a new entry, counting from one. */
	a1 = ipcount_ref(t, "192.0.2.1");
	t_assert_int(ipcount_n(a1), 1);
	ipcount_unref(t, a1);
	t_end();

	t_begin("many addresses share buckets");
	for (int i = 0; i < 3000; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", i / 65536,
		    i / 256 % 256, i % 256);
		e[i] = ipcount_ref(t, ip);
	}
	for (int i = 0; i < 3000; i++)
		t_assert_int(ipcount_n(e[i]), 1);
	t_assert(ipcount_ref(t, "10.0.11.183") == e[11 * 256 + 183]);
	t_assert_int(ipcount_n(e[11 * 256 + 183]), 2);
	ipcount_unref(t, e[11 * 256 + 183]);
	for (int i = 0; i < 3000; i += 2)
		ipcount_unref(t, e[i]);
	for (int i = 1; i < 3000; i += 2)
		t_assert_int(ipcount_n(e[i]), 1);
	t_end();
	/* Entries still referenced are freed with the table. */
	ipcount_free(t);
	return t_exit();
}
