/*
 * store_fixture: test and bench fixtures create mail through the store API
 * (store_deliver, store_deliver_mem), never with SQL of their own, so a
 * fixture row is exactly what carteiro-smtpd would have written.
 *
 *   store_fixture DB deliver [options] ADDRESS[,ADDRESS...] [SOURCE...]
 *   store_fixture DB queue [options] RCPT[,RCPT...] [SOURCE...]
 *
 * deliver: one mailbox row per local address (mail_from stays NULL unless
 * --from is given: the stored bytes are exactly the source's, no
 * Return-Path line, no prefix). queue: one queue row for the remote
 * recipients (envelope sender --from, "" for <>).
 * SOURCE: a file, a directory (each regular file in it, by name), or "-"
 * (stdin; the default). --framed: stdin holds many messages, each
 * "SIZE[ ADDR,ADDR...]\n" and then SIZE bytes (the list, if present,
 * replaces the command line's addresses for that message). --count N
 * --size S: N generated messages of S bytes instead of sources.
 * Every message goes into one transaction. After the commit one line per
 * message on stdout, in order:
 *   deliver: body=ID uidl=UIDL[,UIDL...]   (one UIDL per address)
 *   queue:   queue=ID body=ID
 * Exit status 0, or 1 with one "store_fixture: ..." line on stderr and
 * nothing written. Built by meson (tests/meson.build), never installed.
 */
#include "store/store.h"
#include "store/queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FIX_MAX_ADDRS	64		/* addresses of one message */
#define FIX_LINE_MAX	8192		/* a --framed header line */

/* One message to write: its bytes (data, or the path of a file) and
 * its addresses (argv or frame header; addrs[] points into addr_buf). */
struct fix_msg {
	unsigned char *data;		/* owned; NULL for a file */
	size_t len;
	char *path;			/* owned; a regular file, opened
					 * at write time (no fd limit) */
	char *addr_buf;			/* owned; commas become NULs */
	const char *addrs[FIX_MAX_ADDRS];
	size_t naddrs;
	int64_t body_id, queue_id;
	char **uidls;			/* deliver: one per address */
};

struct fix {
	bool queue;			/* queue, else deliver */
	const char *from;		/* NULL: none (deliver) */
	const char *auth_user;
	bool bounce, smtputf8, framed;
	bool have_next;
	int64_t next_attempt;
	unsigned long count, size;	/* --count/--size */
	struct fix_msg *msgs;
	size_t nmsgs, cap;
};

int main(int argc, char **argv);

static void fix_die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
static void fix_usage(void) __attribute__((noreturn));
static void *fix_alloc(size_t n);
static struct fix_msg *fix_add(struct fix *, const char *addrs);
static void fix_split_addrs(struct fix_msg *, const char *addrs);
static unsigned char *fix_read_all(FILE *fp, const char *name, size_t *len_r);
static void fix_add_file(struct fix *, const char *path, const char *addrs);
static void fix_add_source(struct fix *, const char *src, const char *addrs);
static void fix_add_framed(struct fix *, const char *addrs);
static void fix_add_generated(struct fix *, const char *addrs);
static int fix_write_one(struct store *, struct fix *, struct fix_msg *);
static int fix_find_uidls(struct store *, struct fix *);
static int fix_body_cmp(const void *, const void *);
static void fix_print(struct fix *);
static int64_t fix_parse_time(const char *s);
static unsigned long fix_parse_ulong(const char *s);

static void
fix_die(const char *fmt, ...)
{
	va_list ap;

	fputs("store_fixture: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void
fix_usage(void)
{
	fputs("usage: store_fixture DB deliver [--from ADDR] [--framed] "
	    "[--count N --size S]\n"
	    "           ADDRESS[,ADDRESS...] [FILE|DIR|-]...\n"
	    "       store_fixture DB queue [--from ADDR] [--next-attempt "
	    "T|+S|-S] [--bounce]\n"
	    "           [--smtputf8] [--auth-user USER] [--framed] "
	    "[--count N --size S]\n"
	    "           RCPT[,RCPT...] [FILE|DIR|-]...\n", stderr);
	exit(1);
}

static void *
fix_alloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);

	if (p == NULL)
		fix_die("out of memory");
	return p;
}

