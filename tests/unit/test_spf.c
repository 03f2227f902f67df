/*
 * SPF (RFC 7208): the appendix A examples, the section 7.4 macro examples,
 * include/redirect/exists/ptr/macro cases and the lookup limits, table
 * driven against an in-memory fake DNS.
 */
#include "mailauth/spf.h"
#include "mailauth/spf_int.h"
#include "common/util.h"
#include "t.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* answers separated by '|'; "TEMPFAIL" as the answer = SERVFAIL */
struct rr {
	enum spf_qtype type;
	const char *name;
	const char *answers;
};

/* RFC 7208 appendix A zone (example.com TXT varies per case). */
static const struct rr zone[] = {
	{ SPF_Q_MX, "example.com", "mail.example.com|mail.example.org" },
	{ SPF_Q_A, "example.com", "192.0.2.10|192.0.2.11" },
	{ SPF_Q_A, "amy.example.com", "192.0.2.65" },
	{ SPF_Q_A, "bob.example.com", "192.0.2.66" },
	{ SPF_Q_A, "mail.example.com", "192.0.2.129" },
	{ SPF_Q_MX, "example.org", "mail.example.org" },
	{ SPF_Q_A, "mail.example.org", "192.0.2.140" },
	{ SPF_Q_PTR, "10.2.0.192.in-addr.arpa", "example.com" },
	{ SPF_Q_PTR, "11.2.0.192.in-addr.arpa", "example.com" },
	{ SPF_Q_PTR, "65.2.0.192.in-addr.arpa", "amy.example.com" },
	{ SPF_Q_PTR, "66.2.0.192.in-addr.arpa", "bob.example.com" },
	{ SPF_Q_PTR, "129.2.0.192.in-addr.arpa", "mail.example.com" },
	{ SPF_Q_PTR, "140.2.0.192.in-addr.arpa", "mail.example.org" },
	/* for the extra cases */
	{ SPF_Q_TXT, "_spf.example.net", "v=spf1 ip4:198.51.100.0/24 ip6:2001:db8:1::/48 -all" },
	{ SPF_Q_TXT, "nospf.example.net", "some other text" },
	{ SPF_Q_TXT, "broken.example.net", "TEMPFAIL" },
	{ SPF_Q_TXT, "two.example.net", "v=spf1 -all|v=spf1 +all" },
	{ SPF_Q_A, "3.2.0.192.strong.lp._spf.example.com", "127.0.0.2" },
	{ SPF_Q_TXT, "l1.example.com", "v=spf1 include:l2.example.com -all" },
	{ SPF_Q_TXT, "l2.example.com", "v=spf1 include:l3.example.com -all" },
	{ SPF_Q_TXT, "l3.example.com", "v=spf1 include:l4.example.com -all" },
	{ SPF_Q_TXT, "l4.example.com", "v=spf1 include:l5.example.com -all" },
	{ SPF_Q_TXT, "l5.example.com", "v=spf1 include:l6.example.com -all" },
	{ SPF_Q_TXT, "l6.example.com", "v=spf1 include:l7.example.com -all" },
	{ SPF_Q_TXT, "l7.example.com", "v=spf1 include:l8.example.com -all" },
	{ SPF_Q_TXT, "l8.example.com", "v=spf1 include:l9.example.com -all" },
	{ SPF_Q_TXT, "l9.example.com", "v=spf1 include:l10.example.com -all" },
	{ SPF_Q_TXT, "l10.example.com", "v=spf1 include:l11.example.com -all" },
	{ SPF_Q_TXT, "l11.example.com", "v=spf1 +all" },
	{ SPF_Q_MX, "many.example.com", "m1.x.test|m2.x.test|m3.x.test|m4.x.test|m5.x.test|m6.x.test|m7.x.test|m8.x.test|m9.x.test|m10.x.test|m11.x.test" },
	{ SPF_Q_A, "tempa.example.com", "TEMPFAIL" },
	{ SPF_Q_AAAA, "v6.example.com", "2001:db8::cb01" },
	{ SPF_Q_TXT, "helo.example.net", "v=spf1 ip4:203.0.113.5 -all" },
	/* RFC 7208 7.1: a domain-spec may hold ':' and '/' */
	{ SPF_Q_A, "foo:bar/baz.example.com", "192.0.2.77" },
	/* %{p}: 192.0.2.65 validates as amy.example.com */
	{ SPF_Q_A, "amy.example.com.ok.example.com", "127.0.0.2" },
	{ SPF_Q_A, "unknown.other.example.com", "127.0.0.2" },
	/* exp= (6.2) */
	{ SPF_Q_TXT, "explain.example.com", "%{i} is not one of %{d}'s" },
	{ SPF_Q_TXT, "badexp.example.com", "bad %{z} macro" },
	{ SPF_Q_TXT, "inc.example.com", "v=spf1 -all exp=explain.example.com" },
};

