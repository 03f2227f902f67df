/*
 * The message as milters see it (our trace/check fields, then the
 * received header section, split into fields; the body left in the
 * spool) and its rewrite after the end-of-body modifications: add,
 * insert, change and delete header, replace body, the quarantine flag.
 * Unchanged fields keep their received bytes. Recipients and the
 * verdict are milter_tx.c's.
 */
#include "smtpd/milter.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/util.h"
#include "smtpd/delivery.h"
#include "smtpd/milter_proto.h"

/* Where the rewritten message goes: memory up to max, then a file. */
struct milter_out {
	unsigned char *mem;	/* owned until handed out */
	size_t len, cap, max;
	int fd;			/* -1 until the message outgrows max */
	const char *dir;
	uint64_t size;
};

/* A field in the rewritten header list (strings borrowed). */
struct milter_field {
	const char *name;
	const char *value;
	const char *raw;	/* NULL: write name and value */
	size_t rawlen;
};

static int milter_out_put(struct milter_out *o, const void *p, size_t n);
static int milter_out_value(struct milter_out *o, const char *v);
static void milter_hdr_add(struct milter_msg *m, const char *p, size_t n);
static ssize_t milter_msg_read(int fd, const unsigned char *mem,
    uint64_t size, void *buf, size_t len, uint64_t off);
static size_t milter_field_find(const struct milter_field *f, size_t n,
    const char *name, uint32_t index);
static void milter_field_insert(struct milter_field **f, size_t *n,
    size_t at, const char *name, const char *value);

static ssize_t
milter_msg_read(int fd, const unsigned char *mem, uint64_t size, void *buf,
    size_t len, uint64_t off)
{
	ssize_t n;

	if (off >= size)
		return 0;
	if (len > size - off)
		len = (size_t)(size - off);
	if (fd < 0) {
		memcpy(buf, mem + off, len);
		return (ssize_t)len;
	}
	do
		n = pread(fd, buf, len, (off_t)off);
	while (n < 0 && errno == EINTR);
	return n;
}

ssize_t
milter_msg_body_read(const struct milter_msg *m, void *buf, size_t len,
    uint64_t off)
{
	if (off >= m->body_len)
		return 0;
	if (len > m->body_len - off)
		len = (size_t)(m->body_len - off);
	return milter_msg_read(m->fd, m->mem, m->body_off + m->body_len,
	    buf, len, m->body_off + off);
}

/* One field, p[0..n) with its line end. */
static void
milter_hdr_add(struct milter_msg *m, const char *p, size_t n)
{
	struct milter_hdr *h;
	const char *colon = memchr(p, ':', n), *e = p + n;
	size_t nl, i, k = 0;

	m->h = xrealloc(m->h, (m->nh + 1) * sizeof(*m->h));
	h = &m->h[m->nh++];
	h->raw = xmalloc(n + 1);
	memcpy(h->raw, p, n);
	h->raw[n] = '\0';
	h->rawlen = n;
	nl = (size_t)(colon - p);
	while (nl > 0 && (p[nl - 1] == ' ' || p[nl - 1] == '\t'))
		nl--;
	h->name = xmalloc(nl + 1);
	memcpy(h->name, p, nl);
	h->name[nl] = '\0';
	/* The value: folds as LF (Sendmail and Postfix hand milters
	 * header values that way), no final line end. */
	if (e > colon + 1 && e[-1] == '\n')
		e--;
	if (e > colon + 1 && e[-1] == '\r')
		e--;
	h->value = xmalloc((size_t)(e - colon));
	for (i = 1; colon + i < e; i++) {
		if (colon[i] == '\r' && colon + i + 1 < e &&
		    colon[i + 1] == '\n')
			continue;
		h->value[k++] = colon[i];
	}
	h->value[k] = '\0';
}

