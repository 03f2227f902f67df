/*
 * DANE for outbound SMTP (RFC 7672): when the MX answer was authenticated
 * (the resolver's AD bit: a local validating resolver, as Postfix's
 * smtp_dns_support_level = dnssec), the TLSA records of _25._tcp.HOST,
 * also authenticated, make TLS mandatory for that host and, when usable
 * (DANE-TA(2), DANE-EE(3)), require its certificate chain to match them
 * (common/tls_dane.c, GnuTLS's DANE library). A host that fails is
 * skipped like any failing host, so the message is deferred (4xx), never
 * bounced for it. DANE applies before MTA-STS would (RFC 8461 2).
 * Not here: the connection (mta_route.c), the dialogue (mta.c).
 */
#include "smtpd/mta_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/conn.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/util.h"
#include "mailauth/dns.h"
#include "smtpd/tlsrpt.h"

static void mta_dane_mx_cb(enum dns_status, const char *const *, size_t,
    bool, void *);
static void mta_dane_tlsa_cb(enum dns_status, const char *const *, size_t,
    bool, void *);
static void mta_dane_tlsa(struct mta_session *);

void
mta_dane_clear(struct mta_session *s)
{
	dns_rr_free(s->tlsa, s->ntlsa);
	s->tlsa = NULL;
	s->ntlsa = 0;
	s->dane = MTA_DANE_NONE;
}

bool
mta_dane_required(const struct mta_session *s)
{
	return s->dane != MTA_DANE_NONE;
}

void
mta_dane_lookup(struct mta_session *s)
{
	mta_dane_clear(s);
	/* A smarthost is checked against [relay] smarthost_ca; a domain
	 * without MX records has no MX answer to be authenticated. */
	if (s->m->smarthost_host != NULL || s->implicit_mx) {
		mta_route_addr(s);
		return;
	}
	if (s->mx_checked) {
		mta_dane_tlsa(s);
		return;
	}
	/* The MX answer again, from the cache: was it authenticated? */
	s->dreq = dns_lookup_ad(s->m->dns, DNS_T_MX, s->msg->domain,
	    mta_dane_mx_cb, s);
}

static void
mta_dane_mx_cb(enum dns_status st, const char *const *rr, size_t n,
    bool secure, void *arg)
{
	struct mta_session *s = arg;

	s->dreq = NULL;
	s->depth++;
	s->mx_checked = true;
	s->mx_secure = st == DNS_OK && secure;
	mta_dane_tlsa(s);
	if (--s->depth == 0 && s->dead)
		mta_session_free(s);
}

/* RFC 7672 2.2.1: only an authenticated MX answer leads to TLSA. */
static void
mta_dane_tlsa(struct mta_session *s)
{
	char name[300];

	if (!s->mx_secure) {
		mta_route_addr(s);
		return;
	}
	snprintf(name, sizeof(name), "_25._tcp.%s",
	    s->hosts[s->host_idx].host);
	s->dreq = dns_lookup_ad(s->m->dns, DNS_T_TLSA, name,
	    mta_dane_tlsa_cb, s);
}

static void
mta_dane_tlsa_cb(enum dns_status st, const char *const *rr, size_t n,
    bool secure, void *arg)
{
	struct mta_session *s = arg;
	const char *host = s->hosts[s->host_idx].host;
	size_t i, usable = 0;

	s->dreq = NULL;
	s->depth++;
	if (st == DNS_TEMPFAIL) {
		/* RFC 7672 2.2: the host may have TLSA records we cannot
		 * see: not this host now. */
		mta_set_error(s, "451 4.7.5 TLSA lookup for %s failed "
		    "temporarily (DNS: %s)", host, dns_status_str(st));
		log_info("event=relay.dane sid=%s msgid=%s host=%s "
		    "result=tlsa-tempfail tlsrpt=dnssec-invalid", s->sid,
		    s->msg->id, LOG_VALUE(host));
		mta_dane_count(s, "dnssec-invalid");
		mta_next_host(s);
		goto out;
	}
	if (st == DNS_OK && secure) {
		s->tlsa = xcalloc(n, sizeof(*s->tlsa));
		for (i = 0; i < n; i++) {
			s->tlsa[i] = xstrdup(rr[i]);
			if (tls_dane_usable(rr[i]))
				usable++;
		}
		s->ntlsa = n;
		s->dane = usable > 0 ? MTA_DANE_VERIFY : MTA_DANE_TLS_ONLY;
		log_info("event=relay.dane sid=%s msgid=%s host=%s tlsa=%zu "
		    "usable=%zu", s->sid, s->msg->id, LOG_VALUE(host), n,
		    usable);
	} else if (st == DNS_OK)
		/* RFC 7672 2.2: unauthenticated TLSA records are ignored. */
		log_debug("event=relay.dane sid=%s msgid=%s host=%s "
		    "result=insecure-tlsa-ignored", s->sid, s->msg->id,
		    LOG_VALUE(host));
	mta_route_addr(s);
out:
	if (--s->depth == 0 && s->dead)
		mta_session_free(s);
}

void
mta_dane_count(struct mta_session *s, const char *result)
{
	char ip[64];
	const char *peer = NULL;

	if (s->m->tlsrpt == NULL || s->msg == NULL)
		return;
	if (s->addrs != NULL && s->addr_idx < s->naddrs &&
	    s->state != MTA_S_ADDR)
		peer = dns_sockaddr_str(&s->addrs[s->addr_idx], ip,
		    sizeof(ip));
	tlsrpt_add(s->m->tlsrpt, s->msg->domain, "tlsa",
	    (const char *const *)s->tlsa, s->ntlsa,
	    s->hosts[s->host_idx].host, result, s->source, peer);
}

bool
mta_dane_conn_ok(const struct mta_session *s, struct conn *c)
{
	const char *why;

	if (s->dane == MTA_DANE_NONE)
		return true;
	if (!conn_is_tls(c))
		return false;
	return s->dane == MTA_DANE_TLS_ONLY || conn_tls_dane_match(c,
	    (const char *const *)s->tlsa, s->ntlsa,
	    s->hosts[s->host_idx].host, &why);
}

bool
mta_dane_check(struct mta_session *s)
{
	const char *host = s->hosts[s->host_idx].host, *why, *rt;

	if (s->dane == MTA_DANE_TLS_ONLY)
		mta_dane_count(s, NULL);
	if (s->dane != MTA_DANE_VERIFY)
		return true;
	if (conn_tls_dane_match(s->c, (const char *const *)s->tlsa, s->ntlsa,
	    host, &why)) {
		log_info("event=relay.dane sid=%s msgid=%s mx=%s result=match",
		    s->sid, s->msg->id, LOG_VALUE(s->label));
		mta_dane_count(s, NULL);
		return true;
	}
	/* tlsrpt=: the RFC 8460 4.3.2 result type, for reports. */
	rt = strstr(why, "does not name") != NULL ?
	    "certificate-host-mismatch" : "validation-failure";
	log_warn("event=relay.dane sid=%s msgid=%s mx=%s result=mismatch "
	    "tlsrpt=%s reason=%s", s->sid, s->msg->id, LOG_VALUE(s->label),
	    rt, LOG_VALUE(why));
	mta_dane_count(s, rt);
	mta_host_fail(s, "451 4.7.5 %s: DANE TLSA verification failed: %s",
	    s->label, why);
	return false;
}
