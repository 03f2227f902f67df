/*
 * The configuration: one INI file (libinih), one declarative key table in
 * config.c (type, default, bounds, help), and this typed struct that the
 * daemons and carteiroctl read. Durations are in seconds, sizes in bytes.
 */
#ifndef CARTEIRO_CONFIG_H
#define CARTEIRO_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One "host:port" of a listen list. host is "" for a wildcard, IPv6 literals
 * are stored without brackets ("::1"). */
struct cfg_hostport {
	char *host;
	char *port;
};

struct cfg_hostports {
	size_t n;
	struct cfg_hostport *v;
};

struct cfg_strlist {
	size_t n;
	char **v;
};

/*
 * Every char * below is owned by the struct (cfg_free). Optional strings are
 * NULL when unset or empty, never "". Relative paths in the file are resolved
 * against the directory of the config file, so the daemons and carteiroctl
 * agree whatever their working directory.
 */
struct cfg {
	char *file;			/* path the config was loaded from */

	struct {
		char *hostname;
		char *user;		/* NULL: do not drop privileges */
		char *postmaster;	/* NULL: no postmaster mapping */
		int log_level;		/* enum log_level */
	} server;

	struct {
		char *path;
		char *backend;		/* "sqlite" or "postgresql" */
		char *url;		/* postgresql: libpq URI or service= */
		/* What store_open takes: path, or the PostgreSQL locator
		 * (cfg_store_locator). Set by cfg_load. */
		char *locator;
	} store;

	struct {
		char *cert;		/* NULL: no TLS configured */
		char *key;
	} tls;

	struct {
		struct cfg_hostports mx_listen;
		struct cfg_hostports submission_listen;
		struct cfg_hostports submissions_listen;
		uint64_t max_message_size;
		unsigned max_recipients;
		unsigned max_clients;
		unsigned max_clients_per_ip;
		unsigned max_auth_failures;	/* per session, 0 = no limit */
		unsigned daily_send_limit;	/* remote rcpts/user/24 h, 0 = no limit */
		struct cfg_strlist dnsbl;	/* DNSBL zones, empty = off */
		/* CIDRs ("10.0.0.0/8", "::1") whose connections skip the
		 * inbound checks (DNSBL, SPF, ...); see cfg_cidrlist_match. */
		struct cfg_strlist inbound_checks_exempt;
		/* seconds of DNS per message for SPF+DKIM+DMARC */
		unsigned check_timeout;
		unsigned greet_pause;		/* seconds, 0 = off */
		unsigned max_connect_rate_per_ip;	/* per minute, 0 = off */
		/* CIDRs exempt from max_clients_per_ip, the connect rate
		 * and greet_pause (default loopback). */
		struct cfg_strlist trusted_networks;
		/* bytes/s in DATA/BDAT, 0 = off: each byte earns
		 * 1/min_data_rate s of deadline, up to the DATA timeout */
		unsigned min_data_rate;
		unsigned max_session_time;	/* seconds, 0 = no limit */
		unsigned auth_cache_ttl;	/* seconds, 0 = off */
		/* "inet:HOST:PORT" / "unix:/path", in order (milter.h) */
		struct cfg_strlist milters;
		struct cfg_strlist milter_listeners;	/* mx, submission(s) */
		char *milter_default_action;	/* tempfail|accept|reject */
		unsigned milter_connect_timeout;	/* seconds */
		unsigned milter_command_timeout;	/* seconds */
		unsigned milter_content_timeout;	/* seconds */
	} smtpd;

	struct {
		char *smarthost;	/* "host:port" or NULL */
		char *smarthost_user;
		char *smarthost_password_file;
		char *smarthost_ca;	/* CA file, NULL = system trust */
		char *resolver;		/* "ip:port" or NULL = /etc/resolv.conf */
		unsigned mx_port;
		unsigned retry_first;	/* seconds */
		unsigned retry_max;
		unsigned queue_lifetime;
		unsigned delay_warning;	/* 0 = off */
		/* Deadlines, seconds (RFC 5321 4.5.3.2): the greeting, each
		 * reply, each body block; DATA gets 2/5 of command_timeout
		 * and the final dot 10/3 of data_timeout. */
		unsigned connect_timeout;
		unsigned command_timeout;
		unsigned data_timeout;
		unsigned max_connections;
		unsigned max_connections_per_domain;
		unsigned max_messages_per_connection;
		unsigned suppress_days;		/* 0 = off */
		struct cfg_strlist source_ip;	/* <= one IPv4, one IPv6 */
		bool mta_sts;		/* honour MTA-STS policies */
		/* DNSBL zones for our own outbound addresses; empty: the
		 * [smtpd] dnsbl zones */
		struct cfg_strlist monitor_dnsbl;
		unsigned tls_report_interval;	/* seconds; 0 = off */
	} relay;

	struct {
		struct cfg_hostports listen;
		struct cfg_hostports tls_listen;
		bool allow_plaintext_auth;
		bool lock_session;
		unsigned max_clients;
		unsigned max_clients_per_ip;
		struct cfg_strlist trusted_networks;	/* exempt from per IP */
		unsigned max_auth_failures;	/* per session, 0 = no limit */
		unsigned max_session_time;	/* seconds, 0 = no limit */
		/* RFC 2449 EXPIRE (issue 14): seconds after the first
		 * RETR, CFG_EXPIRE_AT_QUIT ("0") or CFG_EXPIRE_NEVER (0,
		 * so that a zeroed struct cfg never deletes mail) */
		unsigned expire;
		unsigned login_delay;	/* RFC 2449 LOGIN-DELAY, s; 0 = off */
		unsigned auth_cache_ttl;	/* seconds, 0 = off */
	} pop3d;

