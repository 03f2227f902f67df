/*
 * Unit tests for common/config*.c (typed parsers, loader errors with file and
 * line, defaults, validation, the sample etc/carteiro.conf) and the argument
 * parsing of common/daemon.c. Temp files live in one mkdtemp directory.
 */
#include <arpa/inet.h>
#include <ini.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/daemon.h"
#include "common/log.h"
#include "common/util.h"
#include "t.h"

int main(void);

static char tmpdir[] = "/tmp/carteiro-test-config-XXXXXX";

/* Write content to tmpdir/name; returns the path (caller frees). */
static char *
write_conf(const char *name, const char *content)
{
	char *path = xasprintf("%s/%s", tmpdir, name);
	FILE *fp = fopen(path, "w");

	if (fp == NULL || fputs(content, fp) == EOF || fclose(fp) != 0)
		abort();
	return path;
}

/* Listeners that need no TLS, so that a test config only says what it
 * tests. */
#define NO_TLS_LISTENERS \
	"[smtpd]\nsubmission_listen =\nsubmissions_listen =\n" \
	"[pop3d]\nlisten =\ntls_listen =\n"

/* Load content; on failure *errors_r (caller frees), else *cfg_r. */
static int
load(const char *content, char **path_r, struct cfg **cfg_r, char **errors_r)
{
	char *path = write_conf("t.conf", content);
	int rc = cfg_load(path, cfg_r, errors_r);

	if (path_r != NULL)
		*path_r = path;
	else
		free(path);
	return rc;
}

/* Load content that must fail with exactly `expect` (each "%F" in it is the
 * file's path). */
