/*
 * carteiroctl verify: the store's consistency checks (store/verify.c),
 * one problem per line on stdout; exit 1 with a count on stderr when
 * there is any.
 */
#include "tools/ctl.h"
#include "tools/ctl_admin.h"
#include "store/backup.h"
#include "store/store.h"
#include "store/verify.h"

#include <inttypes.h>
#include <stdio.h>

static void ctl_verify_print(const char *problem, void *arg);

static void
ctl_verify_print(const char *problem, void *arg)
{
	(void)arg;
	printf("%s\n", problem);
}

int
ctl_verify(struct ctl *ctl, int argc, char **argv)
{
	struct store_counts c;
	unsigned problems;

	(void)argc;
	(void)argv;
	if (store_verify(ctl->st, ctl_verify_print, NULL, &problems) < 0)
		return ctl_store_err(ctl, "verify");
	if (problems > 0) {
		ctl_err("verify: %u problem%s found", problems,
		    problems == 1 ? "" : "s");
		return 1;
	}
	if (store_counts(ctl->st, &c) < 0)
		return ctl_store_err(ctl, "verify");
	printf("ok: schema %d, %" PRId64 " users, %" PRId64 " messages, %"
	    PRId64 " bodies, %" PRId64 " queued\n", c.schema, c.users,
	    c.messages, c.bodies, c.queue);
	return 0;
}