static void
fix_split_addrs(struct fix_msg *m, const char *addrs)
{
	char *p, *save = NULL;

	m->addr_buf = strdup(addrs);
	if (m->addr_buf == NULL)
		fix_die("out of memory");
	for (p = strtok_r(m->addr_buf, ",", &save); p != NULL;
	    p = strtok_r(NULL, ",", &save)) {
		if (m->naddrs == FIX_MAX_ADDRS)
			fix_die("more than %d addresses", FIX_MAX_ADDRS);
		m->addrs[m->naddrs++] = p;
	}
	if (m->naddrs == 0)
		fix_die("no address in \"%s\"", addrs);
}

static struct fix_msg *
fix_add(struct fix *f, const char *addrs)
{
	struct fix_msg *m;

	if (f->nmsgs == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 64;
		f->msgs = realloc(f->msgs, f->cap * sizeof(*f->msgs));
		if (f->msgs == NULL)
			fix_die("out of memory");
	}
	m = &f->msgs[f->nmsgs++];
	memset(m, 0, sizeof(*m));
	fix_split_addrs(m, addrs);
	return m;
}

static unsigned char *
fix_read_all(FILE *fp, const char *name, size_t *len_r)
{
	unsigned char *buf = NULL;
	size_t len = 0, cap = 0, n;

	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap);
			if (buf == NULL)
				fix_die("out of memory");
		}
		n = fread(buf + len, 1, cap - len, fp);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(fp))
		fix_die("reading %s: %s", name, strerror(errno));
	*len_r = len;
	return buf;
}

/* A regular file is stored from its fd (store_deliver streams it). */
static void
fix_add_file(struct fix *f, const char *path, const char *addrs)
{
	struct fix_msg *m;

	if (access(path, R_OK) < 0)
		fix_die("%s: %s", path, strerror(errno));
	m = fix_add(f, addrs);
	if ((m->path = strdup(path)) == NULL)
		fix_die("out of memory");
}

static void
fix_add_source(struct fix *f, const char *src, const char *addrs)
{
	struct dirent **ents;
	struct fix_msg *m;
	struct stat sb;
	char *path;
	int n;

	if (strcmp(src, "-") == 0) {
		if (f->framed) {
			fix_add_framed(f, addrs);
			return;
		}
		m = fix_add(f, addrs);
		m->data = fix_read_all(stdin, "stdin", &m->len);
		return;
	}
	if (stat(src, &sb) < 0)
		fix_die("%s: %s", src, strerror(errno));
	if (!S_ISDIR(sb.st_mode)) {
		fix_add_file(f, src, addrs);
		return;
	}
	if ((n = scandir(src, &ents, NULL, alphasort)) < 0)
		fix_die("%s: %s", src, strerror(errno));
	for (int i = 0; i < n; i++) {
		if (asprintf(&path, "%s/%s", src, ents[i]->d_name) < 0)
			fix_die("out of memory");
		if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode))
			fix_add_file(f, path, addrs);
		free(path);
		free(ents[i]);
	}
	free(ents);
}

/* stdin: "SIZE[ ADDR,ADDR...]\n" then SIZE bytes, until EOF. */
static void
fix_add_framed(struct fix *f, const char *addrs)
{
	char line[FIX_LINE_MAX], *end;
	unsigned long long size;
	struct fix_msg *m;
	size_t len;

	while (fgets(line, sizeof(line), stdin) != NULL) {
		len = strlen(line);
		if (len == 0 || line[len - 1] != '\n')
			fix_die("framed input: header line too long or cut");
		line[--len] = '\0';
		errno = 0;
		size = strtoull(line, &end, 10);
		if (errno != 0 || end == line ||
		    (*end != '\0' && *end != ' ') || size > SIZE_MAX / 2)
			fix_die("framed input: bad header \"%s\"", line);
		m = fix_add(f, *end == ' ' ? end + 1 : addrs);
		m->len = (size_t)size;
		m->data = fix_alloc(m->len);
		if (m->len > 0 && fread(m->data, 1, m->len, stdin) != m->len)
			fix_die("framed input: message %zu is cut short",
			    f->nmsgs);
	}
	if (ferror(stdin))
		fix_die("reading stdin: %s", strerror(errno));
}

/* --count N --size S: "Subject: fixture I" and lines of x, exactly S
 * bytes, CRLF line ends. */
