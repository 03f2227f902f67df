/*
 * Request routing: method and path checks, the route table, and which
 * local domain a request is about (from the Host header or the address
 * the client names). It builds a webd_reply and knows nothing of the HTTP
 * library or the sockets (http.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "common/acme_path.h"
#include "common/config.h"
#include "common/util.h"
#include "webd/webd.h"

/* RFC 1035 2.3.4: a name is at most 253 characters in text form. */
#define WEBD_NAME_MAX 253

struct webd_route {
	const char *path;
	const char *method;	/* the one method it answers */
	bool nocase;		/* Outlook varies the case of its path */
	void (*handler)(const struct webd_ctx *, const struct webd_request *,
	    struct webd_reply *);
};

static void webd_route_autoconfig(const struct webd_ctx *,
    const struct webd_request *, struct webd_reply *);
static void webd_route_autodiscover(const struct webd_ctx *,
    const struct webd_request *, struct webd_reply *);
static void webd_route_mtasts(const struct webd_ctx *,
    const struct webd_request *, struct webd_reply *);
static void webd_route_metrics(const struct webd_ctx *,
    const struct webd_request *, struct webd_reply *);
static void webd_route_acme(const struct webd_ctx *, const char *,
    struct webd_reply *);
static void webd_route_error(struct webd_reply *, unsigned, const char *);
static bool webd_route_path_ok(const char *);
static int webd_route_name(const char *, size_t, char *);
static int webd_route_host(const struct webd_request *, char *);
static int webd_route_local(const struct webd_ctx *, const char *,
    struct webd_reply *);

static const struct webd_route webd_routes[] = {
	/* Thunderbird: https://autoconfig.DOMAIN/mail/config-v1.1.xml
	 * ?emailaddress=..., then https://DOMAIN/.well-known/... */
	{ "/mail/config-v1.1.xml", "GET", false, webd_route_autoconfig },
	{ "/.well-known/autoconfig/mail/config-v1.1.xml", "GET", false,
	  webd_route_autoconfig },
	{ "/autodiscover/autodiscover.xml", "POST", true,
	  webd_route_autodiscover },
	/* RFC 8461 3.3: https://mta-sts.DOMAIN/.well-known/mta-sts.txt */
	{ "/.well-known/mta-sts.txt", "GET", false, webd_route_mtasts },
	{ "/metrics", "GET", false, webd_route_metrics },
};

/* RFC 8555 8.3: the key authorization that "carteiroctl acme renew"
 * wrote for token (acme/ beside the store), on any Host. */
#define WEBD_ACME_PREFIX "/.well-known/acme-challenge/"
#define WEBD_ACME_KEYAUTH_MAX 256	/* token (<= 128) "." thumbprint */

static void
webd_route_acme(const struct webd_ctx *ctx, const char *token,
    struct webd_reply *r)
{
	char *name, *path, buf[WEBD_ACME_KEYAUTH_MAX + 1];
	size_t n = 0;
	FILE *f;

	if (!acme_token_ok(token)) {
		webd_route_error(r, 404, "Not Found");
		return;
	}
	name = xasprintf("challenges/%s", token);
	path = acme_path(ctx->cfg->store.path, name);
	free(name);
	f = fopen(path, "re");
	free(path);
	if (f != NULL) {
		n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
	}
	if (n == 0 || n > WEBD_ACME_KEYAUTH_MAX) {
		webd_route_error(r, 404, "Not Found");
		return;
	}
	r->status = 200;
	r->content_type = "application/octet-stream";
	evbuffer_add(r->body, buf, n);
}

static void
webd_route_error(struct webd_reply *r, unsigned status, const char *text)
{
	r->status = status;
	r->content_type = "text/plain; charset=utf-8";
	evbuffer_add_printf(r->body, "%s\n", text);
}

/* An absolute path without "..", backslashes or control bytes (MHD has
 * already percent-decoded it, so "%2e%2e" is caught too). */
static bool
webd_route_path_ok(const char *p)
{
	if (p[0] != '/' || strstr(p, "..") != NULL)
		return false;
	for (; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c < 0x20 || c == 0x7f || c == '\\')
			return false;
	}
	return true;
}

/*
 * s[0..len) as a lower-case host name into out (WEBD_NAME_MAX + 1 bytes),
 * without a trailing dot. 0, or -1 when it is not a plausible name.
 */
static int
webd_route_name(const char *s, size_t len, char *out)
{
	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len == 0 || len > WEBD_NAME_MAX)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_'))
			return -1;
		out[i] = c;
	}
	out[len] = '\0';
	return 0;
}

/* 0 if domain is local; else the reply is set (404 or 503) and -1. */
static int
webd_route_local(const struct webd_ctx *ctx, const char *domain,
    struct webd_reply *r)
{
	switch (webd_domains_is_local(ctx->domains, domain)) {
	case 1:
		return 0;
	case 0:
		webd_route_error(r, 404, "Not Found");
		return -1;
	default:
		webd_route_error(r, 503, "Service Unavailable");
		return -1;
	}
}

/* The Host header's name, without a port ("a.b:80", "[::1]:80"). */
static int
webd_route_host(const struct webd_request *q, char *out)
{
	const char *h = q->host, *colon;

	if (h == NULL || h[0] == '[')
		return -1;
	colon = strchr(h, ':');
	return webd_route_name(h, colon ? (size_t)(colon - h) : strlen(h),
	    out);
}

