/*
 * carteiroctl backup DIR and restore DIR. A backup directory holds
 * mail.db (one consistent snapshot of the live store, store_backup), the
 * DKIM key files under dkim/<domain>/<selector>.key, byte for byte, and
 * MANIFEST, written last: format, carteiro version, schema, row counts and
 * the SHA-256 of every file. restore checks every checksum first and only
 * fills an empty store location while no daemon holds the store.
 */
#include "tools/ctl.h"
#include "tools/ctl_admin.h"
#include "common/config.h"
#include "common/util.h"
#include "mailauth/dkim_crypto.h"
#include "mailauth/dkim_keys.h"
#include "store/backup.h"
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef CARTEIRO_VERSION
#define CARTEIRO_VERSION "unknown"
#endif

#define CTL_BACKUP_DB		"mail.db"
#define CTL_BACKUP_MANIFEST	"MANIFEST"
#define CTL_BACKUP_FORMAT	"carteiro-backup 1"
#define CTL_MANIFEST_MAX	1024	/* files listed in one manifest */

/* One file of a manifest: path relative to the backup directory. */
struct ctl_backup_file {
	char *path;
	char sha256[2 * DKIM_SHA256_LEN + 1];
};

struct ctl_manifest {
	struct ctl_backup_file *files;
	size_t n;
	int schema;
	int64_t users, messages;
};

static int ctl_sha256_file(const char *path, char *hex);
static int ctl_copy_file(const char *from, const char *to, int uid, int gid);
static int ctl_dir_is_empty(const char *path);
static void ctl_manifest_add(struct ctl_manifest *m, char *path);
static void ctl_manifest_free(struct ctl_manifest *m);
static int ctl_manifest_read(const char *dir, struct ctl_manifest *m);
static int ctl_backup_keys(struct ctl *ctl, const char *dir,
    struct ctl_manifest *m);
static int ctl_restore_check_target(struct ctl *ctl);
static void ctl_backup_owner(const struct ctl *ctl, int *uid_r, int *gid_r);

/* SHA-256 of a file as lower-case hex. 0 / -1 (errno). */
static int
ctl_sha256_file(const char *path, char *hex)
{
	unsigned char buf[65536], md[DKIM_SHA256_LEN];
	struct dkim_hash *h;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	h = dkim_hash_new();
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		dkim_hash_update(h, buf, (size_t)n);
	close(fd);
	if (n < 0) {
		dkim_hash_free(h);
		return -1;
	}
	dkim_hash_final(h, md);
	for (size_t i = 0; i < sizeof(md); i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return 0;
}

/* Copy a file to a new one (0600, fsynced; uid >= 0: chown). 0 / -1. */
static int
ctl_copy_file(const char *from, const char *to, int uid, int gid)
{
	char buf[65536];
	ssize_t n = 0;
	int in, out, ret = -1;

	if ((in = open(from, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		close(in);
		return -1;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		if (write(out, buf, (size_t)n) != n) {
			n = -1;
			break;
		}
	}
	if (n == 0 && fsync(out) == 0 &&
	    (uid < 0 || fchown(out, (uid_t)uid, (gid_t)gid) == 0))
		ret = 0;
	close(in);
	if (close(out) < 0)
		ret = -1;
	if (ret < 0)
		unlink(to);
	return ret;
}

/* 1 empty or missing, 0 not empty, -1 unreadable (errno). */
static int
ctl_dir_is_empty(const char *path)
{
	struct dirent *de;
	DIR *d = opendir(path);
	int ret = 1;

	if (d == NULL)
		return errno == ENOENT ? 1 : -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0) {
			ret = 0;
			break;
		}
	}
	closedir(d);
	return ret;
}

/* The daemon user's ids when we run as root (the restored files must be
 * theirs); -1 otherwise. */
static void
ctl_backup_owner(const struct ctl *ctl, int *uid_r, int *gid_r)
{
	struct passwd *pw;

	*uid_r = *gid_r = -1;
	if (geteuid() != 0 || ctl->cfg->server.user == NULL)
		return;
	if ((pw = getpwnam(ctl->cfg->server.user)) != NULL) {
		*uid_r = (int)pw->pw_uid;
		*gid_r = (int)pw->pw_gid;
	}
}

/* Takes ownership of path. */
static void
ctl_manifest_add(struct ctl_manifest *m, char *path)
{
	m->files = xrealloc(m->files, (m->n + 1) * sizeof(*m->files));
	memset(&m->files[m->n], 0, sizeof(m->files[0]));
	m->files[m->n++].path = path;
}

static void
ctl_manifest_free(struct ctl_manifest *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->files[i].path);
	free(m->files);
	memset(m, 0, sizeof(*m));
}

