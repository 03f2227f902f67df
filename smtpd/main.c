/*
 * carteiro-smtpd: start-up (config, listeners bound as root, TLS, store,
 * delivery writer, auth pool, relay, privilege drop), the event loop, and
 * the signals: SIGTERM drains sessions (a commit in flight still gets its
 * 250) and exits 0, SIGHUP reopens logs and reloads the certificate.
 *
 * CARTEIRO_TEST_TIMEOUT_MS (tests only): replaces the RFC 5321 4.5.3.2
 * command (5 min) and DATA (10 min) timeouts with this many milliseconds.
 */
#include "smtpd/smtpd.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/auth.h"
#include "common/config.h"
#include "common/daemon.h"
#include "common/ipcount.h"
#include "common/listener.h"
#include "common/log.h"
#include "common/stats.h"
#include "common/notify.h"
#include "common/conn.h"
#include "common/tls.h"
#include "common/util.h"
#include "smtpd/delivery.h"
#include "smtpd/forward.h"
#include "mailauth/dns.h"
#include "smtpd/inbound.h"
#include "smtpd/milter.h"
#include "smtpd/relay.h"
#include "smtpd/signer.h"
#include "store/auth_db.h"
#include "store/backup.h"
#include "store/store.h"

/* SIGTERM: how long sessions may take to finish before we abort them. */
#define SMTPD_DRAIN_MS		20000
#define SMTPD_AUTH_THREADS	2
#define SMTPD_AUTH_PENDING	256

int main(int argc, char **argv);

static struct event *smtpd_drain_timer;

static void
smtpd_accept(int fd, const struct sockaddr *sa, socklen_t salen, void *arg)
{
	struct smtp_listener *lst = arg;

	if (lst->srv->stopping) {
		close(fd);
		return;
	}
	smtp_session_accept(lst, fd, sa, salen);
}

static void
smtpd_drained(struct smtp_server *srv)
{
	event_base_loopexit(srv->base, NULL);
}

static void
smtpd_drain_expired(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_server *srv = arg;

	log_warn("event=smtpd.stop result=timeout sessions=%u",
	    srv->nsessions);
	event_base_loopexit(srv->base, NULL);
}

static void
smtpd_on_term(void *arg)
{
	struct smtp_server *srv = arg;
	struct timeval tv = { SMTPD_DRAIN_MS / 1000, 0 };
	size_t i;

	if (srv->stopping)
		return;
	srv->stopping = true;
	log_info("event=smtpd.stop sessions=%u", srv->nsessions);
	for (i = 0; i < srv->nlisteners; i++) {
		listener_free(srv->listeners[i].l);
		srv->listeners[i].l = NULL;
	}
	if (srv->relay != NULL)
		relay_shutdown(srv->relay);
	smtp_session_shutdown_all(srv);
	if (srv->nsessions == 0) {
		event_base_loopexit(srv->base, NULL);
		return;
	}
	smtpd_drain_timer = evtimer_new(srv->base, smtpd_drain_expired, srv);
	evtimer_add(smtpd_drain_timer, &tv);
}

static void
smtpd_on_hup(void *arg)
{
	struct smtp_server *srv = arg;
	const char *error;

	if (srv->tls == NULL)
		return;
	if (tls_ctx_reload(srv->tls, &error) != 0)
		log_error("event=smtpd.reload result=fail error=\"%s\"", error);
	else
		log_info("event=smtpd.reload result=ok");
}

/* Bind every address of one listen list (as root, before the drop). */
static void
smtpd_bind(struct smtp_server *srv, const struct cfg_hostports *hp,
    enum smtp_listener_kind kind, int **fds, size_t *nfds,
    enum smtp_listener_kind **kinds)
{
	size_t before = *nfds, i;
	char *error = NULL;

