/*
 * SPF check_host() (RFC 7208 4-6). Owns record selection, the mechanism
 * table (one row per mechanism: name, syntax, evaluation), the modifier
 * table, matching and the lookup limits; macros are spf_macro.c's and
 * the DNS is the caller's lookup function. Recursion (include, redirect)
 * is bounded by the 10-lookup limit, which every include/redirect counts
 * against, so the depth can never exceed 10.
 */
#include "mailauth/spf_int.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static enum spf_result spf_check_host(struct spf_ctx *, const char *,
    const char *);

static const char *const spf_result_names[SPF_RESULT_COUNT] = {
	"none", "neutral", "pass", "fail", "softfail", "temperror",
	"permerror",
};

const char *
spf_result_str(enum spf_result r)
{
	return spf_result_names[r];
}

static void
spf_free_answers(char **a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(a[i]);
	free(a);
}

/* A lookup counted against the void limit when it finds nothing.
 * Returns the status; *permerror_r set when the void limit is passed. */
static enum spf_dns_status
spf_lookup(struct spf_ctx *c, enum spf_qtype t, const char *name,
    char ***ans, size_t *n, bool *permerror_r)
{
	enum spf_dns_status st;

	*ans = NULL;
	*n = 0;
	st = c->req->lookup(c->req->ctx, t, name, ans, n);
	if (st == SPF_DNS_OK && *n == 0)
		st = SPF_DNS_NONE;
	if (st == SPF_DNS_NONE) {
		if (++c->voids > SPF_MAX_VOID) {
			c->why = "too many void lookups";
			*permerror_r = true;
		}
	}
	return st;
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

/* Parse "[domain-spec][/cidr4][//cidr6]" after "a" / "mx". */
static int
spf_parse_dual_cidr(char *arg, int *c4, int *c6)
{
	char *slash = strstr(arg, "//");

	*c4 = 32;
	*c6 = 128;
	if (slash != NULL) {
		char *end;
		long v = strtol(slash + 2, &end, 10);
		if (*end || slash[2] == '\0' || v < 0 || v > 128 ||
		    (slash[2] == '0' && slash[3] != '\0'))
			return -1;
		*c6 = (int)v;
		*slash = '\0';
	}
	slash = strrchr(arg, '/');
	if (slash != NULL) {
		char *end;
		long v = strtol(slash + 1, &end, 10);
		if (*end || slash[1] == '\0' || v < 0 || v > 32 ||
		    (slash[1] == '0' && slash[2] != '\0'))
			return -1;
		*c4 = (int)v;
		*slash = '\0';
	}
	return 0;
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

/* ptr mechanism / %{p}: validated names of the client (5.5). Returns 1 if
 * a validated name equals or ends in .target. */
static int
spf_match_ptr(struct spf_ctx *c, const char *target)
{
	char *rev = spf_ip_dotted(c), *qname;
	char **names;
	size_t n;
	bool perm = false;
	int m = 0;

	/* reverse the dotted form into the in-addr/ip6 name */
	char *parts[32];
	size_t np = 0;
	char *save = NULL;
	for (char *t = strtok_r(rev, ".", &save); t && np < 32;
	    t = strtok_r(NULL, ".", &save))
		parts[np++] = t;
	size_t qlen = 0;
	qname = xmalloc(128);
	qname[0] = '\0';
	for (size_t i = np; i-- > 0;) {
		qlen += (size_t)snprintf(qname + qlen, 128 - qlen, "%s.",
		    parts[i]);
	}
	snprintf(qname + qlen, 128 - qlen, "%s",
	    c->family == 4 ? "in-addr.arpa" : "ip6.arpa");
	free(rev);

	enum spf_dns_status st = spf_lookup(c, SPF_Q_PTR, qname, &names, &n,
	    &perm);
	free(qname);
	if (perm)
		return -2;
	if (st != SPF_DNS_OK)
		return 0;	/* 5.5: a failed PTR lookup is no match */
	for (size_t i = 0; i < n && i < SPF_MAX_PTR_NAMES && !m; i++) {
		size_t nl = strlen(names[i]);
		if (nl > 0 && names[i][nl - 1] == '.')
			names[i][--nl] = '\0';
		size_t tl = strlen(target);
		bool sub = nl == tl ? strcasecmp(names[i], target) == 0 :
		    nl > tl && names[i][nl - tl - 1] == '.' &&
		    strcasecmp(names[i] + nl - tl, target) == 0;
		if (!sub)
			continue;
		/* forward-confirm; errors here are no match (5.5) */
		char **addrs;
		size_t na;
		enum spf_dns_status s2 = c->req->lookup(c->req->ctx,
		    c->family == 4 ? SPF_Q_A : SPF_Q_AAAA, names[i], &addrs,
		    &na);
		if (s2 == SPF_DNS_OK)
			for (size_t j = 0; j < na && !m; j++)
				m = spf_ip_in(c, addrs[j], 32, 128);
		if (s2 == SPF_DNS_OK)
			spf_free_answers(addrs, na);
	}
	spf_free_answers(names, n);
	return m;
}

/* ---- record evaluation ---- */

static bool
spf_count_lookup(struct spf_ctx *c)
{
	if (++c->lookups > SPF_MAX_LOOKUPS) {
		c->why = "more than 10 DNS lookups";
		return false;
	}
	return true;
}

/* Find the one "v=spf1" record of domain. */
static enum spf_result
spf_fetch(struct spf_ctx *c, const char *domain, char **record_r)
{
	char **ans;
	size_t n;
	char *found = NULL;
	int count = 0;
	enum spf_dns_status st = c->req->lookup(c->req->ctx, SPF_Q_TXT,
	    domain, &ans, &n);

	if (st == SPF_DNS_TEMPFAIL) {
		c->why = "DNS error fetching the SPF record";
		return SPF_TEMPERROR;
	}
	if (st != SPF_DNS_OK) {
		c->why = "no SPF record";
		return SPF_NONE;
	}
	for (size_t i = 0; i < n; i++) {
		if (strncasecmp(ans[i], "v=spf1", 6) == 0 &&
		    (ans[i][6] == '\0' || ans[i][6] == ' ')) {
			count++;
			found = ans[i];
		}
	}
	if (count > 1) {
		spf_free_answers(ans, n);
		c->why = "more than one SPF record";
		return SPF_PERMERROR;
	}
	if (count == 0) {
		spf_free_answers(ans, n);
		c->why = "no SPF record";
		return SPF_NONE;
	}
	*record_r = xstrdup(found);
	spf_free_answers(ans, n);
	return SPF_PASS;	/* means "found" here */
}

/* ---- the mechanism table (RFC 7208 5) ---- */

/* One mechanism term, parsed. Strings point into the record copy. */
struct spf_term {
	enum spf_result q;		/* qualifier (4.6.2) */
	const char *spec;		/* domain-spec, or NULL: <domain> */
	const char *addr;		/* ip4/ip6: the network */
	int c4, c6;			/* CIDR lengths */
	bool v6;			/* ip6 */
};

/* What evaluating a term came to. */
enum spf_eval {
	SPF_EV_NOMATCH,
	SPF_EV_MATCH,
	SPF_EV_SYNTAX,			/* permerror, syntax */
	SPF_EV_STOP,			/* check_host ends with *result_r */
};

struct spf_mech {
	const char *name;
	/* Syntax of the text after the name (arg NULL when there is none;
	 * may write into it). 0 / -1 (permerror, syntax). */
	int (*parse)(struct spf_term *t, char *arg);
	/* Counts against the 10 DNS-lookup limit (4.6.4), before eval. */
	bool lookup;
	enum spf_eval (*eval)(struct spf_ctx *c, const char *domain,
	    const char *sender, const struct spf_term *t,
	    enum spf_result *result_r);
};

/* Modifiers (6): redirect and exp; unknown ones are ignored. */
struct spf_record {
	char *redirect;			/* domain-spec of redirect= */
};

struct spf_modifier {
	const char *name;
	/* 0, or -1 with c->why set: permerror. */
	int (*apply)(struct spf_ctx *c, struct spf_record *rec,
	    const char *value);
};

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
static int spf_mod_redirect(struct spf_ctx *, struct spf_record *,
    const char *);
static int spf_mod_exp(struct spf_ctx *, struct spf_record *, const char *);

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

static const struct spf_modifier spf_modifiers[] = {
	{ "redirect", spf_mod_redirect },
	{ "exp", spf_mod_exp },
};

static bool
spf_name_is(const char *s, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(s, name, n) == 0;
}

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
	if (arg == NULL || *arg != ':')
		return -1;
	t->spec = arg + 1;
	return 0;
}

/* "ptr[:domain-spec]" */
static int
spf_parse_opt_domain(struct spf_term *t, char *arg)
{
	if (arg != NULL && *arg != ':')
		return -1;
	t->spec = arg != NULL ? arg + 1 : NULL;
	return 0;
}

/* "a" / "mx" [":" domain-spec] [dual-cidr-length] */
static int
spf_parse_dual(struct spf_term *t, char *arg)
{
	char *spec = arg != NULL && *arg == ':' ? arg + 1 : arg ? arg : "";

	if (arg != NULL && *arg != ':' && *arg != '/')
		return -1;
	if (spf_parse_dual_cidr(spec, &t->c4, &t->c6) < 0)
		return -1;
	t->spec = spec[0] != '\0' ? spec : NULL;
	return 0;
}

/* "ip4:" / "ip6:" network ["/" length]; no leading zeros (4.6.1). */
static int
spf_parse_ip(struct spf_term *t, char *arg, bool v6)
{
	unsigned char tmp[16];
	long bits = v6 ? 128 : 32;
	char *slash, *end;

	if (arg == NULL || *arg != ':')
		return -1;
	if ((slash = strchr(arg + 1, '/')) != NULL) {
		*slash = '\0';
		bits = strtol(slash + 1, &end, 10);
		if (*end || slash[1] == '\0' || bits < 0 ||
		    bits > (v6 ? 128 : 32) || (slash[1] == '0' && slash[2]))
			return -1;
	}
	if (inet_pton(v6 ? AF_INET6 : AF_INET, arg + 1, tmp) != 1)
		return -1;
	t->addr = arg + 1;
	t->c4 = t->c6 = (int)bits;
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

/* The term's target domain: its domain-spec expanded, or <domain>.
 * Caller frees; NULL on a macro syntax error. */
static char *
spf_target(struct spf_ctx *c, const char *domain, const struct spf_term *t)
{
	return t->spec != NULL ? spf_domain_spec(c, domain, t->spec) :
	    xstrdup(domain);
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

	if (target == NULL)
		return SPF_EV_SYNTAX;
	ir = spf_check_host(c, target, sender);
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

/* 5.3 */
static enum spf_eval
spf_eval_a(struct spf_ctx *c, const char *domain, const char *sender,
    const struct spf_term *t, enum spf_result *result_r)
{
	char *target = spf_target(c, domain, t);
	int m;

	if (target == NULL)
		return SPF_EV_SYNTAX;
	m = spf_match_host(c, target, t->c4, t->c6);
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

	if (target == NULL)
		return SPF_EV_SYNTAX;
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
	if (st == SPF_DNS_OK)
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
	int m;

	if (target == NULL)
		return SPF_EV_SYNTAX;
	m = spf_match_ptr(c, target);
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

	if (target == NULL)
		return SPF_EV_SYNTAX;
	st = spf_lookup(c, SPF_Q_A, target, &ans, &n, &perm);
	free(target);
	if (perm) {
		*result_r = SPF_PERMERROR;
		return SPF_EV_STOP;
	}
	if (st == SPF_DNS_TEMPFAIL) {
		*result_r = SPF_TEMPERROR;
		return SPF_EV_STOP;
	}
	if (st != SPF_DNS_OK)
		return SPF_EV_NOMATCH;
	spf_free_answers(ans, n);
	return SPF_EV_MATCH;
}

/* 6.1: at most one. */
static int
spf_mod_redirect(struct spf_ctx *c, struct spf_record *rec,
    const char *value)
{
	if (rec->redirect != NULL) {
		c->why = "two redirect modifiers";
		return -1;
	}
	rec->redirect = xstrdup(value);
	return 0;
}

/* 6.2: the explanation is not needed for a result. */
static int
spf_mod_exp(struct spf_ctx *c, struct spf_record *rec, const char *value)
{
	return 0;
}

/* A modifier term name=value (name is nl bytes; qualified: a qualifier
 * came first). 0, or -1 with c->why set: permerror. */
static int
spf_modifier(struct spf_ctx *c, struct spf_record *rec, const char *name,
    size_t nl, bool qualified, const char *value)
{
	if (qualified || nl == 0) {
		c->why = "bad modifier";
		return -1;
	}
	for (size_t i = 0; i < nl; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '-' &&
		    name[i] != '_' && name[i] != '.') {
			c->why = "bad modifier name";
			return -1;
		}
	for (size_t i = 0; i < nitems(spf_modifiers); i++)
		if (spf_name_is(name, nl, spf_modifiers[i].name))
			return spf_modifiers[i].apply(c, rec, value);
	return 0;		/* 6: unknown modifiers are ignored */
}

static const struct spf_mech *
spf_mech_find(const char *name, size_t nl)
{
	for (size_t i = 0; i < nitems(spf_mechs); i++)
		if (spf_name_is(name, nl, spf_mechs[i].name))
			return &spf_mechs[i];
	return NULL;
}

/* The qualifier in front of a term (4.6.2); *name moves past it. */
static enum spf_result
spf_qualifier(char **name)
{
	switch (**name) {
	case '+': (*name)++; return SPF_PASS;
	case '-': (*name)++; return SPF_FAIL;
	case '~': (*name)++; return SPF_SOFTFAIL;
	case '?': (*name)++; return SPF_NEUTRAL;
	default: return SPF_PASS;
	}
}

/*
 * check_host() (4): fetch the record, then every term left to right.
 * Mechanisms are evaluated until one matches; the terms after it are
 * only checked as modifiers. No match: redirect, else neutral (4.7).
 */
static enum spf_result
spf_check_host(struct spf_ctx *c, const char *domain, const char *sender)
{
	struct spf_record rec = { NULL };
	char *record = NULL, *save = NULL;
	enum spf_result result = SPF_NEUTRAL;
	bool matched = false;

	result = spf_fetch(c, domain, &record);
	if (result != SPF_PASS)
		return result;
	result = SPF_NEUTRAL;
	for (char *term = strtok_r(record + 6, " ", &save); term != NULL;
	    term = strtok_r(NULL, " ", &save)) {
		struct spf_term t = { .q = SPF_PASS };
		const struct spf_mech *mech;
		char *name = term, *arg;
		size_t nl;

		t.q = spf_qualifier(&name);
		nl = strcspn(name, ":/=");
		arg = name[nl] != '\0' ? name + nl : NULL;
		if (arg != NULL && *arg == '=') {
			if (spf_modifier(c, &rec, name, nl, name != term,
			    arg + 1) < 0) {
				result = SPF_PERMERROR;
				goto out;
			}
			continue;
		}
		if (matched)
			continue;
		if ((mech = spf_mech_find(name, nl)) == NULL) {
			c->why = "unknown mechanism";
			result = SPF_PERMERROR;
			goto out;
		}
		if (mech->parse(&t, arg) < 0)
			goto syntax;
		if (mech->lookup && !spf_count_lookup(c)) {
			result = SPF_PERMERROR;
			goto out;
		}
		switch (mech->eval(c, domain, sender, &t, &result)) {
		case SPF_EV_MATCH:
			matched = true;
			result = t.q;
			break;
		case SPF_EV_NOMATCH:
			break;
		case SPF_EV_SYNTAX:
			goto syntax;
		case SPF_EV_STOP:
			goto out;
		}
	}

	if (!matched && rec.redirect != NULL) {
		/* 6.1 */
		if (!spf_count_lookup(c)) {
			result = SPF_PERMERROR;
			goto out;
		}
		char *target = spf_domain_spec(c, domain, rec.redirect);
		if (target == NULL) {
			c->why = "syntax error in redirect";
			result = SPF_PERMERROR;
			goto out;
		}
		result = spf_check_host(c, target, sender);
		free(target);
		if (result == SPF_NONE) {
			c->why = "redirect to a domain without SPF";
			result = SPF_PERMERROR;
		}
	} else if (!matched) {
		c->why = "no mechanism matched";
	} else {
		c->why = "mechanism matched";
	}
	goto out;
syntax:
	c->why = "syntax error in SPF record";
	result = SPF_PERMERROR;
out:
	free(record);
	free(rec.redirect);
	return result;
}

enum spf_result
spf_check(const struct spf_request *req, char **domain_r, const char **why_r)
{
	struct spf_ctx c = { .req = req };
	struct in6_addr a6;
	const char *at = strrchr(req->sender, '@');
	const char *domain = req->sender[0] && at ? at + 1 : req->helo;
	enum spf_result r;

	if (domain_r != NULL)
		*domain_r = xstrdup(domain);
	if (inet_pton(AF_INET, req->ip, c.ip) == 1) {
		c.family = 4;
	} else if (inet_pton(AF_INET6, req->ip, &a6) == 1) {
		memcpy(c.ip, &a6, 16);
		c.family = 6;
		/* IPv4-mapped: evaluate as IPv4 (RFC 7208 5) */
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0,
		    0, 0, 0, 0, 0xff, 0xff };
		if (memcmp(c.ip, mapped, 12) == 0) {
			memmove(c.ip, c.ip + 12, 4);
			c.family = 4;
		}
	} else {
		if (why_r) *why_r = "bad client address";
		return SPF_PERMERROR;
	}
	/* 4.3: a malformed domain is "none" */
	if (domain[0] == '\0' || strchr(domain, '.') == NULL ||
	    strlen(domain) > 253) {
		if (why_r) *why_r = "no valid domain";
		return SPF_NONE;
	}
	r = spf_check_host(&c, domain, req->sender);
	if (why_r)
		*why_r = c.why ? c.why : "";
	free(c.validated);
	return r;
}
