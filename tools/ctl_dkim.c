/*
 * carteiroctl dkim: keygen DOMAIN [--selector S] [--algorithm ed25519|rsa],
 * list [DOMAIN], del DOMAIN SELECTOR; verify FILE|- is ctl_dkim_verify.c's.
 * Keys live in files (dkim_keys.h), readable only by the daemon's user;
 * keygen prints the TXT record to publish, in zone-file form, on one line.
 */
#include "tools/ctl.h"
#include "tools/ctl_admin.h"
#include "tools/ctl_mailauth.h"
#include "common/config.h"
#include "mailauth/dkim.h"
#include "mailauth/dkim_keys.h"
#include "common/util.h"
#include "store/store.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int ctl_dkim_keygen(struct ctl *, int, char **);
static void ctl_dkim_print_txt(const char *selector, const char *domain,
    const char *txt);
static int ctl_dkim_list(struct ctl *, int, char **);
static int ctl_dkim_del(struct ctl *, int, char **);

/* A DNS character-string holds at most 255 octets (RFC 1035 3.3): a
 * longer record (RSA keys) is printed as several quoted strings on the
 * same line, which resolvers concatenate (RFC 7208 3.3, RFC 6376 3.6.2.2). */
static void
ctl_dkim_print_txt(const char *selector, const char *domain, const char *txt)
{
	size_t len = strlen(txt);

	printf("%s._domainkey.%s. IN TXT", selector, domain);
	for (size_t i = 0; i < len; i += 255)
		printf(" \"%.*s\"", (int)(len - i < 255 ? len - i : 255),
		    txt + i);
	putchar('\n');
}

/* The daemon user's ids when we run as root, so it can read the key. */
static void
ctl_dkim_owner(const struct ctl *ctl, int *uid_r, int *gid_r)
{
	struct passwd *pw;

	*uid_r = *gid_r = -1;
	if (geteuid() != 0 || ctl->cfg->server.user == NULL)
		return;
	pw = getpwnam(ctl->cfg->server.user);
	if (pw != NULL) {
		*uid_r = (int)pw->pw_uid;
		*gid_r = (int)pw->pw_gid;
	}
}

static int
ctl_dkim_keygen(struct ctl *ctl, int argc, char **argv)
{
	const char *selector = NULL, *algname = "ed25519", *error = NULL;
	enum dkim_alg alg;
	char *domain = NULL, *keydir = NULL, *txt = NULL;
	struct dkim_keyfile k = { 0 };
	int uid, gid, r, ret = 1;

	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--selector") == 0 && i + 1 < argc)
			selector = argv[++i];
		else if (strcmp(argv[i], "--algorithm") == 0 && i + 1 < argc)
			algname = argv[++i];
		else {
			ctl_err("usage: dkim keygen DOMAIN [--selector S] "
			    "[--algorithm ed25519|rsa]");
			return 1;
		}
	}
	if (dkim_alg_parse(algname, &alg) < 0) {
		ctl_err("dkim keygen: unknown algorithm '%s' (ed25519 or rsa)",
		    algname);
		return 1;
	}
	if (selector == NULL)
		selector = dkim_alg_name(alg);
	if (!dkim_selector_valid(selector)) {
		ctl_err("dkim keygen: invalid selector '%s'", selector);
		return 1;
	}
	if (ctl_domain_arg(argv[2], &domain) < 0)
		return 1;
	if (ctl_require_local(ctl, domain) < 0)
		goto out;
	if (dkim_keygen(alg, &k.privkey, &txt) < 0) {
		ctl_err("dkim keygen: key generation failed");
		goto out;
	}
	k.domain = domain;
	k.selector = xstrdup(selector);
	k.alg = alg;
	keydir = dkim_keys_dir(ctl->cfg);
	ctl_dkim_owner(ctl, &uid, &gid);
	r = dkim_keys_write(keydir, &k, uid, gid, &error);
	if (r == 1) {
		ctl_err("dkim keygen: selector '%s' already exists for %s",
		    selector, domain);
		goto out;
	} else if (r < 0) {
		ctl_err("dkim keygen: %s (%s)", error, keydir);
		goto out;
	}
	ctl_dkim_print_txt(selector, domain, txt);
	ret = 0;
out:
	k.domain = NULL;	/* == domain, freed below */
	dkim_keyfile_clear(&k);
	free(domain);
	free(keydir);
	free(txt);
	return ret;
}

static int
ctl_dkim_list(struct ctl *ctl, int argc, char **argv)
{
	char *domain = NULL, *keydir = dkim_keys_dir(ctl->cfg);
	struct dkim_keyfile *keys = NULL;
	size_t n = 0;
	const char *error = NULL;
	int ret = 1;

	if (argc > 3) {
		ctl_err("usage: dkim list [DOMAIN]");
		goto out;
	}
	if (argc == 3 && ctl_domain_arg(argv[2], &domain) < 0)
		goto out;
	if (dkim_keys_list(keydir, domain, &keys, &n, &error) < 0) {
		ctl_err("dkim list: %s", error);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char *txt = NULL;
		if (dkim_txt_for_key(keys[i].alg, keys[i].privkey, &txt) < 0)
			txt = xstrdup("(unreadable key)");
		printf("%s %s %s ", keys[i].domain, keys[i].selector,
		    dkim_alg_name(keys[i].alg));
		ctl_dkim_print_txt(keys[i].selector, keys[i].domain, txt);
		free(txt);
	}
	ret = 0;
out:
	dkim_keyfiles_free(keys, n);
	free(domain);
	free(keydir);
	return ret;
}

static int
ctl_dkim_del(struct ctl *ctl, int argc, char **argv)
{
	char *domain = NULL, *keydir;
	const char *error = NULL;
	int r;

	if (argc != 4) {
		ctl_err("usage: dkim del DOMAIN SELECTOR");
		return 1;
	}
	if (ctl_domain_arg(argv[2], &domain) < 0)
		return 1;
	if (!dkim_selector_valid(argv[3])) {
		ctl_err("dkim del: invalid selector '%s'", argv[3]);
		free(domain);
		return 1;
	}
	keydir = dkim_keys_dir(ctl->cfg);
	r = dkim_keys_delete(keydir, domain, argv[3], &error);
	if (r == 1)
		ctl_err("dkim del: no key '%s' for %s", argv[3], domain);
	else if (r < 0)
		ctl_err("dkim del: %s", error);
	else
		ctl_done("deleted DKIM key %s for %s", argv[3], domain);
	free(domain);
	free(keydir);
	return r == 0 ? 0 : 1;
}

int
ctl_cmd_dkim(struct ctl *ctl, int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "keygen") == 0)
		return ctl_dkim_keygen(ctl, argc, argv);
	if (argc >= 2 && strcmp(argv[1], "list") == 0)
		return ctl_dkim_list(ctl, argc, argv);
	if (argc >= 2 && strcmp(argv[1], "del") == 0)
		return ctl_dkim_del(ctl, argc, argv);
	if (argc >= 2 && strcmp(argv[1], "verify") == 0)
		return ctl_dkim_verify(ctl, argc, argv);
	ctl_err("usage: dkim keygen DOMAIN [--selector S] [--algorithm "
	    "ed25519|rsa] | dkim list [DOMAIN] | dkim del DOMAIN SELECTOR | "
	    "dkim verify FILE|-");
	return 1;
}
