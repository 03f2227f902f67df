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

static const struct stats_def stats_defs[STATS_COUNT] = {
	[STATS_SMTP_CONN_MX] = { "carteiro_smtp_connections_total",
	    "listener=\"mx\"", STATS_COUNTER,
	    "SMTP sessions accepted, by listener" },
	[STATS_SMTP_CONN_SUBMISSION] = { "carteiro_smtp_connections_total",
	    "listener=\"submission\"", STATS_COUNTER, NULL },
	[STATS_SMTP_CONN_SUBMISSIONS] = { "carteiro_smtp_connections_total",
	    "listener=\"submissions\"", STATS_COUNTER, NULL },
	[STATS_SMTP_CONN_REFUSED] = {
	    "carteiro_smtp_connections_refused_total", "", STATS_COUNTER,
	    "SMTP sessions refused for max_clients, per-IP or rate limits" },
	[STATS_SMTP_ACCEPTED] = { "carteiro_smtp_messages_accepted_total", "",
	    STATS_COUNTER, "messages acknowledged with 250 after the data" },
	[STATS_SMTP_ACCEPTED_BYTES] = {
	    "carteiro_smtp_messages_accepted_bytes_total", "", STATS_COUNTER,
	    "bytes of the accepted messages" },
	[STATS_SMTP_REFUSED_4XX] = { "carteiro_smtp_messages_refused_total",
	    "class=\"4xx\"", STATS_COUNTER,
	    "messages refused after the data, by reply class" },
	[STATS_SMTP_REFUSED_5XX] = { "carteiro_smtp_messages_refused_total",
	    "class=\"5xx\"", STATS_COUNTER, NULL },
	[STATS_SMTP_AUTH_OK] = { "carteiro_smtp_auth_total",
	    "result=\"ok\"", STATS_COUNTER, "SMTP AUTH attempts, by result" },
	[STATS_SMTP_AUTH_FAILED] = { "carteiro_smtp_auth_total",
	    "result=\"failed\"", STATS_COUNTER, NULL },
	[STATS_POP3_LOGIN_OK] = { "carteiro_pop3_logins_total",
	    "result=\"ok\"", STATS_COUNTER, "POP3 logins, by result" },
	[STATS_POP3_LOGIN_FAILED] = { "carteiro_pop3_logins_total",
	    "result=\"failed\"", STATS_COUNTER, NULL },
	[STATS_POP3_RETR] = { "carteiro_pop3_retrievals_total", "",
	    STATS_COUNTER, "POP3 RETR and TOP commands answered +OK" },
	[STATS_POP3_DELETED] = { "carteiro_pop3_deleted_total", "",
	    STATS_COUNTER, "messages deleted by POP3 QUIT" },
	[STATS_RELAY_SENT] = { "carteiro_relay_deliveries_total",
	    "status=\"sent\"", STATS_COUNTER,
	    "delivery attempts per remote recipient, by outcome" },
	[STATS_RELAY_DEFERRED] = { "carteiro_relay_deliveries_total",
	    "status=\"deferred\"", STATS_COUNTER, NULL },
	[STATS_RELAY_BOUNCED] = { "carteiro_relay_deliveries_total",
	    "status=\"bounced\"", STATS_COUNTER, NULL },
	[STATS_DSN_FAILED] = { "carteiro_relay_dsn_total", "kind=\"failed\"",
	    STATS_COUNTER, "delivery status notifications created, by kind" },
	[STATS_DSN_DELAYED] = { "carteiro_relay_dsn_total",
	    "kind=\"delayed\"", STATS_COUNTER, NULL },
	[STATS_SMTP_DNSBL_LISTED] = { "carteiro_smtp_dnsbl_listed_total", "",
	    STATS_COUNTER, "SMTP sessions refused because a DNSBL lists "
	    "the client" },
	[STATS_SPF_NONE] = { "carteiro_smtp_spf_results_total",
	    "result=\"none\"", STATS_COUNTER,
	    "SPF results of inbound messages (RFC 8601 words)" },
	[STATS_SPF_NEUTRAL] = { "carteiro_smtp_spf_results_total",
	    "result=\"neutral\"", STATS_COUNTER, NULL },
	[STATS_SPF_PASS] = { "carteiro_smtp_spf_results_total",
	    "result=\"pass\"", STATS_COUNTER, NULL },
	[STATS_SPF_FAIL] = { "carteiro_smtp_spf_results_total",
	    "result=\"fail\"", STATS_COUNTER, NULL },
	[STATS_SPF_SOFTFAIL] = { "carteiro_smtp_spf_results_total",
	    "result=\"softfail\"", STATS_COUNTER, NULL },
	[STATS_SPF_TEMPERROR] = { "carteiro_smtp_spf_results_total",
	    "result=\"temperror\"", STATS_COUNTER, NULL },
	[STATS_SPF_PERMERROR] = { "carteiro_smtp_spf_results_total",
	    "result=\"permerror\"", STATS_COUNTER, NULL },
	[STATS_DKIM_NONE] = { "carteiro_smtp_dkim_results_total",
	    "result=\"none\"", STATS_COUNTER,
	    "DKIM results of inbound messages (the first passing signature, "
	    "else the first)" },
	[STATS_DKIM_PASS] = { "carteiro_smtp_dkim_results_total",
	    "result=\"pass\"", STATS_COUNTER, NULL },
	[STATS_DKIM_FAIL] = { "carteiro_smtp_dkim_results_total",
	    "result=\"fail\"", STATS_COUNTER, NULL },
	[STATS_DKIM_NEUTRAL] = { "carteiro_smtp_dkim_results_total",
	    "result=\"neutral\"", STATS_COUNTER, NULL },
	[STATS_DKIM_TEMPERROR] = { "carteiro_smtp_dkim_results_total",
	    "result=\"temperror\"", STATS_COUNTER, NULL },
	[STATS_DKIM_PERMERROR] = { "carteiro_smtp_dkim_results_total",
	    "result=\"permerror\"", STATS_COUNTER, NULL },
	[STATS_DMARC_NONE] = { "carteiro_smtp_dmarc_results_total",
	    "result=\"none\"", STATS_COUNTER, "DMARC results of inbound messages" },
	[STATS_DMARC_PASS] = { "carteiro_smtp_dmarc_results_total",
	    "result=\"pass\"", STATS_COUNTER, NULL },
	[STATS_DMARC_FAIL] = { "carteiro_smtp_dmarc_results_total",
	    "result=\"fail\"", STATS_COUNTER, NULL },
	[STATS_DMARC_TEMPERROR] = { "carteiro_smtp_dmarc_results_total",
	    "result=\"temperror\"", STATS_COUNTER, NULL },
	[STATS_DMARC_PERMERROR] = { "carteiro_smtp_dmarc_results_total",
	    "result=\"permerror\"", STATS_COUNTER, NULL },
	[STATS_SMTP_EOD_LE_50MS] = { "carteiro_smtp_end_of_data_seconds",
	    "le=\"0.05\"", STATS_HIST_BUCKET, "time from the end of the data "
	    "to the 250 (checks, signing, commit)", 50 },
	[STATS_SMTP_EOD_LE_100MS] = { "carteiro_smtp_end_of_data_seconds",
	    "le=\"0.1\"", STATS_HIST_BUCKET, NULL, 100 },
	[STATS_SMTP_EOD_LE_250MS] = { "carteiro_smtp_end_of_data_seconds",
	    "le=\"0.25\"", STATS_HIST_BUCKET, NULL, 250 },
	[STATS_SMTP_EOD_LE_500MS] = { "carteiro_smtp_end_of_data_seconds",
	    "le=\"0.5\"", STATS_HIST_BUCKET, NULL, 500 },
	[STATS_SMTP_EOD_LE_1S] = { "carteiro_smtp_end_of_data_seconds",
	    "le=\"1.0\"", STATS_HIST_BUCKET, NULL, 1000 },
	[STATS_SMTP_EOD_LE_2500MS] = { "carteiro_smtp_end_of_data_seconds",
	    "le=\"2.5\"", STATS_HIST_BUCKET, NULL, 2500 },
	[STATS_SMTP_EOD_LE_5S] = { "carteiro_smtp_end_of_data_seconds",
	    "le=\"5.0\"", STATS_HIST_BUCKET, NULL, 5000 },
	[STATS_SMTP_EOD_LE_10S] = { "carteiro_smtp_end_of_data_seconds",
	    "le=\"10.0\"", STATS_HIST_BUCKET, NULL, 10000 },
	[STATS_SMTP_EOD_LE_INF] = { "carteiro_smtp_end_of_data_seconds",
	    "le=\"+Inf\"", STATS_HIST_BUCKET, NULL, 0 },
	[STATS_SMTP_EOD_SUM_MS] = { "carteiro_smtp_end_of_data_seconds", "",
	    STATS_HIST_SUM_MS, NULL, 0 },
	[STATS_SMTP_EOD_COUNT] = { "carteiro_smtp_end_of_data_seconds", "",
	    STATS_HIST_COUNT, NULL, 0 },
	[STATS_SMTP_TLS_13] = { "carteiro_smtp_tls_sessions_total",
	    "version=\"TLSv1.3\"", STATS_COUNTER,
	    "SMTP server TLS handshakes (STARTTLS and implicit), by version" },
	[STATS_SMTP_TLS_12] = { "carteiro_smtp_tls_sessions_total",
	    "version=\"TLSv1.2\"", STATS_COUNTER, NULL },
	[STATS_SMTP_TLS_OTHER] = { "carteiro_smtp_tls_sessions_total",
	    "version=\"other\"", STATS_COUNTER, NULL },
	[STATS_POP3_TLS_13] = { "carteiro_pop3_tls_sessions_total",
	    "version=\"TLSv1.3\"", STATS_COUNTER,
	    "POP3 TLS handshakes (STLS and implicit), by version" },
	[STATS_POP3_TLS_12] = { "carteiro_pop3_tls_sessions_total",
	    "version=\"TLSv1.2\"", STATS_COUNTER, NULL },
	[STATS_POP3_TLS_OTHER] = { "carteiro_pop3_tls_sessions_total",
	    "version=\"other\"", STATS_COUNTER, NULL },
	[STATS_SMTP_REPLY_421] = { "carteiro_smtp_error_replies_total",
	    "code=\"421\"", STATS_COUNTER, "SMTP replies 4xx and 5xx, by code (refusals and errors)" },
	[STATS_SMTP_REPLY_450] = { "carteiro_smtp_error_replies_total",
	    "code=\"450\"", STATS_COUNTER, NULL },
	[STATS_SMTP_REPLY_451] = { "carteiro_smtp_error_replies_total",
	    "code=\"451\"", STATS_COUNTER, NULL },
	[STATS_SMTP_REPLY_452] = { "carteiro_smtp_error_replies_total",
	    "code=\"452\"", STATS_COUNTER, NULL },
	[STATS_SMTP_REPLY_454] = { "carteiro_smtp_error_replies_total",
	    "code=\"454\"", STATS_COUNTER, NULL },
	[STATS_SMTP_REPLY_500] = { "carteiro_smtp_error_replies_total",
	    "code=\"500\"", STATS_COUNTER, NULL },
	[STATS_SMTP_REPLY_501] = { "carteiro_smtp_error_replies_total",
	    "code=\"501\"", STATS_COUNTER, NULL },
	[STATS_SMTP_REPLY_502] = { "carteiro_smtp_error_replies_total",
	    "code=\"502\"", STATS_COUNTER, NULL },
	[STATS_SMTP_REPLY_503] = { "carteiro_smtp_error_replies_total",
	    "code=\"503\"", STATS_COUNTER, NULL },
	[STATS_SMTP_REPLY_504] = { "carteiro_smtp_error_replies_total",
	    "code=\"504\"", STATS_COUNTER, NULL },
	[STATS_SMTP_REPLY_530] = { "carteiro_smtp_error_replies_total",
	    "code=\"530\"", STATS_COUNTER, NULL },
	[STATS_SMTP_REPLY_535] = { "carteiro_smtp_error_replies_total",
	    "code=\"535\"", STATS_COUNTER, NULL },
	[STATS_SMTP_REPLY_550] = { "carteiro_smtp_error_replies_total",
	    "code=\"550\"", STATS_COUNTER, NULL },
	[STATS_SMTP_REPLY_551] = { "carteiro_smtp_error_replies_total",
	    "code=\"551\"", STATS_COUNTER, NULL },
	[STATS_SMTP_REPLY_552] = { "carteiro_smtp_error_replies_total",
	    "code=\"552\"", STATS_COUNTER, NULL },
	[STATS_SMTP_REPLY_553] = { "carteiro_smtp_error_replies_total",
	    "code=\"553\"", STATS_COUNTER, NULL },
	[STATS_SMTP_REPLY_554] = { "carteiro_smtp_error_replies_total",
	    "code=\"554\"", STATS_COUNTER, NULL },
	[STATS_SMTP_REPLY_555] = { "carteiro_smtp_error_replies_total",
	    "code=\"555\"", STATS_COUNTER, NULL },
	[STATS_SMTP_REPLY_OTHER] = { "carteiro_smtp_error_replies_total",
	    "code=\"other\"", STATS_COUNTER, NULL },
};

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

int
stats_open(const char *store_path, const char *role, const char **error_r)
{
	char *path = stats_path(store_path, role);
	void *p;
	int fd;

	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	    0644);
	free(path);
	if (fd < 0) {
		*error_r = strerror(errno);
		return -1;
	}
	(void)fchmod(fd, 0644);		/* webd reads it; umask 077 in units */
	if (ftruncate(fd, sizeof(struct stats_file)) < 0) {
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
