/*
 * carteiroctl dnsbl IP: every zone of [smtpd] dnsbl asked for IP the way
 * the daemon asks at connect (mailauth/dnsbl.h), one line per zone with
 * the answer and the TXT reason. First word: listed (some zone lists
 * it), temperror (none lists it, some did not answer), clean, or none
 * (no zone configured). Also owns the resolver set-up the mail
 * authentication commands share (ctl_mailauth.h).
 */
#include "tools/ctl.h"
#include "tools/ctl_admin.h"
#include "tools/ctl_mailauth.h"
#include "common/config.h"
#include "mailauth/dns.h"
#include "mailauth/dnsbl.h"
#include "common/util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

struct dns *
ctl_mailauth_dns(const struct ctl *ctl, const char *what)
{
	const char *error = NULL;
	struct dns *d = dns_new(NULL, ctl->cfg->relay.resolver, 2000, 2,
	    &error);

	if (d == NULL)
		ctl_err("%s: cannot set up the resolver: %s", what, error);
	return d;
}

int
ctl_cmd_dnsbl(struct ctl *ctl, int argc, char **argv)
{
	const struct cfg_strlist *zones = &ctl->cfg->smtpd.dnsbl;
	struct dnsbl_answer *ans;
	char rev[128];
	bool listed = false, temp = false;
	struct dns *d;

	if (argc != 2) {
		ctl_err("usage: dnsbl IP");
		return 1;
	}
	if (dnsbl_reverse_name(argv[1], rev, sizeof(rev)) < 0) {
		char *s = ctl_oneline(argv[1]);
		ctl_err("dnsbl: '%s' is not an IP address", s);
		free(s);
		return 1;
	}
	if (zones->n == 0) {
		printf("none %s\nno zones configured ([smtpd] dnsbl)\n",
		    argv[1]);
		return 0;
	}
	if ((d = ctl_mailauth_dns(ctl, "dnsbl")) == NULL)
		return 1;
	ans = xcalloc(zones->n, sizeof(*ans));
	for (size_t i = 0; i < zones->n; i++) {
		dnsbl_query_sync(d, zones->v[i], argv[1], &ans[i]);
		listed |= ans[i].verdict == DNSBL_LISTED;
		temp |= ans[i].verdict == DNSBL_TEMPERROR;
	}
	printf("%s %s\n", listed ? "listed" : temp ? "temperror" : "clean",
	    argv[1]);
	for (size_t i = 0; i < zones->n; i++) {
		struct dnsbl_answer *a = &ans[i];
		char *addrs = a->addrs ? ctl_oneline(a->addrs) : NULL;
		char *reason = a->reason ? ctl_oneline(a->reason) : NULL;

		if (a->verdict == DNSBL_LISTED && reason != NULL)
			printf("%s: listed %s \"%s\"\n", zones->v[i], addrs,
			    reason);
		else if (a->verdict == DNSBL_LISTED)
			printf("%s: listed %s (no TXT reason)\n", zones->v[i],
			    addrs);
		else if (a->verdict == DNSBL_TEMPERROR)
			printf("%s: temperror (%s did not answer)\n",
			    zones->v[i], a->name);
		else if (addrs != NULL)
			/* RFC 5782 2.1: only 127.0.0.0/8 is a listing. */
			printf("%s: clean (answer %s is not in 127.0.0.0/8)\n",
			    zones->v[i], addrs);
		else
			printf("%s: clean\n", zones->v[i]);
		free(addrs);
		free(reason);
		dnsbl_answer_clear(a);
	}
	free(ans);
	dns_free(d);
	return 0;
}
