/*
 * carteiro-webd internals shared by its files: the request as the router
 * sees it (no libmicrohttpd types), the reply it builds, the mail services
 * derived from the config, and the renderers for autoconfig, Autodiscover
 * and MTA-STS. http.c is the only file that includes <microhttpd.h>.
 */
#ifndef CARTEIRO_WEBD_H
#define CARTEIRO_WEBD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct cfg;
struct evbuffer;
struct webd_domains;

/* Bounds on what a client may send (http.c passes them to MHD). */
#define WEBD_MEMORY_LIMIT	(16 * 1024)	/* request line + headers */
#define WEBD_MAX_BODY		(16 * 1024)	/* POST body (Autodiscover) */
#define WEBD_MAX_CLIENTS	1024		/* per listener */
#define WEBD_MAX_CLIENTS_PER_IP	32		/* per listener */
#define WEBD_TIMEOUT_S		15		/* idle connection; twice it: any */

/* ---- services.c: what the mail daemons listen on ---- */

enum webd_proto {
	WEBD_PROTO_POP3,
	WEBD_PROTO_SMTP,
	WEBD_PROTO_COUNT
};

enum webd_socket {
	WEBD_SOCK_SSL,		/* implicit TLS (995, 465) */
	WEBD_SOCK_STARTTLS,	/* STLS / STARTTLS (110, 587) */
	WEBD_SOCK_COUNT
};

struct webd_service {
	enum webd_proto proto;
	enum webd_socket sock;
	const char *host;	/* borrowed from the config: [server] hostname */
	unsigned port;
};

#define WEBD_MAX_SERVICES 4

/*
 * The mail services a client should be told about, from the config's
 * listeners (the first address of each list): POP3 over implicit TLS, POP3
 * with STLS, SMTP submission over implicit TLS, submission with STARTTLS, in
 * that order (most preferred first), leaving out the ones that are off.
 * Returns how many were written to out.
 */
size_t webd_services(const struct cfg *cfg,
    struct webd_service out[WEBD_MAX_SERVICES]);

/* ---- xml.c ---- */

/* Append s to b with &, <, >, " and ' as XML entities. */
void webd_xml_add(struct evbuffer *b, const char *s);

/* ---- autoconfig.c / autodiscover.c / mtasts.c: bodies ---- */

/* Thunderbird's config-v1.1.xml for domain (a local domain). */
void webd_autoconfig_render(struct evbuffer *b, const char *domain,
    const struct webd_service *sv, size_t n);

/*
 * The EMailAddress of an Outlook Autodiscover request body (not
 * NUL-terminated, len bytes) into buf (size bytes). 0, or -1 when there is
 * none or it is not a plausible address (buf then undefined).
 */
int webd_autodiscover_parse(const char *body, size_t len, char *buf,
    size_t size);
/* The Autodiscover (POX, responseschema 2006a) reply for address. */
void webd_autodiscover_render(struct evbuffer *b, const char *address,
    const struct webd_service *sv, size_t n);

/* The RFC 8461 policy text from [http] mta_sts_* and [server] hostname. */
void webd_mtasts_render(struct evbuffer *b, const struct cfg *cfg);

/* ---- domains.c: the store's local domains, from any thread ---- */

/* Open the store read path. NULL and *error_r (static) on failure. */
struct webd_domains *webd_domains_open(const char *path,
    const char **error_r);
void webd_domains_close(struct webd_domains *d);
/* 1 local, 0 not, -1 store error. domain is compared case-insensitively.
 * Serialised by a mutex: callable from every listener thread. */
int webd_domains_is_local(struct webd_domains *d, const char *domain);
/* Messages in the outbound queue and the creation time of the oldest
 * (0 if none). 0 / -1. */
int webd_domains_queue(struct webd_domains *d, int64_t *n_r,
    int64_t *oldest_r);

/* ---- metrics.c ---- */

/* /metrics in the Prometheus text format (0.0.4): the counters of
 * carteiro-smtpd and carteiro-pop3d (common/stats.h) and the queue. */
void webd_metrics_render(struct evbuffer *b, const struct cfg *cfg,
    struct webd_domains *d);

/* ---- route.c: one request, independent of the HTTP library ---- */

struct webd_request {
	const char *method;	/* as sent; only GET and POST get past */
	const char *path;	/* percent-decoded, without the query */
	const char *host;	/* Host header or NULL */
	const char *emailaddress;	/* ?emailaddress= or NULL */
	const char *body;	/* POST body (len body_len) or NULL */
	size_t body_len;
	const struct sockaddr *peer;	/* for metrics_allow; may be NULL */
	bool tls;		/* came in on tls_listen */
};

struct webd_reply {
	unsigned status;
	const char *content_type;	/* static string */
	const char *allow;		/* Allow header for 405, or NULL */
	struct evbuffer *body;		/* owned by the caller */
};

struct webd_ctx {
	const struct cfg *cfg;
	struct webd_domains *domains;
};

/* Fill r (r->body must be an empty evbuffer) for q. Never fails: a store
 * error is a 503. */
void webd_route(const struct webd_ctx *ctx, const struct webd_request *q,
    struct webd_reply *r);

/* ---- deadline.c: the whole-connection deadline ---- */

struct webd_deadline;
struct webd_deadline_conn;

/* Connections older than max_s seconds get shut down by the sweep. */
struct webd_deadline *webd_deadline_new(unsigned max_s);
void webd_deadline_free(struct webd_deadline *d);
/* Remember a new connection on fd (from its listener thread). */
struct webd_deadline_conn *webd_deadline_add(struct webd_deadline *d,
    int fd);
/* Forget it, before its fd is closed. c may be NULL. */
void webd_deadline_del(struct webd_deadline *d,
    struct webd_deadline_conn *c);
/* shutdown(2) every connection past the deadline; how many. Any thread. */
size_t webd_deadline_sweep(struct webd_deadline *d);

/* ---- http.c: the listeners, on libmicrohttpd ---- */

struct webd_http;

/* A server for ctx (borrowed, must outlive it); timeout_s is the idle
 * timeout of a connection, and twice it the most a connection may last
 * (webd_http_sweep). Free with webd_http_free. */
struct webd_http *webd_http_new(const struct webd_ctx *ctx,
    unsigned timeout_s);
/* Cut the connections past their deadline (call about once a second). */
void webd_http_sweep(struct webd_http *h);
/* Read the PEM certificate chain and key for the HTTPS listeners (the
 * daemon has checked them with tls_ctx_server_new). 0 / -1, *error_r. */
int webd_http_set_tls(struct webd_http *h, const char *cert,
    const char *key, const char **error_r);
/* Serve the bound socket fd (plain HTTP, or HTTPS when tls) on a thread
 * of its own. Takes ownership of fd. 0 / -1. */
int webd_http_listen(struct webd_http *h, int fd, bool tls);
/* SIGHUP: re-read cert and key and restart the HTTPS listeners on the
 * same sockets with them (open HTTPS connections are cut). On failure the
 * old certificate stays. 0 / -1 and *error_r. */
int webd_http_reload(struct webd_http *h, const char *cert,
    const char *key, const char **error_r);
/* Stop every listener (closing open connections) and free h. */
void webd_http_free(struct webd_http *h);

#endif
