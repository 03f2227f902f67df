/*
 * carteiroctl internals shared by its command-group files. carteiroctl.c
 * owns main(), argument dispatch and the init/domain/user/alias/mailbox
 * groups; ctl_queue.c, ctl_dkim.c and ctl_check.c own theirs.
 */
#ifndef CARTEIRO_CTL_H
#define CARTEIRO_CTL_H

struct cfg;
struct store;

struct ctl {
	const struct cfg *cfg;
	struct store *st;	/* open, schema checked */
};

/* Print "carteiroctl: <message>" on stderr (one line). */
void ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A command that changed something says what it did: one line on stdout
 * ("added domain example.test"), control characters as spaces. */
void ctl_done(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Each returns the process exit status (0 ok, 1 user error). argv[0] is
 * the group name ("queue"), argv[1] the sub-command. */
int ctl_cmd_queue(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_dkim(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_check(struct ctl *ctl, int argc, char **argv);
/* tools/ctl_spf.c */
int ctl_cmd_spf(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_acme(struct ctl *ctl, int argc, char **argv);
/* check DOMAIN, the client side (ctl_check_client.c): autoconfig, RFC 6186
 * SRV, MTA-STS, TLS-RPT; adds to the FAIL and WARN counts. */
struct dns;
void ctl_check_client(const struct ctl *ctl, struct dns *dns,
    const char *domain, unsigned *fails, unsigned *warns);

#endif