int
milter_msg_load(struct milter_msg *m, const char *prefix, int fd,
    const unsigned char *mem, uint64_t size, size_t limit)
{
	size_t plen = strlen(prefix), want, len, pos = 0, start, eol;
	char *buf;
	ssize_t got;

	memset(m, 0, sizeof(*m));
	m->fd = fd;
	m->mem = mem;
	want = size < limit ? (size_t)size : limit;
	buf = xmalloc(plen + want + 1);
	memcpy(buf, prefix, plen);
	got = milter_msg_read(fd, mem, size, buf + plen, want, 0);
	if (got < 0 || (size_t)got != want) {
		free(buf);
		if (got >= 0)
			errno = EIO;
		return -1;
	}
	len = plen + want;
	for (;;) {
		char *lf;

		if (pos >= len)
			break;		/* all header, no body */
		if (buf[pos] == '\n' || (buf[pos] == '\r' && pos + 1 < len &&
		    buf[pos + 1] == '\n')) {
			m->blank = true;
			pos += buf[pos] == '\n' ? 1 : 2;
			break;
		}
		/* A field: its first line, then continuation lines. */
		start = pos;
		for (;;) {
			lf = memchr(buf + pos, '\n', len - pos);
			if (lf == NULL) {
				if (plen + size > len)
					goto big;
				eol = len;
			} else {
				eol = (size_t)(lf - buf) + 1;
			}
			pos = eol;
			if (pos >= len || (buf[pos] != ' ' &&
			    buf[pos] != '\t'))
				break;
		}
		if (buf[start] == ' ' || buf[start] == '\t' ||
		    memchr(buf + start, ':', pos - start) == NULL) {
			/* Not a field: the body starts here (RFC 5322
			 * 2.1 wants the empty line; tolerate it missing). */
			pos = start;
			break;
		}
		milter_hdr_add(m, buf + start, pos - start);
	}
	free(buf);
	m->body_off = pos - plen;
	m->body_len = size - m->body_off;
	return 0;
big:
	free(buf);
	milter_msg_clear(m);
	errno = EMSGSIZE;
	return -1;
}

void
milter_msg_clear(struct milter_msg *m)
{
	size_t i;

	for (i = 0; i < m->nh; i++) {
		free(m->h[i].name);
		free(m->h[i].value);
		free(m->h[i].raw);
	}
	free(m->h);
	m->h = NULL;
	m->nh = 0;
}

bool
milter_result_flags_spam(const struct milter_result *res)
{
	size_t i;

	if (res->quarantine != NULL)
		return true;
	for (i = 0; i < res->nmods; i++)
		if ((res->mods[i].cmd == MILTER_R_ADDHEADER ||
		    res->mods[i].cmd == MILTER_R_INSHEADER ||
		    res->mods[i].cmd == MILTER_R_CHGHEADER) &&
		    strcasecmp(res->mods[i].name, "X-Spam") == 0 &&
		    strncasecmp(res->mods[i].value, "yes", 3) == 0)
			return true;
	return false;
}

bool
milter_result_rewrites(const struct milter_result *res)
{
	size_t i;

	if (res->body_replaced || res->quarantine != NULL)
		return true;
	for (i = 0; i < res->nmods; i++)
		if (res->mods[i].cmd == MILTER_R_ADDHEADER ||
		    res->mods[i].cmd == MILTER_R_INSHEADER ||
		    res->mods[i].cmd == MILTER_R_CHGHEADER)
			return true;
	return false;
}

