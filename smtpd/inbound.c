/*
 * Inbound checks (inbound.h): the job a worker thread runs for one
 * message — read the spool once through the DKIM canonicaliser, SPF,
 * each DKIM signature's key lookup and verification, DMARC — and the
 * Authentication-Results header built from it. Owns the worker pool
 * (common/workq); the workers ask the loop's resolver (mailauth/dns.h,
 * dns_lookup_sync), so every lookup shares one cache. Also applies the
 * forged-field scanner (arstrip.h) to a finished message's spool, on the
 * loop, for every listener.
 *
 * Slow DNS: every lookup of one message shares one deadline, taken at
 * submission ([smtpd] check_timeout): past it the lookups fail at once
 * (dns_lookup_sync_until) and the checks report temperror. And a sender
 * whose DNS never answers must not hold the pool: at most
 * INBOUND_PER_SENDER messages of one sender domain (MAIL FROM's, or the
 * HELO name for <>) are in the pool at a time; the rest wait here, on the
 * loop, without a thread, their deadline running, until one of that
 * domain's finishes. Other senders find a free thread at once.
 */
#include "smtpd/inbound.h"
#include "smtpd/spool.h"
#include "smtpd/arstrip.h"
#include "common/config.h"
#include "mailauth/dkim.h"
#include "mailauth/dmarc.h"
#include "mailauth/dns.h"
#include "common/log.h"
#include "common/stats.h"
#include "mailauth/spf.h"
#include "common/util.h"
#include "common/workq.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define INBOUND_THREADS		8	/* DNS-bound, not CPU-bound */
#define INBOUND_MAX_PENDING	1024	/* held + in the pool */
/* Of one sender domain at a time in the pool: less than half of it, so
 * that one black-holed domain leaves most threads to everyone else. */
#define INBOUND_PER_SENDER	2
#define INBOUND_MAX_SIGS	8	/* DKIM signatures checked per message */

struct inbound {
	const struct cfg *cfg;
	struct dns *dns;	/* borrowed: the loop's resolver */
	struct workq *wq;
	struct inbound_job *jobs;	/* in the pool, then held (FIFO) */
	size_t njobs;
	uint64_t last_token;
	bool stopping;
};

struct inbound_job {
	struct inbound_job *next, **prevp;	/* in->jobs */
	struct inbound *in;
	uint64_t wq_token;	/* 0: held, not in the pool yet */
	char *sender;		/* sender domain, lower case */
	uint64_t deadline_ms;	/* for every lookup (util_now_ms) */
	char *ip, *helo, *mail_from;
	struct spool_copy src;	/* the caller's spool: dup or copy */
	uint64_t size;
	inbound_done_cb *cb;
	void *arg;
	uint64_t token;
	struct inbound_result res;
};

struct inbound *
inbound_new(struct event_base *base, const struct cfg *cfg, struct dns *dns)
{
	struct inbound *in = xcalloc(1, sizeof(*in));

	in->cfg = cfg;
	in->dns = dns;
	/* Room for a job whose done() is running while the next one of
	 * its sender is submitted. */
	in->wq = workq_new(base, INBOUND_THREADS, INBOUND_MAX_PENDING + 1,
	    NULL, NULL, NULL);
	return in;
}

static void inbound_job_free(struct inbound_job *);

void
inbound_free(struct inbound *in)
{
	struct inbound_job *j;

	if (in == NULL)
		return;
	in->stopping = true;
	/* The loop has stopped: workers waiting on DNS give up now. */
	if (in->dns != NULL)
		dns_sync_close(in->dns);
	workq_free(in->wq);
	/* Held jobs never reached the pool: dropped like cancelled ones. */
	while ((j = in->jobs) != NULL) {
		assert(j->wq_token == 0);
		inbound_job_free(j);
	}
	free(in);
}

/* pread/pwrite all of len, restarting on EINTR; -1 with errno (EIO on
 * a short file). */
