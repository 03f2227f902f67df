/*
 * carteiro-webd: start-up and shutdown. Loads the config (daemon.h), binds
 * the [http] listeners, checks and loads the TLS certificate, opens the
 * store, drops privileges and hands the sockets to http.c, whose threads
 * serve them. The main thread only waits for signals: SIGTERM stops,
 * SIGHUP reloads the certificate.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/config.h"
#include "common/daemon.h"
#include "common/listener.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/util.h"
#include "webd/webd.h"

struct webd_main {
	struct cfg *cfg;
	struct event_base *base;
	struct webd_http *http;
	struct event *sweep;	/* each second: webd_http_sweep */
};

static void webd_main_hup(void *);
static void webd_main_sweep(evutil_socket_t, short, void *);
static void webd_main_check_tls(const struct cfg *);
static void webd_main_bind(const struct cfg_hostports *, int **, size_t *);
static unsigned webd_main_timeout(void);
static const char *webd_main_check(const struct cfg *);
static void webd_main_test(const struct daemon_opts *);

static void
webd_main_hup(void *arg)
{
	struct webd_main *m = arg;
	const char *error = NULL;
	struct tls_ctx *t;

	if (m->cfg->tls.cert == NULL || m->cfg->http.tls_listen.n == 0)
		return;
	/* The same checks as at start (key secrecy, key matches cert). */
	t = tls_ctx_server_new(m->cfg->tls.cert, m->cfg->tls.key, &error);
	if (t == NULL || webd_http_reload(m->http, m->cfg->tls.cert,
	    m->cfg->tls.key, &error) < 0)
		log_error("event=http.reload result=error error=%s",
		    LOG_VALUE(error ? error : "-"));
	else
		log_info("event=http.reload result=ok");
	tls_ctx_free(t);
}

static void
webd_main_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct webd_main *m = arg;

	webd_http_sweep(m->http);
}

/* Refuse a certificate or key the mail daemons would refuse. */
static void
webd_main_check_tls(const struct cfg *cfg)
{
	const char *error = NULL;
	struct tls_ctx *t;

	if (tls_init() < 0)
		log_fatal("event=http.fatal reason=\"TLS init failed\"");
	t = tls_ctx_server_new(cfg->tls.cert, cfg->tls.key, &error);
	if (t == NULL)
		log_fatal("event=http.fatal reason=%s",
		    LOG_VALUE(error ? error : "cannot load certificate"));
	tls_ctx_free(t);
}

static void
webd_main_bind(const struct cfg_hostports *hp, int **fds_r, size_t *n_r)
{
	char *error = NULL;

	if (listener_bind(hp, fds_r, n_r, &error) < 0)
		log_fatal("event=http.fatal reason=%s",
		    LOG_VALUE(error ? error : "bind failed"));
}

/* What only carteiro-webd needs of the config, or NULL when it is fine. */
static const char *
webd_main_check(const struct cfg *cfg)
{
	if (cfg->http.listen.n == 0 && cfg->http.tls_listen.n == 0)
		return "no listen address in [http]";
	if (cfg->http.tls_listen.n > 0 && cfg->tls.cert == NULL)
		return "[http] tls_listen needs [tls] cert and key "
		    "(or set it empty)";
	return NULL;
}

/* -t: webd_main_check too, before daemon_load_config says "ok". */
static void
webd_main_test(const struct daemon_opts *o)
{
	struct cfg *cfg;
	char *errors = NULL;
	const char *why;

	if (cfg_load(o->conf, &cfg, &errors) < 0) {
		free(errors);	/* daemon_load_config reports them */
		return;
	}
	why = webd_main_check(cfg);
	cfg_free(cfg);
	if (why != NULL) {
		fprintf(stderr, "%s: %s\n%s: configuration %s has errors\n",
		    o->progname, why, o->progname, o->conf);
		exit(1);
	}
}

/* The idle timeout; CARTEIRO_TEST_HTTP_TIMEOUT (seconds) shortens it for
 * the slow-client test. */
