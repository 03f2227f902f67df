/*
 * Per-address session counters: see ipcount.h. Chained hash table of a
 * fixed bucket count; the number of entries is bounded by the number of
 * sessions (max_clients), so the chains stay short.
 */
#include "common/ipcount.h"

#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define IPCOUNT_BUCKETS	1024

struct ipcount_entry {
	struct ipcount_entry *next;
	unsigned n;
	char ip[48];		/* INET6_ADDRSTRLEN and then some */
};

struct ipcount {
	struct ipcount_entry *buckets[IPCOUNT_BUCKETS];
};

static unsigned
ipcount_hash(const char *ip)
{
	return util_str_hash(ip) % IPCOUNT_BUCKETS;
}

struct ipcount *
ipcount_new(void)
{
	return xcalloc(1, sizeof(struct ipcount));
}

void
ipcount_free(struct ipcount *t)
{
	struct ipcount_entry *e, *next;

	if (t == NULL)
		return;
	for (size_t i = 0; i < IPCOUNT_BUCKETS; i++) {
		for (e = t->buckets[i]; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(t);
}

struct ipcount_entry *
ipcount_ref(struct ipcount *t, const char *ip)
{
	unsigned h = ipcount_hash(ip);
	struct ipcount_entry *e;

	for (e = t->buckets[h]; e != NULL; e = e->next)
		if (strcmp(e->ip, ip) == 0)
			break;
	if (e == NULL) {
		e = xcalloc(1, sizeof(*e));
		util_strlcpy(e->ip, ip, sizeof(e->ip));
		e->next = t->buckets[h];
		t->buckets[h] = e;
	}
	e->n++;
	return e;
}

void
ipcount_unref(struct ipcount *t, struct ipcount_entry *e)
{
	struct ipcount_entry **pp;

	if (--e->n > 0)
		return;
	for (pp = &t->buckets[ipcount_hash(e->ip)]; *pp != NULL;
	    pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	}
	free(e);
}

unsigned
ipcount_n(const struct ipcount_entry *e)
{
	return e->n;
}
