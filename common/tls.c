/*
 * TLS on GnuTLS: server and client contexts, sessions over a non-blocking
 * fd, and a self-signed certificate writer for dev setups and tests. With
 * tls_ticket.c and tls_dane.c the only files including <gnutls/gnutls.h>
 * (tls_dane.c through tls_int.h). It never touches the event loop: conn.c
 * calls in here and waits for the direction we report.
 */
#include "common/tls.h"
#include "common/tls_int.h"
#include "common/tls_ticket.h"
#include "common/log.h"
#include "common/util.h"

#include <assert.h>
#include <stdbool.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <gnutls/x509.h>

static struct tls_ctx *tls_ctx_alloc(int, const char **);
static __thread char tls_errbuf[512];
static int tls_initialised;

static const char *tls_err(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static int tls_check_file_secrecy(const char *file, const char **error_r);
static struct tls_cred *tls_cred_server_load(const char *, const char *,
    const char **);
static void tls_cred_unref(struct tls_cred *cr);
static int tls_session_again(struct tls_session *s);
static void tls_session_set_error(struct tls_session *, const char *, int);
static void tls_session_set_hs_error(struct tls_session *s, int ret);
static bool tls_session_sent_certificate(struct tls_session *s);
static int tls_write_file(const char *path, mode_t mode,
    const gnutls_datum_t *d, const char **error_r);

static const char *
tls_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tls_errbuf, sizeof(tls_errbuf), fmt, ap);
	va_end(ap);
	return tls_errbuf;
}

int
tls_init(void)
{
	int ret;

	if (tls_initialised)
		return 0;
	if ((ret = gnutls_global_init()) < 0) {
		log_error("event=tls.init error=\"%s\"", gnutls_strerror(ret));
		return -1;
	}
	tls_initialised = 1;
	return 0;
}

/* OpenSMTPD check_file_secrecy: a private key must be a regular file
 * owned by root or by us, and not accessible to group or others. */