/* Copy every DKIM key file into dir/dkim, adding each to m. */
static int
ctl_backup_keys(struct ctl *ctl, const char *dir, struct ctl_manifest *m)
{
	struct dkim_keyfile *keys = NULL;
	char *keydir = dkim_keys_dir(ctl->cfg), *from, *to, *rel, *sub;
	const char *error;
	size_t n = 0;
	int ret = -1;

	if (dkim_keys_list(keydir, NULL, &keys, &n, &error) < 0) {
		ctl_err("backup: %s (%s)", error, keydir);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		rel = xasprintf("dkim/%s/%s.key", keys[i].domain,
		    keys[i].selector);
		sub = xasprintf("%s/dkim", dir);
		(void)mkdir(sub, 0700);
		free(sub);
		sub = xasprintf("%s/dkim/%s", dir, keys[i].domain);
		(void)mkdir(sub, 0700);
		free(sub);
		from = xasprintf("%s/%s/%s.key", keydir, keys[i].domain,
		    keys[i].selector);
		to = xasprintf("%s/%s", dir, rel);
		if (ctl_copy_file(from, to, -1, -1) < 0) {
			ctl_err("backup: copying %s: %s", from,
			    strerror(errno));
			free(from);
			free(to);
			free(rel);
			goto out;
		}
		free(from);
		free(to);
		ctl_manifest_add(m, rel);
	}
	ret = 0;
out:
	dkim_keyfiles_free(keys, n);
	free(keydir);
	return ret;
}

