/*
 * carteiroctl mailbox import ADDRESS SOURCE [--uidl-format F]
 * [--uidl-map FILE] [--ignore-quota]: the messages of an mbox, a Maildir
 * or a Dovecot Maildir into a mailbox, in their order, keeping the UIDLs
 * the old server showed (dovecot-uidlist with pop3_uidl_format or saved
 * UIDLs, or a map of "UIDL filename-or-index" lines), so POP3 clients
 * that leave mail on the server download nothing again. Re-runs add
 * nothing twice (store/import.c keys every message); the quota is checked
 * before anything is written. Sources are read by ctl_import_src.c.
 */
#include "tools/ctl.h"
#include "tools/ctl_admin.h"
#include "tools/ctl_import.h"
#include "common/util.h"
#include "mailauth/dkim_crypto.h"
#include "store/import.h"
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Messages per transaction: one fsync per batch, and a kill -9 loses at
 * most one batch, which the next run imports again. */
#define CTL_IMPORT_BATCH	500
#define CTL_UIDL_MAP_LINE_MAX	1024

struct ctl_import_opts {
	const char *format;	/* --uidl-format, NULL = default */
	const char *map;	/* --uidl-map */
	bool ignore_quota;
};

static int ctl_import_args(int argc, char **argv,
    struct ctl_import_opts *o);
static int ctl_import_map(const char *file, struct ctl_isrc *src);
static int ctl_import_uidls(struct ctl_isrc *src,
    const struct ctl_import_opts *o);
static int ctl_import_keys(struct ctl *ctl, const char *address,
    struct ctl_isrc *src, uint64_t *new_bytes_r, size_t *new_r);
static int ctl_key_cmp(const void *a, const void *b);
static int ctl_uidl_cmp(const void *a, const void *b);
static int ctl_import_write(struct ctl *ctl, const char *address,
    struct ctl_isrc *src, bool check_quota, size_t *done_r);

static int
ctl_import_args(int argc, char **argv, struct ctl_import_opts *o)
{
	memset(o, 0, sizeof(*o));
	for (int i = 4; i < argc; i++) {
		if (strcmp(argv[i], "--ignore-quota") == 0)
			o->ignore_quota = true;
		else if (strcmp(argv[i], "--uidl-format") == 0 && i + 1 < argc)
			o->format = argv[++i];
		else if (strcmp(argv[i], "--uidl-map") == 0 && i + 1 < argc)
			o->map = argv[++i];
		else {
			ctl_err("usage: carteiroctl -c CONF mailbox import "
			    "ADDRESS SOURCE [--uidl-format F] [--uidl-map "
			    "FILE] [--ignore-quota]");
			return -1;
		}
	}
	return 0;
}

/*
 * --uidl-map FILE: "UIDL NAME-OR-INDEX" per line (blank lines and '#'
 * comments skipped). NAME is a Maildir file name (its part before ':'),
 * INDEX the message's 1-based position in the source (mbox order, or
 * the Maildir's import order).
 */
