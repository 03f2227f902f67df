/*
 * The SPF mechanism table (RFC 7208 5): one row per mechanism with its
 * syntax (checked for every term before any is evaluated) and its
 * evaluation, the address matching they share, and the client's
 * validated PTR names (the ptr mechanism and %{p}). The record loop,
 * modifiers and limits are spf.c's.
 */
#include "mailauth/spf_int.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int spf_parse_none(struct spf_term *, char *);
static int spf_parse_domain(struct spf_term *, char *);
static int spf_parse_opt_domain(struct spf_term *, char *);
static int spf_parse_dual(struct spf_term *, char *);
static int spf_parse_ip4(struct spf_term *, char *);
static int spf_parse_ip6(struct spf_term *, char *);
static enum spf_eval spf_eval_all(struct spf_ctx *, const char *,
    const char *, const struct spf_term *, enum spf_result *);
static enum spf_eval spf_eval_include(struct spf_ctx *, const char *,
    const char *, const struct spf_term *, enum spf_result *);
static enum spf_eval spf_eval_a(struct spf_ctx *, const char *,
    const char *, const struct spf_term *, enum spf_result *);
static enum spf_eval spf_eval_mx(struct spf_ctx *, const char *,
    const char *, const struct spf_term *, enum spf_result *);
static enum spf_eval spf_eval_ptr(struct spf_ctx *, const char *,
    const char *, const struct spf_term *, enum spf_result *);
static enum spf_eval spf_eval_ip(struct spf_ctx *, const char *,
    const char *, const struct spf_term *, enum spf_result *);
static enum spf_eval spf_eval_exists(struct spf_ctx *, const char *,
    const char *, const struct spf_term *, enum spf_result *);

static const struct spf_mech spf_mechs[] = {
	{ "all", spf_parse_none, false, spf_eval_all },
	{ "include", spf_parse_domain, true, spf_eval_include },
	{ "a", spf_parse_dual, true, spf_eval_a },
	{ "mx", spf_parse_dual, true, spf_eval_mx },
	{ "ptr", spf_parse_opt_domain, true, spf_eval_ptr },
	{ "ip4", spf_parse_ip4, false, spf_eval_ip },
	{ "ip6", spf_parse_ip6, false, spf_eval_ip },
	{ "exists", spf_parse_domain, true, spf_eval_exists },
};

const struct spf_mech *
spf_mech_find(const char *name, size_t nl)
{
	for (size_t i = 0; i < nitems(spf_mechs); i++)
		if (strlen(spf_mechs[i].name) == nl &&
		    strncasecmp(name, spf_mechs[i].name, nl) == 0)
			return &spf_mechs[i];
	return NULL;
}

/* ---- matching ---- */

static bool
spf_ip_in(const struct spf_ctx *c, const char *addr, int cidr4, int cidr6)
{
	unsigned char a[16];
	int bits;

	if (c->family == 4) {
		if (inet_pton(AF_INET, addr, a) != 1)
			return false;
		bits = cidr4;
	} else {
		if (inet_pton(AF_INET6, addr, a) != 1)
			return false;
		bits = cidr6;
	}
	for (int i = 0; i < bits / 8; i++)
		if (a[i] != c->ip[i])
			return false;
	if (bits % 8) {
		unsigned char mask = (unsigned char)(0xff << (8 - bits % 8));
		if ((a[bits / 8] & mask) != (c->ip[bits / 8] & mask))
			return false;
	}
	return true;
}

/* Does any A/AAAA of host match the client (with the cidr lengths)?
 * 1 match, 0 no, -1 temperror, -2 permerror (void limit). */
static int
spf_match_host(struct spf_ctx *c, const char *host, int c4, int c6)
{
	char **ans;
	size_t n;
	bool perm = false;
	enum spf_dns_status st = spf_lookup(c,
	    c->family == 4 ? SPF_Q_A : SPF_Q_AAAA, host, &ans, &n, &perm);
	int m = 0;

	if (perm)
		return -2;
	if (st == SPF_DNS_TEMPFAIL)
		return -1;
	for (size_t i = 0; i < n && !m; i++)
		m = spf_ip_in(c, ans[i], c4, c6);
	spf_free_answers(ans, n);
	return m;
}

/* ---- validated names (5.5) ---- */

/* The client's PTR names (the first SPF_MAX_PTR_NAMES, without a final
 * dot). counted: a void answer counts (the ptr mechanism). The status;
 * on SPF_DNS_OK free the names with spf_free_answers. */
