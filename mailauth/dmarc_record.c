/*
 * DMARC records (dmarc.h): the tag-list parser with every tag's default
 * (RFC 7489 6.3, 6.4) and policy discovery at the From domain, then at the
 * organizational domain (6.6.3). Not owned: alignment and the verdict
 * (dmarc.c).
 */
#include "mailauth/dmarc.h"
#include "common/util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool dmarc_is_wsp(char c);
static char *dmarc_tag(const char *rec, const char *name);
static int dmarc_parse_policy(const char *v, enum dmarc_policy *p);
static bool dmarc_uri_valid(const char *s, size_t len);
static bool dmarc_rua_valid(const char *v);
static int dmarc_fetch(spf_lookup_fn *lookup, void *ctx, const char *name,
    struct dmarc_record *rec, size_t *nfound_r);

static bool
dmarc_is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* Value of tag name (case-insensitive: 6.4 spells the names as ABNF
 * strings) with WSP around it trimmed; the first occurrence wins.
 * Caller frees; NULL if absent. */
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

/* dmarc-uri = URI [ "!" 1*DIGIT [ "k" / "m" / "g" / "t" ] ] (6.4), with
 * URI checked as far as RFC 3986 3.1 goes: a scheme, ':', and something
 * after it without white space or controls. */