	struct {			/* carteiro-webd */
		struct cfg_hostports listen;		/* plain HTTP */
		struct cfg_hostports tls_listen;	/* HTTPS, [tls] cert */
		struct cfg_strlist metrics_allow;	/* CIDRs for /metrics */
		char *mta_sts_mode;	/* "none", "testing" or "enforce" */
		unsigned mta_sts_max_age;	/* seconds */
		struct cfg_strlist mta_sts_mx;	/* MX names besides hostname */
		bool autoconfig;	/* Thunderbird autoconfig, Autodiscover */
		bool mta_sts;		/* serve the MTA-STS policy */
	} http;

	struct {			/* carteiroctl acme */
		bool enable;
		char *directory;	/* URL */
		char *email;		/* NULL: no contact */
		char *ca_file;		/* NULL: system trust */
		unsigned renew_before;	/* seconds */
	} acme;
};

/*
 * Load and validate path. On success returns 0 and *cfg_r (free with
 * cfg_free). On failure returns -1 and *errors_r: every error found, one per
 * line, each "file:line: [section] key: message" (caller frees).
 */
int cfg_load(const char *path, struct cfg **cfg_r, char **errors_r);

/* What the config is loaded for. A daemon needs [tls] for every listener
 * that takes passwords (submission, POP3 off loopback) or speaks implicit
 * TLS; a tool that only touches the store (carteiroctl) does not listen,
 * so those checks are skipped. Everything else is validated alike. */
enum cfg_mode {
	CFG_MODE_DAEMON,
	CFG_MODE_TOOL,
};
/* cfg_load is cfg_load_mode(path, CFG_MODE_DAEMON, ...). */
int cfg_load_mode(const char *path, enum cfg_mode mode, struct cfg **cfg_r,
    char **errors_r);
void cfg_free(struct cfg *cfg);
/* What store_open takes for a PostgreSQL [store] url: the URI itself, or
 * "postgresql:" + a keyword conninfo (service=NAME). Caller frees. */
char *cfg_store_locator(const char *url);

/* Typed value parsers, exposed for tests and for carteiroctl. 0 / -1.
 * Input is one trimmed value; nothing else may follow. */
int cfg_parse_duration(const char *s, unsigned *seconds_r);	/* 30, 5m, 1h, 5d */
/* [pop3d] expire and carteiroctl user set expire=: "never"
 * (CFG_EXPIRE_NEVER), a number of days ("0": CFG_EXPIRE_AT_QUIT), or a
 * duration with a suffix ("12h"); at most 100 years. 0 / -1. */
#define CFG_EXPIRE_NEVER	0u
#define CFG_EXPIRE_AT_QUIT	UINT_MAX
int cfg_parse_expire(const char *s, unsigned *seconds_r);
int cfg_parse_size(const char *s, uint64_t *bytes_r);		/* 1000, 10k, 25M, 1G */
int cfg_parse_bool(const char *s, bool *b_r);			/* yes/no/true/false/on/off/1/0 */
/* "a:25, [::1]:25" -> list; empty string -> empty list. */
int cfg_parse_hostports(const char *s, struct cfg_hostports *r);
void cfg_hostports_clear(struct cfg_hostports *r);
/* As cfg_parse_hostports; on failure *r is empty and *error_r a static
 * message ("IPv6 address needs brackets: [::1]:25"). *r is overwritten,
 * clear an old list first. */
int cfg_parse_hostports_err(const char *s, struct cfg_hostports *r,
    const char **error_r);
/* "a, b,c" -> {"a","b","c"}; empty string -> empty list. Empty entries and
 * entries with inner whitespace are errors. Same ownership as hostports. */
int cfg_parse_strlist(const char *s, struct cfg_strlist *r,
    const char **error_r);
void cfg_strlist_clear(struct cfg_strlist *r);

struct sockaddr;
/* "10.0.0.0/8", "fd00::/8", or a bare address (/32, /128). 0 / -1. */
int cfg_parse_cidr(const char *s, const char **error_r);
/* true if sa (AF_INET or AF_INET6; v4-mapped IPv6 counts as IPv4) lies in
 * one of the CIDRs of l (entries as accepted by cfg_parse_cidr). */
bool cfg_cidrlist_match(const struct cfg_strlist *l,
    const struct sockaddr *sa);

/* The key table, read-only, for tests and documentation: the i-th key's
 * section, name, default as written in a file ("" = empty) and help line.
 * Returns -1 past the end. */
struct cfg_key_doc {
	const char *section;
	const char *key;
	const char *def;
	const char *help;
	/* For the manual (carteiro.conf(5)): the value type in words
	 * ("duration", "size", "listen list", ...), whether the key must be
	 * set, and for numbers, durations (seconds) and sizes (bytes) the
	 * accepted range (has_range). */
	const char *type;
	bool required;
	bool has_range;
	uint64_t min, max;
};
int cfg_key_doc(size_t i, struct cfg_key_doc *r);

#endif
