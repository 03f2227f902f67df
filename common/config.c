/*
 * The configuration loader: libinih splits the INI file, this file owns the
 * one declarative key table (type, default, bounds, help, struct offset), the
 * typed value parsers, error collection ("file:line: [section] key: msg") and
 * the validation of key combinations. It does not open TLS keys or the store.
 */
#include "common/config.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

enum cfg_type {
	CFG_T_STRING,		/* char *, one token, "" = NULL */
	CFG_T_PATH,		/* char *, relative to the config dir, "" = NULL */
	CFG_T_HOSTPORT,		/* char *, exactly one "host:port", "" = NULL */
	CFG_T_BOOL,		/* bool */
	CFG_T_DURATION,		/* unsigned seconds */
	CFG_T_SIZE,		/* uint64_t bytes */
	CFG_T_UINT,		/* unsigned */
	CFG_T_HOSTPORTS,	/* struct cfg_hostports */
	CFG_T_STRLIST,		/* struct cfg_strlist */
	CFG_T_CIDRLIST,		/* struct cfg_strlist of cfg_parse_cidr entries */
	CFG_T_LOGLEVEL,		/* int (enum log_level) */
	CFG_T_COUNT
};

#define CFG_F_REQUIRED	0x1	/* must be set to a non-empty value */

struct cfg_key {
	const char *section;
	const char *key;
	enum cfg_type type;
	unsigned flags;
	uint64_t min, max;	/* UINT, DURATION (seconds), SIZE (bytes) */
	const char *def;	/* parsed like a value in the file */
	size_t off;		/* offsetof(struct cfg, ...) */
	const char *help;	/* one line, also the sample file's comment */
};

#define O(f) offsetof(struct cfg, f)
#define DAY (24u * 3600u)

