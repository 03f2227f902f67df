/*
 * carteiroctl acme status | renew [--force]: the [tls] certificate by ACME
 * (RFC 8555) for [server] hostname and autoconfig.DOMAIN and
 * mta-sts.DOMAIN of every local domain. State lives in acme/ beside the
 * store: account.key (0600), state (failures and the next attempt after a
 * failure) and challenges/ (HTTP-01 key authorizations that carteiro-webd
 * serves). A new certificate is installed at [tls] key (0600) and cert by
 * write-and-rename, then the daemons get SIGHUP through their pid files.
 * Run "renew" from a timer (etc/carteiro-acme.timer): it does nothing
 * until the certificate is due ([acme] renew_before) and, after a failure,
 * waits 1 h, 2 h, 4 h ... at most a day before the next try.
 */
#include "tools/ctl.h"
#include "acme/acme.h"
#include "common/acme_path.h"
#include "common/config.h"
#include "common/daemon.h"
#include "common/util.h"
#include "store/store.h"

#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CTL_ACME_BACKOFF_FIRST	3600	/* s, doubled per failure */
#define CTL_ACME_BACKOFF_MAX	86400
#define CTL_ACME_POLL_S		120	/* validation, finalization */

struct ctl_acme_names {
	char **v;
	size_t n;
};

struct ctl_acme_state {
	unsigned failures;
	long long next;		/* no attempt before (unix time) */
	char error[512];
};

static void ctl_acme_add(struct ctl_acme_names *, const char *);
static void ctl_acme_domain(const char *, void *);
static int ctl_acme_names(struct ctl *, struct ctl_acme_names *);
static void ctl_acme_names_free(struct ctl_acme_names *);
static void ctl_acme_state_read(const struct ctl *, struct ctl_acme_state *);
static int ctl_acme_state_write(const struct ctl *,
    const struct ctl_acme_state *);
static const char *ctl_acme_time(time_t, char *, size_t);
static const char *ctl_acme_due(const struct ctl *,
    const struct ctl_acme_names *, time_t, bool *);
static struct acme_key *ctl_acme_account(const struct ctl *, const char **);
static int ctl_acme_install(const struct ctl *, const struct acme_key *,
    const char *, const char **);
static void ctl_acme_owner(const struct ctl *, const char *);
static void ctl_acme_reload(const struct ctl *, char *, size_t);
static int ctl_acme_status(struct ctl *);
static int ctl_acme_renew(struct ctl *, bool);

static void
ctl_acme_add(struct ctl_acme_names *ns, const char *name)
{
	char *s = xstrdup(name);

	for (char *p = s; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	for (size_t i = 0; i < ns->n; i++)
		if (strcmp(ns->v[i], s) == 0) {
			free(s);
			return;
		}
	ns->v = xrealloc(ns->v, (ns->n + 1) * sizeof(*ns->v));
	ns->v[ns->n++] = s;
}

static void
ctl_acme_domain(const char *domain, void *arg)
{
	char *a = xasprintf("autoconfig.%s", domain);
	char *m = xasprintf("mta-sts.%s", domain);

	ctl_acme_add(arg, a);
	ctl_acme_add(arg, m);
	free(a);
	free(m);
}

/* [server] hostname first (the CN), then each local domain's two. */
static int
ctl_acme_names(struct ctl *ctl, struct ctl_acme_names *ns)
{
	memset(ns, 0, sizeof(*ns));
	ctl_acme_add(ns, ctl->cfg->server.hostname);
	if (store_domain_list(ctl->st, ctl_acme_domain, ns) < 0) {
		ctl_err("cannot list the domains");
		return -1;
	}
	return 0;
}

static void
ctl_acme_names_free(struct ctl_acme_names *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		free(ns->v[i]);
	free(ns->v);
}

static void
ctl_acme_state_read(const struct ctl *ctl, struct ctl_acme_state *s)
{
	char *path = acme_path(ctl->cfg->store.path, "state");
	char *text = acme_file_read(path, NULL), *line, *save = NULL;

	memset(s, 0, sizeof(*s));
	free(path);
	if (text == NULL)
		return;
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "failures ", 9) == 0)
			s->failures = (unsigned)strtoul(line + 9, NULL, 10);
		else if (strncmp(line, "next ", 5) == 0)
			s->next = strtoll(line + 5, NULL, 10);
		else if (strncmp(line, "error ", 6) == 0)
			snprintf(s->error, sizeof(s->error), "%s", line + 6);
	}
	free(text);
}