static int
tls_check_file_secrecy(const char *file, const char **error_r)
{
	struct stat st;

	if (stat(file, &st) == -1) {
		*error_r = tls_err("%s: %s", file, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		*error_r = tls_err("%s: not a regular file", file);
		return -1;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		*error_r = tls_err("%s: owned by uid %u, must be owned by "
		    "root or uid %u", file, (unsigned)st.st_uid,
		    (unsigned)geteuid());
		return -1;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		*error_r = tls_err("%s: key file is accessible by group or "
		    "others (mode %03o), refusing it: chmod 600 %s", file,
		    (unsigned)(st.st_mode & 0777), file);
		return -1;
	}
	return 0;
}

static struct tls_cred *
tls_cred_server_load(const char *cert_file, const char *key_file,
    const char **error_r)
{
	struct tls_cred *cr;
	int ret;

	if (tls_check_file_secrecy(key_file, error_r) == -1)
		return NULL;
	cr = xcalloc(1, sizeof(*cr));
	if ((ret = gnutls_certificate_allocate_credentials(&cr->cred)) < 0) {
		*error_r = tls_err("allocate credentials: %s",
		    gnutls_strerror(ret));
		free(cr);
		return NULL;
	}
	ret = gnutls_certificate_set_x509_key_file2(cr->cred, cert_file,
	    key_file, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (ret < 0) {
		*error_r = tls_err("load %s / %s: %s", cert_file, key_file,
		    gnutls_strerror(ret));
		gnutls_certificate_free_credentials(cr->cred);
		free(cr);
		return NULL;
	}
	/* RFC 7919 groups for the DHE suites NORMAL still offers. */
	gnutls_certificate_set_known_dh_params(cr->cred,
	    GNUTLS_SEC_PARAM_MEDIUM);
	cr->refs = 1;
	return cr;
}

static void
tls_cred_unref(struct tls_cred *cr)
{
	if (cr == NULL)
		return;
	assert(cr->refs > 0);
	if (--cr->refs > 0)
		return;
	gnutls_certificate_free_credentials(cr->cred);
	free(cr);
}

/* A context with GnuTLS started; NULL (and *error_r) if it cannot be. */
static struct tls_ctx *
tls_ctx_alloc(int is_server, const char **error_r)
{
	struct tls_ctx *ctx;

	if (tls_init() == -1) {
		*error_r = "gnutls_global_init failed";
		return NULL;
	}
	ctx = xcalloc(1, sizeof(*ctx));
	ctx->is_server = is_server;
	return ctx;
}

struct tls_ctx *
tls_ctx_server_new(const char *cert_file, const char *key_file,
    const char **error_r)
{
	struct tls_ctx *ctx;
	const char *errpos = NULL;
	int ret;

	if ((ctx = tls_ctx_alloc(1, error_r)) == NULL)
		return NULL;
	ctx->cert_file = xstrdup(cert_file);
	ctx->key_file = xstrdup(key_file);
	if ((ctx->cred = tls_cred_server_load(cert_file, key_file,
	    error_r)) == NULL) {
		tls_ctx_free(ctx);
		return NULL;
	}
	ret = gnutls_priority_init(&ctx->prio, "NORMAL:%SERVER_PRECEDENCE",
	    &errpos);
	if (ret < 0) {
		*error_r = tls_err("priority: %s", gnutls_strerror(ret));
		tls_ctx_free(ctx);
		return NULL;
	}
	return ctx;
}

int
tls_ctx_reload(struct tls_ctx *ctx, const char **error_r)
{
	struct tls_cred *cr;

	if (!ctx->is_server)
		return 0;
	if ((cr = tls_cred_server_load(ctx->cert_file, ctx->key_file,
	    error_r)) == NULL)
		return -1;
	tls_cred_unref(ctx->cred);
	ctx->cred = cr;
	return 0;
}

struct tls_ctx *
tls_ctx_client_new(const char *cafile, const char **error_r)
{
	struct tls_ctx *ctx;
	const char *errpos = NULL;
	int ret;

	if ((ctx = tls_ctx_alloc(0, error_r)) == NULL)
		return NULL;
	ctx->ca_file = cafile ? xstrdup(cafile) : NULL;
	ctx->cred = xcalloc(1, sizeof(*ctx->cred));
	ctx->cred->refs = 1;
	if ((ret = gnutls_certificate_allocate_credentials(
	    &ctx->cred->cred)) < 0) {
		*error_r = tls_err("allocate credentials: %s",
		    gnutls_strerror(ret));
		free(ctx->cred);
		ctx->cred = NULL;
		tls_ctx_free(ctx);
		return NULL;
	}
	if (cafile != NULL)
		ret = gnutls_certificate_set_x509_trust_file(ctx->cred->cred,
		    cafile, GNUTLS_X509_FMT_PEM);
	else
		ret = gnutls_certificate_set_x509_system_trust(
		    ctx->cred->cred);
	if (ret < 0) {
		/* Opportunistic TLS still works without anchors; we just
		 * never report a peer as verified. */
		log_warn("event=tls.trust cafile=%s error=\"%s\"",
		    cafile ? cafile : "system", gnutls_strerror(ret));
	}
	ret = gnutls_priority_init(&ctx->prio, "NORMAL", &errpos);
	if (ret < 0) {
		*error_r = tls_err("priority: %s", gnutls_strerror(ret));
		tls_ctx_free(ctx);
		return NULL;
	}
	return ctx;
}

void
tls_ctx_free(struct tls_ctx *ctx)
{
	if (ctx == NULL)
		return;
	tls_cred_unref(ctx->cred);
	if (ctx->prio != NULL)
		gnutls_priority_deinit(ctx->prio);
	free(ctx->cert_file);
	free(ctx->key_file);
	free(ctx->ca_file);
	free(ctx);
}

struct tls_session *
tls_session_new(struct tls_ctx *ctx, int fd, int is_server,
    const char *server_name)
{
	struct tls_session *s;
	unsigned flags;
	int ret;

	s = xcalloc(1, sizeof(*s));
	s->is_server = is_server;
	flags = (is_server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
	    GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL;
	if ((ret = gnutls_init(&s->gs, flags)) < 0) {
		log_error("event=tls.session error=\"%s\"",
		    gnutls_strerror(ret));
		free(s);
		return NULL;
	}
	if ((ret = gnutls_priority_set(s->gs, ctx->prio)) < 0 ||
	    (ret = gnutls_credentials_set(s->gs, GNUTLS_CRD_CERTIFICATE,
	    ctx->cred->cred)) < 0) {
		log_error("event=tls.session error=\"%s\"",
		    gnutls_strerror(ret));
		gnutls_deinit(s->gs);
		free(s);
		return NULL;
	}
	s->cred = ctx->cred;
	s->cred->refs++;
	if (is_server)
		tls_ticket_enable(s->gs);
	if (!is_server && server_name != NULL && *server_name != '\0') {
		unsigned char buf[sizeof(struct in6_addr)];

		s->server_name = xstrdup(server_name);
		/* RFC 6066 3: literal IP addresses are not sent as SNI. */
		if (inet_pton(AF_INET, server_name, buf) != 1 &&
		    inet_pton(AF_INET6, server_name, buf) != 1)
			gnutls_server_name_set(s->gs, GNUTLS_NAME_DNS,
			    server_name, strlen(server_name));
	}
	gnutls_transport_set_int(s->gs, fd);
	return s;
}

void
tls_session_free(struct tls_session *s)
{
	if (s == NULL)
		return;
	if (s->pkt != NULL) {
		gnutls_datum_t d;

		gnutls_packet_get(s->pkt, &d, NULL);
		util_wipe(d.data, d.size);
		gnutls_packet_deinit(s->pkt);
	}
	gnutls_deinit(s->gs);
	tls_cred_unref(s->cred);
	free(s->server_name);
	free(s);
}

/* After GNUTLS_E_AGAIN: which way the blocked operation was going. */
static int
tls_session_again(struct tls_session *s)
{
	return gnutls_record_get_direction(s->gs) ? TLS_IO_WANT_WRITE :
	    TLS_IO_WANT_READ;
}

static void
tls_session_set_error(struct tls_session *s, const char *what, int ret)
{
	const char *alert = "";
	int saved = errno;

	if (ret == GNUTLS_E_FATAL_ALERT_RECEIVED ||
	    ret == GNUTLS_E_WARNING_ALERT_RECEIVED) {
		const char *name = gnutls_alert_get_name(
		    gnutls_alert_get(s->gs));
		if (name != NULL)
			alert = name;
	}
	if ((ret == GNUTLS_E_PULL_ERROR || ret == GNUTLS_E_PUSH_ERROR) &&
	    saved != 0) {
		/* The socket failed under TLS: say how, as conn.c does for
		 * a plain socket. */
		snprintf(s->error, sizeof(s->error), "%s: %s", what,
		    strerror(saved));
		s->reason = TLS_REASON_IO;
		return;
	}
	snprintf(s->error, sizeof(s->error), "%s: %s%s%s", what,
	    gnutls_strerror(ret), *alert ? ": " : "", alert);
	s->reason = TLS_REASON_TLS;
}

/* In TLS 1.3 our certificate goes out in the first flight (ending in
 * Finished, then at once the session tickets); in TLS 1.2 before
 * ServerHelloDone. A client giving up after that has seen our certificate. */
static bool
tls_session_sent_certificate(struct tls_session *s)
{
	switch (gnutls_handshake_get_last_out(s->gs)) {
	case GNUTLS_HANDSHAKE_CERTIFICATE_PKT:
	case GNUTLS_HANDSHAKE_CERTIFICATE_VERIFY:
	case GNUTLS_HANDSHAKE_SERVER_KEY_EXCHANGE:
	case GNUTLS_HANDSHAKE_SERVER_HELLO_DONE:
	case GNUTLS_HANDSHAKE_FINISHED:
	case GNUTLS_HANDSHAKE_NEW_SESSION_TICKET:
		return true;
	default:
		return false;
	}
}

/*
 * A failed handshake, in words an operator can act on. GnuTLS's own text
 * reads like a server fault: when a client refuses our certificate it
 * usually just hangs up, or (TLS 1.3, OpenSSL) sends its alert in
 * plaintext where GnuTLS expects a protected record, which GnuTLS
 * reports as "Decryption has failed.". Errors we cannot put in words keep
 * the library's text. Client sessions (the relay) keep it too: the fault
 * there is on the remote side.
 */
static void
tls_session_set_hs_error(struct tls_session *s, int ret)
{
	const char *words = NULL;
	int alert = -1;

	tls_session_set_error(s, "handshake", ret);
	s->reason = TLS_REASON_HANDSHAKE;
	if (!s->is_server)
		return;
	if (ret == GNUTLS_E_FATAL_ALERT_RECEIVED)
		alert = (int)gnutls_alert_get(s->gs);
	switch (alert) {
	case GNUTLS_A_BAD_CERTIFICATE:
	case GNUTLS_A_UNSUPPORTED_CERTIFICATE:
	case GNUTLS_A_CERTIFICATE_REVOKED:
	case GNUTLS_A_CERTIFICATE_EXPIRED:
	case GNUTLS_A_CERTIFICATE_UNKNOWN:
	case GNUTLS_A_UNKNOWN_CA:
		words = "client rejected our certificate";
		break;
	case GNUTLS_A_PROTOCOL_VERSION:
	case GNUTLS_A_HANDSHAKE_FAILURE:
	case GNUTLS_A_INSUFFICIENT_SECURITY:
		words = "client shares no TLS version or cipher with us";
		break;
	case -1:
		break;
	default:
		words = "client aborted the handshake";
		break;
	}
	if (words == NULL) {
		switch (ret) {
		case GNUTLS_E_DECRYPTION_FAILED:
		case GNUTLS_E_PREMATURE_TERMINATION:
		case GNUTLS_E_PULL_ERROR:
		case GNUTLS_E_UNEXPECTED_PACKET:
		case GNUTLS_E_UNEXPECTED_PACKET_LENGTH:
			if (tls_session_sent_certificate(s))
				words = "client closed the handshake (it "
				    "probably does not trust our "
				    "certificate)";
			else if (ret == GNUTLS_E_PREMATURE_TERMINATION ||
			    ret == GNUTLS_E_PULL_ERROR)
				words = "client closed the connection before "
				    "the handshake";
			else
				words = "client did not start a TLS handshake "
				    "(plaintext on a TLS port?)";
			break;
		case GNUTLS_E_UNSUPPORTED_VERSION_PACKET:
		case GNUTLS_E_RECORD_OVERFLOW:
			words = "client did not start a TLS handshake "
			    "(plaintext on a TLS port?)";
			break;
		case GNUTLS_E_NO_CIPHER_SUITES:
		case GNUTLS_E_INSUFFICIENT_SECURITY:
		case GNUTLS_E_NO_COMMON_KEY_SHARE:
		case GNUTLS_E_UNSUPPORTED_SIGNATURE_ALGORITHM:
			words = "client shares no TLS version or cipher with us";
			break;
		default:
			/* Not a client's doing we know of: the library's
			 * text, as set above. */
			return;
		}
	}
	if (alert >= 0 && gnutls_alert_get_name((gnutls_alert_description_t)
	    alert) != NULL)
		snprintf(s->error, sizeof(s->error), "%s (alert: %s)", words,
		    gnutls_alert_get_name((gnutls_alert_description_t)alert));
	else
		util_strlcpy(s->error, words, sizeof(s->error));
}

int
tls_session_handshake(struct tls_session *s)
{
	unsigned status;
	int ret;

	for (;;) {
		ret = gnutls_handshake(s->gs);
		if (ret == 0)
			break;
		if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED)
			return tls_session_again(s);
		if (gnutls_error_is_fatal(ret)) {
			tls_session_set_hs_error(s, ret);
			return TLS_IO_ERROR;
		}
		/* Non-fatal (a warning alert, ...): call again. */
	}
	if (!s->is_server) {
		status = 0;
		ret = gnutls_certificate_verify_peers3(s->gs, s->server_name,
		    &status);
		s->verified = ret == 0 && status == 0;
	}
	return TLS_IO_OK;
}

/*
 * Records are taken whole (gnutls_record_recv_packet) so that the
 * plaintext GnuTLS decrypted into its own buffer can be wiped once copied
 * out: it may hold a password (AUTH, PASS), and gnutls_record_recv would
 * free that buffer as it is.
 */
ssize_t
tls_session_read(struct tls_session *s, void *buf, size_t len)
{
	gnutls_datum_t d;
	ssize_t ret;
	size_t n;

	assert(len > 0);
	for (;;) {
		if (s->pkt != NULL) {
			/* A packet is held only while bytes of it are left. */
			gnutls_packet_get(s->pkt, &d, NULL);
			n = d.size - s->pkt_off < len ? d.size - s->pkt_off :
			    len;
			memcpy(buf, d.data + s->pkt_off, n);
			util_wipe(d.data + s->pkt_off, n);
			s->pkt_off += n;
			if (s->pkt_off == d.size) {
				gnutls_packet_deinit(s->pkt);
				s->pkt = NULL;
			}
			return (ssize_t)n;
		}
		ret = gnutls_record_recv_packet(s->gs, &s->pkt);
		if (ret > 0) {
			s->pkt_off = 0;
			continue;
		}
		if (s->pkt != NULL) {
			gnutls_packet_deinit(s->pkt);
			s->pkt = NULL;
		}
		if (ret == 0)
			return TLS_IO_EOF;
		if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED)
			return tls_session_again(s);
		/* Most SMTP/POP3 clients just close the socket; that is an
		 * end of stream, not an error worth an alarm. */
		if (ret == GNUTLS_E_PREMATURE_TERMINATION)
			return TLS_IO_EOF;
		if (ret == GNUTLS_E_REHANDSHAKE && s->is_server)
			continue;
		if (ret == GNUTLS_E_REHANDSHAKE) {
			/* We never renegotiate as a client. */
			gnutls_alert_send(s->gs, GNUTLS_AL_WARNING,
			    GNUTLS_A_NO_RENEGOTIATION);
			continue;
		}
		if (gnutls_error_is_fatal((int)ret)) {
			tls_session_set_error(s, "read", (int)ret);
			return TLS_IO_ERROR;
		}
	}
}

ssize_t
tls_session_write(struct tls_session *s, const void *buf, size_t len)
{
	ssize_t ret;

	for (;;) {
		ret = gnutls_record_send(s->gs, buf, len);
		if (ret > 0)
			return ret;
		if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED)
			return tls_session_again(s);
		if (ret == 0 || gnutls_error_is_fatal((int)ret)) {
			tls_session_set_error(s, "write", ret == 0 ?
			    GNUTLS_E_INTERNAL_ERROR : (int)ret);
			return TLS_IO_ERROR;
		}
	}
}

