/*
 * The configuration's one declarative key table: section, key, type,
 * bounds, default and help line of every setting, and the lookups on it.
 * It does not parse values (config_parse.c) or read files (config.c).
 */
#include "common/config_internal.h"

#include <string.h>

#include "common/util.h"

#define O(f) offsetof(struct cfg, f)

/* Keep in the order of SPEC.md; etc/carteiro.conf is checked against it. */
const struct cfg_key cfg_keys[] = {
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
	  O(store.path), "the SQLite database (required); with backend = "
	  "postgresql, this node's local state: lock, pid and stats files "
	  "beside it" },
	{ "store", "backend", CFG_T_STRING, 0, 0, 0, "sqlite",
	  O(store.backend), "sqlite or postgresql" },
	{ "store", "url", CFG_T_STRING, 0, 0, 0, "", O(store.url),
	  "backend = postgresql: a libpq URI (postgresql://host/dbname) or "
	  "service=NAME; the password comes from a passfile or the service "
	  "file, never from here" },

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
	{ "smtpd", "max_auth_failures", CFG_T_UINT, 0, 0, 100, "3",
	  O(smtpd.max_auth_failures),
	  "failed AUTHs in a session before 421 and close; 0 = no limit" },
	{ "smtpd", "daily_send_limit", CFG_T_UINT, 0, 0, 10000000, "500",
	  O(smtpd.daily_send_limit),
	  "remote recipients per user per 24 h; 0 = no limit" },
	{ "smtpd", "dnsbl", CFG_T_STRLIST, 0, 0, 0, "", O(smtpd.dnsbl),
	  "comma-separated DNSBL zones; empty = off" },
	{ "smtpd", "inbound_checks_exempt", CFG_T_CIDRLIST, 0, 0, 0, "",
	  O(smtpd.inbound_checks_exempt),
	  "comma-separated CIDRs that skip DNSBL/SPF/DKIM/DMARC checks" },
	{ "smtpd", "check_timeout", CFG_T_DURATION, 0, 1, 3600, "20",
	  O(smtpd.check_timeout),
	  "DNS budget per message for SPF, DKIM and DMARC together; past "
	  "it they are temperror and the mail is accepted" },
	{ "smtpd", "greet_pause", CFG_T_DURATION, 0, 0, 60, "0",
	  O(smtpd.greet_pause),
	  "wait this long before the MX greeting; a client that talks first "
	  "is dropped (early-talker check); 0 = greet at once" },
	{ "smtpd", "max_connect_rate_per_ip", CFG_T_UINT, 0, 0, 1000000, "60",
	  O(smtpd.max_connect_rate_per_ip),
	  "new sessions per client IP per minute; 0 = no limit" },
	{ "smtpd", "trusted_networks", CFG_T_CIDRLIST, 0, 0, 0,
	  "127.0.0.0/8, ::1/128", O(smtpd.trusted_networks),
	  "comma-separated CIDRs exempt from max_clients_per_ip, "
	  "max_connect_rate_per_ip and greet_pause; empty = none" },
	{ "smtpd", "min_data_rate", CFG_T_UINT, 0, 0, 1000000000, "1024",
	  O(smtpd.min_data_rate),
	  "bytes/s a client must keep up in DATA and BDAT after the DATA "
	  "timeout's worth of credit; below it 421 4.4.2; 0 = off" },
	{ "smtpd", "max_session_time", CFG_T_DURATION, 0, 0, 7 * CFG_DAY,
	  "1h", O(smtpd.max_session_time),
	  "a session ends with 421 4.4.2 at the next safe point after this "
	  "long; 0 = no limit" },
	{ "smtpd", "auth_cache_ttl", CFG_T_DURATION, 0, 0, 7 * CFG_DAY,
	  "1h", O(smtpd.auth_cache_ttl),
	  "a successful AUTH is remembered this long (keyed hash, memory "
	  "only), so a repeat skips argon2id; 0 = off" },
	{ "smtpd", "milters", CFG_T_STRLIST, 0, 0, 0, "", O(smtpd.milters),
	  "content filters, in order: inet:HOST:PORT or unix:/path, comma-"
	  "separated; empty = none" },
	{ "smtpd", "milter_listeners", CFG_T_STRLIST, 0, 0, 0, "mx",
	  O(smtpd.milter_listeners),
	  "listeners whose mail the milters see: mx, submission, submissions" },
	{ "smtpd", "milter_default_action", CFG_T_STRING, 0, 0, 0, "tempfail",
	  O(smtpd.milter_default_action),
	  "when a milter is down, times out or breaks the protocol: "
	  "tempfail, accept or reject" },
	{ "smtpd", "milter_connect_timeout", CFG_T_DURATION, 0, 1, 3600, "30",
	  O(smtpd.milter_connect_timeout),
	  "seconds to connect to a milter and negotiate" },
	{ "smtpd", "milter_command_timeout", CFG_T_DURATION, 0, 1, 3600, "30",
	  O(smtpd.milter_command_timeout),
	  "seconds a milter may take to answer one command" },
	{ "smtpd", "milter_content_timeout", CFG_T_DURATION, 0, 1, 3600, "300",
	  O(smtpd.milter_content_timeout),
	  "seconds a milter may take over the whole message content" },

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
	{ "relay", "retry_first", CFG_T_DURATION, 0, 1, 30 * CFG_DAY, "5m",
	  O(relay.retry_first), "first retry delay; doubles each time" },
	{ "relay", "retry_max", CFG_T_DURATION, 0, 1, 30 * CFG_DAY, "1h",
	  O(relay.retry_max), "cap on the retry delay" },
	{ "relay", "queue_lifetime", CFG_T_DURATION, 0, 60, 365 * CFG_DAY, "5d",
	  O(relay.queue_lifetime), "then bounce" },
	{ "relay", "delay_warning", CFG_T_DURATION, 0, 0, 365 * CFG_DAY, "4h",
	  O(relay.delay_warning), "warn the sender after this; 0 = off" },
	{ "relay", "connect_timeout", CFG_T_DURATION, 0, 1, 3600, "5m",
	  O(relay.connect_timeout),
	  "deadline for a remote server's whole greeting (TCP connect: at most "
	  "30 s of it)" },
	{ "relay", "command_timeout", CFG_T_DURATION, 0, 1, 3600, "5m",
	  O(relay.command_timeout),
	  "deadline for each reply (EHLO, MAIL, RCPT...; DATA gets 2/5)" },
	{ "relay", "data_timeout", CFG_T_DURATION, 0, 1, 3600, "3m",
	  O(relay.data_timeout),
	  "deadline for each block of the body (the final dot gets 10/3)" },
	{ "relay", "max_connections", CFG_T_UINT, 0, 1, 100000, "100",
	  O(relay.max_connections), "outbound SMTP connections, in total" },
	{ "relay", "max_connections_per_domain", CFG_T_UINT, 0, 1, 100000,
	  "10", O(relay.max_connections_per_domain),
	  "outbound SMTP connections per destination domain (lowered by "
	  "itself while the domain throttles us)" },
	{ "relay", "max_messages_per_connection", CFG_T_UINT, 0, 1, 100000,
	  "100", O(relay.max_messages_per_connection),
	  "messages sent over one connection (RSET between); 1 = no reuse" },
	{ "relay", "suppress_days", CFG_T_UINT, 0, 0, 36500, "30",
	  O(relay.suppress_days),
	  "refuse a recipient this long after it hard-bounced; 0 = off" },
	{ "relay", "source_ip", CFG_T_STRLIST, 0, 0, 0, "",
	  O(relay.source_ip),
	  "local address(es) to send from, at most one IPv4 and one IPv6; "
	  "empty = the system's choice" },
	{ "relay", "mta_sts", CFG_T_BOOL, 0, 0, 0, "yes", O(relay.mta_sts),
	  "honour the MTA-STS policies (RFC 8461) of destination domains" },
	{ "relay", "monitor_dnsbl", CFG_T_STRLIST, 0, 0, 0, "",
	  O(relay.monitor_dnsbl),
	  "DNSBL zones our outbound addresses are looked up in (daily, the "
	  "postmaster mailed once per listing; carteiroctl check); empty = "
	  "the [smtpd] dnsbl zones" },
	{ "relay", "tls_report_interval", CFG_T_DURATION, 0, 0, 7 * CFG_DAY,
	  "1d", O(relay.tls_report_interval),
	  "TLS-RPT (RFC 8460): report outbound TLS results this often; "
	  "0 = off" },

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
	{ "pop3d", "trusted_networks", CFG_T_CIDRLIST, 0, 0, 0,
	  "127.0.0.0/8, ::1/128", O(pop3d.trusted_networks),
	  "comma-separated CIDRs exempt from max_clients_per_ip; "
	  "empty = none" },
	{ "pop3d", "max_auth_failures", CFG_T_UINT, 0, 0, 100, "3",
	  O(pop3d.max_auth_failures),
	  "failed logins in a session before -ERR and close; 0 = no limit" },
	{ "pop3d", "max_session_time", CFG_T_DURATION, 0, 0, 7 * CFG_DAY,
	  "4h", O(pop3d.max_session_time),
	  "a session ends with -ERR [SYS/TEMP] at the next safe point after "
	  "this long (nothing is deleted without QUIT); 0 = no limit" },
	{ "pop3d", "expire", CFG_T_EXPIRE, 0, 0, 0, "never",
	  O(pop3d.expire), "delete a message this many days after its first "
	  "RETR (RFC 2449 EXPIRE); 0 = at QUIT; never = keep" },
	{ "pop3d", "login_delay", CFG_T_DURATION, 0, 0, CFG_DAY, "0",
	  O(pop3d.login_delay), "minimum time between two logins of a user "
	  "(RFC 2449 LOGIN-DELAY); 0 = off" },
	{ "pop3d", "auth_cache_ttl", CFG_T_DURATION, 0, 0, 7 * CFG_DAY,
	  "1h", O(pop3d.auth_cache_ttl),
	  "a successful login is remembered this long (keyed hash, memory "
	  "only), so a client polling with the same password skips "
	  "argon2id; 0 = off" },

	{ "http", "listen", CFG_T_HOSTPORTS, 0, 0, 0, "0.0.0.0:80",
	  O(http.listen), "carteiro-webd plain HTTP; empty = off" },
	{ "http", "tls_listen", CFG_T_HOSTPORTS, 0, 0, 0, "0.0.0.0:443",
	  O(http.tls_listen),
	  "carteiro-webd HTTPS with the [tls] certificate; empty = off" },
	{ "http", "metrics_allow", CFG_T_CIDRLIST, 0, 0, 0,
	  "127.0.0.0/8, ::1/128", O(http.metrics_allow),
	  "comma-separated CIDRs that may read /metrics; empty = nobody" },
	{ "http", "mta_sts_mode", CFG_T_STRING, 0, 0, 0, "testing",
	  O(http.mta_sts_mode),
	  "MTA-STS policy mode: none, testing or enforce (RFC 8461)" },
	{ "http", "mta_sts_max_age", CFG_T_DURATION, 0, 0, 31557600, "7d",
	  O(http.mta_sts_max_age),
	  "how long senders may cache the MTA-STS policy (at most 1 year)" },
	{ "http", "mta_sts_mx", CFG_T_STRLIST, 0, 0, 0, "",
	  O(http.mta_sts_mx),
	  "MX names for the policy besides [server] hostname (*.x allowed)" },
	{ "http", "autoconfig", CFG_T_BOOL, 0, 0, 0, "yes", O(http.autoconfig),
	  "serve Thunderbird autoconfig and Outlook Autodiscover" },
	{ "http", "mta_sts", CFG_T_BOOL, 0, 0, 0, "yes", O(http.mta_sts),
	  "serve /.well-known/mta-sts.txt on mta-sts.DOMAIN" },

	{ "acme", "enable", CFG_T_BOOL, 0, 0, 0, "no", O(acme.enable),
	  "carteiroctl acme renew obtains the [tls] certificate by ACME" },
	{ "acme", "directory", CFG_T_STRING, 0, 0, 0,
	  "https://acme-v02.api.letsencrypt.org/directory",
	  O(acme.directory), "the ACME server's directory URL" },
	{ "acme", "email", CFG_T_STRING, 0, 0, 0, "", O(acme.email),
	  "contact for the ACME account (expiry warnings); empty = none" },
	{ "acme", "ca_file", CFG_T_PATH, 0, 0, 0, "", O(acme.ca_file),
	  "CA file for the ACME server's HTTPS; empty = system trust" },
	{ "acme", "renew_before", CFG_T_DURATION, 0, 86400, 7776000, "30d",
	  O(acme.renew_before), "renew when the certificate expires sooner" },
};
const size_t cfg_nkeys = nitems(cfg_keys);

