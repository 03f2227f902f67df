/*
 * TLS-RPT counting and report building (tlsrpt.h). Policies live in one
 * array per struct tlsrpt (a day of a relay's sessions touches few
 * domains), each with its failure details; the JSON is built with
 * jansson, the gzip stream with zlib.
 */
#include "smtpd/tlsrpt.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "common/util.h"

struct tlsrpt_detail {
	char *result, *sending_ip, *receiving_ip, *mx;
	unsigned long count;
};

struct tlsrpt_policy {
	char *domain, *ptype;
	char **pstr;
	size_t npstr;
	char **mx;			/* distinct MX hosts seen */
	size_t nmx;
	unsigned long ok, failed;
	struct tlsrpt_detail *det;
	size_t ndet;
};

struct tlsrpt {
	struct tlsrpt_policy *pol;
	size_t npol;
	const char **domains;		/* distinct, borrowed from pol */
	size_t ndomains;
};

static bool
tlsrpt_streq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static char *
tlsrpt_dup(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

struct tlsrpt *
tlsrpt_new(void)
{
	return xcalloc(1, sizeof(struct tlsrpt));
}

void
tlsrpt_free(struct tlsrpt *t)
{
	size_t i, j;

	if (t == NULL)
		return;
	for (i = 0; i < t->npol; i++) {
		struct tlsrpt_policy *p = &t->pol[i];

		free(p->domain);
		free(p->ptype);
		for (j = 0; j < p->npstr; j++)
			free(p->pstr[j]);
		free(p->pstr);
		for (j = 0; j < p->nmx; j++)
			free(p->mx[j]);
		free(p->mx);
		for (j = 0; j < p->ndet; j++) {
			free(p->det[j].result);
			free(p->det[j].sending_ip);
			free(p->det[j].receiving_ip);
			free(p->det[j].mx);
		}
		free(p->det);
	}
	free(t->pol);
	free(t->domains);
	free(t);
}

static struct tlsrpt_policy *
tlsrpt_policy(struct tlsrpt *t, const char *domain, const char *ptype,
    const char *const *pstr, size_t npstr)
{
	struct tlsrpt_policy *p;
	size_t i, j;

	for (i = 0; i < t->npol; i++) {
		p = &t->pol[i];
		if (strcasecmp(p->domain, domain) != 0 ||
		    strcmp(p->ptype, ptype) != 0 || p->npstr != npstr)
			continue;
		for (j = 0; j < npstr && strcmp(p->pstr[j], pstr[j]) == 0; j++)
			;
		if (j == npstr)
			return p;
	}
	t->pol = xrealloc(t->pol, (t->npol + 1) * sizeof(*t->pol));
	p = &t->pol[t->npol++];
	memset(p, 0, sizeof(*p));
	p->domain = util_strlower(xstrdup(domain));
	p->ptype = xstrdup(ptype);
	p->pstr = xcalloc(npstr > 0 ? npstr : 1, sizeof(*p->pstr));
	for (j = 0; j < npstr; j++)
		p->pstr[j] = xstrdup(pstr[j]);
	p->npstr = npstr;
	/* The distinct domains, again (few policies: a short loop). */
	t->domains = xrealloc(t->domains, t->npol * sizeof(*t->domains));
	t->ndomains = 0;
	for (i = 0; i < t->npol; i++) {
		for (j = 0; j < t->ndomains && strcmp(t->domains[j],
		    t->pol[i].domain) != 0; j++)
			;
		if (j == t->ndomains)
			t->domains[t->ndomains++] = t->pol[i].domain;
	}
	return p;
}

void
tlsrpt_add(struct tlsrpt *t, const char *domain, const char *ptype,
    const char *const *pstr, size_t npstr, const char *mx,
    const char *result, const char *sending_ip, const char *receiving_ip)
{
	struct tlsrpt_policy *p = tlsrpt_policy(t, domain, ptype, pstr,
	    npstr);
	struct tlsrpt_detail *d;
	size_t i;

	if (mx != NULL) {
		for (i = 0; i < p->nmx && strcasecmp(p->mx[i], mx) != 0; i++)
			;
		if (i == p->nmx) {
			p->mx = xrealloc(p->mx, (p->nmx + 1) * sizeof(*p->mx));
			p->mx[p->nmx++] = xstrdup(mx);
		}
	}
	if (result == NULL) {
		p->ok++;
		return;
	}
	p->failed++;
	for (i = 0; i < p->ndet; i++) {
		d = &p->det[i];
		if (strcmp(d->result, result) == 0 &&
		    tlsrpt_streq(d->sending_ip, sending_ip) &&
		    tlsrpt_streq(d->receiving_ip, receiving_ip) &&
		    tlsrpt_streq(d->mx, mx)) {
			d->count++;
			return;
		}
	}
	p->det = xrealloc(p->det, (p->ndet + 1) * sizeof(*p->det));
	d = &p->det[p->ndet++];
	d->result = xstrdup(result);
	d->sending_ip = tlsrpt_dup(sending_ip);
	d->receiving_ip = tlsrpt_dup(receiving_ip);
	d->mx = tlsrpt_dup(mx);
	d->count = 1;
}

struct tlsrpt *
tlsrpt_take(struct tlsrpt *t)
{
	struct tlsrpt *old = tlsrpt_new();

	*old = *t;
	memset(t, 0, sizeof(*t));
	return old;
}

size_t
tlsrpt_domains(const struct tlsrpt *t, const char ***domains_r)
{
	*domains_r = t->domains;
	return t->ndomains;
}

/* RFC 3339 date-time in UTC, as RFC 8460 4.4's example writes it. */
static json_t *
tlsrpt_time(time_t when)
{
	struct tm tm;
	char buf[32];

	gmtime_r(&when, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}

static json_t *
tlsrpt_policy_json(const struct tlsrpt_policy *p)
{
	json_t *pol, *strs, *mxs, *dets;
	size_t i;

	strs = json_array();
	for (i = 0; i < p->npstr; i++)
		json_array_append_new(strs, json_string(p->pstr[i]));
	mxs = json_array();
	for (i = 0; i < p->nmx; i++)
		json_array_append_new(mxs, json_string(p->mx[i]));
	pol = json_pack("{s:s, s:o, s:s, s:o}", "policy-type", p->ptype,
	    "policy-string", strs, "policy-domain", p->domain, "mx-host",
	    mxs);
	dets = json_array();
	for (i = 0; i < p->ndet; i++) {
		const struct tlsrpt_detail *d = &p->det[i];
		json_t *o = json_pack("{s:s, s:I}", "result-type", d->result,
		    "failed-session-count", (json_int_t)d->count);

		if (d->sending_ip != NULL)
			json_object_set_new(o, "sending-mta-ip",
			    json_string(d->sending_ip));
		if (d->receiving_ip != NULL)
			json_object_set_new(o, "receiving-ip",
			    json_string(d->receiving_ip));
		if (d->mx != NULL)
			json_object_set_new(o, "receiving-mx-hostname",
			    json_string(d->mx));
		json_array_append_new(dets, o);
	}
	return json_pack("{s:o, s:{s:I, s:I}, s:o}", "policy", pol,
	    "summary", "total-successful-session-count", (json_int_t)p->ok,
	    "total-failure-session-count", (json_int_t)p->failed,
	    "failure-details", dets);
}

char *
tlsrpt_json(const struct tlsrpt *t, const char *domain, const char *org,
    const char *contact, const char *id, time_t start, time_t end)
{
	json_t *root, *pols;
	char *out, *ret;
	size_t i;

	pols = json_array();
	for (i = 0; i < t->npol; i++)
		if (strcasecmp(t->pol[i].domain, domain) == 0)
			json_array_append_new(pols,
			    tlsrpt_policy_json(&t->pol[i]));
	if (json_array_size(pols) == 0) {
		json_decref(pols);
		return NULL;
	}
	root = json_pack("{s:s, s:{s:o, s:o}, s:s, s:s, s:o}",
	    "organization-name", org, "date-range", "start-datetime",
	    tlsrpt_time(start), "end-datetime", tlsrpt_time(end),
	    "contact-info", contact, "report-id", id, "policies", pols);
	out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (out == NULL)
		return NULL;
	/* jansson's allocator is malloc, but hand out our own copy. */
	ret = xstrdup(out);
	free(out);
	return ret;
}

unsigned char *
tlsrpt_gzip(const void *data, size_t len, size_t *outlen)
{
	z_stream z;
	unsigned char *out;
	uLong cap;

	memset(&z, 0, sizeof(z));
	/* windowBits 15 + 16: a gzip header and trailer (RFC 1952). */
	if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
	    Z_DEFAULT_STRATEGY) != Z_OK)
		return NULL;
	cap = deflateBound(&z, (uLong)len);
	out = xmalloc(cap);
	z.next_in = (Bytef *)(uintptr_t)data;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
		deflateEnd(&z);
		free(out);
		return NULL;
	}
	*outlen = z.total_out;
	deflateEnd(&z);
	return out;
}
