/*
 * The configuration loader: libinih splits the INI file, this file reads it
 * line by line, sets each key through the table (config_keys.c) and the
 * value parsers (config_parse.c), collects every error ("file:line:
 * [section] key: msg") and validates key combinations. It does not open
 * TLS keys or the store.
 */
#include "common/config.h"
#include "common/config_internal.h"

#include <assert.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

/* More errors than this are noise (a binary file, the wrong file). */
#define CFG_MAX_ERRORS 50
/* Longest line we accept, bytes. */
#define CFG_MAX_LINE 4096

struct cfg_loader {
	struct cfg *cfg;
	enum cfg_mode mode;
	const char *file;	/* as given, for messages */
	char *dir;		/* absolute dir of file, for relative paths */
	FILE *fp;
	char *line;		/* getline buffer; the current raw line */
	size_t linecap;
	const char *cur;	/* current line without leading blanks */
	int lineno;
	bool handled;		/* inih called the handler for this line */
	int first_syntax_line;	/* first line we called a syntax error */
	int *set_line;		/* per key (cfg_nkeys): line it was set on,
				 * 0 = default */
	char *errors;		/* "\n"-joined */
	size_t errlen;
	unsigned nerrors;
};

static void cfg_error(struct cfg_loader *, int, const char *, ...)
    __attribute__((format(printf, 3, 4)));
static void cfg_key_error(struct cfg_loader *, const char *, const char *,
    const char *, ...) __attribute__((format(printf, 4, 5)));
static int cfg_set(struct cfg_loader *, const struct cfg_key *, const char *,
    char *, size_t);
static void cfg_clear(struct cfg *, const struct cfg_key *);
static char *cfg_reader(char *, int, void *);
static void cfg_check_line(struct cfg_loader *);
static int cfg_handler(void *, const char *, const char *, const char *);
static void cfg_validate_listen_tls(struct cfg_loader *);
static void cfg_validate(struct cfg_loader *);
static void cfg_validate_milters(struct cfg_loader *);
static void cfg_validate_store(struct cfg_loader *);

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

/* ---- setting a key ---- */

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
	case CFG_T_EXPIRE:
		if (cfg_parse_expire(value, &u) == -1) {
			error = "expected never, a number of days or a "
			    "duration (s, m, h, d)";
			goto bad;
		}
		*(unsigned *)p = u;
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

/* [smtpd] milters / milter_listeners / milter_default_action shapes. */
static void
cfg_validate_milters(struct cfg_loader *l)
{
	struct cfg *c = l->cfg;
	const char *a = c->smtpd.milter_default_action;
	size_t i;

	for (i = 0; i < c->smtpd.milters.n; i++) {
		const char *m = c->smtpd.milters.v[i];

		if (strncmp(m, "unix:/", 6) == 0)
			continue;
		if (strncmp(m, "inet:", 5) == 0 && strrchr(m + 5, ':') != NULL &&
		    strrchr(m + 5, ':') != m + 5 && strrchr(m, ':')[1] != '\0')
			continue;
		cfg_key_error(l, "smtpd", "milters", "'%s': expected "
		    "inet:HOST:PORT or unix:/path", m);
	}
	for (i = 0; i < c->smtpd.milter_listeners.n; i++) {
		const char *m = c->smtpd.milter_listeners.v[i];

		if (strcmp(m, "mx") != 0 && strcmp(m, "submission") != 0 &&
		    strcmp(m, "submissions") != 0)
			cfg_key_error(l, "smtpd", "milter_listeners", "'%s': "
			    "expected mx, submission or submissions", m);
	}
	if (a != NULL && strcmp(a, "tempfail") != 0 &&
	    strcmp(a, "accept") != 0 && strcmp(a, "reject") != 0)
		cfg_key_error(l, "smtpd", "milter_default_action", "'%s': "
		    "expected tempfail, accept or reject", a);
}

/* No [tls]: the listeners that would need it (daemons only). */
/*
 * [store]: the backend, and for PostgreSQL a URL without a password (the
 * config is readable by more than the daemons; libpq reads the password
 * from a passfile or the service file). Sets store.locator.
 */
