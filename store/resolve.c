/*
 * Recipient resolution: turns one RCPT address into local mailboxes and
 * remote forward addresses, following aliases, catch-alls and the
 * postmaster rule. Read-only; the rules are documented at store_resolve()
 * in store.h.
 */
#include "store/store_internal.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* RFC 5321 4.5.1 asks for "postmaster"; aliases expand at most this deep. */
#define RESOLVE_MAX_DEPTH 8
/* Upper bound on addresses visited for one recipient (alias fan-out). */
#define RESOLVE_MAX_NODES 1000

struct store_resolve_list {
	char **v;
	size_t n, cap;
};

struct store_resolve_ctx {
	struct store *st;
	const char *postmaster;
	struct store_resolve_list local, remote;
	const char *path[RESOLVE_MAX_DEPTH + 1];	/* borrowed, current chain */
	unsigned nodes;
	/* The last domain found local, not asked again: the address's own
	 * domain is checked before the expansion starts, and on PostgreSQL
	 * every question is a round trip. "" none. */
	char local_domain[256];
	bool full;		/* a user reached is at or over its quota */
};

static void store_resolve_list_add(struct store_resolve_list *,
    const char *);
static int store_resolve_dests(struct store *, const char *,
    struct store_resolve_list *);
static int store_resolve_user(struct store_resolve_ctx *, const char *,
    bool *);
static int store_resolve_expand(struct store_resolve_ctx *, const char *,
    unsigned);
static int store_resolve_expand_list(struct store_resolve_ctx *, const char *,
    struct store_resolve_list *, unsigned);
static bool store_resolve_is_postmaster(const char *, size_t);
static int store_resolve_postmaster_fallback(struct store_resolve_ctx *,
    const char *);

/* Append a copy unless an equal (case-insensitive) entry is present. */
static void
store_resolve_list_add(struct store_resolve_list *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcasecmp(l->v[i], s) == 0)
			return;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 4;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = xstrdup(s);
}

/* The destinations of alias source (collected, so recursion can reuse the
 * statement). */
static int
store_resolve_dests(struct store *st, const char *source,
    struct store_resolve_list *l)
{
	struct db_stmt *s;
	int rc;

	s = store_stmt(st, STMT_ALIAS_DESTS,
	    "SELECT dest FROM aliases WHERE source = ?1 ORDER BY id");
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, source);
	while ((rc = db_step(s)) == DB_ROW) {
		/* store_resolve_list_add dedups; keep every row here. */
		if (l->n == l->cap) {
			l->cap = l->cap ? l->cap * 2 : 4;
			l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
		}
		l->v[l->n++] = xstrdup(db_column_text(s,
		    0));
	}
	db_reset(s);
	if (rc != DB_DONE)
		return store_fail_db(st, rc, "alias lookup");
	return 0;
}

/* If addr is a user, add the stored address to local; *found_r. */
static int
store_resolve_user(struct store_resolve_ctx *c, const char *addr, bool *found_r)
{
	struct store_user u;
	int rc;

	rc = store_user_get(c->st, addr, &u);
	if (rc < 0)
		return -1;
	*found_r = rc == 0;
	if (rc == 0) {
		store_resolve_list_add(&c->local, u.address);
		c->full |= u.quota != 0 && u.used >= u.quota;
		store_user_clear(&u);
	}
	return 0;
}

/* store_domain_is_local through the one-entry memo. */
static int
store_resolve_domain_is_local(struct store_resolve_ctx *c,
    const char *domain)
{
	int rc;

	if (c->local_domain[0] != '\0' &&
	    strcasecmp(c->local_domain, domain) == 0)
		return 1;
	rc = store_domain_is_local(c->st, domain);
	if (rc == 1 && strlen(domain) < sizeof(c->local_domain))
		memcpy(c->local_domain, domain, strlen(domain) + 1);
	return rc;
}

static bool
store_resolve_is_postmaster(const char *addr, size_t local_len)
{
	return local_len == 10 && strncasecmp(addr, "postmaster", 10) == 0;
}

static int
store_resolve_expand_list(struct store_resolve_ctx *c, const char *addr,
    struct store_resolve_list *dests, unsigned depth)
{
	int ret = 0;

	c->path[depth] = addr;
	for (size_t i = 0; i < dests->n && ret == 0; i++)
		ret = store_resolve_expand(c, dests->v[i], depth + 1);
	return ret;
}

/*
 * Expand one address reached after `depth` alias hops. An explicit alias
 * of the address wins over its mailbox (list the address among the
 * destinations to keep a copy); then the user; then, for postmaster@, the
 * configured postmaster; then the domain's catch-all. Reaching an address
 * already on the current chain cuts the loop: a user there gets the mail,
 * anything else is dropped.
 */
