/*
 * The ACME order flow (RFC 8555 7): directory, nonce, account (7.3),
 * order (7.4), HTTP-01 authorizations (8.3: the key authorization is
 * written to challenge_dir/TOKEN, which carteiro-webd serves at
 * /.well-known/acme-challenge/TOKEN), finalize with a CSR for a new key,
 * download the chain. Every POST is signed; a badNonce is retried once.
 */
#include "acme/acme.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/acme_path.h"
#include "common/util.h"

struct acme_client {
	const struct acme_order_req *req;
	struct acme_http *http;
	char *nonce;
	char *kid;		/* account URL */
	char *new_nonce, *new_account, *new_order;
	char *thumb;
	char **tokens;		/* challenge files written, to remove */
	size_t ntokens;
	char err[1024];
};

static int acme_order_fail(struct acme_client *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
static int acme_order_problem(struct acme_client *, const char *,
    const struct acme_resp *);
static int acme_order_nonce(struct acme_client *);
static int acme_order_post(struct acme_client *, const char *, const char *,
    bool, struct acme_resp *, json_t **);
static int acme_order_directory(struct acme_client *);
static int acme_order_account(struct acme_client *);
static int acme_order_authz(struct acme_client *, const char *);
static int acme_order_wait(struct acme_client *, const char *,
    const char *, json_t **);
static const char *acme_order_str(json_t *, const char *);

static int
acme_order_fail(struct acme_client *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	return -1;
}

/* An error answer: the RFC 7807 problem's type and detail if it has one. */
static int
acme_order_problem(struct acme_client *c, const char *what,
    const struct acme_resp *r)
{
	json_t *j = json_loads(r->body, 0, NULL);
	const char *type = j ? acme_order_str(j, "type") : NULL;
	const char *detail = j ? acme_order_str(j, "detail") : NULL;

	acme_order_fail(c, "%s: HTTP %ld %s%s%s", what, r->status,
	    type ? type : "", detail ? ": " : "", detail ? detail : "");
	json_decref(j);
	return -1;
}

static const char *
acme_order_str(json_t *j, const char *key)
{
	return json_string_value(json_object_get(j, key));
}

static int
acme_order_nonce(struct acme_client *c)
{
	struct acme_resp r;
	const char *e;

	if (c->nonce != NULL)
		return 0;
	if (acme_http_do(c->http, c->new_nonce, NULL, true, &r, &e) < 0)
		return acme_order_fail(c, "newNonce: %s", e);
	if (r.nonce == NULL) {
		acme_order_problem(c, "newNonce: no Replay-Nonce", &r);
		acme_resp_clear(&r);
		return -1;
	}
	c->nonce = r.nonce;
	r.nonce = NULL;
	acme_resp_clear(&r);
	return 0;
}

/*
 * POST payload (NULL: POST-as-GET) to url, signed with the account (jwk:
 * with the public key instead of the kid). On a 2xx answer 0, r filled
 * and, when json_r is not NULL, *json_r the parsed body; else -1.
 */
static int
acme_order_post(struct acme_client *c, const char *url, const char *payload,
    bool jwk, struct acme_resp *r, json_t **json_r)
{
	const char *e;

	for (int attempt = 0;; attempt++) {
		char *body;
		json_t *j;

		if (acme_order_nonce(c) < 0)
			return -1;
		body = acme_jws(c->req->account, jwk ? NULL : c->kid, c->nonce,
		    url, payload ? payload : "", &e);
		free(c->nonce);
		c->nonce = NULL;
		if (body == NULL)
			return acme_order_fail(c, "%s", e);
		if (acme_http_do(c->http, url, body, false, r, &e) < 0) {
			free(body);
			return acme_order_fail(c, "%s", e);
		}
		free(body);
		c->nonce = r->nonce;
		r->nonce = NULL;
		if (r->status >= 200 && r->status < 300)
			break;
		j = json_loads(r->body, 0, NULL);
		if (attempt == 0 && j != NULL && acme_order_str(j, "type") &&
		    strcmp(acme_order_str(j, "type"),
		    "urn:ietf:params:acme:error:badNonce") == 0) {
			json_decref(j);
			acme_resp_clear(r);
			continue;	/* RFC 8555 6.5: retry with the new one */
		}
		json_decref(j);
		acme_order_problem(c, url, r);
		acme_resp_clear(r);
		return -1;
	}
	if (json_r == NULL)
		return 0;
	if ((*json_r = json_loads(r->body, 0, NULL)) == NULL) {
		acme_resp_clear(r);
		return acme_order_fail(c, "%s: the answer is not JSON", url);
	}
	return 0;
}

static int
acme_order_directory(struct acme_client *c)
{
	struct acme_resp r;
	const char *e, *nn, *na, *no;
	json_t *j;

	if (acme_http_do(c->http, c->req->directory, NULL, false, &r, &e) < 0)
		return acme_order_fail(c, "directory: %s", e);
	if (r.status != 200) {
		acme_order_problem(c, "directory", &r);
		acme_resp_clear(&r);
		return -1;
	}
	j = json_loads(r.body, 0, NULL);
	acme_resp_clear(&r);
	nn = j ? acme_order_str(j, "newNonce") : NULL;
	na = j ? acme_order_str(j, "newAccount") : NULL;
	no = j ? acme_order_str(j, "newOrder") : NULL;
	if (nn == NULL || na == NULL || no == NULL) {
		json_decref(j);
		return acme_order_fail(c, "%s is not an ACME directory",
		    c->req->directory);
	}
	c->new_nonce = xstrdup(nn);
	c->new_account = xstrdup(na);
	c->new_order = xstrdup(no);
	json_decref(j);
	return 0;
}

/* RFC 8555 7.3: a new account, or the existing one for this key (200). */
static int
acme_order_account(struct acme_client *c)
{
	struct acme_resp r;
	json_t *p;
	char *payload, *contact = NULL;
	int rc;

	if (c->req->email != NULL) {
		contact = xasprintf("mailto:%s", c->req->email);
		p = json_pack("{s:b, s:[s]}", "termsOfServiceAgreed", 1,
		    "contact", contact);
	} else
		p = json_pack("{s:b}", "termsOfServiceAgreed", 1);
	free(contact);
	payload = json_dumps(p, JSON_COMPACT);
	json_decref(p);
	rc = acme_order_post(c, c->new_account, payload, true, &r, NULL);
	free(payload);
	if (rc < 0)
		return -1;
	if (r.location == NULL) {
		acme_resp_clear(&r);
		return acme_order_fail(c, "newAccount: no Location");
	}
	c->kid = r.location;
	r.location = NULL;
	acme_resp_clear(&r);
	return 0;
}

/*
 * POST-as-GET url until its status is neither pending nor processing
 * (nor ready, for an order: that is finalize's turn), at most poll_s
 * seconds. 0 with *json_r when it is want; -1 otherwise.
 */
static int
acme_order_wait(struct acme_client *c, const char *url, const char *want,
    json_t **json_r)
{
	for (unsigned i = 0; i <= c->req->poll_s; i++) {
		struct acme_resp r;
		const char *st;
		json_t *j;

		if (acme_order_post(c, url, NULL, false, &r, &j) < 0)
			return -1;
		acme_resp_clear(&r);
		st = acme_order_str(j, "status");
		if (st != NULL && strcmp(st, want) == 0) {
			*json_r = j;
			return 0;
		}
		if (st == NULL || (strcmp(st, "pending") != 0 &&
		    strcmp(st, "processing") != 0 &&
		    strcmp(st, "ready") != 0)) {
			char *dump = json_dumps(j, JSON_COMPACT);

			acme_order_fail(c, "%s is %s: %s", url,
			    st ? st : "without status", dump ? dump : "");
			free(dump);
			json_decref(j);
			return -1;
		}
		json_decref(j);
		sleep(1);
	}
	return acme_order_fail(c, "%s: still not %s after %us", url, want,
	    c->req->poll_s);
}

/* One authorization: answer its http-01 challenge and wait for valid. */
static int
acme_order_authz(struct acme_client *c, const char *url)
{
	struct acme_resp r;
	json_t *a, *ch, *v;
	const char *token = NULL, *churl = NULL, *st, *e;
	char *path, *keyauth;
	size_t i;

	if (acme_order_post(c, url, NULL, false, &r, &a) < 0)
		return -1;
	acme_resp_clear(&r);
	st = acme_order_str(a, "status");
	if (st != NULL && strcmp(st, "valid") == 0) {
		json_decref(a);
		return 0;	/* authorized earlier, still valid */
	}
	json_array_foreach(json_object_get(a, "challenges"), i, ch) {
		const char *t = acme_order_str(ch, "type");

		if (t != NULL && strcmp(t, "http-01") == 0) {
			token = acme_order_str(ch, "token");
			churl = acme_order_str(ch, "url");
			break;
		}
	}
	if (token == NULL || churl == NULL || !acme_token_ok(token)) {
		json_decref(a);
		return acme_order_fail(c, "%s: no usable http-01 challenge",
		    url);
	}
	/* RFC 8555 8.1: token "." thumbprint. */
	keyauth = xasprintf("%s.%s", token, c->thumb);
	path = xasprintf("%s/%s", c->req->challenge_dir, token);
	if (acme_file_write(path, keyauth, strlen(keyauth), 0644, &e) < 0) {
		free(keyauth);
		free(path);
		json_decref(a);
		return acme_order_fail(c, "%s", e);
	}
	free(keyauth);
	c->tokens = xrealloc(c->tokens, (c->ntokens + 1) * sizeof(char *));
	c->tokens[c->ntokens++] = path;
	if (acme_order_post(c, churl, "{}", false, &r, NULL) < 0) {
		json_decref(a);
		return -1;
	}
	acme_resp_clear(&r);
	json_decref(a);
	if (acme_order_wait(c, url, "valid", &v) < 0)
		return -1;
	json_decref(v);
	return 0;
}

int
acme_issue(const struct acme_order_req *req, struct acme_key **key_r,
    char **chain_r, const char **error_r)
{
	static char err[1024];
	struct acme_client c;
	struct acme_resp r;
	struct acme_key *key = NULL;
	json_t *ids, *p = NULL, *o = NULL, *v;
	const char *e, *fin, *cert;
	char *payload, *csr, *order_url = NULL;
	size_t i;
	int rc = -1;

	memset(&c, 0, sizeof(c));
	c.req = req;
	c.http = acme_http_new(req->ca_file);
	c.thumb = acme_thumbprint(req->account);
	if (c.http == NULL || c.thumb == NULL) {
		acme_order_fail(&c, "cannot start the HTTPS client");
		goto out;
	}
	if (acme_order_directory(&c) < 0 || acme_order_account(&c) < 0)
		goto out;

	/* RFC 8555 7.4: newOrder. */
	ids = json_array();
	for (i = 0; i < req->nnames; i++)
		json_array_append_new(ids, json_pack("{s:s, s:s}", "type",
		    "dns", "value", req->names[i]));
	p = json_pack("{s:o}", "identifiers", ids);
	payload = json_dumps(p, JSON_COMPACT);
	rc = acme_order_post(&c, c.new_order, payload, false, &r, &o);
	free(payload);
	if (rc < 0)
		goto out;
	rc = -1;
	order_url = r.location ? xstrdup(r.location) : NULL;
	acme_resp_clear(&r);
	if (order_url == NULL) {
		acme_order_fail(&c, "newOrder: no Location");
		goto out;
	}
	json_array_foreach(json_object_get(o, "authorizations"), i, v) {
		if (!json_is_string(v) ||
		    acme_order_authz(&c, json_string_value(v)) < 0)
			goto out;
	}

	/* 7.4: finalize with a CSR for a new key, then wait for valid. */
	fin = acme_order_str(o, "finalize");
	if (fin == NULL) {
		acme_order_fail(&c, "%s: no finalize URL", order_url);
		goto out;
	}
	if ((key = acme_key_generate(&e)) == NULL ||
	    (csr = acme_csr(key, req->names, req->nnames, &e)) == NULL) {
		acme_order_fail(&c, "%s", e);
		goto out;
	}
	json_decref(p);
	p = json_pack("{s:s}", "csr", csr);
	free(csr);
	payload = json_dumps(p, JSON_COMPACT);
	rc = acme_order_post(&c, fin, payload, false, &r, NULL);
	free(payload);
	json_decref(o);		/* fin pointed into it */
	o = NULL;
	if (rc < 0)
		goto out;
	rc = -1;
	acme_resp_clear(&r);
	if (acme_order_wait(&c, order_url, "valid", &o) < 0)
		goto out;
	cert = acme_order_str(o, "certificate");
	if (cert == NULL) {
		acme_order_fail(&c, "%s: valid without a certificate",
		    order_url);
		goto out;
	}
	if (acme_order_post(&c, cert, NULL, false, &r, NULL) < 0)
		goto out;
	if (strstr(r.body, "-----BEGIN CERTIFICATE-----") == NULL) {
		acme_resp_clear(&r);
		acme_order_fail(&c, "%s: not a PEM chain", cert);
		goto out;
	}
	*chain_r = r.body;
	r.body = NULL;
	acme_resp_clear(&r);
	*key_r = key;
	key = NULL;
	rc = 0;
out:
	for (i = 0; i < c.ntokens; i++) {
		(void)unlink(c.tokens[i]);
		free(c.tokens[i]);
	}
	free(c.tokens);
	acme_key_free(key);
	json_decref(p);
	json_decref(o);
	free(order_url);
	free(c.nonce);
	free(c.kid);
	free(c.new_nonce);
	free(c.new_account);
	free(c.new_order);
	free(c.thumb);
	acme_http_free(c.http);
	if (rc < 0) {
		snprintf(err, sizeof(err), "%s", c.err);
		*error_r = err;
	}
	return rc;
}
