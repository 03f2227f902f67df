/*
 * The HTTP side of carteiro-webd on GNU libmicrohttpd (the only file that
 * includes <microhttpd.h>): one MHD daemon with its own polling thread per
 * bound socket, the limits on what a client may send, collecting a POST
 * body, and turning route.c's webd_reply into a response. It decides no
 * content itself.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <microhttpd.h>

#include "common/log.h"
#include "common/util.h"
#include "webd/webd.h"

/* A PEM file larger than this is not a certificate chain or key. */
#define WEBD_PEM_MAX (1024 * 1024)

struct webd_listener {
	struct webd_http *http;
	struct MHD_Daemon *mhd;
	int fd;
	bool tls;
};

struct webd_http {
	const struct webd_ctx *ctx;
	unsigned timeout_s;
	char *cert_pem;		/* owned; NUL-terminated */
	char *key_pem;		/* owned; wiped before free */
	size_t nlisteners;
	struct webd_listener **listeners;
	struct webd_deadline *deadline;
};

/* Per request (MHD's con_cls): the POST body collected so far. */
struct webd_req {
	struct evbuffer *body;
	bool too_big;		/* latched: more than WEBD_MAX_BODY */
};

static char *webd_http_read_pem(const char *, const char **);
static void webd_http_free_pem(char *);
static struct MHD_Daemon *webd_http_start(struct webd_listener *);
static void webd_http_mhd_log(void *, const char *, va_list)
    __attribute__((format(printf, 2, 0)));
static void webd_http_notify(void *, struct MHD_Connection *, void **,
    enum MHD_ConnectionNotificationCode);
static void webd_http_completed(void *, struct MHD_Connection *, void **,
    enum MHD_RequestTerminationCode);
static enum MHD_Result webd_http_access(void *, struct MHD_Connection *,
    const char *, const char *, const char *, const char *, size_t *,
    void **);
static enum MHD_Result webd_http_respond(struct webd_listener *,
    struct MHD_Connection *, const struct webd_request *,
    struct webd_reply *);
static void webd_http_peer(struct MHD_Connection *,
    const struct sockaddr **, char *, size_t);

/* The whole file, NUL-terminated (caller frees with webd_http_free_pem). */
static char *
webd_http_read_pem(const char *path, const char **error_r)
{
	struct stat st;
	char *buf;
	ssize_t r;
	size_t off = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*error_r = strerror(errno);
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size <= 0 || st.st_size > WEBD_PEM_MAX) {
		close(fd);
		*error_r = "not a PEM file of a sensible size";
		return NULL;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (off < (size_t)st.st_size) {
		r = read(fd, buf + off, (size_t)st.st_size - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		off += (size_t)r;
	}
	close(fd);
	buf[off] = '\0';
	return buf;
}

static void
webd_http_free_pem(char *pem)
{
	if (pem == NULL)
		return;
	util_wipe(pem, strlen(pem));
	free(pem);
}

static void
webd_http_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t len;

	if (!log_enabled(LOG_LVL_DEBUG))
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	len = strlen(msg);
	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
		msg[--len] = '\0';
	log_debug("event=http.mhd msg=%s", LOG_VALUE(msg));
}

/* Each connection joins the deadline list at its start and leaves it
 * before MHD closes its socket. */
static void
webd_http_notify(void *cls, struct MHD_Connection *conn, void **sock_ctx,
    enum MHD_ConnectionNotificationCode code)
{
	struct webd_http *h = cls;
	const union MHD_ConnectionInfo *ci;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		ci = MHD_get_connection_info(conn,
		    MHD_CONNECTION_INFO_CONNECTION_FD);
		*sock_ctx = ci != NULL ?
		    webd_deadline_add(h->deadline, ci->connect_fd) : NULL;
	} else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		webd_deadline_del(h->deadline, *sock_ctx);
		*sock_ctx = NULL;
	}
}

static void
webd_http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct webd_req *rq = *con_cls;

	if (rq == NULL)
		return;
	evbuffer_free(rq->body);
	free(rq);
	*con_cls = NULL;
}

static void
webd_http_peer(struct MHD_Connection *conn, const struct sockaddr **sa_r,
    char *ip, size_t size)
{
	const union MHD_ConnectionInfo *ci;
	const struct sockaddr *sa = NULL;

	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci != NULL)
		sa = ci->client_addr;
	*sa_r = sa;
	snprintf(ip, size, "-");
	if (sa != NULL && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
		    ip, (socklen_t)size);
	else if (sa != NULL && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6,
		    &((const struct sockaddr_in6 *)sa)->sin6_addr, ip,
		    (socklen_t)size);
}

