/*
 * carteiro-webd without sockets: the Autodiscover address scan (table,
 * and the request body cut at every split point), the router's answers
 * (status, Allow, body) against a real store in a temp directory, the
 * services derived from listeners, and the stats file round trip that
 * /metrics reads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "common/config.h"
#include "common/stats.h"
#include "mailauth/dmarc.h"
#include "mailauth/spf.h"
#include "store/store.h"
#include "t.h"
#include "webd/webd.h"

static char t_dir[] = "/tmp/carteiro-webd-XXXXXX";

static void
test_autodiscover_parse(void)
{
	static const struct {
		const char *body;
		const char *want;	/* NULL: -1 */
	} cases[] = {
		{ "<EMailAddress>a@b.test</EMailAddress>", "a@b.test" },
		{ "<x:EMailAddress>\r\n a@b.test \t</x:EMailAddress>",
		  "a@b.test" },
		{ "<Request><EMailAddress>u.v+w@x.test</EMailAddress>",
		  "u.v+w@x.test" },
		{ "<EMailAddress>a@b.test", NULL },	/* never closed */
		{ "<EMailAddress></EMailAddress>", NULL },
		{ "<EMailAddress>ab.test</EMailAddress>", NULL },
		{ "<EMailAddress>@b.test</EMailAddress>", NULL },
		{ "<EMailAddress>a@</EMailAddress>", NULL },
		{ "<EMailAddress>a@b@c</EMailAddress>", NULL },
		{ "<EMailAddress>a b@c.test</EMailAddress>", NULL },
		{ "<EMailAddress>a&amp;b@c.test</EMailAddress>", NULL },
		{ "<emailaddress>a@b.test</emailaddress>", NULL },
		{ "EMailAddress>a@b.test<", NULL },	/* no '<' before */
		{ "", NULL },
	};
	char buf[256];

	t_begin("autodiscover_parse table");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = webd_autodiscover_parse(cases[i].body,
		    strlen(cases[i].body), buf, sizeof(buf));

		if (cases[i].want == NULL)
			t_assert_int(r, -1);
		else {
			t_assert_int(r, 0);
			t_assert_str(buf, cases[i].want);
		}
	}
	/* Too small an output buffer is a refusal, not a cut address. */
	t_assert_int(webd_autodiscover_parse("<EMailAddress>a@b.test<", 23,
	    buf, 8), -1);
	t_end();
}

/* A prefix of the body never yields a different address: either none,
 * or (once the closing '<' is in) the right one. */
static void
test_autodiscover_split(void)
{
	const char *body = "<?xml version=\"1.0\"?><Autodiscover><Request>"
	    "<EMailAddress>alice@example.test</EMailAddress></Request>";
	size_t len = strlen(body);
	char buf[256];

	t_begin("autodiscover_parse at every split point");
	for (size_t cut = 0; cut <= len; cut++) {
		char *copy = malloc(cut + 1);
		int r;

		memcpy(copy, body, cut);	/* not NUL-terminated for it */
		r = webd_autodiscover_parse(copy, cut, buf, sizeof(buf));
		if (r == 0)
			t_assert_str(buf, "alice@example.test");
		t_assert_int(r, cut >= (size_t)(strstr(body, "</EMail") -
		    body) + 1 ? 0 : -1);
		free(copy);
	}
	t_end();
}

static struct cfg *
test_cfg(void)
{
	char path[256], *errors = NULL;
	struct cfg *cfg = NULL;
	FILE *f;

	snprintf(path, sizeof(path), "%s/c.conf", t_dir);
	f = fopen(path, "w");
	fprintf(f, "[server]\nhostname = mail.example.test\n"
	    "[store]\npath = %s/mail.db\n"
	    "[smtpd]\nmx_listen = 127.0.0.1:25\nsubmission_listen = "
	    "127.0.0.1:587\nsubmissions_listen =\n"
	    "[pop3d]\nlisten = 127.0.0.1:110\ntls_listen =\n"
	    "[http]\nmta_sts_mx = mx2.example.test\n", t_dir);
	fclose(f);
	if (cfg_load(path, &cfg, &errors) < 0) {
		fprintf(stderr, "%s", errors);
		exit(1);
	}
	return cfg;
}

static void
test_route(const struct webd_ctx *ctx, const char *method,
    const char *path, const char *host, const char *email, const char *body,
    unsigned status, const char *allow, const char *want_body)
{
	struct webd_request q;
	struct webd_reply r;
	size_t len;

	memset(&q, 0, sizeof(q));
	memset(&r, 0, sizeof(r));
	q.method = method;
	q.path = path;
	q.host = host;
	q.emailaddress = email;
	q.body = body;
	q.body_len = body ? strlen(body) : 0;
	r.body = evbuffer_new();
	webd_route(ctx, &q, &r);
	t_assert_int(r.status, status);
	if (allow == NULL)
		t_assert(r.allow == NULL);
	else
		t_assert_str(r.allow ? r.allow : "(null)", allow);
	if (want_body != NULL) {
		len = evbuffer_get_length(r.body);
		evbuffer_add(r.body, "", 1);
		t_assert_str((char *)evbuffer_pullup(r.body, -1), want_body);
		t_assert_int(len, strlen(want_body));
	}
	evbuffer_free(r.body);
}

