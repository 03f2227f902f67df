/*
 * DMARC: policy discovery (From domain, then the organizational domain
 * from the public suffix list), relaxed/strict alignment of SPF and DKIM,
 * subdomain policy, From header parsing.
 */
#include "mailauth/dmarc.h"
#include "common/util.h"
#include "t.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
	const char *name;
	const char *txt;
} records[] = {
	{ "_dmarc.example.com", "v=DMARC1; p=reject; rua=mailto:d@example.com" },
	{ "_dmarc.strict.test", "v=DMARC1; p=reject; adkim=s; aspf=s" },
	{ "_dmarc.sub.test", "v=DMARC1; p=none; sp=reject" },
	{ "_dmarc.quar.test", "v=DMARC1; p=quarantine" },
	{ "_dmarc.example.co.uk", "v=DMARC1; p=reject" },
	{ "_dmarc.bad.test", "v=DMARC1; p=bogus" },
	{ "_dmarc.temp.test", "TEMPFAIL" },
};

static enum spf_dns_status
fake(void *ctx, enum spf_qtype t, const char *name, char ***a, size_t *n)
{
	(void)ctx;
	*a = NULL;
	*n = 0;
	if (t != SPF_Q_TXT)
		return SPF_DNS_NONE;
	for (size_t i = 0; i < nitems(records); i++) {
		if (strcasecmp(records[i].name, name) != 0)
			continue;
		if (strcmp(records[i].txt, "TEMPFAIL") == 0)
			return SPF_DNS_TEMPFAIL;
		*a = xmalloc(sizeof(char *));
		(*a)[0] = xstrdup(records[i].txt);
		*n = 1;
		return SPF_DNS_OK;
	}
	return SPF_DNS_NONE;
}

struct dcase {
	const char *from;
	enum spf_result spf;
	const char *spf_domain;
	const char *dkim_d;		/* passing d=, or NULL */
	enum dmarc_result want;
	enum dmarc_policy want_policy;
};

static const struct dcase cases[] = {
	/* p=reject, nothing aligned */
	{ "example.com", SPF_PASS, "other.test", NULL, DMARC_FAIL, DMARC_P_REJECT },
	{ "example.com", SPF_FAIL, "example.com", NULL, DMARC_FAIL, DMARC_P_REJECT },
	/* pass via aligned SPF only (relaxed: subdomain of the org) */
	{ "example.com", SPF_PASS, "bounce.example.com", NULL, DMARC_PASS, DMARC_P_REJECT },
	/* pass via aligned DKIM only */
	{ "example.com", SPF_FAIL, "other.test", "mail.example.com", DMARC_PASS, DMARC_P_REJECT },
	{ "example.com", SPF_NONE, "other.test", "example.net", DMARC_FAIL, DMARC_P_REJECT },
	/* strict alignment */
	{ "strict.test", SPF_PASS, "a.strict.test", NULL, DMARC_FAIL, DMARC_P_REJECT },
	{ "strict.test", SPF_PASS, "strict.test", NULL, DMARC_PASS, DMARC_P_REJECT },
	{ "strict.test", SPF_FAIL, "x.test", "a.strict.test", DMARC_FAIL, DMARC_P_REJECT },
	/* subdomain: the org record's sp= applies */
	{ "news.sub.test", SPF_FAIL, "x.test", NULL, DMARC_FAIL, DMARC_P_REJECT },
	{ "sub.test", SPF_FAIL, "x.test", NULL, DMARC_FAIL, DMARC_P_NONE },
	{ "deep.a.example.com", SPF_FAIL, "x.test", NULL, DMARC_FAIL, DMARC_P_REJECT },
	/* organizational domain via the public suffix list: co.uk */
	{ "mail.shop.example.co.uk", SPF_FAIL, "x.test", NULL, DMARC_FAIL, DMARC_P_REJECT },
	{ "mail.shop.example.co.uk", SPF_PASS, "example.co.uk", NULL, DMARC_PASS, DMARC_P_REJECT },
	/* other outcomes */
	{ "quar.test", SPF_FAIL, "x.test", NULL, DMARC_FAIL, DMARC_P_QUARANTINE },
	{ "nopolicy.test", SPF_FAIL, "x.test", NULL, DMARC_NONE, DMARC_P_NONE },
	{ "bad.test", SPF_FAIL, "x.test", NULL, DMARC_NONE, DMARC_P_NONE },
	{ "temp.test", SPF_PASS, "temp.test", NULL, DMARC_TEMPERROR, DMARC_P_NONE },
};

int
main(void)
{
	t_begin("organizational domains");
	char *o = dmarc_org_domain("a.b.example.co.uk");
	t_assert_str(o, "example.co.uk");
	free(o);
	o = dmarc_org_domain("Mail.Example.COM");
	t_assert_str(o, "example.com");
	free(o);
	t_end();

	t_begin("From header domain");
	const char *froms[][2] = {
		{ "Alice <alice@Example.COM>", "example.com" },
		{ "alice@example.com", "example.com" },
		{ "\"Smith, J\" <j@x.example.org>", "x.example.org" },
		{ "a@example.com, b@example.org", NULL },
		{ "<a@example.com> <b@example.org>", NULL },
		{ "no address", NULL },
	};
	for (size_t i = 0; i < nitems(froms); i++) {
		char *d = dmarc_from_domain(froms[i][0]);
		if (froms[i][1] == NULL)
			t_assert(d == NULL);
		else
			t_assert_str(d, froms[i][1]);
		free(d);
	}
	t_end();

	t_begin("policy and alignment table");
	for (size_t i = 0; i < nitems(cases); i++) {
		struct dmarc_dkim dk = { cases[i].dkim_d };
		struct dmarc_request req = {
			.from_domain = cases[i].from, .spf = cases[i].spf,
			.spf_domain = cases[i].spf_domain,
			.dkim = cases[i].dkim_d ? &dk : NULL,
			.ndkim = cases[i].dkim_d ? 1 : 0,
			.lookup = fake,
		};
		struct dmarc_outcome out;
		dmarc_check(&req, &out);
		if (out.result != cases[i].want ||
		    out.policy != cases[i].want_policy)
			fprintf(stderr, "case %zu (%s): got %s/%s want %s/%s\n",
			    i, cases[i].from, dmarc_result_str(out.result),
			    dmarc_policy_str(out.policy),
			    dmarc_result_str(cases[i].want),
			    dmarc_policy_str(cases[i].want_policy));
		t_assert_int(out.result, cases[i].want);
		t_assert_int(out.policy, cases[i].want_policy);
		if (out.result == DMARC_FAIL)
			t_assert(out.apply);
	}
	t_end();
	return t_exit();
}
