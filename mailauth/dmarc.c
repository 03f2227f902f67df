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

void
dmarc_check(const struct dmarc_request *req, struct dmarc_outcome *out)
{
	struct dmarc_record rec;
	char *name = NULL;
	bool at_org = false, pass = false;
	const char *why = NULL;
	enum dmarc_found f;

	memset(out, 0, sizeof(*out));
	f = dmarc_discover(req->lookup, req->ctx, req->from_domain, &rec,
	    &name, &at_org, &why);
	free(name);
	if (f != DMARC_FOUND) {
		out->result = f == DMARC_FOUND_TEMPERROR ? DMARC_TEMPERROR :
		    DMARC_NONE;
		out->why = why;
		dmarc_record_clear(&rec);
		return;
	}
	out->policy = dmarc_record_policy(&rec, at_org);
	if (req->spf == SPF_PASS && dmarc_aligned(req->spf_domain,
	    req->from_domain, rec.aspf_strict)) {
		pass = true;
		out->why = "aligned SPF pass";
	}
	for (size_t i = 0; !pass && i < req->ndkim; i++) {
		if (dmarc_aligned(req->dkim[i].domain, req->from_domain,
		    rec.adkim_strict)) {
			pass = true;
			out->why = "aligned DKIM pass";
		}
	}
	out->result = pass ? DMARC_PASS : DMARC_FAIL;
	if (!pass) {
		bool sampled = rec.pct == 100 ||
		    util_random64() % 100 < rec.pct;
		out->why = "no aligned SPF or DKIM pass";
		/* 6.6.4: a message pct leaves out gets the next less
		 * restrictive policy, so a rollout never relaxes what was
		 * there before. */
		out->disposition = sampled ? out->policy :
		    out->policy == DMARC_P_REJECT ? DMARC_P_QUARANTINE :
		    DMARC_P_NONE;
		out->apply = out->disposition != DMARC_P_NONE;
	}
	dmarc_record_clear(&rec);
}