static int
ctl_acme_state_write(const struct ctl *ctl, const struct ctl_acme_state *s)
{
	char *path = acme_path(ctl->cfg->store.path, "state");
	char *text = xasprintf("failures %u\nnext %lld\nerror %s\n",
	    s->failures, s->next, s->error);
	const char *e;
	int rc = acme_file_write(path, text, strlen(text), 0600, &e);

	if (rc < 0)
		ctl_err("%s", e);
	else
		ctl_acme_owner(ctl, path);
	free(text);
	free(path);
	return rc;
}

static const char *
ctl_acme_time(time_t t, char *buf, size_t size)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

/* Why the certificate needs renewing (*due), or how long it is good. */
static const char *
ctl_acme_due(const struct ctl *ctl, const struct ctl_acme_names *ns,
    time_t now, bool *due)
{
	static char why[512];
	struct acme_certinfo ci;
	const char *e;
	char t[32];

	*due = true;
	if (acme_cert_info(ctl->cfg->tls.cert, &ci, &e) < 0) {
		snprintf(why, sizeof(why), "%s: %s", ctl->cfg->tls.cert, e);
		return why;
	}
	if (!acme_cert_covers(&ci, (const char *const *)ns->v, ns->n))
		snprintf(why, sizeof(why), "it does not name all of the "
		    "names");
	else if (ci.not_after - now < (time_t)ctl->cfg->acme.renew_before)
		snprintf(why, sizeof(why), "it expires %s",
		    ctl_acme_time(ci.not_after, t, sizeof(t)));
	else
		*due = false;
	if (!*due) {
		char a[32], b[32];

		snprintf(why, sizeof(why), "valid until %s, renewal from %s",
		    ctl_acme_time(ci.not_after, a, sizeof(a)),
		    ctl_acme_time(ci.not_after -
		    (time_t)ctl->cfg->acme.renew_before, b, sizeof(b)));
	}
	acme_certinfo_clear(&ci);
	return why;
}

/* Run as root: hand what we wrote to [server] user, who runs the daemons
 * (a SIGHUP must be able to read the key) and the next renew. */
static void
ctl_acme_owner(const struct ctl *ctl, const char *path)
{
	struct passwd *pw;

	if (geteuid() != 0 || ctl->cfg->server.user == NULL ||
	    (pw = getpwnam(ctl->cfg->server.user)) == NULL)
		return;
	if (chown(path, pw->pw_uid, pw->pw_gid) < 0)
		ctl_err("warning: chown %s: %s", path, strerror(errno));
}

/* acme/account.key, made (0600) on first use. */
static struct acme_key *
ctl_acme_account(const struct ctl *ctl, const char **error_r)
{
	char *path = acme_path(ctl->cfg->store.path, "account.key");
	struct acme_key *k;
	char *pem;
	struct stat sb;

	if (stat(path, &sb) == 0) {
		k = acme_key_load(path, error_r);
		free(path);
		return k;
	}
	if ((k = acme_key_generate(error_r)) == NULL) {
		free(path);
		return NULL;
	}
	pem = acme_key_pem(k);
	if (pem == NULL || acme_file_write(path, pem, strlen(pem), 0600,
	    error_r) < 0) {
		if (pem == NULL)
			*error_r = "cannot export the account key";
		acme_key_free(k);
		k = NULL;
	} else
		ctl_acme_owner(ctl, path);
	if (pem != NULL)
		explicit_bzero(pem, strlen(pem));
	free(pem);
	free(path);
	return k;
}

