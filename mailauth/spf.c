/*
 * SPF check_host() (RFC 7208 4-6). Owns record selection, the record
 * parser (every term and modifier is checked before any mechanism is
 * evaluated: 4.6 "syntax errors anywhere in the record"), the
 * left-to-right evaluation, redirect= and exp=, the lookup limit and
 * spf_check(). Mechanisms are spf_mech.c's, macros spf_macro.c's, and
 * the DNS the caller's lookup function. Recursion (include, redirect) is
 * bounded by the 10-lookup limit, which every include/redirect counts
 * against, so the depth can never exceed 10.
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

/* A record, parsed: its mechanisms in order and its modifiers (6). */
struct spf_record {
	char *copy;			/* the record; the terms point in */
	struct spf_term *terms;
	size_t n;
	const char *redirect;		/* domain-spec of redirect=, or NULL */
	const char *exp;		/* domain-spec of exp=, or NULL */
};

static enum spf_result spf_fetch(struct spf_ctx *, const char *, char **);
static int spf_record_parse(struct spf_ctx *, const char *,
    struct spf_record *);
static void spf_record_free(struct spf_record *);
static int spf_modifier(struct spf_ctx *, struct spf_record *, const char *,
    size_t, bool, const char *);
static void spf_explain(struct spf_ctx *, const char *, const char *);
static void spf_trace(struct spf_ctx *, enum spf_trace, const char *,
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
spf_trace(struct spf_ctx *c, enum spf_trace what, const char *domain,
    const char *text)
{
	if (c->req->trace != NULL)
		c->req->trace(c->req->trace_arg, what, domain, text);
}

bool
spf_count_lookup(struct spf_ctx *c)
{
	if (++c->lookups > SPF_MAX_LOOKUPS) {
		c->why = "more than 10 DNS lookups";
		return false;
	}
	return true;
}

/* Find the one "v=spf1" record of domain (4.5). SPF_PASS means found. */
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
	if (count == 1)
		*record_r = xstrdup(found);
	spf_free_answers(ans, n);
	if (count > 1) {
		c->why = "more than one SPF record";
		return SPF_PERMERROR;
	}
	if (count == 0) {
		c->why = "no SPF record";
		return SPF_NONE;
	}
	return SPF_PASS;
}

/* A modifier term name=value (name is nl bytes; qualified: a qualifier
 * came first). 0, or -1 with c->why set: permerror. */
