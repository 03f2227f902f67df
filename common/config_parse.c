/*
 * The configuration's typed value parsers: numbers, durations, sizes,
 * booleans, host:port lists, string lists and CIDRs, and the duration
 * formatter for messages. Pure functions without I/O; they know nothing
 * about the key table (config_keys.c) or the file (config.c).
 */
#include "common/config_internal.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "common/util.h"

static bool cfg_host_is_loopback(const char *);
static int cfg_hostport_one(const char *, size_t, struct cfg_hostport *,
    const char **);

/* ---- typed parsers ---- */

/* Leading decimal digits of s (at least one) into *v; *end_r after them.
 * No sign, no blanks; -1 on overflow or no digit. */
int
cfg_parse_u64(const char *s, const char **end_r, uint64_t *v)
{
	uint64_t n = 0;
	const char *p;

	for (p = s; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (n > (UINT64_MAX - d) / 10)
			return -1;
		n = n * 10 + d;
	}
	if (p == s)
		return -1;
	*end_r = p;
	*v = n;
	return 0;
}

int
cfg_parse_expire(const char *s, unsigned *seconds_r)
{
	const char *end;
	uint64_t n;

	if (strcmp(s, "never") == 0) {
		*seconds_r = CFG_EXPIRE_NEVER;
		return 0;
	}
	/* A plain number counts days (RFC 2449 EXPIRE is in days). */
	if (cfg_parse_u64(s, &end, &n) == 0 && *end == '\0') {
		if (n > 36525)
			return -1;
		*seconds_r = n == 0 ? CFG_EXPIRE_AT_QUIT :
		    (unsigned)(n * CFG_DAY);
		return 0;
	}
	if (cfg_parse_duration(s, seconds_r) < 0 ||
	    *seconds_r > 36525u * CFG_DAY)
		return -1;
	if (*seconds_r == 0)
		*seconds_r = CFG_EXPIRE_AT_QUIT;
	return 0;
}

int
cfg_parse_duration(const char *s, unsigned *seconds_r)
{
	const char *end;
	uint64_t n, mult;

	if (cfg_parse_u64(s, &end, &n) == -1)
		return -1;
	switch (*end) {
	case '\0':
	case 's':
		mult = 1;
		break;
	case 'm':
		mult = 60;
		break;
	case 'h':
		mult = 3600;
		break;
	case 'd':
		mult = CFG_DAY;
		break;
	default:
		return -1;
	}
	if (*end != '\0' && end[1] != '\0')
		return -1;
	if (n > UINT_MAX / mult)
		return -1;
	*seconds_r = (unsigned)(n * mult);
	return 0;
}

int
cfg_parse_size(const char *s, uint64_t *bytes_r)
{
	const char *end;
	uint64_t n, mult;

	if (cfg_parse_u64(s, &end, &n) == -1)
		return -1;
	switch (*end) {
	case '\0':
		mult = 1;
		break;
	case 'k':
	case 'K':
		mult = 1024;
		break;
	case 'm':
	case 'M':
		mult = 1024 * 1024;
		break;
	case 'g':
	case 'G':
		mult = 1024 * 1024 * 1024;
		break;
	default:
		return -1;
	}
	if (*end != '\0' && end[1] != '\0')
		return -1;
	if (n > UINT64_MAX / mult)
		return -1;
	*bytes_r = n * mult;
	return 0;
}

int
cfg_parse_bool(const char *s, bool *b_r)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < nitems(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*b_r = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*b_r = false;
			return 0;
		}
	}
	return -1;
}

static bool
cfg_host_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (strcmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}

bool
cfg_hostports_loopback_only(const struct cfg_hostports *hp)
{
	for (size_t i = 0; i < hp->n; i++) {
		if (!cfg_host_is_loopback(hp->v[i].host))
			return false;
	}
	return true;
}

