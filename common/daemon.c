/*
 * Start-up glue shared by both daemons: arguments, config loading and -t,
 * log start, signal events. It owns no long-lived state except the signal
 * events (struct daemon_signals); main.c owns the config and event base.
 */
#include "common/daemon.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/util.h"

struct daemon_signals {
	struct event_base *base;
	struct event *ev_term;
	struct event *ev_int;
	struct event *ev_hup;
	void (*on_term)(void *);
	void (*on_hup)(void *);
	void *arg;
};

static void daemon_usage(FILE *, const char *);
static void daemon_check_tls(const struct daemon_opts *, const struct cfg *);
static void daemon_sig_term(evutil_socket_t, short, void *);
static void daemon_sig_hup(evutil_socket_t, short, void *);

static void
daemon_usage(FILE *fp, const char *progname)
{
	fprintf(fp, "usage: %s -c CONF [-f] [-t]\n"
	    "  -c CONF  configuration file\n"
	    "  -f       stay in the foreground, log to stderr\n"
	    "  -t       check the configuration and exit\n", progname);
}

int
daemon_parse_args(int argc, char **argv, const char *progname,
    struct daemon_opts *o)
{
	int ch;

	memset(o, 0, sizeof(*o));
	o->progname = progname;
	/* "+": stop at the first non-option, no GNU argument permutation.
	 * optind = 0 fully resets glibc's getopt (tests call us twice). */
	optind = 0;
	opterr = 0;		/* our own messages, with progname */
	while ((ch = getopt(argc, argv, "+c:fth")) != -1) {
		switch (ch) {
		case 'c':
			o->conf = optarg;
			break;
		case 'f':
			o->foreground = true;
			break;
		case 't':
			o->test = true;
			break;
		case 'h':
			daemon_usage(stdout, progname);
			exit(0);
		default:
			if (optopt == 'c')
				fprintf(stderr, "%s: -c needs a file name\n",
				    progname);
			else
				fprintf(stderr, "%s: unknown option -%c\n",
				    progname, optopt);
			daemon_usage(stderr, progname);
			exit(2);
		}
	}
	if (optind != argc) {
		fprintf(stderr, "%s: unexpected argument: %s\n", progname,
		    argv[optind]);
		daemon_usage(stderr, progname);
		exit(2);
	}
	if (o->conf == NULL || o->conf[0] == '\0') {
		fprintf(stderr, "%s: -c CONF is required\n", progname);
		daemon_usage(stderr, progname);
		exit(2);
	}
	return 0;
}

/* -t: the TLS files are part of the configuration; load them the way the
 * daemon will (tls.c also refuses a group/world-readable key). */
static void
daemon_check_tls(const struct daemon_opts *o, const struct cfg *cfg)
{
	struct tls_ctx *ctx;
	const char *error = NULL;

	if (cfg->tls.cert == NULL)
		return;
	if (tls_init() == -1) {
		fprintf(stderr, "%s: TLS initialisation failed\n", o->progname);
		exit(1);
	}
	ctx = tls_ctx_server_new(cfg->tls.cert, cfg->tls.key, &error);
	if (ctx == NULL) {
		fprintf(stderr, "%s: [tls] cert %s, key %s: %s\n",
		    o->progname, cfg->tls.cert, cfg->tls.key,
		    error != NULL ? error : "cannot load");
		fprintf(stderr, "%s: configuration %s has errors\n",
		    o->progname, o->conf);
		exit(1);
	}
	tls_ctx_free(ctx);
}

struct cfg *
daemon_load_config(const struct daemon_opts *o)
{
	struct cfg *cfg;
	char *errors;

	if (cfg_load(o->conf, &cfg, &errors) == -1) {
		/* Before log_init on purpose: the operator is at the
		 * terminal (or systemd captures stderr). */
		fprintf(stderr, "%s\n%s: configuration %s has errors\n",
		    errors, o->progname, o->conf);
		free(errors);
		exit(1);
	}
	if (o->test) {
		daemon_check_tls(o, cfg);
		printf("%s: configuration %s is ok\n", o->progname, o->conf);
		cfg_free(cfg);
		exit(0);
	}
	log_init(o->progname, o->foreground,
	    (enum log_level)cfg->server.log_level);
	return cfg;
}

