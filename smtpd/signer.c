/*
 * DKIM signing on submission (signer.h). Owns the worker pool for it and
 * the per-thread key cache (reloaded when a domain's key directory
 * changes, so keys made with carteiroctl while the daemon runs are used
 * without a restart).
 */
#include "smtpd/signer.h"
#include "smtpd/spool.h"
#include "common/config.h"
#include "mailauth/dkim.h"
#include "mailauth/dkim_keys.h"
#include "mailauth/dmarc.h"
#include "common/log.h"
#include "common/util.h"
#include "common/workq.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIGNER_THREADS		2	/* RSA signing is the CPU cost */
#define SIGNER_MAX_PENDING	1024
#define SIGNER_CACHE		64	/* domains cached per thread */

struct signer {
	const struct cfg *cfg;
	char *keydir;
	struct workq *wq;
};

/* One domain's loaded keys, per worker thread. */
struct signer_domain {
	char *domain;
	struct timespec mtime;		/* of <keydir>/<domain> when loaded */
	struct dkim_key **keys;
	size_t nkeys;
};

struct signer_thread {
	const struct signer *s;
	struct signer_domain cache[SIGNER_CACHE];
	size_t ncache;
};

struct signer_job {
	struct signer *s;
	struct spool_copy src;	/* the caller's spool: dup or copy */
	uint64_t size;
	signer_done_cb *cb;
	void *arg;
	uint64_t token;
	char *headers;
	char *domain;
};

static void
signer_domain_clear(struct signer_domain *d)
{
	for (size_t i = 0; i < d->nkeys; i++)
		dkim_key_free(d->keys[i]);
	free(d->keys);
	free(d->domain);
	memset(d, 0, sizeof(*d));
}

static void *
signer_thread_init(void *arg)
{
	struct signer_thread *t = xcalloc(1, sizeof(*t));

	t->s = arg;
	return t;
}

static void
signer_thread_fini(void *ctx)
{
	struct signer_thread *t = ctx;

	for (size_t i = 0; i < t->ncache; i++)
		signer_domain_clear(&t->cache[i]);
	free(t);
}

/* The loaded keys of domain (NULL/0 if none), refreshed when the
 * directory's mtime changed. */
static struct signer_domain *
signer_keys(struct signer_thread *t, const char *domain)
{
	char *dir = xasprintf("%s/%s", t->s->keydir, domain);
	struct stat st;
	struct signer_domain *d = NULL;
	bool have = stat(dir, &st) == 0;

	free(dir);
	for (size_t i = 0; i < t->ncache; i++)
		if (strcmp(t->cache[i].domain, domain) == 0)
			d = &t->cache[i];
	if (!have) {
		if (d != NULL)
			d->nkeys = 0;	/* keys removed: sign nothing */
		return d;
	}
	if (d != NULL && d->mtime.tv_sec == st.st_mtim.tv_sec &&
	    d->mtime.tv_nsec == st.st_mtim.tv_nsec)
		return d;
	if (d == NULL) {
		if (t->ncache == SIGNER_CACHE)
			signer_domain_clear(&t->cache[--t->ncache]);
		d = &t->cache[t->ncache++];
	} else {
		signer_domain_clear(d);
	}
	d->domain = xstrdup(domain);
	d->mtime = st.st_mtim;

	struct dkim_keyfile *files = NULL;
	size_t n = 0;
	const char *error = NULL;
	if (dkim_keys_list(t->s->keydir, domain, &files, &n, &error) < 0) {
		log_warn("event=dkim.keys result=error domain=%s error=\"%s\"",
		    domain, error);
		return d;
	}
	d->keys = xcalloc(n ? n : 1, sizeof(*d->keys));
	for (size_t i = 0; i < n; i++) {
		struct dkim_key *k = dkim_key_load(files[i].alg, domain,
		    files[i].selector, files[i].privkey);
		if (k == NULL) {
			log_warn("event=dkim.keys result=unreadable domain=%s "
			    "selector=%s", domain, files[i].selector);
			continue;
		}
		d->keys[d->nkeys++] = k;
	}
	dkim_keyfiles_free(files, n);
	return d;
}

static void
signer_work(void *arg, void *ctx)
{
	struct signer_job *j = arg;
	struct signer_thread *t = ctx;
	struct dkim_msg *m = dkim_msg_new();
	char buf[64 * 1024];
	uint64_t off = 0;

	while (off < j->size) {
		ssize_t n = spool_copy_pread(&j->src, buf, sizeof(buf), off);
		if (n <= 0)
			break;
		dkim_msg_update(m, buf, (size_t)n);
		off += (uint64_t)n;
	}
	char *from = dkim_msg_header_count(m, "From") == 1 ?
	    dkim_msg_header_value(m, "From", 0) : NULL;
	char *domain = from ? dmarc_from_domain(from) : NULL;
	struct signer_domain *d = domain ? signer_keys(t, domain) : NULL;
	char *hdrs = xstrdup("");

	for (size_t i = 0; d != NULL && i < d->nkeys; i++) {
		char *sig = dkim_sign(m, d->keys[i], util_time());
		if (sig == NULL)
			continue;
		char *joined = xasprintf("%s%s", sig, hdrs);
		free(sig);
		free(hdrs);
		hdrs = joined;
	}
	j->headers = hdrs;
	j->domain = domain;
	free(from);
	dkim_msg_free(m);
}

static void
signer_done(void *arg, bool cancelled)
{
	struct signer_job *j = arg;

	if (!cancelled)
		j->cb(j->token, j->headers ? j->headers : "", j->domain,
		    j->arg);
	spool_copy_clear(&j->src);
	free(j->headers);
	free(j->domain);
	free(j);
}

struct signer *
signer_new(struct event_base *base, const struct cfg *cfg)
{
	struct signer *s = xcalloc(1, sizeof(*s));

	s->cfg = cfg;
	s->keydir = dkim_keys_dir(cfg);
	s->wq = workq_new(base, SIGNER_THREADS, SIGNER_MAX_PENDING,
	    signer_thread_init, signer_thread_fini, s);
	return s;
}

void
signer_free(struct signer *s)
{
	if (s == NULL)
		return;
	workq_free(s->wq);
	free(s->keydir);
	free(s);
}

uint64_t
signer_submit(struct signer *s, int spool_fd, const unsigned char *mem,
    uint64_t size, signer_done_cb *cb, void *arg)
{
	struct signer_job *j = xcalloc(1, sizeof(*j));

	if (spool_copy_init(&j->src, spool_fd, mem, size) != 0) {
		free(j);
		return 0;
	}
	j->s = s;
	j->size = size;
	j->cb = cb;
	j->arg = arg;
	uint64_t token = workq_submit(s->wq, j, signer_work, signer_done);
	if (token == 0) {
		spool_copy_clear(&j->src);
		free(j);
		return 0;
	}
	/* The done callback runs on this thread, later: safe to set now. */
	j->token = token;
	return token;
}

void
signer_cancel(struct signer *s, uint64_t token)
{
	workq_cancel(s->wq, token);
}
