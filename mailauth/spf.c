/*
 * SPF check_host() (RFC 7208 section 4-7). Owns record selection, term
 * parsing, mechanism matching, macro expansion and the lookup limits; the
 * DNS is the caller's lookup function. Recursion (include, redirect) is
 * bounded by the 10-lookup limit, which every include/redirect counts
 * against, so the depth can never exceed 10.
 */
#include "mailauth/spf.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SPF_MAX_LOOKUPS		10	/* RFC 7208 4.6.4 */
#define SPF_MAX_VOID		2	/* RFC 7208 4.6.4 */
#define SPF_MAX_MX_NAMES	10
#define SPF_MAX_PTR_NAMES	10
#define SPF_MAX_EXPANSION	253	/* domain-spec result length */

struct spf_ctx {
	const struct spf_request *req;
	int family;			/* AF_INET / AF_INET6 of req->ip */
	unsigned char ip[16];
	unsigned lookups;
	unsigned voids;
	const char *why;
	char *validated;		/* %{p} cache */
};

static const char *const spf_result_names[SPF_RESULT_COUNT] = {
	"none", "neutral", "pass", "fail", "softfail", "temperror",
	"permerror",
};

static enum spf_result spf_check_host(struct spf_ctx *, const char *,
    const char *);

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

/* ---- macros (RFC 7208 7) ---- */

static void
spf_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) {
		*cap = (*len + n + 1) * 2;
		*buf = xrealloc(*buf, *cap);
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
}

static char *
spf_ip_dotted(const struct spf_ctx *c)
{
	if (c->family == 4)
		return xasprintf("%u.%u.%u.%u", c->ip[0], c->ip[1], c->ip[2],
		    c->ip[3]);
	char *s = xmalloc(64), *p = s;
	for (int i = 0; i < 16; i++) {
		p += sprintf(p, "%x.%x", c->ip[i] >> 4, c->ip[i] & 15);
		if (i < 15)
			*p++ = '.';
	}
	return s;
}

/* The value of one macro letter (before transformers). Caller frees. */
static char *
spf_macro_value(struct spf_ctx *c, const char *domain, char letter)
{
	const struct spf_request *r = c->req;
	const char *sender = r->sender[0] ? r->sender : NULL;
	char *tmp;

	switch (tolower((unsigned char)letter)) {
	case 's':
		return sender ? xstrdup(sender) :
		    xasprintf("postmaster@%s", r->helo);
	case 'l':
		if (sender && strrchr(sender, '@'))
			return xstrndup(sender,
			    (size_t)(strrchr(sender, '@') - sender));
		return xstrdup("postmaster");
	case 'o':
		if (sender && strrchr(sender, '@'))
			return xstrdup(strrchr(sender, '@') + 1);
		return xstrdup(r->helo);
	case 'd':
		return xstrdup(domain);
	case 'i':
		return spf_ip_dotted(c);
	case 'p':
		/* Discouraged (RFC 7208 7.3); validated name not looked up
		 * again here: "unknown" is what the RFC allows. */
		return xstrdup(c->validated ? c->validated : "unknown");
	case 'v':
		return xstrdup(c->family == 4 ? "in-addr" : "ip6");
	case 'h':
		return xstrdup(r->helo);
	case 'c':
		tmp = xmalloc(64);
		inet_ntop(c->family == 4 ? AF_INET : AF_INET6, c->ip, tmp, 64);
		return tmp;
	case 'r':
		return xstrdup(r->receiver ? r->receiver : "unknown");
	case 't':
		return xasprintf("%lld", (long long)util_time());
	default:
		return NULL;
	}
}

