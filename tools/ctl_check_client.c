/*
 * carteiroctl check DOMAIN, the client side (issue 15): what mail clients
 * and sending servers find besides MX, SPF, DKIM and DMARC (ctl_check.c):
 * the Thunderbird autoconfig document, fetched over HTTPS from
 * autoconfig.DOMAIN as the name resolves in [relay] resolver; the RFC 6186
 * SRV records of the submission and POP3 listeners; the MTA-STS TXT
 * record and policy (RFC 8461); the TLS-RPT record (RFC 8460). One line
 * each, OK / WARN / FAIL as in ctl_check.c, and the record to publish.
 * What is optional for mail to flow (SRV, MTA-STS, TLS-RPT) is a WARN when
 * missing and a FAIL when it says something wrong; autoconfig that
 * carteiro-webd serves but a client cannot fetch is a FAIL.
 */
#include "tools/ctl.h"
#include "acme/acme.h"
#include "common/config.h"
#include "common/util.h"
#include "mailauth/dns.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct ctl_client {
	const struct cfg *cfg;
	struct dns *dns;
	const char *domain;
	const char *hostname;
	struct acme_http *http;
	unsigned https_port;	/* where clients reach webd's HTTPS */
	unsigned *fails, *warns;
};

struct ctl_client_srv {
	const char *service;	/* RFC 6186 / RFC 8314 label */
	const struct cfg_hostports *hp;
	const char *xml;	/* autoconfig: element type and socket */
	const char *socket;
};

static void ctl_client_line(struct ctl_client *, const char *, const char *,
    const char *, ...) __attribute__((format(printf, 4, 5)));
static void ctl_client_publish(const char *, ...)
    __attribute__((format(printf, 1, 2)));
static unsigned ctl_client_port(const struct cfg_hostports *);
static int ctl_client_fetch(struct ctl_client *, const char *,
    const char *, const char *, struct acme_resp *);
static void ctl_client_autoconfig(struct ctl_client *,
    const struct ctl_client_srv *, size_t);
static void ctl_client_srv(struct ctl_client *, const struct ctl_client_srv *);
static void ctl_client_mtasts(struct ctl_client *);
static void ctl_client_tlsrpt(struct ctl_client *);

