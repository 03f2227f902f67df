/*
 * carteiro-pop3d: start-up and shutdown. Loads the config (daemon.h), binds
 * the POP3 (STLS) and POP3S (implicit TLS) listeners, loads TLS, opens the
 * store, drops privileges, starts the auth pool and runs the loop. Sessions
 * live in session.c; this file owns only the server and its signals.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/ipcount.h"
#include "common/auth.h"
#include "common/config.h"
#include "common/daemon.h"
#include "common/listener.h"
#include "common/log.h"
#include "common/stats.h"
#include "common/conn.h"
#include "common/tls.h"
#include "common/util.h"
#include "pop3d/pop3d.h"
#include "store/auth_db.h"
#include "store/backup.h"

/* Grace period for sessions to flush their goodbye after SIGTERM. */
#define POP3_SHUTDOWN_MS 3000

static void pop3_main_accept(int, const struct sockaddr *, socklen_t, void *);
static void pop3_main_accept_tls(int, const struct sockaddr *, socklen_t,
    void *);
static void pop3_main_term(void *);
static void pop3_main_hup(void *);
static void pop3_main_bind(const struct cfg_hostports *, int **, size_t *);
static int pop3_main_env_int(const char *, int);

static void
pop3_main_accept(int fd, const struct sockaddr *sa, socklen_t salen,
    void *arg)
{
	pop3_session_accept(arg, fd, false);
}

static void
pop3_main_accept_tls(int fd, const struct sockaddr *sa, socklen_t salen,
    void *arg)
{
	pop3_session_accept(arg, fd, true);
}

/* SIGTERM: stop accepting, say goodbye to idle sessions, hang up on the
 * others. Nothing is deleted: only a completed QUIT deletes. */
static void
pop3_main_term(void *arg)
{
	struct pop3_server *srv = arg;
	struct timeval tv = { POP3_SHUTDOWN_MS / 1000,
	    (POP3_SHUTDOWN_MS % 1000) * 1000 };

	if (srv->stopping)
		return;
	srv->stopping = true;
	for (size_t i = 0; i < srv->nlisteners; i++)
		listener_free(srv->listeners[i]);
	srv->nlisteners = 0;
	pop3_server_close_all(srv);
	if (srv->nsessions == 0)
		event_base_loopexit(srv->base, NULL);
	else
		event_base_loopexit(srv->base, &tv);
}

static void
pop3_main_hup(void *arg)
{
	struct pop3_server *srv = arg;
	const char *error = NULL;

	if (srv->tls == NULL)
		return;
	if (tls_ctx_reload(srv->tls, &error) < 0)
		log_error("event=pop3.reload result=error error=\"%s\"",
		    error ? error : "-");
	else
		log_info("event=pop3.reload result=ok");
}

static void
pop3_main_bind(const struct cfg_hostports *hp, int **fds_r, size_t *n_r)
{
	char *error = NULL;

	if (listener_bind(hp, fds_r, n_r, &error) < 0)
		log_fatal("event=pop3.fatal reason=\"%s\"",
		    error ? error : "bind failed");
}

/* An integer test hook from the environment (see main), or def. */
static int
pop3_main_env_int(const char *name, int def)
{
	const char *v = getenv(name);
	char *end;
	long n;

	if (v == NULL || *v == '\0')
		return def;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno != 0 || *end != '\0' || n < 0 || n > 86400000)
		return def;
	return (int)n;
}

