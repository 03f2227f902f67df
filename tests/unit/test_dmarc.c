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
	/* RFC 7489 6.6.3 step 6: no valid p= (or an invalid sp=) but a
	 * valid rua=: act as p=none, still pass or fail. */
	{ "_dmarc.ruaonly.test", "v=DMARC1; rua=mailto:d@ruaonly.test" },
	{ "_dmarc.badp-rua.test", "v=DMARC1; p=bogus; rua=mailto:d@x.test" },
	{ "_dmarc.badrua.test", "v=DMARC1; p=bogus; rua=not a uri" },
	{ "_dmarc.badsp.test", "v=DMARC1; p=reject; sp=bogus" },
	{ "_dmarc.badsp-rua.test", "v=DMARC1; p=reject; sp=bogus; "
	  "rua=mailto:d@badsp-rua.test!10m" },
	/* 6.4: "v" is an ABNF string (any case), WSP around '='. */
	{ "_dmarc.upper.test", "V=DMARC1; p=reject" },
	{ "_dmarc.spaced.test", "v = DMARC1 ;p=reject" },
	{ "_dmarc.lowerver.test", "v=dmarc1; p=reject" },
	{ "_dmarc.longver.test", "v=DMARC10; p=reject" },
	{ "_dmarc.latever.test", "p=reject; v=DMARC1" },
	/* pct */
	{ "_dmarc.pcttypo.test", "v=DMARC1; p=reject; pct=abc" },
	{ "_dmarc.pctneg.test", "v=DMARC1; p=reject; pct=-5" },
	{ "_dmarc.pct0.test", "v=DMARC1; p=reject; pct=0" },
	{ "_dmarc.pct0q.test", "v=DMARC1; p=quarantine; pct=0" },
	/* 6.6.3 step 5: two records at the From domain: no policy, and no
	 * look at the organizational domain's either. */
	{ "_dmarc.multi.example.com", "v=DMARC1; p=none" },
	{ "_dmarc.multi.example.com", "v=DMARC1; p=quarantine" },
	/* an unrelated TXT next to the record is no second record */
	{ "_dmarc.other.test", "google-site-verification=abc" },
	{ "_dmarc.other.test", "v=DMARC1; p=quarantine" },
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
		*a = xrealloc(*a, (*n + 1) * sizeof(char *));
		(*a)[(*n)++] = xstrdup(records[i].txt);
	}
	return *n > 0 ? SPF_DNS_OK : SPF_DNS_NONE;
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
	/* 1: missing or invalid p= with a valid rua=: p=none, evaluated */
	{ "ruaonly.test", SPF_FAIL, "x.test", NULL, DMARC_FAIL, DMARC_P_NONE },
	{ "ruaonly.test", SPF_PASS, "ruaonly.test", NULL, DMARC_PASS, DMARC_P_NONE },
	{ "badp-rua.test", SPF_FAIL, "x.test", NULL, DMARC_FAIL, DMARC_P_NONE },
	{ "a.badp-rua.test", SPF_FAIL, "x.test", NULL, DMARC_FAIL, DMARC_P_NONE },
	{ "badrua.test", SPF_FAIL, "x.test", NULL, DMARC_NONE, DMARC_P_NONE },
	/* 2: an invalid sp= is like an invalid p=, also for the domain
	 * itself (6.6.3 step 6 speaks of the record) */
	{ "badsp.test", SPF_FAIL, "x.test", NULL, DMARC_NONE, DMARC_P_NONE },
	{ "a.badsp.test", SPF_FAIL, "x.test", NULL, DMARC_NONE, DMARC_P_NONE },
	{ "badsp-rua.test", SPF_FAIL, "x.test", NULL, DMARC_FAIL, DMARC_P_NONE },
	{ "a.badsp-rua.test", SPF_FAIL, "x.test", NULL, DMARC_FAIL, DMARC_P_NONE },
	/* 3: the version tag */
	{ "upper.test", SPF_FAIL, "x.test", NULL, DMARC_FAIL, DMARC_P_REJECT },
	{ "spaced.test", SPF_FAIL, "x.test", NULL, DMARC_FAIL, DMARC_P_REJECT },
	{ "lowerver.test", SPF_FAIL, "x.test", NULL, DMARC_NONE, DMARC_P_NONE },
	{ "longver.test", SPF_FAIL, "x.test", NULL, DMARC_NONE, DMARC_P_NONE },
	{ "latever.test", SPF_FAIL, "x.test", NULL, DMARC_NONE, DMARC_P_NONE },
	/* several records / a record beside unrelated TXT */
	{ "multi.example.com", SPF_FAIL, "x.test", NULL, DMARC_NONE, DMARC_P_NONE },
	{ "other.test", SPF_FAIL, "x.test", NULL, DMARC_FAIL, DMARC_P_QUARANTINE },
};