static void
cfg_validate_store(struct cfg_loader *l)
{
	struct cfg *c = l->cfg;
	const char *url = c->store.url, *auth, *at;

	if (c->store.backend != NULL &&
	    strcmp(c->store.backend, "postgresql") == 0) {
		if (url == NULL) {
			cfg_key_error(l, "store", "url", "required with "
			    "backend = postgresql");
			return;
		}
		auth = strstr(url, "://");
		at = auth != NULL ? strchr(auth + 3, '@') : NULL;
		if (strcasestr(url, "password=") != NULL || (at != NULL &&
		    memchr(auth + 3, ':', (size_t)(at - auth - 3)) != NULL)) {
			cfg_key_error(l, "store", "url", "holds a password: "
			    "put it in a passfile (passfile=, ~/.pgpass) or a "
			    "service file instead");
			return;
		}
		c->store.locator = cfg_store_locator(url);
		return;
	}
	if (c->store.backend != NULL && strcmp(c->store.backend, "sqlite") != 0)
		cfg_key_error(l, "store", "backend", "'%s': expected sqlite or "
		    "postgresql", c->store.backend);
	if (url != NULL)
		cfg_key_error(l, "store", "url", "set, but backend is not "
		    "postgresql");
	c->store.locator = c->store.path != NULL ? xstrdup(c->store.path) :
	    NULL;
}

char *
cfg_store_locator(const char *url)
{
	if (strncmp(url, "postgresql://", 13) == 0 ||
	    strncmp(url, "postgres://", 11) == 0)
		return xstrdup(url);
	return xasprintf("postgresql:%s", url);
}

static void
cfg_validate_listen_tls(struct cfg_loader *l)
{
	struct cfg *c = l->cfg;

	if (!cfg_hostports_loopback_only(&c->smtpd.submission_listen))
		cfg_key_error(l, "smtpd", "submission_listen", "needs [tls] "
		    "cert and key for STARTTLS: AUTH is refused before TLS "
		    "except on loopback");
	if (c->smtpd.submissions_listen.n > 0)
		cfg_key_error(l, "smtpd", "submissions_listen", "implicit TLS "
		    "needs [tls] cert and key (or set it empty)");
	if (!c->pop3d.allow_plaintext_auth &&
	    !cfg_hostports_loopback_only(&c->pop3d.listen))
		cfg_key_error(l, "pop3d", "listen", "needs [tls] cert and key "
		    "for STLS, or allow_plaintext_auth = yes: logins are "
		    "refused before TLS except on loopback");
	if (c->pop3d.tls_listen.n > 0)
		cfg_key_error(l, "pop3d", "tls_listen", "implicit TLS needs "
		    "[tls] cert and key (or set it empty)");
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

	for (size_t i = 0; i < cfg_nkeys; i++) {
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
	/* Passwords never travel in clear except over loopback (SPEC).
	 * That is the daemons' business: a tool that only touches the
	 * store takes a config whose listeners lack TLS. */
	if (l->mode == CFG_MODE_DAEMON && !tls)
		cfg_validate_listen_tls(l);
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

	cfg_validate_milters(l);
	cfg_validate_store(l);

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
	/* RFC 8461 3.2: the three policy modes. */
	if (c->http.mta_sts_mode == NULL ||
	    (strcmp(c->http.mta_sts_mode, "none") != 0 &&
	    strcmp(c->http.mta_sts_mode, "testing") != 0 &&
	    strcmp(c->http.mta_sts_mode, "enforce") != 0))
		cfg_key_error(l, "http", "mta_sts_mode",
		    "expected none, testing or enforce");
}

/* ---- load / free ---- */

int
cfg_load(const char *path, struct cfg **cfg_r, char **errors_r)
{
	return cfg_load_mode(path, CFG_MODE_DAEMON, cfg_r, errors_r);
}

int
cfg_load_mode(const char *path, enum cfg_mode mode, struct cfg **cfg_r,
    char **errors_r)
{
	struct cfg_loader l;
	char err[1024], *slash, *dir;
	int saved_max_line, rc, read_error;

	memset(&l, 0, sizeof(l));
	l.mode = mode;
	l.file = path;
	l.cfg = xcalloc(1, sizeof(*l.cfg));
	l.set_line = xcalloc(cfg_nkeys, sizeof(*l.set_line));
	l.cfg->file = xstrdup(path);

	/* Defaults go through the same parsers as file values. */
	for (size_t i = 0; i < cfg_nkeys; i++) {
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
	free(l.set_line);
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
	for (size_t i = 0; i < cfg_nkeys; i++)
		cfg_clear(cfg, &cfg_keys[i]);
	free(cfg->store.locator);
	free(cfg->file);
	free(cfg);
}