#undef O

const struct cfg_key *
cfg_key_find(const char *section, const char *key)
{
	for (size_t i = 0; i < cfg_nkeys; i++) {
		if (strcmp(cfg_keys[i].section, section) == 0 &&
		    strcmp(cfg_keys[i].key, key) == 0)
			return &cfg_keys[i];
	}
	return NULL;
}

bool
cfg_section_known(const char *section, size_t len)
{
	for (size_t i = 0; i < cfg_nkeys; i++) {
		if (strlen(cfg_keys[i].section) == len &&
		    memcmp(cfg_keys[i].section, section, len) == 0)
			return true;
	}
	return false;
}

/* enum cfg_type in words, for the manual. */
static const char *const cfg_type_names[CFG_T_COUNT] = {
	[CFG_T_STRING] = "string",
	[CFG_T_PATH] = "path",
	[CFG_T_HOSTPORT] = "host:port",
	[CFG_T_BOOL] = "boolean",
	[CFG_T_DURATION] = "duration",
	[CFG_T_SIZE] = "size",
	[CFG_T_UINT] = "number",
	[CFG_T_HOSTPORTS] = "listen list",
	[CFG_T_STRLIST] = "list",
	[CFG_T_CIDRLIST] = "CIDR list",
	[CFG_T_LOGLEVEL] = "log level",
	[CFG_T_EXPIRE] = "expire",
};

int
cfg_key_doc(size_t i, struct cfg_key_doc *r)
{
	if (i >= cfg_nkeys)
		return -1;
	r->section = cfg_keys[i].section;
	r->key = cfg_keys[i].key;
	r->def = cfg_keys[i].def;
	r->help = cfg_keys[i].help;
	r->type = cfg_type_names[cfg_keys[i].type] != NULL ?
	    cfg_type_names[cfg_keys[i].type] : "value";
	r->required = (cfg_keys[i].flags & CFG_F_REQUIRED) != 0;
	r->has_range = cfg_keys[i].type == CFG_T_UINT ||
	    cfg_keys[i].type == CFG_T_DURATION || cfg_keys[i].type == CFG_T_SIZE;
	r->min = cfg_keys[i].min;
	r->max = cfg_keys[i].max;
	return 0;
}