/* Keep in the order of SPEC.md; etc/carteiro.conf is checked against it. */
static const struct cfg_key cfg_keys[] = {
	{ "server", "hostname", CFG_T_STRING, 0, 0, 0, "",
	  O(server.hostname),
	  "name in the greeting, Received: and bounces; empty = gethostname()" },
	{ "server", "user", CFG_T_STRING, 0, 0, 0, "", O(server.user),
	  "drop root privileges to this user after binding; empty = stay" },
	{ "server", "postmaster", CFG_T_STRING, 0, 0, 0, "",
	  O(server.postmaster),
	  "where postmaster@ each local domain goes unless an alias says "
	  "otherwise; empty = the domain's oldest user" },
	{ "server", "log_level", CFG_T_LOGLEVEL, 0, 0, 0, "info",
	  O(server.log_level), "error, warn, info or debug" },

	{ "store", "path", CFG_T_PATH, CFG_F_REQUIRED, 0, 0, "",
	  O(store.path), "the SQLite database (required)" },

	{ "tls", "cert", CFG_T_PATH, 0, 0, 0, "", O(tls.cert),
	  "PEM certificate chain; empty = no TLS" },
	{ "tls", "key", CFG_T_PATH, 0, 0, 0, "", O(tls.key),
	  "PEM private key, readable by root only" },

	{ "smtpd", "mx_listen", CFG_T_HOSTPORTS, 0, 0, 0, "0.0.0.0:25",
	  O(smtpd.mx_listen),
	  "MX listener, host:port list ([::]:25 for IPv6); empty = off" },
	{ "smtpd", "submission_listen", CFG_T_HOSTPORTS, 0, 0, 0,
	  "0.0.0.0:587", O(smtpd.submission_listen),
	  "submission with STARTTLS; empty = off" },
	{ "smtpd", "submissions_listen", CFG_T_HOSTPORTS, 0, 0, 0,
	  "0.0.0.0:465", O(smtpd.submissions_listen),
	  "submission with implicit TLS; empty = off" },
	{ "smtpd", "max_message_size", CFG_T_SIZE, 0, 1024, 1ull << 32,
	  "26214400", O(smtpd.max_message_size),
	  "bytes; k, M, G suffixes are 1024-based" },
	{ "smtpd", "max_recipients", CFG_T_UINT, 0, 1, 100000, "100",
	  O(smtpd.max_recipients), "per message" },
	{ "smtpd", "max_clients", CFG_T_UINT, 0, 1, 1000000, "1000",
	  O(smtpd.max_clients), "concurrent sessions, all listeners" },
	{ "smtpd", "max_clients_per_ip", CFG_T_UINT, 0, 1, 1000000, "20",
	  O(smtpd.max_clients_per_ip), "concurrent sessions per client IP" },
	{ "smtpd", "daily_send_limit", CFG_T_UINT, 0, 0, 10000000, "500",
	  O(smtpd.daily_send_limit),
	  "remote recipients per user per 24 h; 0 = no limit" },
	{ "smtpd", "dnsbl", CFG_T_STRLIST, 0, 0, 0, "", O(smtpd.dnsbl),
	  "comma-separated DNSBL zones; empty = off" },
	{ "smtpd", "inbound_checks_exempt", CFG_T_CIDRLIST, 0, 0, 0, "",
	  O(smtpd.inbound_checks_exempt),
	  "comma-separated CIDRs that skip DNSBL/SPF/DKIM/DMARC checks" },
	{ "smtpd", "greet_pause", CFG_T_DURATION, 0, 0, 60, "0",
	  O(smtpd.greet_pause),
	  "wait this long before the MX greeting; a client that talks first "
	  "is dropped (early-talker check); 0 = greet at once" },
	{ "smtpd", "max_connect_rate_per_ip", CFG_T_UINT, 0, 0, 1000000, "60",
	  O(smtpd.max_connect_rate_per_ip),
	  "new sessions per client IP per minute; 0 = no limit" },

	{ "relay", "smarthost", CFG_T_HOSTPORT, 0, 0, 0, "",
	  O(relay.smarthost), "host:port; empty = direct MX delivery" },
	{ "relay", "smarthost_user", CFG_T_STRING, 0, 0, 0, "",
	  O(relay.smarthost_user), "AUTH user at the smarthost; empty = none" },
	{ "relay", "smarthost_password_file", CFG_T_PATH, 0, 0, 0, "",
	  O(relay.smarthost_password_file),
	  "file whose first line is the smarthost password" },
	{ "relay", "smarthost_ca", CFG_T_PATH, 0, 0, 0, "",
	  O(relay.smarthost_ca),
	  "CA file the smarthost's certificate must verify against; empty = "
	  "the system's trust store" },
	{ "relay", "resolver", CFG_T_HOSTPORT, 0, 0, 0, "", O(relay.resolver),
	  "ip:port of the DNS server for every lookup; empty = "
	  "/etc/resolv.conf" },
	{ "relay", "mx_port", CFG_T_UINT, 0, 1, 65535, "25", O(relay.mx_port),
	  "port used when connecting to remote MX hosts" },
	{ "relay", "retry_first", CFG_T_DURATION, 0, 1, 30 * DAY, "5m",
	  O(relay.retry_first), "first retry delay; doubles each time" },
	{ "relay", "retry_max", CFG_T_DURATION, 0, 1, 30 * DAY, "1h",
	  O(relay.retry_max), "cap on the retry delay" },
	{ "relay", "queue_lifetime", CFG_T_DURATION, 0, 60, 365 * DAY, "5d",
	  O(relay.queue_lifetime), "then bounce" },
	{ "relay", "delay_warning", CFG_T_DURATION, 0, 0, 365 * DAY, "4h",
	  O(relay.delay_warning), "warn the sender after this; 0 = off" },

	{ "pop3d", "listen", CFG_T_HOSTPORTS, 0, 0, 0, "0.0.0.0:110",
	  O(pop3d.listen), "POP3 with STLS; empty = off" },
	{ "pop3d", "tls_listen", CFG_T_HOSTPORTS, 0, 0, 0, "0.0.0.0:995",
	  O(pop3d.tls_listen), "POP3 with implicit TLS; empty = off" },
	{ "pop3d", "allow_plaintext_auth", CFG_T_BOOL, 0, 0, 0, "no",
	  O(pop3d.allow_plaintext_auth),
	  "yes = USER/PASS without STLS (loopback is always allowed)" },
	{ "pop3d", "lock_session", CFG_T_BOOL, 0, 0, 0, "no",
	  O(pop3d.lock_session),
	  "yes = exclusive maildrop lock, a second login gets [IN-USE]" },
	{ "pop3d", "max_clients", CFG_T_UINT, 0, 1, 1000000, "1000",
	  O(pop3d.max_clients), "concurrent sessions, all listeners" },
	{ "pop3d", "max_clients_per_ip", CFG_T_UINT, 0, 1, 1000000, "20",
	  O(pop3d.max_clients_per_ip), "concurrent sessions per client IP" },
};
#define CFG_NKEYS nitems(cfg_keys)

