/*
 * carteiroctl: main(), the command table and its dispatcher, the helpers
 * the groups share (ctl_admin.h), and the init and domain groups. user and
 * alias live in ctl_user.c, mailbox in ctl_mailbox.c; queue, dkim and check
 * in ctl_queue.c, ctl_dkim.c and ctl_check.c. Every user error ends in exactly
 * one "carteiroctl: ..." line on stderr and exit status 1; nothing here
 * prints SQL or stack traces. Every command that changes something says
 * what it did in one line on stdout (ctl_done). "COMMAND -h" prints the
 * command's usage from its table row(s), before any config is read. The
 * config is loaded in CFG_MODE_TOOL: a listener without [tls] is the
 * daemons' concern, not ours. Safe to run while the daemons run (the
 * store waits on its busy timeout).
 */
#include "tools/ctl.h"
#include "tools/ctl_admin.h"
#include "tools/ctl_mailauth.h"
#include "tools/ctl_import.h"
#include "common/addr.h"
#include "common/auth.h"
#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "store/store.h"

#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CTL_DEFAULT_CONF	"/etc/carteiro/carteiro.conf"

/* A row of the command table. sub NULL: the group has no sub-command
 * (init) or parses its own (queue, dkim, check: CTL_F_EXTERN). */
struct ctl_cmd {
	const char *group;
	const char *sub;
	int min_args, max_args;		/* after group and sub-command */
	const char *usage;		/* after "carteiroctl -c CONF " */
	int (*fn)(struct ctl *ctl, int argc, char **argv);
	unsigned flags;
};
#define CTL_F_INIT	0x1	/* runs on an uninitialised database */
#define CTL_F_EXTERN	0x2	/* fn gets the whole group argv */
#define CTL_F_NOSTORE	0x4	/* runs without opening the store (restore) */

int main(int argc, char **argv);

static int ctl_init(struct ctl *, int, char **);
static int ctl_domain_add(struct ctl *, int, char **);
static int ctl_domain_del(struct ctl *, int, char **);
static int ctl_domain_list(struct ctl *, int, char **);

static void ctl_usage(FILE *fp);
static bool ctl_wants_help(int argc, char **argv);
static void ctl_cmd_help(const char *group, const char *sub);
static const struct ctl_cmd *ctl_find(const char *group, const char *sub,
    bool *group_found_r);
static void ctl_group_usage(const char *group);
static int ctl_strv_cmp(const void *a, const void *b);
static void ctl_fix_owner(const struct cfg *cfg);