/* One "host:port" of len bytes (already trimmed) into *r (owned strings). */
static int
cfg_hostport_one(const char *e, size_t len, struct cfg_hostport *r,
    const char **error_r)
{
	char buf[300], *host, *port, *colon, *pct;
	struct in_addr a4;
	struct in6_addr a6;
	const char *end;
	uint64_t portnum;

	if (len >= sizeof(buf)) {
		*error_r = "host:port too long";
		return -1;
	}
	memcpy(buf, e, len);
	buf[len] = '\0';

	if (buf[0] == '[') {
		char *rb = strchr(buf, ']');
		if (rb == NULL) {
			*error_r = "missing ']' after IPv6 address";
			return -1;
		}
		*rb = '\0';
		host = buf + 1;
		/* RFC 4007 zone ("fe80::1%eth0"): check the address part. */
		pct = strchr(host, '%');
		if (pct != NULL)
			*pct = '\0';
		if (inet_pton(AF_INET6, host, &a6) != 1) {
			*error_r = "bad IPv6 address in brackets";
			return -1;
		}
		if (pct != NULL) {
			if (pct[1] == '\0') {
				*error_r = "empty IPv6 zone after '%'";
				return -1;
			}
			*pct = '%';
		}
		if (rb[1] != ':') {
			*error_r = "expected :port after ']'";
			return -1;
		}
		port = rb + 2;
	} else {
		colon = strrchr(buf, ':');
		if (colon == NULL) {
			*error_r = "missing :port";
			return -1;
		}
		if (memchr(buf, ':', (size_t)(colon - buf)) != NULL) {
			*error_r = "IPv6 address needs brackets, e.g. [::1]:25";
			return -1;
		}
		*colon = '\0';
		host = buf;
		port = colon + 1;
		if (strcmp(host, "*") == 0)
			host[0] = '\0';
		if (strspn(host, "0123456789.") == strlen(host) &&
		    host[0] != '\0' && inet_pton(AF_INET, host, &a4) != 1) {
			*error_r = "bad IPv4 address";
			return -1;
		}
		if (strspn(host, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") != strlen(host)) {
			*error_r = "bad host name";
			return -1;
		}
	}
	if (cfg_parse_u64(port, &end, &portnum) == -1 || *end != '\0' ||
	    portnum < 1 || portnum > 65535) {
		*error_r = "port must be a number from 1 to 65535";
		return -1;
	}
	r->host = xstrdup(host);
	r->port = xasprintf("%u", (unsigned)portnum);
	return 0;
}

/*
 * The comma-separated list walk both list types share. cfg_list_begin
 * gives the cursor (NULL for a blank string: an empty list);
 * cfg_list_next returns 1 with the next entry, blanks trimmed, in
 * [*b_r, *e_r), 0 at the end, or -1 for an empty entry (*error_r).
 */
static const char *
cfg_list_begin(const char *s)
{
	const char *p = s;

	while (*p == ' ' || *p == '\t')
		p++;
	return *p == '\0' ? NULL : s;
}

static int
cfg_list_next(const char **p, const char **b_r, const char **e_r,
    const char **error_r)
{
	const char *comma, *b, *e;

	if (*p == NULL)
		return 0;
	comma = strchr(*p, ',');
	e = comma != NULL ? comma : *p + strlen(*p);
	b = *p;
	while (b < e && (*b == ' ' || *b == '\t'))
		b++;
	while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	if (b == e) {
		*error_r = "empty entry in list";
		return -1;
	}
	*p = comma != NULL ? comma + 1 : NULL;
	*b_r = b;
	*e_r = e;
	return 1;
}

/* As cfg_parse_hostports_err; on failure *bad_r, *badlen_r is the entry at
 * fault (all of s for an empty entry). */
int
cfg_hostports_parse(const char *s, struct cfg_hostports *r,
    const char **error_r, const char **bad_r, size_t *badlen_r)
{
	const char *p = cfg_list_begin(s), *b, *e;
	struct cfg_hostport hp;
	int more;

	*bad_r = s;
	*badlen_r = strlen(s);
	r->n = 0;
	r->v = NULL;
	while ((more = cfg_list_next(&p, &b, &e, error_r)) == 1) {
		if (memchr(b, ' ', (size_t)(e - b)) != NULL ||
		    memchr(b, '\t', (size_t)(e - b)) != NULL) {
			*error_r = "blank inside an entry (missing comma?)";
			goto fail;
		}
		*bad_r = b;
		*badlen_r = (size_t)(e - b);
		if (cfg_hostport_one(b, (size_t)(e - b), &hp, error_r) == -1)
			goto fail;
		r->v = xrealloc(r->v, (r->n + 1) * sizeof(*r->v));
		r->v[r->n++] = hp;
	}
	if (more == 0)
		return 0;
fail:
	cfg_hostports_clear(r);
	return -1;
}

int
cfg_parse_hostports_err(const char *s, struct cfg_hostports *r,
    const char **error_r)
{
	const char *bad;
	size_t badlen;

	return cfg_hostports_parse(s, r, error_r, &bad, &badlen);
}

int
cfg_parse_hostports(const char *s, struct cfg_hostports *r)
{
	const char *error;

	return cfg_parse_hostports_err(s, r, &error);
}

void
cfg_hostports_clear(struct cfg_hostports *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->v[i].host);
		free(r->v[i].port);
	}
	free(r->v);
	r->v = NULL;
	r->n = 0;
}

