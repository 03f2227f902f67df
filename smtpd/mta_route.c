/*
 * Where a relay SMTP client session connects: MX hosts (or the smarthost),
 * their addresses, and the fallback: each connection-level failure (refused,
 * timeout, 421, 4xx greeting or to EHLO/MAIL, TLS trouble) moves on to the
 * next address and host. Not here: the dialogue (mta.c), results and
 * lifetime (mta_session.c).
 */
#include "smtpd/mta_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/conn.h"
#include "common/log.h"
#include "common/util.h"
#include "mailauth/dns.h"
#include "smtpd/mta_sts.h"
#include "smtpd/tlsrpt.h"

static void mta_route_sts_cb(struct mta_sts_policy *, void *);
static void mta_route_mx(struct mta_session *);
static bool mta_route_sts_host(struct mta_session *, const char *);
static void mta_mx_cb(enum dns_status, const struct dns_mx *, size_t, void *);
static void mta_addr_cb(enum dns_status, const struct sockaddr_storage *,
    size_t, void *);
static void mta_connect(struct mta_session *);

/* ---- hosts and addresses ---- */

void
mta_route_start(struct mta_session *s)
{
	struct mta *m = s->m;

	s->all_nx = true;
	if (m->smarthost_host != NULL) {
		s->hosts = xcalloc(1, sizeof(*s->hosts));
		s->hosts[0].host = xstrdup(m->smarthost_host);
		s->nhosts = 1;
		s->host_idx = (size_t)-1;
		mta_next_host(s);	/* async: dns_addr never calls back */
		return;
	}
	mta_enter(s, MTA_S_MX);
	if (m->sts != NULL) {
		/* The domain's MTA-STS policy first (RFC 8461 5). */
		s->sts_req = mta_sts_get(m->sts, s->msg->domain,
		    mta_route_sts_cb, s);
		return;
	}
	mta_route_mx(s);
}

static void
mta_route_sts_cb(struct mta_sts_policy *p, void *arg)
{
	struct mta_session *s = arg;

	s->sts_req = NULL;
	s->sts = p;
	if (p != NULL)
		log_debug("event=relay.mta_sts sid=%s msgid=%s domain=%s "
		    "id=%s mode=%s", s->sid, s->msg->id,
		    LOG_VALUE(s->msg->domain), p->id,
		    mta_sts_mode_str(p->mode));
	mta_route_mx(s);	/* async: dns_mx never calls back */
}

static void
mta_route_mx(struct mta_session *s)
{
	s->dreq = dns_mx(s->m->dns, s->msg->domain, mta_mx_cb, s);
}

/* ---- MTA-STS (RFC 8461 4) ---- */

/* RFC 8461 2: where DANE applies to the host (mta_dane.c has found
 * usable, authenticated TLSA records) it takes precedence over MTA-STS. */
static bool
mta_route_sts_on(const struct mta_session *s)
{
	return s->sts != NULL && s->sts->mode != MTA_STS_NONE &&
	    !mta_dane_required(s);
}

/* Policy lines reported (version, mode, max_age, and the mx lines). */
#define MTA_STS_REPORT_LINES	(3 + MTA_STS_MX_MAX)

/*
 * Count a session under the policy for TLS-RPT (RFC 8460 4.3): result NULL
 * for a success, else a result type. The policy strings are the policy
 * file's lines as fetched.
 */
static void
mta_route_sts_count(struct mta_session *s, const char *host,
    const char *result)
{
	char ip[64], *text, *line, *save = NULL;
	const char *peer = NULL, *lines[MTA_STS_REPORT_LINES];
	size_t n = 0;

	if (s->m->tlsrpt == NULL || s->msg == NULL)
		return;
	if (s->addrs != NULL && s->addr_idx < s->naddrs &&
	    s->state != MTA_S_ADDR)
		peer = dns_sockaddr_str(&s->addrs[s->addr_idx], ip,
		    sizeof(ip));
	text = xstrdup(s->sts->text != NULL ? s->sts->text : "");
	for (line = strtok_r(text, "\r\n", &save); line != NULL &&
	    n < nitems(lines); line = strtok_r(NULL, "\r\n", &save))
		lines[n++] = line;
	tlsrpt_add(s->m->tlsrpt, s->msg->domain, "sts", lines, n, host,
	    result, s->source, peer);
	free(text);
}

/* A policy failure: enforce defers (false), testing logs (true). */
static bool
mta_route_sts_fail(struct mta_session *s, const char *host, const char *why,
    const char *result)
{
	bool enforce = s->sts->mode == MTA_STS_ENFORCE;

	mta_route_sts_count(s, host, result);

	log_info("event=relay.mta_sts sid=%s msgid=%s domain=%s host=%s "
	    "id=%s mode=%s result=fail reason=\"%s\"%s", s->sid, s->msg->id,
	    LOG_VALUE(s->msg->domain), LOG_VALUE(host), s->sts->id,
	    mta_sts_mode_str(s->sts->mode), why,
	    enforce ? "" : " action=deliver");
	return !enforce;
}