static const struct ctl_cmd ctl_cmds[] = {
	{ "init", NULL, 0, 0, "init", ctl_init, CTL_F_INIT },
	{ "domain", "add", 1, 1, "domain add DOMAIN", ctl_domain_add, 0 },
	{ "domain", "del", 1, 1, "domain del DOMAIN", ctl_domain_del, 0 },
	{ "domain", "list", 0, 0, "domain list", ctl_domain_list, 0 },
	{ "user", "add", 1, 1, "user add ADDRESS  (password on stdin)",
	  ctl_user_add, 0 },
	{ "user", "passwd", 1, 1, "user passwd ADDRESS  (password on stdin)",
	  ctl_user_passwd, 0 },
	{ "user", "del", 1, 1, "user del ADDRESS", ctl_user_del, 0 },
	{ "user", "list", 0, 1, "user list [ADDRESS|DOMAIN]", ctl_user_list,
	  0 },
	{ "user", "show", 1, 1, "user show ADDRESS", ctl_user_show, 0 },
	{ "user", "disable", 1, 1, "user disable ADDRESS  (no more logins; "
	  "mail keeps arriving)", ctl_user_disable, 0 },
	{ "user", "enable", 1, 1, "user enable ADDRESS", ctl_user_enable, 0 },
	{ "user", "quota", 2, 2, "user quota ADDRESS BYTES  (0 = unlimited; "
	  "k, M, G suffixes)", ctl_user_quota, 0 },
	{ "user", "set", 2, 2, "user set ADDRESS expire=DAYS|never|default  "
	  "(RFC 2449 EXPIRE for this user)", ctl_user_set, 0 },
	{ "alias", "add", 2, 2, "alias add SOURCE DEST[,DEST...]  (SOURCE "
	  "may be @DOMAIN)", ctl_alias_add, 0 },
	{ "alias", "del", 1, 2, "alias del SOURCE [DEST[,DEST...]]",
	  ctl_alias_del, 0 },
	{ "alias", "list", 0, 1, "alias list [SOURCE]", ctl_alias_list, 0 },
	{ "mailbox", "list", 1, 1, "mailbox list ADDRESS  (uidl size date "
	  "from subject)", ctl_mailbox_list, 0 },
	{ "mailbox", "import", 2, 7, "mailbox import ADDRESS SOURCE "
	  "[--uidl-format F] [--uidl-map FILE] [--ignore-quota]  (mbox, "
	  "Maildir, Dovecot Maildir)", ctl_mailbox_import, 0 },
	{ "mailbox", "export", 3, 3, "mailbox export ADDRESS --mbox FILE | "
	  "--maildir DIR", ctl_mailbox_export, 0 },
	{ "queue", NULL, 0, 0, "queue list|show ID|flush|delete ID",
	  ctl_cmd_queue, CTL_F_EXTERN },
	{ "dkim", NULL, 0, 0, "dkim keygen DOMAIN [--selector S] "
	  "[--algorithm ed25519|rsa]", ctl_cmd_dkim, CTL_F_EXTERN },
	{ "check", NULL, 0, 0, "check DOMAIN [--ip ADDR]", ctl_cmd_check,
	  CTL_F_EXTERN },
	/* Why a message got its verdict (ctl_mailauth.h). The dkim row
	 * above takes "dkim verify" (ctl_cmd_dkim): this one is its usage
	 * line. */
	{ "dkim", "verify", 1, 1, "dkim verify FILE|-  (one line per "
	  "signature)", ctl_dkim_verify, 0 },
	{ "dmarc", NULL, 1, 1, "dmarc FROM-DOMAIN  (the policy found, parsed)",
	  ctl_cmd_dmarc, 0 },
	{ "dnsbl", NULL, 1, 1, "dnsbl IP  (each [smtpd] dnsbl zone)",
	  ctl_cmd_dnsbl, 0 },
	/* tools/ctl_spf.c */
	{ "spf", NULL, 0, 0, "spf [--timeout MS] IP SENDER [HELO]  (SPF "
	  "result and evidence)", ctl_cmd_spf, CTL_F_EXTERN },
	/* issue 14: data safety (ctl_backup.c, ctl_verify.c) */
	{ "backup", NULL, 1, 1, "backup DIR  (consistent while the daemons "
	  "run)", ctl_backup, 0 },
	{ "restore", NULL, 1, 1, "restore DIR  (into an empty store location, "
	  "daemons stopped)", ctl_restore, CTL_F_NOSTORE },
	{ "verify", NULL, 0, 0, "verify  (consistency checks; exit 1 lists "
	  "the problems)", ctl_verify, 0 },
	/* issue 15: certificates by ACME (ctl_acme.c) */
	{ "acme", NULL, 0, 0, "acme status | acme renew [--force]",
	  ctl_cmd_acme, CTL_F_EXTERN },
	/* tools/ctl_domain_source.c */
	{ "domain", "set", 2, 3, "domain set DOMAIN source_ip=ADDR[,ADDR] "
	  "helo=NAME  (empty value: unset)", ctl_domain_set, 0 },
	/* tools/ctl_suppress.c */
	{ "suppress", "list", 0, 0, "suppress list  (address since until "
	  "origin reason)", ctl_suppress_list, 0 },
	{ "suppress", "add", 1, 2, "suppress add ADDRESS [REASON]",
	  ctl_suppress_add, 0 },
	{ "suppress", "del", 1, 1, "suppress del ADDRESS", ctl_suppress_del,
	  0 },
	/* issue 18: tools/ctl_store.c */
	{ "store", "copy", 2, 2, "store copy --to URL  (this SQLite store, "
	  "live, into an empty PostgreSQL store; URL: postgresql://... or "
	  "service=NAME, no password)", ctl_store_copy, 0 },
};

void
ctl_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("carteiroctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

void
ctl_done(const char *fmt, ...)
{
	va_list ap;
	char *s, *line;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (s == NULL)
		return;
	line = ctl_oneline(s);
	printf("%s\n", line);
	free(line);
	free(s);
}

/* ---- helpers ---- */

static void
ctl_usage(FILE *fp)
{
	size_t i;

	fprintf(fp, "usage: carteiroctl [-c CONF] COMMAND ...\n"
	    "       carteiroctl COMMAND -h | -h | --version\n"
	    "  -c CONF    configuration file (default %s)\n"
	    "  -h         this help; after a command, that command's usage\n"
	    "  --version  print the version\n\ncommands:\n",
	    CTL_DEFAULT_CONF);
	for (i = 0; i < nitems(ctl_cmds); i++)
		fprintf(fp, "  %s\n", ctl_cmds[i].usage);
}

/* -h or --help among the command's words: carteiroctl GROUP [SUB] -h. */
static bool
ctl_wants_help(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0)
			return true;
	}
	return false;
}

