/*
 * The MAIL/RCPT argument parser: "FROM:<path> params" and "TO:<path>
 * params" (RFC 5321 4.1.2, RFC 1869 parameters, RFC 1870 SIZE, RFC 6152
 * BODY, RFC 6531 SMTPUTF8, RFC 4954 AUTH=; RFC 3461 DSN ones go to
 * dsn.c). Pure: no I/O and no store; the policy (relaying, literals, %
 * hacks) is tx.c's, from the flags set here.
 */
#include "smtpd/smtpd.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/addr.h"
#include "common/util.h"
#include "mailauth/srs.h"

/* RFC 5321 4.5.3.1.3: a path is at most 256 octets including "<>". */
#define SMTP_PATH_MAX	256

static enum smtp_path_err smtp_path_mailbox(const char *s, size_t len,
    struct smtp_path *p, const char **error_r);
static enum smtp_path_err smtp_path_params(const char *s,
    enum smtp_path_kind kind, struct smtp_path *p, const char **error_r);
static bool smtp_path_literal_ok(const char *s, size_t len);

void
smtp_path_clear(struct smtp_path *p)
{
	free(p->addr);
	dsn_mail_clear(&p->dsn_mail);
	dsn_rcpt_clear(&p->dsn_rcpt);
	memset(p, 0, sizeof(*p));
}

/* Length of the route "@a,@b:" prefix (0 if none), or -1 if malformed. */
static long
smtp_path_route_len(const char *s, size_t len)
{
	const char *colon;
	size_t i;

	if (len == 0 || s[0] != '@')
		return 0;
	colon = memchr(s, ':', len);
	if (colon == NULL)
		return -1;
	/* A-d-l = At-domain *( "," At-domain ) */
	for (i = 0; s + i < colon; i++) {
		if (s[i] == '@' && (i == 0 || s[i - 1] == ',')) {
			if (s + i + 1 == colon || s[i + 1] == ',')
				return -1;
			continue;
		}
		if (s[i] == ',' && s[i + 1] == '@')
			continue;
		if (s[i] == ',' || s[i] == '@' || (unsigned char)s[i] <= ' ')
			return -1;
	}
	return (long)(colon - s) + 1;
}

enum smtp_path_err
smtp_path_parse(const char *args, enum smtp_path_kind kind, bool smtputf8,
    struct smtp_path *p, const char **error_r)
{
	const char *prefix = kind == SMTP_PATH_MAIL ? "FROM:" : "TO:";
	size_t plen = strlen(prefix), i, len;
	const char *s, *path;
	enum smtp_path_err err;
	bool quoted = false;
	long route;