/* May we try MX host at all? */
static bool
mta_route_sts_host(struct mta_session *s, const char *host)
{
	if (!mta_route_sts_on(s) || mta_sts_mx_match(s->sts, host))
		return true;
	if (mta_route_sts_fail(s, host, "MX host not in policy",
	    "validation-failure"))
		return true;
	s->all_nx = false;	/* never "no such domain" for this */
	mta_set_error(s, "451 4.7.5 MX host %s not allowed by the MTA-STS "
	    "policy of %s (RFC 8461)", host, s->msg->domain);
	return false;
}

bool
mta_route_sts_tls(struct mta_session *s)
{
	const char *host = s->hosts[s->host_idx].host;

	if (!mta_route_sts_on(s))
		return true;
	if (!s->tls_on) {
		if (mta_route_sts_fail(s, host, "no STARTTLS",
		    "starttls-not-supported"))
			return true;
		mta_host_fail(s, "451 4.7.5 %s: no STARTTLS, required by the "
		    "MTA-STS policy of %s", s->label, s->msg->domain);
		return false;
	}
	if (!conn_tls_verified(s->c)) {
		if (mta_route_sts_fail(s, host, "certificate not valid",
		    "validation-failure"))
			return true;
		mta_host_fail(s, "451 4.7.5 %s: certificate not valid for "
		    "%s, required by the MTA-STS policy of %s", s->label, host,
		    s->msg->domain);
		return false;
	}
	mta_route_sts_count(s, host, NULL);
	log_debug("event=relay.mta_sts sid=%s msgid=%s domain=%s host=%s "
	    "mode=%s result=ok", s->sid, s->msg->id,
	    LOG_VALUE(s->msg->domain), LOG_VALUE(host),
	    mta_sts_mode_str(s->sts->mode));
	return true;
}

bool
mta_route_sts_reuse(const struct mta_session *s, struct conn *c, bool tls_on)
{
	if (s->sts == NULL || s->sts->mode != MTA_STS_ENFORCE)
		return true;
	return tls_on && conn_tls_verified(c);
}

static void
mta_mx_cb(enum dns_status st, const struct dns_mx *mx, size_t n, void *arg)
{
	struct mta_session *s = arg;
	const char *dom = s->msg->domain;
	size_t i;
	char buf[600];

	s->dreq = NULL;
	s->depth++;
	switch (st) {
	case DNS_OK:
		s->hosts = xcalloc(n, sizeof(*s->hosts));
		for (i = 0; i < n; i++) {
			s->hosts[i].host = xstrdup(mx[i].host);
			s->hosts[i].pref = mx[i].pref;
		}
		s->nhosts = n;
		break;
	case DNS_NODATA:
		/* RFC 5321 5.1: no MX, the domain itself is the host. */
		s->hosts = xcalloc(1, sizeof(*s->hosts));
		s->hosts[0].host = xstrdup(dom);
		s->nhosts = 1;
		s->implicit_mx = true;
		break;
	case DNS_NULLMX:
		snprintf(buf, sizeof(buf), "556 5.1.10 domain %s does not "
		    "accept mail (null MX, RFC 7505)", dom);
		mta_fail_all(s, MTA_PERM, buf, false);
		mta_finish(s);
		goto out;
	case DNS_NXDOMAIN:
		snprintf(buf, sizeof(buf), "550 5.1.2 domain %s does not "
		    "exist (DNS: NXDOMAIN)", dom);
		mta_fail_all(s, MTA_PERM, buf, false);
		mta_finish(s);
		goto out;
	default:
		mta_set_error(s, "451 4.4.3 MX lookup for %s failed "
		    "temporarily (DNS: %s)", dom, dns_status_str(st));
		mta_finish(s);
		goto out;
	}
	s->host_idx = (size_t)-1;
	mta_next_host(s);
out:
	if (--s->depth == 0 && s->dead)
		mta_session_free(s);
}

void
mta_next_host(struct mta_session *s)
{
	char buf[600];

	while (++s->host_idx < s->nhosts &&
	    !mta_route_sts_host(s, s->hosts[s->host_idx].host))
		;
	if (s->host_idx >= s->nhosts) {
		if (s->implicit_mx && s->all_nx) {
			snprintf(buf, sizeof(buf), "550 5.1.2 domain %s has "
			    "no MX and no address record", s->msg->domain);
			mta_fail_all(s, MTA_PERM, buf, false);
		}
		mta_finish(s);
		return;
	}
	mta_enter(s, MTA_S_ADDR);
	mta_dane_lookup(s);
}

void
mta_route_addr(struct mta_session *s)
{
	unsigned port;

	/* Still MTA_S_ADDR (mta_next_host). */
	port = s->m->smarthost_host != NULL ? s->m->smarthost_port :
	    s->m->port;
	s->dreq = dns_addr(s->m->dns, s->hosts[s->host_idx].host, port,
	    mta_addr_cb, s);
}

