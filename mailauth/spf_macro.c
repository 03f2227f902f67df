/*
 * SPF macros (RFC 7208 7): the macro-string expander (letters,
 * transformers, delimiters, URL escaping) and the domain-spec rules on
 * top of it (length, toplabel). No DNS: %{p} is "unknown" unless a ptr
 * check already validated a name.
 */
#include "mailauth/spf_int.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
		/* 7.1: "%%", "%_", "%-" */
		const char *lit = *p == '%' ? "%" : *p == '_' ? " " :
		    *p == '-' ? "%20" : NULL;
		if (lit != NULL) {
			spf_append(&out, &len, &cap, lit, strlen(lit));
			p++;
			continue;
		}
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

char *
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

