/*
 * DMARC evaluation (RFC 7489 section 6). Owns the record parser, policy
 * discovery, alignment and the organizational-domain lookup (libpsl; the
 * system list from the publicsuffix package, else libpsl's built-in one).
 */
#include "mailauth/dmarc.h"
#include "common/util.h"

#include <ctype.h>
#include <libpsl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const dmarc_result_names[DMARC_RESULT_COUNT] = {
	"none", "pass", "fail", "temperror", "permerror",
};

static pthread_once_t dmarc_psl_once = PTHREAD_ONCE_INIT;
static const psl_ctx_t *dmarc_psl;

static void
dmarc_psl_init(void)
{
	psl_ctx_t *latest = psl_latest(NULL);

	dmarc_psl = latest != NULL ? latest : psl_builtin();
}

const char *
dmarc_result_str(enum dmarc_result r)
{
	return dmarc_result_names[r];
}

const char *
dmarc_policy_str(enum dmarc_policy p)
{
	return p == DMARC_P_REJECT ? "reject" :
	    p == DMARC_P_QUARANTINE ? "quarantine" : "none";
}

char *
dmarc_org_domain(const char *domain)
{
	const char *reg;
	char *lower = util_strlower(xstrdup(domain));

	pthread_once(&dmarc_psl_once, dmarc_psl_init);
	reg = dmarc_psl != NULL ?
	    psl_registrable_domain(dmarc_psl, lower) : NULL;
	if (reg == NULL)
		return lower;	/* a public suffix itself: use as is */
	char *out = xstrdup(reg);
	free(lower);
	return out;
}

char *
dmarc_from_domain(const char *v)
{
	const char *lt = strchr(v, '<'), *start, *end;

	if (strchr(v, ',') != NULL && lt == NULL)
		return NULL;	/* several addresses */
	if (lt != NULL) {
		const char *gt = strchr(lt, '>');
		if (gt == NULL || strchr(gt + 1, '<') != NULL)
			return NULL;
		start = lt + 1;
		end = gt;
	} else {
		start = v;
		end = v + strlen(v);
	}
	const char *at = NULL;
	for (const char *p = start; p < end; p++)
		if (*p == '@')
			at = p;
	if (at == NULL || at + 1 >= end)
		return NULL;
	size_t n = (size_t)(end - (at + 1));
	while (n > 0 && isspace((unsigned char)at[n]))
		n--;
	char *d = xstrndup(at + 1, n);
	d[strcspn(d, " \t>;")] = '\0';
	if (d[0] == '\0' || strchr(d, '.') == NULL) {
		free(d);
		return NULL;
	}
	if (d[strlen(d) - 1] == '.')
		d[strlen(d) - 1] = '\0';
	return util_strlower(d);
}

/* Value of tag in a DMARC record (case-insensitive names). Caller frees. */
static char *
dmarc_tag(const char *rec, const char *name)
{
	char *copy = xstrdup(rec), *save = NULL, *val = NULL;

	for (char *t = strtok_r(copy, ";", &save); t != NULL;
	    t = strtok_r(NULL, ";", &save)) {
		while (isspace((unsigned char)*t))
			t++;
		char *eq = strchr(t, '=');
		if (eq == NULL)
			continue;
		char *ne = eq;
		while (ne > t && isspace((unsigned char)ne[-1]))
			ne--;
		if ((size_t)(ne - t) == strlen(name) &&
		    strncasecmp(t, name, strlen(name)) == 0) {
			char *v = eq + 1;
			while (isspace((unsigned char)*v))
				v++;
			size_t l = strlen(v);
			while (l > 0 && isspace((unsigned char)v[l - 1]))
				l--;
			val = xstrndup(v, l);
			break;
		}
	}
	free(copy);
	return val;
}