bool
daemon_check_reloadable(const struct cfg *cfg)
{
	const char *paths[2] = { cfg->tls.cert, cfg->tls.key };
	bool ok = true;

	for (size_t i = 0; i < 2; i++) {
		if (paths[i] == NULL || access(paths[i], R_OK) == 0)
			continue;
		log_warn("event=tls.not_reloadable path=%s error=\"%s\" "
		    "hint=\"SIGHUP cannot re-read it as user %s; let that "
		    "user own it (mode 0600), or restart after "
		    "renewing\"", paths[i], strerror(errno),
		    cfg->server.user ? cfg->server.user : "-");
		ok = false;
	}
	return ok;
}

void
daemon_detach(const struct daemon_opts *o)
{
	if (o->foreground)
		return;
	if (daemon(0, 0) == -1)
		log_fatal("event=daemon.fatal reason=\"daemon: %s\"",
		    strerror(errno));
}

static void
daemon_sig_term(evutil_socket_t sig, short what, void *arg)
{
	struct daemon_signals *ds = arg;

	log_info("event=daemon.signal signal=%s",
	    sig == SIGINT ? "INT" : "TERM");
	if (ds->on_term != NULL)
		ds->on_term(ds->arg);
	else
		event_base_loopexit(ds->base, NULL);
}

static void
daemon_sig_hup(evutil_socket_t sig, short what, void *arg)
{
	struct daemon_signals *ds = arg;

	log_reopen();
	log_info("event=daemon.signal signal=HUP");
	if (ds->on_hup != NULL)
		ds->on_hup(ds->arg);
}

struct daemon_signals *
daemon_signals(struct event_base *base, void (*on_term)(void *),
    void (*on_hup)(void *), void *arg)
{
	struct daemon_signals *ds = xcalloc(1, sizeof(*ds));
	struct sigaction sa;

	/* A peer that vanishes must give EPIPE on write, not kill us. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGPIPE, &sa, NULL) == -1)
		log_fatal("event=daemon.fatal reason=\"sigaction SIGPIPE\"");

	ds->base = base;
	ds->on_term = on_term;
	ds->on_hup = on_hup;
	ds->arg = arg;
	ds->ev_term = evsignal_new(base, SIGTERM, daemon_sig_term, ds);
	ds->ev_int = evsignal_new(base, SIGINT, daemon_sig_term, ds);
	ds->ev_hup = evsignal_new(base, SIGHUP, daemon_sig_hup, ds);
	if (ds->ev_term == NULL || ds->ev_int == NULL || ds->ev_hup == NULL ||
	    evsignal_add(ds->ev_term, NULL) == -1 ||
	    evsignal_add(ds->ev_int, NULL) == -1 ||
	    evsignal_add(ds->ev_hup, NULL) == -1)
		log_fatal("event=daemon.fatal reason=\"cannot add signal "
		    "events\"");
	return ds;
}

void
daemon_signals_free(struct daemon_signals *ds)
{
	if (ds == NULL)
		return;
	if (ds->ev_term != NULL)
		event_free(ds->ev_term);
	if (ds->ev_int != NULL)
		event_free(ds->ev_int);
	if (ds->ev_hup != NULL)
		event_free(ds->ev_hup);
	free(ds);
}

char *
daemon_pidfile_path(const char *store_path, const char *role)
{
	const char *slash = strrchr(store_path, '/');

	if (slash == NULL)
		return xasprintf("carteiro-%s.pid", role);
	return xasprintf("%.*s/carteiro-%s.pid", (int)(slash - store_path),
	    store_path, role);
}

void
daemon_pidfile_write(const struct cfg *cfg, const char *role)
{
	char *path = daemon_pidfile_path(cfg->store.path, role);
	char *tmp = xasprintf("%s.tmp", path);
	FILE *f = fopen(tmp, "we");

	if (f == NULL || fprintf(f, "%ld\n", (long)getpid()) < 0 ||
	    fclose(f) != 0 || rename(tmp, path) != 0) {
		log_warn("event=daemon.pidfile path=%s error=\"%s\"", path,
		    strerror(errno));
		(void)unlink(tmp);
	}
	free(tmp);
	free(path);
}

void
daemon_pidfile_remove(const struct cfg *cfg, const char *role)
{
	char *path = daemon_pidfile_path(cfg->store.path, role);

	(void)unlink(path);
	free(path);
}