static unsigned
webd_main_timeout(void)
{
	const char *v = getenv("CARTEIRO_TEST_HTTP_TIMEOUT");
	char *end;
	unsigned long n;

	if (v == NULL || *v == '\0')
		return WEBD_TIMEOUT_S;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno != 0 || *end != '\0' || n < 1 || n > 3600)
		return WEBD_TIMEOUT_S;
	return (unsigned)n;
}

int
main(int argc, char **argv)
{
	struct daemon_opts opts;
	struct daemon_signals *sigs;
	struct webd_main m;
	struct webd_ctx ctx;
	const char *error = NULL;
	char *perr = NULL;
	int *fds = NULL, *tfds = NULL;
	size_t nfds = 0, ntfds = 0;
	sigset_t set;

	daemon_parse_args(argc, argv, "carteiro-webd", &opts);
	if (opts.test)
		webd_main_test(&opts);
	memset(&m, 0, sizeof(m));
	m.cfg = daemon_load_config(&opts);
	if ((error = webd_main_check(m.cfg)) != NULL)
		log_fatal("event=http.fatal reason=%s", LOG_VALUE(error));

	/* Signals wait for the loop (SIGTERM right after bind included);
	 * the listener threads inherit the mask and never take them. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);

	webd_main_bind(&m.cfg->http.listen, &fds, &nfds);
	webd_main_bind(&m.cfg->http.tls_listen, &tfds, &ntfds);
	ctx.cfg = m.cfg;
	ctx.domains = webd_domains_open(m.cfg->store.locator, &error);
	if (ctx.domains == NULL)
		log_fatal("event=http.fatal reason=%s",
		    LOG_VALUE(error ? error : "cannot open the store"));
	m.http = webd_http_new(&ctx, webd_main_timeout());
	if (ntfds > 0) {
		webd_main_check_tls(m.cfg);
		if (webd_http_set_tls(m.http, m.cfg->tls.cert, m.cfg->tls.key,
		    &error) < 0)
			log_fatal("event=http.fatal reason=%s",
			    LOG_VALUE(error));
	}

	if (priv_drop(m.cfg->server.user, &perr) < 0)
		log_fatal("event=http.fatal reason=%s",
		    LOG_VALUE(perr ? perr : "privilege drop failed"));
	if (m.cfg->server.user != NULL)
		log_info("event=http.privdrop user=%s", m.cfg->server.user);
	if (ntfds > 0)
		(void)daemon_check_reloadable(m.cfg);
	proc_raise_nofile();
	daemon_detach(&opts);
	daemon_pidfile_write(m.cfg, "webd");

	/* After detach: the listener threads must live in the child. */
	for (size_t i = 0; i < nfds + ntfds; i++) {
		bool tls = i >= nfds;
		int fd = tls ? tfds[i - nfds] : fds[i];

		if (webd_http_listen(m.http, fd, tls) < 0)
			log_fatal("event=http.fatal reason=\"cannot start "
			    "the HTTP server\"");
	}
	free(fds);
	free(tfds);

	m.base = event_base_new();
	if (m.base == NULL)
		log_fatal("event=http.fatal reason=\"event_base_new failed\"");
	sigs = daemon_signals(m.base, NULL, webd_main_hup, &m);
	m.sweep = event_new(m.base, -1, EV_PERSIST, webd_main_sweep, &m);
	if (m.sweep == NULL ||
	    event_add(m.sweep, &(struct timeval){ 1, 0 }) < 0)
		log_fatal("event=http.fatal reason=\"timer failed\"");
	sigprocmask(SIG_UNBLOCK, &set, NULL);

	log_info("event=http.start listeners=%zu tls_listeners=%zu "
	    "autoconfig=%s mta_sts=%s", nfds, ntfds,
	    m.cfg->http.autoconfig ? "yes" : "no",
	    m.cfg->http.mta_sts ? m.cfg->http.mta_sts_mode : "off");
	event_base_dispatch(m.base);

	event_free(m.sweep);
	webd_http_free(m.http);
	daemon_signals_free(sigs);
	event_base_free(m.base);
	webd_domains_close(ctx.domains);
	log_info("event=http.stop");
	daemon_pidfile_remove(m.cfg, "webd");
	cfg_free(m.cfg);
	return 0;
}