/* 1 found, 0 none, -1 temperror. */
static int
dmarc_fetch(const struct dmarc_request *req, const char *domain,
    char **rec_r)
{
	char *name = xasprintf("_dmarc.%s", domain);
	char **ans = NULL;
	size_t n = 0, found = 0;
	enum spf_dns_status st = req->lookup(req->ctx, SPF_Q_TXT, name, &ans,
	    &n);

	free(name);
	if (st == SPF_DNS_TEMPFAIL)
		return -1;
	if (st != SPF_DNS_OK)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (strncmp(ans[i], "v=DMARC1", 8) == 0 &&
		    (ans[i][8] == ';' || ans[i][8] == ' ' ||
		    ans[i][8] == '\0')) {
			if (found++ == 0)
				*rec_r = xstrdup(ans[i]);
		}
	}
	for (size_t i = 0; i < n; i++)
		free(ans[i]);
	free(ans);
	if (found > 1) {	/* 6.6.3: more than one: no policy */
		free(*rec_r);
		*rec_r = NULL;
		return 0;
	}
	return found == 1;
}

static bool
dmarc_aligned(const char *a, const char *b, bool strict)
{
	if (a == NULL || b == NULL)
		return false;
	if (strict)
		return strcasecmp(a, b) == 0;
	char *oa = dmarc_org_domain(a), *ob = dmarc_org_domain(b);
	bool r = strcasecmp(oa, ob) == 0;
	free(oa);
	free(ob);
	return r;
}

static int
dmarc_parse_policy(const char *v, enum dmarc_policy *p)
{
	if (v == NULL)
		return -1;
	if (strcasecmp(v, "none") == 0)
		*p = DMARC_P_NONE;
	else if (strcasecmp(v, "quarantine") == 0)
		*p = DMARC_P_QUARANTINE;
	else if (strcasecmp(v, "reject") == 0)
		*p = DMARC_P_REJECT;
	else
		return -1;
	return 0;
}

void
dmarc_check(const struct dmarc_request *req, struct dmarc_outcome *out)
{
	char *rec = NULL, *org = dmarc_org_domain(req->from_domain);
	bool from_org = false;
	int r;

	memset(out, 0, sizeof(*out));
	r = dmarc_fetch(req, req->from_domain, &rec);
	if (r == 0 && strcasecmp(org, req->from_domain) != 0) {
		r = dmarc_fetch(req, org, &rec);
		from_org = true;
	}
	if (r < 0) {
		out->result = DMARC_TEMPERROR;
		out->why = "DNS error fetching the DMARC record";
		goto done;
	}
	if (r == 0) {
		out->result = DMARC_NONE;
		out->why = "no DMARC record";
		goto done;
	}

	char *p = dmarc_tag(rec, "p"), *sp = dmarc_tag(rec, "sp");
	char *adkim = dmarc_tag(rec, "adkim"), *aspf = dmarc_tag(rec, "aspf");
	char *pct = dmarc_tag(rec, "pct");
	enum dmarc_policy pol;

	if (dmarc_parse_policy(p, &pol) < 0) {
		/* 6.6.3: no valid p= -> no policy (rua-only records
		 * count as p=none, which gives the same behaviour). */
		out->result = DMARC_NONE;
		out->why = "DMARC record without a valid p=";
	} else {
		enum dmarc_policy spol;
		if (from_org && sp != NULL && dmarc_parse_policy(sp, &spol) == 0)
			pol = spol;
		out->policy = pol;
		bool sdkim = adkim && (adkim[0] == 's' || adkim[0] == 'S');
		bool sspf = aspf && (aspf[0] == 's' || aspf[0] == 'S');
		bool pass = false;

		if (req->spf == SPF_PASS &&
		    dmarc_aligned(req->spf_domain, req->from_domain, sspf)) {
			pass = true;
			out->why = "aligned SPF pass";
		}
		for (size_t i = 0; !pass && i < req->ndkim; i++) {
			if (dmarc_aligned(req->dkim[i].domain,
			    req->from_domain, sdkim)) {
				pass = true;
				out->why = "aligned DKIM pass";
			}
		}
		out->result = pass ? DMARC_PASS : DMARC_FAIL;
		if (!pass) {
			long pc = pct ? strtol(pct, NULL, 10) : 100;
			if (pc < 0) pc = 0;
			if (pc > 100) pc = 100;
			out->apply = pc == 100 ||
			    (long)(util_random64() % 100) < pc;
			out->why = "no aligned SPF or DKIM pass";
		}
	}
	free(p);
	free(sp);
	free(adkim);
	free(aspf);
	free(pct);
done:
	free(rec);
	free(org);
}
