/*
 * SPF macros (RFC 7208 7): the macro-string parser shared by the syntax
 * checks (macro-string, domain-spec: before expansion, never after it)
 * and the expander (letters, transformers, delimiters, URL escaping),
 * and domain-spec expansion (the 253-octet rule). %{p} asks
 * spf_mech.c for the validated name; no other DNS here.
 */
#include "mailauth/spf_int.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPF_MACRO_PARTS		128	/* labels a transformer keeps */

/* One macro-expand (7.1), parsed. */
struct spf_macro {
	const char *lit;	/* "%%", "%_", "%-": the text; else NULL */
	char letter;
	unsigned digits;		/* 0: all */
	bool reverse;
	char delims[8];			/* "." by default */
};

static int spf_macro_parse(const char **pp, bool is_exp,
    struct spf_macro *m);
static void spf_append(char **buf, size_t *len, size_t *cap, const char *s,
    size_t n);
static char *spf_macro_value(struct spf_ctx *c, const char *domain,
    char letter);
static bool spf_toplabel_is_valid(const char *s, size_t n);

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

/*
 * The macro-expand at *pp, which points just past its '%'; *pp moves past
 * it. 0, or -1 on a syntax error: macro-expand = "%{" macro-letter
 * transformers *delimiter "}" / "%%" / "%_" / "%-"; c, r, t only in an
 * explain-string (is_exp).
 */
static int
spf_macro_parse(const char **pp, bool is_exp, struct spf_macro *m)
{
	const char *p = *pp;
	bool has_digits = false;
	size_t nd = 0;

	memset(m, 0, sizeof(*m));
	m->lit = *p == '%' ? "%" : *p == '_' ? " " : *p == '-' ? "%20" : NULL;
	if (m->lit != NULL) {
		*pp = p + 1;
		return 0;
	}
	if (*p++ != '{' || *p == '\0' ||
	    strchr("slodiphcrtvSLODIPHCRTV", *p) == NULL)
		return -1;
	m->letter = *p++;
	if (!is_exp && strchr("crtCRT", m->letter) != NULL)
		return -1;
	while (isdigit((unsigned char)*p)) {
		m->digits = m->digits * 10 + (unsigned)(*p++ - '0');
		if (m->digits > SPF_MACRO_PARTS)
			m->digits = SPF_MACRO_PARTS;
		has_digits = true;
	}
	/* 7.3: zero labels is not a transformer */
	if (has_digits && m->digits == 0)
		return -1;
	if (*p == 'r' || *p == 'R') {
		m->reverse = true;
		p++;
	}
	for (; *p != '\0' && strchr(".-+,/_=", *p) != NULL; p++)
		if (strchr(m->delims, *p) == NULL)
			m->delims[nd++] = *p;
	if (nd == 0)
		m->delims[0] = '.';
	if (*p != '}')
		return -1;
	*pp = p + 1;
	return 0;
}

bool
spf_macro_string_is_valid(const char *s, bool is_exp)
{
	struct spf_macro m;

	while (*s != '\0') {
		unsigned char ch = (unsigned char)*s;

		if (ch == '%') {
			s++;
			if (spf_macro_parse(&s, is_exp, &m) < 0)
				return false;
			continue;
		}
		/* macro-literal = %x21-24 / %x26-7E; SP in explain-string */
		if ((ch < 0x21 || ch > 0x7e) && !(is_exp && ch == ' '))
			return false;
		s++;
	}
	return true;
}

/* toplabel = ( *alphanum ALPHA *alphanum ) /
 *            ( 1*alphanum "-" *( alphanum / "-" ) alphanum ) */
static bool
spf_toplabel_is_valid(const char *s, size_t n)
{
	bool alpha = false, hyphen = false;

	if (n == 0 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '-')
			hyphen = true;
		else if (isalpha(ch))
			alpha = true;
		else if (!isdigit(ch))
			return false;
	}
	return alpha || hyphen;
}

bool
spf_domain_spec_is_valid(const char *spec)
{
	const char *p = spec, *last_macro_end = NULL, *dot = NULL;
	struct spf_macro m;
	size_t n = strlen(spec);

	if (n == 0 || !spf_macro_string_is_valid(spec, false))
		return false;
	while (*p != '\0') {
		if (*p++ != '%')
			continue;
		(void)spf_macro_parse(&p, false, &m);
		last_macro_end = p;
	}
	/* domain-end = ( "." toplabel [ "." ] ) / macro-expand */
	if (last_macro_end == spec + n)
		return true;
	if (spec[n - 1] == '.')
		n--;
	for (size_t i = n; i-- > 0;)
		if (spec[i] == '.') {
			dot = spec + i;
			break;
		}
	return dot != NULL && spf_toplabel_is_valid(dot + 1,
	    (size_t)(spec + n - dot - 1));
}

