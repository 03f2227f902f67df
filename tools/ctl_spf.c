/*
 * carteiroctl spf [--timeout MS] IP SENDER [HELO]: check_host() for a
 * client address and MAIL FROM (RFC 7208) through [relay] resolver, for
 * an admin asking why a message got its SPF verdict. The first word of
 * the output is the result; then, in the order they happened, every
 * record evaluated, the term that matched, every DNS query made, and the
 * explanation of a fail. The evaluation is mailauth/spf.c's; this file
 * only wraps its lookup and prints its trace.
 */
#include "tools/ctl.h"
#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "mailauth/dns.h"
#include "mailauth/spf.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CTL_SPF_TIMEOUT_MS	2000	/* per try; two tries */
#define CTL_SPF_TEXT_MAX	300	/* bytes of a record shown */

/* The evidence, in order; printed after the result. */
struct ctl_spf {
	struct dns *dns;
	FILE *out;		/* open_memstream */
	char *buf;
	size_t len;
};

static spf_lookup_fn ctl_spf_lookup;
static spf_trace_fn ctl_spf_trace;
static void ctl_spf_quote(FILE *fp, const char *s);

/* s as a quoted string: printable ASCII as is, the rest as \xNN. */
static void
ctl_spf_quote(FILE *fp, const char *s)
{
	size_t n = 0;

	fputc('"', fp);
	for (; *s != '\0' && n < CTL_SPF_TEXT_MAX; s++, n++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(fp, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(fp, "\\x%02x", c);
		else
			fputc(c, fp);
	}
	fputs(*s != '\0' ? "\"..." : "\"", fp);
}

/* spf_lookup_dns, and a "query" line for each question asked. */
static enum spf_dns_status
ctl_spf_lookup(void *ctx, enum spf_qtype type, const char *name,
    char ***answers_r, size_t *n_r)
{
	static const char *const types[] = {
		[SPF_Q_TXT] = "TXT", [SPF_Q_A] = "A", [SPF_Q_AAAA] = "AAAA",
		[SPF_Q_MX] = "MX", [SPF_Q_PTR] = "PTR",
	};
	struct ctl_spf *s = ctx;
	enum spf_dns_status st;

	st = spf_lookup_dns(s->dns, type, name, answers_r, n_r);
	fprintf(s->out, "query %s ", types[type]);
	ctl_spf_quote(s->out, name);
	switch (st) {
	case SPF_DNS_OK:
		fputs(" ok", s->out);
		for (size_t i = 0; i < *n_r; i++) {
			fputc(' ', s->out);
			ctl_spf_quote(s->out, (*answers_r)[i]);
		}
		break;
	case SPF_DNS_NONE:
		fputs(" none", s->out);
		break;
	case SPF_DNS_TEMPFAIL:
		fputs(" tempfail", s->out);
		break;
	}
	fputc('\n', s->out);
	return st;
}

static void
ctl_spf_trace(void *arg, enum spf_trace what, const char *domain,
    const char *text)
{
	static const char *const names[] = {
		[SPF_TRACE_RECORD] = "record", [SPF_TRACE_MATCH] = "match",
		[SPF_TRACE_EXP] = "explanation",
	};
	struct ctl_spf *s = arg;

	fprintf(s->out, "%s ", names[what]);
	ctl_spf_quote(s->out, domain);
	fputc(' ', s->out);
	ctl_spf_quote(s->out, text);
	fputc('\n', s->out);
}

int
ctl_cmd_spf(struct ctl *ctl, int argc, char **argv)
{
	const char *usage = "usage: carteiroctl -c CONF spf [--timeout MS] "
	    "IP SENDER [HELO]";
	struct ctl_spf s = { 0 };
	unsigned char tmp[16];
	const char *args[3], *error, *why = "", *at;
	char *domain = NULL, *helo = NULL, *end;
	long timeout = CTL_SPF_TIMEOUT_MS;
	int nargs = 0;
	enum spf_result r;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
			timeout = strtol(argv[++i], &end, 10);
			if (*end != '\0' || timeout < 1 || timeout > 60000) {
				ctl_err("spf: --timeout takes milliseconds "
				    "(1-60000)");
				return 1;
			}
		} else if (nargs < 3) {
			args[nargs++] = argv[i];
		} else {
			ctl_err("%s", usage);
			return 1;
		}
	}
	if (nargs < 2) {
		ctl_err("%s", usage);
		return 1;
	}
	if (inet_pton(AF_INET, args[0], tmp) != 1 &&
	    inet_pton(AF_INET6, args[0], tmp) != 1) {
		ctl_err("spf: %s is not an IP address", args[0]);
		return 1;
	}
	if (strcmp(args[1], "<>") == 0)
		args[1] = "";
	/* Without HELO: the sender's domain stands in for it. */
	at = strrchr(args[1], '@');
	helo = xstrdup(nargs > 2 ? args[2] : at != NULL ? at + 1 : "");
	if (args[1][0] == '\0' && helo[0] == '\0') {
		ctl_err("spf: an empty SENDER needs a HELO name");
		free(helo);
		return 1;
	}
	/* No loop here: the resolver runs its own for each lookup. */
	s.dns = dns_new(NULL, ctl->cfg->relay.resolver, (int)timeout, 2,
	    &error);
	if (s.dns == NULL) {
		ctl_err("spf: cannot set up the resolver: %s", error);
		free(helo);
		return 1;
	}
	s.out = open_memstream(&s.buf, &s.len);
	if (s.out == NULL)
		log_fatal("event=ctl.spf error=\"open_memstream\"");

	struct spf_request req = {
		.ip = args[0], .sender = args[1], .helo = helo,
		.receiver = ctl->cfg->server.hostname,
		.lookup = ctl_spf_lookup, .ctx = &s,
		.trace = ctl_spf_trace, .trace_arg = &s,
	};
	r = spf_check(&req, &domain, &why);
	fclose(s.out);
	printf("%s\n", spf_result_str(r));
	printf("domain ");
	ctl_spf_quote(stdout, domain);
	printf("\nwhy %s\n", why);
	fwrite(s.buf, 1, s.len, stdout);
	free(s.buf);
	free(domain);
	free(helo);
	dns_free(s.dns);
	return 0;
}
