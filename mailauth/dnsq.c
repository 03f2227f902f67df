/*
 * Blocking c-ares lookups for worker threads (see dnsq.h). Owns one
 * channel; the answer parsing into strings is here too.
 */
#include "mailauth/dnsq.h"
#include "common/util.h"

#include <ares.h>
#include <ctype.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * A small answer cache per resolver (so per worker thread): c-ares 1.18
 * has none, and every inbound message asks the same SPF/DMARC/DKIM names
 * again. Entries live DNSQ_CACHE_TTL seconds whatever the record's TTL
 * (c-ares doesn't give TXT TTLs); when the table is full it is emptied.
 */
#define DNSQ_CACHE_SIZE	1024
#define DNSQ_CACHE_TTL	60

struct dnsq_entry {
	struct dnsq_entry *next;
	enum spf_qtype type;
	char *name;
	enum spf_dns_status status;
	char **answers;
	size_t n;
	int64_t expires;
};

struct dnsq {
	ares_channel ch;
	struct dnsq_entry *cache[DNSQ_CACHE_SIZE];
	size_t ncached;
};

struct dnsq_result {
	bool done;
	int status;
	unsigned char *abuf;
	int alen;
};

static pthread_once_t dnsq_once = PTHREAD_ONCE_INIT;

static void
dnsq_library_init(void)
{
	ares_library_init(ARES_LIB_INIT_ALL);
}

struct dnsq *
dnsq_new(const char *resolver, int timeout_ms, int tries)
{
	struct ares_options opt = { 0 };
	struct dnsq *q = xcalloc(1, sizeof(*q));

	pthread_once(&dnsq_once, dnsq_library_init);
	opt.timeout = timeout_ms > 0 ? timeout_ms : 2000;
	opt.tries = tries > 0 ? tries : 2;
	if (ares_init_options(&q->ch, &opt,
	    ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES) != ARES_SUCCESS) {
		free(q);
		return NULL;
	}
	if (resolver != NULL && resolver[0] != '\0' &&
	    ares_set_servers_ports_csv(q->ch, resolver) != ARES_SUCCESS) {
		ares_destroy(q->ch);
		free(q);
		return NULL;
	}
	return q;
}

static void
dnsq_cache_clear(struct dnsq *q)
{
	for (size_t i = 0; i < DNSQ_CACHE_SIZE; i++) {
		struct dnsq_entry *e = q->cache[i], *next;
		for (; e != NULL; e = next) {
			next = e->next;
			dnsq_free_answers(e->answers, e->n);
			free(e->name);
			free(e);
		}
		q->cache[i] = NULL;
	}
	q->ncached = 0;
}

void
dnsq_free(struct dnsq *q)
{
	if (q == NULL)
		return;
	dnsq_cache_clear(q);
	ares_destroy(q->ch);
	free(q);
}

static unsigned
dnsq_hash(enum spf_qtype type, const char *name)
{
	unsigned h = 5381 + (unsigned)type;

	for (; *name; name++)
		h = h * 33 + (unsigned)tolower((unsigned char)*name);
	return h % DNSQ_CACHE_SIZE;
}

static char **
dnsq_copy_answers(char **a, size_t n)
{
	char **c = n ? xcalloc(n, sizeof(char *)) : NULL;

	for (size_t i = 0; i < n; i++)
		c[i] = xstrdup(a[i]);
	return c;
}

/* 1 and the answers (copied) on a fresh hit, 0 on a miss. */
static int
dnsq_cache_get(struct dnsq *q, enum spf_qtype type, const char *name,
    enum spf_dns_status *st_r, char ***answers_r, size_t *n_r)
{
	int64_t now = util_time();

	for (struct dnsq_entry *e = q->cache[dnsq_hash(type, name)]; e != NULL;
	    e = e->next) {
		if (e->type != type || strcasecmp(e->name, name) != 0 ||
		    e->expires <= now)
			continue;
		*st_r = e->status;
		*answers_r = dnsq_copy_answers(e->answers, e->n);
		*n_r = e->n;
		return 1;
	}
	return 0;
}

static void
dnsq_cache_put(struct dnsq *q, enum spf_qtype type, const char *name,
    enum spf_dns_status st, char **answers, size_t n)
{
	struct dnsq_entry *e;
	unsigned h = dnsq_hash(type, name);

	if (st == SPF_DNS_TEMPFAIL)
		return;		/* try again next time */
	if (q->ncached >= DNSQ_CACHE_SIZE)
		dnsq_cache_clear(q);
	e = xcalloc(1, sizeof(*e));
	e->type = type;
	e->name = xstrdup(name);
	e->status = st;
	e->answers = dnsq_copy_answers(answers, n);
	e->n = n;
	e->expires = util_time() + DNSQ_CACHE_TTL;
	e->next = q->cache[h];
	q->cache[h] = e;
	q->ncached++;
}

void
dnsq_free_answers(char **answers, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(answers[i]);
	free(answers);
}

static void
dnsq_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dnsq_result *r = arg;

	(void)timeouts;
	r->done = true;
	r->status = status;
	if (status == ARES_SUCCESS && abuf != NULL && alen > 0) {
		r->abuf = xmalloc((size_t)alen);
		memcpy(r->abuf, abuf, (size_t)alen);
		r->alen = alen;
	}
}