/*
 * The usage of one command on stdout, from its table row(s): the rows of
 * GROUP SUB when there are any, else every row of GROUP.
 */
static void
ctl_cmd_help(const char *group, const char *sub)
{
	bool exact = false;
	size_t i;
	int n = 0;

	for (i = 0; sub != NULL && i < nitems(ctl_cmds); i++) {
		if (strcmp(ctl_cmds[i].group, group) == 0 &&
		    ctl_cmds[i].sub != NULL && strcmp(ctl_cmds[i].sub, sub) == 0)
			exact = true;
	}
	for (i = 0; i < nitems(ctl_cmds); i++) {
		const struct ctl_cmd *c = &ctl_cmds[i];

		if (strcmp(c->group, group) != 0)
			continue;
		if (exact && (c->sub == NULL || strcmp(c->sub, sub) != 0))
			continue;
		printf("%s carteiroctl [-c CONF] %s\n", n++ == 0 ? "usage:" :
		    "      ", c->usage);
	}
}

static const struct ctl_cmd *
ctl_find(const char *group, const char *sub, bool *group_found_r)
{
	size_t i;

	*group_found_r = false;
	for (i = 0; i < nitems(ctl_cmds); i++) {
		const struct ctl_cmd *c = &ctl_cmds[i];

		if (strcmp(c->group, group) != 0)
			continue;
		*group_found_r = true;
		if (c->sub == NULL)
			return c;
		if (sub != NULL && strcmp(c->sub, sub) == 0)
			return c;
	}
	return NULL;
}

/* "domain: expected add, del or list" */
static void
ctl_group_usage(const char *group)
{
	char buf[256] = "";
	const char *subs[16];
	size_t i, n = 0;

	for (i = 0; i < nitems(ctl_cmds) && n < nitems(subs); i++) {
		if (strcmp(ctl_cmds[i].group, group) == 0 &&
		    ctl_cmds[i].sub != NULL)
			subs[n++] = ctl_cmds[i].sub;
	}
	for (i = 0; i < n; i++) {
		size_t len = strlen(buf);

		snprintf(buf + len, sizeof(buf) - len, "%s%s", i == 0 ? "" :
		    i + 1 == n ? " or " : ", ", subs[i]);
	}
	ctl_err("%s: expected %s", group, buf);
}

/* A copy of s with control characters (newlines included) as spaces, so
 * that any message stays on one line. Caller frees. */
char *
ctl_oneline(const char *s)
{
	char *r = xstrdup(s), *p;

	for (p = r; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	}
	return r;
}

int
ctl_store_err(struct ctl *ctl, const char *what)
{
	char *msg;

	if (store_error_is_busy(ctl->st)) {
		ctl_err("%s: the database is busy, try again", what);
		return 1;
	}
	msg = ctl_oneline(store_error(ctl->st));
	ctl_err("%s: %s", what, msg);
	free(msg);
	return 1;
}

int
ctl_domain_arg(const char *in, char **out_r)
{
	const char *error;

	if (addr_normalize_domain(in, out_r, &error) < 0) {
		char *s = ctl_oneline(in);

		ctl_err("invalid domain '%s': %s", s, error);
		free(s);
		return -1;
	}
	return 0;
}

int
ctl_address_arg(const char *in, char **out_r)
{
	const char *error;

	if (addr_normalize(in, out_r, &error) < 0) {
		char *s = ctl_oneline(in);

		ctl_err("invalid address '%s': %s", s, error);
		free(s);
		return -1;
	}
	return 0;
}

/* An alias source: "user@domain" or "@domain" (catch-all). */
int
ctl_source_arg(const char *in, char **out_r)
{
	char *domain;

	if (in[0] != '@')
		return ctl_address_arg(in, out_r);
	if (ctl_domain_arg(in + 1, &domain) < 0)
		return -1;
	*out_r = xasprintf("@%s", domain);
	free(domain);
	return 0;
}

/* 0 if domain is one of ours, else the error is printed and -1. */
int
ctl_require_local(struct ctl *ctl, const char *domain)
{
	int r = store_domain_is_local(ctl->st, domain);

	if (r < 0) {
		ctl_store_err(ctl, "domain lookup");
		return -1;
	}
	if (r == 0) {
		ctl_err("domain %s is not local (add it with: carteiroctl "
		    "domain add %s)", domain, domain);
		return -1;
	}
	return 0;
}

void
ctl_strv_add(struct ctl_strv *sv, char *s)
{
	if (sv->n == sv->cap) {
		sv->cap = sv->cap ? sv->cap * 2 : 16;
		sv->v = xrealloc(sv->v, sv->cap * sizeof(*sv->v));
	}
	sv->v[sv->n++] = s;
}

