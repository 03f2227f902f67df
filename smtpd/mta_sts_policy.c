/*
 * The pure parts of MTA-STS (RFC 8461): the _mta-sts TXT record (3.1),
 * the policy file (3.2) and MX patterns (4.1). No I/O.
 */
#include "smtpd/mta_sts.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <stdio.h>

#include "common/util.h"

static int mta_sts_txt_parse(const char *, char *);
static bool mta_sts_is_wsp(char);
static int mta_sts_mx_valid(const char *, size_t);

static bool
mta_sts_is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* One "v=STSv1; id=...; ext=..." record: 0 and id_r, -1 if invalid. */
static int
mta_sts_txt_parse(const char *txt, char *id_r)
{
	const char *p = txt + strlen("v=STSv1"), *k, *v;
	size_t kl, vl;
	bool have_id = false;

	/* sts-text-record = sts-version 1*(*WSP ";" *WSP sts-field) *WSP
	 * [";"]: the version first, then fields. */
	for (;;) {
		while (mta_sts_is_wsp(*p))
			p++;
		if (*p == '\0')
			break;
		if (*p != ';')
			return -1;
		p++;
		while (mta_sts_is_wsp(*p))
			p++;
		if (*p == '\0')
			break;		/* a final ";" */
		k = p;
		while (isalnum((unsigned char)*p) || *p == '_' || *p == '-' ||
		    *p == '.')
			p++;
		kl = (size_t)(p - k);
		if (kl == 0 || kl > 32 || *p != '=')
			return -1;
		v = ++p;
		while (*p != '\0' && *p != ';' && !mta_sts_is_wsp(*p)) {
			/* sts-ext-value = 1*(%x21-3A / %x3C / %x3E-7E) */
			if (*p < 0x21 || *p > 0x7e || *p == '=')
				return -1;
			p++;
		}
		vl = (size_t)(p - v);
		if (vl == 0)
			return -1;
		if (kl == 2 && strncmp(k, "id", 2) == 0 && !have_id) {
			if (vl > MTA_STS_ID_MAX)
				return -1;
			for (size_t i = 0; i < vl; i++)
				if (!isalnum((unsigned char)v[i]))
					return -1;
			memcpy(id_r, v, vl);
			id_r[vl] = '\0';
			have_id = true;
		}
	}
	return have_id ? 0 : -1;
}

int
mta_sts_txt_id(const char *const *rr, size_t n, char *id_r)
{
	size_t found = 0, i;
	const char *rec = NULL;

	for (i = 0; i < n; i++) {
		/* "v=STSv1" followed by ";" or blanks or the end. */
		if (strncmp(rr[i], "v=STSv1", 7) != 0 ||
		    (rr[i][7] != '\0' && rr[i][7] != ';' &&
		    !mta_sts_is_wsp(rr[i][7])))
			continue;
		found++;
		rec = rr[i];
	}
	if (found != 1)
		return -1;
	return mta_sts_txt_parse(rec, id_r);
}

/* An mx pattern: a domain name, optionally "*." first. 0 / -1. */
static int
mta_sts_mx_valid(const char *s, size_t len)
{
	size_t i, label = 0;

	if (len >= 2 && s[0] == '*' && s[1] == '.') {
		s += 2;
		len -= 2;
	}
	if (len == 0 || len > 253)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (label == 0)
				return -1;
			label = 0;
		} else if (isalnum((unsigned char)s[i]) || s[i] == '-' ||
		    s[i] == '_') {
			if (++label > 63)
				return -1;
		} else
			return -1;
	}
	return 0;
}