char *
spf_expand(const struct spf_request *req, const char *domain,
    const char *macro, int is_exp)
{
	struct spf_ctx c = { .req = req };
	char *out = NULL;
	size_t len = 0, cap = 0;
	struct in6_addr a6;

	if (inet_pton(AF_INET, req->ip, c.ip) == 1) {
		c.family = 4;
	} else if (inet_pton(AF_INET6, req->ip, &a6) == 1) {
		c.family = 6;
		memcpy(c.ip, &a6, 16);
	} else {
		return NULL;
	}
	spf_append(&out, &len, &cap, "", 0);
	for (const char *p = macro; *p;) {
		if (*p != '%') {
			spf_append(&out, &len, &cap, p, 1);
			p++;
			continue;
		}
		p++;
		if (*p == '%') { spf_append(&out, &len, &cap, "%", 1); p++; continue; }
		if (*p == '_') { spf_append(&out, &len, &cap, " ", 1); p++; continue; }
		if (*p == '-') { spf_append(&out, &len, &cap, "%20", 3); p++; continue; }
		if (*p != '{')
			goto bad;
		p++;
		char letter = *p++;
		if (strchr("slodiphcrtvSLODIPHCRTV", letter) == NULL ||
		    letter == '\0')
			goto bad;
		if (!is_exp && strchr("crtCRT", letter))
			goto bad;
		unsigned digits = 0;
		bool has_digits = false, reverse = false;
		while (isdigit((unsigned char)*p)) {
			digits = digits * 10 + (unsigned)(*p++ - '0');
			if (digits > 128)
				digits = 128;
			has_digits = true;
		}
		if (has_digits && digits == 0)
			goto bad;
		if (*p == 'r' || *p == 'R') {
			reverse = true;
			p++;
		}
		char delims[16] = "";
		size_t nd = 0;
		while (*p && strchr(".-+,/_=", *p) && nd < sizeof(delims) - 1)
			delims[nd++] = *p++;
		if (nd == 0)
			delims[nd++] = '.';
		delims[nd] = '\0';
		if (*p != '}')
			goto bad;
		p++;

		char *val = spf_macro_value(&c, domain, letter);
		if (val == NULL)
			goto bad;
		/* Split on delimiters, optionally reverse, keep the
		 * rightmost `digits` parts, join with '.'. */
		char *parts[128];
		size_t np = 0;
		char *save = NULL;
		for (char *t = strtok_r(val, delims, &save); t && np < 128;
		    t = strtok_r(NULL, delims, &save))
			parts[np++] = t;
		if (reverse)
			for (size_t i = 0; i < np / 2; i++) {
				char *x = parts[i];
				parts[i] = parts[np - 1 - i];
				parts[np - 1 - i] = x;
			}
		size_t start = has_digits && digits < np ? np - digits : 0;
		for (size_t i = start; i < np; i++) {
			if (i > start)
				spf_append(&out, &len, &cap, ".", 1);
			if (isupper((unsigned char)letter)) {
				/* URL-escape (7.3) */
				for (const char *q = parts[i]; *q; q++) {
					unsigned char ch = (unsigned char)*q;
					if (isalnum(ch) || strchr("-._~", ch)) {
						spf_append(&out, &len, &cap,
						    q, 1);
					} else {
						char hex[4];
						snprintf(hex, sizeof(hex),
						    "%%%02X", ch);
						spf_append(&out, &len, &cap,
						    hex, 3);
					}
				}
			} else {
				spf_append(&out, &len, &cap, parts[i],
				    strlen(parts[i]));
			}
		}
		free(val);
	}
	free(c.validated);
	return out;
bad:
	free(out);
	free(c.validated);
	return NULL;
}

/* Expand a domain-spec; over 253 octets, drop labels from the left
 * (RFC 7208 7.3). NULL on syntax error. */