static enum spf_dns_status
spf_ptr_names(struct spf_ctx *c, bool counted, char ***names_r,
    size_t *n_r, bool *perm_r)
{
	char *dotted = spf_ip_dotted(c), *parts[32], *save = NULL, *qname;
	size_t np = 0, qlen = 0, qsize = 128;
	enum spf_dns_status st;

	for (char *t = strtok_r(dotted, ".", &save); t && np < 32;
	    t = strtok_r(NULL, ".", &save))
		parts[np++] = t;
	qname = xmalloc(qsize);
	qname[0] = '\0';
	for (size_t i = np; i-- > 0;)
		qlen += (size_t)snprintf(qname + qlen, qsize - qlen, "%s.",
		    parts[i]);
	snprintf(qname + qlen, qsize - qlen, "%s",
	    c->family == 4 ? "in-addr.arpa" : "ip6.arpa");
	free(dotted);
	if (counted) {
		st = spf_lookup(c, SPF_Q_PTR, qname, names_r, n_r, perm_r);
	} else {
		st = c->req->lookup(c->req->ctx, SPF_Q_PTR, qname, names_r,
		    n_r);
		if (st == SPF_DNS_OK && *n_r == 0)
			st = SPF_DNS_NONE;
		if (st != SPF_DNS_OK) {
			spf_free_answers(*names_r, *n_r);
			*names_r = NULL;
			*n_r = 0;
		}
	}
	free(qname);
	if (st != SPF_DNS_OK)
		return st;
	for (size_t i = 0; i < *n_r; i++) {
		size_t nl = strlen((*names_r)[i]);

		if (nl > 0 && (*names_r)[i][nl - 1] == '.')
			(*names_r)[i][nl - 1] = '\0';
	}
	return st;
}

/* Does an A/AAAA of name give back the client? Errors are no (5.5). */
static bool
spf_ptr_confirms(struct spf_ctx *c, const char *name)
{
	char **addrs;
	size_t na;
	bool m = false;

	if (c->req->lookup(c->req->ctx, c->family == 4 ? SPF_Q_A : SPF_Q_AAAA,
	    name, &addrs, &na) != SPF_DNS_OK)
		return false;
	for (size_t j = 0; j < na && !m; j++)
		m = spf_ip_in(c, addrs[j], 32, 128);
	spf_free_answers(addrs, na);
	return m;
}

/* 0 name is target, 1 a subdomain of it, -1 neither. */
static int
spf_name_under(const char *name, const char *target)
{
	size_t nl = strlen(name), tl = strlen(target);

	if (tl > 0 && target[tl - 1] == '.')
		tl--;
	if (nl == tl)
		return strncasecmp(name, target, tl) == 0 ? 0 : -1;
	return nl > tl && name[nl - tl - 1] == '.' &&
	    strncasecmp(name + nl - tl, target, tl) == 0 ? 1 : -1;
}

/* ptr mechanism: 1 if a validated name is target or under it, 0 no, -2
 * permerror (void limit). */
static int
spf_match_ptr(struct spf_ctx *c, const char *target)
{
	char **names;
	size_t n;
	bool perm = false;
	int m = 0;

	if (spf_ptr_names(c, true, &names, &n, &perm) != SPF_DNS_OK)
		return perm ? -2 : 0;	/* a failed PTR lookup: no match */
	for (size_t i = 0; i < n && i < SPF_MAX_PTR_NAMES && !m; i++)
		m = spf_name_under(names[i], target) >= 0 &&
		    spf_ptr_confirms(c, names[i]);
	spf_free_answers(names, n);
	return m;
}

char *
spf_validated_name(struct spf_ctx *c, const char *domain)
{
	char **names;
	size_t n;
	bool perm = false;
	const char *best = "unknown";
	int best_rank = 3;

	if (!c->validated_done) {
		c->validated_done = true;
		if (spf_ptr_names(c, false, &names, &n, &perm) == SPF_DNS_OK) {
			c->validated = xcalloc(n, sizeof(char *));
			for (size_t i = 0; i < n && i < SPF_MAX_PTR_NAMES; i++)
				if (spf_ptr_confirms(c, names[i]))
					c->validated[c->nvalidated++] =
					    xstrdup(names[i]);
			spf_free_answers(names, n);
		}
	}
	/* 7.3: domain itself, else a subdomain of it, else any. */
	for (size_t i = 0; i < c->nvalidated && best_rank > 0; i++) {
		int under = spf_name_under(c->validated[i], domain);
		int rank = under == 0 ? 0 : under == 1 ? 1 : 2;

		if (rank < best_rank) {
			best = c->validated[i];
			best_rank = rank;
		}
	}
	return xstrdup(best);
}

/* ---- syntax ---- */

/* "all": nothing may follow. */
static int
spf_parse_none(struct spf_term *t, char *arg)
{
	return arg == NULL ? 0 : -1;
}