static int
spf_modifier(struct spf_ctx *c, struct spf_record *rec, const char *name,
    size_t nl, bool qualified, const char *value)
{
	const char **slot = NULL;

	if (qualified || nl == 0) {
		c->why = "bad modifier";
		return -1;
	}
	/* name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ) (4.6.1) */
	for (size_t i = 0; i < nl; i++)
		if ((i == 0 && !isalpha((unsigned char)name[i])) ||
		    (!isalnum((unsigned char)name[i]) && name[i] != '-' &&
		    name[i] != '_' && name[i] != '.')) {
			c->why = "bad modifier name";
			return -1;
		}
	if (nl == 8 && strncasecmp(name, "redirect", 8) == 0)
		slot = &rec->redirect;
	else if (nl == 3 && strncasecmp(name, "exp", 3) == 0)
		slot = &rec->exp;
	if (slot == NULL) {
		/* 6: unknown modifiers are ignored, but their value is a
		 * macro-string all the same. */
		if (!spf_macro_string_is_valid(value, false)) {
			c->why = "syntax error in a modifier";
			return -1;
		}
		return 0;
	}
	/* 6: redirect and exp at most once each; a domain-spec. */
	if (*slot != NULL) {
		c->why = slot == &rec->redirect ? "two redirect modifiers" :
		    "two exp modifiers";
		return -1;
	}
	if (!spf_domain_spec_is_valid(value)) {
		c->why = slot == &rec->redirect ? "syntax error in redirect" :
		    "syntax error in exp";
		return -1;
	}
	*slot = value;
	return 0;
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

/* Every term of text (a "v=spf1" record) into rec. 0, or -1 with c->why
 * set: permerror. spf_record_free frees rec either way. */
static int
spf_record_parse(struct spf_ctx *c, const char *text, struct spf_record *rec)
{
	char *save = NULL;

	/* 3, 4.6.1: terms are visible ASCII separated by spaces. */
	for (const char *p = text; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) {
			c->why = "control or non-ASCII character in SPF record";
			return -1;
		}
	rec->copy = xstrdup(text);
	for (char *term = strtok_r(rec->copy + 6, " ", &save); term != NULL;
	    term = strtok_r(NULL, " ", &save)) {
		struct spf_term t = { .q = SPF_PASS };
		char *name = term, *arg;
		size_t nl;

		t.q = spf_qualifier(&name);
		nl = strcspn(name, ":/=");
		arg = name[nl] != '\0' ? name + nl : NULL;
		if (arg != NULL && *arg == '=') {
			if (spf_modifier(c, rec, name, nl, name != term,
			    arg + 1) < 0)
				return -1;
			continue;
		}
		if ((t.mech = spf_mech_find(name, nl)) == NULL) {
			c->why = "unknown mechanism";
			return -1;
		}
		t.text = xstrdup(term);
		if (t.mech->parse(&t, arg) < 0) {
			free(t.text);
			c->why = "syntax error in SPF record";
			return -1;
		}
		rec->terms = xrealloc(rec->terms, (rec->n + 1) *
		    sizeof(*rec->terms));
		rec->terms[rec->n++] = t;
	}
	return 0;
}

static void
spf_record_free(struct spf_record *rec)
{
	for (size_t i = 0; i < rec->n; i++)
		free(rec->terms[i].text);
	free(rec->terms);
	free(rec->copy);
}

/*
 * 6.2: the explanation of a fail: the TXT record at exp='s target,
 * expanded. Any trouble (DNS, no record or several, a syntax error, a
 * character outside visible ASCII and SP) leaves none. Its lookup
 * counts against no limit (4.6.4).
 */
static void
spf_explain(struct spf_ctx *c, const char *domain, const char *spec)
{
	char *target = spf_domain_spec(c, domain, spec), **ans, *text;
	size_t n;

	if (target == NULL)
		return;
	if (c->req->lookup(c->req->ctx, SPF_Q_TXT, target, &ans, &n) !=
	    SPF_DNS_OK) {
		free(target);
		return;
	}
	free(target);
	/* explain-string = *( macro-string / SP ): visible ASCII */
	text = n == 1 && spf_macro_string_is_valid(ans[0], true) ?
	    spf_expand_ctx(c, domain, ans[0], true) : NULL;
	spf_free_answers(ans, n);
	if (text == NULL)
		return;
	free(c->exp);
	c->exp = text;
	spf_trace(c, SPF_TRACE_EXP, domain, text);
}

/*
 * check_host() (4): fetch the record and parse all of it, then evaluate
 * the mechanisms left to right until one matches. No match: redirect,
 * else neutral (4.7).
 */
enum spf_result
spf_check_host(struct spf_ctx *c, const char *domain, const char *sender)
{
	struct spf_record rec = { 0 };
	char *record = NULL, *target;
	enum spf_result result;
	const struct spf_term *hit = NULL;

	result = spf_fetch(c, domain, &record);
	if (result != SPF_PASS)
		return result;
	spf_trace(c, SPF_TRACE_RECORD, domain, record);
	if (spf_record_parse(c, record, &rec) < 0) {
		result = SPF_PERMERROR;
		goto out;
	}
	result = SPF_NEUTRAL;
	for (size_t i = 0; i < rec.n && hit == NULL; i++) {
		const struct spf_term *t = &rec.terms[i];

		if (t->mech->lookup && !spf_count_lookup(c)) {
			result = SPF_PERMERROR;
			goto out;
		}
		switch (t->mech->eval(c, domain, sender, t, &result)) {
		case SPF_EV_MATCH:
			hit = t;
			result = t->q;
			break;
		case SPF_EV_NOMATCH:
			break;
		case SPF_EV_STOP:
			goto out;
		}
	}
	if (hit != NULL) {
		c->why = "mechanism matched";
		spf_trace(c, SPF_TRACE_MATCH, domain, hit->text);
		/* 6.2: not the exp= of an included record */
		if (result == SPF_FAIL && rec.exp != NULL &&
		    c->include_depth == 0)
			spf_explain(c, domain, rec.exp);
	} else if (rec.redirect != NULL) {
		/* 6.1 */
		if (!spf_count_lookup(c)) {
			result = SPF_PERMERROR;
			goto out;
		}
		target = spf_domain_spec(c, domain, rec.redirect);
		assert(target != NULL);	/* checked by spf_modifier */
		spf_trace(c, SPF_TRACE_MATCH, domain, "redirect");
		result = spf_check_host(c, target, sender);
		free(target);
		if (result == SPF_NONE) {
			c->why = "redirect to a domain without SPF";
			result = SPF_PERMERROR;
		}
	} else {
		c->why = "no mechanism matched";
	}
out:
	spf_record_free(&rec);
	free(record);
	return result;
}

int
spf_ctx_init(struct spf_ctx *c, const struct spf_request *req)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0, 0xff, 0xff };

	memset(c, 0, sizeof(*c));
	c->req = req;
	if (inet_pton(AF_INET, req->ip, c->ip) == 1) {
		c->family = 4;
		return 0;
	}
	if (inet_pton(AF_INET6, req->ip, c->ip) != 1)
		return -1;
	c->family = 6;
	/* IPv4-mapped: evaluate as IPv4 (RFC 7208 5) */
	if (memcmp(c->ip, mapped, 12) == 0) {
		memmove(c->ip, c->ip + 12, 4);
		c->family = 4;
	}
	return 0;
}

void
spf_ctx_fini(struct spf_ctx *c)
{
	free(c->exp);
	c->exp = NULL;
	spf_free_answers(c->validated, c->nvalidated);
	c->validated = NULL;
	c->nvalidated = 0;
}

enum spf_result
spf_check(const struct spf_request *req, char **domain_r, const char **why_r)
{
	struct spf_ctx c;
	const char *at = strrchr(req->sender, '@');
	const char *domain = req->sender[0] && at ? at + 1 : req->helo;
	enum spf_result r;

	if (domain_r != NULL)
		*domain_r = xstrdup(domain);
	if (spf_ctx_init(&c, req) < 0) {
		if (why_r) *why_r = "bad client address";
		return SPF_PERMERROR;
	}
	/* 4.3: a malformed domain is "none" (one no query can carry too:
	 * mailauth/dns.c answers it as non-existent). */
	if (domain[0] == '\0' || strchr(domain, '.') == NULL ||
	    strlen(domain) > 253) {
		if (why_r) *why_r = "no valid domain";
		return SPF_NONE;
	}
	r = spf_check_host(&c, domain, req->sender);
	if (why_r)
		*why_r = c.why ? c.why : "";
	spf_ctx_fini(&c);
	return r;
}
