/*
 * carteiroctl dkim verify FILE|-: every DKIM-Signature of a message
 * checked as the daemon checks it (mailauth/dkim.h, keys from the DNS),
 * one line per signature, topmost first. The first line is the verdict
 * the daemon would write in its summary: pass when some signature passes,
 * else the topmost signature's result, none without signatures. The
 * message is streamed, never held whole.
 */
#include "tools/ctl.h"
#include "tools/ctl_admin.h"
#include "tools/ctl_mailauth.h"
#include "mailauth/dkim.h"
#include "mailauth/dns.h"
#include "common/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Signatures checked at most, as in the daemon (smtpd/inbound.c). */
#define CTL_DKIM_MAX_SIGS	8

static const char *ctl_dkim_token(const char *s, char *buf, size_t size);

/* A tag value from the message as one printable word ("-" if absent). */
static const char *
ctl_dkim_token(const char *s, char *buf, size_t size)
{
	size_t o = 0;

	if (s == NULL)
		return "-";
	for (; *s != '\0' && o + 1 < size; s++)
		buf[o++] = (unsigned char)*s > ' ' &&
		    (unsigned char)*s < 0x7f ? *s : '?';
	buf[o] = '\0';
	return o > 0 ? buf : "-";
}

int
ctl_dkim_verify(struct ctl *ctl, int argc, char **argv)
{
	const char *words[CTL_DKIM_MAX_SIGS], *whys[CTL_DKIM_MAX_SIGS];
	const char *verdict = "none";
	struct dkim_msg *m;
	struct dns *d = NULL;
	char buf[64 * 1024];
	size_t n, nsig;
	FILE *fp;
	int ret = 1;

	if (argc != 3) {
		ctl_err("usage: dkim verify FILE|-");
		return 1;
	}
	fp = strcmp(argv[2], "-") == 0 ? stdin : fopen(argv[2], "rb");
	if (fp == NULL) {
		ctl_err("dkim verify: %s: %s", argv[2], strerror(errno));
		return 1;
	}
	m = dkim_msg_new();
	while ((n = fread(buf, 1, sizeof(buf), fp)) > 0)
		dkim_msg_update(m, buf, n);
	if (ferror(fp)) {
		ctl_err("dkim verify: reading %s: %s", argv[2],
		    strerror(errno));
		goto out;
	}
	nsig = dkim_msg_signature_count(m);
	if (nsig > CTL_DKIM_MAX_SIGS)
		nsig = CTL_DKIM_MAX_SIGS;
	if (nsig > 0 && (d = ctl_mailauth_dns(ctl, "dkim verify")) == NULL)
		goto out;
	for (size_t i = 0; i < nsig; i++) {
		const char *sd, *ss;
		char **txt = NULL, *name;
		size_t ntxt = 0;
		enum dns_status st;

		if (dkim_msg_signature_ids(m, i, &sd, &ss) < 0) {
			words[i] = "neutral";
			whys[i] = "signature syntax error";
			continue;
		}
		/* RFC 6376 3.6.2.1: the key at s._domainkey.d */
		name = xasprintf("%s._domainkey.%s", ss, sd);
		st = dns_lookup_sync(d, DNS_T_TXT, name, &txt, &ntxt);
		free(name);
		if (st == DNS_TEMPFAIL) {
			words[i] = "temperror";
			whys[i] = "key lookup failed";
		} else if (st != DNS_OK) {
			words[i] = "permerror";
			whys[i] = "no key for signature";
		} else {
			enum dkim_result r = dkim_verify_records(m, i,
			    (const char *const *)txt, ntxt, &whys[i]);
			words[i] = dkim_result_str(r);
		}
		dns_rr_free(txt, ntxt);
		if (i == 0 || strcmp(words[i], "pass") == 0)
			verdict = words[i];
	}
	printf("%s signatures=%zu\n", verdict, dkim_msg_signature_count(m));
	for (size_t i = 0; i < nsig; i++) {
		const char *sd, *ss, *sa;
		char t1[256], t2[256], t3[64];

		dkim_msg_signature_info(m, i, &sd, &ss, &sa);
		printf("%s d=%s s=%s a=%s (%s)\n", words[i],
		    ctl_dkim_token(sd, t1, sizeof(t1)),
		    ctl_dkim_token(ss, t2, sizeof(t2)),
		    ctl_dkim_token(sa, t3, sizeof(t3)), whys[i]);
	}
	if (dkim_msg_signature_count(m) > nsig)
		printf("not checked: %zu more signatures (at most %d are)\n",
		    dkim_msg_signature_count(m) - nsig, CTL_DKIM_MAX_SIGS);
	ret = 0;
out:
	if (fp != stdin)
		fclose(fp);
	dkim_msg_free(m);
	if (d != NULL)
		dns_free(d);
	return ret;
}