static void
ctl_client_line(struct ctl_client *c, const char *level, const char *what,
    const char *fmt, ...)
{
	va_list ap;

	if (strcmp(level, "FAIL") == 0)
		(*c->fails)++;
	else if (strcmp(level, "WARN") == 0)
		(*c->warns)++;
	printf("%-4s %-7s ", level, what);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void
ctl_client_publish(const char *fmt, ...)
{
	va_list ap;

	fputs("     publish: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* The port of the first address of hp, 0 when the listener is off. */
static unsigned
ctl_client_port(const struct cfg_hostports *hp)
{
	return hp->n > 0 ? (unsigned)strtoul(hp->v[0].port, NULL, 10) : 0;
}

/*
 * GET https://host<path> with host resolved through the resolver (libcurl
 * is told the address). 0 and r filled (any status); -1 after printing a
 * FAIL line under what.
 */
static int
ctl_client_fetch(struct ctl_client *c, const char *what, const char *host,
    const char *path, struct acme_resp *r)
{
	char **a = NULL, *url;
	size_t n = 0;
	enum dns_status st = dns_lookup_sync(c->dns, DNS_T_A, host, &a, &n);
	const char *e;
	int rc;

	if (st != DNS_OK)
		st = dns_lookup_sync(c->dns, DNS_T_AAAA, host, &a, &n);
	if (st != DNS_OK) {
		ctl_client_line(c, "FAIL", what, "%s has no address%s", host,
		    st == DNS_TEMPFAIL ? " (DNS error)" : "");
		ctl_client_publish("%s. IN CNAME %s.", host, c->hostname);
		return -1;
	}
	acme_http_resolve(c->http, host, c->https_port, a[0]);
	url = c->https_port == 443 ? xasprintf("https://%s%s", host, path) :
	    xasprintf("https://%s:%u%s", host, c->https_port, path);
	rc = acme_http_do(c->http, url, NULL, false, r, &e);
	free(url);
	if (rc < 0)
		ctl_client_line(c, "FAIL", what, "%s (%s): %s", host, a[0], e);
	dns_rr_free(a, n);
	return rc;
}

static void
ctl_client_autoconfig(struct ctl_client *c, const struct ctl_client_srv *sv,
    size_t nsv)
{
	static const char path[] = "/mail/config-v1.1.xml";
	struct acme_resp r;
	char *host = xasprintf("autoconfig.%s", c->domain), *want;
	bool ok;

	if (!c->cfg->http.autoconfig || c->https_port == 0) {
		free(host);
		return;		/* webd does not serve it: nothing to check */
	}
	if (ctl_client_fetch(c, "autocfg", host, path, &r) < 0) {
		free(host);
		return;
	}
	/* Correct: for this domain, and naming each listener that is on
	 * with its host, port and TLS mode. */
	want = xasprintf("<domain>%s</domain>", c->domain);
	ok = r.status == 200 && strstr(r.body, want) != NULL;
	free(want);
	for (size_t i = 0; ok && i < nsv; i++) {
		unsigned port = ctl_client_port(sv[i].hp);

		if (port == 0)
			continue;
		want = xasprintf("<%s\">\n      <hostname>%s</hostname>\n"
		    "      <port>%u</port>\n      <socketType>%s</socketType>",
		    sv[i].xml, c->hostname, port, sv[i].socket);
		ok = strstr(r.body, want) != NULL;
		if (!ok)
			ctl_client_line(c, "FAIL", "autocfg", "https://%s%s "
			    "does not list %s on %s:%u (%s)", host, path,
			    sv[i].service, c->hostname, port, sv[i].socket);
		free(want);
		if (!ok)
			break;
	}
	if (ok)
		ctl_client_line(c, "OK", "autocfg", "https://%s%s lists the "
		    "servers", host, path);
	else if (r.status != 200)
		ctl_client_line(c, "FAIL", "autocfg", "https://%s%s: HTTP %ld",
		    host, path, r.status);
	acme_resp_clear(&r);
	free(host);
}

/* RFC 6186 3: _service._tcp.DOMAIN SRV 0 1 PORT HOSTNAME, or "0 0 0 ."
 * for a service that is not offered. */
static void
ctl_client_srv(struct ctl_client *c, const struct ctl_client_srv *sv)
{
	char *name = xasprintf("%s._tcp.%s", sv->service, c->domain);
	unsigned port = ctl_client_port(sv->hp);
	char **rr;
	size_t n;
	enum dns_status st = dns_lookup_sync(c->dns, DNS_T_SRV, name, &rr, &n);
	bool match = false, dot = false;

	for (size_t i = 0; st == DNS_OK && i < n; i++) {
		unsigned prio, weight, p;
		char target[256];

		if (sscanf(rr[i], "%u %u %u %255s", &prio, &weight, &p,
		    target) != 4)
			continue;
		if (strcmp(target, ".") == 0)
			dot = true;
		else {
			size_t l = strlen(target);

			if (l > 0 && target[l - 1] == '.')
				target[l - 1] = '\0';
			if (p == port && strcasecmp(target, c->hostname) == 0)
				match = true;
		}
	}
	if (port == 0 && (st != DNS_OK || (dot && n == 1)))
		ctl_client_line(c, "OK", "srv", "%s: not offered%s", name,
		    st == DNS_OK ? " (\".\")" : "");
	else if (port == 0) {
		ctl_client_line(c, "FAIL", "srv", "%s points at a service "
		    "that is off here", name);
		ctl_client_publish("%s. IN SRV 0 0 0 .", name);
	} else if (match)
		ctl_client_line(c, "OK", "srv", "%s points at %s:%u", name,
		    c->hostname, port);
	else {
		ctl_client_line(c, st == DNS_OK ? "FAIL" : "WARN", "srv",
		    "%s %s", name, st == DNS_OK ? "does not point at this "
		    "server" : st == DNS_TEMPFAIL ? "lookup failed (DNS "
		    "error)" : "has no SRV record (RFC 6186)");
		ctl_client_publish("%s. IN SRV 0 1 %u %s.", name, port,
		    c->hostname);
	}
	if (st == DNS_OK)
		dns_rr_free(rr, n);
	free(name);
}

/* RFC 8461 3.1 the TXT record, 3.2 the policy. */
static void
ctl_client_mtasts(struct ctl_client *c)
{
	static const char path[] = "/.well-known/mta-sts.txt";
	char *name = xasprintf("_mta-sts.%s", c->domain), **txt, *host, *mx;
	const char *found = NULL;
	struct acme_resp r;
	size_t n;
	enum dns_status st = dns_lookup_sync(c->dns, DNS_T_TXT, name, &txt, &n);
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;

	for (size_t i = 0; st == DNS_OK && i < n; i++)
		if (strncmp(txt[i], "v=STSv1;", 8) == 0 &&
		    strstr(txt[i], "id=") != NULL)
			found = txt[i];
	if (found == NULL) {
		gmtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", &tm);
		ctl_client_line(c, "WARN", "mta-sts", "%s has no MTA-STS "
		    "record (senders may skip TLS to %s)", name, c->domain);
		ctl_client_publish("%s. IN TXT \"v=STSv1; id=%s\"", name,
		    stamp);
	} else
		ctl_client_line(c, "OK", "mta-sts", "%s: %s", name, found);
	if (st == DNS_OK)
		dns_rr_free(txt, n);
	free(name);
	if (!c->cfg->http.mta_sts || c->https_port == 0)
		return;
	/* The policy: only a problem when the record announces it, since
	 * senders then hold deliveries to it. */
	host = xasprintf("mta-sts.%s", c->domain);
	if (ctl_client_fetch(c, "mta-sts", host, path, &r) < 0) {
		free(host);
		return;
	}
	mx = xasprintf("\nmx: %s\r\n", c->hostname);
	if (r.status != 200 || strncmp(r.body, "version: STSv1\r\n", 16) != 0)
		ctl_client_line(c, found ? "FAIL" : "WARN", "mta-sts",
		    "https://%s%s: HTTP %ld, not an STSv1 policy", host, path,
		    r.status);
	else if (strstr(r.body, mx) == NULL)
		ctl_client_line(c, "FAIL", "mta-sts", "https://%s%s does not "
		    "list mx: %s", host, path, c->hostname);
	else
		ctl_client_line(c, strstr(r.body, "\nmode: none\r\n") ? "WARN" :
		    "OK", "mta-sts", "https://%s%s: %s", host, path,
		    strstr(r.body, "\nmode: enforce\r\n") ? "mode enforce" :
		    strstr(r.body, "\nmode: testing\r\n") ? "mode testing" :
		    "mode none");
	free(mx);
	acme_resp_clear(&r);
	free(host);
}

/* RFC 8460 3: _smtp._tls.DOMAIN TXT "v=TLSRPTv1; rua=...". */
static void
ctl_client_tlsrpt(struct ctl_client *c)
{
	char *name = xasprintf("_smtp._tls.%s", c->domain), **txt;
	const char *found = NULL;
	size_t n;
	enum dns_status st = dns_lookup_sync(c->dns, DNS_T_TXT, name, &txt, &n);

	for (size_t i = 0; st == DNS_OK && i < n; i++)
		if (strncmp(txt[i], "v=TLSRPTv1", 10) == 0 &&
		    strstr(txt[i], "rua=") != NULL)
			found = txt[i];
	if (found != NULL)
		ctl_client_line(c, "OK", "tls-rpt", "%s: %s", name, found);
	else {
		ctl_client_line(c, "WARN", "tls-rpt", "%s has no TLS-RPT "
		    "record (no reports of TLS failures to %s)", name,
		    c->domain);
		ctl_client_publish("%s. IN TXT \"v=TLSRPTv1; "
		    "rua=mailto:postmaster@%s\"", name, c->domain);
	}
	if (st == DNS_OK)
		dns_rr_free(txt, n);
	free(name);
}

void
ctl_check_client(const struct ctl *ctl, struct dns *dns, const char *domain,
    unsigned *fails, unsigned *warns)
{
	const struct cfg *cfg = ctl->cfg;
	const struct ctl_client_srv sv[] = {
		{ "_submissions", &cfg->smtpd.submissions_listen,
		  "outgoingServer type=\"smtp", "SSL" },
		{ "_submission", &cfg->smtpd.submission_listen,
		  "outgoingServer type=\"smtp", "STARTTLS" },
		{ "_pop3s", &cfg->pop3d.tls_listen,
		  "incomingServer type=\"pop3", "SSL" },
		{ "_pop3", &cfg->pop3d.listen,
		  "incomingServer type=\"pop3", "STARTTLS" },
	};
	struct ctl_client c = {
		.cfg = cfg, .dns = dns, .domain = domain,
		.hostname = cfg->server.hostname,
		.https_port = ctl_client_port(&cfg->http.tls_listen),
		.fails = fails, .warns = warns,
	};

	/* Tests run webd with a throwaway CA; nothing else sets this. */
	c.http = acme_http_new(getenv("CARTEIRO_TEST_CA_FILE"));
	if (c.http == NULL) {
		ctl_client_line(&c, "FAIL", "autocfg", "cannot start the "
		    "HTTPS client");
		return;
	}
	ctl_client_autoconfig(&c, sv, nitems(sv));
	for (size_t i = 0; i < nitems(sv); i++)
		ctl_client_srv(&c, &sv[i]);
	ctl_client_mtasts(&c);
	ctl_client_tlsrpt(&c);
	acme_http_free(c.http);
}
