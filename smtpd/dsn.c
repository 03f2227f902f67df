/*
 * RFC 3461 parameters of MAIL (RET, ENVID) and RCPT (NOTIFY, ORCPT):
 * syntax, limits, xtext. Pure: the policy of which notices to send lives
 * with their senders (bounce.c, relay_flush.c, delivery_writer.c).
 */
#include "smtpd/dsn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"

static bool dsn_kw(const char *k, size_t klen, const char *name);
static bool dsn_xtext_ok(const char *s, size_t len, int min);
static bool dsn_atom_ok(const char *s, size_t len);
static int dsn_hex(char c);

static bool
dsn_kw(const char *k, size_t klen, const char *name)
{
	return strlen(name) == klen && strncasecmp(k, name, klen) == 0;
}

/* Upper-case hex only: RFC 3461 4 hexchar = ASCII "+" 2(%x30-39 /
 * %x41-46). */
static int
dsn_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *
dsn_xtext_decode(const char *s, size_t len, int min)
{
	char *out = xmalloc(len + 1);
	size_t i, o = 0;
	int hi, lo, ch;

	for (i = 0; i < len; i++) {
		ch = (unsigned char)s[i];
		if (ch == '+') {
			if (i + 2 >= len)
				goto bad;
			hi = dsn_hex(s[i + 1]);
			lo = dsn_hex(s[i + 2]);
			if (hi < 0 || lo < 0)
				goto bad;
			ch = hi * 16 + lo;
			i += 2;
		} else if (ch < 33 || ch > 126 || ch == '=') {
			goto bad;
		}
		if (ch < min || ch > 126)
			goto bad;
		out[o++] = (char)ch;
	}
	out[o] = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

static bool
dsn_xtext_ok(const char *s, size_t len, int min)
{
	char *t = dsn_xtext_decode(s, len, min);

	free(t);
	return t != NULL;
}

/* RFC 5322 atom (addr-type of ORCPT, RFC 3461 4.2). */
static bool
dsn_atom_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || (ch != '\0' &&
		    strchr("!#$%&'*+-/=?^_`{|}~", ch) != NULL)))
			return false;
	}
	return true;
}

enum dsn_param
dsn_param_mail(struct dsn_mail *d, const char *k, size_t klen, const char *v,
    size_t vlen, const char **error_r)
{
	if (dsn_kw(k, klen, "RET")) {
		/* RFC 3461 4.3: "FULL" / "HDRS", at most once. */
		if (d->ret != DSN_RET_NONE || v == NULL) {
			*error_r = "Bad RET parameter";
			return DSN_PARAM_BAD;
		}
		if (dsn_kw(v, vlen, "FULL"))
			d->ret = DSN_RET_FULL;
		else if (dsn_kw(v, vlen, "HDRS"))
			d->ret = DSN_RET_HDRS;
		else {
			*error_r = "Bad RET parameter";
			return DSN_PARAM_BAD;
		}
		return DSN_PARAM_OK;
	}
	if (dsn_kw(k, klen, "ENVID")) {
		/* RFC 3461 4.4: xtext of printable (graphic and white
		 * space) US-ASCII, at most 100 characters, at most once. */
		if (d->envid != NULL || v == NULL || vlen == 0 ||
		    vlen > DSN_ENVID_MAX || !dsn_xtext_ok(v, vlen, 32)) {
			*error_r = "Bad ENVID parameter";
			return DSN_PARAM_BAD;
		}
		d->envid = xstrndup(v, vlen);
		return DSN_PARAM_OK;
	}
	return DSN_PARAM_OTHER;
}

enum dsn_param
dsn_param_rcpt(struct dsn_rcpt *d, const char *k, size_t klen, const char *v,
    size_t vlen, const char **error_r)
{
	const char *p, *end, *semi;
	unsigned bits = 0, bit;
	size_t n;

	if (dsn_kw(k, klen, "NOTIFY")) {
		/* RFC 3461 4.1: "NEVER" / 1#("SUCCESS" / "FAILURE" /
		 * "DELAY"); NEVER stands alone. */
		if (d->notify != 0 || v == NULL)
			goto bad_notify;
		for (p = v, end = v + vlen; p <= end; p += n + 1) {
			n = (size_t)(end - p);
			if ((semi = memchr(p, ',', n)) != NULL)
				n = (size_t)(semi - p);
			if (dsn_kw(p, n, "NEVER"))
				bit = DSN_NOTIFY_NEVER;
			else if (dsn_kw(p, n, "SUCCESS"))
				bit = DSN_NOTIFY_SUCCESS;
			else if (dsn_kw(p, n, "FAILURE"))
				bit = DSN_NOTIFY_FAILURE;
			else if (dsn_kw(p, n, "DELAY"))
				bit = DSN_NOTIFY_DELAY;
			else
				goto bad_notify;
			if (bits & bit)
				goto bad_notify;
			bits |= bit;
		}
		if ((bits & DSN_NOTIFY_NEVER) && bits != DSN_NOTIFY_NEVER)
			goto bad_notify;
		d->notify = bits;
		return DSN_PARAM_OK;
	}
	if (dsn_kw(k, klen, "ORCPT")) {
		/* RFC 3461 4.2: addr-type ";" xtext, printable US-ASCII
		 * (space included) once decoded, at most 500 characters. */
		if (d->orcpt != NULL || v == NULL || vlen > DSN_ORCPT_MAX)
			goto bad_orcpt;
		semi = memchr(v, ';', vlen);
		if (semi == NULL || !dsn_atom_ok(v, (size_t)(semi - v)) ||
		    semi + 1 == v + vlen || !dsn_xtext_ok(semi + 1,
		    (size_t)(v + vlen - semi - 1), 32))
			goto bad_orcpt;
		d->orcpt = xstrndup(v, vlen);
		return DSN_PARAM_OK;
	}
	return DSN_PARAM_OTHER;
bad_notify:
	*error_r = "Bad NOTIFY parameter";
	return DSN_PARAM_BAD;
bad_orcpt:
	*error_r = "Bad ORCPT parameter";
	return DSN_PARAM_BAD;
}

void
dsn_mail_clear(struct dsn_mail *d)
{
	free(d->envid);
	memset(d, 0, sizeof(*d));
}

void
dsn_rcpt_clear(struct dsn_rcpt *d)
{
	free(d->orcpt);
	memset(d, 0, sizeof(*d));
}

void
dsn_rcpt_copy(struct dsn_rcpt *dst, const struct dsn_rcpt *src)
{
	dst->notify = src->notify;
	dst->orcpt = src->orcpt != NULL ? xstrdup(src->orcpt) : NULL;
}

bool
dsn_notify_wants(unsigned notify, unsigned what)
{
	if (notify == 0)
		return what == DSN_NOTIFY_FAILURE || what == DSN_NOTIFY_DELAY;
	return (notify & what) != 0;
}

const char *
dsn_notify_str(unsigned notify, char *buf, size_t size)
{
	static const char *const names[] = { "NEVER", "SUCCESS", "FAILURE",
	    "DELAY" };
	size_t i, o = 0;
	int n;

	buf[0] = '\0';
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(notify & (1u << i)))
			continue;
		n = snprintf(buf + o, size - o, "%s%s", o > 0 ? "," : "",
		    names[i]);
		if (n < 0 || (size_t)n >= size - o)
			break;
		o += (size_t)n;
	}
	return buf;
}

const char *
dsn_ret_str(int ret)
{
	switch (ret) {
	case DSN_RET_FULL:
		return "FULL";
	case DSN_RET_HDRS:
		return "HDRS";
	}
	return NULL;
}
