/*
 * The counters file: layout, the writer's mapping and the reader. It does
 * not count anything itself (the daemons call stats_add at their events)
 * and does not format them (webd/metrics.c).
 */
#include "common/stats.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

#define STATS_MAGIC	0x31534154534f4143ull	/* "CAOSTATS1" */

/* The file: this header, then one uint64_t per id (native byte order:
 * the reader runs on the same machine). */
struct stats_file {
	uint64_t magic;
	uint64_t count;		/* ids the writer knows */
	uint64_t v[STATS_COUNT];
};

/* A counter row; help on the first row of a name, NULL on the others. */
#define STATS_C(n, l, h)	{ .name = (n), .labels = (l), \
	.kind = STATS_COUNTER, .help = (h) }
/* A histogram bucket, up to ms milliseconds (0: +Inf). */
#define STATS_B(n, l, h, ms)	{ .name = (n), .labels = (l), \
	.kind = STATS_HIST_BUCKET, .help = (h), .le_ms = (ms) }
/* A histogram's sum or count row. */
#define STATS_H(n, k)		{ .name = (n), .labels = "", .kind = (k) }

static const struct stats_def stats_defs[STATS_COUNT] = {
	[STATS_SMTP_CONN_MX] = STATS_C("carteiro_smtp_connections_total",
	    "listener=\"mx\"", "SMTP sessions accepted, by listener"),
	[STATS_SMTP_CONN_SUBMISSION] = STATS_C(
	    "carteiro_smtp_connections_total", "listener=\"submission\"", NULL),
	[STATS_SMTP_CONN_SUBMISSIONS] = STATS_C(
	    "carteiro_smtp_connections_total", "listener=\"submissions\"",
	    NULL),
	[STATS_SMTP_CONN_REFUSED] = STATS_C(
	    "carteiro_smtp_connections_refused_total", "",
	    "SMTP sessions refused for max_clients, per-IP or rate limits"),
	[STATS_SMTP_ACCEPTED] = STATS_C(
	    "carteiro_smtp_messages_accepted_total", "",
	    "messages acknowledged with 250 after the data"),
	[STATS_SMTP_ACCEPTED_BYTES] = STATS_C(
	    "carteiro_smtp_messages_accepted_bytes_total", "",
	    "bytes of the accepted messages"),
	[STATS_SMTP_REFUSED_4XX] = STATS_C(
	    "carteiro_smtp_messages_refused_total", "class=\"4xx\"",
	    "messages refused after the data, by reply class"),
	[STATS_SMTP_REFUSED_5XX] = STATS_C(
	    "carteiro_smtp_messages_refused_total", "class=\"5xx\"", NULL),
	[STATS_SMTP_AUTH_OK] = STATS_C("carteiro_smtp_auth_total",
	    "result=\"ok\"", "SMTP AUTH attempts, by result"),
	[STATS_SMTP_AUTH_FAILED] = STATS_C("carteiro_smtp_auth_total",
	    "result=\"failed\"", NULL),
	[STATS_POP3_LOGIN_OK] = STATS_C("carteiro_pop3_logins_total",
	    "result=\"ok\"", "POP3 logins, by result"),
	[STATS_POP3_LOGIN_FAILED] = STATS_C("carteiro_pop3_logins_total",
	    "result=\"failed\"", NULL),
	[STATS_POP3_RETR] = STATS_C("carteiro_pop3_retrievals_total", "",
	    "POP3 RETR and TOP commands answered +OK"),
	[STATS_POP3_DELETED] = STATS_C("carteiro_pop3_deleted_total", "",
	    "messages deleted by POP3 QUIT"),
	[STATS_RELAY_SENT] = STATS_C("carteiro_relay_deliveries_total",
	    "status=\"sent\"",
	    "delivery attempts per remote recipient, by outcome"),
	[STATS_RELAY_DEFERRED] = STATS_C("carteiro_relay_deliveries_total",
	    "status=\"deferred\"", NULL),
	[STATS_RELAY_BOUNCED] = STATS_C("carteiro_relay_deliveries_total",
	    "status=\"bounced\"", NULL),
	[STATS_DSN_FAILED] = STATS_C("carteiro_relay_dsn_total",
	    "kind=\"failed\"",
	    "delivery status notifications created, by kind"),
	[STATS_DSN_DELAYED] = STATS_C("carteiro_relay_dsn_total",
	    "kind=\"delayed\"", NULL),
	[STATS_SMTP_DNSBL_LISTED] = STATS_C("carteiro_smtp_dnsbl_listed_total",
	    "", "SMTP sessions refused because a DNSBL lists the client"),
	[STATS_SPF_NONE] = STATS_C("carteiro_smtp_spf_results_total",
	    "result=\"none\"",
	    "SPF results of inbound messages (RFC 8601 words)"),
	[STATS_SPF_NEUTRAL] = STATS_C("carteiro_smtp_spf_results_total",
	    "result=\"neutral\"", NULL),
	[STATS_SPF_PASS] = STATS_C("carteiro_smtp_spf_results_total",
	    "result=\"pass\"", NULL),
	[STATS_SPF_FAIL] = STATS_C("carteiro_smtp_spf_results_total",
	    "result=\"fail\"", NULL),
	[STATS_SPF_SOFTFAIL] = STATS_C("carteiro_smtp_spf_results_total",
	    "result=\"softfail\"", NULL),
	[STATS_SPF_TEMPERROR] = STATS_C("carteiro_smtp_spf_results_total",
	    "result=\"temperror\"", NULL),
	[STATS_SPF_PERMERROR] = STATS_C("carteiro_smtp_spf_results_total",
	    "result=\"permerror\"", NULL),
	[STATS_DKIM_NONE] = STATS_C("carteiro_smtp_dkim_results_total",
	    "result=\"none\"",
	    "DKIM results of inbound messages (the first passing signature, "
	    "else the first)"),
	[STATS_DKIM_PASS] = STATS_C("carteiro_smtp_dkim_results_total",
	    "result=\"pass\"", NULL),
	[STATS_DKIM_FAIL] = STATS_C("carteiro_smtp_dkim_results_total",
	    "result=\"fail\"", NULL),
	[STATS_DKIM_NEUTRAL] = STATS_C("carteiro_smtp_dkim_results_total",
	    "result=\"neutral\"", NULL),
	[STATS_DKIM_TEMPERROR] = STATS_C("carteiro_smtp_dkim_results_total",
	    "result=\"temperror\"", NULL),
	[STATS_DKIM_PERMERROR] = STATS_C("carteiro_smtp_dkim_results_total",
	    "result=\"permerror\"", NULL),
	[STATS_DMARC_NONE] = STATS_C("carteiro_smtp_dmarc_results_total",
	    "result=\"none\"", "DMARC results of inbound messages"),
	[STATS_DMARC_PASS] = STATS_C("carteiro_smtp_dmarc_results_total",
	    "result=\"pass\"", NULL),
	[STATS_DMARC_FAIL] = STATS_C("carteiro_smtp_dmarc_results_total",
	    "result=\"fail\"", NULL),
	[STATS_DMARC_TEMPERROR] = STATS_C("carteiro_smtp_dmarc_results_total",
	    "result=\"temperror\"", NULL),
	[STATS_DMARC_PERMERROR] = STATS_C("carteiro_smtp_dmarc_results_total",
	    "result=\"permerror\"", NULL),
	[STATS_SMTP_EOD_LE_50MS] = STATS_B("carteiro_smtp_end_of_data_seconds",
	    "le=\"0.05\"",
	    "time from the end of the data to the 250 (checks, signing, "
	    "commit)", 50),
	[STATS_SMTP_EOD_LE_100MS] = STATS_B(
	    "carteiro_smtp_end_of_data_seconds", "le=\"0.1\"", NULL, 100),
	[STATS_SMTP_EOD_LE_250MS] = STATS_B(
	    "carteiro_smtp_end_of_data_seconds", "le=\"0.25\"", NULL, 250),
	[STATS_SMTP_EOD_LE_500MS] = STATS_B(
	    "carteiro_smtp_end_of_data_seconds", "le=\"0.5\"", NULL, 500),
	[STATS_SMTP_EOD_LE_1S] = STATS_B("carteiro_smtp_end_of_data_seconds",
	    "le=\"1.0\"", NULL, 1000),
	[STATS_SMTP_EOD_LE_2500MS] = STATS_B(
	    "carteiro_smtp_end_of_data_seconds", "le=\"2.5\"", NULL, 2500),
	[STATS_SMTP_EOD_LE_5S] = STATS_B("carteiro_smtp_end_of_data_seconds",
	    "le=\"5.0\"", NULL, 5000),
	[STATS_SMTP_EOD_LE_10S] = STATS_B("carteiro_smtp_end_of_data_seconds",
	    "le=\"10.0\"", NULL, 10000),
	[STATS_SMTP_EOD_LE_INF] = STATS_B("carteiro_smtp_end_of_data_seconds",
	    "le=\"+Inf\"", NULL, 0),
	[STATS_SMTP_EOD_SUM_MS] = STATS_H("carteiro_smtp_end_of_data_seconds",
	    STATS_HIST_SUM_MS),
	[STATS_SMTP_EOD_COUNT] = STATS_H("carteiro_smtp_end_of_data_seconds",
	    STATS_HIST_COUNT),
	[STATS_SMTP_TLS_13] = STATS_C("carteiro_smtp_tls_sessions_total",
	    "version=\"TLSv1.3\"",
	    "SMTP server TLS handshakes (STARTTLS and implicit), by version"),
	[STATS_SMTP_TLS_12] = STATS_C("carteiro_smtp_tls_sessions_total",
	    "version=\"TLSv1.2\"", NULL),
	[STATS_SMTP_TLS_OTHER] = STATS_C("carteiro_smtp_tls_sessions_total",
	    "version=\"other\"", NULL),
	[STATS_POP3_TLS_13] = STATS_C("carteiro_pop3_tls_sessions_total",
	    "version=\"TLSv1.3\"",
	    "POP3 TLS handshakes (STLS and implicit), by version"),
	[STATS_POP3_TLS_12] = STATS_C("carteiro_pop3_tls_sessions_total",
	    "version=\"TLSv1.2\"", NULL),
	[STATS_POP3_TLS_OTHER] = STATS_C("carteiro_pop3_tls_sessions_total",
	    "version=\"other\"", NULL),
	[STATS_SMTP_REPLY_421] = STATS_C("carteiro_smtp_error_replies_total",
	    "code=\"421\"",
	    "SMTP replies 4xx and 5xx, by code (refusals and errors)"),
	[STATS_SMTP_REPLY_450] = STATS_C("carteiro_smtp_error_replies_total",
	    "code=\"450\"", NULL),
	[STATS_SMTP_REPLY_451] = STATS_C("carteiro_smtp_error_replies_total",
	    "code=\"451\"", NULL),
	[STATS_SMTP_REPLY_452] = STATS_C("carteiro_smtp_error_replies_total",
	    "code=\"452\"", NULL),
	[STATS_SMTP_REPLY_454] = STATS_C("carteiro_smtp_error_replies_total",
	    "code=\"454\"", NULL),
	[STATS_SMTP_REPLY_500] = STATS_C("carteiro_smtp_error_replies_total",
	    "code=\"500\"", NULL),
	[STATS_SMTP_REPLY_501] = STATS_C("carteiro_smtp_error_replies_total",
	    "code=\"501\"", NULL),
	[STATS_SMTP_REPLY_502] = STATS_C("carteiro_smtp_error_replies_total",
	    "code=\"502\"", NULL),
	[STATS_SMTP_REPLY_503] = STATS_C("carteiro_smtp_error_replies_total",
	    "code=\"503\"", NULL),
	[STATS_SMTP_REPLY_504] = STATS_C("carteiro_smtp_error_replies_total",
	    "code=\"504\"", NULL),
	[STATS_SMTP_REPLY_530] = STATS_C("carteiro_smtp_error_replies_total",
	    "code=\"530\"", NULL),
	[STATS_SMTP_REPLY_535] = STATS_C("carteiro_smtp_error_replies_total",
	    "code=\"535\"", NULL),
	[STATS_SMTP_REPLY_550] = STATS_C("carteiro_smtp_error_replies_total",
	    "code=\"550\"", NULL),
	[STATS_SMTP_REPLY_551] = STATS_C("carteiro_smtp_error_replies_total",
	    "code=\"551\"", NULL),
	[STATS_SMTP_REPLY_552] = STATS_C("carteiro_smtp_error_replies_total",
	    "code=\"552\"", NULL),
	[STATS_SMTP_REPLY_553] = STATS_C("carteiro_smtp_error_replies_total",
	    "code=\"553\"", NULL),
	[STATS_SMTP_REPLY_554] = STATS_C("carteiro_smtp_error_replies_total",
	    "code=\"554\"", NULL),
	[STATS_SMTP_REPLY_555] = STATS_C("carteiro_smtp_error_replies_total",
	    "code=\"555\"", NULL),
	[STATS_SMTP_REPLY_OTHER] = STATS_C("carteiro_smtp_error_replies_total",
	    "code=\"other\"", NULL),
};