static int
ctl_strv_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void
ctl_strv_print_sorted(struct ctl_strv *sv)
{
	size_t i;

	if (sv->n > 0)
		qsort(sv->v, sv->n, sizeof(*sv->v), ctl_strv_cmp);
	for (i = 0; i < sv->n; i++)
		printf("%s\n", sv->v[i]);
}

void
ctl_strv_free(struct ctl_strv *sv)
{
	size_t i;

	for (i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = sv->cap = 0;
}

void
ctl_collect_cb(const char *s, void *arg)
{
	ctl_strv_add(arg, xstrdup(s));
}

/*
 * Run as root with [server] user set, files SQLite just created would be
 * root's and the daemons (after dropping privileges) could not write them:
 * hand the database and its -wal/-shm files to that user.
 */
static void
ctl_fix_owner(const struct cfg *cfg)
{
	static const char *const suffix[] = { "", "-wal", "-shm" };
	struct passwd *pw;
	struct stat sb;
	size_t i;

	if (geteuid() != 0 || cfg->server.user == NULL ||
	    cfg->store.path == NULL)
		return;
	if ((pw = getpwnam(cfg->server.user)) == NULL)
		return;		/* the daemons report an unknown user */
	for (i = 0; i < nitems(suffix); i++) {
		char *p = xasprintf("%s%s", cfg->store.path, suffix[i]);

		if (stat(p, &sb) == 0 && sb.st_uid == 0 &&
		    chown(p, pw->pw_uid, pw->pw_gid) < 0)
			ctl_err("warning: chown %s: %s", p, strerror(errno));
		free(p);
	}
}

/* ---- init ---- */

static int
ctl_init(struct ctl *ctl, int argc, char **argv)
{
	const char *path = strcmp(ctl->cfg->store.backend, "postgresql") == 0 ?
	    ctl->cfg->store.url : ctl->cfg->store.path;
	int before, after;

	if ((before = store_schema_version(ctl->st)) < 0 ||
	    store_migrate(ctl->st) < 0 ||
	    (after = store_schema_version(ctl->st)) < 0)
		return ctl_store_err(ctl, "init");
	if (before == 0)
		ctl_done("created database %s (schema version %d)", path,
		    after);
	else if (before < after)
		ctl_done("upgraded database %s from schema version %d to %d",
		    path, before, after);
	else
		ctl_done("database %s is up to date (schema version %d)",
		    path, after);
	return 0;
}

/* ---- domain ---- */

static int
ctl_domain_add(struct ctl *ctl, int argc, char **argv)
{
	char *domain;
	int r;

	if (ctl_domain_arg(argv[2], &domain) < 0)
		return 1;
	r = store_domain_add(ctl->st, domain);
	if (r < 0)
		r = ctl_store_err(ctl, "domain add");
	else if (r == 1)
		ctl_err("domain %s already exists", domain);
	else
		ctl_done("added domain %s", domain);
	free(domain);
	return r == 0 ? 0 : 1;
}

static int
ctl_domain_del(struct ctl *ctl, int argc, char **argv)
{
	char *domain;
	int r;

	if (ctl_domain_arg(argv[2], &domain) < 0)
		return 1;
	r = store_domain_del(ctl->st, domain);
	if (r < 0)
		r = ctl_store_err(ctl, "domain del");
	else if (r == 1)
		ctl_err("no such domain %s", domain);
	else
		ctl_done("deleted domain %s", domain);
	free(domain);
	return r == 0 ? 0 : 1;
}

static int
ctl_domain_list(struct ctl *ctl, int argc, char **argv)
{
	struct ctl_strv sv = { 0 };
	int ret = 0;

	if (store_domain_list(ctl->st, ctl_collect_cb, &sv) < 0)
		ret = ctl_store_err(ctl, "domain list");
	else
		ctl_strv_print_sorted(&sv);
	ctl_strv_free(&sv);
	return ret;
}

/* ---- main ---- */

int
main(int argc, char **argv)
{
	const char *conf = CTL_DEFAULT_CONF;
	const struct ctl_cmd *cmd;
	struct ctl ctl = { 0 };
	struct cfg *cfg = NULL;
	struct store *st = NULL;
	struct stat sb;
	char *errors, *p, **sub_argv;
	const char *error;
	bool group_found;
	int c, nargs, sub_argc, ret = 1;
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};

	log_init("carteiroctl", 1, LOG_LVL_WARN);
	/* The database holds password hashes. */
	umask(077);

	opterr = 0;
	/* '+': stop at the command, its own options (--selector) are its. */
	while ((c = getopt_long(argc, argv, "+c:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			conf = optarg;
			break;
		case 'h':
			ctl_usage(stdout);
			return 0;
		case 'V':
			printf("carteiroctl %s\n", CARTEIRO_VERSION);
			return 0;
		default:
			if (optopt == 'c')
				ctl_err("option -c needs a file name");
			else if (optopt == 0) {
				char *s = ctl_oneline(argv[optind - 1]);

				ctl_err("unknown option %s (try carteiroctl "
				    "-h)", s);
				free(s);
			} else
				ctl_err("unknown option -%c (try carteiroctl "
				    "-h)", optopt);
			return 1;
		}
	}
	sub_argc = argc - optind;
	sub_argv = argv + optind;
	if (sub_argc == 0) {
		ctl_err("no command given (try carteiroctl -h)");
		return 1;
	}
	if (strcmp(sub_argv[0], "help") == 0) {
		ctl_usage(stdout);
		return 0;
	}
	cmd = ctl_find(sub_argv[0], sub_argc > 1 ? sub_argv[1] : NULL,
	    &group_found);
	/* Help needs neither the config nor the database. */
	if (group_found && ctl_wants_help(sub_argc, sub_argv)) {
		ctl_cmd_help(sub_argv[0], sub_argc > 1 ? sub_argv[1] : NULL);
		return 0;
	}
	if (cmd == NULL) {
		char *s = ctl_oneline(sub_argv[0]);

		if (!group_found)
			ctl_err("unknown command '%s' (try carteiroctl -h)", s);
		else if (sub_argc < 2)
			ctl_group_usage(sub_argv[0]);
		else {
			char *t = ctl_oneline(sub_argv[1]);

			ctl_err("unknown command '%s %s' (try carteiroctl -h)",
			    s, t);
			free(t);
		}
		free(s);
		return 1;
	}
	if (!(cmd->flags & CTL_F_EXTERN)) {
		nargs = sub_argc - (cmd->sub != NULL ? 2 : 1);
		if (nargs < cmd->min_args || nargs > cmd->max_args) {
			char *u = xstrdup(cmd->usage);

			/* only the synopsis, not the note after it */
			if ((p = strstr(u, "  (")) != NULL)
				*p = '\0';
			ctl_err("usage: carteiroctl -c CONF %s", u);
			free(u);
			return 1;
		}
	}

	/* No listener here: [tls] is the daemons' business. */
	if (cfg_load_mode(conf, CFG_MODE_TOOL, &cfg, &errors) < 0) {
		/* Every error on one line. */
		size_t len = strlen(errors);

		while (len > 0 && errors[len - 1] == '\n')
			errors[--len] = '\0';
		/* "a\nb" -> "a; b" */
		p = xmalloc(len * 2 + 1);
		for (size_t i = 0, o = 0; i <= len; i++) {
			if (errors[i] == '\n') {
				p[o++] = ';';
				p[o++] = ' ';
			} else
				p[o++] = errors[i];
		}
		free(errors);
		errors = ctl_oneline(p);
		free(p);
		ctl_err("%s", errors);
		free(errors);
		return 1;
	}
	log_set_level(LOG_LVL_WARN);	/* the config's level is for daemons */
	ctl.cfg = cfg;
	if (cmd->flags & CTL_F_NOSTORE)
		goto run;

	if (!(cmd->flags & CTL_F_INIT) && strcmp(cfg->store.locator,
	    cfg->store.path) == 0 && stat(cfg->store.path, &sb) < 0) {
		if (errno == ENOENT)
			ctl_err("database %s does not exist (run carteiroctl "
			    "init)", cfg->store.path);
		else
			ctl_err("database %s: %s", cfg->store.path,
			    strerror(errno));
		goto out;
	}
	if ((st = store_open(cfg->store.locator, &error)) == NULL) {
		p = ctl_oneline(error);
		ctl_err("%s", p);
		free(p);
		goto out;
	}
	ctl.st = st;
	if (!(cmd->flags & CTL_F_INIT) && store_check_schema(st) < 0) {
		if (store_error_is_busy(st))
			ctl_err("the database is busy, try again");
		else {
			p = ctl_oneline(store_error(st));
			ctl_err("%s", p);
			free(p);
		}
		goto out;
	}
run:
	ret = cmd->fn(&ctl, sub_argc, sub_argv);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		ctl_err("writing the output: %s", strerror(errno));
		ret = 1;
	}
out:
	store_close(st);
	if (cfg != NULL)
		ctl_fix_owner(cfg);
	cfg_free(cfg);
	return ret;
}