/* pct: what is done with a failing message (6.6.4), deterministic
 * cases only (pct 0 and 100). */
static const struct {
	const char *from;
	enum dmarc_policy policy, disposition;
	bool apply;
} pcts[] = {
	/* 4: an invalid pct is 100, not 0 */
	{ "pcttypo.test", DMARC_P_REJECT, DMARC_P_REJECT, true },
	{ "pctneg.test", DMARC_P_REJECT, DMARC_P_REJECT, true },
	/* 5: left out by pct under reject: quarantine */
	{ "pct0.test", DMARC_P_REJECT, DMARC_P_QUARANTINE, true },
	/* ... and under quarantine: nothing */
	{ "pct0q.test", DMARC_P_QUARANTINE, DMARC_P_NONE, false },
	{ "quar.test", DMARC_P_QUARANTINE, DMARC_P_QUARANTINE, true },
	{ "sub.test", DMARC_P_NONE, DMARC_P_NONE, false },
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
		/* pct=100: the policy itself is applied */
		if (out.result == DMARC_FAIL) {
			t_assert_int(out.disposition, out.policy);
			t_assert(out.apply == (out.policy != DMARC_P_NONE));
		}
	}
	t_end();

	t_begin("pct sampling: invalid values, the next less strict policy");
	for (size_t i = 0; i < nitems(pcts); i++) {
		struct dmarc_request req = {
			.from_domain = pcts[i].from, .spf = SPF_FAIL,
			.spf_domain = "x.test", .lookup = fake,
		};
		struct dmarc_outcome out;
		/* several runs: sampling is random */
		for (int k = 0; k < 20; k++) {
			dmarc_check(&req, &out);
			if (out.apply != pcts[i].apply ||
			    out.disposition != pcts[i].disposition)
				fprintf(stderr, "pct case %s: apply %d "
				    "disposition %s\n", pcts[i].from,
				    out.apply, dmarc_policy_str(
				    out.disposition));
			t_assert_int(out.result, DMARC_FAIL);
			t_assert_int(out.policy, pcts[i].policy);
			t_assert_int(out.disposition, pcts[i].disposition);
			t_assert(out.apply == pcts[i].apply);
		}
	}
	t_end();

	t_begin("record parser: raw values, defaults, rua syntax");
	{
		static const struct {
			const char *txt;
			int ret;
			unsigned pct;
			bool rua_valid, as_none, p_valid, sp_valid;
		} recs[] = {
			{ "v=DMARC1; p=reject; pct=50", 0, 50, false, false,
			  true, true },
			{ "v=DMARC1; p=reject; pct=050", 0, 50, false, false,
			  true, true },
			{ "v=DMARC1; p=reject; pct=101", 0, 100, false, false,
			  true, true },
			{ "v=DMARC1; p=reject; pct=1000", 0, 100, false, false,
			  true, true },
			{ "v=DMARC1; p=reject; pct=", 0, 100, false, false,
			  true, true },
			{ "v=DMARC1; rua=mailto:a@b.test,mailto:c@d.test", 0,
			  100, true, true, false, true },
			{ "v=DMARC1; rua=bogus, mailto:c@d.test!5k", 0, 100,
			  true, true, false, true },
			{ "v=DMARC1; rua=mailto:c@d.test!k", 0, 100, false,
			  false, false, true },
			{ "v=DMARC1; rua=mailto:", 0, 100, false, false, false,
			  true },
			{ "v=DMARC1; rua=1x:abc", 0, 100, false, false, false,
			  true },
			{ "v=DMARC1; P=Reject; SP=bogus", 0, 100, false, false,
			  true, false },
			{ "v=DMARC1", 0, 100, false, false, false, true },
			{ "v\t=\tDMARC1\t;p=none", 0, 100, false, false, true,
			  true },
			{ "v=DMARC1 p=reject", -1, 0, false, false, false,
			  false },
			{ " v=DMARC1; p=reject", -1, 0, false, false, false,
			  false },
			{ "v=spf1 -all", -1, 0, false, false, false, false },
		};
		for (size_t i = 0; i < nitems(recs); i++) {
			struct dmarc_record r;
			int ret = dmarc_record_parse(recs[i].txt, &r);
			if (ret != recs[i].ret)
				fprintf(stderr, "record %zu: ret %d\n", i, ret);
			t_assert_int(ret, recs[i].ret);
			if (ret == 0) {
				if (r.pct != recs[i].pct ||
				    r.rua_valid != recs[i].rua_valid)
					fprintf(stderr, "record %zu: pct %u "
					    "rua_valid %d\n", i, r.pct,
					    r.rua_valid);
				t_assert_int(r.pct, recs[i].pct);
				t_assert(r.rua_valid == recs[i].rua_valid);
				t_assert(r.as_none == recs[i].as_none);
				t_assert(r.p_valid == recs[i].p_valid);
				t_assert(r.sp_valid == recs[i].sp_valid);
			}
			dmarc_record_clear(&r);
		}
		struct dmarc_record r;
		t_assert(dmarc_record_parse("v=DMARC1; p=quarantine; "
		    "adkim=s; aspf=x; pct=abc; rua=mailto:a@b.test", &r) == 0);
		t_assert_str(r.text, "v=DMARC1; p=quarantine; adkim=s; "
		    "aspf=x; pct=abc; rua=mailto:a@b.test");
		t_assert_str(r.p_raw, "quarantine");
		t_assert(r.sp_raw == NULL);
		t_assert_int(r.sp, DMARC_P_QUARANTINE);
		t_assert_str(r.pct_raw, "abc");
		t_assert_str(r.adkim_raw, "s");
		t_assert_str(r.aspf_raw, "x");
		t_assert(r.adkim_strict && !r.aspf_strict);
		t_assert(r.adkim_valid && !r.aspf_valid && !r.pct_valid);
		t_assert_str(r.rua, "mailto:a@b.test");
		t_assert_int(dmarc_record_policy(&r, true), DMARC_P_QUARANTINE);
		dmarc_record_clear(&r);
		/* an invalid sp= keeps p= as published; the policy is none
		 * under a valid rua= */
		t_assert(dmarc_record_parse("v=DMARC1; p=reject; sp=x; "
		    "rua=mailto:a@b.test", &r) == 0);
		t_assert(r.p_valid && !r.sp_valid && r.as_none);
		t_assert_int(r.p, DMARC_P_REJECT);
		t_assert_int(dmarc_record_policy(&r, false), DMARC_P_NONE);
		t_assert_int(dmarc_record_policy(&r, true), DMARC_P_NONE);
		dmarc_record_clear(&r);
		t_assert(dmarc_record_parse("v=DMARC1; p=reject; sp=none",
		    &r) == 0);
		t_assert_int(dmarc_record_policy(&r, false), DMARC_P_REJECT);
		t_assert_int(dmarc_record_policy(&r, true), DMARC_P_NONE);
		dmarc_record_clear(&r);
	}
	t_end();
	return t_exit();
}