static int
ctl_import_map(const char *file, struct ctl_isrc *src)
{
	char line[CTL_UIDL_MAP_LINE_MAX], uidl[CTL_UIDL_MAP_LINE_MAX];
	char what[CTL_UIDL_MAP_LINE_MAX];
	unsigned lineno = 0;
	FILE *f;
	int ret = -1;

	if ((f = fopen(file, "r")) == NULL) {
		ctl_err("mailbox import: %s: %s", file, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		struct ctl_imsg *m = NULL;
		char *end;
		unsigned long idx;

		lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		if (sscanf(line, "%1023s %1023s", uidl, what) != 2) {
			ctl_err("mailbox import: %s:%u: expected \"UIDL "
			    "filename-or-index\"", file, lineno);
			goto out;
		}
		what[strcspn(what, ":")] = '\0';
		idx = strtoul(what, &end, 10);
		if (*end == '\0' && idx >= 1 && idx <= src->n)
			m = &src->v[idx - 1];
		for (size_t i = 0; m == NULL && i < src->n; i++) {
			if (src->v[i].name != NULL &&
			    strcmp(src->v[i].name, what) == 0)
				m = &src->v[i];
		}
		if (m == NULL) {
			ctl_err("mailbox import: %s:%u: no message '%s' in the "
			    "source", file, lineno, what);
			goto out;
		}
		free(m->uidl);
		m->uidl = xstrdup(uidl);
	}
	ret = 0;
out:
	fclose(f);
	return ret;
}

static int
ctl_uidl_cmp(const void *a, const void *b)
{
	const struct ctl_imsg *x = *(struct ctl_imsg *const *)a;
	const struct ctl_imsg *y = *(struct ctl_imsg *const *)b;

	return strcmp(x->uidl, y->uidl);
}

/* Decide each message's UIDL: the map's, else Dovecot's saved one, else
 * pop3_uidl_format over dovecot-uidlist; none of them twice. */
static int
ctl_import_uidls(struct ctl_isrc *src, const struct ctl_import_opts *o)
{
	struct ctl_imsg **v;
	const char *error;
	size_t n = 0, unlisted = 0;
	int ret = 0;

	if (o->format != NULL && !src->dovecot) {
		ctl_err("mailbox import: --uidl-format needs a Maildir with a "
		    "dovecot-uidlist");
		return -1;
	}
	if (o->map != NULL && ctl_import_map(o->map, src) < 0)
		return -1;
	for (size_t i = 0; src->dovecot && i < src->n; i++) {
		struct ctl_imsg *m = &src->v[i];

		if (m->uid == 0 && m->uidl == NULL)
			unlisted++;
		if (m->uidl != NULL || m->uid == 0)
			continue;	/* mapped; or new since Dovecot ran */
		if (m->saved_uidl != NULL)
			m->uidl = xstrdup(m->saved_uidl);
		else if (ctl_uidl_expand(o->format != NULL ? o->format :
		    CTL_UIDL_FORMAT_DEFAULT, m, src->uidvalidity, &m->uidl,
		    &error) < 0) {
			ctl_err("mailbox import: %s", error);
			return -1;
		}
	}
	/* Dovecot gives such a file its UID (and UIDL) only when it sees
	 * it: ours would differ from what it would have shown. */
	if (unlisted > 0)
		ctl_err("warning: %zu messages are not in dovecot-uidlist yet "
		    "and get new UIDLs (log in to Dovecot once before the "
		    "import to keep theirs)", unlisted);
	v = xmalloc((src->n + 1) * sizeof(*v));
	for (size_t i = 0; i < src->n; i++) {
		if (src->v[i].uidl == NULL)
			continue;
		if (store_uidl_valid(src->v[i].uidl) < 0) {
			ctl_err("mailbox import: invalid UIDL '%.80s' (RFC 1939: "
			    "1 to 70 printable characters, no spaces)",
			    src->v[i].uidl);
			free(v);
			return -1;
		}
		v[n++] = &src->v[i];
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), ctl_uidl_cmp);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(v[i - 1]->uidl, v[i]->uidl) == 0) {
			ctl_err("mailbox import: UIDL %s is given to two "
			    "messages", v[i]->uidl);
			ret = -1;
			break;
		}
	}
	free(v);
	return ret;
}

static int
ctl_key_cmp(const void *a, const void *b)
{
	const struct ctl_imsg *x = *(struct ctl_imsg *const *)a;
	const struct ctl_imsg *y = *(struct ctl_imsg *const *)b;
	int c = strcmp(x->key, y->key);

	return c != 0 ? c : (x < y ? -1 : x > y);
}

/*
 * Sizes, keys and what an earlier run imported already. A message
 * without a UIDL is known by "sha256:<hash of its stored bytes>:<n>", n
 * counting identical messages before it in the source.
 */
static int
ctl_import_keys(struct ctl *ctl, const char *address, struct ctl_isrc *src,
    uint64_t *new_bytes_r, size_t *new_r)
{
	unsigned char md[DKIM_SHA256_LEN];
	char hex[2 * DKIM_SHA256_LEN + 1], *buf;
	struct ctl_imsg **v;
	struct dkim_hash *h;
	size_t len, n = 0, same = 0;
	int r;

	*new_bytes_r = 0;
	*new_r = 0;
	v = xmalloc((src->n + 1) * sizeof(*v));
	for (size_t i = 0; i < src->n; i++) {
		struct ctl_imsg *m = &src->v[i];

		if (ctl_isrc_load(src, i, &buf, &len) < 0) {
			free(v);
			return -1;
		}
		m->size = len;
		if (m->uidl == NULL) {
			h = dkim_hash_new();
			dkim_hash_update(h, buf, len);
			dkim_hash_final(h, md);
			for (size_t k = 0; k < sizeof(md); k++)
				snprintf(hex + 2 * k, 3, "%02x", md[k]);
			m->key = xasprintf("sha256:%s", hex);
			v[n++] = m;
		}
		free(buf);
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), ctl_key_cmp);
	for (size_t i = 0; i < n; i++) {
		char *k;

		same = i > 0 && strncmp(v[i - 1]->key, v[i]->key,
		    strlen(v[i]->key)) == 0 ? same + 1 : 0;
		k = xasprintf("%s:%zu", v[i]->key, same);
		free(v[i]->key);
		v[i]->key = k;
	}
	free(v);
	if (store_read_begin(ctl->st) < 0) {
		ctl_store_err(ctl, "mailbox import");
		return -1;
	}
	for (size_t i = 0; i < src->n; i++) {
		struct ctl_imsg *m = &src->v[i];

		r = store_import_known(ctl->st, address, m->uidl, m->key);
		if (r < 0) {
			store_read_end(ctl->st);
			ctl_store_err(ctl, "mailbox import");
			return -1;
		}
		m->known = r == 1;
		if (!m->known) {
			*new_bytes_r += m->size;
			(*new_r)++;
		}
	}
	store_read_end(ctl->st);
	return 0;
}