static void
test_router(void)
{
	struct webd_service sv[WEBD_MAX_SERVICES];
	struct webd_ctx ctx;
	struct store *st;
	const char *error = NULL;
	char db[256];

	t_begin("router");
	snprintf(db, sizeof(db), "%s/mail.db", t_dir);
	st = store_open(db, &error);
	t_assert(st != NULL);
	t_assert_int(store_migrate(st), 0);
	t_assert_int(store_domain_add(st, "example.test"), 0);
	store_close(st);
	ctx.cfg = test_cfg();
	ctx.domains = webd_domains_open(db, &error);
	t_assert(ctx.domains != NULL);

	/* Listeners that are off are left out, the order is fixed. */
	t_assert_int(webd_services(ctx.cfg, sv), 2);
	t_assert_int(sv[0].proto, WEBD_PROTO_POP3);
	t_assert_int(sv[0].sock, WEBD_SOCK_STARTTLS);
	t_assert_int(sv[0].port, 110);
	t_assert_int(sv[1].proto, WEBD_PROTO_SMTP);
	t_assert_int(sv[1].port, 587);

	test_route(&ctx, "GET", "/.well-known/mta-sts.txt",
	    "MTA-STS.Example.Test.:443", NULL, NULL, 200, NULL,
	    "version: STSv1\r\nmode: testing\r\nmx: mail.example.test\r\n"
	    "mx: mx2.example.test\r\nmax_age: 604800\r\n");
	test_route(&ctx, "GET", "/.well-known/mta-sts.txt",
	    "mta-sts.other.test", NULL, NULL, 404, NULL, "Not Found\n");
	test_route(&ctx, "GET", "/.well-known/mta-sts.txt", NULL, NULL, NULL,
	    404, NULL, NULL);
	test_route(&ctx, "PUT", "/.well-known/mta-sts.txt",
	    "mta-sts.example.test", NULL, NULL, 405, "GET, POST", NULL);
	test_route(&ctx, "POST", "/.well-known/mta-sts.txt",
	    "mta-sts.example.test", NULL, "", 405, "GET", NULL);
	test_route(&ctx, "GET", "/autodiscover/autodiscover.xml",
	    "example.test", NULL, NULL, 405, "POST", NULL);
	test_route(&ctx, "GET", "/mail/../x", "example.test", NULL, NULL,
	    400, NULL, "Bad Request\n");
	test_route(&ctx, "GET", "relative", "example.test", NULL, NULL,
	    400, NULL, NULL);
	test_route(&ctx, "GET", "/nothing", "example.test", NULL, NULL,
	    404, NULL, NULL);
	test_route(&ctx, "GET", "/mail/config-v1.1.xml",
	    "autoconfig.example.test", NULL, NULL, 200, NULL, NULL);
	test_route(&ctx, "GET", "/mail/config-v1.1.xml",
	    "autoconfig.example.test", "x@other.test", NULL, 404, NULL, NULL);
	test_route(&ctx, "GET", "/mail/config-v1.1.xml", "autoconfig.bad_",
	    "x@Example.Test", NULL, 200, NULL, NULL);
	test_route(&ctx, "GET", "/mail/config-v1.1.xml", "a b", NULL, NULL,
	    404, NULL, NULL);
	test_route(&ctx, "POST", "/AUTODISCOVER/autodiscover.xml", "x",
	    NULL, "<EMailAddress>a@example.test</EMailAddress>", 200, NULL,
	    NULL);
	test_route(&ctx, "POST", "/autodiscover/autodiscover.xml", "x",
	    NULL, "<EMailAddress>a@other.test</EMailAddress>", 404, NULL,
	    NULL);
	/* No peer address: /metrics is nobody's. */
	test_route(&ctx, "GET", "/metrics", "x", NULL, NULL, 403, NULL,
	    "Forbidden\n");

	/* ACME HTTP-01 (issue 15): the key authorization that carteiroctl
	 * acme wrote to acme/challenges/TOKEN beside the store, any Host. */
	{
		char dir[300], file[350];
		FILE *f;

		snprintf(dir, sizeof(dir), "%s/acme", t_dir);
		t_assert(mkdir(dir, 0755) == 0);
		snprintf(dir, sizeof(dir), "%s/acme/challenges", t_dir);
		t_assert(mkdir(dir, 0755) == 0);
		snprintf(file, sizeof(file), "%s/tok-1_A", dir);
		f = fopen(file, "w");
		fputs("tok-1_A.thumbprint", f);
		fclose(f);
	}
	test_route(&ctx, "GET", "/.well-known/acme-challenge/tok-1_A",
	    "mail.example.test", NULL, NULL, 200, NULL, "tok-1_A.thumbprint");
	test_route(&ctx, "GET", "/.well-known/acme-challenge/tok-2",
	    "mail.example.test", NULL, NULL, 404, NULL, "Not Found\n");
	test_route(&ctx, "GET", "/.well-known/acme-challenge/", "x", NULL,
	    NULL, 404, NULL, NULL);
	test_route(&ctx, "GET", "/.well-known/acme-challenge/a/tok-1_A", "x",
	    NULL, NULL, 404, NULL, NULL);
	test_route(&ctx, "POST", "/.well-known/acme-challenge/tok-1_A", "x",
	    NULL, "", 405, "GET", NULL);

	webd_domains_close(ctx.domains);
	cfg_free((struct cfg *)ctx.cfg);
	t_end();
}