/* Run the channel until the query finished. */
static void
dnsq_wait(struct dnsq *q, struct dnsq_result *r)
{
	while (!r->done) {
		ares_socket_t socks[ARES_GETSOCK_MAXNUM];
		struct pollfd pfd[ARES_GETSOCK_MAXNUM];
		int bits = ares_getsock(q->ch, socks, ARES_GETSOCK_MAXNUM);
		nfds_t n = 0;
		struct timeval tv, *tvp;
		int ms;

		for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
			short ev = 0;
			/* c-ares' own macros shift a signed int into bit 31 */
			if ((unsigned)bits & (1u << i))
				ev |= POLLIN;
			if ((unsigned)bits & (1u << (i + ARES_GETSOCK_MAXNUM)))
				ev |= POLLOUT;
			if (ev == 0)
				continue;
			pfd[n].fd = socks[i];
			pfd[n].events = ev;
			pfd[n].revents = 0;
			n++;
		}
		tvp = ares_timeout(q->ch, NULL, &tv);
		ms = tvp ? (int)(tvp->tv_sec * 1000 + tvp->tv_usec / 1000) : 1000;
		if (poll(pfd, n, ms) <= 0) {
			ares_process_fd(q->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
			continue;
		}
		for (nfds_t i = 0; i < n; i++) {
			ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;
			if (pfd[i].revents & (POLLIN | POLLERR | POLLHUP))
				rfd = pfd[i].fd;
			if (pfd[i].revents & POLLOUT)
				wfd = pfd[i].fd;
			if (rfd != ARES_SOCKET_BAD || wfd != ARES_SOCKET_BAD)
				ares_process_fd(q->ch, rfd, wfd);
		}
	}
}

static void
dnsq_push(char ***v, size_t *n, char *s)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(char *));
	(*v)[(*n)++] = s;
}

static int
dnsq_mx_cmp(const void *a, const void *b)
{
	const struct ares_mx_reply *x = *(const struct ares_mx_reply *const *)a;
	const struct ares_mx_reply *y = *(const struct ares_mx_reply *const *)b;

	return (int)x->priority - (int)y->priority;
}

int
dnsq_parse_txt(const unsigned char *abuf, int alen, char ***txt_r,
    size_t *n_r)
{
	struct ares_txt_ext *txt = NULL;
	char **v = NULL, *cur = NULL;
	size_t n = 0, curlen = 0;
	int pr = ares_parse_txt_reply_ext(abuf, alen, &txt);

	for (struct ares_txt_ext *t = txt; pr == ARES_SUCCESS && t;
	    t = t->next) {
		if (t->record_start && cur != NULL) {
			dnsq_push(&v, &n, cur);
			cur = NULL;
			curlen = 0;
		}
		cur = xrealloc(cur, curlen + t->length + 1);
		memcpy(cur + curlen, t->txt, t->length);
		curlen += t->length;
		cur[curlen] = '\0';
	}
	if (cur != NULL)
		dnsq_push(&v, &n, cur);
	if (txt != NULL)
		ares_free_data(txt);
	*txt_r = v;
	*n_r = n;
	return pr;
}