#undef STATS_C
#undef STATS_B
#undef STATS_H

/* The writer's mapping; process-wide because the counters are. */
static struct stats_file *stats_mem;

static char *stats_path(const char *, const char *);

const struct stats_def *
stats_def(enum stats_id id)
{
	return &stats_defs[id];
}

/* "<dir of store_path>/carteiro-<role>.stats" (caller frees). */
static char *
stats_path(const char *store_path, const char *role)
{
	const char *slash = strrchr(store_path, '/');

	if (slash == NULL)
		return xasprintf("carteiro-%s.stats", role);
	return xasprintf("%.*s/carteiro-%s.stats",
	    (int)(slash - store_path), store_path, role);
}

/*
 * The file is never truncated, only grown: another process may have it
 * mapped (webd reading it, a second daemon on the same store path, the
 * last instance while a restart begins), and a mapping touched past the
 * end of its file is SIGBUS. So the counters are zeroed in place.
 */
int
stats_open(const char *store_path, const char *role, const char **error_r)
{
	char *path = stats_path(store_path, role);
	struct stat st;
	void *p;
	int fd;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	free(path);
	if (fd < 0) {
		*error_r = strerror(errno);
		return -1;
	}
	(void)fchmod(fd, 0644);		/* webd reads it; umask 077 in units */
	if (fstat(fd, &st) < 0 || ((size_t)st.st_size <
	    sizeof(struct stats_file) &&
	    ftruncate(fd, sizeof(struct stats_file)) < 0)) {
		*error_r = strerror(errno);
		close(fd);
		return -1;
	}
	p = mmap(NULL, sizeof(struct stats_file), PROT_READ | PROT_WRITE,
	    MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		*error_r = strerror(errno);
		return -1;
	}
	stats_mem = p;
	/* A reader skips a file without the magic: clear it first. */
	__atomic_store_n(&stats_mem->magic, 0, __ATOMIC_RELEASE);
	memset(stats_mem->v, 0, sizeof(stats_mem->v));
	stats_mem->count = STATS_COUNT;
	__atomic_store_n(&stats_mem->magic, STATS_MAGIC, __ATOMIC_RELEASE);
	return 0;
}