	memset(p, 0, sizeof(*p));
	if (strncasecmp(args, prefix, plen) != 0) {
		*error_r = kind == SMTP_PATH_MAIL ?
		    "Syntax: MAIL FROM:<address>" : "Syntax: RCPT TO:<address>";
		return SMTP_PATH_ERR_SYNTAX;
	}
	s = args + plen;
	/* Strictly no space after the colon (RFC 5321 4.1.1.2), but many
	 * clients send one; it is harmless to allow. */
	while (*s == ' ')
		s++;
	if (*s != '<') {
		*error_r = "Path must be enclosed in angle brackets";
		return SMTP_PATH_ERR_BRACKETS;
	}
	path = ++s;
	/* Find the closing '>' outside a quoted local part. */
	for (i = 0; path[i] != '\0'; i++) {
		if (quoted && path[i] == '\\' && path[i + 1] != '\0') {
			i++;
			continue;
		}
		if (path[i] == '"')
			quoted = !quoted;
		else if (!quoted && path[i] == '>')
			break;
	}
	if (path[i] != '>') {
		*error_r = "Path must be enclosed in angle brackets";
		return SMTP_PATH_ERR_BRACKETS;
	}
	len = i;
	s = path + len + 1;
	if (*s != '\0' && *s != ' ') {
		*error_r = "Garbage after the path";
		return SMTP_PATH_ERR_BRACKETS;
	}
	if (len + 2 > SMTP_PATH_MAX) {
		*error_r = "Path too long";
		return SMTP_PATH_ERR_ADDRESS;
	}
	for (i = 0; i < len; i++) {
		if ((unsigned char)path[i] >= 0x80)
			p->utf8 = true;
		else if ((unsigned char)path[i] < ' ' || path[i] == 0x7f) {
			*error_r = "Control characters in the address";
			goto bad_addr;
		}
	}
	if ((err = smtp_path_params(s, kind, p, error_r)) != SMTP_PATH_OK)
		goto fail;
	if (kind == SMTP_PATH_MAIL)
		smtputf8 = p->smtputf8;
	if (p->utf8 && !smtputf8) {
		*error_r = "Non-ASCII address needs the SMTPUTF8 parameter";
		err = SMTP_PATH_ERR_UTF8;
		goto fail;
	}
	if (len == 0) {
		if (kind == SMTP_PATH_RCPT) {
			*error_r = "Null recipient not allowed";
			goto bad_addr;
		}
		p->null = true;
		p->addr = xstrdup("");
		return SMTP_PATH_OK;
	}
	if ((route = smtp_path_route_len(path, len)) < 0) {
		*error_r = "Bad source route";
		goto bad_addr;
	}
	if (route > 0) {
		/* RFC 5321 4.1.2/C: accepted, and ignored. */
		p->route = true;
		path += route;
		len -= (size_t)route;
	}
	if (kind == SMTP_PATH_RCPT && !p->route && len == 10 &&
	    strncasecmp(path, "postmaster", 10) == 0) {
		/* RFC 5321 4.5.1: bare <postmaster>. */
		p->postmaster = true;
		p->addr = xstrdup("postmaster");
		return SMTP_PATH_OK;
	}
	if ((err = smtp_path_mailbox(path, len, p, error_r)) != SMTP_PATH_OK)
		goto fail;
	return SMTP_PATH_OK;
bad_addr:
	err = SMTP_PATH_ERR_ADDRESS;
fail:
	smtp_path_clear(p);
	return err;
}

/* "local@domain" or "local@[literal]" of len octets at s. */
static enum smtp_path_err
smtp_path_mailbox(const char *s, size_t len, struct smtp_path *p,
    const char **error_r)
{
	const char *at = NULL, *dom;
	size_t llen, dlen, i, lmax;
	char *tmp;
	bool quoted = false;

	for (i = 0; i < len; i++) {
		if (quoted && s[i] == '\\' && i + 1 < len) {
			i++;
			continue;
		}
		if (s[i] == '"')
			quoted = !quoted;
		else if (!quoted && s[i] == '@')
			at = s + i;
	}
	if (at == NULL || at == s || at + 1 == s + len) {
		*error_r = "Address needs local-part@domain";
		return SMTP_PATH_ERR_ADDRESS;
	}
	llen = (size_t)(at - s);
	dom = at + 1;
	dlen = len - llen - 1;
	if (s[0] != '"' && (memchr(s, '%', llen) || memchr(s, '!', llen)))
		p->percent = true;
	/*
	 * RFC 5321 4.5.3.1.1 sets 64 octets for a local part, but SRS
	 * addresses (a forwarder's rewritten sender, a bounce to ours)
	 * routinely pass it, and 4.5.3.1 asks that longer objects be
	 * accepted where possible: those may fill the path.
	 */
	lmax = srs_is_srs(s) ? SMTP_PATH_MAX : ADDR_LOCAL_MAX;
	if (addr_check_local_max(s, llen, lmax, error_r) != 0)
		return SMTP_PATH_ERR_ADDRESS;
	if (dom[0] == '[') {
		if (!smtp_path_literal_ok(dom, dlen)) {
			*error_r = "Bad address literal";
			return SMTP_PATH_ERR_ADDRESS;
		}
		p->literal = true;
		p->addr = xstrndup(s, len);
		return SMTP_PATH_OK;
	}
	tmp = xstrndup(s, len);
	if (addr_normalize_max(tmp, lmax, &p->addr, error_r) != 0) {
		free(tmp);
		p->addr = NULL;
		return SMTP_PATH_ERR_ADDRESS;
	}
	free(tmp);
	return SMTP_PATH_OK;
}

/* "[" dcontent "]" with printable US-ASCII except "[", "]" and "\". */
static bool
smtp_path_literal_ok(const char *s, size_t len)
{
	size_t i;

	if (len < 3 || s[0] != '[' || s[len - 1] != ']')
		return false;
	for (i = 1; i + 1 < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 33 || ch > 126 || ch == '[' || ch == ']' ||
		    ch == '\\')
			return false;
	}
	return true;
}

