/*
 * Counters for /metrics. Each daemon counts into a small file beside the
 * store ("carteiro-<role>.stats", mapped shared; relaxed atomic adds, no
 * locks, no system call per event) and carteiro-webd maps the files
 * read-only and renders them. One table (stats.c) names every counter:
 * metric name, labels, help line. Counters start at 0 with each daemon
 * (Prometheus counts a reset as a restart).
 */
#ifndef CARTEIRO_STATS_H
#define CARTEIRO_STATS_H

#include <stddef.h>
#include <stdint.h>

/* Stored by position: append new ids at the end, never renumber (webd
 * may read a file written by an older daemon, up to its count). */
enum stats_id {
	STATS_SMTP_CONN_MX,		/* sessions, by listener */
	STATS_SMTP_CONN_SUBMISSION,
	STATS_SMTP_CONN_SUBMISSIONS,
	STATS_SMTP_CONN_REFUSED,	/* over max_clients and friends */
	STATS_SMTP_ACCEPTED,		/* messages, 250 after the data */
	STATS_SMTP_ACCEPTED_BYTES,
	STATS_SMTP_REFUSED_4XX,		/* refused after the data */
	STATS_SMTP_REFUSED_5XX,
	STATS_SMTP_AUTH_OK,
	STATS_SMTP_AUTH_FAILED,
	STATS_POP3_LOGIN_OK,
	STATS_POP3_LOGIN_FAILED,
	STATS_POP3_RETR,		/* RETR and TOP */
	STATS_POP3_DELETED,		/* messages deleted at QUIT */
	STATS_RELAY_SENT,		/* remote recipients, by outcome */
	STATS_RELAY_DEFERRED,
	STATS_RELAY_BOUNCED,
	STATS_DSN_FAILED,		/* DSNs created, by kind */
	STATS_DSN_DELAYED,
	STATS_SMTP_DNSBL_LISTED,	/* sessions refused for a DNSBL */
	/* Inbound check results, one row per RFC 8601 word (stats_inc_word). */
	STATS_SPF_NONE,
	STATS_SPF_NEUTRAL,
	STATS_SPF_PASS,
	STATS_SPF_FAIL,
	STATS_SPF_SOFTFAIL,
	STATS_SPF_TEMPERROR,
	STATS_SPF_PERMERROR,
	STATS_DKIM_NONE,
	STATS_DKIM_PASS,
	STATS_DKIM_FAIL,
	STATS_DKIM_NEUTRAL,
	STATS_DKIM_TEMPERROR,
	STATS_DKIM_PERMERROR,
	STATS_DMARC_NONE,
	STATS_DMARC_PASS,
	STATS_DMARC_FAIL,
	STATS_DMARC_TEMPERROR,
	STATS_DMARC_PERMERROR,
	/* A histogram: buckets (not cumulative here; the renderer adds them
	 * up), then the sum in milliseconds and the count. */
	STATS_SMTP_EOD_LE_50MS,		/* end of data to 250, seconds */
	STATS_SMTP_EOD_LE_100MS,
	STATS_SMTP_EOD_LE_250MS,
	STATS_SMTP_EOD_LE_500MS,
	STATS_SMTP_EOD_LE_1S,
	STATS_SMTP_EOD_LE_2500MS,
	STATS_SMTP_EOD_LE_5S,
	STATS_SMTP_EOD_LE_10S,
	STATS_SMTP_EOD_LE_INF,
	STATS_SMTP_EOD_SUM_MS,
	STATS_SMTP_EOD_COUNT,
	STATS_SMTP_TLS_13,		/* TLS sessions by version */
	STATS_SMTP_TLS_12,
	STATS_SMTP_TLS_OTHER,
	STATS_POP3_TLS_13,
	STATS_POP3_TLS_12,
	STATS_POP3_TLS_OTHER,
	/* smtp_reply's 4xx/5xx, by code; the last row is "other". */
	STATS_SMTP_REPLY_421,
	STATS_SMTP_REPLY_450,
	STATS_SMTP_REPLY_451,
	STATS_SMTP_REPLY_452,
	STATS_SMTP_REPLY_454,
	STATS_SMTP_REPLY_500,
	STATS_SMTP_REPLY_501,
	STATS_SMTP_REPLY_502,
	STATS_SMTP_REPLY_503,
	STATS_SMTP_REPLY_504,
	STATS_SMTP_REPLY_530,
	STATS_SMTP_REPLY_535,
	STATS_SMTP_REPLY_550,
	STATS_SMTP_REPLY_551,
	STATS_SMTP_REPLY_552,
	STATS_SMTP_REPLY_553,
	STATS_SMTP_REPLY_554,
	STATS_SMTP_REPLY_555,
	STATS_SMTP_REPLY_OTHER,
	STATS_COUNT
};

enum stats_kind {
	STATS_COUNTER,
	STATS_GAUGE,
	STATS_HIST_BUCKET,	/* labels: the le="..." bound */
	STATS_HIST_SUM_MS,	/* rendered in seconds */
	STATS_HIST_COUNT
};

struct stats_def {
	const char *name;	/* "carteiro_smtp_connections_total"; for a
				 * histogram the base name, without
				 * _bucket/_sum/_count */
	const char *labels;	/* "listener=\"mx\"" or "" */
	enum stats_kind kind;
	const char *help;	/* one line, on the first row of a name */
	uint64_t le_ms;		/* STATS_HIST_BUCKET: upper bound, 0 = +Inf */
};

/* The row of id (id < STATS_COUNT). */
const struct stats_def *stats_def(enum stats_id id);

/*
 * Start counting for role ("smtpd", "pop3d") into the file beside
 * store_path, created empty (mode 0644: counts, no secrets). Call once,
 * before threads start. -1 and *error_r (static) on failure; counting is
 * then a no-op.
 */
int stats_open(const char *store_path, const char *role,
    const char **error_r);
void stats_close(void);

/* Add n to a counter; callable from any thread. No-op without stats_open. */
void stats_add(enum stats_id id, uint64_t n);
#define stats_inc(id) stats_add((id), 1)

/* Count ms in the histogram whose first bucket is first (its buckets,
 * then its sum and count rows). */
void stats_observe_ms(enum stats_id first, uint64_t ms);

/* Count the row of first..last whose one label has the value word
 * (result="pass": "pass"). A word without a row counts in the last row
 * when its value is "other", else nowhere. word may be NULL. */
void stats_inc_word(enum stats_id first, enum stats_id last,
    const char *word);

/*
 * Add role's counters (written by another process) into out. 0, or 1 when
 * the file is missing or not ours (nothing added).
 */
int stats_read(const char *store_path, const char *role,
    uint64_t out[STATS_COUNT]);

#endif
