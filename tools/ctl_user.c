/*
 * carteiroctl user and alias groups: accounts (add, passwd, del, list,
 * show, quota) and aliases incl. @domain catch-alls. Addresses are
 * normalised (IDN domains to A-labels) before they reach the store.
 */
#include "tools/ctl.h"
#include "tools/ctl_admin.h"
#include "common/addr.h"
#include "common/auth.h"
#include "common/config.h"
#include "common/util.h"
#include "store/retention.h"
#include "store/store.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void ctl_alias_done(const char *verb, const char *source,
    const struct ctl_strv *dests);
static int ctl_alias_dests(const char *arg, struct ctl_strv *sv);
static int ctl_alias_dest_check(struct ctl *ctl, const char *dest);
static void ctl_alias_collect_cb(const char *source, const char *dest,
    void *arg);
static int ctl_read_password_hash(char **hash_r);
static int ctl_user_set_enabled(struct ctl *ctl, const char *arg,
    bool enabled);

/* ---- user ---- */

/* A password from stdin, hashed (argon2id); the plaintext is wiped.
 * 0 and *hash_r (caller frees), or -1 after one ctl_err line. */
static int
ctl_read_password_hash(char **hash_r)
{
	char *password = NULL;
	int r;

	if (ctl_read_password(&password) < 0)
		return -1;
	r = auth_hash_password(password, hash_r);
	auth_wipe_free(password);
	if (r < 0)
		ctl_err("hashing the password failed (out of memory)");
	return r;
}

int
ctl_user_add(struct ctl *ctl, int argc, char **argv)
{
	struct store_user u;
	char *address, *hash = NULL;
	int r, ret = 1;

	if (ctl_address_arg(argv[2], &address) < 0)
		return 1;
	if (ctl_require_local(ctl, addr_domain(address)) < 0)
		goto out;
	/* Refuse before asking for a password. */
	r = store_user_get(ctl->st, address, &u);
	if (r < 0) {
		ctl_store_err(ctl, "user add");
		goto out;
	}
	if (r == 0) {
		store_user_clear(&u);
		ctl_err("user %s already exists", address);
		goto out;
	}
	if (ctl_read_password_hash(&hash) < 0)
		goto out;
	r = store_user_add(ctl->st, address, hash);
	if (r < 0)
		ctl_store_err(ctl, "user add");
	else if (r == 1)
		ctl_err("user %s already exists", address);
	else {
		ctl_done("added user %s", address);
		ret = 0;
	}
out:
	free(hash);
	free(address);
	return ret;
}

int
ctl_user_passwd(struct ctl *ctl, int argc, char **argv)
{
	struct store_user u;
	char *address, *hash = NULL;
	int r, ret = 1;

	if (ctl_address_arg(argv[2], &address) < 0)
		return 1;
	r = store_user_get(ctl->st, address, &u);
	if (r < 0) {
		ctl_store_err(ctl, "user passwd");
		goto out;
	}
	if (r == 1) {
		ctl_err("no such user %s", address);
		goto out;
	}
	store_user_clear(&u);
	if (ctl_read_password_hash(&hash) < 0)
		goto out;
	r = store_user_set_hash(ctl->st, address, hash);
	if (r < 0)
		ctl_store_err(ctl, "user passwd");
	else if (r == 1)
		ctl_err("no such user %s", address);
	else {
		ctl_done("changed the password of %s", address);
		ret = 0;
	}
out:
	free(hash);
	free(address);
	return ret;
}

int
ctl_user_del(struct ctl *ctl, int argc, char **argv)
{
	char *address;
	int r;

	if (ctl_address_arg(argv[2], &address) < 0)
		return 1;
	r = store_user_del(ctl->st, address);
	if (r < 0)
		r = ctl_store_err(ctl, "user del");
	else if (r == 1)
		ctl_err("no such user %s", address);
	else
		ctl_done("deleted user %s", address);
	free(address);
	return r == 0 ? 0 : 1;
}

/* user list [ADDRESS|DOMAIN|@DOMAIN]: every user, one user, or the users
 * of one domain; addresses one per line, sorted. */