static int
store_resolve_expand(struct store_resolve_ctx *c, const char *addr,
    unsigned depth)
{
	struct store_resolve_list dests = { 0 };
	const char *domain;
	size_t before;
	bool found;
	char *cw;
	int rc, ret = -1;

	if (depth > RESOLVE_MAX_DEPTH || ++c->nodes > RESOLVE_MAX_NODES)
		return 0;
	for (unsigned i = 0; i < depth; i++)
		if (strcasecmp(c->path[i], addr) == 0)
			return store_resolve_user(c, addr, &found);

	domain = store_addr_domain(addr);
	if (domain == NULL || domain == addr + 1)
		return 0;	/* not an address: nothing to deliver to */
	rc = store_resolve_domain_is_local(c, domain);
	if (rc < 0)
		return -1;
	if (rc == 0) {
		store_resolve_list_add(&c->remote, addr);
		return 0;
	}

	if (store_resolve_dests(c->st, addr, &dests) < 0)
		goto out;
	if (dests.n > 0) {
		ret = store_resolve_expand_list(c, addr, &dests, depth);
		goto out;
	}
	if (store_resolve_user(c, addr, &found) < 0)
		goto out;
	if (found) {
		ret = 0;
		goto out;
	}
	before = c->local.n + c->remote.n;
	if (store_resolve_is_postmaster(addr, (size_t)(domain - 1 - addr)) &&
	    c->postmaster != NULL && c->postmaster[0] != '\0') {
		c->path[depth] = addr;
		if (store_resolve_expand(c, c->postmaster, depth + 1) < 0)
			goto out;
		if (c->local.n + c->remote.n > before) {
			ret = 0;
			goto out;
		}
	}
	cw = xasprintf("@%s", domain);
	rc = store_resolve_dests(c->st, cw, &dests);
	free(cw);
	if (rc < 0)
		goto out;
	ret = store_resolve_expand_list(c, addr, &dests, depth);
	if (ret == 0 && c->local.n + c->remote.n == before &&
	    store_resolve_is_postmaster(addr, (size_t)(domain - 1 - addr)))
		ret = store_resolve_postmaster_fallback(c, domain);
out:
	store_rcpt_free_list(dests.v, dests.n);
	return ret;
}

/*
 * Postmaster with nowhere configured to go (no alias, no [server]
 * postmaster, no catch-all): the oldest user of domain (NULL: of the
 * store), so that postmaster is always accepted and read by someone.
 */
static int
store_resolve_postmaster_fallback(struct store_resolve_ctx *c,
    const char *domain)
{
	struct db_stmt *s;
	int rc;

	s = domain != NULL ? store_stmt(c->st, STMT_POSTMASTER_DOMAIN,
	    "SELECT u.address, u.quota, u.used FROM users u JOIN domains d "
	    "ON d.id = u.domain_id WHERE d.name = ?1 ORDER BY u.id LIMIT 1") :
	    store_stmt(c->st, STMT_POSTMASTER_ANY,
	    "SELECT address, quota, used FROM users ORDER BY id LIMIT 1");
	if (s == NULL)
		return -1;
	if (domain != NULL)
		store_bind_text(s, 1, domain);
	rc = db_step(s);
	if (rc == DB_ROW) {
		store_resolve_list_add(&c->local,
		    db_column_text(s, 0));
		c->full |= db_column_int64(s, 1) != 0 &&
		    db_column_int64(s, 2) >= db_column_int64(s, 1);
	}
	db_reset(s);
	if (rc != DB_ROW && rc != DB_DONE)
		return store_fail_db(c->st, rc, "postmaster");
	if (rc == DB_DONE && domain != NULL)
		return store_resolve_postmaster_fallback(c, NULL);
	return 0;
}

int
store_resolve(struct store *st, const char *address, const char *postmaster,
    enum store_rcpt_kind *kind_r, char ***local_r, size_t *nlocal_r,
    char ***remote_r, size_t *nremote_r)
{
	return store_resolve_quota(st, address, postmaster, kind_r, local_r,
	    nlocal_r, remote_r, nremote_r, NULL);
}

int
store_resolve_quota(struct store *st, const char *address,
    const char *postmaster, enum store_rcpt_kind *kind_r, char ***local_r,
    size_t *nlocal_r, char ***remote_r, size_t *nremote_r, bool *full_r)
{
	struct store_resolve_ctx c = { .st = st, .postmaster = postmaster };
	const char *domain = store_addr_domain(address);
	int rc;

	*local_r = *remote_r = NULL;
	*nlocal_r = *nremote_r = 0;
	if (domain == NULL) {
		/* RFC 5321 4.5.1: bare <postmaster>, no domain. */
		if (!store_resolve_is_postmaster(address, strlen(address))) {
			*kind_r = STORE_RCPT_NOUSER;
			return 0;
		}
		rc = 0;
		if (postmaster != NULL && postmaster[0] != '\0') {
			c.path[0] = address;
			rc = store_resolve_expand(&c, postmaster, 1);
		}
		if (rc == 0 && c.local.n + c.remote.n == 0)
			rc = store_resolve_postmaster_fallback(&c, NULL);
	} else {
		rc = store_resolve_domain_is_local(&c, domain);
		if (rc < 0)
			return -1;
		if (rc == 0) {
			*kind_r = STORE_RCPT_REMOTE;
			if (full_r != NULL)
				*full_r = false;
			return 0;
		}
		rc = domain == address + 1 ? 0 :
		    store_resolve_expand(&c, address, 0);
	}
	if (rc < 0) {
		store_rcpt_free_list(c.local.v, c.local.n);
		store_rcpt_free_list(c.remote.v, c.remote.n);
		return -1;
	}
	*kind_r = c.local.n + c.remote.n > 0 ? STORE_RCPT_LOCAL :
	    STORE_RCPT_NOUSER;
	if (full_r != NULL)
		*full_r = c.full;
	*local_r = c.local.v;
	*nlocal_r = c.local.n;
	*remote_r = c.remote.v;
	*nremote_r = c.remote.n;
	return 0;
}

void
store_rcpt_free_list(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}
