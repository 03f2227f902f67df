/*
 * carteiroctl check DOMAIN [--ip ADDR]: the deliverability self-check. It
 * asks the DNS ([relay] resolver, else /etc/resolv.conf) what the rest of
 * the internet will see and prints one line per check, OK / WARN / FAIL,
 * and for every FAIL the record to publish. Exit 0 only when nothing
 * FAILs. Blocking lookups are fine here: this is a command, not a daemon.
 */
#include "tools/ctl.h"
#include "tools/ctl_admin.h"
#include "common/config.h"
#include "mailauth/dkim.h"
#include "mailauth/dkim_keys.h"
#include "mailauth/dmarc.h"
#include "mailauth/dnsbl.h"
#include "mailauth/dns.h"
#include "mailauth/spf.h"
#include "common/util.h"
#include "store/domain_source.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct ctl_check {
	struct dns *dns;
	const char *domain;
	const char *hostname;
	char **ips;		/* the server's addresses */
	size_t nips;
	char **srcs;		/* the domain's outbound source addresses */
	size_t nsrcs;
	unsigned fails, warns;
};

static void ctl_check_line(struct ctl_check *, const char *, const char *,
    const char *, ...) __attribute__((format(printf, 4, 5)));

static void
ctl_check_line(struct ctl_check *c, const char *level, const char *what,
    const char *fmt, ...)
{
	va_list ap;

	if (strcmp(level, "FAIL") == 0)
		c->fails++;
	else if (strcmp(level, "WARN") == 0)
		c->warns++;
	printf("%-4s %-7s ", level, what);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void
ctl_check_publish(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
ctl_check_publish(const char *fmt, ...)
{
	va_list ap;

	fputs("     publish: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static bool
ctl_check_name_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

static bool
ctl_check_is_v6(const char *ip)
{
	return strchr(ip, ':') != NULL;
}

static void
ctl_check_mx(struct ctl_check *c)
{
	char **mx;
	size_t n;
	enum dns_status st = dns_lookup_sync(c->dns, DNS_T_MX, c->domain, &mx,
	    &n);
	bool ours = false;

	for (size_t i = 0; st == DNS_OK && i < n; i++)
		if (ctl_check_name_eq(mx[i], c->hostname))
			ours = true;
	if (ours) {
		ctl_check_line(c, "OK", "mx", "%s MX points at %s", c->domain,
		    c->hostname);
	} else {
		if (st == DNS_TEMPFAIL)
			ctl_check_line(c, "FAIL", "mx", "%s: MX lookup failed "
			    "(DNS error)", c->domain);
		else
			ctl_check_line(c, "FAIL", "mx", "%s has no MX record "
			    "pointing at %s", c->domain, c->hostname);
		ctl_check_publish("%s. IN MX 10 %s.", c->domain, c->hostname);
	}
	if (st == DNS_OK)
		dns_rr_free(mx, n);
}

static void
ctl_check_host(struct ctl_check *c, const char *given_ip)
{
	char **a4 = NULL, **a6 = NULL;
	size_t n4 = 0, n6 = 0;
	enum dns_status s4 = dns_lookup_sync(c->dns, DNS_T_A, c->hostname, &a4,
	    &n4);
	enum dns_status s6 = dns_lookup_sync(c->dns, DNS_T_AAAA, c->hostname,
	    &a6, &n6);

	if (n4 + n6 > 0) {
		ctl_check_line(c, "OK", "host", "%s has %zu address(es)",
		    c->hostname, n4 + n6);
		if (given_ip != NULL) {
			bool found = false;
			for (size_t i = 0; i < n4; i++)
				found |= strcmp(a4[i], given_ip) == 0;
			for (size_t i = 0; i < n6; i++)
				found |= strcmp(a6[i], given_ip) == 0;
			if (!found)
				ctl_check_line(c, "WARN", "host", "%s does "
				    "not resolve to %s", c->hostname,
				    given_ip);
		}
	} else {
		ctl_check_line(c, "FAIL", "host", "%s has no A/AAAA record%s",
		    c->hostname, s4 == DNS_TEMPFAIL ||
		    s6 == DNS_TEMPFAIL ? " (DNS error)" : "");
		ctl_check_publish("%s. IN %s %s", c->hostname,
		    given_ip && ctl_check_is_v6(given_ip) ? "AAAA" : "A",
		    given_ip ? given_ip : "<this server's public address>");
	}
	if (given_ip != NULL) {
		c->ips = xcalloc(1, sizeof(char *));
		c->ips[0] = xstrdup(given_ip);
		c->nips = 1;
	} else {
		c->ips = xcalloc(n4 + n6 + 1, sizeof(char *));
		for (size_t i = 0; i < n4; i++)
			c->ips[c->nips++] = xstrdup(a4[i]);
		for (size_t i = 0; i < n6; i++)
			c->ips[c->nips++] = xstrdup(a6[i]);
	}
	if (s4 == DNS_OK)
		dns_rr_free(a4, n4);
	if (s6 == DNS_OK)
		dns_rr_free(a6, n6);
}

/* The in-addr.arpa / ip6.arpa name of ip into buf. */
static void
ctl_check_rev(const char *ip, char *buf, size_t size)
{
	unsigned char a[16];

	if (inet_pton(AF_INET, ip, a) == 1) {
		snprintf(buf, size, "%u.%u.%u.%u.in-addr.arpa", a[3], a[2],
		    a[1], a[0]);
	} else if (inet_pton(AF_INET6, ip, a) == 1) {
		size_t o = 0;
		for (int i = 15; i >= 0; i--)
			o += (size_t)snprintf(buf + o, size - o, "%x.%x.",
			    a[i] & 15, a[i] >> 4);
		snprintf(buf + o, size - o, "ip6.arpa");
	} else {
		snprintf(buf, size, "invalid");
	}
}

static void
ctl_check_ptr(struct ctl_check *c)
{
	for (size_t i = 0; i < c->nips; i++) {
		char rev[160];
		char **names;
		size_t n;
		bool confirmed = false, matches_host = false;

		ctl_check_rev(c->ips[i], rev, sizeof(rev));
		enum dns_status st = dns_lookup_sync(c->dns, DNS_T_PTR, rev,
		    &names, &n);
		for (size_t j = 0; st == DNS_OK && j < n; j++) {
			char **addrs;
			size_t na;
			if (dns_lookup_sync(c->dns, ctl_check_is_v6(c->ips[i]) ?
			    DNS_T_AAAA : DNS_T_A, names[j], &addrs, &na) !=
			    DNS_OK)
				continue;
			for (size_t k = 0; k < na; k++)
				if (strcmp(addrs[k], c->ips[i]) == 0) {
					confirmed = true;
					if (ctl_check_name_eq(names[j],
					    c->hostname))
						matches_host = true;
				}
			dns_rr_free(addrs, na);
		}
		if (confirmed && matches_host)
			ctl_check_line(c, "OK", "ptr", "%s has forward-confirmed "
			    "reverse DNS %s", c->ips[i], c->hostname);
		else if (confirmed)
			ctl_check_line(c, "WARN", "ptr", "%s has forward-"
			    "confirmed reverse DNS, but not %s", c->ips[i],
			    c->hostname);
		else {
			ctl_check_line(c, "FAIL", "ptr", "%s has no forward-"
			    "confirmed reverse DNS (ask the address's owner "
			    "to set it)", c->ips[i]);
			ctl_check_publish("%s. IN PTR %s.", rev, c->hostname);
		}
		if (st == DNS_OK)
			dns_rr_free(names, n);
	}
	if (c->nips == 0)
		ctl_check_line(c, "FAIL", "ptr", "no server address known "
		    "(give --ip)");
}

/* Does name resolve (A or AAAA, by ip's family) to ip? */
static bool
ctl_check_resolves_to(struct ctl_check *c, const char *name, const char *ip)
{
	char **addrs;
	size_t n;
	bool found = false;

	if (dns_lookup_sync(c->dns, ctl_check_is_v6(ip) ? DNS_T_AAAA :
	    DNS_T_A, name, &addrs, &n) != DNS_OK)
		return false;
	for (size_t k = 0; k < n; k++)
		found |= strcmp(addrs[k], ip) == 0;
	dns_rr_free(addrs, n);
	return found;
}

/*
 * One outbound source address and the HELO name sent from it: the
 * address needs forward-confirmed reverse DNS, and the HELO name must
 * resolve to the address (receivers check both; Gmail and others refuse
 * mail without them), best the very name the PTR gives.
 */
static void
ctl_check_source_one(struct ctl_check *c, const char *ip, const char *helo)
{
	char rev[160], **names;
	size_t n;
	bool confirmed = false, ptr_is_helo = false;
	enum dns_status st;

	ctl_check_rev(ip, rev, sizeof(rev));
	st = dns_lookup_sync(c->dns, DNS_T_PTR, rev, &names, &n);
	for (size_t j = 0; st == DNS_OK && j < n; j++) {
		if (!ctl_check_resolves_to(c, names[j], ip))
			continue;
		confirmed = true;
		ptr_is_helo |= ctl_check_name_eq(names[j], helo);
	}
	if (st == DNS_OK)
		dns_rr_free(names, n);
	if (confirmed && ptr_is_helo)
		ctl_check_line(c, "OK", "source", "%s has forward-confirmed "
		    "reverse DNS %s", ip, helo);
	else if (confirmed)
		ctl_check_line(c, "WARN", "source", "%s has forward-confirmed "
		    "reverse DNS, but not its HELO name %s", ip, helo);
	else {
		ctl_check_line(c, "FAIL", "source", "%s has no forward-"
		    "confirmed reverse DNS", ip);
		ctl_check_publish("%s. IN PTR %s.", rev, helo);
	}
	if (ctl_check_resolves_to(c, helo, ip))
		ctl_check_line(c, "OK", "helo", "%s resolves to %s", helo, ip);
	else {
		ctl_check_line(c, "FAIL", "helo", "%s does not resolve to %s",
		    helo, ip);
		ctl_check_publish("%s. IN %s %s", helo, ctl_check_is_v6(ip) ?
		    "AAAA" : "A", ip);
	}
}

/* The addresses this domain's mail leaves from: its own (domain set
 * source_ip= helo=), else [relay] source_ip with the hostname. None
 * configured: the system's choice, covered by the ptr check. */
static void
ctl_check_sources(struct ctl_check *c, const struct ctl *ctl)
{
	struct store_domain_source row;
	const char *helo = c->hostname;
	char *list = NULL, *p, *save = NULL;
	size_t i;

	if (store_domain_source_get(ctl->st, c->domain, &row) != 0)
		memset(&row, 0, sizeof(row));
	if (row.helo != NULL)
		helo = row.helo;
	if (row.source_ip != NULL)
		list = xstrdup(row.source_ip);
	else if (ctl->cfg->relay.source_ip.n > 0) {
		size_t len = 1;

		for (i = 0; i < ctl->cfg->relay.source_ip.n; i++)
			len += strlen(ctl->cfg->relay.source_ip.v[i]) + 1;
		list = xcalloc(1, len);
		for (i = 0; i < ctl->cfg->relay.source_ip.n; i++) {
			if (i > 0)
				strcat(list, ",");
			strcat(list, ctl->cfg->relay.source_ip.v[i]);
		}
	}
	for (p = list != NULL ? strtok_r(list, ",", &save) : NULL; p != NULL;
	    p = strtok_r(NULL, ",", &save)) {
		ctl_check_source_one(c, p, helo);
		c->srcs = xrealloc(c->srcs, (c->nsrcs + 1) * sizeof(*c->srcs));
		c->srcs[c->nsrcs++] = xstrdup(p);
	}
	free(list);
	store_domain_source_clear(&row);
}

static void
ctl_check_spf(struct ctl_check *c)
{
	char *sender = xasprintf("postmaster@%s", c->domain);

	for (size_t i = 0; i < c->nips; i++) {
		struct spf_request req = {
			.ip = c->ips[i], .sender = sender,
			.helo = c->hostname, .receiver = c->hostname,
			.lookup = spf_lookup_dns, .ctx = c->dns,
		};
		const char *why = NULL;
		enum spf_result r = spf_check(&req, NULL, &why);

		if (r == SPF_PASS) {
			ctl_check_line(c, "OK", "spf", "%s authorises %s",
			    c->domain, c->ips[i]);
			continue;
		}
		if (r == SPF_NONE)
			ctl_check_line(c, "FAIL", "spf", "%s has no SPF record",
			    c->domain);
		else
			ctl_check_line(c, "FAIL", "spf", "%s does not authorise "
			    "%s (spf=%s: %s)", c->domain, c->ips[i],
			    spf_result_str(r), why ? why : "");
		ctl_check_publish("%s. IN TXT \"v=spf1 mx %s:%s -all\"",
		    c->domain, ctl_check_is_v6(c->ips[i]) ? "ip6" : "ip4",
		    c->ips[i]);
	}
	free(sender);
}

/* p= of a DKIM record, whitespace removed; "" if absent. Caller frees. */
static char *
ctl_check_dkim_p(const char *txt)
{
	const char *p = txt;
	char *out;
	size_t o = 0;

	while ((p = strstr(p, "p=")) != NULL) {
		if (p == txt || p[-1] == ';' || p[-1] == ' ' || p[-1] == '\t')
			break;
		p += 2;
	}
	if (p == NULL)
		return xstrdup("");
	p += 2;
	out = xmalloc(strlen(p) + 1);
	for (; *p && *p != ';'; p++)
		if (!isspace((unsigned char)*p))
			out[o++] = *p;
	out[o] = '\0';
	return out;
}

static void
ctl_check_dkim(struct ctl_check *c, const struct ctl *ctl)
{
	char *keydir = dkim_keys_dir(ctl->cfg);
	struct dkim_keyfile *keys = NULL;
	size_t n = 0;
	const char *error = NULL;

	if (dkim_keys_list(keydir, c->domain, &keys, &n, &error) < 0 ||
	    n == 0) {
		ctl_check_line(c, "FAIL", "dkim", "%s has no DKIM key (run: "
		    "carteiroctl dkim keygen %s)", c->domain, c->domain);
		free(keydir);
		dkim_keyfiles_free(keys, n);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		char *want = NULL, *name, **txt;
		size_t nt;
		bool match = false;

		if (dkim_txt_for_key(keys[i].alg, keys[i].privkey, &want) < 0) {
			ctl_check_line(c, "FAIL", "dkim", "key %s of %s is "
			    "unreadable", keys[i].selector, c->domain);
			continue;
		}
		name = xasprintf("%s._domainkey.%s", keys[i].selector,
		    c->domain);
		enum dns_status st = dns_lookup_sync(c->dns, DNS_T_TXT, name,
		    &txt, &nt);
		char *wp = ctl_check_dkim_p(want);
		for (size_t j = 0; st == DNS_OK && j < nt; j++) {
			char *gp = ctl_check_dkim_p(txt[j]);
			if (strcmp(gp, wp) == 0)
				match = true;
			free(gp);
		}
		if (match)
			ctl_check_line(c, "OK", "dkim", "%s matches the local "
			    "%s key", name, dkim_alg_name(keys[i].alg));
		else {
			ctl_check_line(c, "FAIL", "dkim", "%s %s", name,
			    st == DNS_OK ? "does not match the local key" :
			    "has no TXT record");
			ctl_check_publish("%s. IN TXT \"%s\"", name, want);
		}
		if (st == DNS_OK)
			dns_rr_free(txt, nt);
		free(wp);
		free(want);
		free(name);
	}
	dkim_keyfiles_free(keys, n);
	free(keydir);
}

static void
ctl_check_dmarc(struct ctl_check *c)
{
	char *name = xasprintf("_dmarc.%s", c->domain), **txt;
	size_t n;
	const char *found = NULL;
	enum dns_status st = dns_lookup_sync(c->dns, DNS_T_TXT, name, &txt, &n);

	struct dmarc_record rec;
	bool p_none = false;

	/* The record as the daemon reads it (dmarc_record_parse): "V = DMARC1"
	 * counts, and only the p= tag itself decides "monitoring only". */
	for (size_t i = 0; st == DNS_OK && i < n && found == NULL; i++) {
		if (dmarc_record_parse(txt[i], &rec) == 0) {
			found = txt[i];
			p_none = dmarc_record_policy(&rec, false) ==
			    DMARC_P_NONE;
		}
		dmarc_record_clear(&rec);
	}
	if (found != NULL) {
		if (p_none)
			ctl_check_line(c, "WARN", "dmarc", "%s has p=none "
			    "(monitoring only)", name);
		else
			ctl_check_line(c, "OK", "dmarc", "%s: %s", name, found);
	} else {
		ctl_check_line(c, "FAIL", "dmarc", "%s has no DMARC record",
		    name);
		ctl_check_publish("%s. IN TXT \"v=DMARC1; p=quarantine; "
		    "rua=mailto:postmaster@%s\"", name, c->domain);
	}
	if (st == DNS_OK)
		dns_rr_free(txt, n);
	free(name);
}

/* One address on one zone, with the zone's TXT reason when listed. */
static void
ctl_check_dnsbl_one(struct ctl_check *c, const char *zone, const char *ip)
{
	struct dnsbl_answer a;

	if (dnsbl_query_sync(c->dns, zone, ip, &a) < 0)
		return;
	if (a.verdict == DNSBL_LISTED)
		ctl_check_line(c, "FAIL", "dnsbl",
		    "%s is listed on %s (%s)%s%s", ip, zone,
		    a.addrs ? a.addrs : "?", a.reason ? ": " : "",
		    a.reason ? a.reason : "");
	else if (a.verdict == DNSBL_TEMPERROR)
		ctl_check_line(c, "WARN", "dnsbl", "%s: %s did not answer", ip,
		    zone);
	else
		ctl_check_line(c, "OK", "dnsbl", "%s is not listed on %s", ip,
		    zone);
	dnsbl_answer_clear(&a);
}

/* Every address mail leaves from (the server's and the domain's source
 * addresses) on [relay] monitor_dnsbl, else the [smtpd] dnsbl zones. */
static void
ctl_check_dnsbl(struct ctl_check *c, const struct ctl *ctl)
{
	const struct cfg_strlist *zones = ctl->cfg->relay.monitor_dnsbl.n > 0 ?
	    &ctl->cfg->relay.monitor_dnsbl : &ctl->cfg->smtpd.dnsbl;
	size_t z, i, j;

	for (z = 0; z < zones->n; z++) {
		for (i = 0; i < c->nips; i++)
			ctl_check_dnsbl_one(c, zones->v[z], c->ips[i]);
		for (i = 0; i < c->nsrcs; i++) {
			for (j = 0; j < c->nips; j++)
				if (strcmp(c->ips[j], c->srcs[i]) == 0)
					break;
			if (j == c->nips)
				ctl_check_dnsbl_one(c, zones->v[z],
				    c->srcs[i]);
		}
	}
}

int
ctl_cmd_check(struct ctl *ctl, int argc, char **argv)
{
	struct ctl_check c = { 0 };
	const char *ip = NULL, *error = NULL;
	char *domain = NULL;
	unsigned char tmp[16];

	/* argv: "check" DOMAIN [--ip ADDR] */
	if (argc < 2) {
		ctl_err("usage: check DOMAIN [--ip ADDR]");
		return 1;
	}
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--ip") == 0 && i + 1 < argc) {
			ip = argv[++i];
		} else {
			ctl_err("usage: check DOMAIN [--ip ADDR]");
			return 1;
		}
	}
	if (ip != NULL && inet_pton(AF_INET, ip, tmp) != 1 &&
	    inet_pton(AF_INET6, ip, tmp) != 1) {
		ctl_err("check: --ip %s is not an IP address", ip);
		return 1;
	}
	if (ctl_domain_arg(argv[1], &domain) < 0)
		return 1;
	/* No loop here: the resolver runs its own for each lookup. */
	c.dns = dns_new(NULL, ctl->cfg->relay.resolver, 2000, 2, &error);
	if (c.dns == NULL) {
		ctl_err("check: cannot set up the resolver: %s", error);
		free(domain);
		return 1;
	}
	c.domain = domain;
	c.hostname = ctl->cfg->server.hostname;

	ctl_check_mx(&c);
	ctl_check_host(&c, ip);
	ctl_check_ptr(&c);
	ctl_check_sources(&c, ctl);
	ctl_check_spf(&c);
	ctl_check_dkim(&c, ctl);
	ctl_check_dmarc(&c);
	ctl_check_dnsbl(&c, ctl);
	ctl_check_client(ctl, c.dns, c.domain, &c.fails, &c.warns);
	printf("%u FAIL, %u WARN\n", c.fails, c.warns);

	for (size_t i = 0; i < c.nips; i++)
		free(c.ips[i]);
	free(c.ips);
	for (size_t i = 0; i < c.nsrcs; i++)
		free(c.srcs[i]);
	free(c.srcs);
	dns_free(c.dns);
	free(domain);
	return c.fails ? 1 : 0;
}