static void
webd_route_autoconfig(const struct webd_ctx *ctx,
    const struct webd_request *q, struct webd_reply *r)
{
	struct webd_service sv[WEBD_MAX_SERVICES];
	char name[WEBD_NAME_MAX + 1];
	const char *domain = name, *at;

	if (!ctx->cfg->http.autoconfig) {
		webd_route_error(r, 404, "Not Found");
		return;
	}
	if (q->emailaddress != NULL) {
		at = strrchr(q->emailaddress, '@');
		if (at == NULL ||
		    webd_route_name(at + 1, strlen(at + 1), name) < 0) {
			webd_route_error(r, 404, "Not Found");
			return;
		}
	} else {
		if (webd_route_host(q, name) < 0) {
			webd_route_error(r, 404, "Not Found");
			return;
		}
		/* autoconfig.DOMAIN, or DOMAIN itself (.well-known). */
		if (strncmp(name, "autoconfig.", 11) == 0 &&
		    webd_domains_is_local(ctx->domains, name) != 1)
			domain = name + 11;
	}
	if (webd_route_local(ctx, domain, r) < 0)
		return;
	r->status = 200;
	r->content_type = "application/xml; charset=utf-8";
	webd_autoconfig_render(r->body, domain, sv,
	    webd_services(ctx->cfg, sv));
}

static void
webd_route_autodiscover(const struct webd_ctx *ctx,
    const struct webd_request *q, struct webd_reply *r)
{
	struct webd_service sv[WEBD_MAX_SERVICES];
	char address[256], name[WEBD_NAME_MAX + 1];
	const char *at;

	if (!ctx->cfg->http.autoconfig) {
		webd_route_error(r, 404, "Not Found");
		return;
	}
	if (q->body == NULL || webd_autodiscover_parse(q->body, q->body_len,
	    address, sizeof(address)) < 0) {
		webd_route_error(r, 400, "Bad Request: no EMailAddress");
		return;
	}
	at = strrchr(address, '@');
	if (webd_route_name(at + 1, strlen(at + 1), name) < 0) {
		webd_route_error(r, 404, "Not Found");
		return;
	}
	if (webd_route_local(ctx, name, r) < 0)
		return;
	r->status = 200;
	r->content_type = "application/xml; charset=utf-8";
	webd_autodiscover_render(r->body, address, sv,
	    webd_services(ctx->cfg, sv));
}

static void
webd_route_mtasts(const struct webd_ctx *ctx, const struct webd_request *q,
    struct webd_reply *r)
{
	char name[WEBD_NAME_MAX + 1];

	/* RFC 8461 3.3: only at mta-sts.DOMAIN of a domain of ours. */
	if (!ctx->cfg->http.mta_sts || webd_route_host(q, name) < 0 ||
	    strncmp(name, "mta-sts.", 8) != 0) {
		webd_route_error(r, 404, "Not Found");
		return;
	}
	if (webd_route_local(ctx, name + 8, r) < 0)
		return;
	r->status = 200;
	/* RFC 8461 3.2: media type "text/plain". */
	r->content_type = "text/plain";
	webd_mtasts_render(r->body, ctx->cfg);
}

static void
webd_route_metrics(const struct webd_ctx *ctx, const struct webd_request *q,
    struct webd_reply *r)
{
	if (q->peer == NULL ||
	    !cfg_cidrlist_match(&ctx->cfg->http.metrics_allow, q->peer)) {
		webd_route_error(r, 403, "Forbidden");
		return;
	}
	r->status = 200;
	r->content_type = "text/plain; version=0.0.4; charset=utf-8";
	webd_metrics_render(r->body, ctx->cfg, ctx->domains);
}

void
webd_route(const struct webd_ctx *ctx, const struct webd_request *q,
    struct webd_reply *r)
{
	const struct webd_route *rt = NULL;

	r->allow = NULL;
	if (strcmp(q->method, "GET") != 0 && strcmp(q->method, "POST") != 0) {
		r->allow = "GET, POST";
		webd_route_error(r, 405, "Method Not Allowed");
		return;
	}
	if (!webd_route_path_ok(q->path)) {
		webd_route_error(r, 400, "Bad Request");
		return;
	}
	if (strncmp(q->path, WEBD_ACME_PREFIX,
	    sizeof(WEBD_ACME_PREFIX) - 1) == 0) {
		if (strcmp(q->method, "GET") != 0) {
			r->allow = "GET";
			webd_route_error(r, 405, "Method Not Allowed");
			return;
		}
		webd_route_acme(ctx, q->path + sizeof(WEBD_ACME_PREFIX) - 1,
		    r);
		return;
	}
	for (size_t i = 0; i < nitems(webd_routes); i++) {
		const struct webd_route *c = &webd_routes[i];

		if (c->nocase ? strcasecmp(c->path, q->path) == 0 :
		    strcmp(c->path, q->path) == 0) {
			rt = c;
			break;
		}
	}
	if (rt == NULL) {
		webd_route_error(r, 404, "Not Found");
		return;
	}
	if (strcmp(rt->method, q->method) != 0) {
		r->allow = rt->method;
		webd_route_error(r, 405, "Method Not Allowed");
		return;
	}
	rt->handler(ctx, q, r);
}