static enum MHD_Result
webd_http_respond(struct webd_listener *l, struct MHD_Connection *conn,
    const struct webd_request *q, struct webd_reply *r)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	size_t len = evbuffer_get_length(r->body);
	char ip[INET6_ADDRSTRLEN];
	const struct sockaddr *sa;

	resp = MHD_create_response_from_buffer(len,
	    len > 0 ? evbuffer_pullup(r->body, -1) : (void *)"",
	    MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	    r->content_type);
	if (r->allow != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
		    r->allow);
	ret = MHD_queue_response(conn, r->status, resp);
	MHD_destroy_response(resp);

	webd_http_peer(conn, &sa, ip, sizeof(ip));
	log_info("event=http.request ip=%s tls=%s method=%s host=%s path=%s "
	    "status=%u bytes=%zu", ip, l->tls ? "yes" : "no",
	    LOG_VALUE(q->method), LOG_VALUE(q->host), LOG_VALUE(q->path),
	    r->status, len);
	return ret;
}

/*
 * MHD calls this once when the headers are in, then (POST) once per piece
 * of body with *upload_size > 0, then once more with 0. We answer on the
 * first call unless a body is coming, and on the last one otherwise.
 */
static enum MHD_Result
webd_http_access(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **con_cls)
{
	struct webd_listener *l = cls;
	struct webd_req *rq = *con_cls;
	struct webd_request q;
	struct webd_reply r;
	enum MHD_Result ret;
	const char *clen;
	const struct sockaddr *sa;
	char ip[INET6_ADDRSTRLEN];

	memset(&q, 0, sizeof(q));
	q.method = method;
	q.path = url;
	q.host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_HOST);
	q.emailaddress = MHD_lookup_connection_value(conn,
	    MHD_GET_ARGUMENT_KIND, "emailaddress");
	q.tls = l->tls;
	webd_http_peer(conn, &sa, ip, sizeof(ip));
	q.peer = sa;
	memset(&r, 0, sizeof(r));

	if (rq == NULL && strcmp(method, MHD_HTTP_METHOD_POST) == 0) {
		/* A declared body too big for us: say so before it comes. */
		clen = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		    MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (clen == NULL || strtoull(clen, NULL, 10) <= WEBD_MAX_BODY) {
			rq = xcalloc(1, sizeof(*rq));
			rq->body = evbuffer_new();
			*con_cls = rq;
			return MHD_YES;
		}
		r.status = 413;
	} else if (rq != NULL && *upload_size > 0) {
		if (!rq->too_big && evbuffer_get_length(rq->body) +
		    *upload_size <= WEBD_MAX_BODY)
			evbuffer_add(rq->body, upload, *upload_size);
		else
			rq->too_big = true;
		*upload_size = 0;
		return MHD_YES;
	} else if (rq != NULL && rq->too_big)
		r.status = 413;

	r.body = evbuffer_new();
	if (r.status == 413) {
		r.content_type = "text/plain; charset=utf-8";
		evbuffer_add_printf(r.body, "Payload Too Large\n");
	} else {
		if (rq != NULL) {
			q.body_len = evbuffer_get_length(rq->body);
			q.body = q.body_len > 0 ?
			    (const char *)evbuffer_pullup(rq->body, -1) : "";
		}
		webd_route(l->http->ctx, &q, &r);
	}
	ret = webd_http_respond(l, conn, &q, &r);
	evbuffer_free(r.body);
	return ret;
}

