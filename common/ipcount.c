/*
 * Per-address session counters: see ipcount.h. Chained hash table of a
 * fixed bucket count; the number of entries is bounded by the number of
 * sessions (max_clients), so the chains stay short.
 */
#include "common/ipcount.h"

#include <stdlib.h>
#include <string.h>

#include "common/clientkey.h"
#include "common/util.h"

#define IPCOUNT_BUCKETS	1024

struct ipcount_entry {
	struct ipcount_entry *next;
	unsigned n;
	struct client_key key;
};

struct ipcount {
	struct ipcount_entry *buckets[IPCOUNT_BUCKETS];
};

static unsigned
ipcount_hash(const struct client_key *k)
{
	return client_key_hash(k) % IPCOUNT_BUCKETS;
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
ipcount_ref(struct ipcount *t, const struct client_key *k)
{
	unsigned h = ipcount_hash(k);
	struct ipcount_entry *e;

	for (e = t->buckets[h]; e != NULL; e = e->next)
		if (client_key_equal(&e->key, k))
			break;
	if (e == NULL) {
		e = xcalloc(1, sizeof(*e));
		e->key = *k;
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
	for (pp = &t->buckets[ipcount_hash(&e->key)]; *pp != NULL;
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
