/*
 * Loop-thread change notification (notify.h): a subscriber array and
 * nothing else; no threads, no fds.
 */
#include "common/notify.h"
#include "common/util.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct notify_sub {
	notify_fn *fn;
	void *arg;
};

struct notify {
	struct notify_sub *subs;
	size_t n, cap;
};

struct notify *
notify_new(void)
{
	return xcalloc(1, sizeof(struct notify));
}

void
notify_free(struct notify *n)
{
	if (n == NULL)
		return;
	free(n->subs);
	free(n);
}

void
notify_subscribe(struct notify *n, notify_fn *fn, void *arg)
{
	if (n->n == n->cap) {
		n->cap = n->cap ? n->cap * 2 : 4;
		n->subs = xrealloc(n->subs, n->cap * sizeof(*n->subs));
	}
	n->subs[n->n].fn = fn;
	n->subs[n->n].arg = arg;
	n->n++;
}

void
notify_unsubscribe(struct notify *n, notify_fn *fn, void *arg)
{
	size_t i = 0;

	while (i < n->n) {
		if (n->subs[i].fn == fn && n->subs[i].arg == arg) {
			memmove(&n->subs[i], &n->subs[i + 1],
			    (n->n - i - 1) * sizeof(*n->subs));
			n->n--;
			continue;
		}
		i++;
	}
}

void
notify_post(struct notify *n)
{
	if (n == NULL)
		return;
	for (size_t i = 0; i < n->n; i++)
		n->subs[i].fn(n->subs[i].arg);
}