#undef O

/* More errors than this are noise (a binary file, the wrong file). */
#define CFG_MAX_ERRORS 50
/* Longest line we accept, bytes. */
#define CFG_MAX_LINE 4096

struct cfg_loader {
	struct cfg *cfg;
	const char *file;	/* as given, for messages */
	char *dir;		/* absolute dir of file, for relative paths */
	FILE *fp;
	char *line;		/* getline buffer; the current raw line */
	size_t linecap;
	const char *cur;	/* current line without leading blanks */
	int lineno;
	bool handled;		/* inih called the handler for this line */
	int first_syntax_line;	/* first line we called a syntax error */
	int set_line[CFG_NKEYS];	/* line a key was set on, 0 = default */
	char *errors;		/* "\n"-joined */
	size_t errlen;
	unsigned nerrors;
};

static void cfg_error(struct cfg_loader *, int, const char *, ...)
    __attribute__((format(printf, 3, 4)));
static void cfg_key_error(struct cfg_loader *, const char *, const char *,
    const char *, ...) __attribute__((format(printf, 4, 5)));
static const struct cfg_key *cfg_key_find(const char *, const char *);
static bool cfg_section_known(const char *, size_t);
static int cfg_parse_u64(const char *, const char **, uint64_t *);
static int cfg_set(struct cfg_loader *, const struct cfg_key *, const char *,
    char *, size_t);
static void cfg_clear(struct cfg *, const struct cfg_key *);
static char *cfg_reader(char *, int, void *);
static void cfg_check_line(struct cfg_loader *);
static int cfg_handler(void *, const char *, const char *, const char *);
static void cfg_validate(struct cfg_loader *);
static void cfg_fmt_duration(char *, size_t, uint64_t);
static int cfg_hostport_one(const char *, size_t, struct cfg_hostport *,
    const char **);
static int cfg_hostports_parse(const char *, struct cfg_hostports *,
    const char **, const char **, size_t *);
static bool cfg_host_is_loopback(const char *);
static bool cfg_hostports_loopback_only(const struct cfg_hostports *);

/* ---- errors ---- */

