/*
 * SRS address rewriting (srs.h): building and taking apart SRS0/SRS1
 * addresses, the keyed hash (HMAC-SHA256 on GnuTLS) and the day stamp.
 * Owns no state beyond the caller's struct srs; never does I/O.
 */
#include "mailauth/srs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "common/util.h"

/* RFC 5321 4.5.3.1.3: 256-octet path minus "<>". */
#define SRS_ADDR_MAX	254
/* libsrs2: the stamp counts days modulo 2^10 in two base32 digits. */
#define SRS_TIME_SLOTS	1024
#define SRS_DAY		86400

static const char srs_b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

static int srs_b32_value(char c);
static void srs_hash(const struct srs *, char out[SRS_HASH_LEN + 1],
    const char *tag, const char *const *fields, size_t nfields);
static bool srs_hash_ok(const struct srs *, const char *hash, size_t len,
    const char *tag, const char *const *fields, size_t nfields);
static int srs_tag(const char *local);
static char *srs_finish(char *addr);

int
srs_secret_generate(char hex[SRS_SECRET_HEX_LEN + 1])
{
	unsigned char raw[SRS_SECRET_LEN];

	if (gnutls_rnd(GNUTLS_RND_KEY, raw, sizeof(raw)) != 0)
		return -1;
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(hex + 2 * i, 3, "%02x", raw[i]);
	gnutls_memset(raw, 0, sizeof(raw));
	return 0;
}

int
srs_init(struct srs *srs, const char *hex)
{
	static const char digits[] = "0123456789abcdef";
	const char *a, *b;

	if (hex == NULL || strlen(hex) != SRS_SECRET_HEX_LEN)
		return -1;
	for (size_t i = 0; i < SRS_SECRET_LEN; i++) {
		a = hex[2 * i] ? strchr(digits, hex[2 * i] | 0x20) : NULL;
		b = hex[2 * i + 1] ? strchr(digits, hex[2 * i + 1] | 0x20) :
		    NULL;
		if (a == NULL || b == NULL) {
			srs_clear(srs);
			return -1;
		}
		srs->secret[i] = (unsigned char)((a - digits) << 4 |
		    (b - digits));
	}
	return 0;
}

void
srs_clear(struct srs *srs)
{
	gnutls_memset(srs->secret, 0, sizeof(srs->secret));
}

/* Value of one base32 digit in either case, -1 if it is none. */
static int
srs_b32_value(char c)
{
	const char *p;

	if (c == '\0')
		return -1;
	if (c >= 'a' && c <= 'z')
		c = (char)(c - 'a' + 'A');
	p = strchr(srs_b32, c);
	return p != NULL ? (int)(p - srs_b32) : -1;
}

/*
 * The hash of tag and fields. Each is lower-cased (MTAs may change the
 * case of a local part; libsrs2 does the same) and ended by a NUL, so no
 * field boundary can be moved: libsrs2 joins them with nothing between,
 * where "d@a.bc" and "cd@a.b" hash alike.
 */
static void
srs_hash(const struct srs *srs, char out[SRS_HASH_LEN + 1], const char *tag,
    const char *const *fields, size_t nfields)
{
	unsigned char mac[32];
	char *buf;
	size_t len = strlen(tag) + 1, off = 0;
	uint64_t bits = 0;

	for (size_t i = 0; i < nfields; i++)
		len += strlen(fields[i]) + 1;
	buf = xmalloc(len);
	for (size_t i = 0; i <= nfields; i++) {
		const char *f = i == 0 ? tag : fields[i - 1];

		for (; *f != '\0'; f++)
			buf[off++] = *f >= 'A' && *f <= 'Z' ?
			    (char)(*f - 'A' + 'a') : *f;
		buf[off++] = '\0';
	}
	if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, srs->secret,
	    sizeof(srs->secret), buf, len, mac) != 0)
		/* Only on a broken library; no hash can then match. */
		memset(mac, 0, sizeof(mac));
	free(buf);
	/* 40 bits, 5 bits per digit. */
	for (size_t i = 0; i < 5; i++)
		bits = bits << 8 | mac[i];
	for (size_t i = 0; i < SRS_HASH_LEN; i++)
		out[i] = srs_b32[(bits >> (5 * (SRS_HASH_LEN - 1 - i))) & 31];
	out[SRS_HASH_LEN] = '\0';
}

/* Compare a received hash (len chars, any case) with ours in constant
 * time. */
static bool
srs_hash_ok(const struct srs *srs, const char *hash, size_t len,
    const char *tag, const char *const *fields, size_t nfields)
{
	char want[SRS_HASH_LEN + 1], got[SRS_HASH_LEN];

	if (len != SRS_HASH_LEN)
		return false;
	srs_hash(srs, want, tag, fields, nfields);
	for (size_t i = 0; i < SRS_HASH_LEN; i++)
		got[i] = hash[i] >= 'a' && hash[i] <= 'z' ?
		    (char)(hash[i] - 'a' + 'A') : hash[i];
	return gnutls_memcmp(want, got, SRS_HASH_LEN) == 0;
}

/* 0 if local starts "SRS0" and a separator, 1 for "SRS1", -1 else.
 * libsrs2 lets the separator be '=', '-' or '+'; we write '='. */
static int
srs_tag(const char *local)
{
	if (strncasecmp(local, "SRS", 3) != 0 ||
	    (local[3] != '0' && local[3] != '1') || local[4] == '\0' ||
	    strchr("=-+", local[4]) == NULL)
		return -1;
	return local[3] - '0';
}

bool
srs_is_srs(const char *address)
{
	return srs_tag(address) >= 0 && address[4] == '=' &&
	    strchr(address, '@') != NULL;
}