/* Key first, then the chain: each by rename, so a reader sees old or new. */
static int
ctl_acme_install(const struct ctl *ctl, const struct acme_key *key,
    const char *chain, const char **error_r)
{
	char *pem = acme_key_pem(key);
	int rc;

	if (pem == NULL) {
		*error_r = "cannot export the certificate key";
		return -1;
	}
	rc = acme_file_write(ctl->cfg->tls.key, pem, strlen(pem), 0600,
	    error_r);
	explicit_bzero(pem, strlen(pem));
	free(pem);
	if (rc < 0)
		return -1;
	ctl_acme_owner(ctl, ctl->cfg->tls.key);
	if (acme_file_write(ctl->cfg->tls.cert, chain, strlen(chain), 0644,
	    error_r) < 0)
		return -1;
	ctl_acme_owner(ctl, ctl->cfg->tls.cert);
	return 0;
}

/* SIGHUP each running daemon (its pid file, checked against /proc). */
static void
ctl_acme_reload(const struct ctl *ctl, char *done, size_t size)
{
	static const char *const roles[] = { "smtpd", "pop3d", "webd" };

	done[0] = '\0';
	for (size_t i = 0; i < nitems(roles); i++) {
		char *path = daemon_pidfile_path(ctl->cfg->store.path,
		    roles[i]);
		char *text = acme_file_read(path, NULL), *comm, *want;
		long pid = text ? strtol(text, NULL, 10) : 0;

		free(path);
		free(text);
		if (pid <= 1)
			continue;
		/* A stale file may name someone else's process now. */
		path = xasprintf("/proc/%ld/comm", pid);
		comm = acme_file_read(path, NULL);
		free(path);
		want = xasprintf("carteiro-%s\n", roles[i]);
		if (comm != NULL && strcmp(comm, want) == 0 &&
		    kill((pid_t)pid, SIGHUP) == 0) {
			size_t len = strlen(done);

			snprintf(done + len, size - len, "%s%s",
			    len ? " " : "", roles[i]);
		}
		free(comm);
		free(want);
	}
}

static int
ctl_acme_status(struct ctl *ctl)
{
	struct ctl_acme_names ns;
	struct ctl_acme_state s;
	const char *why;
	bool due;
	char t[32];

	if (ctl_acme_names(ctl, &ns) < 0)
		return 1;
	printf("enabled: %s\ndirectory: %s\naccount: %s\n",
	    ctl->cfg->acme.enable ? "yes" : "no",
	    ctl->cfg->acme.directory ? ctl->cfg->acme.directory : "-",
	    ctl->cfg->acme.email ? ctl->cfg->acme.email : "-");
	printf("names:");
	for (size_t i = 0; i < ns.n; i++)
		printf(" %s", ns.v[i]);
	printf("\ncertificate: %s\n",
	    ctl->cfg->tls.cert ? ctl->cfg->tls.cert : "-");
	if (ctl->cfg->tls.cert != NULL) {
		why = ctl_acme_due(ctl, &ns, time(NULL), &due);
		printf("%s: %s\n", due ? "due" : "ok", why);
	}
	ctl_acme_state_read(ctl, &s);
	if (s.failures > 0)
		printf("failures: %u, next attempt %s: %s\n", s.failures,
		    ctl_acme_time((time_t)s.next, t, sizeof(t)), s.error);
	ctl_acme_names_free(&ns);
	return 0;
}

