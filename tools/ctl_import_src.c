/*
 * Import sources for carteiroctl mailbox import: an mbox file (mboxo or
 * mboxrd, mmap'ed), a Maildir (cur/ and new/) and Dovecot's
 * dovecot-uidlist beside it (UIDVALIDITY, UIDs, saved POP3 UIDLs), and
 * Dovecot's pop3_uidl_format. Deciding UIDLs and writing to the store is
 * ctl_import.c's.
 */
#include "tools/ctl.h"
#include "tools/ctl_import.h"
#include "common/util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define CTL_UIDLIST_LINE_MAX	8192

static struct ctl_imsg *ctl_isrc_add(struct ctl_isrc *src);
static int ctl_isrc_mbox(const char *path, struct ctl_isrc *src);
static int ctl_isrc_maildir(const char *path, struct ctl_isrc *src);
static int ctl_isrc_uidlist(const char *path, struct ctl_isrc *src);
static int ctl_imsg_cmp(const void *a, const void *b);
static int ctl_imsg_name_cmp(const void *a, const void *b);
static void ctl_crlf_append(char **buf, size_t *len, size_t *cap,
    const char *p, size_t n);

static struct ctl_imsg *
ctl_isrc_add(struct ctl_isrc *src)
{
	struct ctl_imsg *m;

	if ((src->n & (src->n - 1)) == 0)	/* 0, 1, 2, 4, ... */
		src->v = xrealloc(src->v, (src->n ? src->n * 2 : 1) *
		    sizeof(*src->v));
	m = &src->v[src->n++];
	memset(m, 0, sizeof(*m));
	return m;
}

void
ctl_isrc_free(struct ctl_isrc *src)
{
	for (size_t i = 0; i < src->n; i++) {
		struct ctl_imsg *m = &src->v[i];

		free(m->path);
		free(m->name);
		free(m->from_line);
		free(m->guid);
		free(m->saved_uidl);
		free(m->uidl);
		free(m->key);
	}
	free(src->v);
	if (src->map != NULL && src->maplen > 0)
		munmap((void *)src->map, src->maplen);
	memset(src, 0, sizeof(*src));
}

/*
 * mbox: a message starts at a "From " line at the top of the file or
 * after an empty line (RFC 4155: the writer puts one after each
 * message; requiring it keeps an unquoted "From " in a mboxo body from
 * splitting a message). That empty line is not part of the message.
 */
static int
ctl_isrc_mbox(const char *path, struct ctl_isrc *src)
{
	const char *p, *end, *eol, *line;
	struct ctl_imsg *m = NULL;
	struct stat sb;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 ||
	    fstat(fd, &sb) < 0) {
		ctl_err("mailbox import: %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	src->kind = CTL_SRC_MBOX;
	if (sb.st_size == 0) {
		close(fd);
		return 0;
	}
	src->maplen = (size_t)sb.st_size;
	src->map = mmap(NULL, src->maplen, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (src->map == MAP_FAILED) {
		src->map = NULL;
		src->maplen = 0;
		ctl_err("mailbox import: mmap %s: %s", path, strerror(errno));
		return -1;
	}
	p = src->map;
	end = p + src->maplen;
	if (src->maplen < 5 || memcmp(p, "From ", 5) != 0) {
		ctl_err("mailbox import: %s is not an mbox (no \"From \" line "
		    "at the start)", path);
		return -1;
	}
	for (line = p; line < end; line = eol) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		bool sep;

		eol = nl != NULL ? nl + 1 : end;
		sep = (size_t)(end - line) >= 5 && memcmp(line, "From ", 5) ==
		    0 && (line == p || (line - p >= 2 && line[-2] == '\n') ||
		    (line - p >= 3 && line[-2] == '\r' && line[-3] == '\n'));
		if (!sep)
			continue;
		if (m != NULL) {
			m->len = (size_t)(line - p) - m->off;
			/* the empty line before this "From " */
			if (m->len >= 1 && p[m->off + m->len - 1] == '\n')
				m->len--;
			if (m->len >= 1 && p[m->off + m->len - 1] == '\r')
				m->len--;
		}
		m = ctl_isrc_add(src);
		m->from_line = xstrndup(line + 5, (size_t)(eol - line - 5));
		m->from_line[strcspn(m->from_line, "\r\n")] = '\0';
		m->off = (size_t)(eol - p);
	}
	if (m != NULL) {
		m->len = src->maplen - m->off;
		/* the last message's empty line, when there is one */
		if (m->len >= 2 && p[m->off + m->len - 1] == '\n' &&
		    p[m->off + m->len - 2] == '\n')
			m->len--;
	}
	return 0;
}

static int
ctl_imsg_name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct ctl_imsg *)a)->name,
	    ((const struct ctl_imsg *)b)->name);
}