static void
cfg_verror(struct cfg_loader *l, int lineno, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void
cfg_verror(struct cfg_loader *l, int lineno, const char *fmt, va_list ap)
{
	char msg[1024];
	char *e;
	size_t n;

	if (l->nerrors > CFG_MAX_ERRORS)
		return;
	if (l->nerrors++ == CFG_MAX_ERRORS) {
		util_strlcpy(msg, "too many errors, stopped reporting",
		    sizeof(msg));
		lineno = 0;
	} else {
		vsnprintf(msg, sizeof(msg), fmt, ap);
	}
	if (lineno > 0)
		e = xasprintf("%s:%d: %s", l->file, lineno, msg);
	else
		e = xasprintf("%s: %s", l->file, msg);
	n = strlen(e);
	l->errors = xrealloc(l->errors, l->errlen + n + 2);
	if (l->errlen > 0)
		l->errors[l->errlen++] = '\n';
	memcpy(l->errors + l->errlen, e, n + 1);
	l->errlen += n;
	free(e);
}

static void
cfg_error(struct cfg_loader *l, int lineno, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cfg_verror(l, lineno, fmt, ap);
	va_end(ap);
}

/* Error about a key found in validation: cites the line it was set on, or
 * just the file when it kept its default. */
static void
cfg_key_error(struct cfg_loader *l, const char *section, const char *key,
    const char *fmt, ...)
{
	const struct cfg_key *k = cfg_key_find(section, key);
	char msg[1024];
	va_list ap;

	assert(k != NULL);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cfg_error(l, l->set_line[k - cfg_keys], "[%s] %s: %s", section, key,
	    msg);
}

/* ---- the table ---- */

static const struct cfg_key *
cfg_key_find(const char *section, const char *key)
{
	for (size_t i = 0; i < CFG_NKEYS; i++) {
		if (strcmp(cfg_keys[i].section, section) == 0 &&
		    strcmp(cfg_keys[i].key, key) == 0)
			return &cfg_keys[i];
	}
	return NULL;
}

static bool
cfg_section_known(const char *section, size_t len)
{
	for (size_t i = 0; i < CFG_NKEYS; i++) {
		if (strlen(cfg_keys[i].section) == len &&
		    memcmp(cfg_keys[i].section, section, len) == 0)
			return true;
	}
	return false;
}

int
cfg_key_doc(size_t i, struct cfg_key_doc *r)
{
	if (i >= CFG_NKEYS)
		return -1;
	r->section = cfg_keys[i].section;
	r->key = cfg_keys[i].key;
	r->def = cfg_keys[i].def;
	r->help = cfg_keys[i].help;
	return 0;
}

/* ---- typed parsers ---- */

/* Leading decimal digits of s (at least one) into *v; *end_r after them.
 * No sign, no blanks; -1 on overflow or no digit. */
static int
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
		mult = DAY;
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

static bool
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
static int
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

/* ---- setting a key ---- */

/* "3600" -> "1h": the largest unit that divides exactly, for messages. */
static void
cfg_fmt_duration(char *buf, size_t size, uint64_t s)
{
	if (s != 0 && s % DAY == 0)
		snprintf(buf, size, "%llud", (unsigned long long)(s / DAY));
	else if (s != 0 && s % 3600 == 0)
		snprintf(buf, size, "%lluh", (unsigned long long)(s / 3600));
	else if (s != 0 && s % 60 == 0)
		snprintf(buf, size, "%llum", (unsigned long long)(s / 60));
	else
		snprintf(buf, size, "%llus", (unsigned long long)s);
}

/* Free what key k owns in cfg and zero it. */
static void
cfg_clear(struct cfg *cfg, const struct cfg_key *k)
{
	void *p = (char *)cfg + k->off;

	switch (k->type) {
	case CFG_T_STRING:
	case CFG_T_PATH:
	case CFG_T_HOSTPORT:
		free(*(char **)p);
		*(char **)p = NULL;
		break;
	case CFG_T_HOSTPORTS:
		cfg_hostports_clear(p);
		break;
	case CFG_T_STRLIST:
	case CFG_T_CIDRLIST:
		cfg_strlist_clear(p);
		break;
	default:
		break;
	}
}

/*
 * Parse value for key k into l->cfg. 0, or -1 with a message in err (the
 * field then keeps its previous value).
 */
static int
cfg_set(struct cfg_loader *l, const struct cfg_key *k, const char *value,
    char *err, size_t errsize)
{
	void *p = (char *)l->cfg + k->off;
	char q[LOG_ESCAPE_MAX], lo[32], hi[32];
	const char *error = NULL, *end, *bad;
	struct cfg_hostports hp;
	size_t badlen;
	struct cfg_strlist sl;
	enum log_level lvl;
	uint64_t u64;
	unsigned u;
	bool b;

	log_escape(q, sizeof(q), value, strlen(value));
	if (*value == '\0' && (k->flags & CFG_F_REQUIRED)) {
		snprintf(err, errsize, "must not be empty");
		return -1;
	}
	switch (k->type) {
	case CFG_T_STRING:
		for (const char *c = value; *c != '\0'; c++) {
			if ((unsigned char)*c <= ' ' || *c == 0x7f) {
				snprintf(err, errsize, "must be one word "
				    "without blanks, got %s", q);
				return -1;
			}
		}
		cfg_clear(l->cfg, k);
		if (*value != '\0')
			*(char **)p = xstrdup(value);
		return 0;
	case CFG_T_PATH:
		for (const char *c = value; *c != '\0'; c++) {
			if ((unsigned char)*c < ' ' || *c == 0x7f) {
				snprintf(err, errsize, "control character in "
				    "path %s", q);
				return -1;
			}
		}
		cfg_clear(l->cfg, k);
		if (*value == '\0')
			return 0;
		if (value[0] == '/' || l->dir == NULL)
			*(char **)p = xstrdup(value);
		else
			*(char **)p = xasprintf("%s/%s", l->dir, value);
		return 0;
	case CFG_T_HOSTPORT:
		if (*value == '\0') {
			cfg_clear(l->cfg, k);
			return 0;
		}
		if (cfg_hostports_parse(value, &hp, &error, &bad, &badlen) == -1)
			goto bad_entry;
		if (hp.n != 1 || hp.v[0].host[0] == '\0') {
			cfg_hostports_clear(&hp);
			error = "expected one host:port with a host";
			goto bad;
		}
		cfg_hostports_clear(&hp);
		cfg_clear(l->cfg, k);
		*(char **)p = xstrdup(value);
		return 0;
	case CFG_T_BOOL:
		if (cfg_parse_bool(value, &b) == -1) {
			error = "expected yes or no";
			goto bad;
		}
		*(bool *)p = b;
		return 0;
	case CFG_T_DURATION:
		cfg_fmt_duration(lo, sizeof(lo), k->min);
		cfg_fmt_duration(hi, sizeof(hi), k->max);
		if (cfg_parse_duration(value, &u) == -1 || u < k->min ||
		    u > k->max) {
			snprintf(err, errsize, "expected a duration from %s to "
			    "%s (plain seconds or with s, m, h, d), got %s",
			    lo, hi, q);
			return -1;
		}
		*(unsigned *)p = u;
		return 0;
	case CFG_T_SIZE:
		if (cfg_parse_size(value, &u64) == -1 || u64 < k->min ||
		    u64 > k->max) {
			snprintf(err, errsize, "expected a size from %llu to "
			    "%llu bytes (k, M, G suffixes allowed), got %s",
			    (unsigned long long)k->min,
			    (unsigned long long)k->max, q);
			return -1;
		}
		*(uint64_t *)p = u64;
		return 0;
	case CFG_T_UINT:
		if (cfg_parse_u64(value, &end, &u64) == -1 || *end != '\0' ||
		    u64 < k->min || u64 > k->max) {
			snprintf(err, errsize, "expected a number from %llu to "
			    "%llu, got %s", (unsigned long long)k->min,
			    (unsigned long long)k->max, q);
			return -1;
		}
		*(unsigned *)p = (unsigned)u64;
		return 0;
	case CFG_T_HOSTPORTS:
		if (cfg_hostports_parse(value, &hp, &error, &bad, &badlen) == -1)
			goto bad_entry;
		cfg_clear(l->cfg, k);
		*(struct cfg_hostports *)p = hp;
		return 0;
	case CFG_T_STRLIST:
	case CFG_T_CIDRLIST:
		if (cfg_parse_strlist(value, &sl, &error) == -1)
			goto bad;
		for (size_t i = 0; k->type == CFG_T_CIDRLIST && i < sl.n; i++) {
			if (cfg_parse_cidr(sl.v[i], &error) == -1) {
				log_escape(q, sizeof(q), sl.v[i],
				    strlen(sl.v[i]));
				cfg_strlist_clear(&sl);
				goto bad;
			}
		}
		cfg_clear(l->cfg, k);
		*(struct cfg_strlist *)p = sl;
		return 0;
	case CFG_T_LOGLEVEL:
		if (log_level_parse(value, &lvl) == -1) {
			error = "expected error, warn, info or debug";
			goto bad;
		}
		*(int *)p = (int)lvl;
		return 0;
	case CFG_T_COUNT:
		break;
	}
	abort();
bad_entry:
	/* Quote the entry at fault, not the whole list. */
	log_escape(q, sizeof(q), bad, badlen);
bad:
	snprintf(err, errsize, "%s, got %s", error, q);
	return -1;
}

/* ---- reading the file through inih ---- */

/*
 * inih's fgets-style reader. We read whole lines ourselves so that we know
 * the line number (inih r55 does not pass it to the handler), can refuse
 * overlong lines instead of having them split, and can name every line inih
 * skipped as malformed (it only returns the first). Leading blanks are
 * removed so that inih never takes an indented line for a continuation.
 */
static char *
cfg_reader(char *str, int num, void *stream)
{
	struct cfg_loader *l = stream;
	ssize_t n;
	size_t len;

	cfg_check_line(l);
	n = getline(&l->line, &l->linecap, l->fp);
	if (n < 0)
		return NULL;
	l->lineno++;
	l->handled = false;
	if (memchr(l->line, '\0', (size_t)n) != NULL) {
		cfg_error(l, l->lineno, "NUL byte in line");
		l->handled = true;
		str[0] = '\0';
		return str;
	}
	l->cur = l->line;
	while (*l->cur == ' ' || *l->cur == '\t')
		l->cur++;
	len = strlen(l->cur);
	if (len + 2 > (size_t)num) {
		cfg_error(l, l->lineno, "line longer than %d bytes", num - 3);
		l->handled = true;
		str[0] = '\0';
		return str;
	}
	memcpy(str, l->cur, len + 1);
	return str;
}

/* The current line produced no key: fine for blanks, comments and section
 * headers; report unknown sections and malformed lines. */
static void
cfg_check_line(struct cfg_loader *l)
{
	const char *p = l->cur, *e;

	if (l->lineno == 0 || l->handled)
		return;
	l->handled = true;
	if (l->lineno == 1 && strncmp(p, "\xef\xbb\xbf", 3) == 0)
		p += 3;		/* UTF-8 BOM, which inih skips */
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	if (*p == '\0' || *p == ';' || *p == '#')
		return;
	if (*p == '[') {
		/* As inih: ']' ends the name, " ;" starts a comment. */
		for (e = p + 1; *e != '\0' && *e != ']'; e++) {
			if (*e == ';' && (e[-1] == ' ' || e[-1] == '\t'))
				break;
		}
		if (*e != ']') {
			cfg_error(l, l->lineno, "missing ']' in section header");
		} else if (!cfg_section_known(p + 1, (size_t)(e - p - 1))) {
			cfg_error(l, l->lineno, "[%.*s]: unknown section",
			    (int)(e - p - 1), p + 1);
			return;
		} else {
			return;
		}
	} else {
		cfg_error(l, l->lineno,
		    "expected \"key = value\", \"[section]\" or a comment");
	}
	if (l->first_syntax_line == 0)
		l->first_syntax_line = l->lineno;
}

static int
cfg_handler(void *user, const char *section, const char *name,
    const char *value)
{
	struct cfg_loader *l = user;
	const struct cfg_key *k;
	char err[1024];
	size_t i;

	l->handled = true;
	if (value == NULL)
		value = "";
	if (*section == '\0') {
		cfg_error(l, l->lineno, "%s: key outside of any [section]",
		    name);
		return 1;
	}
	if (!cfg_section_known(section, strlen(section)))
		return 1;	/* reported at the section header */
	k = cfg_key_find(section, name);
	if (k == NULL) {
		cfg_error(l, l->lineno, "[%s] %s: unknown key", section, name);
		return 1;
	}
	i = (size_t)(k - cfg_keys);
	if (l->set_line[i] != 0) {
		cfg_error(l, l->lineno, "[%s] %s: set twice (first on line %d)",
		    section, name, l->set_line[i]);
		return 1;
	}
	l->set_line[i] = l->lineno;
	if (cfg_set(l, k, value, err, sizeof(err)) == -1)
		cfg_error(l, l->lineno, "[%s] %s: %s", section, name, err);
	/* Always go on: we collect every error ourselves. */
	return 1;
}

/* ---- validation of combinations ---- */

static void
cfg_validate_listen_dups(struct cfg_loader *l, const char *section,
    const char *const *keys, size_t nkeys)
{
	const struct cfg_hostports *a, *b;

	for (size_t i = 0; i < nkeys; i++) {
		a = (const void *)((char *)l->cfg +
		    cfg_key_find(section, keys[i])->off);
		for (size_t j = i; j < nkeys; j++) {
			b = (const void *)((char *)l->cfg +
			    cfg_key_find(section, keys[j])->off);
			for (size_t x = 0; x < a->n; x++) {
				for (size_t y = i == j ? x + 1 : 0; y < b->n;
				    y++) {
					if (strcmp(a->v[x].host,
					    b->v[y].host) != 0 ||
					    strcmp(a->v[x].port,
					    b->v[y].port) != 0)
						continue;
					cfg_key_error(l, section, keys[j],
					    "%s%s%s:%s is already in %s",
					    strchr(b->v[y].host, ':') ? "[" : "",
					    b->v[y].host[0] ? b->v[y].host : "*",
					    strchr(b->v[y].host, ':') ? "]" : "",
					    b->v[y].port, keys[i]);
				}
			}
		}
	}
}

static void
cfg_validate(struct cfg_loader *l)
{
	static const char *const smtpd_listen[] = {
		"mx_listen", "submission_listen", "submissions_listen"
	};
	static const char *const pop3d_listen[] = { "listen", "tls_listen" };
	struct cfg *c = l->cfg;
	bool tls = c->tls.cert != NULL && c->tls.key != NULL;
	char hostname[256], a[32], b[32];

	for (size_t i = 0; i < CFG_NKEYS; i++) {
		if ((cfg_keys[i].flags & CFG_F_REQUIRED) &&
		    l->set_line[i] == 0)
			cfg_key_error(l, cfg_keys[i].section, cfg_keys[i].key,
			    "required, not set");
	}
	if (c->server.hostname == NULL) {
		if (gethostname(hostname, sizeof(hostname)) == -1 ||
		    hostname[0] == '\0')
			cfg_key_error(l, "server", "hostname", "not set and "
			    "gethostname() failed: %s", strerror(errno));
		else {
			hostname[sizeof(hostname) - 1] = '\0';
			c->server.hostname = xstrdup(hostname);
		}
	}
	if (c->server.postmaster != NULL &&
	    strchr(c->server.postmaster, '@') == NULL)
		cfg_key_error(l, "server", "postmaster",
		    "expected a mail address like alice@example.test");

	if ((c->tls.cert != NULL) != (c->tls.key != NULL))
		cfg_key_error(l, "tls", c->tls.cert != NULL ? "cert" : "key",
		    "cert and key go together: set both or neither");
	/* Passwords never travel in clear except over loopback (SPEC). */
	if (!tls && !cfg_hostports_loopback_only(&c->smtpd.submission_listen))
		cfg_key_error(l, "smtpd", "submission_listen", "needs [tls] "
		    "cert and key for STARTTLS: AUTH is refused before TLS "
		    "except on loopback");
	if (!tls && c->smtpd.submissions_listen.n > 0)
		cfg_key_error(l, "smtpd", "submissions_listen", "implicit TLS "
		    "needs [tls] cert and key (or set it empty)");
	if (!tls && !c->pop3d.allow_plaintext_auth &&
	    !cfg_hostports_loopback_only(&c->pop3d.listen))
		cfg_key_error(l, "pop3d", "listen", "needs [tls] cert and key "
		    "for STLS, or allow_plaintext_auth = yes: logins are "
		    "refused before TLS except on loopback");
	if (!tls && c->pop3d.tls_listen.n > 0)
		cfg_key_error(l, "pop3d", "tls_listen", "implicit TLS needs "
		    "[tls] cert and key (or set it empty)");
	cfg_validate_listen_dups(l, "smtpd", smtpd_listen,
	    nitems(smtpd_listen));
	cfg_validate_listen_dups(l, "pop3d", pop3d_listen,
	    nitems(pop3d_listen));

	if (c->smtpd.max_clients_per_ip > c->smtpd.max_clients)
		cfg_key_error(l, "smtpd", "max_clients_per_ip",
		    "larger than max_clients (%u)", c->smtpd.max_clients);
	if (c->pop3d.max_clients_per_ip > c->pop3d.max_clients)
		cfg_key_error(l, "pop3d", "max_clients_per_ip",
		    "larger than max_clients (%u)", c->pop3d.max_clients);

	if (c->relay.retry_first > c->relay.retry_max) {
		cfg_fmt_duration(a, sizeof(a), c->relay.retry_first);
		cfg_fmt_duration(b, sizeof(b), c->relay.retry_max);
		cfg_key_error(l, "relay", "retry_first",
		    "%s is longer than retry_max (%s)", a, b);
	}
	if (c->relay.delay_warning >= c->relay.queue_lifetime) {
		cfg_fmt_duration(a, sizeof(a), c->relay.delay_warning);
		cfg_fmt_duration(b, sizeof(b), c->relay.queue_lifetime);
		cfg_key_error(l, "relay", "delay_warning", "%s is not shorter "
		    "than queue_lifetime (%s); 0 turns it off", a, b);
	}
	if (c->relay.smarthost_user != NULL && c->relay.smarthost == NULL)
		cfg_key_error(l, "relay", "smarthost_user",
		    "set, but no smarthost");
	if (c->relay.smarthost_user != NULL &&
	    c->relay.smarthost_password_file == NULL)
		cfg_key_error(l, "relay", "smarthost_user",
		    "set, but no smarthost_password_file");
	if (c->relay.smarthost_ca != NULL && c->relay.smarthost == NULL)
		cfg_key_error(l, "relay", "smarthost_ca",
		    "set, but no smarthost");
	if (c->relay.smarthost_user == NULL &&
	    c->relay.smarthost_password_file != NULL)
		cfg_key_error(l, "relay", "smarthost_password_file",
		    "set, but no smarthost_user");
}

/* ---- load / free ---- */

int
cfg_load(const char *path, struct cfg **cfg_r, char **errors_r)
{
	struct cfg_loader l;
	char err[1024], *slash, *dir;
	int saved_max_line, rc, read_error;

	memset(&l, 0, sizeof(l));
	l.file = path;
	l.cfg = xcalloc(1, sizeof(*l.cfg));
	l.cfg->file = xstrdup(path);

	/* Defaults go through the same parsers as file values. */
	for (size_t i = 0; i < CFG_NKEYS; i++) {
		if (cfg_keys[i].flags & CFG_F_REQUIRED)
			continue;
		rc = cfg_set(&l, &cfg_keys[i], cfg_keys[i].def, err,
		    sizeof(err));
		assert(rc == 0);
	}

	l.fp = fopen(path, "re");
	if (l.fp == NULL) {
		cfg_error(&l, 0, "cannot open: %s", strerror(errno));
		goto out;
	}
	/* Relative paths are relative to the config file's directory. */
	slash = strrchr(path, '/');
	dir = slash == NULL ? xstrdup(".") :
	    slash == path ? xstrdup("/") : xstrndup(path, (size_t)(slash - path));
	l.dir = realpath(dir, NULL);
	if (l.dir == NULL)
		l.dir = xstrdup(dir);
	free(dir);

	/* Debian's inih exposes its limits at run time; lines up to
	 * CFG_MAX_LINE must reach our reader whole. */
	saved_max_line = ini_max_line;
	ini_max_line = CFG_MAX_LINE + 3;
	rc = ini_parse_stream(cfg_reader, &l, cfg_handler, &l);
	ini_max_line = saved_max_line;
	read_error = ferror(l.fp) ? (errno != 0 ? errno : EIO) : 0;
	fclose(l.fp);
	free(l.line);
	free(l.dir);
	if (read_error != 0) {
		/* Validating what we did not read would only add noise. */
		cfg_error(&l, 0, "read error: %s", strerror(read_error));
		goto out;
	}
	if (rc == -2)
		cfg_error(&l, 0, "out of memory");
	else if (rc > 0 && rc != l.first_syntax_line)
		cfg_error(&l, rc, "syntax error");
	cfg_validate(&l);
out:
	if (l.nerrors > 0) {
		cfg_free(l.cfg);
		*cfg_r = NULL;
		*errors_r = l.errors;
		return -1;
	}
	*cfg_r = l.cfg;
	*errors_r = NULL;
	return 0;
}

void
cfg_free(struct cfg *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < CFG_NKEYS; i++)
		cfg_clear(cfg, &cfg_keys[i]);
	free(cfg->file);
	free(cfg);
}
