/*
 * Internals shared by the files of the TLS module (tls.h): the context
 * and session structures. tls.c (contexts, sessions, I/O) and
 * tls_dane.c (DANE matching) include it; nothing else does, so GnuTLS
 * stays inside common/tls*.c.
 */
#ifndef CARTEIRO_TLS_INT_H
#define CARTEIRO_TLS_INT_H

#include <gnutls/gnutls.h>
#include <stddef.h>

/*
 * GnuTLS sessions keep a pointer to the credentials they were started with,
 * so a SIGHUP reload must not free credentials still in use: each session
 * holds a reference and the last one out frees them.
 */
struct tls_cred {
	gnutls_certificate_credentials_t cred;
	unsigned refs;
};

struct tls_ctx {
	int is_server;
	char *cert_file;		/* server only */
	char *key_file;
	char *ca_file;			/* client; NULL = system store */
	struct tls_cred *cred;		/* current credentials, one ref */
	gnutls_priority_t prio;
};

struct tls_session {
	gnutls_session_t gs;
	struct tls_cred *cred;		/* one ref */
	int is_server;
	int verified;
	char *server_name;		/* client: SNI, name to verify */
	/* A decrypted record read by tls_session_read and not yet handed
	 * out whole (NULL if none); pkt_off bytes of it are handed out. */
	gnutls_packet_t pkt;
	size_t pkt_off;
	char version[32];
	char cipher[128];
	char error[256];
	const char *reason;		/* TLS_REASON_*, NULL: no error yet */
};

#endif