/* Dovecot order: UIDs first (ascending), then unlisted files by name
 * (Maildir names start with the delivery time). */
static int
ctl_imsg_cmp(const void *a, const void *b)
{
	const struct ctl_imsg *x = a, *y = b;
	unsigned long long tx, ty;

	if ((x->uid != 0) != (y->uid != 0))
		return x->uid != 0 ? -1 : 1;
	if (x->uid != y->uid)
		return x->uid < y->uid ? -1 : 1;
	tx = strtoull(x->name, NULL, 10);
	ty = strtoull(y->name, NULL, 10);
	if (tx != ty)
		return tx < ty ? -1 : 1;
	return strcmp(x->name, y->name);
}

/*
 * dovecot-uidlist (version 3: "3 V<uidvalidity> N<next> ...", then
 * "<uid> [<key><value> ...] :<filename>"; version 1: "1 <uidvalidity>
 * <next>", then "<uid> <filename>"). Sets uid, guid (G) and saved_uidl
 * (P, pop3_save_uidl; Dovecot writes an empty P when the UIDL is the
 * base name) of the messages whose base name matches.
 */
static int
ctl_isrc_uidlist(const char *path, struct ctl_isrc *src)
{
	char line[CTL_UIDLIST_LINE_MAX], *p, *name, *tok, *save;
	struct ctl_imsg key, *m;
	unsigned long long v;
	int version;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL) {
		if (errno == ENOENT)
			return 0;
		ctl_err("mailbox import: %s: %s", path, strerror(errno));
		return -1;
	}
	/* By name, to find each listed file with bsearch. */
	if (src->n > 1)
		qsort(src->v, src->n, sizeof(*src->v), ctl_imsg_name_cmp);
	if (fgets(line, sizeof(line), f) == NULL ||
	    sscanf(line, "%d", &version) != 1 ||
	    (version != 1 && version != 3)) {
		fclose(f);
		ctl_err("mailbox import: %s: unknown dovecot-uidlist version",
		    path);
		return -1;
	}
	if (version == 3) {
		p = strstr(line, " V");
		v = p != NULL ? strtoull(p + 2, NULL, 10) : 0;
	} else
		v = strtoull(line + 1, NULL, 10);
	if (v == 0 || v > UINT32_MAX) {
		fclose(f);
		ctl_err("mailbox import: %s: no UIDVALIDITY", path);
		return -1;
	}
	src->uidvalidity = (uint32_t)v;
	src->dovecot = true;
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long long uid;
		char *guid = NULL, *puidl = NULL;

		line[strcspn(line, "\r\n")] = '\0';
		uid = strtoull(line, &p, 10);
		if (uid == 0 || uid > UINT32_MAX || *p != ' ')
			continue;
		if (version == 1)
			name = p + 1;
		else if ((name = strstr(p, " :")) != NULL) {
			*name = '\0';
			name += 2;
			for (tok = strtok_r(p, " ", &save); tok != NULL;
			    tok = strtok_r(NULL, " ", &save)) {
				if (tok[0] == 'G')
					guid = tok + 1;
				else if (tok[0] == 'P')
					puidl = tok + 1;
			}
		} else
			continue;
		name[strcspn(name, ":")] = '\0';
		key.name = name;
		m = bsearch(&key, src->v, src->n, sizeof(*src->v),
		    ctl_imsg_name_cmp);
		if (m == NULL || m->uid != 0)
			continue;	/* gone since, or listed twice */
		m->uid = (uint32_t)uid;
		if (guid != NULL && *guid != '\0')
			m->guid = xstrdup(guid);
		/* An empty P: the saved UIDL is the file's base name. */
		if (puidl != NULL)
			m->saved_uidl = xstrdup(*puidl != '\0' ? puidl :
			    m->name);
	}
	fclose(f);
	return 0;
}

