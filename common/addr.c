/*
 * Address and domain syntax (see addr.h). Owns the RFC 5321 local-part
 * grammar and the IDN/LDH rules for domains; does not know which domains
 * are local (store/) or how SMTP paths are bracketed (smtpd/).
 */
#include "common/addr.h"
#include "common/util.h"

#include <idn2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Longest input handed to libidn2: far above any valid domain, it only
 * bounds the work done on junk. */
#define ADDR_IDN_INPUT_MAX 1024

static bool addr_is_atext(unsigned char c);
static bool addr_is_ldh_label(const char *s, size_t len);
static bool addr_is_plain_ascii_domain(const char *in);
static int addr_check_dot_atom(const char *s, size_t len,
    const char **error_r);
static int addr_check_quoted(const char *s, size_t len, const char **error_r);

/* RFC 5322 3.2.3 atext; octets >= 0x80 are RFC 6531 UTF8-non-ascii and are
 * checked as UTF-8 separately. */
static bool
addr_is_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c >= 0x80)
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

bool
addr_utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		uint32_t cp;
		size_t n, k;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else
			return false;	/* bad lead byte */
		if (len - i <= n)
			return false;
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

bool
addr_is_utf8(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s >= 0x80)
			return true;
	}
	return false;
}

const char *
addr_domain(const char *address)
{
	const char *at = strrchr(address, '@');

	return at == NULL ? NULL : at + 1;
}

/* RFC 1035 2.3.1 / RFC 5321 4.1.2 Let-dig: letters, digits, inner hyphens. */
static bool
addr_is_ldh_label(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > ADDR_LABEL_MAX)
		return false;
	if (s[0] == '-' || s[len - 1] == '-')
		return false;
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-'))
			return false;
	}
	return true;
}

/*
 * True when IDNA would return in unchanged but for case: every label is
 * ASCII letters, digits and inner hyphens, and none is an A-label ("xn--",
 * which libidn2 must still check).
 */
static bool
addr_is_plain_ascii_domain(const char *in)
{
	const char *p = in, *dot;
	size_t len;

	for (;;) {
		dot = strchr(p, '.');
		len = dot != NULL ? (size_t)(dot - p) : strlen(p);
		if (len == 0 || len > ADDR_LABEL_MAX)
			return false;
		if (len >= 4 && strncasecmp(p, "xn--", 4) == 0)
			return false;
		if (p[0] == '-' || p[len - 1] == '-')
			return false;
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)p[i];

			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || c == '-'))
				return false;
		}
		if (dot == NULL)
			return true;
		p = dot + 1;
	}
}

int
addr_normalize_domain(const char *in, char **out_r, const char **error_r)
{
	char *idn = NULL, *out;
	const char *p, *label = NULL;
	size_t len = strlen(in), label_len = 0, i;
	bool numeric;
	int rc;

	*out_r = NULL;
	if (len == 0) {
		*error_r = "empty domain";
		return -1;
	}
	if (len > ADDR_IDN_INPUT_MAX) {
		*error_r = "domain too long";
		return -1;
	}
	if (in[0] == '[') {
		*error_r = "address literals are not supported";
		return -1;
	}
	if (!addr_utf8_valid(in, len)) {
		*error_r = "domain is not valid UTF-8";
		return -1;
	}
	/* Checked before libidn2, which passes these through unchanged. */
	if (in[len - 1] == '.') {
		*error_r = "domain ends with a dot";
		return -1;
	}
	if (addr_is_plain_ascii_domain(in)) {
		/* Nothing for IDNA to map: libidn2's NFC and table lookups
		 * cost more than the rest of a RCPT command. */
		out = xstrdup(in);
	} else {
		rc = idn2_to_ascii_8z(in, &idn,
		    IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
		if (rc != IDN2_OK) {
			*error_r = idn2_strerror(rc);
			return -1;
		}
		out = xstrdup(idn);
		idn2_free(idn);
	}
	util_strlower(out);

	len = strlen(out);
	if (len == 0 || len > ADDR_DOMAIN_MAX) {
		*error_r = len == 0 ? "empty domain" : "domain too long";
		free(out);
		return -1;
	}
	for (p = out;; p += label_len + 1) {
		const char *dot = strchr(p, '.');

		label = p;
		label_len = dot ? (size_t)(dot - p) : strlen(p);
		if (label_len == 0) {
			*error_r = "empty label in domain";
			free(out);
			return -1;
		}
		if (label_len > ADDR_LABEL_MAX) {
			*error_r = "domain label longer than 63 octets";
			free(out);
			return -1;
		}
		if (!addr_is_ldh_label(label, label_len)) {
			*error_r = "invalid character in domain";
			free(out);
			return -1;
		}
		if (dot == NULL)
			break;
	}
	/* RFC 3696 2: a top-level label is never all-numeric, so "1.2.3.4"
	 * is an IP address, not a domain. */
	numeric = true;
	for (i = 0; i < label_len; i++) {
		if (label[i] < '0' || label[i] > '9')
			numeric = false;
	}
	if (numeric) {
		*error_r = "domain looks like an IP address";
		free(out);
		return -1;
	}
	*out_r = out;
	return 0;
}

/* RFC 5321 4.1.2 Dot-string = Atom *("." Atom). */
static int
addr_check_dot_atom(const char *s, size_t len, const char **error_r)
{
	size_t i;

	if (s[0] == '.' || s[len - 1] == '.') {
		*error_r = "local part starts or ends with a dot";
		return -1;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (s[i + 1] == '.') {
				*error_r = "local part has two dots in a row";
				return -1;
			}
			continue;
		}
		if (!addr_is_atext(c)) {
			*error_r = "invalid character in local part";
			return -1;
		}
	}
	return 0;
}

