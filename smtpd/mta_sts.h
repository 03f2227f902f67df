/*
 * MTA-STS (RFC 8461) for outbound delivery. mta_sts_policy.c: the pure
 * parts (the TXT record, the policy file, MX patterns), no I/O, unit
 * tested. mta_sts.c: the cache of policies per destination domain (in
 * memory, kept in the store across restarts), the _mta-sts TXT lookup on
 * the relay's resolver and the HTTPS fetch on a worker thread (libcurl,
 * acme/http.c), so the relay's loop never blocks.
 */
#ifndef CARTEIRO_MTA_STS_H
#define CARTEIRO_MTA_STS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct dns;
struct store;

/* RFC 8461 3.1: an id is 1*32(ALPHA / DIGIT). */
#define MTA_STS_ID_MAX		32
#define MTA_STS_BODY_MAX	(64 * 1024)	/* RFC 8461 3.3: 64 KiB */
/* mx: lines kept; more make the policy invalid. */
#define MTA_STS_MX_MAX		64
#define MTA_STS_MAX_AGE_MAX	31557600	/* RFC 8461 3.2: a year */

enum mta_sts_mode {
	MTA_STS_NONE,
	MTA_STS_TESTING,
	MTA_STS_ENFORCE,
};

/* A parsed policy, shared by reference (the cache and the sessions). */
struct mta_sts_policy {
	unsigned refs;
	char id[MTA_STS_ID_MAX + 1];	/* of the TXT record it came with */
	enum mta_sts_mode mode;
	uint32_t max_age;		/* seconds, <= MTA_STS_MAX_AGE_MAX */
	char **mx;			/* patterns: lower case, no end dot */
	size_t nmx;
	char *text;			/* the policy file as fetched */
};

/* ---- mta_sts_policy.c ---- */

/*
 * The policy id of a domain's TXT answer (rr[0..n)): records not starting
 * with "v=STSv1" are ignored; exactly one must remain and be valid (RFC
 * 8461 3.1). 0 and id_r (>= MTA_STS_ID_MAX + 1 bytes) filled, -1: none.
 */
int mta_sts_txt_id(const char *const *rr, size_t n, char *id_r);
/*
 * Parse a policy file (RFC 8461 3.2): body[0..len) is not necessarily
 * NUL-terminated. Returns a policy with refs 1 (text and id copied), or
 * NULL and *error_r (static).
 */
struct mta_sts_policy *mta_sts_policy_parse(const char *body, size_t len,
    const char *id, const char **error_r);
struct mta_sts_policy *mta_sts_policy_ref(struct mta_sts_policy *p);
/* Accepts NULL. */
void mta_sts_policy_unref(struct mta_sts_policy *p);
/* host (any case, a final dot allowed) matches one of the mx patterns:
 * exactly, or "*.rest" for one more leftmost label (RFC 8461 4.1). */
bool mta_sts_mx_match(const struct mta_sts_policy *p, const char *host);
/* "none", "testing", "enforce" (static). */
const char *mta_sts_mode_str(enum mta_sts_mode mode);

/* ---- mta_sts.c ---- */

struct mta_sts;
struct mta_sts_req;

struct mta_sts_params {
	struct event_base *base;
	struct dns *dns;		/* borrowed: the relay's resolver */
	struct store *st;		/* borrowed, read once by _new */
	const char *store_path;		/* the worker saves policies there */
	const char *ca_file;		/* NULL: the system's trust store */
	unsigned https_port;		/* 443; tests use another */
};

struct mta_sts *mta_sts_new(const struct mta_sts_params *p);
/* Cancels the requests still waiting (no callbacks). Before dns_free. */
void mta_sts_free(struct mta_sts *sts);

/*
 * The policy that applies to mail for domain, with a reference for the
 * caller (NULL: none applies). Never called back before mta_sts_get
 * returns. The TXT record is looked up each time (the resolver caches
 * it); the policy is fetched again when its id changed or it expired.
 */
typedef void mta_sts_cb(struct mta_sts_policy *p, void *arg);
struct mta_sts_req *mta_sts_get(struct mta_sts *sts, const char *domain,
    mta_sts_cb *cb, void *arg);
/* No callback any more. Accepts NULL. */
void mta_sts_cancel(struct mta_sts_req *req);

#endif