/* Maildir: the regular files of cur/ and new/ (tmp/ is unfinished). */
static int
ctl_isrc_maildir(const char *path, struct ctl_isrc *src)
{
	static const char *const subs[] = { "cur", "new" };
	struct dirent *de;
	struct stat sb;
	char *d, *f;
	DIR *dir;
	int found = 0;

	src->kind = CTL_SRC_MAILDIR;
	for (size_t k = 0; k < nitems(subs); k++) {
		d = xasprintf("%s/%s", path, subs[k]);
		if ((dir = opendir(d)) == NULL) {
			free(d);
			continue;
		}
		found++;
		while ((de = readdir(dir)) != NULL) {
			struct ctl_imsg *m;

			if (de->d_name[0] == '.')
				continue;
			f = xasprintf("%s/%s", d, de->d_name);
			if (stat(f, &sb) < 0 || !S_ISREG(sb.st_mode)) {
				free(f);
				continue;
			}
			m = ctl_isrc_add(src);
			m->path = f;
			m->name = xstrndup(de->d_name,
			    strcspn(de->d_name, ":"));
		}
		closedir(dir);
		free(d);
	}
	if (found == 0) {
		ctl_err("mailbox import: %s is neither an mbox file nor a "
		    "Maildir (no cur/ or new/)", path);
		return -1;
	}
	d = xasprintf("%s/dovecot-uidlist", path);
	found = ctl_isrc_uidlist(d, src);
	free(d);
	if (found < 0)
		return -1;
	if (src->n > 1)
		qsort(src->v, src->n, sizeof(*src->v), ctl_imsg_cmp);
	return 0;
}

int
ctl_isrc_open(const char *path, struct ctl_isrc *src)
{
	struct stat sb;

	memset(src, 0, sizeof(*src));
	if (stat(path, &sb) < 0) {
		ctl_err("mailbox import: %s: %s", path, strerror(errno));
		return -1;
	}
	if (S_ISDIR(sb.st_mode))
		return ctl_isrc_maildir(path, src);
	return ctl_isrc_mbox(path, src);
}

/* Append p[0..n) with every bare LF as CRLF. */
static void
ctl_crlf_append(char **buf, size_t *len, size_t *cap, const char *p,
    size_t n)
{
	if (*len + 2 * n + 1 > *cap) {
		*cap = *len + 2 * n + 1;
		*buf = xrealloc(*buf, *cap);
	}
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n' && (i > 0 ? p[i - 1] : (*len > 0 ?
		    (*buf)[*len - 1] : 0)) != '\r')
			(*buf)[(*len)++] = '\r';
		(*buf)[(*len)++] = p[i];
	}
}