	if (listener_bind(hp, fds, nfds, &error) != 0)
		log_fatal("event=smtpd.bind result=fail error=\"%s\"", error);
	*kinds = xrealloc(*kinds, (*nfds ? *nfds : 1) * sizeof(**kinds));
	for (i = before; i < *nfds; i++)
		(*kinds)[i] = kind;
}

static int
smtpd_env_timeout(void)
{
	const char *v = getenv("CARTEIRO_TEST_TIMEOUT_MS");
	long ms;

	if (v == NULL || *v == '\0')
		return 0;
	ms = strtol(v, NULL, 10);
	return ms > 0 && ms < 3600000 ? (int)ms : 0;
}

int
main(int argc, char **argv)
{
	struct smtp_server srv;
	struct srs srs;		/* outlives the relay and the sessions */
	struct daemon_opts o;
	struct daemon_signals *sig;
	struct notify *queue_changed;
	struct cfg *cfg;
	enum smtp_listener_kind *kinds = NULL;
	int *fds = NULL, tmo;
	size_t nfds = 0, i;
	const char *error;
	char *err = NULL, *dir;

	daemon_parse_args(argc, argv, "carteiro-smtpd", &o);
	cfg = daemon_load_config(&o);
	memset(&srv, 0, sizeof(srv));
	srv.ipcount = ipcount_new();
	TAILQ_INIT(&srv.sessions);
	srv.cfg = cfg;
	srv.on_drained = smtpd_drained;
	srv.timeout_cmd_ms = SMTP_TIMEOUT_CMD_MS;
	srv.timeout_data_ms = SMTP_TIMEOUT_DATA_MS;
	if ((tmo = smtpd_env_timeout()) > 0)
		srv.timeout_cmd_ms = srv.timeout_data_ms = tmo;

	proc_raise_nofile();
	if ((srv.base = event_base_new()) == NULL)
		log_fatal("event=smtpd.start error=\"event_base_new failed\"");
	/* Before the ports listen: a SIGTERM that comes as soon as they do
	 * must already be ours (it runs once the loop starts). */
	sig = daemon_signals(srv.base, smtpd_on_term, smtpd_on_hup, &srv);

	smtpd_bind(&srv, &cfg->smtpd.mx_listen, SMTP_LST_MX, &fds, &nfds,
	    &kinds);
	smtpd_bind(&srv, &cfg->smtpd.submission_listen, SMTP_LST_SUBMISSION,
	    &fds, &nfds, &kinds);
	smtpd_bind(&srv, &cfg->smtpd.submissions_listen, SMTP_LST_SUBMISSIONS,
	    &fds, &nfds, &kinds);
	if (nfds == 0)
		log_fatal("event=smtpd.start error=\"no listeners "
		    "configured\"");

	if (tls_init() != 0)
		log_fatal("event=smtpd.start error=\"TLS init failed\"");
	if (cfg->tls.cert != NULL && cfg->tls.key != NULL) {
		srv.tls = tls_ctx_server_new(cfg->tls.cert, cfg->tls.key,
		    &error);
		if (srv.tls == NULL)
			log_fatal("event=smtpd.start error=\"tls: %s\"", error);
	} else if (cfg->smtpd.submissions_listen.n > 0) {
		log_fatal("event=smtpd.start error=\"submissions_listen needs "
		    "[tls] cert and key\"");
	}

	if ((srv.store = store_open(cfg->store.locator, &error)) == NULL)
		log_fatal("event=smtpd.start error=\"store %s: %s\"",
		    cfg->store.path, error);
	if (store_check_schema(srv.store) != 0)
		log_fatal("event=smtpd.start error=\"store %s: schema is not "
		    "current; run carteiroctl init\"", cfg->store.path);
	/* carteiroctl restore refuses while this lock is held. */
	if (store_daemon_lock(cfg->store.path, &error) < 0)
		log_fatal("event=smtpd.start error=\"%s\"", error);
	if (stats_open(cfg->store.path, "smtpd", &error) < 0)
		log_warn("event=smtpd.stats error=\"%s\"", error);
	dir = xstrdup(cfg->store.path);
	srv.spool_dir = xstrdup(dirname(dir));
	free(dir);
	if ((srv.delivery = delivery_new(srv.base, cfg)) == NULL)
		log_fatal("event=smtpd.start error=\"delivery writer failed\"");
	srv.auth = auth_pool_new(srv.base, &store_auth_db, cfg->store.locator,
	    SMTPD_AUTH_THREADS, SMTPD_AUTH_PENDING, cfg->smtpd.auth_cache_ttl);
	if (srv.auth == NULL)
		log_fatal("event=smtpd.start error=\"auth pool failed\"");
	smtp_rcpt_pool_start(&srv);
	/* TLS handshakes (ours and the relay's) on one thread per CPU. */
	conn_tls_offload_start(srv.base, 0);
	/* The delivery writer posts it, the relay listens: neither knows
	 * the other. */
	queue_changed = notify_new();
	delivery_set_notify(srv.delivery, queue_changed);
	if ((srv.relay = relay_new(srv.base, cfg, queue_changed)) == NULL)
		log_fatal("event=smtpd.start error=\"relay failed\"");
	/* DNSBL and the inbound checks' worker threads share it. */
	srv.dns = dns_new(srv.base, cfg->relay.resolver, 0, 0, &error);
	if (srv.dns == NULL)
		log_fatal("event=smtpd.start error=\"dns: %s\"", error);
	srv.inbound = inbound_new(srv.base, cfg, srv.dns);
	srv.signer = signer_new(srv.base, cfg);

	if (priv_drop(cfg->server.user, &err) != 0)
		log_fatal("event=smtpd.start error=\"privilege drop: %s\"",
		    err);
	(void)daemon_check_reloadable(cfg);
	daemon_pidfile_write(cfg, "smtpd");
	/* After the drop: the first start writes the secret, and files
	 * SQLite creates for that must belong to the service user. */
	if (forward_srs_load(srv.store, &srs, &error) != 0)
		log_fatal("event=smtpd.start error=\"SRS secret: %s\"",
		    error);
	srv.srs = &srs;
	relay_set_srs(srv.relay, &srs);

	srv.listeners = xcalloc(nfds, sizeof(*srv.listeners));
	srv.nlisteners = nfds;
	for (i = 0; i < nfds; i++) {
		srv.listeners[i].srv = &srv;
		srv.listeners[i].kind = kinds[i];
		srv.listeners[i].l = listener_new(srv.base, fds[i],
		    smtpd_accept, &srv.listeners[i]);
	}
	free(fds);
	free(kinds);
	log_info("event=smtpd.start listeners=%zu hostname=%s", nfds,
	    cfg->server.hostname);

	event_base_dispatch(srv.base);

	/* Sessions still open after the drain deadline are aborted (their
	 * transactions were not acknowledged, so nothing is lost). */
	smtp_session_free_all(&srv);
	for (i = 0; i < srv.nlisteners; i++)
		listener_free(srv.listeners[i].l);
	free(srv.listeners);
	signer_free(srv.signer);
	milter_pool_free(srv.milter_pool);
	inbound_free(srv.inbound);
	if (srv.dns != NULL)
		dns_free(srv.dns);
	delivery_free(srv.delivery);
	relay_free(srv.relay);
	notify_free(queue_changed);
	auth_pool_free(srv.auth);
	smtp_rcpt_pool_stop(&srv);
	conn_tls_offload_stop();
	store_close(srv.store);
	srs_clear(&srs);
	tls_ctx_free(srv.tls);
	if (smtpd_drain_timer != NULL)
		event_free(smtpd_drain_timer);
	daemon_signals_free(sig);
	event_base_free(srv.base);
	ipcount_free(srv.ipcount);
	free(srv.rates);
	free(srv.spool_dir);
	log_info("event=smtpd.exit");
	daemon_pidfile_remove(cfg, "smtpd");
	cfg_free(cfg);
	return 0;
}