struct fake {
	const char *txt;	/* example.com TXT for this case */
};

static enum spf_dns_status
fake_lookup(void *ctx, enum spf_qtype type, const char *name, char ***ans_r,
    size_t *n_r)
{
	const struct fake *f = ctx;
	const char *answers = NULL;

	*ans_r = NULL;
	*n_r = 0;
	if (type == SPF_Q_TXT && strcasecmp(name, "example.com") == 0)
		answers = f->txt;
	for (size_t i = 0; answers == NULL && i < nitems(zone); i++)
		if (zone[i].type == type && strcasecmp(zone[i].name, name) == 0)
			answers = zone[i].answers;
	if (answers == NULL)
		return SPF_DNS_NONE;
	if (strcmp(answers, "TEMPFAIL") == 0)
		return SPF_DNS_TEMPFAIL;
	char *copy = xstrdup(answers), *save = NULL;
	for (char *t = strtok_r(copy, "|", &save); t;
	    t = strtok_r(NULL, "|", &save)) {
		*ans_r = xrealloc(*ans_r, (*n_r + 1) * sizeof(char *));
		(*ans_r)[(*n_r)++] = xstrdup(t);
	}
	free(copy);
	return SPF_DNS_OK;
}

struct spf_case {
	const char *txt;
	const char *ip;
	enum spf_result want;
	const char *sender;	/* NULL: "user@example.com" */
};

