/*
 * Start-up shared by carteiro-smtpd and carteiro-pop3d: the "-c CONF [-f]
 * [-t]" command line, loading the config (with -t: check and exit), starting
 * the log, and SIGTERM/SIGINT/SIGHUP on the event loop. Binding, TLS and the
 * privilege drop stay in each daemon's main.c (listener.h, tls.h).
 */
#ifndef CARTEIRO_DAEMON_H
#define CARTEIRO_DAEMON_H

#include <stdbool.h>

struct cfg;
struct event_base;
struct daemon_signals;

struct daemon_opts {
	const char *progname;	/* "carteiro-smtpd": usage, syslog ident */
	const char *conf;	/* -c, points into argv */
	bool foreground;	/* -f: stay in front, log to stderr */
	bool test;		/* -t: check the config and exit */
};

/*
 * Parse "-c CONF [-f] [-t]" into *o. A usage error prints the usage line on
 * stderr and exits 2; -h prints it on stdout and exits 0. Returns 0.
 */
int daemon_parse_args(int argc, char **argv, const char *progname,
    struct daemon_opts *o);

/*
 * Load o->conf. On errors, print each "file:line: ..." line and a summary on
 * stderr and exit 1. With -t, also load the TLS certificate and key (which
 * checks the key's permissions), print "PROG: configuration FILE is ok" and
 * exit 0. Otherwise start the log (stderr with -f, else syslog) at the
 * configured level and return the config (caller frees with cfg_free).
 */
struct cfg *daemon_load_config(const struct daemon_opts *o);

/*
 * Without -f, go to the background (fork, setsid, stdio to /dev/null, cwd
 * "/"). Call after binding and loading TLS, so that those errors still reach
 * the terminal, and before event_base_new. With -f: no-op.
 */
void daemon_detach(const struct daemon_opts *o);

/*
 * After the privilege drop: warn when the TLS certificate or key can no
 * longer be read, since SIGHUP could then not reload them (a renewed
 * certificate would need a restart). False when it warned.
 */
bool daemon_check_reloadable(const struct cfg *cfg);

/*
 * On base: SIGTERM and SIGINT call on_term(arg) (NULL: leave the loop),
 * SIGHUP calls log_reopen() then on_hup(arg) (may be NULL). SIGPIPE is
 * ignored process-wide. Callbacks run from the loop, not in signal context.
 * Free with daemon_signals_free before event_base_free.
 */
struct daemon_signals *daemon_signals(struct event_base *base,
    void (*on_term)(void *), void (*on_hup)(void *), void *arg);
void daemon_signals_free(struct daemon_signals *ds);

/*
 * "<dir of the store>/carteiro-<role>.pid" with getpid(), written after
 * the privilege drop and the detach, so that "carteiroctl acme renew" can
 * SIGHUP the daemons after installing a certificate. A failure is logged
 * (warn) and the daemon runs on. daemon_pidfile_remove at a clean exit.
 */
void daemon_pidfile_write(const struct cfg *cfg, const char *role);
void daemon_pidfile_remove(const struct cfg *cfg, const char *role);
char *daemon_pidfile_path(const char *store_path, const char *role);

#endif