/* "include:", "exists:": a domain-spec is required. */
static int
spf_parse_domain(struct spf_term *t, char *arg)
{
	if (arg == NULL || *arg != ':' || !spf_domain_spec_is_valid(arg + 1))
		return -1;
	t->spec = arg + 1;
	return 0;
}

/* "ptr[:domain-spec]" */
static int
spf_parse_opt_domain(struct spf_term *t, char *arg)
{
	if (arg == NULL)
		return 0;
	return spf_parse_domain(t, arg);
}

/* A CIDR length at *p (leading zeros refused, 4.6.1): 0..max, or -1. */
static int
spf_parse_len(const char **p, int max)
{
	int v = 0, digits = 0;

	if (**p == '0' && isdigit((unsigned char)(*p)[1]))
		return -1;
	while (isdigit((unsigned char)**p) && digits < 4) {
		v = v * 10 + (**p - '0');
		(*p)++;
		digits++;
	}
	return digits == 0 || v > max ? -1 : v;
}

/* dual-cidr-length = [ "/" ip4-cidr-length ] [ "//" ip6-cidr-length ],
 * all of s. 0 / -1. */
static int
spf_parse_cidr(const char *s, int *c4, int *c6)
{
	if (s[0] == '/' && s[1] != '/') {
		s++;
		if ((*c4 = spf_parse_len(&s, 32)) < 0)
			return -1;
	}
	if (s[0] == '/' && s[1] == '/') {
		s += 2;
		if ((*c6 = spf_parse_len(&s, 128)) < 0)
			return -1;
	}
	return *s == '\0' ? 0 : -1;
}

/* Where a dual-cidr-length at the end of spec starts (its end if there
 * is none): only "/digits" and "//digits" at the very end are lengths,
 * since a domain-spec may hold '/' itself (7.1: a-colon-domain). */
static char *
spf_cidr_start(char *spec)
{
	char *end = spec + strlen(spec), *p = end;

	while (p > spec && isdigit((unsigned char)p[-1]))
		p--;
	if (p < end && p - spec >= 2 && p[-1] == '/' && p[-2] == '/')
		end = p - 2;
	p = end;
	while (p > spec && isdigit((unsigned char)p[-1]))
		p--;
	if (p < end && p - spec >= 1 && p[-1] == '/')
		end = p - 1;
	return end;
}

/* "a" / "mx" [":" domain-spec] [dual-cidr-length] */
static int
spf_parse_dual(struct spf_term *t, char *arg)
{
	char *cidr;

	t->c4 = 32;
	t->c6 = 128;
	if (arg == NULL)
		return 0;
	if (*arg == '/')
		return spf_parse_cidr(arg, &t->c4, &t->c6);
	if (*arg != ':')
		return -1;
	cidr = spf_cidr_start(arg + 1);
	if (spf_parse_cidr(cidr, &t->c4, &t->c6) < 0)
		return -1;
	*cidr = '\0';
	if (!spf_domain_spec_is_valid(arg + 1))
		return -1;
	t->spec = arg + 1;
	return 0;
}

/* "ip4:" / "ip6:" network ["/" length]; no leading zeros (4.6.1). */
static int
spf_parse_ip(struct spf_term *t, char *arg, bool v6)
{
	unsigned char tmp[16];
	int bits = v6 ? 128 : 32;
	char *slash;

	if (arg == NULL || *arg != ':')
		return -1;
	if ((slash = strchr(arg + 1, '/')) != NULL) {
		const char *p = slash + 1;

		*slash = '\0';
		if ((bits = spf_parse_len(&p, v6 ? 128 : 32)) < 0 ||
		    *p != '\0')
			return -1;
	}
	if (inet_pton(v6 ? AF_INET6 : AF_INET, arg + 1, tmp) != 1)
		return -1;
	t->addr = arg + 1;
	t->c4 = t->c6 = bits;
	t->v6 = v6;
	return 0;
}

static int
spf_parse_ip4(struct spf_term *t, char *arg)
{
	return spf_parse_ip(t, arg, false);
}

static int
spf_parse_ip6(struct spf_term *t, char *arg)
{
	return spf_parse_ip(t, arg, true);
}

/* ---- evaluation ---- */

/* The term's target domain: its domain-spec expanded, or <domain>.
 * Caller frees. */
static char *
spf_target(struct spf_ctx *c, const char *domain, const struct spf_term *t)
{
	char *target = t->spec != NULL ? spf_domain_spec(c, domain, t->spec) :
	    xstrdup(domain);

	/* The syntax was checked when the record was parsed. */
	assert(target != NULL);
	return target;
}