/* addr, or NULL (freed) when longer than an SMTP path allows. */
static char *
srs_finish(char *addr)
{
	if (strlen(addr) > SRS_ADDR_MAX) {
		free(addr);
		return NULL;
	}
	return addr;
}

char *
srs_forward(const struct srs *srs, const char *sender, const char *domain,
    int64_t now)
{
	char hash[SRS_HASH_LEN + 1], stamp[3], *local, *host, *user, *h, *out;
	const char *at = strrchr(sender, '@'), *f[3];
	unsigned day;

	if (sender[0] == '\0' || at == NULL || at == sender || at[1] == '\0' ||
	    sender[0] == '"')
		/* Null sender stays null; a quoted local part cannot be
		 * carried inside another local part unquoted. */
		return NULL;
	local = xstrndup(sender, (size_t)(at - sender));
	out = NULL;
	switch (srs_tag(local)) {
	case 0:
		/* SRS0=...@fwd1 -> SRS1=H=fwd1==...: keep fwd1's part
		 * opaque (with its separator), bounces go back via fwd1. */
		f[0] = at + 1;
		f[1] = local + 4;
		srs_hash(srs, hash, "SRS1", f, 2);
		out = xasprintf("SRS1=%s=%s=%s@%s", hash, f[0], f[1], domain);
		break;
	case 1:
		/* SRS1=X=fwd1=rest@fwd2 -> SRS1=H=fwd1=rest: fwd2 drops
		 * out, fwd1 still undoes its own SRS0. */
		h = local + 5;
		host = strchr(h, '=');
		user = host != NULL ? strchr(host + 1, '=') : NULL;
		if (host != NULL && user != NULL && user != host + 1 &&
		    user[1] != '\0') {
			*user++ = '\0';
			f[0] = host + 1;
			f[1] = user;
			srs_hash(srs, hash, "SRS1", f, 2);
			out = xasprintf("SRS1=%s=%s=%s@%s", hash, f[0], f[1],
			    domain);
			break;
		}
		/* Not libsrs2's shape: wrapped as a plain sender. */
		/* FALLTHROUGH */
	default:
		day = (unsigned)((now / SRS_DAY) % SRS_TIME_SLOTS);
		stamp[0] = srs_b32[day >> 5];
		stamp[1] = srs_b32[day & 31];
		stamp[2] = '\0';
		f[0] = stamp;
		f[1] = at + 1;
		f[2] = local;
		srs_hash(srs, hash, "SRS0", f, 3);
		out = xasprintf("SRS0=%s=%s=%s=%s@%s", hash, stamp, at + 1,
		    local, domain);
		break;
	}
	free(local);
	return srs_finish(out);
}

enum srs_result
srs_reverse(const struct srs *srs, const char *address, int64_t now,
    char **orig_r)
{
	const char *at = strrchr(address, '@'), *f[3];
	char *local, *hash, *p, *q, *r;
	enum srs_result res = SRS_BAD_SYNTAX;
	int then, today, tag;

	*orig_r = NULL;
	if (at == NULL || !srs_is_srs(address))
		return SRS_NOT_SRS;
	local = xstrndup(address, (size_t)(at - address));
	tag = srs_tag(local);
	hash = local + 5;
	if ((p = strchr(hash, '=')) == NULL)
		goto out;
	*p++ = '\0';
	if (tag == 0) {
		/* SRS0=hash=TT=domain=local */
		if ((q = strchr(p, '=')) == NULL || q - p != 2)
			goto out;
		*q++ = '\0';
		if ((r = strchr(q, '=')) == NULL || r == q || r[1] == '\0')
			goto out;
		*r++ = '\0';
		if (srs_b32_value(p[0]) < 0 || srs_b32_value(p[1]) < 0)
			goto out;
		f[0] = p;
		f[1] = q;
		f[2] = r;
		if (!srs_hash_ok(srs, hash, strlen(hash), "SRS0", f, 3)) {
			res = SRS_BAD_HASH;
			goto out;
		}
		then = srs_b32_value(p[0]) << 5 | srs_b32_value(p[1]);
		today = (int)((now / SRS_DAY) % SRS_TIME_SLOTS);
		/* A stamp "in the future" wrapped round: it is old. */
		if ((today - then + SRS_TIME_SLOTS) % SRS_TIME_SLOTS >
		    SRS_MAX_AGE_DAYS) {
			res = SRS_EXPIRED;
			goto out;
		}
		*orig_r = xasprintf("%s@%s", r, q);
	} else {
		/* SRS1=hash=fwd1=rest, rest being fwd1's SRS0 without its
		 * tag (it starts with fwd1's separator). */
		if ((q = strchr(p, '=')) == NULL || q == p || q[1] == '\0' ||
		    strchr("=-+", q[1]) == NULL)
			goto out;
		*q++ = '\0';
		f[0] = p;
		f[1] = q;
		if (!srs_hash_ok(srs, hash, strlen(hash), "SRS1", f, 2)) {
			res = SRS_BAD_HASH;
			goto out;
		}
		*orig_r = xasprintf("SRS0%s@%s", q, p);
	}
	res = SRS_OK;
out:
	free(local);
	return res;
}

const char *
srs_result_str(enum srs_result r)
{
	switch (r) {
	case SRS_OK:
		return "ok";
	case SRS_NOT_SRS:
		return "not-srs";
	case SRS_BAD_SYNTAX:
		return "syntax";
	case SRS_BAD_HASH:
		return "bad-hash";
	case SRS_EXPIRED:
		return "expired";
	}
	return "unknown";
}
