/*
 * carteiroctl domain set DOMAIN source_ip=ADDR[,ADDR] helo=NAME: a local
 * domain's own outbound address (at most one IPv4 and one IPv6) and HELO
 * name (store/domain_source.h). An empty value unsets it. The relay
 * reads it for each queued message from that domain; carteiroctl check
 * verifies it.
 */
#include "tools/ctl.h"
#include "tools/ctl_admin.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "store/domain_source.h"
#include "store/store.h"

static int ctl_domain_source_ips(const char *);

/* "ip" or "ip,ip" with at most one address per family. 0 or -1. */
static int
ctl_domain_source_ips(const char *v)
{
	unsigned char a[16];
	int fam[2] = { 0, 0 };
	char *copy = xstrdup(v), *p, *save = NULL;
	size_t n = 0;
	int ret = 0;

	for (p = strtok_r(copy, ",", &save); p != NULL && ret == 0;
	    p = strtok_r(NULL, ",", &save)) {
		int f = inet_pton(AF_INET, p, a) == 1 ? AF_INET :
		    inet_pton(AF_INET6, p, a) == 1 ? AF_INET6 : 0;

		if (f == 0 || n >= 2 || (n == 1 && fam[0] == f))
			ret = -1;
		else
			fam[n++] = f;
	}
	free(copy);
	return ret;
}

int
ctl_domain_set(struct ctl *ctl, int argc, char **argv)
{
	char *domain, *helo = NULL;
	const char *eq, *val, *source = NULL;
	bool set_source = false, set_helo = false;
	int i, r = 0;

	if (ctl_domain_arg(argv[2], &domain) < 0)
		return 1;
	/* Every argument is checked before anything is written. */
	for (i = 3; i < argc && r == 0; i++) {
		eq = strchr(argv[i], '=');
		val = eq != NULL ? eq + 1 : "";
		if (eq != NULL && (size_t)(eq - argv[i]) == 9 &&
		    strncmp(argv[i], "source_ip", 9) == 0) {
			if (val[0] != '\0' && ctl_domain_source_ips(val) < 0) {
				ctl_err("domain set: source_ip '%s': expected "
				    "an IPv4 and/or an IPv6 address, comma-"
				    "separated", val);
				r = 1;
			}
			source = val;
			set_source = true;
		} else if (eq != NULL && (size_t)(eq - argv[i]) == 4 &&
		    strncmp(argv[i], "helo", 4) == 0) {
			free(helo);
			helo = NULL;
			if (val[0] != '\0' && ctl_domain_arg(val, &helo) < 0)
				r = 1;
			set_helo = true;
		} else {
			ctl_err("domain set: expected source_ip=ADDR or "
			    "helo=NAME, not '%s'", argv[i]);
			r = 1;
		}
	}
	if (r != 0)
		goto out;
	if (set_source)
		r = store_domain_source_set(ctl->st, domain, "source_ip",
		    source);
	if (r == 0 && set_helo)
		r = store_domain_source_set(ctl->st, domain, "helo", helo);
	if (r < 0)
		r = ctl_store_err(ctl, "domain set");
	else if (r == 1)
		ctl_err("no such domain %s", domain);
	else
		ctl_done("domain %s: source_ip %s, helo %s", domain,
		    !set_source ? "unchanged" : source[0] != '\0' ? source :
		    "unset", !set_helo ? "unchanged" : helo != NULL ? helo :
		    "unset");
out:
	free(helo);
	free(domain);
	return r == 0 ? 0 : 1;
}