/* A spf_match_host-style answer (1, 0, -1 temperror, -2 permerror) as an
 * evaluation. */
static enum spf_eval
spf_eval_match(struct spf_ctx *c, int m, enum spf_result *result_r)
{
	if (m == -1) {
		c->why = "DNS error";
		*result_r = SPF_TEMPERROR;
		return SPF_EV_STOP;
	}
	if (m == -2) {
		*result_r = SPF_PERMERROR;
		return SPF_EV_STOP;
	}
	return m == 1 ? SPF_EV_MATCH : SPF_EV_NOMATCH;
}

/* 5.1 */
static enum spf_eval
spf_eval_all(struct spf_ctx *c, const char *domain, const char *sender,
    const struct spf_term *t, enum spf_result *result_r)
{
	return SPF_EV_MATCH;
}

/* 5.2: the included record's result decides. */
static enum spf_eval
spf_eval_include(struct spf_ctx *c, const char *domain, const char *sender,
    const struct spf_term *t, enum spf_result *result_r)
{
	char *target = spf_target(c, domain, t);
	enum spf_result ir;

	c->include_depth++;
	ir = spf_check_host(c, target, sender);
	c->include_depth--;
	free(target);
	switch (ir) {
	case SPF_PASS:
		return SPF_EV_MATCH;
	case SPF_TEMPERROR:
		*result_r = SPF_TEMPERROR;
		return SPF_EV_STOP;
	case SPF_NONE:
		c->why = "include of a domain without SPF";
		/* FALLTHROUGH */
	case SPF_PERMERROR:
		*result_r = SPF_PERMERROR;
		return SPF_EV_STOP;
	default:
		return SPF_EV_NOMATCH;
	}
}

/* 5.3 */
static enum spf_eval
spf_eval_a(struct spf_ctx *c, const char *domain, const char *sender,
    const struct spf_term *t, enum spf_result *result_r)
{
	char *target = spf_target(c, domain, t);
	int m = spf_match_host(c, target, t->c4, t->c6);

	free(target);
	return spf_eval_match(c, m, result_r);
}

/* 5.4: no implicit MX here; at most 10 exchanges. */
static enum spf_eval
spf_eval_mx(struct spf_ctx *c, const char *domain, const char *sender,
    const struct spf_term *t, enum spf_result *result_r)
{
	char *target = spf_target(c, domain, t), **mx;
	size_t n;
	bool perm = false;
	enum spf_dns_status st;
	int m = 0;

	st = spf_lookup(c, SPF_Q_MX, target, &mx, &n, &perm);
	if (perm)
		m = -2;
	else if (st == SPF_DNS_TEMPFAIL)
		m = -1;
	else if (n > SPF_MAX_MX_NAMES) {
		c->why = "more than 10 MX names";
		m = -2;
	}
	for (size_t i = 0; i < n && m == 0; i++)
		m = spf_match_host(c, mx[i], t->c4, t->c6);
	spf_free_answers(mx, n);
	free(target);
	return spf_eval_match(c, m, result_r);
}

/* 5.5 */
static enum spf_eval
spf_eval_ptr(struct spf_ctx *c, const char *domain, const char *sender,
    const struct spf_term *t, enum spf_result *result_r)
{
	char *target = spf_target(c, domain, t);
	int m = spf_match_ptr(c, target);

	free(target);
	return spf_eval_match(c, m, result_r);
}

/* 5.6: a network of the other family never matches. */
static enum spf_eval
spf_eval_ip(struct spf_ctx *c, const char *domain, const char *sender,
    const struct spf_term *t, enum spf_result *result_r)
{
	if ((c->family == 6) != t->v6)
		return SPF_EV_NOMATCH;
	return spf_ip_in(c, t->addr, t->c4, t->c6) ? SPF_EV_MATCH :
	    SPF_EV_NOMATCH;
}

/* 5.7: any A record matches, whatever its address. */
static enum spf_eval
spf_eval_exists(struct spf_ctx *c, const char *domain, const char *sender,
    const struct spf_term *t, enum spf_result *result_r)
{
	char *target = spf_target(c, domain, t), **ans;
	size_t n;
	bool perm = false;
	enum spf_dns_status st;

	st = spf_lookup(c, SPF_Q_A, target, &ans, &n, &perm);
	free(target);
	spf_free_answers(ans, n);
	if (perm) {
		*result_r = SPF_PERMERROR;
		return SPF_EV_STOP;
	}
	if (st == SPF_DNS_TEMPFAIL) {
		c->why = "DNS error";
		*result_r = SPF_TEMPERROR;
		return SPF_EV_STOP;
	}
	return st == SPF_DNS_OK ? SPF_EV_MATCH : SPF_EV_NOMATCH;
}