static void
fix_add_generated(struct fix *f, const char *addrs)
{
	struct fix_msg *m;
	size_t off, left, line;
	int hlen;

	for (unsigned long i = 0; i < f->count; i++) {
		m = fix_add(f, addrs);
		m->len = f->size;
		m->data = fix_alloc(m->len + 64);
		hlen = snprintf((char *)m->data, 64, "From: fixture@localhost"
		    "\r\nSubject: fixture %lu\r\n\r\n", i);
		off = (size_t)hlen < m->len ? (size_t)hlen : m->len;
		while (off < m->len) {
			left = m->len - off;
			line = left >= 80 ? 78 : left >= 2 ? left - 2 : left;
			memset(m->data + off, 'x', line);
			off += line;
			if (left >= 2) {
				memcpy(m->data + off, "\r\n", 2);
				off += 2;
			}
		}
	}
}

static int
fix_write_one(struct store *st, struct fix *f, struct fix_msg *m)
{
	struct store_delivery d = {
		/* No prefix, but not NULL: delivery.c memcpy()s it even when
		 * prefix_len is 0 (UBSan: null argument). */
		.prefix = "",
		.fd = -1,
		.data_size = m->len,
		.mail_from = f->from,
		.auth_user = f->auth_user,
		.smtputf8 = f->smtputf8,
		.is_bounce = f->bounce,
	};
	int rc;

	if (f->queue) {
		d.remote = m->addrs;
		d.nremote = m->naddrs;
		if (d.mail_from == NULL)
			d.mail_from = "";
	} else {
		d.local = m->addrs;
		d.nlocal = m->naddrs;
	}
	if (m->path != NULL) {
		struct stat sb;

		if ((d.fd = open(m->path, O_RDONLY | O_CLOEXEC)) < 0 ||
		    fstat(d.fd, &sb) < 0)
			fix_die("%s: %s", m->path, strerror(errno));
		d.data_size = (uint64_t)sb.st_size;
		rc = store_deliver(st, &d, &m->body_id, &m->queue_id);
		close(d.fd);
	} else
		rc = store_deliver_mem(st, &d, m->data, m->len, &m->body_id,
		    &m->queue_id);
	if (rc < 0)
		return -1;
	if (f->queue && f->have_next &&
	    store_queue_reschedule(st, m->queue_id, f->next_attempt, 0) < 0)
		return -1;
	return 0;
}

static int
fix_body_cmp(const void *a, const void *b)
{
	const struct store_msg *x = a, *y = b;

	return x->body_id < y->body_id ? -1 : x->body_id > y->body_id;
}

/*
 * The UIDL of each (message, address): store_deliver does not return it,
 * so read every address's mailbox once (inside the transaction) and find
 * the row by body id.
 */
static int
fix_find_uidls(struct store *st, struct fix *f)
{
	struct store_msg *msgs, key, *hit;
	size_t n;

	for (size_t i = 0; i < f->nmsgs; i++)
		f->msgs[i].uidls = fix_alloc(f->msgs[i].naddrs *
		    sizeof(char *));
	for (size_t i = 0; i < f->nmsgs; i++) {
		for (size_t j = 0; j < f->msgs[i].naddrs; j++) {
			const char *addr = f->msgs[i].addrs[j];

			if (f->msgs[i].uidls[j] != NULL)
				continue;
			if (store_mailbox_list(st, addr, &msgs, &n) != 0)
				return -1;
			qsort(msgs, n, sizeof(*msgs), fix_body_cmp);
			/* Fill this address for every later message. */
			for (size_t k = i; k < f->nmsgs; k++) {
				for (size_t a = 0; a < f->msgs[k].naddrs; a++) {
					if (strcasecmp(f->msgs[k].addrs[a],
					    addr) != 0)
						continue;
					key.body_id = f->msgs[k].body_id;
					hit = bsearch(&key, msgs, n,
					    sizeof(*msgs), fix_body_cmp);
					if (hit == NULL) {
						free(msgs);
						errno = ENOENT;
						return -1;
					}
					f->msgs[k].uidls[a] = strdup(hit->uidl);
				}
			}
			free(msgs);
		}
	}
	return 0;
}