/* carteiroctl backup DIR: DIR is created (0700) or must be empty. */
int
ctl_backup(struct ctl *ctl, int argc, char **argv)
{
	const char *dir = argv[1];
	struct ctl_manifest m = { 0 };
	struct store_counts c;
	char *db, *path, *tmp = NULL, date[32];
	time_t now = time(NULL);
	struct tm tm;
	FILE *f = NULL;
	int r, ret = 1;

	r = ctl_dir_is_empty(dir);
	if (r < 0 || r == 0) {
		ctl_err(r == 0 ? "backup: %s is not empty" :
		    "backup: %s: %s", dir, strerror(errno));
		return 1;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		ctl_err("backup: cannot create %s: %s", dir, strerror(errno));
		return 1;
	}
	db = xasprintf("%s/%s", dir, CTL_BACKUP_DB);
	if (store_backup(ctl->st, db, &c) < 0) {
		ctl_store_err(ctl, "backup");
		goto out;
	}
	ctl_manifest_add(&m, xstrdup(CTL_BACKUP_DB));
	if (ctl_backup_keys(ctl, dir, &m) < 0)
		goto out;
	for (size_t i = 0; i < m.n; i++) {
		path = xasprintf("%s/%s", dir, m.files[i].path);
		r = ctl_sha256_file(path, m.files[i].sha256);
		free(path);
		if (r < 0) {
			ctl_err("backup: reading %s back: %s", m.files[i].path,
			    strerror(errno));
			goto out;
		}
	}
	/* Written last, through a rename: a directory without MANIFEST is
	 * an unfinished backup. */
	tmp = xasprintf("%s/%s.tmp", dir, CTL_BACKUP_MANIFEST);
	if ((f = fopen(tmp, "w")) == NULL) {
		ctl_err("backup: cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(f, "%s\nversion %s\ncreated %s\nschema %d\n",
	    CTL_BACKUP_FORMAT, CARTEIRO_VERSION, date, c.schema);
	fprintf(f, "count domains %" PRId64 "\ncount users %" PRId64 "\n"
	    "count aliases %" PRId64 "\ncount messages %" PRId64 "\n"
	    "count bodies %" PRId64 "\ncount queue %" PRId64 "\n"
	    "count dkim_keys %zu\n", c.domains, c.users, c.aliases,
	    c.messages, c.bodies, c.queue, m.n - 1);
	for (size_t i = 0; i < m.n; i++)
		fprintf(f, "sha256 %s %s\n", m.files[i].path,
		    m.files[i].sha256);
	if (fflush(f) != 0 || fsync(fileno(f)) < 0) {
		ctl_err("backup: writing %s: %s", tmp, strerror(errno));
		goto out;
	}
	path = xasprintf("%s/%s", dir, CTL_BACKUP_MANIFEST);
	r = rename(tmp, path);
	free(path);
	if (r < 0) {
		ctl_err("backup: rename %s: %s", tmp, strerror(errno));
		goto out;
	}
	printf("backup %s: schema %d, %" PRId64 " users, %" PRId64
	    " messages, %" PRId64 " queued, %zu DKIM keys\n", dir, c.schema,
	    c.users, c.messages, c.queue, m.n - 1);
	ret = 0;
out:
	if (f != NULL)
		fclose(f);
	if (tmp != NULL) {
		(void)unlink(tmp);
		free(tmp);
	}
	free(db);
	ctl_manifest_free(&m);
	return ret;
}

/*
 * Read dir/MANIFEST: the format line, then "schema N", "count K N" and
 * "sha256 PATH HEX" lines (other lines are information). Paths must stay
 * inside dir. 0, or -1 after one ctl_err line.
 */
static int
ctl_manifest_read(const char *dir, struct ctl_manifest *m)
{
	char *path = xasprintf("%s/%s", dir, CTL_BACKUP_MANIFEST);
	char line[1024], p[512], hex[128];
	long long v;
	bool db = false;
	FILE *f;
	int ret = -1;

	memset(m, 0, sizeof(*m));
	m->schema = -1;
	if ((f = fopen(path, "r")) == NULL) {
		ctl_err("restore: %s: %s (not a finished backup)", path,
		    strerror(errno));
		free(path);
		return -1;
	}
	if (fgets(line, sizeof(line), f) == NULL ||
	    strcmp(line, CTL_BACKUP_FORMAT "\n") != 0) {
		ctl_err("restore: %s is not a carteiro backup manifest", path);
		goto out;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "schema %lld", &v) == 1)
			m->schema = (int)v;
		else if (sscanf(line, "count users %lld", &v) == 1)
			m->users = v;
		else if (sscanf(line, "count messages %lld", &v) == 1)
			m->messages = v;
		else if (sscanf(line, "sha256 %511s %127s", p, hex) == 2) {
			if (p[0] == '/' || strstr(p, "..") != NULL ||
			    strlen(hex) != 2 * DKIM_SHA256_LEN ||
			    m->n >= CTL_MANIFEST_MAX) {
				ctl_err("restore: %s: bad line '%.*s'", path,
				    (int)strcspn(line, "\n"), line);
				goto out;
			}
			ctl_manifest_add(m, xstrdup(p));
			memcpy(m->files[m->n - 1].sha256, hex, sizeof(hex) <
			    sizeof(m->files[0].sha256) ? sizeof(hex) :
			    sizeof(m->files[0].sha256));
			if (strcmp(p, CTL_BACKUP_DB) == 0)
				db = true;
		}
	}
	if (!db || m->schema < 1) {
		ctl_err("restore: %s lists no %s or no schema", path,
		    CTL_BACKUP_DB);
		goto out;
	}
	ret = 0;
out:
	fclose(f);
	free(path);
	if (ret < 0)
		ctl_manifest_free(m);
	return ret;
}

/* 0 if the store location is free: no daemon on it, no database (or an
 * empty file), no -wal, no DKIM keys. Else one ctl_err line, -1. */