static bool
dmarc_uri_valid(const char *s, size_t len)
{
	const char *bang = memchr(s, '!', len);
	size_t i;

	if (bang != NULL) {
		size_t j = (size_t)(bang - s) + 1, d = 0;
		while (j < len && isdigit((unsigned char)s[j])) {
			j++;
			d++;
		}
		if (j < len && strchr("kmgt", s[j]) != NULL)
			j++;
		if (d == 0 || j != len)
			return false;
		len = (size_t)(bang - s);
	}
	if (len == 0 || !isalpha((unsigned char)s[0]))
		return false;
	for (i = 1; i < len && s[i] != ':'; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("+-.", s[i]))
			return false;
	if (i >= len - 1)
		return false;	/* no ':' or nothing after it */
	for (i++; i < len; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

/* At least one valid URI in the comma-separated list (6.6.3 step 6). */
static bool
dmarc_rua_valid(const char *v)
{
	while (v != NULL && *v != '\0') {
		const char *comma = strchr(v, ','), *e;
		e = comma != NULL ? comma : v + strlen(v);
		while (v < e && dmarc_is_wsp(*v))
			v++;
		const char *t = e;
		while (t > v && dmarc_is_wsp(t[-1]))
			t--;
		if (dmarc_uri_valid(v, (size_t)(t - v)))
			return true;
		v = comma != NULL ? comma + 1 : NULL;
	}
	return false;
}

int
dmarc_record_parse(const char *txt, struct dmarc_record *r)
{
	const char *c = txt;

	memset(r, 0, sizeof(*r));
	/* dmarc-version = "v" *WSP "=" *WSP %x44.4d.41.52.43.31: the name
	 * case-insensitive, "DMARC1" exact; then a separator or the end. */
	if (*c != 'v' && *c != 'V')
		return -1;
	for (c++; dmarc_is_wsp(*c); c++)
		;
	if (*c++ != '=')
		return -1;
	while (dmarc_is_wsp(*c))
		c++;
	if (strncmp(c, "DMARC1", 6) != 0)
		return -1;
	for (c += 6; dmarc_is_wsp(*c); c++)
		;
	if (*c != ';' && *c != '\0')
		return -1;

	r->text = xstrdup(txt);
	r->p_raw = dmarc_tag(txt, "p");
	r->sp_raw = dmarc_tag(txt, "sp");
	r->pct_raw = dmarc_tag(txt, "pct");
	r->adkim_raw = dmarc_tag(txt, "adkim");
	r->aspf_raw = dmarc_tag(txt, "aspf");
	r->rua = dmarc_tag(txt, "rua");

	r->p_valid = dmarc_parse_policy(r->p_raw, &r->p) == 0;
	if (!r->p_valid)
		r->p = DMARC_P_NONE;
	r->sp_valid = r->sp_raw == NULL ||
	    dmarc_parse_policy(r->sp_raw, &r->sp) == 0;
	if (r->sp_raw == NULL || !r->sp_valid)
		r->sp = r->p;
	r->rua_valid = dmarc_rua_valid(r->rua);
	/* 6.6.3 step 6.1: act as if "v=DMARC1; p=none" was found; without
	 * a valid rua= there is no policy at all (6.2, dmarc_discover). */
	r->as_none = (!r->p_valid || !r->sp_valid) && r->rua_valid;

	/* 6.4: pct = 1*3DIGIT, 0-100. A typo must not turn enforcement
	 * off: anything else is the default, 100 (6.3: syntax errors in
	 * the rest of the record give the default value). */
	r->pct = 100;
	r->pct_valid = r->pct_raw == NULL;
	if (r->pct_raw != NULL) {
		size_t l = strlen(r->pct_raw);
		if (l >= 1 && l <= 3 &&
		    strspn(r->pct_raw, "0123456789") == l &&
		    atoi(r->pct_raw) <= 100) {
			r->pct = (unsigned)atoi(r->pct_raw);
			r->pct_valid = true;
		}
	}
	/* adkim / aspf = "r" / "s"; default r. */
	r->adkim_strict = r->adkim_raw != NULL &&
	    strcasecmp(r->adkim_raw, "s") == 0;
	r->adkim_valid = r->adkim_raw == NULL || r->adkim_strict ||
	    strcasecmp(r->adkim_raw, "r") == 0;
	r->aspf_strict = r->aspf_raw != NULL &&
	    strcasecmp(r->aspf_raw, "s") == 0;
	r->aspf_valid = r->aspf_raw == NULL || r->aspf_strict ||
	    strcasecmp(r->aspf_raw, "r") == 0;
	return 0;
}

enum dmarc_policy
dmarc_record_policy(const struct dmarc_record *r, bool at_org)
{
	if (r->as_none)
		return DMARC_P_NONE;
	/* 6.3: sp= is for subdomains of the organizational domain, so it
	 * applies only when the record was found there. */
	return at_org ? r->sp : r->p;
}

void
dmarc_record_clear(struct dmarc_record *r)
{
	free(r->text);
	free(r->p_raw);
	free(r->sp_raw);
	free(r->pct_raw);
	free(r->adkim_raw);
	free(r->aspf_raw);
	free(r->rua);
	memset(r, 0, sizeof(*r));
}

/* The DMARC records at name (6.6.3 steps 1-2, 3-4): the first parsed into
 * rec, their number in *nfound_r. 0, or -1 on a DNS temporary error. */
static int
dmarc_fetch(spf_lookup_fn *lookup, void *ctx, const char *name,
    struct dmarc_record *rec, size_t *nfound_r)
{
	char **ans = NULL;
	size_t n = 0;
	enum spf_dns_status st = lookup(ctx, SPF_Q_TXT, name, &ans, &n);

	*nfound_r = 0;
	if (st == SPF_DNS_TEMPFAIL)
		return -1;
	for (size_t i = 0; st == SPF_DNS_OK && i < n; i++) {
		struct dmarc_record r;
		if (dmarc_record_parse(ans[i], &r) == 0 &&
		    (*nfound_r)++ == 0)
			*rec = r;
		else
			dmarc_record_clear(&r);
	}
	for (size_t i = 0; i < n; i++)
		free(ans[i]);
	free(ans);
	return 0;
}

enum dmarc_found
dmarc_discover(spf_lookup_fn *lookup, void *ctx, const char *from_domain,
    struct dmarc_record *rec, char **name_r, bool *at_org_r,
    const char **why_r)
{
	size_t n = 0;

	memset(rec, 0, sizeof(*rec));
	*at_org_r = false;
	*why_r = NULL;
	*name_r = xasprintf("_dmarc.%s", from_domain);
	if (dmarc_fetch(lookup, ctx, *name_r, rec, &n) < 0) {
		*why_r = "DNS error fetching the DMARC record";
		return DMARC_FOUND_TEMPERROR;
	}
	if (n == 0) {
		/* Step 3: only an empty set moves on to the org domain. */
		char *org = dmarc_org_domain(from_domain);
		if (strcasecmp(org, from_domain) != 0) {
			free(*name_r);
			*name_r = xasprintf("_dmarc.%s", org);
			*at_org_r = true;
			if (dmarc_fetch(lookup, ctx, *name_r, rec, &n) < 0) {
				free(org);
				*why_r = "DNS error fetching the DMARC record";
				return DMARC_FOUND_TEMPERROR;
			}
		}
		free(org);
	}
	if (n == 0) {
		*why_r = "no DMARC record";
		return DMARC_FOUND_NONE;
	}
	if (n > 1) {
		/* Step 5: several records, no policy. */
		*why_r = "more than one DMARC record";
		return DMARC_FOUND_UNUSABLE;
	}
	if ((!rec->p_valid || !rec->sp_valid) && !rec->as_none) {
		*why_r = !rec->p_valid ?
		    "DMARC record without a valid p= and without a valid rua=" :
		    "DMARC record with an invalid sp= and without a valid rua=";
		return DMARC_FOUND_UNUSABLE;
	}
	return DMARC_FOUND;
}