void
stats_close(void)
{
	if (stats_mem == NULL)
		return;
	munmap(stats_mem, sizeof(struct stats_file));
	stats_mem = NULL;
}

void
stats_add(enum stats_id id, uint64_t n)
{
	if (stats_mem != NULL)
		__atomic_fetch_add(&stats_mem->v[id], n, __ATOMIC_RELAXED);
}

void
stats_observe_ms(enum stats_id first, uint64_t ms)
{
	enum stats_id i = first;

	/* The first bucket that holds ms; +Inf (le_ms 0) holds all. */
	while (stats_defs[i].le_ms != 0 && ms > stats_defs[i].le_ms)
		i++;
	stats_inc(i);
	while (stats_defs[i].kind == STATS_HIST_BUCKET)
		i++;
	assert(stats_defs[i].kind == STATS_HIST_SUM_MS &&
	    stats_defs[i + 1].kind == STATS_HIST_COUNT);
	stats_add(i, ms);
	stats_inc(i + 1);
}

void
stats_inc_word(enum stats_id first, enum stats_id last, const char *word)
{
	size_t len = word != NULL ? strlen(word) : 0;
	const char *v;

	for (enum stats_id i = first; i <= last && word != NULL; i++) {
		/* name="<word>" */
		v = strchr(stats_defs[i].labels, '"');
		if (v != NULL && strncmp(v + 1, word, len) == 0 &&
		    strcmp(v + 1 + len, "\"") == 0) {
			stats_inc(i);
			return;
		}
	}
	v = strchr(stats_defs[last].labels, '"');
	if (v != NULL && strcmp(v, "\"other\"") == 0)
		stats_inc(last);
}

int
stats_read(const char *store_path, const char *role,
    uint64_t out[STATS_COUNT])
{
	char *path = stats_path(store_path, role);
	const struct stats_file *f;
	struct stat st;
	uint64_t n;
	void *p;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	free(path);
	if (fd < 0)
		return 1;
	if (fstat(fd, &st) < 0 ||
	    (size_t)st.st_size < offsetof(struct stats_file, v)) {
		close(fd);
		return 1;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return 1;
	f = p;
	if (__atomic_load_n(&f->magic, __ATOMIC_ACQUIRE) != STATS_MAGIC) {
		munmap(p, (size_t)st.st_size);
		return 1;
	}
	/* An older or newer writer: the ids both know. */
	n = f->count;
	if (n > STATS_COUNT)
		n = STATS_COUNT;
	if (n > ((size_t)st.st_size - offsetof(struct stats_file, v)) /
	    sizeof(uint64_t))
		n = ((size_t)st.st_size - offsetof(struct stats_file, v)) /
		    sizeof(uint64_t);
	for (uint64_t i = 0; i < n; i++)
		out[i] += __atomic_load_n(&f->v[i], __ATOMIC_RELAXED);
	munmap(p, (size_t)st.st_size);
	return 0;
}
