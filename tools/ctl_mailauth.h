/*
 * carteiroctl commands that show why a message got its mail
 * authentication verdict: dkim verify (ctl_dkim_verify.c), dmarc
 * (ctl_dmarc.c), dnsbl (ctl_dnsbl.c). Each asks [relay] resolver (else
 * /etc/resolv.conf) with blocking lookups, prints the result keyword as
 * the first word of its output and then the evidence, and returns 0 when
 * it printed a verdict, 1 (after one ctl_err line) when it could not.
 */
#ifndef CARTEIRO_CTL_MAILAUTH_H
#define CARTEIRO_CTL_MAILAUTH_H

struct ctl;
struct dns;

/* A resolver with no loop of its own (dns_new(NULL, ...)) on [relay]
 * resolver; NULL after printing "WHAT: cannot set up the resolver". */
struct dns *ctl_mailauth_dns(const struct ctl *ctl, const char *what);

/* argv: "dkim" "verify" FILE|- */
int ctl_dkim_verify(struct ctl *ctl, int argc, char **argv);
/* argv: "dmarc" FROM-DOMAIN */
int ctl_cmd_dmarc(struct ctl *ctl, int argc, char **argv);
/* argv: "dnsbl" IP */
int ctl_cmd_dnsbl(struct ctl *ctl, int argc, char **argv);

#endif
