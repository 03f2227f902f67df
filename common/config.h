/*
 * The configuration: one INI file (libinih), one declarative key table in
 * config.c (type, default, bounds, help), and this typed struct that the
 * daemons and carteiroctl read. Durations are in seconds, sizes in bytes.
 */
#ifndef CARTEIRO_CONFIG_H
#define CARTEIRO_CONFIG_H

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
		unsigned daily_send_limit;
		struct cfg_strlist dnsbl;
	} smtpd;

	struct {
		char *smarthost;	/* "host:port" or NULL */
		char *smarthost_user;
		char *smarthost_password_file;
		char *resolver;		/* "ip:port" or NULL = /etc/resolv.conf */
		unsigned mx_port;
		unsigned retry_first;	/* seconds */
		unsigned retry_max;
		unsigned queue_lifetime;
		unsigned delay_warning;	/* 0 = off */
	} relay;

	struct {
		struct cfg_hostports listen;
		struct cfg_hostports tls_listen;
		bool allow_plaintext_auth;
		bool lock_session;
	} pop3d;
};

/*
 * Load and validate path. On success returns 0 and *cfg_r (free with
 * cfg_free). On failure returns -1 and *errors_r: every error found, one per
 * line, each "file:line: [section] key: message" (caller frees).
 */
int cfg_load(const char *path, struct cfg **cfg_r, char **errors_r);
void cfg_free(struct cfg *cfg);

/* Typed value parsers, exposed for tests and for carteiroctl. 0 / -1. */
int cfg_parse_duration(const char *s, unsigned *seconds_r);	/* 30, 5m, 1h, 5d */
int cfg_parse_size(const char *s, uint64_t *bytes_r);		/* 1000, 10k, 25M, 1G */
int cfg_parse_bool(const char *s, bool *b_r);			/* yes/no/true/false/on/off/1/0 */
/* "a:25, [::1]:25" -> list; empty string -> empty list. */
int cfg_parse_hostports(const char *s, struct cfg_hostports *r);
void cfg_hostports_clear(struct cfg_hostports *r);

#endif