int
ctl_isrc_load(const struct ctl_isrc *src, size_t i, char **buf_r,
    size_t *len_r)
{
	const struct ctl_imsg *m = &src->v[i];
	size_t len = 0, cap = 0;
	char *buf = NULL;

	if (src->kind == CTL_SRC_MBOX) {
		const char *p = src->map + m->off, *end = p + m->len, *eol;

		cap = 2 * m->len + 1;
		buf = xmalloc(cap);
		for (; p < end; p = eol) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			const char *q = p;

			eol = nl != NULL ? nl + 1 : end;
			/* mboxrd: ">From " was "From ", ">>From " ">From " */
			while (q < eol && *q == '>')
				q++;
			if (q > p && eol - q >= 5 && memcmp(q, "From ", 5) == 0)
				p++;
			ctl_crlf_append(&buf, &len, &cap, p,
			    (size_t)(eol - p));
		}
	} else {
		char tmp[65536];
		ssize_t n;
		int fd = open(m->path, O_RDONLY | O_CLOEXEC);

		if (fd < 0) {
			ctl_err("mailbox import: %s: %s", m->path,
			    strerror(errno));
			return -1;
		}
		while ((n = read(fd, tmp, sizeof(tmp))) > 0)
			ctl_crlf_append(&buf, &len, &cap, tmp, (size_t)n);
		close(fd);
		if (n < 0) {
			ctl_err("mailbox import: %s: %s", m->path,
			    strerror(errno));
			free(buf);
			return -1;
		}
	}
	if (buf == NULL)
		buf = xstrdup("");
	*buf_r = buf;
	*len_r = len;
	return 0;
}

int
ctl_uidl_expand(const char *fmt, const struct ctl_imsg *m,
    uint32_t uidvalidity, char **out_r, const char **error_r)
{
	char out[256], val[256];
	size_t o = 0, vl;
	const char *p;

	for (p = fmt; *p != '\0'; p++) {
		bool zero = false, hex = false, upper = false, lower = false;
		unsigned width = 0;
		uint64_t num = 0;
		bool isnum = true;

		if (*p != '%') {
			if (o + 1 >= sizeof(out))
				goto toolong;
			out[o++] = *p;
			continue;
		}
		p++;
		if (*p == '%') {
			if (o + 1 >= sizeof(out))
				goto toolong;
			out[o++] = '%';
			continue;
		}
		if (*p == '0')
			zero = true;
		while (isdigit((unsigned char)*p))
			width = width * 10 + (unsigned)(*p++ - '0');
		/* Dovecot's var_expand modifiers: X hex (lower case, as
		 * Dovecot prints it), U upper case, L lower case. */
		for (; *p == 'X' || *p == 'U' || *p == 'L'; p++) {
			if (*p == 'X')
				hex = true;
			else {
				upper = *p == 'U';
				lower = *p == 'L';
			}
		}
		switch (*p) {
		case 'u':
			if (m->uid == 0) {
				*error_r = "a message has no UID in "
				    "dovecot-uidlist";
				return -1;
			}
			num = m->uid;
			break;
		case 'v':
			num = uidvalidity;
			break;
		case 'f':
		case 'g':
			isnum = false;
			util_strlcpy(val, *p == 'g' && m->guid != NULL ?
			    m->guid : m->name != NULL ? m->name : "",
			    sizeof(val));
			break;
		default:
			*error_r = "unsupported variable in the UIDL format "
			    "(known: %u %v %f %g %%)";
			return -1;
		}
		if (isnum)
			snprintf(val, sizeof(val), hex ? "%" PRIx64 :
			    "%" PRIu64, num);
		vl = strlen(val);
		for (size_t k = 0; k < vl && (upper || lower); k++)
			val[k] = (char)(upper ? toupper((unsigned char)val[k]) :
			    tolower((unsigned char)val[k]));
		for (; width > vl; width--) {
			if (o + 1 >= sizeof(out))
				goto toolong;
			out[o++] = zero ? '0' : ' ';
		}
		if (o + vl >= sizeof(out))
			goto toolong;
		memcpy(out + o, val, vl);
		o += vl;
	}
	out[o] = '\0';
	*out_r = xstrdup(out);
	return 0;
toolong:
	*error_r = "the UIDL format gives more than 255 characters";
	return -1;
}