static void
fix_print(struct fix *f)
{
	for (size_t i = 0; i < f->nmsgs; i++) {
		struct fix_msg *m = &f->msgs[i];

		if (f->queue) {
			printf("queue=%" PRId64 " body=%" PRId64 "\n",
			    m->queue_id, m->body_id);
			continue;
		}
		printf("body=%" PRId64 " uidl=", m->body_id);
		for (size_t j = 0; j < m->naddrs; j++)
			printf("%s%s", j ? "," : "", m->uidls[j]);
		putchar('\n');
	}
}

/* Unix time, or +N / -N seconds from now. */
static int64_t
fix_parse_time(const char *s)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		fix_die("bad time \"%s\"", s);
	if (s[0] == '+' || s[0] == '-')
		return (int64_t)time(NULL) + v;
	return v;
}

static unsigned long
fix_parse_ulong(const char *s)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-')
		fix_die("bad number \"%s\"", s);
	return v;
}

int
main(int argc, char **argv)
{
	struct fix f = { 0 };
	struct store *st;
	const char *db, *addrs, *err;
	int i;

	if (argc < 4)
		fix_usage();
	db = argv[1];
	if (strcmp(argv[2], "queue") == 0)
		f.queue = true;
	else if (strcmp(argv[2], "deliver") != 0)
		fix_usage();
	for (i = 3; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		const char *o = argv[i];
		bool has_arg = i + 1 < argc;

		if (strcmp(o, "--framed") == 0)
			f.framed = true;
		else if (strcmp(o, "--bounce") == 0 && f.queue)
			f.bounce = true;
		else if (strcmp(o, "--smtputf8") == 0)
			f.smtputf8 = true;
		else if (strcmp(o, "--from") == 0 && has_arg)
			f.from = argv[++i];
		else if (strcmp(o, "--auth-user") == 0 && has_arg && f.queue)
			f.auth_user = argv[++i];
		else if (strcmp(o, "--next-attempt") == 0 && has_arg &&
		    f.queue) {
			f.have_next = true;
			f.next_attempt = fix_parse_time(argv[++i]);
		} else if (strcmp(o, "--count") == 0 && has_arg)
			f.count = fix_parse_ulong(argv[++i]);
		else if (strcmp(o, "--size") == 0 && has_arg)
			f.size = fix_parse_ulong(argv[++i]);
		else
			fix_usage();
	}
	if (i >= argc)
		fix_usage();
	addrs = argv[i++];
	if (f.count > 0) {
		if (i < argc || f.framed)
			fix_usage();
		fix_add_generated(&f, addrs);
	} else if (i == argc)
		fix_add_source(&f, "-", addrs);
	for (; i < argc; i++)
		fix_add_source(&f, argv[i], addrs);
	if (f.nmsgs == 0)
		fix_die("no message to write");

	if ((st = store_open(db, &err)) == NULL)
		fix_die("%s: %s", db, err);
	if (store_check_schema(st) < 0)
		fix_die("%s: schema is not current (carteiroctl init)", db);
	/* The daemons may be writing: wait like the Python fixtures did. */
	store_set_busy_timeout(st, 30000);
	if (store_begin(st) < 0)
		fix_die("begin: %s", store_error(st));
	for (size_t k = 0; k < f.nmsgs; k++) {
		if (fix_write_one(st, &f, &f.msgs[k]) < 0) {
			fprintf(stderr, "store_fixture: message %zu: %s\n",
			    k + 1, store_error(st));
			store_rollback(st);
			exit(1);
		}
	}
	if (!f.queue && fix_find_uidls(st, &f) < 0) {
		fprintf(stderr, "store_fixture: uidl: %s\n",
		    errno == ENOENT ? "mailbox row not found" :
		    store_error(st));
		store_rollback(st);
		exit(1);
	}
	if (store_commit(st) < 0)
		fix_die("commit: %s", store_error(st));
	store_close(st);
	fix_print(&f);
	if (fflush(stdout) != 0)
		fix_die("stdout: %s", strerror(errno));
	for (size_t k = 0; k < f.nmsgs; k++) {
		struct fix_msg *m = &f.msgs[k];

		for (size_t j = 0; m->uidls != NULL && j < m->naddrs; j++)
			free(m->uidls[j]);
		free(m->uidls);
		free(m->data);
		free(m->addr_buf);
		free(m->path);
	}
	free(f.msgs);
	return 0;
}