static int
ctl_restore_check_target(struct ctl *ctl)
{
	const char *db = ctl->cfg->store.path;
	static const char *const suffix[] = { "", "-wal" };
	struct stat sb;
	char *p;
	int r;

	r = store_daemon_running(db);
	if (r != 0) {
		if (r > 0)
			ctl_err("restore: a carteiro daemon is running on %s "
			    "(stop carteiro-smtpd and carteiro-pop3d first)",
			    db);
		else
			ctl_err("restore: cannot tell whether a daemon runs on "
			    "%s: %s", db, strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < nitems(suffix); i++) {
		p = xasprintf("%s%s", db, suffix[i]);
		r = stat(p, &sb);
		if (r == 0 && sb.st_size > 0) {
			ctl_err("restore: %s exists and is not empty (restore "
			    "needs an empty store location)", p);
			free(p);
			return -1;
		}
		free(p);
	}
	p = dkim_keys_dir(ctl->cfg);
	r = ctl_dir_is_empty(p);
	if (r != 1) {
		ctl_err("restore: the DKIM key directory %s is not empty "
		    "(restore needs an empty store location)", p);
		free(p);
		return -1;
	}
	free(p);
	return 0;
}

/* carteiroctl restore DIR (runs without opening the store first). */
int
ctl_restore(struct ctl *ctl, int argc, char **argv)
{
	const char *dir = argv[1], *db = ctl->cfg->store.path, *error;
	struct ctl_manifest m;
	struct store_counts c;
	struct store *st = NULL;
	char hex[2 * DKIM_SHA256_LEN + 1], *from, *to, *tmp, *keydir, *s;
	int uid, gid, ret = 1;

	if (ctl_restore_check_target(ctl) < 0)
		return 1;
	if (ctl_manifest_read(dir, &m) < 0)
		return 1;
	for (size_t i = 0; i < m.n; i++) {
		from = xasprintf("%s/%s", dir, m.files[i].path);
		if (ctl_sha256_file(from, hex) < 0 ||
		    strcmp(hex, m.files[i].sha256) != 0) {
			ctl_err("restore: %s does not match its checksum in "
			    "the manifest (damaged backup)", from);
			free(from);
			goto out;
		}
		free(from);
	}
	ctl_backup_owner(ctl, &uid, &gid);
	keydir = dkim_keys_dir(ctl->cfg);
	for (size_t i = 0; i < m.n; i++) {
		const char *rel = m.files[i].path;

		if (strcmp(rel, CTL_BACKUP_DB) == 0)
			continue;
		if (strncmp(rel, "dkim/", 5) != 0 ||
		    strchr(rel + 5, '/') == NULL)
			continue;
		/* dkim/<domain>/<selector>.key */
		s = xasprintf("%s/%.*s", keydir,
		    (int)(strchr(rel + 5, '/') - rel - 5), rel + 5);
		(void)mkdir(keydir, 0700);
		(void)mkdir(s, 0700);
		if (uid >= 0) {
			(void)chown(keydir, (uid_t)uid, (gid_t)gid);
			(void)chown(s, (uid_t)uid, (gid_t)gid);
		}
		free(s);
		from = xasprintf("%s/%s", dir, rel);
		to = xasprintf("%s/%s", keydir, rel + 5);
		if (ctl_copy_file(from, to, uid, gid) < 0) {
			ctl_err("restore: copying %s: %s", from,
			    strerror(errno));
			free(from);
			free(to);
			free(keydir);
			goto out;
		}
		free(from);
		free(to);
	}
	free(keydir);
	/* The database last, under a temporary name and renamed: a
	 * restore cut short leaves no half file at the store path. */
	from = xasprintf("%s/%s", dir, CTL_BACKUP_DB);
	tmp = xasprintf("%s.restore", db);
	(void)unlink(tmp);
	(void)unlink(db);	/* an empty file (checked above) */
	if (ctl_copy_file(from, tmp, uid, gid) < 0 || rename(tmp, db) < 0) {
		ctl_err("restore: copying %s to %s: %s", from, db,
		    strerror(errno));
		(void)unlink(tmp);
		free(from);
		free(tmp);
		goto out;
	}
	free(from);
	free(tmp);
	if ((st = store_open(db, &error)) == NULL) {
		ctl_err("restore: %s", error);
		goto out;
	}
	/* A backup of an older carteiro comes back at the current schema. */
	if (store_migrate(st) < 0 || store_counts(st, &c) < 0) {
		s = ctl_oneline(store_error(st));
		ctl_err("restore: %s", s);
		free(s);
		goto out;
	}
	if (c.users != m.users || c.messages != m.messages) {
		ctl_err("restore: the restored store has %" PRId64 " users and "
		    "%" PRId64 " messages, the manifest says %" PRId64 " and %"
		    PRId64, c.users, c.messages, m.users, m.messages);
		goto out;
	}
	printf("restored %s: schema %d, %" PRId64 " users, %" PRId64
	    " messages, %zu DKIM keys\n", db, c.schema, c.users, c.messages,
	    m.n - 1);
	ret = 0;
out:
	store_close(st);
	ctl_manifest_free(&m);
	return ret;
}