int
ctl_user_list(struct ctl *ctl, int argc, char **argv)
{
	struct ctl_strv sv = { 0 }, out = { 0 };
	struct store_user u;
	char *filter = NULL;
	const char *arg = argc > 2 ? argv[2] : NULL;
	size_t i;
	int r, ret = 1;

	if (arg != NULL && arg[0] != '@' && strchr(arg, '@') != NULL) {
		if (ctl_address_arg(arg, &filter) < 0)
			return 1;
		r = store_user_get(ctl->st, filter, &u);
		if (r < 0)
			ctl_store_err(ctl, "user list");
		else if (r == 1)
			ctl_err("no such user %s", filter);
		else {
			printf("%s\n", u.address);
			store_user_clear(&u);
			ret = 0;
		}
		free(filter);
		return ret;
	}
	if (arg != NULL && ctl_domain_arg(arg[0] == '@' ? arg + 1 : arg,
	    &filter) < 0)
		return 1;
	if (store_user_list(ctl->st, ctl_collect_cb, &sv) < 0) {
		ctl_store_err(ctl, "user list");
		goto out;
	}
	for (i = 0; i < sv.n; i++) {
		const char *d = addr_domain(sv.v[i]);

		if (filter == NULL ||
		    (d != NULL && strcasecmp(d, filter) == 0)) {
			ctl_strv_add(&out, sv.v[i]);
			sv.v[i] = NULL;
		}
	}
	ctl_strv_print_sorted(&out);
	ret = 0;
out:
	ctl_strv_free(&sv);
	ctl_strv_free(&out);
	free(filter);
	return ret;
}

/* user show ADDRESS: "key value" lines (address, quota, used, enabled,
 * messages). */
int
ctl_user_show(struct ctl *ctl, int argc, char **argv)
{
	struct store_user u;
	struct store_msg *msgs = NULL;
	int64_t expire;
	size_t n = 0;
	char *address;
	int r;

	if (ctl_address_arg(argv[2], &address) < 0)
		return 1;
	r = store_user_get(ctl->st, address, &u);
	if (r < 0 || r == 1) {
		if (r < 0)
			ctl_store_err(ctl, "user show");
		else
			ctl_err("no such user %s", address);
		free(address);
		return 1;
	}
	free(address);
	if (store_mailbox_list(ctl->st, u.address, &msgs, &n) != 0) {
		store_user_clear(&u);
		return ctl_store_err(ctl, "user show");
	}
	printf("address %s\nquota %llu\nused %llu\nenabled %s\n"
	    "messages %zu\n", u.address, (unsigned long long)u.quota,
	    (unsigned long long)u.used, u.enabled ? "yes" : "no", n);
	/* issue 14: the user's own [pop3d] expire, if any */
	if (store_user_get_expire(ctl->st, u.address, &expire) == 0 &&
	    expire != STORE_EXPIRE_DEFAULT) {
		if (expire == STORE_EXPIRE_NEVER)
			printf("expire never\n");
		else
			printf("expire %llds\n", (long long)expire);
	}
	free(msgs);
	store_user_clear(&u);
	return 0;
}

int
ctl_user_quota(struct ctl *ctl, int argc, char **argv)
{
	char *address;
	uint64_t quota;
	int r;

	if (ctl_address_arg(argv[2], &address) < 0)
		return 1;
	if (cfg_parse_size(argv[3], &quota) < 0 ||
	    quota > (uint64_t)INT64_MAX) {
		char *s = ctl_oneline(argv[3]);

		ctl_err("invalid quota '%s' (bytes, k/M/G suffixes allowed, "
		    "0 = unlimited)", s);
		free(s);
		free(address);
		return 1;
	}
	r = store_user_set_quota(ctl->st, address, quota);
	if (r < 0)
		r = ctl_store_err(ctl, "user quota");
	else if (r == 1)
		ctl_err("no such user %s", address);
	else if (quota == 0)
		ctl_done("set the quota of %s to unlimited", address);
	else
		ctl_done("set the quota of %s to %llu bytes", address,
		    (unsigned long long)quota);
	free(address);
	return r == 0 ? 0 : 1;
}

static int
ctl_user_set_enabled(struct ctl *ctl, const char *arg, bool enabled)
{
	char *address;
	int r;

	if (ctl_address_arg(arg, &address) < 0)
		return 1;
	r = store_user_set_enabled(ctl->st, address, enabled);
	if (r < 0)
		r = ctl_store_err(ctl, enabled ? "user enable" :
		    "user disable");
	else if (r == 1)
		ctl_err("no such user %s", address);
	else
		ctl_done("%s user %s", enabled ? "enabled" : "disabled",
		    address);
	free(address);
	return r == 0 ? 0 : 1;
}

/* user disable ADDRESS: POP3 and SMTP AUTH refuse the user from the next
 * login on (sessions already open run to their end); mail keeps arriving,
 * an alias can send it elsewhere. */