size_t
tls_session_pending(struct tls_session *s)
{
	gnutls_datum_t d;
	size_t held = 0;

	if (s->pkt != NULL) {
		gnutls_packet_get(s->pkt, &d, NULL);
		held = d.size - s->pkt_off;
	}
	return gnutls_record_check_pending(s->gs) + held;
}

void
tls_session_bye(struct tls_session *s)
{
	/* Best effort: GNUTLS_E_AGAIN just means the alert is not sent. */
	(void)gnutls_bye(s->gs, GNUTLS_SHUT_WR);
}

const char *
tls_session_version(struct tls_session *s)
{
	const char *v;

	if (s->version[0] == '\0') {
		v = gnutls_protocol_get_name(
		    gnutls_protocol_get_version(s->gs));
		if (v == NULL)
			return "unknown";
		/* GnuTLS says "TLS1.3"; logs and Received: want "TLSv1.3". */
		if (strncmp(v, "TLS", 3) == 0 && v[3] >= '0' && v[3] <= '9')
			snprintf(s->version, sizeof(s->version), "TLSv%s",
			    v + 3);
		else
			util_strlcpy(s->version, v, sizeof(s->version));
	}
	return s->version;
}

const char *
tls_session_cipher(struct tls_session *s)
{
	const char *c;

	if (s->cipher[0] == '\0') {
		c = gnutls_ciphersuite_get(s->gs);
		if (c == NULL)
			c = gnutls_cipher_get_name(gnutls_cipher_get(s->gs));
		util_strlcpy(s->cipher, c ? c : "unknown", sizeof(s->cipher));
	}
	return s->cipher;
}

