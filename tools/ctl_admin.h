/*
 * carteiroctl internals for the groups carteiroctl.c dispatches by
 * sub-command (domain in carteiroctl.c, user/alias in ctl_user.c, mailbox
 * in ctl_mailbox.c) and the helpers they share. Each ctl_* command gets
 * argv[0] = group, argv[1] = sub-command, argv[2...] = its arguments (count
 * already checked) and returns the exit status (0, or 1 after exactly one
 * ctl_err line).
 */
#ifndef CARTEIRO_CTL_ADMIN_H
#define CARTEIRO_CTL_ADMIN_H

#include <stddef.h>

struct ctl;

/* A growable list of strings (for sorted output); owns its strings. */
struct ctl_strv {
	char **v;
	size_t n, cap;
};
/* Takes ownership of s. */
void ctl_strv_add(struct ctl_strv *sv, char *s);
/* Sorts (strcmp) and prints one per line on stdout. */
void ctl_strv_print_sorted(struct ctl_strv *sv);
void ctl_strv_free(struct ctl_strv *sv);
/* store_str_cb that adds a copy of s to the struct ctl_strv at arg. */
void ctl_collect_cb(const char *s, void *arg);

/* Print the store's last error as "what: ..." (one line); returns 1. */
int ctl_store_err(struct ctl *ctl, const char *what);
/* A copy of s with control characters as spaces. Caller frees. */
char *ctl_oneline(const char *s);
/* Normalise a command-line domain / address / alias source ("@domain"
 * allowed); on error print it and return -1. Caller frees *out_r. */
int ctl_domain_arg(const char *in, char **out_r);
int ctl_address_arg(const char *in, char **out_r);
int ctl_source_arg(const char *in, char **out_r);
/* 0 if domain is local; else print why and return -1. */
int ctl_require_local(struct ctl *ctl, const char *domain);
/* ctl_password.c: one password line from stdin (asked twice without echo on a terminal);
 * empty refused. 0 and *password_r (free with auth_wipe_free) or -1
 * (printed). */
int ctl_read_password(char **password_r);

/* ctl_user.c */
int ctl_user_add(struct ctl *ctl, int argc, char **argv);
int ctl_user_passwd(struct ctl *ctl, int argc, char **argv);
int ctl_user_del(struct ctl *ctl, int argc, char **argv);
int ctl_user_list(struct ctl *ctl, int argc, char **argv);
int ctl_user_show(struct ctl *ctl, int argc, char **argv);
int ctl_user_quota(struct ctl *ctl, int argc, char **argv);
int ctl_user_disable(struct ctl *ctl, int argc, char **argv);
int ctl_user_enable(struct ctl *ctl, int argc, char **argv);
int ctl_user_set(struct ctl *ctl, int argc, char **argv);
int ctl_alias_add(struct ctl *ctl, int argc, char **argv);
int ctl_alias_del(struct ctl *ctl, int argc, char **argv);
int ctl_alias_list(struct ctl *ctl, int argc, char **argv);

/* ctl_mailbox.c */
int ctl_mailbox_list(struct ctl *ctl, int argc, char **argv);

/* ctl_backup.c, ctl_verify.c */
int ctl_backup(struct ctl *ctl, int argc, char **argv);
int ctl_restore(struct ctl *ctl, int argc, char **argv);
int ctl_verify(struct ctl *ctl, int argc, char **argv);

/* ctl_suppress.c */
int ctl_suppress_list(struct ctl *ctl, int argc, char **argv);
int ctl_suppress_add(struct ctl *ctl, int argc, char **argv);
int ctl_suppress_del(struct ctl *ctl, int argc, char **argv);

/* ctl_domain_source.c */
int ctl_domain_set(struct ctl *ctl, int argc, char **argv);

/* ctl_store.c */
int ctl_store_copy(struct ctl *ctl, int argc, char **argv);

#endif