int
main(int argc, char **argv)
{
	struct daemon_opts opts;
	struct daemon_signals *sigs;
	struct pop3_server srv;
	struct cfg *cfg;
	const char *error = NULL;
	char *perr = NULL;
	int *fds = NULL, *tfds = NULL;
	size_t nfds = 0, ntfds = 0;
	long ncpu;

	daemon_parse_args(argc, argv, "carteiro-pop3d", &opts);
	cfg = daemon_load_config(&opts);
	memset(&srv, 0, sizeof(srv));
	srv.ipcount = ipcount_new();
	srv.cfg = cfg;
	/*
	 * Test-only hooks: CARTEIRO_TEST_NONLOCAL=1 treats every client as
	 * non-loopback (to test the plaintext-auth rule on 127.0.0.1) and
	 * CARTEIRO_TEST_TIMEOUT_MS shortens the 10-minute autologout.
	 */
	srv.nonlocal = pop3_main_env_int("CARTEIRO_TEST_NONLOCAL", 0) != 0;
	srv.timeout_ms = pop3_main_env_int("CARTEIRO_TEST_TIMEOUT_MS",
	    POP3_TIMEOUT_MS);

	if (cfg->pop3d.listen.n == 0 && cfg->pop3d.tls_listen.n == 0)
		log_fatal("event=pop3.fatal reason=\"no listen address in "
		    "[pop3d]\"");
	if (cfg->tls.cert != NULL) {
		if (tls_init() < 0)
			log_fatal("event=pop3.fatal reason=\"TLS init failed\"");
		srv.tls = tls_ctx_server_new(cfg->tls.cert, cfg->tls.key,
		    &error);
		if (srv.tls == NULL)
			log_fatal("event=pop3.fatal reason=\"tls: %s\"",
			    error ? error : "cannot load certificate");
	} else if (cfg->pop3d.tls_listen.n > 0)
		log_fatal("event=pop3.fatal reason=\"[pop3d] tls_listen needs "
		    "[tls] cert and key\"");

	/* A SIGTERM that comes as soon as the ports listen must wait for
	 * our handler (installed once the loop exists), not kill us. */
	sigset_t term_set;
	sigemptyset(&term_set);
	sigaddset(&term_set, SIGTERM);
	sigaddset(&term_set, SIGINT);
	sigaddset(&term_set, SIGHUP);
	sigprocmask(SIG_BLOCK, &term_set, NULL);

	pop3_main_bind(&cfg->pop3d.listen, &fds, &nfds);
	pop3_main_bind(&cfg->pop3d.tls_listen, &tfds, &ntfds);

	srv.store = store_open(cfg->store.locator, &error);
	if (srv.store == NULL)
		log_fatal("event=pop3.fatal reason=\"store %s: %s\"",
		    cfg->store.path, error ? error : "cannot open");
	if (store_check_schema(srv.store) < 0)
		log_fatal("event=pop3.fatal reason=\"store %s: schema is not "
		    "current, run carteiroctl init\"", cfg->store.path);
	/* carteiroctl restore refuses while this lock is held. */
	if (store_daemon_lock(cfg->store.path, &error) < 0)
		log_fatal("event=pop3.fatal reason=\"%s\"", error);
	if (stats_open(cfg->store.path, "pop3d", &error) < 0)
		log_warn("event=pop3.stats error=\"%s\"", error);

	if (priv_drop(cfg->server.user, &perr) < 0)
		log_fatal("event=pop3.fatal reason=\"%s\"",
		    perr ? perr : "privilege drop failed");
	if (cfg->server.user != NULL)
		log_info("event=pop3.privdrop user=%s", cfg->server.user);
	(void)daemon_check_reloadable(cfg);
	proc_raise_nofile();
	daemon_detach(&opts);
	daemon_pidfile_write(cfg, "pop3d");

	srv.base = event_base_new();
	if (srv.base == NULL)
		log_fatal("event=pop3.fatal reason=\"event_base_new failed\"");
	/* argon2id is CPU-bound: one worker per core keeps logins flowing
	 * without stalling the loop thread. */
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 1)
		ncpu = 1;
	if (ncpu > 8)
		ncpu = 8;
	srv.auth = auth_pool_new(srv.base, &store_auth_db, cfg->store.locator,
	    (unsigned)ncpu, 1024, cfg->pop3d.auth_cache_ttl);
	if (srv.auth == NULL)
		log_fatal("event=pop3.fatal reason=\"cannot start auth pool\"");
	pop3_readq_start(&srv);
	/* TLS handshakes on one thread per CPU. */
	conn_tls_offload_start(srv.base, 0);
	srv.readbuf = xmalloc(POP3_READ_CHUNK);
	srv.scratch = xmalloc(2 * POP3_READ_CHUNK + 8);

	srv.listeners = xcalloc(nfds + ntfds, sizeof(*srv.listeners));
	for (size_t i = 0; i < nfds; i++)
		srv.listeners[srv.nlisteners++] = listener_new(srv.base,
		    fds[i], pop3_main_accept, &srv);
	for (size_t i = 0; i < ntfds; i++)
		srv.listeners[srv.nlisteners++] = listener_new(srv.base,
		    tfds[i], pop3_main_accept_tls, &srv);
	free(fds);
	free(tfds);
	sigs = daemon_signals(srv.base, pop3_main_term, pop3_main_hup, &srv);
	sigprocmask(SIG_UNBLOCK, &term_set, NULL);

	/* RFC 2449 EXPIRE: the expiry sweep (CARTEIRO_TEST_EXPIRE_SWEEP_MS:
	 * test hook for the interval). */
	pop3_retention_start(&srv, (unsigned)pop3_main_env_int(
	    "CARTEIRO_TEST_EXPIRE_SWEEP_MS", 0));
	pop3_stall_start(&srv);
	log_info("event=pop3.start listeners=%zu tls=%s lock_session=%s",
	    srv.nlisteners, srv.tls ? "yes" : "no",
	    cfg->pop3d.lock_session ? "yes" : "no");
	event_base_dispatch(srv.base);

	/* Sessions still open after the grace period are cut; none of them
	 * completed QUIT, so nothing is deleted. */
	while (srv.sessions != NULL)
		pop3_session_free(srv.sessions, "shutdown");
	for (size_t i = 0; i < srv.nlisteners; i++)
		listener_free(srv.listeners[i]);
	free(srv.listeners);
	ipcount_free(srv.ipcount);
	daemon_signals_free(sigs);
	auth_pool_free(srv.auth);
	pop3_readq_stop(&srv);
	conn_tls_offload_stop();
	for (size_t i = 0; i < srv.nlocks; i++)
		free(srv.locks[i].maildrop);
	free(srv.locks);
	free(srv.readbuf);
	free(srv.scratch);
	pop3_retention_stop(&srv);
	pop3_stall_stop(&srv);
	store_close(srv.store);
	tls_ctx_free(srv.tls);
	event_base_free(srv.base);
	log_info("event=pop3.stop");
	daemon_pidfile_remove(cfg, "pop3d");
	cfg_free(cfg);
	return 0;
}
