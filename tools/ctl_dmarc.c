/*
 * carteiroctl dmarc FROM-DOMAIN: DMARC policy discovery for mail From
 * that domain (mailauth/dmarc.h, RFC 7489 6.6.3) and the record found,
 * tag by tag: what was published and what is used. First word: found (a
 * usable policy), none (no record), permerror (records that give no
 * policy: several, or no valid p=/sp= and no valid rua=), temperror.
 */
#include "tools/ctl.h"
#include "tools/ctl_admin.h"
#include "tools/ctl_mailauth.h"
#include "mailauth/dmarc.h"
#include "mailauth/dns.h"
#include "mailauth/spf.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

static void ctl_dmarc_tag(const char *tag, const char *used,
    const char *raw, bool valid, const char *absent);
static void ctl_dmarc_record(const struct dmarc_record *r);

/* "tag: used", then why when that is not simply what was published. */
static void
ctl_dmarc_tag(const char *tag, const char *used, const char *raw,
    bool valid, const char *absent)
{
	char *s = raw ? ctl_oneline(raw) : NULL;

	if (raw == NULL)
		printf("%s: %s (not given: %s)\n", tag, used, absent);
	else if (!valid)
		printf("%s: %s (invalid \"%s\")\n", tag, used, s);
	else
		printf("%s: %s\n", tag, used);
	free(s);
}

static void
ctl_dmarc_record(const struct dmarc_record *r)
{
	char *text = ctl_oneline(r->text), pct[8];

	printf("record: %s\n", text);
	free(text);
	/* An invalid p= or sp= has no default: no value is used. */
	ctl_dmarc_tag("p", r->p_valid ? dmarc_policy_str(r->p) : "-",
	    r->p_raw, r->p_valid, "required");
	ctl_dmarc_tag("sp", r->sp_valid && (r->sp_raw != NULL || r->p_valid) ?
	    dmarc_policy_str(r->sp) : "-", r->sp_raw, r->sp_valid, "as p");
	snprintf(pct, sizeof(pct), "%u", r->pct);
	/* RFC 7489 6.3: an invalid value gives the default. */
	ctl_dmarc_tag("pct", pct, r->pct_raw, r->pct_valid, "100");
	ctl_dmarc_tag("adkim", r->adkim_strict ? "s" : "r", r->adkim_raw,
	    r->adkim_valid, "relaxed");
	ctl_dmarc_tag("aspf", r->aspf_strict ? "s" : "r", r->aspf_raw,
	    r->aspf_valid, "relaxed");
	if (r->rua == NULL)
		printf("rua: - (not given)\n");
	else {
		char *s = ctl_oneline(r->rua);
		printf("rua: %s%s\n", s, r->rua_valid ? "" :
		    " (no valid URI)");
		free(s);
	}
	if (r->as_none)
		printf("note: no valid %s, but a valid rua=: as p=none "
		    "(RFC 7489 6.6.3)\n", r->p_valid ? "sp=" : "p=");
}

int
ctl_cmd_dmarc(struct ctl *ctl, int argc, char **argv)
{
	struct dmarc_record rec;
	char *domain = NULL, *name = NULL, *org;
	const char *why = NULL, *word;
	bool at_org = false;
	enum dmarc_found f;
	struct dns *d;

	if (argc != 2) {
		ctl_err("usage: dmarc FROM-DOMAIN");
		return 1;
	}
	if (ctl_domain_arg(argv[1], &domain) < 0)
		return 1;
	if ((d = ctl_mailauth_dns(ctl, "dmarc")) == NULL) {
		free(domain);
		return 1;
	}
	f = dmarc_discover(spf_lookup_dns, d, domain, &rec, &name, &at_org,
	    &why);
	org = dmarc_org_domain(domain);
	word = f == DMARC_FOUND ? "found" : f == DMARC_FOUND_NONE ? "none" :
	    f == DMARC_FOUND_UNUSABLE ? "permerror" : "temperror";
	printf("%s %s\n", word, name);
	printf("from-domain: %s\norganizational-domain: %s\n", domain, org);
	if (f == DMARC_FOUND || f == DMARC_FOUND_UNUSABLE)
		ctl_dmarc_record(&rec);
	if (f == DMARC_FOUND) {
		printf("policy: %s (%s)\n", dmarc_policy_str(
		    dmarc_record_policy(&rec, at_org)), rec.as_none ?
		    "as p=none" : at_org ? "sp, the organizational "
		    "domain's record" : "p");
	} else if (f == DMARC_FOUND_NONE && at_org) {
		printf("reason: no DMARC record at _dmarc.%s or %s\n", domain,
		    name);
	} else {
		printf("reason: %s\n", why);
	}
	dmarc_record_clear(&rec);
	free(org);
	free(name);
	free(domain);
	dns_free(d);
	return 0;
}