int
ctl_user_disable(struct ctl *ctl, int argc, char **argv)
{
	return ctl_user_set_enabled(ctl, argv[2], false);
}

int
ctl_user_enable(struct ctl *ctl, int argc, char **argv)
{
	return ctl_user_set_enabled(ctl, argv[2], true);
}

/* ---- alias ---- */

/* "added alias a@x -> b@y, c@z" */
static void
ctl_alias_done(const char *verb, const char *source,
    const struct ctl_strv *dests)
{
	char *list = xstrdup(""), *t;
	size_t i;

	for (i = 0; i < dests->n; i++) {
		t = xasprintf("%s%s%s", list, i == 0 ? "" : ", ", dests->v[i]);
		free(list);
		list = t;
	}
	ctl_done("%s alias %s -> %s", verb, source, list);
	free(list);
}

/* Split "a@x, b@y" into normalised addresses; -1 (printed) on a bad one. */
static int
ctl_alias_dests(const char *arg, struct ctl_strv *sv)
{
	char *copy = xstrdup(arg), *p = copy, *tok, *dest;
	int ret = 0;

	while ((tok = strsep(&p, ",")) != NULL) {
		size_t len;

		while (*tok == ' ' || *tok == '\t')
			tok++;
		len = strlen(tok);
		while (len > 0 && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
			tok[--len] = '\0';
		if (*tok == '\0') {
			ctl_err("empty destination in '%s'", arg);
			ret = -1;
			break;
		}
		if (ctl_address_arg(tok, &dest) < 0) {
			ret = -1;
			break;
		}
		ctl_strv_add(sv, dest);
	}
	free(copy);
	return ret;
}

/* A destination in one of our domains must deliver somewhere (a user, an
 * alias or a catch-all), else mail to the alias would bounce. */
static int
ctl_alias_dest_check(struct ctl *ctl, const char *dest)
{
	enum store_rcpt_kind kind;
	char **local, **remote;
	size_t nlocal, nremote;

	if (store_resolve(ctl->st, dest, ctl->cfg->server.postmaster, &kind,
	    &local, &nlocal, &remote, &nremote) < 0) {
		ctl_store_err(ctl, "alias add");
		return -1;
	}
	store_rcpt_free_list(local, nlocal);
	store_rcpt_free_list(remote, nremote);
	if (kind == STORE_RCPT_NOUSER) {
		ctl_err("no user or alias %s (add it first)", dest);
		return -1;
	}
	return 0;
}

int
ctl_alias_add(struct ctl *ctl, int argc, char **argv)
{
	struct ctl_strv dests = { 0 };
	struct store_user u;
	char *source;
	const char *domain;
	bool is_user = false, self = false;
	size_t i;
	int r, ret = 1;

	if (ctl_source_arg(argv[2], &source) < 0)
		return 1;
	domain = addr_domain(source);
	if (ctl_require_local(ctl, domain) < 0)
		goto out;
	if (ctl_alias_dests(argv[3], &dests) < 0)
		goto out;
	/* An alias replaces the mailbox of a user with the same address;
	 * listing the address itself keeps a copy there (store_resolve). */
	if (source[0] != '@') {
		r = store_user_get(ctl->st, source, &u);
		if (r < 0) {
			ctl_store_err(ctl, "alias add");
			goto out;
		}
		is_user = r == 0;
		if (is_user)
			store_user_clear(&u);
	}
	for (i = 0; i < dests.n; i++) {
		if (strcasecmp(dests.v[i], source) == 0) {
			if (!is_user) {
				ctl_err("alias %s would point to itself",
				    source);
				goto out;
			}
			self = true;
			continue;
		}
		if (ctl_alias_dest_check(ctl, dests.v[i]) < 0)
			goto out;
	}
	/* All or nothing. */
	if (store_begin(ctl->st) < 0) {
		ctl_store_err(ctl, "alias add");
		goto out;
	}
	for (i = 0; i < dests.n; i++) {
		r = store_alias_add(ctl->st, source, dests.v[i]);
		if (r < 0) {
			ctl_store_err(ctl, "alias add");
			store_rollback(ctl->st);
			goto out;
		}
		if (r == 1) {
			ctl_err("alias %s -> %s already exists", source,
			    dests.v[i]);
			store_rollback(ctl->st);
			goto out;
		}
	}
	if (store_commit(ctl->st) < 0) {
		ctl_store_err(ctl, "alias add");
		store_rollback(ctl->st);
		goto out;
	}
	ctl_alias_done("added", source, &dests);
	if (is_user && !self)
		ctl_err("note: mail to %s now goes to the alias destinations "
		    "only (add %s to them to keep a copy in its mailbox)",
		    source, source);
	ret = 0;
out:
	ctl_strv_free(&dests);
	free(source);
	return ret;
}

int
ctl_alias_del(struct ctl *ctl, int argc, char **argv)
{
	struct ctl_strv dests = { 0 };
	char *source;
	size_t i;
	int r, ret = 1;

	if (ctl_source_arg(argv[2], &source) < 0)
		return 1;
	if (argc < 4) {
		r = store_alias_del(ctl->st, source, NULL);
		if (r < 0)
			ctl_store_err(ctl, "alias del");
		else if (r == 1)
			ctl_err("no such alias %s", source);
		else {
			ctl_done("deleted alias %s", source);
			ret = 0;
		}
		goto out;
	}
	if (ctl_alias_dests(argv[3], &dests) < 0)
		goto out;
	if (store_begin(ctl->st) < 0) {
		ctl_store_err(ctl, "alias del");
		goto out;
	}
	for (i = 0; i < dests.n; i++) {
		r = store_alias_del(ctl->st, source, dests.v[i]);
		if (r != 0) {
			if (r < 0)
				ctl_store_err(ctl, "alias del");
			else
				ctl_err("no such alias %s -> %s", source,
				    dests.v[i]);
			store_rollback(ctl->st);
			goto out;
		}
	}
	if (store_commit(ctl->st) < 0) {
		ctl_store_err(ctl, "alias del");
		store_rollback(ctl->st);
		goto out;
	}
	ctl_alias_done("deleted", source, &dests);
	ret = 0;
out:
	ctl_strv_free(&dests);
	free(source);
	return ret;
}

static void
ctl_alias_collect_cb(const char *source, const char *dest, void *arg)
{
	ctl_strv_add(arg, xasprintf("%s %s", source, dest));
}

/* alias list [SOURCE]: "source dest" lines, sorted. */
int
ctl_alias_list(struct ctl *ctl, int argc, char **argv)
{
	struct ctl_strv sv = { 0 };
	char *source = NULL;
	int ret = 1;

	if (argc > 2 && ctl_source_arg(argv[2], &source) < 0)
		return 1;
	if (store_alias_list(ctl->st, source, ctl_alias_collect_cb, &sv) < 0)
		ctl_store_err(ctl, "alias list");
	else if (source != NULL && sv.n == 0)
		ctl_err("no such alias %s", source);
	else {
		ctl_strv_print_sorted(&sv);
		ret = 0;
	}
	ctl_strv_free(&sv);
	free(source);
	return ret;
}


/*
 * user set ADDRESS KEY=VALUE (issue 14): expire=DAYS|never|default, the
 * user's own [pop3d] expire (a duration with a suffix works too; 0 =
 * deleted at QUIT once retrieved; default = the server's again).
 */
int
ctl_user_set(struct ctl *ctl, int argc, char **argv)
{
	const char *arg = argv[3], *v;
	unsigned secs;
	int64_t expire;
	char *address;
	int r;

	if (strncmp(arg, "expire=", 7) != 0) {
		char *s = ctl_oneline(arg);

		ctl_err("user set: unknown setting '%s' (expected "
		    "expire=DAYS|never|default)", s);
		free(s);
		return 1;
	}
	v = arg + 7;
	if (strcmp(v, "default") == 0)
		expire = STORE_EXPIRE_DEFAULT;
	else if (cfg_parse_expire(v, &secs) < 0) {
		char *s = ctl_oneline(v);

		ctl_err("user set: invalid expire '%s' (never, default, a "
		    "number of days or a duration)", s);
		free(s);
		return 1;
	} else if (secs == CFG_EXPIRE_NEVER)
		expire = STORE_EXPIRE_NEVER;
	else
		expire = secs == CFG_EXPIRE_AT_QUIT ? 0 : (int64_t)secs;
	if (ctl_address_arg(argv[2], &address) < 0)
		return 1;
	r = store_user_set_expire(ctl->st, address, expire);
	if (r < 0)
		r = ctl_store_err(ctl, "user set");
	else if (r == 1)
		ctl_err("no such user %s", address);
	else
		ctl_done("set %s for %s", arg, address);
	free(address);
	return r == 0 ? 0 : 1;
}
