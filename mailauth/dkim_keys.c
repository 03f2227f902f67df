/*
 * DKIM key files on disk (see dkim_keys.h). Owns paths, permissions and
 * the file format; the cryptography is dkim_sign.c and dkim_crypto.c's.
 */
#include "mailauth/dkim_keys.h"
#include "common/config.h"
#include "common/util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DKIM_KEYS_HEADER "# carteiro dkim "

char *
dkim_keys_dir(const struct cfg *cfg)
{
	char *copy = xstrdup(cfg->store.path);
	char *dir = xasprintf("%s/dkim", dirname(copy));

	free(copy);
	return dir;
}

void
dkim_keyfile_clear(struct dkim_keyfile *k)
{
	free(k->domain);
	free(k->selector);
	if (k->privkey != NULL) {
		util_wipe(k->privkey, strlen(k->privkey));
		free(k->privkey);
	}
	memset(k, 0, sizeof(*k));
}

void
dkim_keyfiles_free(struct dkim_keyfile *keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dkim_keyfile_clear(&keys[i]);
	free(keys);
}

int
dkim_selector_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63 || s[0] == '.' || s[0] == '-' ||
	    s[n - 1] == '.' || s[n - 1] == '-')
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(islower(c) || isdigit(c) || c == '-' || c == '.'))
			return 0;
		if (c == '.' && s[i + 1] == '.')
			return 0;
	}
	return 1;
}

static int
dkim_keys_read(const char *path, const char *domain, const char *selector,
    struct dkim_keyfile *k)
{
	FILE *f = fopen(path, "r");
	char line[128];
	char *text = NULL;
	size_t len = 0, cap = 0;
	size_t n;
	char buf[4096];

	if (f == NULL)
		return -1;
	if (fgets(line, sizeof(line), f) == NULL ||
	    strncmp(line, DKIM_KEYS_HEADER, strlen(DKIM_KEYS_HEADER)) != 0) {
		fclose(f);
		return -1;
	}
	line[strcspn(line, "\r\n")] = '\0';
	if (dkim_alg_parse(line + strlen(DKIM_KEYS_HEADER), &k->alg) < 0) {
		fclose(f);
		return -1;
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0 && len < 65536) {
		if (len + n + 1 > cap) {
			cap = (len + n + 1) * 2;
			text = xrealloc(text, cap);
		}
		memcpy(text + len, buf, n);
		len += n;
	}
	fclose(f);
	util_wipe(buf, sizeof(buf));
	if (text == NULL)
		return -1;
	text[len] = '\0';
	k->privkey = text;
	k->domain = xstrdup(domain);
	k->selector = xstrdup(selector);
	return 0;
}

static int
dkim_keys_cmp(const void *a, const void *b)
{
	const struct dkim_keyfile *x = a, *y = b;
	int c = strcmp(x->domain, y->domain);

	return c != 0 ? c : strcmp(x->selector, y->selector);
}

static void
dkim_keys_scan_domain(const char *keydir, const char *domain,
    struct dkim_keyfile **keys, size_t *n)
{
	char *dpath = xasprintf("%s/%s", keydir, domain);
	DIR *d = opendir(dpath);
	struct dirent *de;

	if (d == NULL) {
		free(dpath);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		if (l <= 4 || strcmp(de->d_name + l - 4, ".key") != 0)
			continue;
		char *sel = xstrndup(de->d_name, l - 4);
		char *path = xasprintf("%s/%s", dpath, de->d_name);
		struct dkim_keyfile k = { 0 };
		if (dkim_selector_valid(sel) &&
		    dkim_keys_read(path, domain, sel, &k) == 0) {
			*keys = xrealloc(*keys, (*n + 1) * sizeof(**keys));
			(*keys)[(*n)++] = k;
		}
		free(sel);
		free(path);
	}
	closedir(d);
	free(dpath);
}

int
dkim_keys_list(const char *keydir, const char *domain,
    struct dkim_keyfile **keys_r, size_t *n_r, const char **error_r)
{
	struct dkim_keyfile *keys = NULL;
	size_t n = 0;

	if (domain != NULL) {
		dkim_keys_scan_domain(keydir, domain, &keys, &n);
	} else {
		DIR *d = opendir(keydir);
		struct dirent *de;

		if (d == NULL && errno != ENOENT) {
			*error_r = "cannot read the DKIM key directory";
			return -1;
		}
		while (d != NULL && (de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			dkim_keys_scan_domain(keydir, de->d_name, &keys, &n);
		}
		if (d != NULL)
			closedir(d);
	}
	if (n > 1)
		qsort(keys, n, sizeof(*keys), dkim_keys_cmp);
	*keys_r = keys;
	*n_r = n;
	return 0;
}

static int
dkim_keys_mkdir(const char *path, int uid, int gid)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -1;
	if (uid >= 0 && chown(path, (uid_t)uid, (gid_t)gid) < 0)
		return -1;
	return 0;
}

int
dkim_keys_write(const char *keydir, const struct dkim_keyfile *k, int uid,
    int gid, const char **error_r)
{
	char *ddir = xasprintf("%s/%s", keydir, k->domain);
	char *path = xasprintf("%s/%s.key", ddir, k->selector);
	int fd, ret = -1;

	if (dkim_keys_mkdir(keydir, uid, gid) < 0 ||
	    dkim_keys_mkdir(ddir, uid, gid) < 0) {
		*error_r = "cannot create the DKIM key directory";
		goto out;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == EEXIST) {
			ret = 1;
		} else {
			*error_r = "cannot create the key file";
		}
		goto out;
	}
	char *text = xasprintf(DKIM_KEYS_HEADER "%s\n%s\n",
	    dkim_alg_name(k->alg), k->privkey);
	size_t len = strlen(text);
	ssize_t w = write(fd, text, len);
	util_wipe(text, len);
	free(text);
	if (w != (ssize_t)len || fsync(fd) < 0 ||
	    (uid >= 0 && fchown(fd, (uid_t)uid, (gid_t)gid) < 0)) {
		close(fd);
		unlink(path);
		*error_r = "cannot write the key file";
		goto out;
	}
	close(fd);
	ret = 0;
out:
	free(ddir);
	free(path);
	return ret;
}

int
dkim_keys_delete(const char *keydir, const char *domain,
    const char *selector, const char **error_r)
{
	char *path = xasprintf("%s/%s/%s.key", keydir, domain, selector);
	int ret = 0;

	if (unlink(path) < 0) {
		if (errno == ENOENT) {
			ret = 1;
		} else {
			*error_r = "cannot delete the key file";
			ret = -1;
		}
	}
	free(path);
	return ret;
}