/* Write the new messages in batches. *done_r: messages added. */
static int
ctl_import_write(struct ctl *ctl, const char *address, struct ctl_isrc *src,
    bool check_quota, size_t *done_r)
{
	const char *stall_env = getenv("CARTEIRO_TEST_IMPORT_STALL");
	size_t stall = stall_env != NULL ? strtoul(stall_env, NULL, 10) : 0;
	size_t len, in_batch = 0;
	char *buf;
	int r;

	*done_r = 0;
	if (store_begin(ctl->st) < 0) {
		ctl_store_err(ctl, "mailbox import");
		return -1;
	}
	for (size_t i = 0; i < src->n; i++) {
		struct ctl_imsg *m = &src->v[i];
		struct store_import_msg im = {
			.uidl = m->uidl, .key = m->key,
			.mbox_from = m->from_line, .check_quota = check_quota,
		};

		if (m->known)
			continue;
		if (ctl_isrc_load(src, i, &buf, &len) < 0)
			goto fail;
		im.data = buf;
		im.len = len;
		r = store_import(ctl->st, address, &im);
		free(buf);
		if (r < 0) {
			if (store_error_is_quota(ctl->st))
				ctl_err("mailbox import: %s is over quota after "
				    "%zu messages", address, *done_r);
			else
				ctl_store_err(ctl, "mailbox import");
			goto fail;
		}
		if (r == 0)
			(*done_r)++;
		/* Tests: stop in the middle of a batch to be killed. */
		if (stall > 0 && *done_r == stall) {
			fprintf(stderr, "stalled\n");
			for (;;)
				pause();
		}
		if (++in_batch == CTL_IMPORT_BATCH) {
			if (store_commit(ctl->st) < 0 ||
			    store_begin(ctl->st) < 0) {
				ctl_store_err(ctl, "mailbox import");
				return -1;
			}
			in_batch = 0;
		}
	}
	if (store_commit(ctl->st) < 0) {
		ctl_store_err(ctl, "mailbox import");
		return -1;
	}
	return 0;
fail:
	/* Earlier batches stay: a re-run adds what is missing. */
	store_rollback(ctl->st);
	return -1;
}

int
ctl_mailbox_import(struct ctl *ctl, int argc, char **argv)
{
	struct ctl_import_opts o;
	struct ctl_isrc src = { 0 };
	struct store_user u = { 0 };
	char *address = NULL;
	uint64_t new_bytes;
	size_t nnew, done;
	int r, ret = 1;

	if (ctl_import_args(argc, argv, &o) < 0)
		return 1;
	if (ctl_address_arg(argv[2], &address) < 0)
		return 1;
	r = store_user_get(ctl->st, address, &u);
	if (r != 0) {
		if (r == 1)
			ctl_err("no such user %s", address);
		else
			ctl_store_err(ctl, "mailbox import");
		goto out;
	}
	if (ctl_isrc_open(argv[3], &src) < 0 ||
	    ctl_import_uidls(&src, &o) < 0 ||
	    ctl_import_keys(ctl, address, &src, &new_bytes, &nnew) < 0)
		goto out;
	if (!o.ignore_quota && u.quota > 0 && u.used + new_bytes > u.quota) {
		ctl_err("mailbox import: %zu messages (%" PRIu64 " bytes) would "
		    "take %s over the quota (%" PRIu64 " of %" PRIu64 " bytes "
		    "used); nothing imported (--ignore-quota imports anyway)",
		    nnew, new_bytes, address, u.used, u.quota);
		goto out;
	}
	if (ctl_import_write(ctl, address, &src, !o.ignore_quota, &done) < 0)
		goto out;
	printf("imported %zu messages into %s (%zu already there, %zu in "
	    "the source)\n", done, address, src.n - nnew, src.n);
	ret = 0;
out:
	store_user_clear(&u);
	ctl_isrc_free(&src);
	free(address);
	return ret;
}