/* RFC 5321 4.1.2 Quoted-string = DQUOTE *QcontentSMTP DQUOTE, with
 * qtextSMTP = %d32-33 / %d35-91 / %d93-126 (plus UTF-8, RFC 6531) and
 * quoted-pairSMTP = "\" %d32-126. */
static int
addr_check_quoted(const char *s, size_t len, const char **error_r)
{
	size_t i;

	if (len < 2 || s[len - 1] != '"') {
		*error_r = "unterminated quoted local part";
		return -1;
	}
	for (i = 1; i < len - 1; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\\') {
			if (i + 1 >= len - 1) {
				*error_r = "bad quoted pair in local part";
				return -1;
			}
			c = (unsigned char)s[++i];
			if (c < 32 || c > 126) {
				*error_r = "bad quoted pair in local part";
				return -1;
			}
			continue;
		}
		if (c == '"') {
			*error_r = "unescaped quote in local part";
			return -1;
		}
		if (c < 32 || c == 127) {
			*error_r = "control character in local part";
			return -1;
		}
	}
	return 0;
}

int
addr_check_local(const char *local, size_t len, const char **error_r)
{
	return addr_check_local_max(local, len, ADDR_LOCAL_MAX, error_r);
}

int
addr_check_local_max(const char *local, size_t len, size_t max,
    const char **error_r)
{
	if (len == 0) {
		*error_r = "empty local part";
		return -1;
	}
	if (len > max) {
		*error_r = max == ADDR_LOCAL_MAX ?
		    "local part longer than 64 octets" :
		    "local part too long";
		return -1;
	}
	if (memchr(local, '\0', len) != NULL ||
	    !addr_utf8_valid(local, len)) {
		*error_r = "local part is not valid UTF-8";
		return -1;
	}
	if (local[0] == '"')
		return addr_check_quoted(local, len, error_r);
	return addr_check_dot_atom(local, len, error_r);
}

int
addr_normalize(const char *address, char **out_r, const char **error_r)
{
	return addr_normalize_max(address, ADDR_LOCAL_MAX, out_r, error_r);
}

int
addr_normalize_max(const char *address, size_t local_max, char **out_r,
    const char **error_r)
{
	const char *at = strrchr(address, '@');
	char *domain, *out;
	size_t local_len;

	*out_r = NULL;
	if (at == NULL) {
		*error_r = "address has no @domain";
		return -1;
	}
	local_len = (size_t)(at - address);
	if (addr_check_local_max(address, local_len, local_max, error_r) < 0)
		return -1;
	if (addr_normalize_domain(at + 1, &domain, error_r) < 0)
		return -1;
	if (local_len + 1 + strlen(domain) > ADDR_MAX) {
		*error_r = "address longer than 254 octets";
		free(domain);
		return -1;
	}
	out = xasprintf("%.*s@%s", (int)local_len, address, domain);
	free(domain);
	*out_r = out;
	return 0;
}