int
cfg_parse_strlist(const char *s, struct cfg_strlist *r, const char **error_r)
{
	const char *p = cfg_list_begin(s), *b, *e;
	int more;

	r->n = 0;
	r->v = NULL;
	while ((more = cfg_list_next(&p, &b, &e, error_r)) == 1) {
		for (const char *q = b; q < e; q++) {
			if ((unsigned char)*q <= ' ' || *q == 0x7f) {
				*error_r = "blank or control character inside "
				    "an entry (missing comma?)";
				goto fail;
			}
		}
		r->v = xrealloc(r->v, (r->n + 1) * sizeof(*r->v));
		r->v[r->n++] = xstrndup(b, (size_t)(e - b));
	}
	if (more == 0)
		return 0;
fail:
	cfg_strlist_clear(r);
	return -1;
}

void
cfg_strlist_clear(struct cfg_strlist *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i]);
	free(r->v);
	r->v = NULL;
	r->n = 0;
}

/* ---- CIDRs ---- */

struct cfg_cidr {
	int family;		/* AF_INET or AF_INET6 */
	unsigned char addr[16];	/* network byte order, 4 or 16 used */
	unsigned prefix;	/* bits */
};

static int
cfg_cidr_split(const char *s, struct cfg_cidr *c, const char **error_r)
{
	char buf[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(s, '/'), *end;
	size_t alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	uint64_t prefix;
	unsigned maxbits;

	if (alen >= sizeof(buf)) {
		*error_r = "bad address in CIDR";
		return -1;
	}
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	if (inet_pton(AF_INET, buf, c->addr) == 1) {
		c->family = AF_INET;
		maxbits = 32;
	} else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
		c->family = AF_INET6;
		maxbits = 128;
	} else {
		*error_r = "bad address in CIDR (expected 10.0.0.0/8 or "
		    "fd00::/8)";
		return -1;
	}
	c->prefix = maxbits;
	if (slash != NULL) {
		if (cfg_parse_u64(slash + 1, &end, &prefix) == -1 ||
		    *end != '\0' || prefix > maxbits) {
			*error_r = "bad prefix length in CIDR";
			return -1;
		}
		c->prefix = (unsigned)prefix;
	}
	return 0;
}

int
cfg_parse_cidr(const char *s, const char **error_r)
{
	struct cfg_cidr c;

	return cfg_cidr_split(s, &c, error_r);
}

static bool
cfg_cidr_contains(const struct cfg_cidr *c, const unsigned char *addr)
{
	unsigned full = c->prefix / 8, rest = c->prefix % 8;
	unsigned char mask;

	if (memcmp(c->addr, addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (unsigned char)(0xff << (8 - rest));
	return (c->addr[full] & mask) == (addr[full] & mask);
}

bool
cfg_cidrlist_match(const struct cfg_strlist *l, const struct sockaddr *sa)
{
	static const unsigned char v4mapped[12] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
	};
	const unsigned char *a4 = NULL, *a6 = NULL;
	struct cfg_cidr c;
	const char *error;

	if (sa->sa_family == AF_INET) {
		a4 = (const unsigned char *)
		    &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		a6 = (const unsigned char *)
		    &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
		if (memcmp(a6, v4mapped, sizeof(v4mapped)) == 0)
			a4 = a6 + 12;
	} else {
		return false;
	}
	for (size_t i = 0; i < l->n; i++) {
		if (cfg_cidr_split(l->v[i], &c, &error) == -1)
			continue;
		if (c.family == AF_INET && a4 != NULL &&
		    cfg_cidr_contains(&c, a4))
			return true;
		if (c.family == AF_INET6 && a6 != NULL &&
		    cfg_cidr_contains(&c, a6))
			return true;
	}
	return false;
}

/* "3600" -> "1h": the largest unit that divides exactly, for messages. */
void
cfg_fmt_duration(char *buf, size_t size, uint64_t s)
{
	if (s != 0 && s % CFG_DAY == 0)
		snprintf(buf, size, "%llud", (unsigned long long)(s / CFG_DAY));
	else if (s != 0 && s % 3600 == 0)
		snprintf(buf, size, "%lluh", (unsigned long long)(s / 3600));
	else if (s != 0 && s % 60 == 0)
		snprintf(buf, size, "%llum", (unsigned long long)(s / 60));
	else
		snprintf(buf, size, "%llus", (unsigned long long)s);
}