static int
ctl_acme_renew(struct ctl *ctl, bool force)
{
	const struct cfg *cfg = ctl->cfg;
	struct ctl_acme_names ns;
	struct ctl_acme_state s;
	struct acme_order_req req;
	struct acme_key *account, *key = NULL;
	const char *why, *e;
	char *dir, *chdir_, *chain = NULL, t[32], reloaded[64];
	time_t now = time(NULL);
	bool due;
	int rc = 1;

	if (!cfg->acme.enable || cfg->acme.directory == NULL) {
		ctl_err("ACME is off: set [acme] enable = yes (and "
		    "directory)");
		return 1;
	}
	if (cfg->tls.cert == NULL || cfg->tls.key == NULL) {
		ctl_err("ACME installs at [tls] cert and key: set both");
		return 1;
	}
	if (cfg->http.listen.n == 0) {
		ctl_err("ACME proves the names over HTTP: carteiro-webd must "
		    "listen on port 80 ([http] listen)");
		return 1;
	}
	if (ctl_acme_names(ctl, &ns) < 0)
		return 1;
	why = ctl_acme_due(ctl, &ns, now, &due);
	if (!due && !force) {
		printf("acme: not due: %s\n", why);
		ctl_acme_names_free(&ns);
		return 0;
	}
	ctl_acme_state_read(ctl, &s);
	if (!force && s.failures > 0 && now < s.next) {
		printf("acme: backing off after %u failure%s until %s: %s\n",
		    s.failures, s.failures == 1 ? "" : "s",
		    ctl_acme_time((time_t)s.next, t, sizeof(t)), s.error);
		ctl_acme_names_free(&ns);
		return 0;
	}
	dir = acme_path(cfg->store.path, NULL);
	chdir_ = acme_path(cfg->store.path, "challenges");
	/* 0755: carteiro-webd reads the challenges (the keys are 0600). */
	if ((mkdir(dir, 0755) < 0 && errno != EEXIST) ||
	    (mkdir(chdir_, 0755) < 0 && errno != EEXIST)) {
		ctl_err("%s: %s", dir, strerror(errno));
		goto out;
	}
	ctl_acme_owner(ctl, dir);
	ctl_acme_owner(ctl, chdir_);
	if ((account = ctl_acme_account(ctl, &e)) == NULL) {
		ctl_err("account key: %s", e);
		goto out;
	}
	memset(&req, 0, sizeof(req));
	req.directory = cfg->acme.directory;
	req.email = cfg->acme.email;
	req.ca_file = cfg->acme.ca_file;
	req.account = account;
	req.challenge_dir = chdir_;
	req.names = (const char *const *)ns.v;
	req.nnames = ns.n;
	req.poll_s = CTL_ACME_POLL_S;
	if (acme_issue(&req, &key, &chain, &e) < 0 ||
	    ctl_acme_install(ctl, key, chain, &e) < 0) {
		unsigned shift = s.failures < 5 ? s.failures : 5;
		long long wait = (long long)CTL_ACME_BACKOFF_FIRST << shift;

		s.failures++;
		s.next = (long long)now + (wait < CTL_ACME_BACKOFF_MAX ?
		    wait : CTL_ACME_BACKOFF_MAX);
		snprintf(s.error, sizeof(s.error), "%s", e);
		for (char *p = s.error; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		(void)ctl_acme_state_write(ctl, &s);
		ctl_err("acme renew failed (%u in a row; next try after %s): "
		    "%s", s.failures, ctl_acme_time((time_t)s.next, t,
		    sizeof(t)), s.error);
	} else {
		memset(&s, 0, sizeof(s));
		(void)ctl_acme_state_write(ctl, &s);
		ctl_acme_reload(ctl, reloaded, sizeof(reloaded));
		why = ctl_acme_due(ctl, &ns, now, &due);
		printf("acme: installed a certificate for %zu names at %s "
		    "(%s); reloaded: %s\n", ns.n, cfg->tls.cert, why,
		    reloaded[0] ? reloaded : "none running");
		rc = 0;
	}
	acme_key_free(account);
out:
	acme_key_free(key);
	free(chain);
	free(dir);
	free(chdir_);
	ctl_acme_names_free(&ns);
	return rc;
}

int
ctl_cmd_acme(struct ctl *ctl, int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "status") == 0)
		return ctl_acme_status(ctl);
	if (argc == 2 && strcmp(argv[1], "renew") == 0)
		return ctl_acme_renew(ctl, false);
	if (argc == 3 && strcmp(argv[1], "renew") == 0 &&
	    strcmp(argv[2], "--force") == 0)
		return ctl_acme_renew(ctl, true);
	ctl_err("usage: acme status | acme renew [--force]");
	return 1;
}