static struct MHD_Daemon *
webd_http_start(struct webd_listener *l)
{
	struct webd_http *h = l->http;
	unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ITC |
	    MHD_USE_ERROR_LOG;
	struct MHD_OptionItem tls_opts[] = {
		{ MHD_OPTION_HTTPS_MEM_CERT, 0, h->cert_pem },
		{ MHD_OPTION_HTTPS_MEM_KEY, 0, h->key_pem },
		{ MHD_OPTION_HTTPS_PRIORITIES, 0,
		  (void *)"NORMAL:%SERVER_PRECEDENCE" },
		{ MHD_OPTION_END, 0, NULL },
	};
	struct MHD_OptionItem none[] = { { MHD_OPTION_END, 0, NULL } };

	if (l->tls)
		flags |= MHD_USE_TLS;
	/* The logger first, or MHD logs the options before it to stderr. */
	return MHD_start_daemon(flags, 0, NULL, NULL, webd_http_access, l,
	    MHD_OPTION_EXTERNAL_LOGGER, webd_http_mhd_log, NULL,
	    MHD_OPTION_LISTEN_SOCKET, (MHD_socket)l->fd,
	    /* Request line and headers together: past it MHD answers 414
	     * (line) or 431 (headers) and closes. */
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)WEBD_MEMORY_LIMIT,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)WEBD_MAX_CLIENTS,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	    (unsigned)WEBD_MAX_CLIENTS_PER_IP,
	    /* A slow client is cut after this long without progress. */
	    MHD_OPTION_CONNECTION_TIMEOUT, h->timeout_s,
	    MHD_OPTION_STRICT_FOR_CLIENT, 1,
	    MHD_OPTION_NOTIFY_COMPLETED, webd_http_completed, NULL,
	    MHD_OPTION_NOTIFY_CONNECTION, webd_http_notify, h,
	    MHD_OPTION_ARRAY, l->tls ? tls_opts : none,
	    MHD_OPTION_END);
}

struct webd_http *
webd_http_new(const struct webd_ctx *ctx, unsigned timeout_s)
{
	struct webd_http *h = xcalloc(1, sizeof(*h));

	h->ctx = ctx;
	h->timeout_s = timeout_s;
	h->deadline = webd_deadline_new(2 * timeout_s);
	return h;
}

void
webd_http_sweep(struct webd_http *h)
{
	size_t n = webd_deadline_sweep(h->deadline);

	if (n > 0)
		log_info("event=http.deadline cut=%zu", n);
}

int
webd_http_set_tls(struct webd_http *h, const char *cert, const char *key,
    const char **error_r)
{
	char *c, *k;

	if ((c = webd_http_read_pem(cert, error_r)) == NULL)
		return -1;
	if ((k = webd_http_read_pem(key, error_r)) == NULL) {
		free(c);
		return -1;
	}
	free(h->cert_pem);
	webd_http_free_pem(h->key_pem);
	h->cert_pem = c;
	h->key_pem = k;
	return 0;
}

int
webd_http_listen(struct webd_http *h, int fd, bool tls)
{
	struct webd_listener *l = xcalloc(1, sizeof(*l));

	if (tls && h->cert_pem == NULL) {
		free(l);
		close(fd);
		return -1;
	}
	l->http = h;
	l->fd = fd;
	l->tls = tls;
	l->mhd = webd_http_start(l);
	if (l->mhd == NULL) {
		free(l);
		close(fd);
		return -1;
	}
	h->listeners = xrealloc(h->listeners,
	    (h->nlisteners + 1) * sizeof(*h->listeners));
	h->listeners[h->nlisteners++] = l;
	return 0;
}

int
webd_http_reload(struct webd_http *h, const char *cert, const char *key,
    const char **error_r)
{
	char *old_cert = h->cert_pem, *old_key = h->key_pem;
	struct MHD_Daemon *old;
	int ret = 0;

	h->cert_pem = h->key_pem = NULL;
	if (webd_http_set_tls(h, cert, key, error_r) < 0) {
		h->cert_pem = old_cert;
		h->key_pem = old_key;
		return -1;
	}
	for (size_t i = 0; i < h->nlisteners; i++) {
		struct webd_listener *l = h->listeners[i];

		if (!l->tls)
			continue;
		/* Stop accepting on the old daemon, accept on a new one with
		 * the new certificate, then let the old one go. */
		old = l->mhd;
		if (MHD_quiesce_daemon(old) < 0) {
			*error_r = "cannot quiesce the HTTPS listener";
			ret = -1;
			continue;
		}
		l->mhd = webd_http_start(l);
		if (l->mhd == NULL) {
			*error_r = "cannot restart the HTTPS listener";
			ret = -1;
		}
		MHD_stop_daemon(old);
	}
	free(old_cert);
	webd_http_free_pem(old_key);
	return ret;
}

void
webd_http_free(struct webd_http *h)
{
	if (h == NULL)
		return;
	for (size_t i = 0; i < h->nlisteners; i++) {
		if (h->listeners[i]->mhd != NULL)
			MHD_stop_daemon(h->listeners[i]->mhd);
		free(h->listeners[i]);
	}
	free(h->listeners);
	webd_deadline_free(h->deadline);
	free(h->cert_pem);
	webd_http_free_pem(h->key_pem);
	free(h);
}