static int
inbound_pio(int fd, void *buf, size_t len, uint64_t off, bool wr)
{
	unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = wr ? pwrite(fd, p, len, (off_t)off) :
		    pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int
inbound_strip(const char *id, int fd, unsigned char *mem, uint64_t *size_r,
    unsigned *removed_r)
{
	uint64_t size = *size_r, src, dst;
	size_t hlen = 0, kept = 0, have = 0, want, chunk = 64 * 1024;
	enum arstrip_status st;
	char *buf = NULL;

	*removed_r = 0;
	if (size == 0)
		return 0;
	if (mem != NULL) {
		st = arstrip_header((char *)mem, (size_t)size, true, id,
		    ARSTRIP_MAX_HEADER, &hlen, &kept, removed_r);
		if (st == ARSTRIP_TOO_LARGE)
			return 1;
		assert(st == ARSTRIP_DONE);
		memmove(mem + kept, mem + hlen, (size_t)size - hlen);
		*size_r = size - (hlen - kept);
		return 0;
	}

	/* A disk spool: its first 64 KB hold the header section of almost
	 * every message; read up to the limit (+2 for the empty line) only
	 * when they do not. */
	for (;;) {
		want = size < chunk ? (size_t)size : chunk;
		buf = xrealloc(buf, want);
		if (inbound_pio(fd, buf + have, want - have, have, false) != 0)
			goto fail;
		have = want;
		st = arstrip_header(buf, have, have == size, id,
		    ARSTRIP_MAX_HEADER, &hlen, &kept, removed_r);
		if (st != ARSTRIP_MORE)
			break;
		/* MORE only comes with fewer than max + 2 bytes. */
		assert(chunk < ARSTRIP_MAX_HEADER + 2);
		chunk = ARSTRIP_MAX_HEADER + 2;
	}
	if (st == ARSTRIP_TOO_LARGE) {
		free(buf);
		return 1;
	}
	if (*removed_r == 0) {
		free(buf);
		return 0;
	}
	/* Rewrite in place: the kept fields, then the rest of the message
	 * moved down (reads stay ahead of writes), then the new end. The
	 * spool is ours alone until the checks or delivery get it. */
	if (inbound_pio(fd, buf, kept, 0, true) != 0)
		goto fail;
	for (src = hlen, dst = kept; src < size;) {
		size_t n = size - src < have ? (size_t)(size - src) : have;

		if (inbound_pio(fd, buf, n, src, false) != 0 ||
		    inbound_pio(fd, buf, n, dst, true) != 0)
			goto fail;
		src += n;
		dst += n;
	}
	if (ftruncate(fd, (off_t)dst) != 0)
		goto fail;
	free(buf);
	*size_r = dst;
	return 0;
fail:
	free(buf);
	return -1;
}

static void
inbound_append(char **s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
inbound_append(char **s, const char *fmt, ...)
{
	va_list ap;
	char *add, *joined;

	va_start(ap, fmt);
	if (vasprintf(&add, fmt, ap) < 0)
		abort();
	va_end(ap);
	joined = xasprintf("%s%s", *s ? *s : "", add);
	free(add);
	free(*s);
	*s = joined;
}

/* Values in Authentication-Results are tokens; anything odd is quoted
 * away by dropping it (domains and selectors are LDH already). */
static const char *
inbound_token(const char *s, char *buf, size_t size)
{
	size_t o = 0;

	for (; *s && o + 1 < size; s++)
		if (isalnum((unsigned char)*s) || strchr(".-_@+", *s))
			buf[o++] = *s;
	buf[o] = '\0';
	return o ? buf : "unknown";
}

static void
inbound_work(void *arg, void *ctx)
{
	struct inbound_job *j = arg;
	struct dns *dns = j->in->dns;
	const char *hostname = j->in->cfg->server.hostname;
	struct dkim_msg *m = dkim_msg_new();
	char buf[64 * 1024], tok[256], tok2[256];
	uint64_t off = 0;
	char *ar = NULL;
	/* SPF and DMARC lookups share the message's DNS deadline. */
	struct spf_dns_until idns = { dns, j->deadline_ms };

	while (off < j->size) {
		ssize_t n = spool_copy_pread(&j->src, buf, sizeof(buf), off);
		if (n <= 0)
			break;
		dkim_msg_update(m, buf, (size_t)n);
		off += (uint64_t)n;
	}

	/* SPF */
	struct spf_request sreq = {
		.ip = j->ip, .sender = j->mail_from, .helo = j->helo,
		.receiver = hostname, .lookup = dns ? spf_lookup_dns_until : NULL,
		.ctx = &idns,
	};
	char *spf_domain = NULL;
	const char *why = NULL;
	enum spf_result spf = dns ? spf_check(&sreq, &spf_domain, &why) :
	    SPF_TEMPERROR;
	if (spf_domain == NULL)
		spf_domain = xstrdup(j->helo);
	inbound_append(&ar, "Authentication-Results: %s;\r\n\tspf=%s %s=%s",
	    hostname, spf_result_str(spf),
	    j->mail_from[0] ? "smtp.mailfrom" : "smtp.helo",
	    inbound_token(j->mail_from[0] ? j->mail_from : j->helo, tok,
	    sizeof(tok)));

	/* DKIM: every signature (bounded) */
	struct dmarc_dkim passed[INBOUND_MAX_SIGS];
	size_t npassed = 0;
	size_t nsig = dkim_msg_signature_count(m);
	const char *dkim_word = "none";
	if (nsig == 0)
		inbound_append(&ar, ";\r\n\tdkim=none");
	for (size_t i = 0; i < nsig && i < INBOUND_MAX_SIGS; i++) {
		const char *d = NULL, *s = NULL, *dwhy = "";
		enum dkim_result r = DKIM_NEUTRAL;
		const char *word;

		if (dkim_msg_signature_ids(m, i, &d, &s) < 0) {
			inbound_append(&ar, ";\r\n\tdkim=neutral "
			    "(signature syntax error)");
			continue;
		}
		char *name = xasprintf("%s._domainkey.%s", s, d);
		char **txt = NULL;
		size_t ntxt = 0;
		enum dns_status st = dns ? dns_lookup_sync_until(dns, DNS_T_TXT,
		    name, j->deadline_ms, &txt, &ntxt) : DNS_TEMPFAIL;
		free(name);
		if (st == DNS_TEMPFAIL) {
			word = "temperror";
			dwhy = "key lookup failed";
		} else if (st != DNS_OK) {
			word = "permerror";
			dwhy = "no key for signature";
		} else {
			r = dkim_verify_records(m, i,
			    (const char *const *)txt, ntxt, &dwhy);
			word = r == DKIM_PASS ? "pass" : r == DKIM_FAIL ?
			    "fail" : r == DKIM_PERMERROR ? "permerror" :
			    "neutral";
		}
		dns_rr_free(txt, ntxt);
		if (r == DKIM_PASS && npassed < INBOUND_MAX_SIGS)
			passed[npassed++].domain = d;
		if (i == 0 || r == DKIM_PASS)
			dkim_word = word;
		inbound_append(&ar, ";\r\n\tdkim=%s (%s) header.d=%s "
		    "header.s=%s", word, dwhy,
		    inbound_token(d, tok, sizeof(tok)),
		    inbound_token(s, tok2, sizeof(tok2)));
	}

	/* DMARC */
	const char *dmarc_word = "none";
	size_t nfrom = dkim_msg_header_count(m, "From");
	char *fromv = nfrom == 1 ? dkim_msg_header_value(m, "From", 0) : NULL;
	char *from_domain = fromv ? dmarc_from_domain(fromv) : NULL;
	if (from_domain != NULL && dns != NULL) {
		struct dmarc_request dreq = {
			.from_domain = from_domain, .spf = spf,
			.spf_domain = spf_domain, .dkim = passed,
			.ndkim = npassed, .lookup = spf_lookup_dns_until,
			.ctx = &idns,
		};
		struct dmarc_outcome out;
		dmarc_check(&dreq, &out);
		dmarc_word = dmarc_result_str(out.result);
		inbound_append(&ar, ";\r\n\tdmarc=%s", dmarc_word);
		if (out.result == DMARC_FAIL)
			inbound_append(&ar, " (p=%s)",
			    dmarc_policy_str(out.policy));
		inbound_append(&ar, " header.from=%s",
		    inbound_token(from_domain, tok, sizeof(tok)));
		if (out.result == DMARC_FAIL && out.apply) {
			if (out.disposition == DMARC_P_REJECT) {
				j->res.reject = true;
				j->res.reject_text = "5.7.1 Message rejected "
				    "by the sender domain's DMARC policy";
			} else if (out.disposition == DMARC_P_QUARANTINE) {
				inbound_append(&ar, "\r\nX-Carteiro-DMARC: "
				    "quarantine");
			}
		}
	} else {
		inbound_append(&ar, ";\r\n\tdmarc=%s", nfrom == 1 ?
		    "none" : "permerror (not exactly one From address)");
		if (nfrom != 1)
			dmarc_word = "permerror";
	}
	inbound_append(&ar, "\r\n");
	snprintf(j->res.summary_buf, sizeof(j->res.summary_buf),
	    "spf=%s dkim=%s dmarc=%s", spf_result_str(spf), dkim_word,
	    dmarc_word);
	stats_inc_word(STATS_SPF_NONE, STATS_SPF_PERMERROR,
	    spf_result_str(spf));
	stats_inc_word(STATS_DKIM_NONE, STATS_DKIM_PERMERROR, dkim_word);
	stats_inc_word(STATS_DMARC_NONE, STATS_DMARC_PERMERROR, dmarc_word);
	j->res.summary = j->res.summary_buf;
	j->res.headers = ar;
	free(spf_domain);
	free(fromv);
	free(from_domain);
	dkim_msg_free(m);
}

static void
inbound_job_free(struct inbound_job *j)
{
	if (j->prevp != NULL) {
		*j->prevp = j->next;
		if (j->next != NULL)
			j->next->prevp = j->prevp;
		j->in->njobs--;
	}
	spool_copy_clear(&j->src);
	free(j->res.headers);
	free(j->sender);
	free(j->ip);
	free(j->helo);
	free(j->mail_from);
	free(j);
}

/* Jobs of this sender in the pool. */
static size_t
inbound_sender_running(struct inbound *in, const char *sender)
{
	struct inbound_job *j;
	size_t n = 0;

	for (j = in->jobs; j != NULL; j = j->next)
		if (j->wq_token != 0 && strcmp(j->sender, sender) == 0)
			n++;
	return n;
}

static void inbound_done(void *, bool);

/* Into the pool. 0, or -1 when it refuses (stopping). */
static int
inbound_start(struct inbound_job *j)
{
	j->wq_token = workq_submit(j->in->wq, j, inbound_work, inbound_done);
	return j->wq_token != 0 ? 0 : -1;
}

/* A job of this sender left the pool: its oldest held one goes in. */
static void
inbound_next(struct inbound *in, const char *sender)
{
	struct inbound_job *j;

	if (in->stopping)
		return;
	for (j = in->jobs; j != NULL; j = j->next)
		if (j->wq_token == 0 && strcmp(j->sender, sender) == 0)
			break;
	if (j == NULL || inbound_start(j) == 0)
		return;
	/* Cannot happen while running (room for one more): no checks, as
	 * when the pool is full at submission. */
	j->res.headers = xstrdup("");
	j->res.summary = "unchecked";
	j->cb(j->token, &j->res, j->arg);
	inbound_job_free(j);
}

static void
inbound_done(void *arg, bool cancelled)
{
	struct inbound_job *j = arg;
	struct inbound *in = j->in;
	char *sender = j->sender;

	if (!cancelled) {
		if (j->res.headers == NULL) {
			/* The work never ran (pool stopping): no checks. */
			j->res.headers = xstrdup("");
			j->res.summary = "unchecked";
		}
		j->cb(j->token, &j->res, j->arg);
	}
	j->sender = NULL;
	inbound_job_free(j);
	inbound_next(in, sender);
	free(sender);
}

/* The domain the checks ask about first: MAIL FROM's, else the HELO
 * name. */
static char *
inbound_sender(const char *mail_from, const char *helo)
{
	const char *at = strrchr(mail_from, '@');

	return util_strlower(xstrdup(at != NULL ? at + 1 :
	    mail_from[0] != '\0' ? mail_from : helo));
}

uint64_t
inbound_submit(struct inbound *in, const struct inbound_req *req,
    inbound_done_cb *cb, void *arg)
{
	struct inbound_job *j, **tail;

	if (in->njobs >= INBOUND_MAX_PENDING || in->stopping)
		return 0;
	j = xcalloc(1, sizeof(*j));
	if (spool_copy_init(&j->src, req->spool_fd, req->mem,
	    req->data_size) != 0) {
		free(j);
		return 0;
	}
	j->in = in;
	j->ip = xstrdup(req->ip);
	j->helo = xstrdup(req->helo ? req->helo : "");
	j->mail_from = xstrdup(req->mail_from ? req->mail_from : "");
	j->sender = inbound_sender(j->mail_from, j->helo);
	j->size = req->data_size;
	j->cb = cb;
	j->arg = arg;
	/* The budget runs from the end of data, held or not (0: none; the
	 * configuration's minimum is 1 s). */
	if (in->cfg->smtpd.check_timeout != 0)
		j->deadline_ms = util_now_ms() +
		    (uint64_t)in->cfg->smtpd.check_timeout * 1000;
	if (inbound_sender_running(in, j->sender) < INBOUND_PER_SENDER &&
	    inbound_start(j) != 0) {
		inbound_job_free(j);
		return 0;
	}
	j->token = ++in->last_token;
	for (tail = &in->jobs; *tail != NULL; tail = &(*tail)->next)
		;
	j->prevp = tail;
	*tail = j;
	in->njobs++;
	return j->token;
}

void
inbound_cancel(struct inbound *in, uint64_t token)
{
	struct inbound_job *j;

	for (j = in->jobs; j != NULL; j = j->next)
		if (j->token == token)
			break;
	if (j == NULL)
		return;
	if (j->wq_token != 0)
		workq_cancel(in->wq, j->wq_token);	/* done() frees it */
	else
		inbound_job_free(j);
}