static int
milter_out_put(struct milter_out *o, const void *p, size_t n)
{
	const unsigned char *b = p;
	ssize_t w;

	o->size += n;
	if (o->fd < 0 && o->len + n > o->max) {
		if ((o->fd = delivery_spool_open(o->dir)) < 0)
			return -1;
		if (milter_out_put(o, o->mem, o->len) != 0)
			return -1;
		o->size -= o->len;
		free(o->mem);
		o->mem = NULL;
		o->len = o->cap = 0;
	}
	if (o->fd < 0) {
		if (o->len + n > o->cap) {
			o->cap = (o->len + n) * 2 < o->max ?
			    (o->len + n) * 2 : o->max;
			o->mem = xrealloc(o->mem, o->cap ? o->cap : 1);
		}
		memcpy(o->mem + o->len, b, n);
		o->len += n;
		return 0;
	}
	while (n > 0) {
		w = write(o->fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/* A milter's value: bare LF (folds) becomes CRLF. */
static int
milter_out_value(struct milter_out *o, const char *v)
{
	const char *lf;

	while ((lf = strchr(v, '\n')) != NULL) {
		size_t n = (size_t)(lf - v);

		if (n > 0 && v[n - 1] == '\r')
			n--;
		if (milter_out_put(o, v, n) != 0 ||
		    milter_out_put(o, "\r\n", 2) != 0)
			return -1;
		v = lf + 1;
	}
	return milter_out_put(o, v, strlen(v));
}

/* The index-th (1-based; 0 as 1, as Sendmail) field called name, or n. */
static size_t
milter_field_find(const struct milter_field *f, size_t n, const char *name,
    uint32_t index)
{
	size_t i;
	uint32_t seen = 0;

	if (index == 0)
		index = 1;
	for (i = 0; i < n; i++)
		if (strcasecmp(f[i].name, name) == 0 && ++seen == index)
			return i;
	return n;
}

static void
milter_field_insert(struct milter_field **f, size_t *n, size_t at,
    const char *name, const char *value)
{
	*f = xrealloc(*f, (*n + 1) * sizeof(**f));
	if (at > *n)
		at = *n;
	memmove(*f + at + 1, *f + at, (*n - at) * sizeof(**f));
	(*f)[at].name = name;
	(*f)[at].value = value;
	(*f)[at].raw = NULL;
	(*f)[at].rawlen = 0;
	(*n)++;
}

int
milter_apply(const struct milter_msg *m, const struct milter_result *res,
    const char *dir, size_t mem_max, int *fd_r, unsigned char **mem_r,
    uint64_t *size_r)
{
	struct milter_out o = { .fd = -1, .dir = dir, .max = mem_max };
	struct milter_field *f;
	char *status = NULL;
	size_t n = m->nh, i, at;
	unsigned char buf[65536];
	uint64_t off;
	int rc = -1;

	f = xcalloc(n + 1, sizeof(*f));
	for (i = 0; i < n; i++) {
		f[i].name = m->h[i].name;
		f[i].value = m->h[i].value;
		f[i].raw = m->h[i].raw;
		f[i].rawlen = m->h[i].rawlen;
	}
	for (i = 0; i < res->nmods; i++) {
		const struct milter_mod *d = &res->mods[i];

		switch (d->cmd) {
		case MILTER_R_ADDHEADER:
			milter_field_insert(&f, &n, n, d->name, d->value);
			break;
		case MILTER_R_INSHEADER:
			milter_field_insert(&f, &n, d->index, d->name,
			    d->value);
			break;
		case MILTER_R_CHGHEADER:
			at = milter_field_find(f, n, d->name, d->index);
			if (at == n) {
				/* libmilter: changing a missing field
				 * adds it; deleting one is a no-op. */
				if (d->value[0] != '\0')
					milter_field_insert(&f, &n, n,
					    d->name, d->value);
			} else if (d->value[0] == '\0') {
				memmove(f + at, f + at + 1,
				    (n - at - 1) * sizeof(*f));
				n--;
			} else {
				f[at].value = d->value;
				f[at].raw = NULL;
			}
			break;
		default:
			break;
		}
	}
	if (milter_result_flags_spam(res)) {
		/* Thunderbird's "trust junk mail headers set by
		 * SpamAssassin" reads this pair; rspamd's add_header action
		 * only says "X-Spam: Yes". */
		if (milter_field_find(f, n, "X-Spam-Flag", 1) == n)
			milter_field_insert(&f, &n, n, "X-Spam-Flag", "YES");
		if (milter_field_find(f, n, "X-Spam-Status", 1) == n) {
			char *c;

			status = res->quarantine != NULL ?
			    xasprintf("Yes, quarantined=\"%s\"",
			    res->quarantine) : xstrdup("Yes, flagged by "
			    "content filter");
			for (c = status; *c; c++)
				if ((unsigned char)*c < 32 ||
				    (unsigned char)*c > 126)
					*c = '?';
			milter_field_insert(&f, &n, n, "X-Spam-Status",
			    status);
		}
	}
	for (i = 0; i < n; i++) {
		if (f[i].raw != NULL) {
			if (milter_out_put(&o, f[i].raw, f[i].rawlen) != 0)
				goto out;
			continue;
		}
		if (milter_out_put(&o, f[i].name, strlen(f[i].name)) != 0 ||
		    milter_out_put(&o, ":", 1) != 0 ||
		    (f[i].value[0] != ' ' && f[i].value[0] != '\t' &&
		    milter_out_put(&o, " ", 1) != 0) ||
		    milter_out_value(&o, f[i].value) != 0 ||
		    milter_out_put(&o, "\r\n", 2) != 0)
			goto out;
	}
	if ((m->blank || res->body_replaced) &&
	    milter_out_put(&o, "\r\n", 2) != 0)
		goto out;
	if (res->body_replaced) {
		/* A replacement body with LF line ends gets CRLF. */
		const unsigned char *b = res->body;

		for (i = 0; i < res->bodylen; i++) {
			if (b[i] == '\n' && (i == 0 || b[i - 1] != '\r')) {
				if (milter_out_put(&o, "\r\n", 2) != 0)
					goto out;
			} else if (milter_out_put(&o, b + i, 1) != 0) {
				goto out;
			}
		}
	} else {
		for (off = 0; off < m->body_len; ) {
			ssize_t got = milter_msg_body_read(m, buf,
			    sizeof(buf), off);

			if (got <= 0 ||
			    milter_out_put(&o, buf, (size_t)got) != 0)
				goto out;
			off += (uint64_t)got;
		}
	}
	rc = 0;
out:
	free(f);
	free(status);
	if (rc != 0) {
		if (o.fd >= 0)
			close(o.fd);
		free(o.mem);
		return -1;
	}
	*fd_r = o.fd;
	*mem_r = o.fd >= 0 ? NULL : o.mem;
	if (o.fd >= 0)
		free(o.mem);
	*size_r = o.size;
	return 0;
}