static const struct spf_case cases[] = {
	/* RFC 7208 A.1 */
	{ "v=spf1 +all", "192.0.2.200", SPF_PASS, NULL },
	{ "v=spf1 a -all", "192.0.2.10", SPF_PASS, NULL },
	{ "v=spf1 a -all", "192.0.2.11", SPF_PASS, NULL },
	{ "v=spf1 a -all", "192.0.2.65", SPF_FAIL, NULL },
	{ "v=spf1 a:example.org -all", "192.0.2.10", SPF_FAIL, NULL },
	{ "v=spf1 mx -all", "192.0.2.129", SPF_PASS, NULL },
	{ "v=spf1 mx -all", "192.0.2.140", SPF_PASS, NULL },
	{ "v=spf1 mx -all", "192.0.2.10", SPF_FAIL, NULL },
	{ "v=spf1 mx:example.org -all", "192.0.2.140", SPF_PASS, NULL },
	{ "v=spf1 mx:example.org -all", "192.0.2.129", SPF_FAIL, NULL },
	{ "v=spf1 mx mx:example.org -all", "192.0.2.129", SPF_PASS, NULL },
	{ "v=spf1 mx mx:example.org -all", "192.0.2.140", SPF_PASS, NULL },
	{ "v=spf1 mx/30 mx:example.org/30 -all", "192.0.2.131", SPF_PASS, NULL },
	{ "v=spf1 mx/30 mx:example.org/30 -all", "192.0.2.143", SPF_PASS, NULL },
	{ "v=spf1 mx/30 mx:example.org/30 -all", "192.0.2.132", SPF_FAIL, NULL },
	{ "v=spf1 ptr -all", "192.0.2.10", SPF_PASS, NULL },
	{ "v=spf1 ptr -all", "192.0.2.65", SPF_PASS, NULL },
	{ "v=spf1 ptr -all", "192.0.2.129", SPF_PASS, NULL },
	{ "v=spf1 ptr -all", "192.0.2.140", SPF_FAIL, NULL },
	{ "v=spf1 ip4:192.0.2.128/28 -all", "192.0.2.143", SPF_PASS, NULL },
	{ "v=spf1 ip4:192.0.2.128/28 -all", "192.0.2.144", SPF_FAIL, NULL },
	{ "v=spf1 ip4:192.0.2.128/28 -all", "192.0.2.65", SPF_FAIL, NULL },
	/* qualifiers, defaults */
	{ "v=spf1 ~all", "192.0.2.1", SPF_SOFTFAIL, NULL },
	{ "v=spf1 ?all", "192.0.2.1", SPF_NEUTRAL, NULL },
	{ "v=spf1", "192.0.2.1", SPF_NEUTRAL, NULL },
	{ "v=spf1 -ip4:192.0.2.1 +all", "192.0.2.1", SPF_FAIL, NULL },
	{ NULL, "192.0.2.1", SPF_NONE, NULL },
	{ "spf2.0/pra +all", "192.0.2.1", SPF_NONE, NULL },
	/* ip6, and a v4 client never matches ip6 */
	{ "v=spf1 ip6:2001:db8::/32 -all", "2001:db8::1", SPF_PASS, NULL },
	{ "v=spf1 ip6:2001:db8::/32 -all", "2001:db9::1", SPF_FAIL, NULL },
	{ "v=spf1 ip6:::/0 -all", "192.0.2.1", SPF_FAIL, NULL },
	{ "v=spf1 a:v6.example.com -all", "2001:db8::cb01", SPF_PASS, NULL },
	{ "v=spf1 ip4:192.0.2.1 -all", "::ffff:192.0.2.1", SPF_PASS, NULL },
	/* include */
	{ "v=spf1 include:_spf.example.net -all", "198.51.100.7", SPF_PASS, NULL },
	{ "v=spf1 include:_spf.example.net -all", "192.0.2.1", SPF_FAIL, NULL },
	{ "v=spf1 include:_spf.example.net ~all", "2001:db8:1::5", SPF_PASS, NULL },
	{ "v=spf1 include:nospf.example.net -all", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 include:broken.example.net -all", "192.0.2.1", SPF_TEMPERROR, NULL },
	/* redirect */
	{ "v=spf1 redirect=_spf.example.net", "198.51.100.9", SPF_PASS, NULL },
	{ "v=spf1 redirect=_spf.example.net", "192.0.2.9", SPF_FAIL, NULL },
	{ "v=spf1 ip4:192.0.2.9 redirect=_spf.example.net", "192.0.2.9", SPF_PASS, NULL },
	{ "v=spf1 redirect=nospf.example.net", "192.0.2.9", SPF_PERMERROR, NULL },
	{ "v=spf1 redirect=a.test redirect=b.test", "192.0.2.9", SPF_PERMERROR, NULL },
	/* exists with macros (RFC 7208 7.4 style) */
	{ "v=spf1 exists:%{ir}.%{l1r-}.lp._spf.%{d} -all", "192.0.2.3", SPF_PASS,
	  "strong-bad@example.com" },
	{ "v=spf1 exists:%{ir}.%{l1r-}.lp._spf.%{d} -all", "192.0.2.4", SPF_FAIL,
	  "strong-bad@example.com" },
	/* errors */
	{ "v=spf1 -all", "192.0.2.1", SPF_FAIL, NULL },
	{ "v=spf1 ip4:300.1.1.1 -all", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 frobnicate -all", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 unknown-mod=x -all", "192.0.2.1", SPF_FAIL, NULL },
	{ "v=spf1 a:tempa.example.com -all", "192.0.2.1", SPF_TEMPERROR, NULL },
	{ "v=spf1 include:two.example.net -all", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 ip4:192.0.2.1/33 -all", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 exists:%{z} -all", "192.0.2.1", SPF_PERMERROR, NULL },
	/* limits: 11 nested includes; 3 void lookups; 11 MX names */
	{ "v=spf1 include:l1.example.com -all", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 include:l2.example.com -all", "192.0.2.1", SPF_PASS, NULL },
	{ "v=spf1 a:n1.example.com a:n2.example.com -all", "192.0.2.1", SPF_FAIL, NULL },
	{ "v=spf1 a:n1.example.com a:n2.example.com a:n3.example.com -all",
	  "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 mx:many.example.com -all", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 a a a a a a a a a a -all", "192.0.2.1", SPF_FAIL, NULL },
	{ "v=spf1 a a a a a a a a a a a -all", "192.0.2.1", SPF_PERMERROR, NULL },
	/* the matched mechanism stops evaluation: later errors don't count */
	{ "v=spf1 +all a a a a a a a a a a a", "192.0.2.1", SPF_PASS, NULL },
	/* one row per table entry's syntax: all, include, a, mx, ptr, ip4,
	 * ip6, exists; modifiers redirect, exp */
	{ "v=spf1 all:example.com", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 all/24", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 include -all", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 include/24 -all", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 a=x -all", "192.0.2.10", SPF_FAIL, NULL },
	{ "v=spf1 a/24 -all", "192.0.2.200", SPF_PASS, NULL },
	{ "v=spf1 a/33 -all", "192.0.2.10", SPF_PERMERROR, NULL },
	{ "v=spf1 a:example.com/24//64 -all", "192.0.2.77", SPF_PASS, NULL },
	{ "v=spf1 a//129 -all", "192.0.2.10", SPF_PERMERROR, NULL },
	{ "v=spf1 a:%{z} -all", "192.0.2.10", SPF_PERMERROR, NULL },
	{ "v=spf1 mx:%{z} -all", "192.0.2.10", SPF_PERMERROR, NULL },
	{ "v=spf1 mx:tempa.example.com -all", "192.0.2.1", SPF_FAIL, NULL },
	{ "v=spf1 ptr:example.com -all", "192.0.2.65", SPF_PASS, NULL },
	{ "v=spf1 ptr:example.org -all", "192.0.2.65", SPF_FAIL, NULL },
	{ "v=spf1 ptr/24 -all", "192.0.2.65", SPF_PERMERROR, NULL },
	{ "v=spf1 ip4 -all", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 ip4:192.0.2.1/ -all", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 ip4:192.0.2.0/024 -all", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 ip4:2001:db8::1 -all", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 ip4:192.0.2.0/0 -all", "2001:db8::1", SPF_FAIL, NULL },
	{ "v=spf1 ip6:192.0.2.1 -all", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 ip6:2001:db8::/129 -all", "2001:db8::1", SPF_PERMERROR, NULL },
	{ "v=spf1 ?ip6:2001:db8::1 -all", "2001:db8::1", SPF_NEUTRAL, NULL },
	{ "v=spf1 exists -all", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 exists:tempa.example.com -all", "192.0.2.1", SPF_TEMPERROR,
	  NULL },
	{ "v=spf1 ~exists:amy.example.com -all", "192.0.2.1", SPF_SOFTFAIL,
	  NULL },
	{ "v=spf1 -all exp=explain.%{d}", "192.0.2.1", SPF_FAIL, NULL },
	/* 6: exp at most once */
	{ "v=spf1 exp=a.test exp=b.test ?all", "192.0.2.1", SPF_PERMERROR,
	  NULL },
	{ "v=spf1 -exp=a.test +all", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 =x +all", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 b$d=x +all", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 redirect=%{z}", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 redirect=_spf.example.net -all", "198.51.100.9", SPF_FAIL,
	  NULL },
	/* 4.6: syntax errors anywhere in the record, after a match too */
	{ "v=spf1 +all frobnicate", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 +all ip6", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 +all a:example.com:8080", "192.0.2.1", SPF_PERMERROR,
	  NULL },
	/* modifiers (6, 4.6.1): values are checked, used or not */
	{ "v=spf1 ?all redirect=", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 redirect=-all ?all", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 exp= -all", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 exp=-all", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 -all exp=%{z}.example.com", "192.0.2.1", SPF_PERMERROR,
	  NULL },
	{ "v=spf1 -all foo=%z", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 -all foo=%{l}.x", "192.0.2.1", SPF_FAIL, NULL },
	{ "v=spf1 1foo=x -all", "192.0.2.1", SPF_PERMERROR, NULL },
	/* domain-spec ends in "." toplabel or a macro (7.1) */
	{ "v=spf1 a:example.-com -all", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 mx:example.com:8080 -all", "192.0.2.1", SPF_PERMERROR,
	  NULL },
	{ "v=spf1 exists:example.com/24 -all", "192.0.2.1", SPF_PERMERROR,
	  NULL },
	{ "v=spf1 a: -all", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 mx: -all", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 include:museum -all", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 a:abc.123 -all", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 a:%{d}x -all", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 a:%{d} -all", "192.0.2.10", SPF_PASS, NULL },
	{ "v=spf1 a:example.com. -all", "192.0.2.10", SPF_PASS, NULL },
	/* ... and may hold ':' and '/': only a final /N or //N is a CIDR */
	{ "v=spf1 a:foo:bar/baz.example.com -all", "192.0.2.77", SPF_PASS,
	  NULL },
	{ "v=spf1 a:foo:bar/baz.example.com/24 -all", "192.0.2.1", SPF_PASS,
	  NULL },
	{ "v=spf1 mx:foo:bar/baz.example.com -all", "192.0.2.77", SPF_FAIL,
	  NULL },
	{ "v=spf1 a:foo:bar/baz.example.com -all", "::ffff:192.0.2.77",
	  SPF_PASS, NULL },
	{ "v=spf1 a/24/64 -all", "192.0.2.10", SPF_PERMERROR, NULL },
	{ "v=spf1 a//0 -all", "192.0.2.10", SPF_PASS, NULL },
	/* 3.1: visible ASCII only (a NUL octet reaches us as 0x7f) */
	{ "v=spf1 a:\xc3\xa9.example.com -all", "192.0.2.1", SPF_PERMERROR,
	  NULL },
	{ "v=spf1 a:foo.example.com\x7f", "192.0.2.1", SPF_PERMERROR, NULL },
	{ "v=spf1 \x01-all", "192.0.2.1", SPF_PERMERROR, NULL },
	/* %{p} (7.3): the validated name, else "unknown" */
	{ "v=spf1 exists:%{p}.ok.example.com -all", "192.0.2.65", SPF_PASS,
	  NULL },
	{ "v=spf1 -exists:%{p}.other.example.com +all", "192.0.2.200",
	  SPF_FAIL, NULL },
	{ "v=spf1 -exists:%{p}.other.example.com +all", "192.0.2.65",
	  SPF_PASS, NULL },
	{ "v=spf1 +all redirect=a.test redirect=b.test", "192.0.2.1",
	  SPF_PERMERROR, NULL },
	/* empty sender: postmaster@helo is checked */
	{ NULL, "203.0.113.5", SPF_PASS, "" },
	{ NULL, "203.0.113.6", SPF_FAIL, "" },
};

/* The trace of one check, as "kind domain text" lines. */
struct trace_buf {
	char buf[1024];
	size_t len;
};

static void
trace_cb(void *arg, enum spf_trace what, const char *domain,
    const char *text)
{
	static const char *const kinds[] = { "record", "match", "exp" };
	struct trace_buf *tb = arg;

	tb->len += (size_t)snprintf(tb->buf + tb->len, sizeof(tb->buf) -
	    tb->len, "%s %s %s\n", kinds[what], domain, text);
}

struct trace_case {
	const char *txt, *ip, *want;
};

static const struct trace_case traces[] = {
	{ "v=spf1 a -all exp=explain.example.com", "192.0.2.1",
	  "record example.com v=spf1 a -all exp=explain.example.com\n"
	  "match example.com -all\n"
	  "exp example.com 192.0.2.1 is not one of example.com's\n" },
	{ "v=spf1 a -all exp=explain.example.com", "192.0.2.10",
	  "record example.com v=spf1 a -all exp=explain.example.com\n"
	  "match example.com a\n" },
	/* a macro error, or no TXT at the target: no explanation */
	{ "v=spf1 -all exp=badexp.example.com", "192.0.2.1",
	  "record example.com v=spf1 -all exp=badexp.example.com\n"
	  "match example.com -all\n" },
	{ "v=spf1 -all exp=nothing.example.com", "192.0.2.1",
	  "record example.com v=spf1 -all exp=nothing.example.com\n"
	  "match example.com -all\n" },
	/* 6.2: not the exp= of an included record */
	{ "v=spf1 include:inc.example.com -all", "192.0.2.1",
	  "record example.com v=spf1 include:inc.example.com -all\n"
	  "record inc.example.com v=spf1 -all exp=explain.example.com\n"
	  "match inc.example.com -all\n"
	  "match example.com -all\n" },
	/* ... but that of the record redirected to */
	{ "v=spf1 redirect=inc.example.com exp=nothing.example.com",
	  "192.0.2.1",
	  "record example.com v=spf1 redirect=inc.example.com "
	  "exp=nothing.example.com\n"
	  "match example.com redirect\n"
	  "record inc.example.com v=spf1 -all exp=explain.example.com\n"
	  "match inc.example.com -all\n"
	  "exp inc.example.com 192.0.2.1 is not one of inc.example.com's\n" },
};

/* RFC 7208 7.1 domain-spec, checked before expansion. */
static const struct {
	const char *spec;
	bool valid;
} specs[] = {
	{ "example.com", true }, { "example.com.", true },
	{ "%{d}", true }, { "%{ir}.%{v}._spf.%{d2}", true },
	{ "foo:bar/baz.example.com", true }, { "a.xn--zckzah", true },
	{ "a.123-456", true }, { ".com", true }, { "x.%%", true },
	{ "", false }, { "museum", false }, { "abc.123", false },
	{ "example.-com", false }, { "example.com-", false },
	{ "example.com:8080", false }, { "example.com/24", false },
	{ "%{d}x", false }, { "foo%.example.com", false },
	{ "%(ir).example.com", false }, { "%{a}.example.com", false },
	{ "%{c}.example.com", false }, { "%{d0}.example.com", false },
	{ "a b.example.com", false }, { "example..", false },
};

struct macro_case {
	const char *macro;
	const char *ip;
	const char *want;
};

/* RFC 7208 7.4, sender strong-bad@email.example.com */
static const struct macro_case macros[] = {
	{ "%{s}", "192.0.2.3", "strong-bad@email.example.com" },
	{ "%{o}", "192.0.2.3", "email.example.com" },
	{ "%{d}", "192.0.2.3", "email.example.com" },
	{ "%{d4}", "192.0.2.3", "email.example.com" },
	{ "%{d3}", "192.0.2.3", "email.example.com" },
	{ "%{d2}", "192.0.2.3", "example.com" },
	{ "%{d1}", "192.0.2.3", "com" },
	{ "%{dr}", "192.0.2.3", "com.example.email" },
	{ "%{d2r}", "192.0.2.3", "example.email" },
	{ "%{l}", "192.0.2.3", "strong-bad" },
	{ "%{l-}", "192.0.2.3", "strong.bad" },
	{ "%{lr}", "192.0.2.3", "strong-bad" },
	{ "%{lr-}", "192.0.2.3", "bad.strong" },
	{ "%{l1r-}", "192.0.2.3", "strong" },
	{ "%{ir}.%{v}._spf.%{d2}", "192.0.2.3", "3.2.0.192.in-addr._spf.example.com" },
	{ "%{lr-}.lp._spf.%{d2}", "192.0.2.3", "bad.strong.lp._spf.example.com" },
	{ "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "192.0.2.3",
	  "bad.strong.lp.3.2.0.192.in-addr._spf.example.com" },
	{ "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "192.0.2.3",
	  "3.2.0.192.in-addr.strong.lp._spf.example.com" },
	{ "%{d2}.trusted-domains.example.net", "192.0.2.3",
	  "example.com.trusted-domains.example.net" },
	{ "%{ir}.%{v}._spf.%{d2}", "2001:db8::cb01",
	  "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com" },
	{ "%%%_%-", "192.0.2.3", "% %20" },
	{ "%{L}", "192.0.2.3", "strong-bad" },
};

int
main(void)
{
	t_begin("RFC 7208 7.4 macro expansion");
	for (size_t i = 0; i < nitems(macros); i++) {
		struct spf_request req = {
			.ip = macros[i].ip,
			.sender = "strong-bad@email.example.com",
			.helo = "mx.example.org", .receiver = "mail.test",
		};
		char *got = spf_expand(&req, "email.example.com",
		    macros[i].macro, 0);
		t_assert_str(got, macros[i].want);
		free(got);
	}
	{
		struct spf_request req = { .ip = "192.0.2.3", .sender = "a@b.c",
		    .helo = "h" };
		t_assert(spf_expand(&req, "b.c", "%{x}", 0) == NULL);
		t_assert(spf_expand(&req, "b.c", "%{d0}", 0) == NULL);
		t_assert(spf_expand(&req, "b.c", "%", 0) == NULL);
		t_assert(spf_expand(&req, "b.c", "%{c}", 0) == NULL);
		char *c = spf_expand(&req, "b.c", "%{c}", 1);
		t_assert_str(c, "192.0.2.3");
		free(c);
	}
	t_end();

	t_begin("check_host table (appendix A + mechanisms + limits)");
	for (size_t i = 0; i < nitems(cases); i++) {
		struct fake f = { cases[i].txt };
		struct spf_request req = {
			.ip = cases[i].ip,
			.sender = cases[i].sender ? cases[i].sender :
			    "user@example.com",
			.helo = cases[i].sender && !cases[i].sender[0] ?
			    "helo.example.net" : "mx.example.org",
			.receiver = "mail.test",
			.lookup = fake_lookup, .ctx = &f,
		};
		const char *why = NULL;
		char *dom = NULL;
		enum spf_result r = spf_check(&req, &dom, &why);
		if (r != cases[i].want)
			fprintf(stderr, "case %zu: \"%s\" ip %s: got %s want %s"
			    " (%s)\n", i, cases[i].txt ? cases[i].txt : "-",
			    cases[i].ip, spf_result_str(r),
			    spf_result_str(cases[i].want), why ? why : "");
		t_assert_int(r, cases[i].want);
		free(dom);
	}
	t_end();

	t_begin("check_host reasons");
	{
		static const struct {
			const char *txt, *why;
		} whys[] = {
			{ "v=spf1 frobnicate -all", "unknown mechanism" },
			{ "v=spf1 a/33 -all", "syntax error in SPF record" },
			{ "v=spf1 -exp=x +all", "bad modifier" },
			{ "v=spf1 b$d=x +all", "bad modifier name" },
			{ "v=spf1 redirect=a.test redirect=b.test",
			  "two redirect modifiers" },
			{ "v=spf1 exp=a.test exp=b.test", "two exp modifiers" },
			{ "v=spf1 exp=a", "syntax error in exp" },
			{ "v=spf1 x=%", "syntax error in a modifier" },
			{ "v=spf1 -all 1x=y", "bad modifier name" },
			{ "v=spf1 +all a:b.c\x80", "control or non-ASCII "
			  "character in SPF record" },
			{ "v=spf1 a a a a a a a a a a a -all",
			  "more than 10 DNS lookups" },
			{ "v=spf1 mx:many.example.com -all",
			  "more than 10 MX names" },
			{ "v=spf1 a:tempa.example.com -all", "DNS error" },
			{ "v=spf1 include:nospf.example.net -all",
			  "include of a domain without SPF" },
			{ "v=spf1 redirect=nospf.example.net",
			  "redirect to a domain without SPF" },
			{ "v=spf1 redirect=%{z}", "syntax error in redirect" },
			{ "v=spf1 ?all", "mechanism matched" },
			{ "v=spf1 ip4:192.0.2.200", "no mechanism matched" },
			{ "v=spf1 a:n1.example.com a:n2.example.com "
			  "a:n3.example.com -all", "too many void lookups" },
		};

		for (size_t i = 0; i < nitems(whys); i++) {
			struct fake f = { whys[i].txt };
			struct spf_request req = {
				.ip = "192.0.2.1", .sender = "user@example.com",
				.helo = "mx.example.org", .receiver = "mail.test",
				.lookup = fake_lookup, .ctx = &f,
			};
			const char *why = NULL;

			(void)spf_check(&req, NULL, &why);
			t_assert_str(why, whys[i].why);
		}
	}
	t_end();

	t_begin("domain-spec syntax (7.1)");
	for (size_t i = 0; i < nitems(specs); i++) {
		if (spf_domain_spec_is_valid(specs[i].spec) != specs[i].valid)
			fprintf(stderr, "spec \"%s\"\n", specs[i].spec);
		t_assert(spf_domain_spec_is_valid(specs[i].spec) ==
		    specs[i].valid);
	}
	t_assert(spf_macro_string_is_valid("%{c} from %{p}", true));
	t_assert(!spf_macro_string_is_valid("%{c} from %{p}", false));
	t_assert(!spf_macro_string_is_valid("%", true));
	t_end();

	t_begin("trace: records, matches, explanations (6.2)");
	for (size_t i = 0; i < nitems(traces); i++) {
		struct fake f = { traces[i].txt };
		struct trace_buf tb = { .len = 0 };
		struct spf_request req = {
			.ip = traces[i].ip, .sender = "user@example.com",
			.helo = "mx.example.org", .receiver = "mail.test",
			.lookup = fake_lookup, .ctx = &f,
			.trace = trace_cb, .trace_arg = &tb,
		};

		(void)spf_check(&req, NULL, NULL);
		t_assert_str(tb.buf, traces[i].want);
	}
	t_end();

	t_begin("result names");
	t_assert_str(spf_result_str(SPF_SOFTFAIL), "softfail");
	t_assert_str(spf_result_str(SPF_PERMERROR), "permerror");
	t_end();
	return t_exit();
}
