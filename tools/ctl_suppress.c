/*
 * carteiroctl suppress list | add ADDRESS [REASON] | del ADDRESS: the
 * bounce suppression list (store/suppress.h). smtpd refuses a listed
 * address at RCPT for [relay] suppress_days after it was listed; list
 * shows every row with the day it ends:
 *   ADDRESS since=TIME until=TIME origin=bounce|admin reason=TEXT
 */
#include "tools/ctl.h"
#include "tools/ctl_admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/config.h"
#include "common/util.h"
#include "store/store.h"
#include "store/suppress.h"

static const char *ctl_suppress_time(int64_t, char *, size_t);

static const char *
ctl_suppress_time(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

int
ctl_suppress_list(struct ctl *ctl, int argc, char **argv)
{
	struct store_suppress *rows;
	size_t n, i;
	int64_t days = ctl->cfg->relay.suppress_days;
	char since[32], until[32];
	char *reason;

	if (store_suppress_list(ctl->st, &rows, &n) < 0)
		return ctl_store_err(ctl, "suppress list");
	for (i = 0; i < n; i++) {
		reason = ctl_oneline(rows[i].reason);
		printf("%s since=%s until=%s origin=%s reason=%s\n",
		    rows[i].address, ctl_suppress_time(rows[i].created, since,
		    sizeof(since)), days == 0 ? "off" : ctl_suppress_time(
		    rows[i].created + days * 86400, until, sizeof(until)),
		    rows[i].origin, reason);
		free(reason);
	}
	store_suppress_free(rows, n);
	return 0;
}

int
ctl_suppress_add(struct ctl *ctl, int argc, char **argv)
{
	char *addr;
	int r;

	if (ctl_address_arg(argv[2], &addr) < 0)
		return 1;
	r = store_suppress_add(ctl->st, addr, util_time(), argc > 3 ?
	    argv[3] : "added with carteiroctl", "admin");
	if (r == 0)
		ctl_done("suppressed %s", addr);
	free(addr);
	return r < 0 ? ctl_store_err(ctl, "suppress add") : 0;
}

int
ctl_suppress_del(struct ctl *ctl, int argc, char **argv)
{
	char *addr;
	int r;

	if (ctl_address_arg(argv[2], &addr) < 0)
		return 1;
	r = store_suppress_del(ctl->st, addr);
	if (r < 0)
		r = ctl_store_err(ctl, "suppress del");
	else if (r == 1)
		ctl_err("%s is not on the suppress list", addr);
	else
		ctl_done("removed %s from the suppress list", addr);
	free(addr);
	return r == 0 ? 0 : 1;
}