char *
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
	const char *at = sender != NULL ? strrchr(sender, '@') : NULL;
	char *tmp;

	switch (tolower((unsigned char)letter)) {
	case 's':
		return sender ? xstrdup(sender) :
		    xasprintf("postmaster@%s", r->helo);
	case 'l':
		/* 4.3: an empty local-part is "postmaster" */
		if (at != NULL && at > sender)
			return xstrndup(sender, (size_t)(at - sender));
		return xstrdup("postmaster");
	case 'o':
		return xstrdup(at != NULL ? at + 1 : r->helo);
	case 'd':
		return xstrdup(domain);
	case 'i':
		return spf_ip_dotted(c);
	case 'p':
		return spf_validated_name(c, domain);
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
spf_expand_ctx(struct spf_ctx *c, const char *domain, const char *macro,
    bool is_exp)
{
	char *out = NULL, *parts[SPF_MACRO_PARTS];
	size_t len = 0, cap = 0;
	struct spf_macro m;

	spf_append(&out, &len, &cap, "", 0);
	for (const char *p = macro; *p != '\0';) {
		if (*p != '%') {
			spf_append(&out, &len, &cap, p++, 1);
			continue;
		}
		p++;
		if (spf_macro_parse(&p, is_exp, &m) < 0) {
			free(out);
			return NULL;
		}
		if (m.lit != NULL) {
			spf_append(&out, &len, &cap, m.lit, strlen(m.lit));
			continue;
		}
		char *val = spf_macro_value(c, domain, m.letter), *save = NULL;
		size_t np = 0;

		/* Split on the delimiters, optionally reverse, keep the
		 * rightmost `digits` parts, join with '.' (7.3). */
		for (char *t = strtok_r(val, m.delims, &save);
		    t != NULL && np < SPF_MACRO_PARTS;
		    t = strtok_r(NULL, m.delims, &save))
			parts[np++] = t;
		if (m.reverse)
			for (size_t i = 0; i < np / 2; i++) {
				char *x = parts[i];
				parts[i] = parts[np - 1 - i];
				parts[np - 1 - i] = x;
			}
		size_t start = m.digits != 0 && m.digits < np ?
		    np - m.digits : 0;
		for (size_t i = start; i < np; i++) {
			if (i > start)
				spf_append(&out, &len, &cap, ".", 1);
			if (!isupper((unsigned char)m.letter)) {
				spf_append(&out, &len, &cap, parts[i],
				    strlen(parts[i]));
				continue;
			}
			/* URL-escape (7.3) */
			for (const char *q = parts[i]; *q; q++) {
				unsigned char ch = (unsigned char)*q;
				char hex[4];

				if (isalnum(ch) || strchr("-._~", ch)) {
					spf_append(&out, &len, &cap, q, 1);
					continue;
				}
				snprintf(hex, sizeof(hex), "%%%02X", ch);
				spf_append(&out, &len, &cap, hex, 3);
			}
		}
		free(val);
	}
	return out;
}

char *
spf_expand(const struct spf_request *req, const char *domain,
    const char *macro, int is_exp)
{
	struct spf_ctx c;
	char *out;

	if (spf_ctx_init(&c, req) < 0)
		return NULL;
	out = spf_expand_ctx(&c, domain, macro, is_exp != 0);
	spf_ctx_fini(&c);
	return out;
}

char *
spf_domain_spec(struct spf_ctx *c, const char *domain, const char *spec)
{
	char *d = spf_expand_ctx(c, domain, spec, false);
	size_t n;

	if (d == NULL)
		return NULL;
	n = strlen(d);
	if (n > 0 && d[n - 1] == '.')
		d[--n] = '\0';
	while (n > SPF_MAX_EXPANSION) {
		char *dot = strchr(d, '.');

		if (dot == NULL)
			break;
		memmove(d, dot + 1, strlen(dot + 1) + 1);
		n = strlen(d);
	}
	/* Not checked again after expansion (7.1: invalid-hello-macro): a
	 * name no query can carry does not exist (mailauth/dns.c). */
	return d;
}
