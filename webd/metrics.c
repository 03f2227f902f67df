/*
 * /metrics: the Prometheus text exposition format (version 0.0.4) of the
 * counters the mail daemons keep in their stats files (common/stats.c) and
 * of the queue as the store sees it. Who may read it is route.c's
 * business ([http] metrics_allow).
 */
#include <inttypes.h>
#include <string.h>

#include <event2/buffer.h>

#include "common/config.h"
#include "common/stats.h"
#include "common/util.h"
#include "webd/webd.h"

static void webd_metrics_head(struct evbuffer *, const char *, const char *,
    const char *);

static void
webd_metrics_head(struct evbuffer *b, const char *name, const char *type,
    const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help,
	    name, type);
}

void
webd_metrics_render(struct evbuffer *b, const struct cfg *cfg,
    struct webd_domains *d)
{
	uint64_t v[STATS_COUNT], cum = 0;
	int64_t n, oldest, now = util_time();

	memset(v, 0, sizeof(v));
	(void)stats_read(cfg->store.path, "smtpd", v);
	(void)stats_read(cfg->store.path, "pop3d", v);
	for (size_t i = 0; i < STATS_COUNT; i++) {
		const struct stats_def *def = stats_def((enum stats_id)i);
		static const char *const types[] = {
			[STATS_COUNTER] = "counter",
			[STATS_GAUGE] = "gauge",
			[STATS_HIST_BUCKET] = "histogram",
		};

		/* Rows of one metric follow each other; the first has the
		 * help line. */
		if (def->help != NULL)
			webd_metrics_head(b, def->name, types[def->kind],
			    def->help);
		switch (def->kind) {
		case STATS_HIST_BUCKET:
			/* The file has per-bucket counts; Prometheus wants
			 * each bucket to include the ones below it. */
			cum = def->help != NULL ? v[i] : cum + v[i];
			evbuffer_add_printf(b, "%s_bucket{%s} %" PRIu64 "\n",
			    def->name, def->labels, cum);
			break;
		case STATS_HIST_SUM_MS:
			evbuffer_add_printf(b, "%s_sum %" PRIu64 ".%03u\n",
			    def->name, v[i] / 1000, (unsigned)(v[i] % 1000));
			break;
		case STATS_HIST_COUNT:
			evbuffer_add_printf(b, "%s_count %" PRIu64 "\n",
			    def->name, v[i]);
			break;
		default:
			if (def->labels[0] != '\0')
				evbuffer_add_printf(b, "%s{%s} %" PRIu64 "\n",
				    def->name, def->labels, v[i]);
			else
				evbuffer_add_printf(b, "%s %" PRIu64 "\n",
				    def->name, v[i]);
			break;
		}
	}
	if (webd_domains_queue(d, &n, &oldest) == 0) {
		webd_metrics_head(b, "carteiro_queue_messages", "gauge",
		    "messages in the outbound queue");
		evbuffer_add_printf(b, "carteiro_queue_messages %" PRId64 "\n",
		    n);
		webd_metrics_head(b, "carteiro_queue_oldest_age_seconds",
		    "gauge", "age of the oldest queued message, 0 if none");
		evbuffer_add_printf(b, "carteiro_queue_oldest_age_seconds %"
		    PRId64 "\n", n > 0 && now > oldest ? now - oldest : 0);
	}
}
