/*
 * SPF (RFC 7208) evaluation: check_host() with every mechanism and
 * modifier, macros, the 10-lookup and 2-void-lookup limits. DNS comes
 * from a caller-supplied lookup function (blocking), so the evaluator is a
 * plain recursive function that unit tests drive with a table and the
 * daemon runs on a worker thread with a real resolver (never on the event
 * loop).
 */
#ifndef CARTEIRO_SPF_H
#define CARTEIRO_SPF_H

#include <stddef.h>
#include <stdint.h>

enum spf_result {
	SPF_NONE,
	SPF_NEUTRAL,
	SPF_PASS,
	SPF_FAIL,
	SPF_SOFTFAIL,
	SPF_TEMPERROR,
	SPF_PERMERROR,
	SPF_RESULT_COUNT
};

/* "none", "neutral", "pass", ... (RFC 8601 result names). */
const char *spf_result_str(enum spf_result r);

enum spf_qtype {
	SPF_Q_TXT,
	SPF_Q_A,
	SPF_Q_AAAA,
	SPF_Q_MX,	/* answers: exchange host names */
	SPF_Q_PTR,	/* name: the reverse name; answers: host names */
};

enum spf_dns_status {
	SPF_DNS_OK,		/* n >= 1 answers */
	SPF_DNS_NONE,		/* NXDOMAIN or no records of that type */
	SPF_DNS_TEMPFAIL,	/* SERVFAIL, timeout */
};

/*
 * Look name up. On SPF_DNS_OK, *answers_r is a malloc'd array of n
 * malloc'd strings (the evaluator frees them): TXT records (strings of a
 * record concatenated), A/AAAA addresses as text, MX exchanges, PTR names.
 */
typedef enum spf_dns_status spf_lookup_fn(void *ctx, enum spf_qtype type,
    const char *name, char ***answers_r, size_t *n_r);

/*
 * The lookup the daemon and carteiroctl use: ctx is a struct dns
 * (mailauth/dns.h), asked through dns_lookup_sync(), so from a worker
 * thread or on a resolver without a loop. Answers free with free().
 */
spf_lookup_fn spf_lookup_dns;

/* The same with a deadline (the inbound checks' per-message DNS budget,
 * dns_lookup_sync_until): ctx is a struct spf_dns_until. */
struct spf_dns_until {
	struct dns *dns;
	uint64_t deadline_ms;		/* util_now_ms() clock */
};
spf_lookup_fn spf_lookup_dns_until;

/*
 * What check_host() looked at, for carteiroctl spf: called in order for
 * each record evaluated (text: the record), the term that decided a
 * record's result (text: the mechanism, or "redirect=..."), and the
 * explanation of a fail (text: the expanded exp= string). domain is the
 * domain being checked. Strings are borrowed for the call.
 */
enum spf_trace {
	SPF_TRACE_RECORD,
	SPF_TRACE_MATCH,
	SPF_TRACE_EXP,
};
typedef void spf_trace_fn(void *arg, enum spf_trace what,
    const char *domain, const char *text);

struct spf_request {
	const char *ip;		/* client, "192.0.2.1" or "2001:db8::1" */
	const char *sender;	/* MAIL FROM address; "" for <> */
	const char *helo;	/* HELO/EHLO name */
	const char *receiver;	/* our hostname, for %{r} */
	spf_lookup_fn *lookup;
	void *ctx;
	spf_trace_fn *trace;	/* NULL: none */
	void *trace_arg;
};

/*
 * check_host() for the MAIL FROM identity (or postmaster@helo when the
 * sender is empty). *domain_r (may be NULL) gets the domain checked
 * (caller frees); *why_r (may be NULL) a short static reason for logs.
 */
enum spf_result spf_check(const struct spf_request *req, char **domain_r,
    const char **why_r);

/* Expand an SPF macro-string for domain (exposed for tests). NULL on a
 * syntax error. Caller frees. */
char *spf_expand(const struct spf_request *req, const char *domain,
    const char *macro, int is_exp);

#endif
