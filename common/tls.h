/*
 * TLS contexts and sessions. The only file that includes <gnutls/gnutls.h>
 * is tls.c; everything else sees these opaque handles. conn.c drives a
 * struct tls_session over a non-blocking socket (GnuTLS push/pull adapted to
 * the fd), and reports "handshake done" as one event.
 */
#ifndef CARTEIRO_TLS_H
#define CARTEIRO_TLS_H

#include <stddef.h>
#include <sys/types.h>

struct tls_ctx;
struct tls_session;

/* Server context from PEM cert chain + key. NULL and *error_r on failure
 * (error_r is a static or thread-local string). Refuses a key file readable
 * by group/other. */
struct tls_ctx *tls_ctx_server_new(const char *cert_file, const char *key_file,
    const char **error_r);
/* Reload cert/key (SIGHUP); on failure keeps the old ones and returns -1.
 * Sessions already running keep what they started with. */
int tls_ctx_reload(struct tls_ctx *ctx, const char **error_r);
/* Client context (outbound relay). cafile NULL: system trust store; peers
 * are not required to verify (opportunistic TLS) unless tls_session_verified
 * is checked by the caller. */
struct tls_ctx *tls_ctx_client_new(const char *cafile, const char **error_r);
void tls_ctx_free(struct tls_ctx *ctx);

/* Global init/deinit (gnutls_global_init). Idempotent. */
int tls_init(void);

enum tls_io {
	TLS_IO_OK = 0,		/* done / n bytes transferred */
	TLS_IO_WANT_READ = -2,
	TLS_IO_WANT_WRITE = -3,
	TLS_IO_EOF = -4,	/* clean close_notify */
	TLS_IO_ERROR = -5,
};

/* A session over fd; server_name for client SNI (may be NULL). */
struct tls_session *tls_session_new(struct tls_ctx *ctx, int fd, int is_server,
    const char *server_name);
void tls_session_free(struct tls_session *s);
/* Returns TLS_IO_OK when the handshake is complete. */
int tls_session_handshake(struct tls_session *s);
/* > 0 bytes read (len > 0), or a TLS_IO_* code. The plaintext copy inside
 * GnuTLS is wiped as it is read. */
ssize_t tls_session_read(struct tls_session *s, void *buf, size_t len);
/* > 0 bytes written, or a TLS_IO_* code. */
ssize_t tls_session_write(struct tls_session *s, const void *buf, size_t len);
/* Bytes already decrypted and not yet read (inside GnuTLS, or held by
 * tls_session_read). */
size_t tls_session_pending(struct tls_session *s);
/* Send close_notify, best effort, non-blocking. */
void tls_session_bye(struct tls_session *s);
/* "TLSv1.3" / "TLS_AES_256_GCM_SHA384" style strings, static storage owned
 * by the session. */
const char *tls_session_version(struct tls_session *s);
const char *tls_session_cipher(struct tls_session *s);
/* Last error text. A server's failed handshake says what the client did
 * in words where it can ("client closed the handshake (it probably does
 * not trust our certificate)", "client rejected our certificate (alert:
 * Unknown CA)"); otherwise "handshake: <GnuTLS's text>". */
const char *tls_session_error(struct tls_session *s);
/*
 * The log reason of the last error, shared by every daemon's
 * disconnect line: TLS_REASON_HANDSHAKE, TLS_REASON_TLS (after the
 * handshake), TLS_REASON_IO (the socket under TLS failed); NULL if none.
 */
#define TLS_REASON_HANDSHAKE	"tls_handshake"
#define TLS_REASON_TLS		"tls_error"
#define TLS_REASON_IO		"io_error"
const char *tls_session_error_reason(struct tls_session *s);
/* 1 if the peer certificate verified for server_name (client sessions,
 * after the handshake); always 0 for server sessions. */
int tls_session_verified(struct tls_session *s);

/*
 * DANE (RFC 7672 3): the peer's certificate chain (a client session after
 * its handshake) against TLSA records given as text, "USAGE SELECTOR
 * MTYPE HEX" (mailauth/dns.h DNS_T_TLSA), with GnuTLS's DANE library.
 * Only usable records count (tls_dane_usable); DANE-EE(3) matches the
 * leaf's key or certificate whatever its names and dates (RFC 7672
 * 3.1.1), DANE-TA(2) the leaf's issuer, and then the leaf must name
 * host (RFC 7672 3.2.3). 1 on a match; 0 and *why_r (static) if none.
 */
int tls_session_dane_match(struct tls_session *s, const char *const *tlsa,
    size_t n, const char *host, const char **why_r);
/* 1 if the TLSA text is a DANE-TA(2) or DANE-EE(3) record with a
 * selector (0, 1) and matching type (0, 1, 2) we know (RFC 7672 2.2). */
int tls_dane_usable(const char *tlsa);

/*
 * Write a fresh self-signed certificate for hostname (ECDSA P-256, SHA-256,
 * CN and subjectAltName = hostname, valid 825 days) to cert_file (0644) and
 * its PKCS#8 key to key_file (0600), replacing existing files. For dev
 * setups, scripts and tests. 0, or -1 and *error_r (static string).
 */
int tls_selfsigned_write(const char *cert_file, const char *key_file,
    const char *hostname, const char **error_r);

#endif