static void
mta_addr_cb(enum dns_status st, const struct sockaddr_storage *addrs,
    size_t n, void *arg)
{
	struct mta_session *s = arg;
	const char *host = s->hosts[s->host_idx].host;

	s->dreq = NULL;
	s->depth++;
	if (st != DNS_OK || n == 0) {
		if (st == DNS_TEMPFAIL)
			s->all_nx = false;
		mta_set_error(s, "451 4.4.3 cannot resolve host %s (DNS: %s)",
		    host, dns_status_str(st));
		log_info("event=relay.host sid=%s msgid=%s host=%s "
		    "result=dns-%s", s->sid, s->msg->id, LOG_VALUE(host),
		    dns_status_str(st));
		mta_next_host(s);
		goto out;
	}
	s->all_nx = false;
	free(s->addrs);
	s->addrs = xcalloc(n, sizeof(*s->addrs));
	memcpy(s->addrs, addrs, n * sizeof(*addrs));
	s->naddrs = n;
	s->addr_idx = 0;
	s->tls_failed_here = false;
	mta_connect(s);
out:
	if (--s->depth == 0 && s->dead)
		mta_session_free(s);
}

static void
mta_connect(struct mta_session *s)
{
	char ip[64];
	struct sockaddr_storage *ss, bind_ss;
	const char *src;

	if (s->addr_idx >= s->naddrs) {
		mta_next_host(s);
		return;
	}
	ss = &s->addrs[s->addr_idx];
	snprintf(s->label, sizeof(s->label), "%s[%s]",
	    s->hosts[s->host_idx].host, dns_sockaddr_str(ss, ip, sizeof(ip)));
	s->code = 0;
	s->replylen = 0;
	if (mta_pool_take(s))
		return;
	mta_enter(s, MTA_S_CONNECT);
	s->ext = 0;
	s->ext_size = 0;
	s->tls_on = false;
	s->authed = false;
	s->reused = false;
	s->conn_msgs = 0;
	s->conn_born_ms = util_now_ms();
	free(s->source);
	s->source = NULL;
	src = mta_source_for(s, ss->ss_family);
	if (src != NULL && dns_parse_ip(src, 0, &bind_ss, NULL) == 0) {
		s->source = xstrdup(src);
		s->c = conn_connect_from(s->m->base, (struct sockaddr *)ss,
		    dns_sockaddr_len(ss), (struct sockaddr *)&bind_ss,
		    dns_sockaddr_len(&bind_ss), s->m->connect_timeout_ms,
		    mta_conn_cb, s);
	} else
		s->c = conn_connect(s->m->base, (struct sockaddr *)ss,
		    dns_sockaddr_len(ss), s->m->connect_timeout_ms,
		    mta_conn_cb, s);
	if (s->c == NULL) {
		mta_set_error(s, "451 4.4.1 cannot connect to %s", s->label);
		s->addr_idx++;
		mta_connect(s);
	}
}

/* Drop the connection to the current peer at once: no QUIT exchange
 * with a peer that just failed us. */
void
mta_close_conn(struct mta_session *s)
{
	if (s->c == NULL)
		return;
	conn_free(s->c);
	s->c = NULL;
}

/*
 * This peer cannot take the message now: remember why and move on to the
 * next address / host. If the final dot was already sent the remote may
 * have the message: don't offer it to another host in this attempt.
 */
void
mta_host_fail(struct mta_session *s, const char *fmt, ...)
{
	va_list ap;
	char *why, esc[LOG_ESCAPE_MAX];

	va_start(ap, fmt);
	if (vasprintf(&why, fmt, ap) == -1)
		abort();
	va_end(ap);
	/* why may carry the remote's text: escaped. */
	log_info("event=relay.host sid=%s msgid=%s mx=%s state=%s "
	    "result=fail reason=%s", s->sid, s->msg->id,
	    LOG_VALUE(s->label),
	    mta_state_names[s->state], log_escape(esc, sizeof(esc), why,
	    strlen(why)));
	if (s->state == MTA_S_DOT || s->state == MTA_S_BODY) {
		mta_set_error(s, "451 4.4.2 %s: %s", s->label, why);
		free(why);
		mta_close_conn(s);
		mta_finish(s);
		return;
	}
	if (why[0] >= '2' && why[0] <= '5')
		mta_set_error(s, "%s (%s)", why, s->label);
	else
		mta_set_error(s, "451 4.4.1 %s: %s", s->label, why);
	free(why);
	mta_close_conn(s);
	if (s->state == MTA_S_RSET) {
		/* A kept connection that went stale: the same peer on a
		 * new one (the pool has no other, or gives the next). */
		s->reused = false;
		mta_connect(s);
		return;
	}
	if (s->state == MTA_S_TLS && !s->tls_failed_here &&
	    s->m->smarthost_host == NULL && !mta_dane_required(s) &&
	    (s->sts == NULL || s->sts->mode != MTA_STS_ENFORCE)) {
		/* Opportunistic TLS failed: this host in clear, once. */
		s->tls_failed_here = true;
		mta_connect(s);
		return;
	}
	s->tls_failed_here = false;
	s->addr_idx++;
	mta_connect(s);
}