static char *
spf_domain_spec(struct spf_ctx *c, const char *domain, const char *spec)
{
	char *d = spf_expand(c->req, domain, spec, 0);

	if (d == NULL)
		return NULL;
	size_t n = strlen(d);
	if (n > 0 && d[n - 1] == '.')
		d[--n] = '\0';
	while (n > SPF_MAX_EXPANSION) {
		char *dot = strchr(d, '.');
		if (dot == NULL)
			break;
		memmove(d, dot + 1, strlen(dot + 1) + 1);
		n = strlen(d);
	}
	/* A domain-spec must end in a toplabel (4.8): at least one dot and
	 * the last label not all digits. */
	char *last = strrchr(d, '.');
	bool numeric = true;
	if (last == NULL || last[1] == '\0') {
		free(d);
		return NULL;
	}
	for (const char *q = last + 1; *q; q++)
		if (!isdigit((unsigned char)*q))
			numeric = false;
	if (numeric) {
		free(d);
		return NULL;
	}
	return d;
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

static bool
spf_name_is(const char *s, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(s, name, n) == 0;
}

static enum spf_result
spf_check_host(struct spf_ctx *c, const char *domain, const char *sender)
{
	char *record = NULL, *redirect = NULL;
	enum spf_result r = spf_fetch(c, domain, &record);

	(void)sender;
	if (r != SPF_PASS)
		return r;

	char *save = NULL;
	enum spf_result result = SPF_NEUTRAL;	/* 4.7: no match, no redirect */
	bool matched = false;

	/* First pass: syntax of modifiers (redirect/exp once each). */
	for (char *term = strtok_r(record + 6, " ", &save); term != NULL;
	    term = strtok_r(NULL, " ", &save)) {
		enum spf_result q = SPF_PASS;
		char *name = term;

		switch (*term) {
		case '+': q = SPF_PASS; name++; break;
		case '-': q = SPF_FAIL; name++; break;
		case '~': q = SPF_SOFTFAIL; name++; break;
		case '?': q = SPF_NEUTRAL; name++; break;
		default: break;
		}
		size_t nl = strcspn(name, ":/=");
		char *arg = name[nl] ? name + nl : NULL;
		int m = 0;

		if (arg && *arg == '=') {
			/* modifier */
			if (name != term || nl == 0) {
				c->why = "bad modifier";
				result = SPF_PERMERROR;
				goto out;
			}
			for (size_t i = 0; i < nl; i++) {
				if (!isalnum((unsigned char)name[i]) &&
				    name[i] != '-' && name[i] != '_' &&
				    name[i] != '.') {
					c->why = "bad modifier name";
					result = SPF_PERMERROR;
					goto out;
				}
			}
			if (spf_name_is(name, nl, "redirect")) {
				if (redirect != NULL) {
					c->why = "two redirect modifiers";
					result = SPF_PERMERROR;
					goto out;
				}
				redirect = xstrdup(arg + 1);
			} else if (spf_name_is(name, nl, "exp")) {
				/* explanation: not needed for results */
			}
			continue;
		}
		if (matched)
			continue;	/* keep scanning for bad syntax */

		if (spf_name_is(name, nl, "all")) {
			if (arg) goto syntax;
			m = 1;
		} else if (spf_name_is(name, nl, "include")) {
			if (!arg || *arg != ':') goto syntax;
			if (!spf_count_lookup(c)) { result = SPF_PERMERROR; goto out; }
			char *target = spf_domain_spec(c, domain, arg + 1);
			if (!target) goto syntax;
			enum spf_result ir = spf_check_host(c, target, sender);
			free(target);
			/* RFC 7208 5.2 */
			if (ir == SPF_PASS)
				m = 1;
			else if (ir == SPF_TEMPERROR) {
				result = SPF_TEMPERROR; goto out;
			} else if (ir == SPF_PERMERROR || ir == SPF_NONE) {
				if (ir == SPF_NONE)
					c->why = "include of a domain without SPF";
				result = SPF_PERMERROR; goto out;
			}
		} else if (spf_name_is(name, nl, "a") ||
		    spf_name_is(name, nl, "mx")) {
			bool is_mx = nl == 2;
			int c4, c6;
			char *spec = xstrdup(arg && *arg == ':' ? arg + 1 :
			    arg ? arg : "");
			char *target;
			if (arg && *arg != ':' && *arg != '/') { free(spec); goto syntax; }
			if (spf_parse_dual_cidr(spec, &c4, &c6) < 0) {
				free(spec);
				goto syntax;
			}
			if (!spf_count_lookup(c)) {
				free(spec);
				result = SPF_PERMERROR;
				goto out;
			}
			target = spec[0] ? spf_domain_spec(c, domain, spec) :
			    xstrdup(domain);
			free(spec);
			if (!target) goto syntax;
			if (!is_mx) {
				m = spf_match_host(c, target, c4, c6);
			} else {
				char **mx;
				size_t n;
				bool perm = false;
				enum spf_dns_status st = spf_lookup(c,
				    SPF_Q_MX, target, &mx, &n, &perm);
				if (perm) m = -2;
				else if (st == SPF_DNS_TEMPFAIL) m = -1;
				else if (n > SPF_MAX_MX_NAMES) {
					c->why = "more than 10 MX names";
					m = -2;
				}
				for (size_t i = 0; i < n && m == 0; i++)
					m = spf_match_host(c, mx[i], c4, c6);
				if (st == SPF_DNS_OK)
					spf_free_answers(mx, n);
			}
			free(target);
			if (m == -1) { c->why = "DNS error"; result = SPF_TEMPERROR; goto out; }
			if (m == -2) { result = SPF_PERMERROR; goto out; }
		} else if (spf_name_is(name, nl, "ptr")) {
			if (arg && *arg != ':') goto syntax;
			if (!spf_count_lookup(c)) { result = SPF_PERMERROR; goto out; }
			char *target = arg ? spf_domain_spec(c, domain, arg + 1) :
			    xstrdup(domain);
			if (!target) goto syntax;
			m = spf_match_ptr(c, target);
			free(target);
			if (m == -2) { result = SPF_PERMERROR; goto out; }
		} else if (spf_name_is(name, nl, "ip4") ||
		    spf_name_is(name, nl, "ip6")) {
			bool v6 = name[2] == '6';
			if (!arg || *arg != ':') goto syntax;
			char *a = xstrdup(arg + 1);
			char *slash = strchr(a, '/');
			long bits = v6 ? 128 : 32;
			unsigned char tmp[16];
			if (slash) {
				char *end;
				*slash = '\0';
				bits = strtol(slash + 1, &end, 10);
				if (*end || slash[1] == '\0' || bits < 0 ||
				    bits > (v6 ? 128 : 32) ||
				    (slash[1] == '0' && slash[2])) {
					free(a);
					goto syntax;
				}
			}
			if (inet_pton(v6 ? AF_INET6 : AF_INET, a, tmp) != 1) {
				free(a);
				goto syntax;
			}
			if ((c->family == 6) == v6)
				m = spf_ip_in(c, a, (int)bits, (int)bits);
			free(a);
		} else if (spf_name_is(name, nl, "exists")) {
			if (!arg || *arg != ':') goto syntax;
			if (!spf_count_lookup(c)) { result = SPF_PERMERROR; goto out; }
			char *target = spf_domain_spec(c, domain, arg + 1);
			if (!target) goto syntax;
			char **ans;
			size_t n;
			bool perm = false;
			enum spf_dns_status st = spf_lookup(c, SPF_Q_A,
			    target, &ans, &n, &perm);
			free(target);
			if (perm) { result = SPF_PERMERROR; goto out; }
			if (st == SPF_DNS_TEMPFAIL) { result = SPF_TEMPERROR; goto out; }
			if (st == SPF_DNS_OK) {
				m = 1;
				spf_free_answers(ans, n);
			}
		} else {
			c->why = "unknown mechanism";
			result = SPF_PERMERROR;
			goto out;
		}
		if (m == 1) {
			matched = true;
			result = q;
		}
		continue;
syntax:
		c->why = "syntax error in SPF record";
		result = SPF_PERMERROR;
		goto out;
	}

	if (!matched && redirect != NULL) {
		/* 6.1 */
		if (!spf_count_lookup(c)) {
			result = SPF_PERMERROR;
			goto out;
		}
		char *target = spf_domain_spec(c, domain, redirect);
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
out:
	free(record);
	free(redirect);
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
