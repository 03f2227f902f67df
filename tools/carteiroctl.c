/*
 * carteiroctl: main(), the command table and its dispatcher, the helpers
 * the groups share (ctl_admin.h), and the init and domain groups. user and
 * alias live in ctl_user.c, mailbox in ctl_mailbox.c; queue, dkim and check
 * in ctl_queue.c, ctl_dkim.c and ctl_check.c. Every user error ends in exactly
 * one "carteiroctl: ..." line on stderr and exit status 1; nothing here
 * prints SQL or stack traces. Safe to run while the daemons run (the store
 * waits on its busy timeout).
 */
#include "tools/ctl.h"
#include "tools/ctl_admin.h"
#include "tools/ctl_mailauth.h"
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
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define CTL_DEFAULT_CONF	"/etc/carteiro/carteiro.conf"
#define CTL_PASSWORD_MAX	1024	/* bytes of one password line */

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

int main(int argc, char **argv);

static int ctl_init(struct ctl *, int, char **);
static int ctl_domain_add(struct ctl *, int, char **);
static int ctl_domain_del(struct ctl *, int, char **);
static int ctl_domain_list(struct ctl *, int, char **);

static void ctl_usage(FILE *fp);
static const struct ctl_cmd *ctl_find(const char *group, const char *sub,
    bool *group_found_r);
static void ctl_group_usage(const char *group);
static int ctl_read_password_line(const char *prompt, char *buf,
    size_t size, size_t *len_r);
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
	{ "alias", "add", 2, 2, "alias add SOURCE DEST[,DEST...]  (SOURCE "
	  "may be @DOMAIN)", ctl_alias_add, 0 },
	{ "alias", "del", 1, 2, "alias del SOURCE [DEST[,DEST...]]",
	  ctl_alias_del, 0 },
	{ "alias", "list", 0, 1, "alias list [SOURCE]", ctl_alias_list, 0 },
	{ "mailbox", "list", 1, 1, "mailbox list ADDRESS  (uidl size date "
	  "from subject)", ctl_mailbox_list, 0 },
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

/* ---- helpers ---- */

static void
ctl_usage(FILE *fp)
{
	size_t i;

	fprintf(fp, "usage: carteiroctl [-c CONF] COMMAND ...\n"
	    "  -c CONF  configuration file (default %s)\n\ncommands:\n",
	    CTL_DEFAULT_CONF);
	for (i = 0; i < nitems(ctl_cmds); i++)
		fprintf(fp, "  %s\n", ctl_cmds[i].usage);
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

/*
 * One line from stdin, never argv (argv is visible in ps). On a terminal
 * the password is asked twice without echo. The line end (LF or CRLF) is
 * not part of the password. Caller frees with auth_wipe_free.
 */
static int
ctl_read_password_line(const char *prompt, char *buf, size_t size,
    size_t *len_r)
{
	struct termios old, noecho;
	bool tty = isatty(STDIN_FILENO) == 1, eol = false;
	size_t len = 0;
	int ret = 0;

	if (tty) {
		fputs(prompt, stderr);
		fflush(stderr);
		if (tcgetattr(STDIN_FILENO, &old) == 0) {
			noecho = old;
			noecho.c_lflag &= ~(tcflag_t)ECHO;
			tcsetattr(STDIN_FILENO, TCSAFLUSH, &noecho);
		} else
			tty = false;
	}
	/* Byte by byte: nothing after the line is consumed or buffered. */
	for (;;) {
		char c;
		ssize_t n = read(STDIN_FILENO, &c, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ctl_err("reading the password: %s", strerror(errno));
			ret = -1;
			break;
		}
		if (n == 0)
			break;
		if (c == '\n') {
			eol = true;
			break;
		}
		if (len + 1 >= size) {
			ctl_err("password too long (at most %d bytes)",
			    CTL_PASSWORD_MAX);
			ret = -1;
			break;
		}
		buf[len++] = c;
	}
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	if (ret == 0 && len == 0 && !eol) {
		ctl_err("no password on standard input (one line expected)");
		ret = -1;
	}
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	buf[len] = '\0';
	*len_r = len;
	return ret;
}

int
ctl_read_password(char **password_r)
{
	char buf[CTL_PASSWORD_MAX + 2], again[CTL_PASSWORD_MAX + 2];
	size_t len, len2;
	int ret = -1;

	*password_r = NULL;
	if (ctl_read_password_line("Password: ", buf, sizeof(buf), &len) < 0)
		goto out;
	if (len == 0) {
		ctl_err("empty password refused");
		goto out;
	}
	if (memchr(buf, '\0', len) != NULL) {
		ctl_err("password contains a NUL byte");
		goto out;
	}
	if (isatty(STDIN_FILENO) == 1) {
		if (ctl_read_password_line("Retype password: ", again,
		    sizeof(again), &len2) < 0)
			goto out;
		if (len2 != len || memcmp(buf, again, len) != 0) {
			ctl_err("passwords do not match");
			goto out;
		}
	}
	*password_r = xstrdup(buf);
	ret = 0;
out:
	util_wipe(buf, sizeof(buf));
	util_wipe(again, sizeof(again));
	return ret;
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
	if (store_migrate(ctl->st) < 0)
		return ctl_store_err(ctl, "init");
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

	log_init("carteiroctl", 1, LOG_LVL_WARN);
	/* The database holds password hashes. */
	umask(077);

	opterr = 0;
	/* '+': stop at the command, its own options (--selector) are its. */
	while ((c = getopt(argc, argv, "+c:h")) != -1) {
		switch (c) {
		case 'c':
			conf = optarg;
			break;
		case 'h':
			ctl_usage(stdout);
			return 0;
		default:
			if (optopt == 'c')
				ctl_err("option -c needs a file name");
			else
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

	if (cfg_load(conf, &cfg, &errors) < 0) {
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

	if (!(cmd->flags & CTL_F_INIT) && stat(cfg->store.path, &sb) < 0) {
		if (errno == ENOENT)
			ctl_err("database %s does not exist (run carteiroctl "
			    "init)", cfg->store.path);
		else
			ctl_err("database %s: %s", cfg->store.path,
			    strerror(errno));
		goto out;
	}
	if ((st = store_open(cfg->store.path, &error)) == NULL) {
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