static enum spf_dns_status
dnsq_lookup_wire(void *ctx, enum spf_qtype type, const char *name,
    char ***answers_r, size_t *n_r)
{
	struct dnsq *q = ctx;
	struct dnsq_result r = { 0 };
	char **v = NULL;
	size_t n = 0;
	int qtype;

	*answers_r = NULL;
	*n_r = 0;
	switch (type) {
	case SPF_Q_TXT: qtype = T_TXT; break;
	case SPF_Q_A: qtype = T_A; break;
	case SPF_Q_AAAA: qtype = T_AAAA; break;
	case SPF_Q_MX: qtype = T_MX; break;
	case SPF_Q_PTR: qtype = T_PTR; break;
	default: return SPF_DNS_TEMPFAIL;
	}
	ares_query(q->ch, name, C_IN, qtype, dnsq_cb, &r);
	dnsq_wait(q, &r);
	if (r.status == ARES_ENOTFOUND || r.status == ARES_ENODATA) {
		free(r.abuf);
		return SPF_DNS_NONE;
	}
	if (r.status != ARES_SUCCESS) {
		free(r.abuf);
		return SPF_DNS_TEMPFAIL;
	}

	int pr = ARES_SUCCESS;
	if (type == SPF_Q_TXT) {
		pr = dnsq_parse_txt(r.abuf, r.alen, &v, &n);
	} else if (type == SPF_Q_A || type == SPF_Q_AAAA) {
		struct ares_addrttl a4[32];
		struct ares_addr6ttl a6[32];
		int na = 32;
		char buf[INET6_ADDRSTRLEN];
		if (type == SPF_Q_A) {
			pr = ares_parse_a_reply(r.abuf, r.alen, NULL, a4, &na);
			for (int i = 0; pr == ARES_SUCCESS && i < na; i++)
				dnsq_push(&v, &n, xstrdup(inet_ntop(AF_INET,
				    &a4[i].ipaddr, buf, sizeof(buf))));
		} else {
			pr = ares_parse_aaaa_reply(r.abuf, r.alen, NULL, a6, &na);
			for (int i = 0; pr == ARES_SUCCESS && i < na; i++)
				dnsq_push(&v, &n, xstrdup(inet_ntop(AF_INET6,
				    &a6[i].ip6addr, buf, sizeof(buf))));
		}
	} else if (type == SPF_Q_MX) {
		struct ares_mx_reply *mx = NULL, *arr[64];
		size_t cnt = 0;
		pr = ares_parse_mx_reply(r.abuf, r.alen, &mx);
		for (struct ares_mx_reply *m = mx; pr == ARES_SUCCESS && m &&
		    cnt < 64; m = m->next)
			arr[cnt++] = m;
		qsort(arr, cnt, sizeof(arr[0]), dnsq_mx_cmp);
		for (size_t i = 0; i < cnt; i++)
			dnsq_push(&v, &n, xstrdup(arr[i]->host));
		if (mx != NULL)
			ares_free_data(mx);
	} else {
		struct hostent *he = NULL;
		unsigned char dummy[16] = { 0 };
		pr = ares_parse_ptr_reply(r.abuf, r.alen, dummy, 4, AF_INET,
		    &he);
		if (pr == ARES_SUCCESS && he != NULL) {
			if (he->h_name)
				dnsq_push(&v, &n, xstrdup(he->h_name));
			for (char **al = he->h_aliases; al && *al; al++)
				dnsq_push(&v, &n, xstrdup(*al));
		}
		if (he != NULL)
			ares_free_hostent(he);
	}
	free(r.abuf);
	if (pr == ARES_ENODATA || (pr == ARES_SUCCESS && n == 0)) {
		dnsq_free_answers(v, n);
		return SPF_DNS_NONE;
	}
	if (pr != ARES_SUCCESS) {
		dnsq_free_answers(v, n);
		return SPF_DNS_TEMPFAIL;
	}
	*answers_r = v;
	*n_r = n;
	return SPF_DNS_OK;
}

enum spf_dns_status
dnsq_lookup(void *ctx, enum spf_qtype type, const char *name,
    char ***answers_r, size_t *n_r)
{
	struct dnsq *q = ctx;
	enum spf_dns_status st;

	if (dnsq_cache_get(q, type, name, &st, answers_r, n_r))
		return st;
	st = dnsq_lookup_wire(ctx, type, name, answers_r, n_r);
	dnsq_cache_put(q, type, name, st, *answers_r, *n_r);
	return st;
}