/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
static bool
smtp_path_keyword_ok(const char *k, size_t len)
{
	size_t i;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++) {
		char ch = k[i];
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' &&
		    ch <= 'Z') || (ch >= '0' && ch <= '9');
		if (!alnum && (i == 0 || ch != '-'))
			return false;
	}
	return true;
}

/* esmtp-value = 1*(%d33-60 / %d62-126); UTF-8 allowed (RFC 6531). */
static bool
smtp_path_value_ok(const char *v, size_t len)
{
	size_t i;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)v[i];
		if (ch < 33 || ch == '=' || ch == 127)
			return false;
	}
	return true;
}

static bool
smtp_path_kw(const char *k, size_t klen, const char *name)
{
	return strlen(name) == klen && strncasecmp(k, name, klen) == 0;
}

static enum smtp_path_err
smtp_path_params(const char *s, enum smtp_path_kind kind, struct smtp_path *p,
    const char **error_r)
{
	const char *k, *eq, *v, *end;
	size_t klen, vlen, i;
	bool seen_body = false, seen_auth = false;
	enum dsn_param dr;

	for (;;) {
		while (*s == ' ')
			s++;
		if (*s == '\0')
			return SMTP_PATH_OK;
		k = s;
		end = strchr(s, ' ');
		if (end == NULL)
			end = s + strlen(s);
		s = end;
		eq = memchr(k, '=', (size_t)(end - k));
		klen = eq ? (size_t)(eq - k) : (size_t)(end - k);
		v = eq ? eq + 1 : NULL;
		vlen = eq ? (size_t)(end - v) : 0;
		if (!smtp_path_keyword_ok(k, klen) ||
		    (v != NULL && !smtp_path_value_ok(v, vlen))) {
			*error_r = "Bad parameter syntax";
			return SMTP_PATH_ERR_VALUE;
		}
		if (kind == SMTP_PATH_MAIL && smtp_path_kw(k, klen, "SIZE")) {
			/* RFC 1870: 1*20DIGIT */
			if (p->has_size || v == NULL || vlen > 20)
				goto bad_value;
			p->size = 0;
			for (i = 0; i < vlen; i++) {
				if (v[i] < '0' || v[i] > '9')
					goto bad_value;
				if (p->size > (UINT64_MAX - 9) / 10) {
					p->size = UINT64_MAX;
					continue;
				}
				p->size = p->size * 10 + (uint64_t)(v[i] - '0');
			}
			p->has_size = true;
		} else if (kind == SMTP_PATH_MAIL &&
		    smtp_path_kw(k, klen, "BODY")) {
			if (seen_body || v == NULL)
				goto bad_value;
			if (smtp_path_kw(v, vlen, "7BIT"))
				p->body = SMTP_BODY_7BIT;
			else if (smtp_path_kw(v, vlen, "8BITMIME"))
				p->body = SMTP_BODY_8BITMIME;
			else
				goto bad_value;
			seen_body = true;
		} else if (kind == SMTP_PATH_MAIL &&
		    smtp_path_kw(k, klen, "SMTPUTF8")) {
			if (p->smtputf8 || v != NULL)
				goto bad_value;
			p->smtputf8 = true;
		} else if (kind == SMTP_PATH_MAIL &&
		    smtp_path_kw(k, klen, "AUTH")) {
			/* RFC 4954 5: the submitter's identity; we trust the
			 * session's own AUTH instead, so it is ignored. */
			if (seen_auth || v == NULL)
				goto bad_value;
			seen_auth = true;
		} else if ((dr = kind == SMTP_PATH_MAIL ?
		    dsn_param_mail(&p->dsn_mail, k, klen, v, vlen, error_r) :
		    dsn_param_rcpt(&p->dsn_rcpt, k, klen, v, vlen,
		    error_r)) != DSN_PARAM_OTHER) {
			/* RFC 3461 4: RET, ENVID, NOTIFY, ORCPT. */
			if (dr == DSN_PARAM_BAD)
				return SMTP_PATH_ERR_VALUE;
		} else {
			*error_r = "Unsupported parameter";
			return SMTP_PATH_ERR_PARAM;
		}
	}
bad_value:
	*error_r = "Bad parameter value";
	return SMTP_PATH_ERR_VALUE;
}
