/*
 * The HTTPS client for ACME, on libcurl (its GnuTLS build): GET, HEAD and
 * JOSE POSTs, the answer bounded to ACME_HTTP_MAX bytes, and the two
 * headers the protocol needs (Location, Replay-Nonce).
 */
#include "acme/acme.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "common/util.h"

#define ACME_HTTP_TIMEOUT_S 30

struct acme_http {
	CURL *curl;
	char *ca_file;
	struct curl_slist *resolve;	/* "host:port:addr" */
	size_t max;			/* body limit */
	char err[CURL_ERROR_SIZE + 64];
};

static size_t acme_http_body(char *, size_t, size_t, void *);
static size_t acme_http_header(char *, size_t, size_t, void *);
static char *acme_http_value(const char *, size_t);

struct acme_http *
acme_http_new(const char *ca_file)
{
	struct acme_http *h = xcalloc(1, sizeof(*h));

	curl_global_init(CURL_GLOBAL_DEFAULT);
	h->curl = curl_easy_init();
	if (h->curl == NULL) {
		free(h);
		return NULL;
	}
	h->ca_file = ca_file ? xstrdup(ca_file) : NULL;
	h->max = ACME_HTTP_MAX;
	return h;
}

void
acme_http_set_max(struct acme_http *h, size_t max)
{
	h->max = max;
}

void
acme_http_free(struct acme_http *h)
{
	if (h == NULL)
		return;
	curl_easy_cleanup(h->curl);
	curl_slist_free_all(h->resolve);
	free(h->ca_file);
	free(h);
}

void
acme_http_resolve(struct acme_http *h, const char *host, unsigned port,
    const char *addr)
{
	char *e;

	curl_slist_free_all(h->resolve);
	h->resolve = NULL;
	if (addr == NULL)
		return;
	/* An IPv6 address goes in brackets. */
	e = xasprintf(strchr(addr, ':') ? "%s:%u:[%s]" : "%s:%u:%s", host,
	    port, addr);
	h->resolve = curl_slist_append(NULL, e);
	free(e);
}

static size_t
acme_http_body(char *p, size_t size, size_t n, void *arg)
{
	struct acme_resp *r = arg;
	size_t len = size * n;

	if (r->len + len > r->max)
		return 0;	/* curl fails the transfer */
	r->body = xrealloc(r->body, r->len + len + 1);
	memcpy(r->body + r->len, p, len);
	r->len += len;
	r->body[r->len] = '\0';
	return len;
}

/* The value of a header line (without the name and colon), trimmed. */
static char *
acme_http_value(const char *v, size_t len)
{
	while (len > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		len--;
	}
	while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n' ||
	    v[len - 1] == ' '))
		len--;
	return xasprintf("%.*s", (int)len, v);
}

static size_t
acme_http_header(char *p, size_t size, size_t n, void *arg)
{
	static const struct {
		const char *name;
		size_t off;
	} want[] = {
		{ "location:", offsetof(struct acme_resp, location) },
		{ "replay-nonce:", offsetof(struct acme_resp, nonce) },
		{ "content-type:", offsetof(struct acme_resp, content_type) },
	};
	struct acme_resp *r = arg;
	size_t len = size * n;

	for (size_t i = 0; i < nitems(want); i++) {
		size_t nl = strlen(want[i].name);
		char **slot = (char **)((char *)r + want[i].off);

		if (len > nl && strncasecmp(p, want[i].name, nl) == 0) {
			free(*slot);
			*slot = acme_http_value(p + nl, len - nl);
		}
	}
	return len;
}

int
acme_http_do(struct acme_http *h, const char *url, const char *body,
    bool head, struct acme_resp *r, const char **error_r)
{
	struct curl_slist *hdrs = NULL;
	CURLcode rc;

	memset(r, 0, sizeof(r[0]));
	r->max = h->max;
	curl_easy_reset(h->curl);
	h->err[0] = '\0';
	curl_easy_setopt(h->curl, CURLOPT_URL, url);
	curl_easy_setopt(h->curl, CURLOPT_ERRORBUFFER, h->err);
	curl_easy_setopt(h->curl, CURLOPT_USERAGENT, "carteiro-acme");
	curl_easy_setopt(h->curl, CURLOPT_TIMEOUT, (long)ACME_HTTP_TIMEOUT_S);
	curl_easy_setopt(h->curl, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L);
	if (h->ca_file != NULL)
		curl_easy_setopt(h->curl, CURLOPT_CAINFO, h->ca_file);
	if (h->resolve != NULL)
		curl_easy_setopt(h->curl, CURLOPT_RESOLVE, h->resolve);
	curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, acme_http_body);
	curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h->curl, CURLOPT_HEADERFUNCTION, acme_http_header);
	curl_easy_setopt(h->curl, CURLOPT_HEADERDATA, r);
	if (head)
		curl_easy_setopt(h->curl, CURLOPT_NOBODY, 1L);
	else if (body != NULL) {
		hdrs = curl_slist_append(hdrs,
		    "Content-Type: application/jose+json");
		curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE,
		    (long)strlen(body));
	}
	rc = curl_easy_perform(h->curl);
	curl_slist_free_all(hdrs);
	if (rc != CURLE_OK) {
		char *e = xasprintf("%s: %s", url,
		    h->err[0] ? h->err : curl_easy_strerror(rc));

		snprintf(h->err, sizeof(h->err), "%s", e);
		free(e);
		*error_r = h->err;
		acme_resp_clear(r);
		return -1;
	}
	curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &r->status);
	if (r->body == NULL) {
		r->body = xstrdup("");
		r->len = 0;
	}
	return 0;
}

void
acme_resp_clear(struct acme_resp *r)
{
	free(r->body);
	free(r->location);
	free(r->nonce);
	free(r->content_type);
	memset(r, 0, sizeof(*r));
}