const char *
tls_session_error(struct tls_session *s)
{
	return s->error[0] ? s->error : "unknown TLS error";
}

const char *
tls_session_error_reason(struct tls_session *s)
{
	return s->reason;
}

int
tls_session_verified(struct tls_session *s)
{
	return s->verified;
}

static int
tls_write_file(const char *path, mode_t mode, const gnutls_datum_t *d,
    const char **error_r)
{
	size_t off = 0;
	ssize_t n;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd == -1) {
		*error_r = tls_err("%s: %s", path, strerror(errno));
		return -1;
	}
	/* O_CREAT does not change the mode of an existing file. */
	if (fchmod(fd, mode) == -1) {
		*error_r = tls_err("%s: chmod: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	while (off < d->size) {
		n = write(fd, d->data + off, d->size - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			*error_r = tls_err("%s: write: %s", path,
			    strerror(errno));
			close(fd);
			return -1;
		}
		off += (size_t)n;
	}
	if (close(fd) == -1) {
		*error_r = tls_err("%s: close: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int
tls_selfsigned_write(const char *cert_file, const char *key_file,
    const char *hostname, const char **error_r)
{
	gnutls_x509_privkey_t key = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t kd = { NULL, 0 }, cd = { NULL, 0 };
	unsigned char serial[16];
	time_t now = time(NULL);
	const char *what = "";
	int ret, rc = -1;

	if (tls_init() == -1) {
		*error_r = "gnutls_global_init failed";
		return -1;
	}
	if ((ret = gnutls_x509_privkey_init(&key)) < 0) {
		what = "privkey_init";
		goto fail;
	}
	if ((ret = gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
	    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0)) < 0) {
		what = "generate key";
		goto fail;
	}
	if ((ret = gnutls_x509_crt_init(&crt)) < 0) {
		what = "crt_init";
		goto fail;
	}
	for (size_t i = 0; i < sizeof(serial); i += 8) {
		uint64_t r = util_random64();
		memcpy(serial + i, &r, 8);
	}
	serial[0] &= 0x7f;	/* a positive INTEGER */
	serial[0] |= 0x01;
	if ((ret = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
	    (ret = gnutls_x509_crt_set_serial(crt, serial,
	    sizeof(serial))) < 0 ||
	    (ret = gnutls_x509_crt_set_activation_time(crt,
	    now - 3600)) < 0 ||
	    (ret = gnutls_x509_crt_set_expiration_time(crt,
	    now + 825 * 86400)) < 0 ||
	    (ret = gnutls_x509_crt_set_dn_by_oid(crt,
	    GNUTLS_OID_X520_COMMON_NAME, 0, hostname,
	    (unsigned)strlen(hostname))) < 0 ||
	    (ret = gnutls_x509_crt_set_subject_alt_name(crt,
	    GNUTLS_SAN_DNSNAME, hostname, (unsigned)strlen(hostname),
	    GNUTLS_FSAN_SET)) < 0 ||
	    (ret = gnutls_x509_crt_set_basic_constraints(crt, 0, -1)) < 0 ||
	    (ret = gnutls_x509_crt_set_key_usage(crt,
	    GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
	    (ret = gnutls_x509_crt_set_key_purpose_oid(crt,
	    GNUTLS_KP_TLS_WWW_SERVER, 0)) < 0 ||
	    (ret = gnutls_x509_crt_set_key(crt, key)) < 0) {
		what = "build certificate";
		goto fail;
	}
	if ((ret = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256,
	    0)) < 0) {
		what = "sign certificate";
		goto fail;
	}
	if ((ret = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM,
	    NULL, GNUTLS_PKCS_PLAIN, &kd)) < 0 ||
	    (ret = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM,
	    &cd)) < 0) {
		what = "export";
		goto fail;
	}
	if (tls_write_file(key_file, 0600, &kd, error_r) == -1 ||
	    tls_write_file(cert_file, 0644, &cd, error_r) == -1)
		goto out;
	rc = 0;
	goto out;
fail:
	*error_r = tls_err("self-signed certificate: %s: %s", what,
	    gnutls_strerror(ret));
out:
	if (kd.data != NULL) {
		util_wipe(kd.data, kd.size);
		gnutls_free(kd.data);
	}
	gnutls_free(cd.data);
	if (crt != NULL)
		gnutls_x509_crt_deinit(crt);
	if (key != NULL)
		gnutls_x509_privkey_deinit(key);
	return rc;
}