static void
expect_errors(const char *content, const char *expect)
{
	struct cfg *cfg = NULL;
	char *errors = NULL, *path, *want, *o;
	size_t n = 0;

	t_assert_int(load(content, &path, &cfg, &errors), -1);
	t_assert(cfg == NULL);
	for (const char *p = expect; (p = strstr(p, "%F")) != NULL; p += 2)
		n++;
	want = o = xmalloc(strlen(expect) + n * strlen(path) + 1);
	for (const char *p = expect; *p != '\0';) {
		if (p[0] == '%' && p[1] == 'F') {
			o = stpcpy(o, path);
			p += 2;
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
	t_assert_str(errors, want);
	free(want);
	free(errors);
	free(path);
	cfg_free(cfg);
}

/* ---- typed parsers, table-driven ---- */

static void
test_parse_duration(void)
{
	static const struct { const char *in; int rc; unsigned out; } c[] = {
		{ "0", 0, 0 }, { "30", 0, 30 }, { "30s", 0, 30 },
		{ "5m", 0, 300 }, { "1h", 0, 3600 }, { "5d", 0, 432000 },
		{ "4294967295", 0, 4294967295u }, { "49710d", 0, 4294944000u },
		{ "4294967296", -1, 0 }, { "49711d", -1, 0 },
		{ "99999999999999999999999", -1, 0 },
		{ "", -1, 0 }, { "m", -1, 0 }, { "5x", -1, 0 }, { "5mm", -1, 0 },
		{ "5M", -1, 0 }, { "-5", -1, 0 }, { "+5", -1, 0 }, { " 5", -1, 0 },
		{ "5 m", -1, 0 }, { "1h30m", -1, 0 }, { "1.5h", -1, 0 },
	};

	t_begin("parse_duration");
	for (size_t i = 0; i < nitems(c); i++) {
		unsigned v = 12345;
		int rc = cfg_parse_duration(c[i].in, &v);
		if (rc != c[i].rc || (rc == 0 && v != c[i].out))
			fprintf(stderr, "  duration \"%s\"\n", c[i].in);
		t_assert_int(rc, c[i].rc);
		if (rc == 0)
			t_assert_int(v, c[i].out);
	}
	t_end();
}

static void
test_parse_size(void)
{
	static const struct { const char *in; int rc; uint64_t out; } c[] = {
		{ "0", 0, 0 }, { "1000", 0, 1000 }, { "10k", 0, 10240 },
		{ "10K", 0, 10240 }, { "25M", 0, 26214400 },
		{ "25m", 0, 26214400 }, { "1G", 0, 1073741824 },
		{ "1g", 0, 1073741824 },
		{ "18446744073709551615", 0, UINT64_MAX },
		{ "18446744073709551616", -1, 0 },
		{ "17179869184G", -1, 0 },
		{ "", -1, 0 }, { "k", -1, 0 }, { "1T", -1, 0 }, { "1KB", -1, 0 },
		{ "-1", -1, 0 }, { "1 k", -1, 0 }, { "1.5M", -1, 0 },
	};

	t_begin("parse_size");
	for (size_t i = 0; i < nitems(c); i++) {
		uint64_t v = 12345;
		int rc = cfg_parse_size(c[i].in, &v);
		if (rc != c[i].rc)
			fprintf(stderr, "  size \"%s\"\n", c[i].in);
		t_assert_int(rc, c[i].rc);
		if (rc == 0)
			t_assert(v == c[i].out);
	}
	t_end();
}

static void
test_parse_bool(void)
{
	static const struct { const char *in; int rc; bool out; } c[] = {
		{ "yes", 0, true }, { "no", 0, false }, { "true", 0, true },
		{ "false", 0, false }, { "on", 0, true }, { "off", 0, false },
		{ "1", 0, true }, { "0", 0, false }, { "YES", 0, true },
		{ "Off", 0, false },
		{ "", -1, false }, { "y", -1, false }, { "2", -1, false },
		{ "yes ", -1, false }, { "enable", -1, false },
	};

	t_begin("parse_bool");
	for (size_t i = 0; i < nitems(c); i++) {
		bool v = !c[i].out;
		int rc = cfg_parse_bool(c[i].in, &v);
		t_assert_int(rc, c[i].rc);
		if (rc == 0)
			t_assert(v == c[i].out);
	}
	t_end();
}

static void
test_parse_hostports(void)
{
	/* out: "host|port;host|port" or the expected error text */
	static const struct { const char *in; int rc; const char *out; } c[] = {
		{ "", 0, "" },
		{ "   ", 0, "" },
		{ "0.0.0.0:25", 0, "0.0.0.0|25" },
		{ "0.0.0.0:25, [::]:25, 127.0.0.1:2525", 0,
		  "0.0.0.0|25;::|25;127.0.0.1|2525" },
		{ "[::1]:587", 0, "::1|587" },
		{ "[fe80::1%eth0]:25", 0, "fe80::1%eth0|25" },
		{ "*:25", 0, "|25" },
		{ ":25", 0, "|25" },
		{ "localhost:2525", 0, "localhost|2525" },
		{ "mail.example.test:25", 0, "mail.example.test|25" },
		{ "127.0.0.1:025", 0, "127.0.0.1|25" },
		{ "a:1,b:65535", 0, "a|1;b|65535" },
		{ "::1:25", -1, "IPv6 address needs brackets, e.g. [::1]:25" },
		{ ":::25", -1, "IPv6 address needs brackets, e.g. [::1]:25" },
		{ "0.0.0.0", -1, "missing :port" },
		{ "[::1]", -1, "expected :port after ']'" },
		{ "[::1]25", -1, "expected :port after ']'" },
		{ "[::1:25", -1, "missing ']' after IPv6 address" },
		{ "[1.2.3.4]:25", -1, "bad IPv6 address in brackets" },
		{ "[fe80::1%]:25", -1, "empty IPv6 zone after '%'" },
		{ "1.2.3.256:25", -1, "bad IPv4 address" },
		{ "1.2.3:25", -1, "bad IPv4 address" },
		{ "ho st:25", -1, "blank inside an entry (missing comma?)" },
		{ "a:25 b:25", -1, "blank inside an entry (missing comma?)" },
		{ "h/x:25", -1, "bad host name" },
		{ "a:0", -1, "port must be a number from 1 to 65535" },
		{ "a:65536", -1, "port must be a number from 1 to 65535" },
		{ "a:smtp", -1, "port must be a number from 1 to 65535" },
		{ "a:", -1, "port must be a number from 1 to 65535" },
		{ "a:-1", -1, "port must be a number from 1 to 65535" },
		{ "a:25,", -1, "empty entry in list" },
		{ "a:25,,b:25", -1, "empty entry in list" },
		{ ",a:25", -1, "empty entry in list" },
	};

	t_begin("parse_hostports");
	for (size_t i = 0; i < nitems(c); i++) {
		struct cfg_hostports hp = { 0, NULL };
		const char *error = NULL;
		char got[256] = "";
		int rc = cfg_parse_hostports_err(c[i].in, &hp, &error);

		if (rc != c[i].rc)
			fprintf(stderr, "  hostports \"%s\"\n", c[i].in);
		t_assert_int(rc, c[i].rc);
		if (rc == 0) {
			for (size_t j = 0; j < hp.n; j++) {
				if (j > 0)
					strcat(got, ";");
				strcat(got, hp.v[j].host);
				strcat(got, "|");
				strcat(got, hp.v[j].port);
			}
			t_assert_str(got, c[i].out);
		} else {
			t_assert_str(error, c[i].out);
			t_assert(hp.n == 0 && hp.v == NULL);
		}
		cfg_hostports_clear(&hp);
		t_assert_int(cfg_parse_hostports(c[i].in, &hp), c[i].rc);
		cfg_hostports_clear(&hp);
	}
	t_end();
}

static void
test_parse_strlist(void)
{
	static const struct { const char *in; int rc; const char *out; } c[] = {
		{ "", 0, "" },
		{ " ", 0, "" },
		{ "zen.spamhaus.org", 0, "zen.spamhaus.org" },
		{ "a,b", 0, "a|b" },
		{ " a , b ,c ", 0, "a|b|c" },
		{ "a,", -1, "empty entry in list" },
		{ "a,,b", -1, "empty entry in list" },
		{ "a b", -1, "blank or control character inside an entry "
		  "(missing comma?)" },
	};

	t_begin("parse_strlist");
	for (size_t i = 0; i < nitems(c); i++) {
		struct cfg_strlist sl = { 0, NULL };
		const char *error = NULL;
		char got[256] = "";
		int rc = cfg_parse_strlist(c[i].in, &sl, &error);

		t_assert_int(rc, c[i].rc);
		if (rc == 0) {
			for (size_t j = 0; j < sl.n; j++) {
				if (j > 0)
					strcat(got, "|");
				strcat(got, sl.v[j]);
			}
			t_assert_str(got, c[i].out);
		} else {
			t_assert_str(error, c[i].out);
			t_assert(sl.n == 0 && sl.v == NULL);
		}
		cfg_strlist_clear(&sl);
	}
	t_end();
}

static void
test_cidr(void)
{
	static const struct { const char *in; int rc; } p[] = {
		{ "10.0.0.0/8", 0 }, { "192.168.1.1", 0 }, { "0.0.0.0/0", 0 },
		{ "fd00::/8", 0 }, { "::1", 0 }, { "::/0", 0 },
		{ "10.0.0.0/33", -1 }, { "fd00::/129", -1 }, { "10.0.0/8", -1 },
		{ "10.0.0.0/", -1 }, { "10.0.0.0/x", -1 }, { "host", -1 },
		{ "", -1 }, { "10.0.0.0/8/8", -1 },
	};
	static const struct { const char *ip; bool in; } m[] = {
		{ "10.1.2.3", true }, { "11.0.0.1", false },
		{ "192.168.1.1", true }, { "192.168.1.2", false },
		{ "172.16.5.5", true }, { "172.32.0.1", false },
		{ "::ffff:10.9.9.9", true }, { "::ffff:11.0.0.1", false },
		{ "fd12::1", true }, { "fe80::1", false }, { "::1", true },
		{ "::2", false },
	};
	char *v[] = { "10.0.0.0/8", "192.168.1.1", "172.16.0.0/12",
	    "fd00::/8", "::1" };
	struct cfg_strlist l = { nitems(v), v };
	const char *error;

	t_begin("cidr");
	for (size_t i = 0; i < nitems(p); i++) {
		if (cfg_parse_cidr(p[i].in, &error) != p[i].rc)
			fprintf(stderr, "  cidr \"%s\"\n", p[i].in);
		t_assert_int(cfg_parse_cidr(p[i].in, &error), p[i].rc);
	}
	for (size_t i = 0; i < nitems(m); i++) {
		struct sockaddr_in sin;
		struct sockaddr_in6 sin6;
		const struct sockaddr *sa;

		memset(&sin, 0, sizeof(sin));
		memset(&sin6, 0, sizeof(sin6));
		if (inet_pton(AF_INET, m[i].ip, &sin.sin_addr) == 1) {
			sin.sin_family = AF_INET;
			sa = (const struct sockaddr *)&sin;
		} else {
			t_assert(inet_pton(AF_INET6, m[i].ip,
			    &sin6.sin6_addr) == 1);
			sin6.sin6_family = AF_INET6;
			sa = (const struct sockaddr *)&sin6;
		}
		if (cfg_cidrlist_match(&l, sa) != m[i].in)
			fprintf(stderr, "  match %s\n", m[i].ip);
		t_assert(cfg_cidrlist_match(&l, sa) == m[i].in);
	}
	t_end();
}

/* ---- loading ---- */

static void
test_defaults(void)
{
	struct cfg *cfg = NULL;
	char *errors = NULL, *path, host[256], *real, *want;

	t_begin("defaults");
	t_assert_int(load("[store]\npath = mail.db\n", &path, &cfg, &errors),
	    -1);
	free(errors);
	free(path);
	/* The default listeners need TLS; with them off the rest must be
	 * exactly the SPEC.md defaults. */
	t_assert_int(load("[store]\npath = mail.db\n" NO_TLS_LISTENERS,
	    &path, &cfg, &errors), 0);
	t_assert(errors == NULL);
	if (cfg == NULL) {
		fprintf(stderr, "%s\n", errors);
		free(path);
		t_end();
		return;
	}
	t_assert_str(cfg->file, path);
	gethostname(host, sizeof(host));
	t_assert_str(cfg->server.hostname, host);
	t_assert(cfg->server.user == NULL);
	t_assert(cfg->server.postmaster == NULL);
	t_assert_int(cfg->server.log_level, LOG_LVL_INFO);
	/* relative to the config file's directory */
	real = realpath(tmpdir, NULL);
	want = xasprintf("%s/mail.db", real);
	t_assert_str(cfg->store.path, want);
	free(want);
	free(real);
	t_assert(cfg->tls.cert == NULL && cfg->tls.key == NULL);
	t_assert_int(cfg->smtpd.mx_listen.n, 1);
	t_assert_str(cfg->smtpd.mx_listen.v[0].host, "0.0.0.0");
	t_assert_str(cfg->smtpd.mx_listen.v[0].port, "25");
	t_assert_int(cfg->smtpd.submission_listen.n, 0);
	t_assert_int(cfg->smtpd.submissions_listen.n, 0);
	t_assert_int(cfg->smtpd.max_message_size, 26214400);
	t_assert_int(cfg->smtpd.max_recipients, 100);
	t_assert_int(cfg->smtpd.max_clients, 1000);
	t_assert_int(cfg->smtpd.max_clients_per_ip, 20);
	t_assert_int(cfg->smtpd.daily_send_limit, 500);
	t_assert_int(cfg->smtpd.dnsbl.n, 0);
	t_assert_int(cfg->smtpd.inbound_checks_exempt.n, 0);
	/* Loopback is trusted (exempt from per-client limits) by default. */
	t_assert_int(cfg->smtpd.trusted_networks.n, 2);
	t_assert_int(cfg->pop3d.trusted_networks.n, 2);
	if (cfg->smtpd.trusted_networks.n == 2 &&
	    cfg->pop3d.trusted_networks.n == 2) {
		t_assert_str(cfg->smtpd.trusted_networks.v[0], "127.0.0.0/8");
		t_assert_str(cfg->smtpd.trusted_networks.v[1], "::1/128");
		t_assert_str(cfg->pop3d.trusted_networks.v[0], "127.0.0.0/8");
		t_assert_str(cfg->pop3d.trusted_networks.v[1], "::1/128");
	}
	t_assert(cfg->relay.smarthost == NULL);
	t_assert(cfg->relay.smarthost_user == NULL);
	t_assert(cfg->relay.smarthost_password_file == NULL);
	t_assert(cfg->relay.resolver == NULL);
	t_assert_int(cfg->relay.mx_port, 25);
	t_assert_int(cfg->relay.retry_first, 300);
	t_assert_int(cfg->relay.retry_max, 3600);
	t_assert_int(cfg->relay.queue_lifetime, 5 * 86400);
	t_assert_int(cfg->relay.delay_warning, 4 * 3600);
	t_assert_int(cfg->pop3d.listen.n, 0);
	t_assert_int(cfg->pop3d.tls_listen.n, 0);
	t_assert(!cfg->pop3d.allow_plaintext_auth);
	t_assert(!cfg->pop3d.lock_session);
	t_assert_int(cfg->pop3d.max_clients, 1000);
	t_assert_int(cfg->pop3d.max_clients_per_ip, 20);
	cfg_free(cfg);
	free(path);
	t_end();
}

static void
test_values(void)
{
	struct cfg *cfg = NULL;
	char *errors = NULL;
	int rc;

	t_begin("values");
	rc = load(
	    "\xef\xbb\xbf; a comment\n"
	    "# another\n"
	    "[server]\n"
	    "  hostname = mx.example.test   ; indented, inline comment\n"
	    "user=carteiro\n"
	    "postmaster = alice@example.test\n"
	    "log_level = debug\r\n"
	    "[store]\n"
	    "path = /abs/mail.db\n"
	    "[tls]\n"
	    "cert = /etc/c.pem\n"
	    "key = k.pem\n"
	    "[smtpd]\n"
	    "mx_listen = 127.0.0.1:2525, [::1]:2525\n"
	    "submission_listen = *:2587\n"
	    "submissions_listen = :2465\n"
	    "max_message_size = 10M\n"
	    "daily_send_limit = 0\n"
	    "dnsbl = zen.spamhaus.org, bl.example\n"
	    "inbound_checks_exempt = 10.0.0.0/8, ::1\n"
	    "[relay]\n"
	    "smarthost = smtp.example.net:587\n"
	    "smarthost_user = me\n"
	    "smarthost_password_file = /etc/pw\n"
	    "resolver = [::1]:5353\n"
	    "retry_first = 30\n"
	    "retry_max = 30s\n"
	    "delay_warning = 0\n"
	    "[pop3d]\n"
	    "listen = 127.0.0.1:1110\n"
	    "tls_listen = [::]:1995\n"
	    "allow_plaintext_auth = on\n"
	    "lock_session = true\n"
	    "max_clients = 5\n"
	    "max_clients_per_ip = 5\n", NULL, &cfg, &errors);
	t_assert_int(rc, 0);
	if (rc != 0) {
		fprintf(stderr, "%s\n", errors);
		free(errors);
		t_end();
		return;
	}
	t_assert_str(cfg->server.hostname, "mx.example.test");
	t_assert_str(cfg->server.user, "carteiro");
	t_assert_str(cfg->server.postmaster, "alice@example.test");
	t_assert_int(cfg->server.log_level, LOG_LVL_DEBUG);
	t_assert_str(cfg->store.path, "/abs/mail.db");
	t_assert_str(cfg->tls.cert, "/etc/c.pem");
	t_assert(cfg->tls.key != NULL && cfg->tls.key[0] == '/' &&
	    strstr(cfg->tls.key, "/k.pem") != NULL);
	t_assert_int(cfg->smtpd.mx_listen.n, 2);
	t_assert_str(cfg->smtpd.mx_listen.v[1].host, "::1");
	t_assert_str(cfg->smtpd.submission_listen.v[0].host, "");
	t_assert_str(cfg->smtpd.submissions_listen.v[0].port, "2465");
	t_assert_int(cfg->smtpd.max_message_size, 10 * 1024 * 1024);
	t_assert_int(cfg->smtpd.daily_send_limit, 0);
	t_assert_int(cfg->smtpd.dnsbl.n, 2);
	t_assert_str(cfg->smtpd.dnsbl.v[1], "bl.example");
	t_assert_int(cfg->smtpd.inbound_checks_exempt.n, 2);
	t_assert_str(cfg->relay.smarthost, "smtp.example.net:587");
	t_assert_str(cfg->relay.smarthost_user, "me");
	t_assert_str(cfg->relay.smarthost_password_file, "/etc/pw");
	t_assert_str(cfg->relay.resolver, "[::1]:5353");
	t_assert_int(cfg->relay.retry_first, 30);
	t_assert_int(cfg->relay.retry_max, 30);
	t_assert_int(cfg->relay.delay_warning, 0);
	t_assert_int(cfg->pop3d.listen.n, 1);
	t_assert_str(cfg->pop3d.tls_listen.v[0].host, "::");
	t_assert(cfg->pop3d.allow_plaintext_auth);
	t_assert(cfg->pop3d.lock_session);
	t_assert_int(cfg->pop3d.max_clients, 5);
	cfg_free(cfg);
	t_end();
}

static void
test_missing_file(void)
{
	struct cfg *cfg = (struct cfg *)1;
	char *errors = NULL, *path = xasprintf("%s/nope.conf", tmpdir);
	char *want = xasprintf("%s: cannot open: No such file or directory",
	    path);

	t_begin("missing_file");
	t_assert_int(cfg_load(path, &cfg, &errors), -1);
	t_assert(cfg == NULL);
	t_assert_str(errors, want);
	free(errors);
	free(want);
	free(path);
	t_end();
}

static void
test_errors_lines(void)
{
	t_begin("unknown_section");
	expect_errors("[store]\npath = /x\n\n[smptd]\nmx_listen = :25\n"
	    "max_clients = 3\n[pop3d]\nlisten =\ntls_listen =\n"
	    "[smtpd]\nsubmission_listen =\nsubmissions_listen =\n",
	    "%F:4: [smptd]: unknown section");
	t_end();

	t_begin("unknown_key");
	expect_errors("[store]\npath = /x\nsize = 3\n" NO_TLS_LISTENERS,
	    "%F:3: [store] size: unknown key");
	t_end();

	t_begin("key_outside_section");
	expect_errors("path = /x\n[store]\npath = /x\n" NO_TLS_LISTENERS,
	    "%F:1: path: key outside of any [section]");
	t_end();

	t_begin("duplicate_key");
	expect_errors("[store]\npath = /x\n" NO_TLS_LISTENERS
	    "[store]\npath = /y\n",
	    "%F:10: [store] path: set twice (first on line 2)");
	t_end();

	t_begin("syntax_errors");
	expect_errors("[store\npath = /x\n" NO_TLS_LISTENERS
	    "just words\n[smtpd ; x]\n",
	    "%F:1: missing ']' in section header\n"
	    "%F:2: path: key outside of any [section]\n"
	    "%F:9: expected \"key = value\", \"[section]\" or a comment\n"
	    "%F:10: missing ']' in section header\n"
	    "%F: [store] path: required, not set");
	t_end();

	t_begin("missing_required");
	expect_errors(NO_TLS_LISTENERS,
	    "%F: [store] path: required, not set");
	expect_errors("[store]\npath =\n" NO_TLS_LISTENERS,
	    "%F:2: [store] path: must not be empty");
	t_end();

	t_begin("overlong_line");
	{
		char *buf = xmalloc(6000), *o = buf;
		o = stpcpy(o, "[store]\npath = /x\n" NO_TLS_LISTENERS
		    "[smtpd]\ndnsbl = ");
		memset(o, 'a', 5000);
		strcpy(o + 5000, "\n");
		expect_errors(buf, "%F:10: line longer than 4096 bytes");
		free(buf);
	}
	t_end();

	t_begin("nul_byte");
	{
		struct cfg *cfg;
		char *errors = NULL, *path = xasprintf("%s/nul.conf", tmpdir);
		char *want = xasprintf("%s:2: NUL byte in line", path);
		FILE *fp = fopen(path, "w");
		static const char data[] = "[store]\npath = /x\0y\n"
		    NO_TLS_LISTENERS;
		fwrite(data, 1, sizeof(data) - 1, fp);
		fclose(fp);
			t_assert_int(cfg_load(path, &cfg, &errors), -1);
		/* the NUL line is refused, so path is missing as well */
		t_assert(errors != NULL && strncmp(errors, want,
		    strlen(want)) == 0);
		free(errors);
		free(want);
		free(path);
	}
	t_end();

	t_begin("multiple_errors");
	expect_errors(
	    "; comment\n"				/* 1 */
	    "[server]\n"				/* 2 */
	    "log_level = loud\n"			/* 3 */
	    "colour = blue\n"				/* 4 */
	    "[store]\n"					/* 5 */
	    "path = /x\n"				/* 6 */
	    "[smtpd]\n"					/* 7 */
	    "max_clients = 0\n"				/* 8 */
	    "mx_listen = ::1:25\n"			/* 9 */
	    "\n"					/* 10 */
	    "[relay]\n"					/* 11 */
	    "retry_first = 5 minutes\n"			/* 12 */
	    "[pop3d]\n"					/* 13 */
	    "lock_session = maybe\n"			/* 14 */
	    "[nope]\n"					/* 15 */
	    "x = 1\n",					/* 16 */
	    "%F:3: [server] log_level: expected error, warn, info or debug, "
	    "got \"loud\"\n"
	    "%F:4: [server] colour: unknown key\n"
	    "%F:8: [smtpd] max_clients: expected a number from 1 to 1000000, "
	    "got \"0\"\n"
	    "%F:9: [smtpd] mx_listen: IPv6 address needs brackets, e.g. "
	    "[::1]:25, got \"::1:25\"\n"
	    "%F:12: [relay] retry_first: expected a duration from 1s to 30d "
	    "(plain seconds or with s, m, h, d), got \"5 minutes\"\n"
	    "%F:14: [pop3d] lock_session: expected yes or no, got \"maybe\"\n"
	    "%F:15: [nope]: unknown section\n"
	    "%F: [smtpd] submission_listen: needs [tls] cert and key for "
	    "STARTTLS: AUTH is refused before TLS except on loopback\n"
	    "%F: [smtpd] submissions_listen: implicit TLS needs [tls] cert "
	    "and key (or set it empty)\n"
	    "%F: [pop3d] listen: needs [tls] cert and key for STLS, or "
	    "allow_plaintext_auth = yes: logins are refused before TLS "
	    "except on loopback\n"
	    "%F: [pop3d] tls_listen: implicit TLS needs [tls] cert and key "
	    "(or set it empty)");
	t_end();
}

/* One bad value per type and range: {section, key, value, message}. */
static void
test_bad_values(void)
{
	static const struct { const char *sec, *key, *val, *msg; } c[] = {
		{ "server", "hostname", "mail example", "must be one word "
		  "without blanks, got \"mail example\"" },
		{ "server", "user", "a\tb", "must be one word without blanks, "
		  "got \"a\\x09b\"" },
		{ "server", "log_level", "INFO", "expected error, warn, info "
		  "or debug, got \"INFO\"" },
		{ "store", "path", "/a\x01", "control character in path "
		  "\"/a\\x01\"" },
		{ "smtpd", "mx_listen", "0.0.0.0", "missing :port, got "
		  "\"0.0.0.0\"" },
		{ "smtpd", "mx_listen", "[::]:0", "port must be a number from "
		  "1 to 65535, got \"[::]:0\"" },
		{ "smtpd", "mx_listen", "0.0.0.0:25, ::1:25, [::]:25",
		  "IPv6 address needs brackets, e.g. [::1]:25, got \"::1:25\"" },
		{ "smtpd", "mx_listen", "fe80::1:587", "IPv6 address "
		  "needs brackets, e.g. [::1]:25, got \"fe80::1:587\"" },
		{ "smtpd", "max_message_size", "1023", "expected a size from "
		  "1024 to 4294967296 bytes (k, M, G suffixes allowed), got "
		  "\"1023\"" },
		{ "smtpd", "max_message_size", "5G", "expected a size from "
		  "1024 to 4294967296 bytes (k, M, G suffixes allowed), got "
		  "\"5G\"" },
		{ "smtpd", "max_message_size", "25MB", "expected a size from "
		  "1024 to 4294967296 bytes (k, M, G suffixes allowed), got "
		  "\"25MB\"" },
		{ "smtpd", "max_recipients", "100000000000000000000000",
		  "expected a number from 1 to 100000, got "
		  "\"100000000000000000000000\"" },
		{ "smtpd", "max_recipients", "-1", "expected a number from 1 "
		  "to 100000, got \"-1\"" },
		{ "smtpd", "max_recipients", "10k", "expected a number from 1 "
		  "to 100000, got \"10k\"" },
		{ "smtpd", "dnsbl", "a,,b", "empty entry in list, got "
		  "\"a,,b\"" },
		{ "smtpd", "inbound_checks_exempt", "10.0.0.0/8, 300.0.0.0/8",
		  "bad address in CIDR (expected 10.0.0.0/8 or fd00::/8), got "
		  "\"300.0.0.0/8\"" },
		{ "smtpd", "inbound_checks_exempt", "::1/200",
		  "bad prefix length in CIDR, got \"::1/200\"" },
		{ "relay", "smarthost", "relay.example", "missing :port, got "
		  "\"relay.example\"" },
		{ "relay", "smarthost", "a:25, b:25", "expected one host:port "
		  "with a host, got \"a:25, b:25\"" },
		{ "relay", "resolver", "*:53", "expected one host:port with a "
		  "host, got \"*:53\"" },
		{ "relay", "mx_port", "65536", "expected a number from 1 to "
		  "65535, got \"65536\"" },
		{ "relay", "queue_lifetime", "59", "expected a duration from "
		  "1m to 365d (plain seconds or with s, m, h, d), got \"59\"" },
		{ "relay", "delay_warning", "1w", "expected a duration from "
		  "0s to 365d (plain seconds or with s, m, h, d), got \"1w\"" },
		{ "pop3d", "allow_plaintext_auth", "ja", "expected yes or no, "
		  "got \"ja\"" },
		{ "pop3d", "max_clients_per_ip", "0", "expected a number from "
		  "1 to 1000000, got \"0\"" },
	};

	t_begin("bad_values");
	for (size_t i = 0; i < nitems(c); i++) {
		/* The bad key on line 10, after the no-TLS preamble. */
		char *conf = xasprintf("%s[store]\npath = /x\n[%s]\n%s = %s\n",
		    NO_TLS_LISTENERS, c[i].sec, c[i].key, c[i].val);
		char *want = xasprintf("%%F:10: [%s] %s: %s", c[i].sec,
		    c[i].key, c[i].msg);
		if (strcmp(c[i].key, "path") == 0) {
			free(conf);
			conf = xasprintf("%s[store]\n\n[%s]\n%s = %s\n",
			    NO_TLS_LISTENERS, c[i].sec, c[i].key, c[i].val);
		}
		expect_errors(conf, want);
		free(conf);
		free(want);
	}
	t_end();
}

static void
test_validation(void)
{
	struct cfg *cfg = NULL;
	char *errors = NULL;

	t_begin("validation");
	expect_errors("[store]\npath = /x\n[tls]\ncert = /c\n"
	    NO_TLS_LISTENERS,
	    "%F:4: [tls] cert: cert and key go together: set both or "
	    "neither");
	expect_errors("[store]\npath = /x\n" NO_TLS_LISTENERS
	    "[relay]\nretry_first = 2h\nretry_max = 1h\n",
	    "%F:10: [relay] retry_first: 2h is longer than retry_max (1h)");
	expect_errors("[store]\npath = /x\n" NO_TLS_LISTENERS
	    "[relay]\ndelay_warning = 5d\n",
	    "%F:10: [relay] delay_warning: 5d is not shorter than "
	    "queue_lifetime (5d); 0 turns it off");
	expect_errors("[store]\npath = /x\n" NO_TLS_LISTENERS
	    "[relay]\nsmarthost_user = me\nsmarthost_password_file = /p\n",
	    "%F:10: [relay] smarthost_user: set, but no smarthost");
	expect_errors("[store]\npath = /x\n" NO_TLS_LISTENERS
	    "[relay]\nsmarthost = a:587\nsmarthost_user = me\n",
	    "%F:11: [relay] smarthost_user: set, but no "
	    "smarthost_password_file");
	expect_errors("[store]\npath = /x\n" NO_TLS_LISTENERS
	    "[smtpd]\nmax_clients = 10\nmax_clients_per_ip = 11\n"
	    "[pop3d]\nmax_clients_per_ip = 1001\n",
	    "%F:11: [smtpd] max_clients_per_ip: larger than max_clients "
	    "(10)\n"
	    "%F:13: [pop3d] max_clients_per_ip: larger than max_clients "
	    "(1000)");
	expect_errors("[server]\npostmaster = postmaster\n"
	    "[store]\npath = /x\n" NO_TLS_LISTENERS,
	    "%F:2: [server] postmaster: expected a mail address like "
	    "alice@example.test");
	expect_errors("[store]\npath = /x\n[smtpd]\nmx_listen = :25\n"
	    "submission_listen = 127.0.0.1:587, *:25\n"
	    "submissions_listen =\n[pop3d]\nlisten = 127.0.0.1:110\n"
	    "tls_listen = [::1]:110, [::1]:110\n",
	    "%F:5: [smtpd] submission_listen: needs [tls] cert and key for "
	    "STARTTLS: AUTH is refused before TLS except on loopback\n"
	    "%F:9: [pop3d] tls_listen: implicit TLS needs [tls] cert and "
	    "key (or set it empty)\n"
	    "%F:5: [smtpd] submission_listen: *:25 is already in mx_listen\n"
	    "%F:9: [pop3d] tls_listen: [::1]:110 is already in tls_listen");

	/* Loopback-only plaintext listeners are fine without TLS (SPEC:
	 * passwords before TLS are allowed on loopback). */
	t_assert_int(load("[store]\npath = /x\n[smtpd]\n"
	    "submission_listen = 127.0.0.1:2587, [::1]:2587, localhost:2588\n"
	    "submissions_listen =\n[pop3d]\nlisten = 127.0.0.1:1110\n"
	    "tls_listen =\n", NULL, &cfg, &errors), 0);
	cfg_free(cfg);
	free(errors);
	/* Non-loopback POP3 without TLS when the operator allows it. */
	t_assert_int(load("[store]\npath = /x\n[smtpd]\n"
	    "submission_listen =\nsubmissions_listen =\n[pop3d]\n"
	    "listen = 0.0.0.0:110\ntls_listen =\n"
	    "allow_plaintext_auth = yes\n", NULL, &cfg, &errors), 0);
	cfg_free(cfg);
	free(errors);
	t_end();
}

static void
test_too_many_errors(void)
{
	char *conf = xstrdup("[store]\npath = /x\n" NO_TLS_LISTENERS
	    "[smtpd]\n");
	struct cfg *cfg;
	char *errors = NULL, *last;
	size_t lines = 1;

	t_begin("too_many_errors");
	for (int i = 0; i < 200; i++) {
		char *n = xasprintf("%sbad%d = 1\n", conf, i);
		free(conf);
		conf = n;
	}
	t_assert_int(load(conf, NULL, &cfg, &errors), -1);
	for (const char *p = errors; (p = strchr(p, '\n')) != NULL; p++)
		lines++;
	t_assert_int(lines, 51);
	last = strrchr(errors, '\n');
	t_assert(last != NULL &&
	    strstr(last, ": too many errors, stopped reporting") != NULL);
	free(errors);
	free(conf);
	t_end();
}

/* ---- the sample file ---- */

struct sample_keys {
	size_t n;
	char *v[128];		/* "section.key" */
};

static int
sample_handler(void *user, const char *section, const char *name,
    const char *value)
{
	struct sample_keys *sk = user;

	if (sk->n < nitems(sk->v))
		sk->v[sk->n++] = xasprintf("%s.%s", section, name);
	return 1;
}

static void
test_sample(void)
{
	const char *src = getenv("CARTEIRO_SRC");
	struct sample_keys sk = { 0 };
	struct cfg_key_doc d;
	struct cfg *cfg = NULL;
	char *path, *errors = NULL;

	t_begin("sample_conf");
	t_assert(src != NULL);
	if (src == NULL) {
		t_end();
		return;
	}
	path = xasprintf("%s/etc/carteiro.conf", src);
	t_assert_int(cfg_load(path, &cfg, &errors), 0);
	if (errors != NULL)
		fprintf(stderr, "%s\n", errors);
	free(errors);
	if (cfg != NULL) {
		t_assert_str(cfg->store.path, "/var/lib/carteiro/mail.db");
		t_assert_int(cfg->smtpd.mx_listen.n, 2);
		t_assert_int(cfg->smtpd.max_message_size, 26214400);
	}
	cfg_free(cfg);

	/* Every key of the table is set (uncommented) in the sample and has
	 * help text, so the sample documents them all. */
	t_assert_int(ini_parse(path, sample_handler, &sk), 0);
	for (size_t i = 0; cfg_key_doc(i, &d) == 0; i++) {
		char *want = xasprintf("%s.%s", d.section, d.key);
		bool found = false;

		for (size_t j = 0; j < sk.n; j++)
			found = found || strcmp(sk.v[j], want) == 0;
		if (!found)
			fprintf(stderr, "  key %s missing from %s\n", want,
			    path);
		t_assert(found);
		t_assert(d.help != NULL && d.help[0] != '\0');
		t_assert(d.def != NULL);
		free(want);
	}
	for (size_t j = 0; j < sk.n; j++)
		free(sk.v[j]);
	free(path);
	t_end();
}

/* ---- daemon.c ---- */

static void
test_daemon_args(void)
{
	char a0[] = "carteiro-smtpd", a1[] = "-c", a2[] = "/x.conf",
	    a3[] = "-f", a4[] = "-t", a5[] = "-fc/y.conf";
	char *argv1[] = { a0, a1, a2, NULL };
	char *argv2[] = { a0, a3, a4, a1, a2, NULL };
	char *argv3[] = { a0, a5, NULL };
	struct daemon_opts o;

	t_begin("daemon_args");
	t_assert_int(daemon_parse_args(3, argv1, "carteiro-smtpd", &o), 0);
	t_assert_str(o.conf, "/x.conf");
	t_assert_str(o.progname, "carteiro-smtpd");
	t_assert(!o.foreground && !o.test);
	t_assert_int(daemon_parse_args(5, argv2, "carteiro-smtpd", &o), 0);
	t_assert_str(o.conf, "/x.conf");
	t_assert(o.foreground && o.test);
	t_assert_int(daemon_parse_args(2, argv3, "carteiro-pop3d", &o), 0);
	t_assert_str(o.conf, "/y.conf");
	t_assert(o.foreground && !o.test);
	t_end();
}

/* CFG_MODE_TOOL (carteiroctl) skips only the listener-needs-[tls]
 * checks: a config with nothing but [store] path is fine for the tool
 * and refused, with all four reasons, for a daemon. */
static void
test_load_mode(void)
{
	struct cfg *cfg = NULL;
	char *errors = NULL, *path;

	t_begin("load_mode");
	path = write_conf("t.conf", "[store]\npath = x.db\n");
	t_assert_int(cfg_load_mode(path, CFG_MODE_TOOL, &cfg, &errors), 0);
	t_assert(errors == NULL);
	t_assert(cfg != NULL && cfg->tls.cert == NULL);
	cfg_free(cfg);
	cfg = NULL;
	t_assert_int(cfg_load_mode(path, CFG_MODE_DAEMON, &cfg, &errors), -1);
	t_assert(cfg == NULL);
	t_assert(errors != NULL &&
	    strstr(errors, "[smtpd] submission_listen: needs [tls]") != NULL &&
	    strstr(errors, "[smtpd] submissions_listen: implicit TLS") != NULL &&
	    strstr(errors, "[pop3d] listen: needs [tls]") != NULL &&
	    strstr(errors, "[pop3d] tls_listen: implicit TLS") != NULL);
	free(errors);
	errors = NULL;
	/* cfg_load is the daemon mode. */
	t_assert_int(cfg_load(path, &cfg, &errors), -1);
	free(errors);
	errors = NULL;
	free(path);
	/* Every other check still applies to the tool. */
	path = write_conf("t.conf", "[store]\npath = x.db\n[tls]\n"
	    "cert = c.pem\n");
	t_assert_int(cfg_load_mode(path, CFG_MODE_TOOL, &cfg, &errors), -1);
	t_assert(errors != NULL && strstr(errors, "cert and key go together")
	    != NULL);
	free(errors);
	free(path);
	t_end();
}

int
main(void)
{
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_parse_duration();
	test_parse_size();
	test_parse_bool();
	test_parse_hostports();
	test_parse_strlist();
	test_cidr();
	test_defaults();
	test_values();
	test_missing_file();
	test_errors_lines();
	test_bad_values();
	test_validation();
	test_too_many_errors();
	test_sample();
	test_daemon_args();
	test_load_mode();

	{
		char *p;
		static const char *const names[] = { "t.conf", "nul.conf" };
		for (size_t i = 0; i < nitems(names); i++) {
			p = xasprintf("%s/%s", tmpdir, names[i]);
			unlink(p);
			free(p);
		}
		rmdir(tmpdir);
	}
	return t_exit();
}