static void
test_stats_file(void)
{
	uint64_t v[STATS_COUNT];
	const char *error = NULL;
	char db[256], path[300];
	struct stat sb;

	t_begin("stats file round trip");
	snprintf(db, sizeof(db), "%s/mail.db", t_dir);
	memset(v, 0, sizeof(v));
	t_assert_int(stats_read(db, "pop3d", v), 1);	/* none yet */
	stats_inc(STATS_POP3_RETR);			/* not open: no-op */
	t_assert_int(stats_open(db, "pop3d", &error), 0);
	stats_inc(STATS_POP3_RETR);
	stats_add(STATS_POP3_DELETED, 5);
	t_assert_int(stats_read(db, "pop3d", v), 0);
	t_assert_int(stats_read(db, "pop3d", v), 0);	/* adds up */
	t_assert_int(v[STATS_POP3_RETR], 2);
	t_assert_int(v[STATS_POP3_DELETED], 10);
	t_assert_int(v[STATS_SMTP_ACCEPTED], 0);
	/* Every SPF and DMARC result word has its row. */
	for (int r = 0; r < SPF_RESULT_COUNT; r++)
		stats_inc_word(STATS_SPF_NONE, STATS_SPF_PERMERROR,
		    spf_result_str((enum spf_result)r));
	for (int r = 0; r < DMARC_RESULT_COUNT; r++)
		stats_inc_word(STATS_DMARC_NONE, STATS_DMARC_PERMERROR,
		    dmarc_result_str((enum dmarc_result)r));
	stats_inc_word(STATS_DKIM_NONE, STATS_DKIM_PERMERROR, "neutral");
	stats_inc_word(STATS_DKIM_NONE, STATS_DKIM_PERMERROR, "nonsense");
	stats_inc_word(STATS_DKIM_NONE, STATS_DKIM_PERMERROR, "pas");
	stats_inc_word(STATS_POP3_TLS_13, STATS_POP3_TLS_OTHER, "TLSv1.3");
	stats_inc_word(STATS_POP3_TLS_13, STATS_POP3_TLS_OTHER, "SSL3.0");
	stats_inc_word(STATS_POP3_TLS_13, STATS_POP3_TLS_OTHER, NULL);
	memset(v, 0, sizeof(v));
	t_assert_int(stats_read(db, "pop3d", v), 0);
	for (int i = STATS_SPF_NONE; i <= STATS_SPF_PERMERROR; i++)
		t_assert_int(v[i], 1);
	for (int i = STATS_DMARC_NONE; i <= STATS_DMARC_PERMERROR; i++)
		t_assert_int(v[i], 1);
	for (int i = STATS_DKIM_NONE; i <= STATS_DKIM_PERMERROR; i++)
		t_assert_int(v[i], i == STATS_DKIM_NEUTRAL);
	t_assert_int(v[STATS_POP3_TLS_13], 1);
	t_assert_int(v[STATS_POP3_TLS_12], 0);
	t_assert_int(v[STATS_POP3_TLS_OTHER], 2);
	stats_close();
	/* A restart never shrinks the file (a reader or another daemon may
	 * have it mapped: SIGBUS past its end), and starts from zero. */
	snprintf(path, sizeof(path), "%s/carteiro-pop3d.stats", t_dir);
	t_assert(truncate(path, 65536) == 0);
	t_assert_int(stats_open(db, "pop3d", &error), 0);
	t_assert(stat(path, &sb) == 0 && sb.st_size == 65536);
	memset(v, 0, sizeof(v));
	t_assert_int(stats_read(db, "pop3d", v), 0);
	t_assert_int(v[STATS_POP3_RETR], 0);
	t_assert_int(v[STATS_POP3_TLS_OTHER], 0);
	stats_inc(STATS_POP3_RETR);
	t_assert_int(stats_read(db, "pop3d", v), 0);
	t_assert_int(v[STATS_POP3_RETR], 1);
	stats_close();
	/* Each row has a name; the first row of a name has the help. */
	for (size_t i = 0; i < STATS_COUNT; i++) {
		const struct stats_def *d = stats_def((enum stats_id)i);

		t_assert(d->name != NULL && d->labels != NULL);
		t_assert((d->help != NULL) == (i == 0 ||
		    strcmp(stats_def((enum stats_id)(i - 1))->name,
		    d->name) != 0));
	}
	t_end();
}

int
main(void)
{
	char cmd[300];

	if (mkdtemp(t_dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_autodiscover_parse();
	test_autodiscover_split();
	test_router();
	test_stats_file();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", t_dir);
	if (system(cmd) != 0)
		return 1;
	return t_exit();
}