struct mta_sts_policy *
mta_sts_policy_parse(const char *body, size_t len, const char *id,
    const char **error_r)
{
	struct mta_sts_policy *p;
	const char *line, *end = body + len, *eol, *k, *v;
	size_t kl, vl;
	bool have_version = false, have_mode = false, have_age = false;
	char num[16];

	if (len > MTA_STS_BODY_MAX) {
		*error_r = "policy larger than 64 KiB";
		return NULL;
	}
	p = xcalloc(1, sizeof(*p));
	p->refs = 1;
	snprintf(p->id, sizeof(p->id), "%s", id);
	p->text = xstrndup(body, len);
	for (line = body; line < end; line = eol + 1) {
		eol = memchr(line, '\n', (size_t)(end - line));
		if (eol == NULL)
			eol = end;
		vl = (size_t)(eol - line);
		if (vl > 0 && line[vl - 1] == '\r')
			vl--;
		if (vl == 0)
			continue;
		/* sts-policy-field = key *WSP ":" *WSP value */
		k = line;
		for (kl = 0; kl < vl && (isalnum((unsigned char)k[kl]) ||
		    k[kl] == '_' || k[kl] == '-' || k[kl] == '.'); kl++)
			;
		v = k + kl;
		while (v < line + vl && mta_sts_is_wsp(*v))
			v++;
		if (kl == 0 || kl > 32 || v == line + vl || *v != ':') {
			*error_r = "malformed line";
			goto fail;
		}
		v++;
		while (v < line + vl && mta_sts_is_wsp(*v))
			v++;
		vl = (size_t)(line + vl - v);
		while (vl > 0 && mta_sts_is_wsp(v[vl - 1]))
			vl--;
		if (kl == 7 && strncmp(k, "version", 7) == 0) {
			if (have_version)
				continue;	/* the first one counts */
			if (vl != 5 || strncmp(v, "STSv1", 5) != 0) {
				*error_r = "version is not STSv1";
				goto fail;
			}
			have_version = true;
		} else if (kl == 4 && strncmp(k, "mode", 4) == 0) {
			if (have_mode)
				continue;
			if (vl == 7 && strncmp(v, "enforce", 7) == 0)
				p->mode = MTA_STS_ENFORCE;
			else if (vl == 7 && strncmp(v, "testing", 7) == 0)
				p->mode = MTA_STS_TESTING;
			else if (vl == 4 && strncmp(v, "none", 4) == 0)
				p->mode = MTA_STS_NONE;
			else {
				*error_r = "unknown mode";
				goto fail;
			}
			have_mode = true;
		} else if (kl == 7 && strncmp(k, "max_age", 7) == 0) {
			unsigned long a;

			if (have_age)
				continue;
			/* 1*10DIGIT */
			if (vl == 0 || vl > 10 ||
			    strspn(v, "0123456789") < vl) {
				*error_r = "bad max_age";
				goto fail;
			}
			memcpy(num, v, vl);
			num[vl] = '\0';
			a = strtoul(num, NULL, 10);
			p->max_age = a > MTA_STS_MAX_AGE_MAX ?
			    MTA_STS_MAX_AGE_MAX : (uint32_t)a;
			have_age = true;
		} else if (kl == 2 && strncmp(k, "mx", 2) == 0) {
			char *pat;

			if (mta_sts_mx_valid(v, vl) < 0) {
				*error_r = "bad mx pattern";
				goto fail;
			}
			if (p->nmx >= MTA_STS_MX_MAX) {
				*error_r = "too many mx lines";
				goto fail;
			}
			if (vl > 0 && v[vl - 1] == '.')
				vl--;
			pat = xstrndup(v, vl);
			for (char *c = pat; *c != '\0'; c++)
				*c = (char)tolower((unsigned char)*c);
			p->mx = xrealloc(p->mx, (p->nmx + 1) *
			    sizeof(*p->mx));
			p->mx[p->nmx++] = pat;
		}
		/* Other keys: extensions, ignored. */
		if (eol == end)
			break;
	}
	if (!have_version || !have_mode || !have_age) {
		*error_r = "version, mode or max_age missing";
		goto fail;
	}
	if (p->mode != MTA_STS_NONE && p->nmx == 0) {
		*error_r = "no mx";
		goto fail;
	}
	return p;
fail:
	mta_sts_policy_unref(p);
	return NULL;
}

struct mta_sts_policy *
mta_sts_policy_ref(struct mta_sts_policy *p)
{
	if (p != NULL)
		p->refs++;
	return p;
}

void
mta_sts_policy_unref(struct mta_sts_policy *p)
{
	if (p == NULL || --p->refs > 0)
		return;
	for (size_t i = 0; i < p->nmx; i++)
		free(p->mx[i]);
	free(p->mx);
	free(p->text);
	free(p);
}

bool
mta_sts_mx_match(const struct mta_sts_policy *p, const char *host)
{
	size_t hl = strlen(host), pl;
	const char *pat, *dot;

	if (hl > 0 && host[hl - 1] == '.')
		hl--;
	for (size_t i = 0; i < p->nmx; i++) {
		pat = p->mx[i];
		pl = strlen(pat);
		if (pat[0] == '*') {
			/* "*.example.com": "a.example.com", not
			 * "example.com" or "a.b.example.com". */
			dot = memchr(host, '.', hl);
			if (dot == NULL || dot == host)
				continue;
			if ((size_t)(host + hl - dot) == pl - 1 &&
			    strncasecmp(dot, pat + 1, pl - 1) == 0)
				return true;
		} else if (hl == pl && strncasecmp(host, pat, hl) == 0)
			return true;
	}
	return false;
}

const char *
mta_sts_mode_str(enum mta_sts_mode mode)
{
	switch (mode) {
	case MTA_STS_ENFORCE:
		return "enforce";
	case MTA_STS_TESTING:
		return "testing";
	default:
		return "none";
	}
}
