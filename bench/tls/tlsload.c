/*
 * bench/tls load generator (GnuTLS; smtp-source has no TLS). Never run by
 * scripts/test: bench/tls/run drives it.
 *
 *   tlsload flow HOST PORT [-c CONNS] [-s SECONDS] -u USER -p PASS -r RCPT
 *       per connection: greeting, EHLO, STARTTLS, a new TLS session (full
 *       handshake), EHLO, AUTH PLAIN, MAIL, RCPT, DATA with a 1 KB
 *       message, QUIT.
 *   tlsload hs HOST PORT [-c CONNS] [-s SECONDS]
 *       implicit TLS (port 465): connect, full handshake, read the 220
 *       greeting (or POP3's +OK, port 995), close.
 *   tlsload resume HOST PORT [-c CONNS] [-s SECONDS]
 *       as hs, but each worker resumes the session (ticket) it got on its
 *       first connection; counts how many were resumed.
 *   tlsload idle HOST PORT -n SESSIONS [-c CONNS] [-t]
 *       opens SESSIONS TLS sessions that stay idle: implicit TLS (a full
 *       handshake, the greeting) or with -t STARTTLS (greeting, EHLO,
 *       STARTTLS, handshake, EHLO). Prints one JSON line {"mode", "open",
 *       "errors", "first_error", "seconds"} once all are open, holds
 *       them until its stdin ends, then closes them.
 *
 * CONNS workers (threads, default 10), each one connection at a time, for
 * SECONDS (default 10). Prints one JSON line: {"mode", "done",
 * "errors", "first_error", "seconds", "per_s", "p50_ms", "p99_ms",
 * "resumed"}. No certificate verification: both servers use the same
 * self-signed RSA-2048 key type, and the cost measured is the server's.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

enum mode { MODE_FLOW, MODE_HS, MODE_RESUME, MODE_IDLE };

static enum mode mode;
static const char *host, *user = "", *pass = "", *rcpt = "";
static int port, nconns = 10, nidle;
static bool idle_starttls;
static double seconds = 10;
static gnutls_certificate_credentials_t cred;
static volatile bool stopping;
static char auth_b64[1024];
static char message[2048];

struct worker {
	pthread_t th;
	unsigned long done, errors, resumed;
	double *lat;		/* ms per completed connection */
	size_t nlat, caplat;
	char error[200];
	gnutls_datum_t ticket;	/* resume mode */
	bool asked;		/* ticket asked for (once per worker) */
	struct io *held;	/* idle mode: the open sessions */
	int nheld, want;
};

struct io {
	int fd;
	gnutls_session_t s;	/* NULL: plaintext */
	char buf[16384];
	size_t len;
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
b64(const unsigned char *in, size_t n, char *out)
{
	static const char t[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		*out++ = t[in[i] >> 2];
		*out++ = t[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		*out++ = t[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
		*out++ = t[in[i + 2] & 63];
	}
	if (n - i == 1) {
		*out++ = t[in[i] >> 2];
		*out++ = t[(in[i] & 3) << 4];
		*out++ = '=';
		*out++ = '=';
	} else if (n - i == 2) {
		*out++ = t[in[i] >> 2];
		*out++ = t[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		*out++ = t[(in[i + 1] & 15) << 2];
		*out++ = '=';
	}
	*out = '\0';
}

static int
io_fill(struct io *io)
{
	ssize_t n;

	if (io->len == sizeof(io->buf))
		return -1;
	do {
		if (io->s != NULL)
			n = gnutls_record_recv(io->s, io->buf + io->len,
			    sizeof(io->buf) - io->len);
		else
			n = recv(io->fd, io->buf + io->len,
			    sizeof(io->buf) - io->len, 0);
	} while ((io->s != NULL && (n == GNUTLS_E_AGAIN ||
	    n == GNUTLS_E_INTERRUPTED)) || (io->s == NULL && n < 0 &&
	    errno == EINTR));
	if (n <= 0)
		return -1;
	io->len += (size_t)n;
	return 0;
}

static int
io_write(struct io *io, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = io->s != NULL ? gnutls_record_send(io->s, data,
		    len) : send(io->fd, data, len, MSG_NOSIGNAL);

		if (io->s != NULL && (n == GNUTLS_E_AGAIN ||
		    n == GNUTLS_E_INTERRUPTED))
			continue;
		if (n <= 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One whole SMTP reply: its code, -1 on EOF/error. */
static int
io_reply(struct io *io)
{
	for (;;) {
		char *nl = memchr(io->buf, '\n', io->len);

		if (nl == NULL) {
			if (io_fill(io) < 0)
				return -1;
			continue;
		}
		size_t ll = (size_t)(nl - io->buf) + 1;
		bool last = ll < 5 || io->buf[3] != '-';
		/* POP3's "+OK" greeting counts as SMTP's 220 (hs on 995). */
		int code = strncmp(io->buf, "+OK", 3) == 0 ? 220 :
		    atoi(io->buf);

		memmove(io->buf, nl + 1, io->len - ll);
		io->len -= ll;
		if (last)
			return code;
	}
}

static int
io_cmd(struct io *io, const char *line)
{
	if (io_write(io, line, strlen(line)) < 0)
		return -1;
	return io_reply(io);
}

static int
tcp_connect(void)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (fd < 0)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1 ||
	    connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int
tls_start(struct io *io, struct worker *w)
{
	int r;

	if (gnutls_init(&io->s, GNUTLS_CLIENT) < 0)
		return -1;
	gnutls_set_default_priority(io->s);
	gnutls_credentials_set(io->s, GNUTLS_CRD_CERTIFICATE, cred);
	gnutls_server_name_set(io->s, GNUTLS_NAME_DNS, "mail.bench.test",
	    strlen("mail.bench.test"));
	if (mode == MODE_RESUME && w->ticket.data != NULL)
		gnutls_session_set_data(io->s, w->ticket.data,
		    w->ticket.size);
	gnutls_transport_set_int(io->s, io->fd);
	gnutls_handshake_set_timeout(io->s, 20000);
	do {
		r = gnutls_handshake(io->s);
	} while (r < 0 && gnutls_error_is_fatal(r) == 0);
	if (r < 0) {
		snprintf(w->error, sizeof(w->error), "handshake: %s",
		    gnutls_strerror(r));
		return -1;
	}
	return 0;
}

#define FAIL(...) do { snprintf(w->error, sizeof(w->error), __VA_ARGS__); \
	goto out; } while (0)

static int
one_conn(struct worker *w)
{
	struct io io;
	int rc = -1, c;
	char line[1200];

	memset(&io, 0, sizeof(io));
	io.fd = -1;
	if ((io.fd = tcp_connect()) < 0)
		FAIL("connect: %s", strerror(errno));
	if (mode != MODE_FLOW) {
		if (tls_start(&io, w) < 0)
			goto out;
		if ((c = io_reply(&io)) != 220)
			FAIL("greeting %d", c);
		if (mode == MODE_RESUME) {
			if (gnutls_session_is_resumed(io.s))
				w->resumed++;
			else if (!w->asked) {
				/* TLS 1.3: the ticket came with the
				 * greeting's records (GnuTLS waits a little
				 * for one if the server sends none: only
				 * once per worker, so a server without
				 * tickets is timed on full handshakes). */
				w->asked = true;
				gnutls_session_get_data2(io.s, &w->ticket);
			}
		}
		io_write(&io, "QUIT\r\n", 6);
		rc = 0;
		goto out;
	}
	if ((c = io_reply(&io)) != 220)
		FAIL("greeting %d", c);
	if ((c = io_cmd(&io, "EHLO client.bench.test\r\n")) != 250)
		FAIL("EHLO %d", c);
	if ((c = io_cmd(&io, "STARTTLS\r\n")) != 220)
		FAIL("STARTTLS %d", c);
	if (tls_start(&io, w) < 0)
		goto out;
	if ((c = io_cmd(&io, "EHLO client.bench.test\r\n")) != 250)
		FAIL("EHLO2 %d", c);
	snprintf(line, sizeof(line), "AUTH PLAIN %s\r\n", auth_b64);
	if ((c = io_cmd(&io, line)) != 235)
		FAIL("AUTH %d", c);
	snprintf(line, sizeof(line), "MAIL FROM:<%s>\r\n", user);
	if ((c = io_cmd(&io, line)) != 250)
		FAIL("MAIL %d", c);
	snprintf(line, sizeof(line), "RCPT TO:<%s>\r\n", rcpt);
	if ((c = io_cmd(&io, line)) != 250)
		FAIL("RCPT %d", c);
	if ((c = io_cmd(&io, "DATA\r\n")) != 354)
		FAIL("DATA %d", c);
	if ((c = io_cmd(&io, message)) != 250)
		FAIL("end of data %d", c);
	if ((c = io_cmd(&io, "QUIT\r\n")) != 221)
		FAIL("QUIT %d", c);
	rc = 0;
out:
	if (io.s != NULL)
		gnutls_deinit(io.s);
	if (io.fd >= 0)
		close(io.fd);
	return rc;
}

/* Idle mode: open one session and keep it (io is the worker's). */
static int
idle_open(struct worker *w, struct io *io)
{
	int c;

	memset(io, 0, sizeof(*io));
	if ((io->fd = tcp_connect()) < 0) {
		snprintf(w->error, sizeof(w->error), "connect: %s",
		    strerror(errno));
		return -1;
	}
	if (idle_starttls) {
		if ((c = io_reply(io)) != 220 ||
		    (c = io_cmd(io, "EHLO client.bench.test\r\n")) != 250 ||
		    (c = io_cmd(io, "STARTTLS\r\n")) != 220) {
			snprintf(w->error, sizeof(w->error), "plain %d", c);
			goto fail;
		}
		if (tls_start(io, w) < 0)
			goto fail;
		if ((c = io_cmd(io, "EHLO client.bench.test\r\n")) != 250) {
			snprintf(w->error, sizeof(w->error), "EHLO2 %d", c);
			goto fail;
		}
	} else {
		if (tls_start(io, w) < 0)
			goto fail;
		if ((c = io_reply(io)) != 220) {
			snprintf(w->error, sizeof(w->error), "greeting %d", c);
			goto fail;
		}
	}
	return 0;
fail:
	if (io->s != NULL)
		gnutls_deinit(io->s);
	close(io->fd);
	return -1;
}

static void *
worker_idle(void *arg)
{
	struct worker *w = arg;

	w->held = calloc((size_t)w->want, sizeof(*w->held));
	while (w->nheld < w->want && w->errors < 100) {
		if (idle_open(w, &w->held[w->nheld]) < 0) {
			w->errors++;
			usleep(10000);
			continue;
		}
		w->nheld++;
	}
	return NULL;
}

/* Idle mode: open them all, report, hold until stdin ends, close. */
static int
idle_main(void)
{
	struct worker *ws = calloc((size_t)nconns, sizeof(*ws));
	unsigned long open = 0, errors = 0;
	const char *err = NULL;
	struct rlimit rl;
	char buf[256];
	double t0 = now_s();

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur < (rlim_t)nidle + 1000) {
		rl.rlim_cur = (rlim_t)nidle + 1000;
		if (rl.rlim_max < rl.rlim_cur)
			rl.rlim_max = rl.rlim_cur;	/* root may */
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	for (int i = 0; i < nconns; i++) {
		ws[i].want = nidle / nconns + (i < nidle % nconns);
		pthread_create(&ws[i].th, NULL, worker_idle, &ws[i]);
	}
	for (int i = 0; i < nconns; i++) {
		pthread_join(ws[i].th, NULL);
		open += (unsigned long)ws[i].nheld;
		errors += ws[i].errors;
		if (err == NULL && ws[i].error[0] != '\0')
			err = ws[i].error;
	}
	printf("{\"mode\": \"idle\", \"open\": %lu, \"errors\": %lu, "
	    "\"first_error\": \"%s\", \"seconds\": %.2f}\n", open, errors,
	    err ? err : "", now_s() - t0);
	fflush(stdout);
	while (read(0, buf, sizeof(buf)) > 0)
		;
	for (int i = 0; i < nconns; i++) {
		for (int j = 0; j < ws[i].nheld; j++) {
			gnutls_deinit(ws[i].held[j].s);
			close(ws[i].held[j].fd);
		}
		free(ws[i].held);
	}
	free(ws);
	return 0;
}

static void *
worker_run(void *arg)
{
	struct worker *w = arg;

	while (!stopping) {
		double t0 = now_s();

		if (one_conn(w) < 0) {
			w->errors++;
			usleep(10000);
			continue;
		}
		if (stopping)
			break;	/* straddles the end: not counted */
		w->done++;
		if (w->nlat == w->caplat) {
			w->caplat = w->caplat ? 2 * w->caplat : 1024;
			w->lat = realloc(w->lat, w->caplat * sizeof(double));
		}
		w->lat[w->nlat++] = (now_s() - t0) * 1000;
	}
	return NULL;
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	struct worker *ws;
	unsigned long done = 0, errors = 0, resumed = 0;
	double *lat, t0, dt;
	size_t nlat = 0, k = 0;
	const char *err = NULL;
	unsigned char plain[600];
	int opt;

	if (argc < 4) {
		fprintf(stderr, "usage: tlsload flow|hs|resume|idle HOST PORT "
		    "[-c N] [-s S] [-u USER -p PASS -r RCPT] [-n N -t]\n");
		return 2;
	}
	mode = strcmp(argv[1], "flow") == 0 ? MODE_FLOW :
	    strcmp(argv[1], "resume") == 0 ? MODE_RESUME :
	    strcmp(argv[1], "idle") == 0 ? MODE_IDLE : MODE_HS;
	host = argv[2];
	port = atoi(argv[3]);
	optind = 4;
	while ((opt = getopt(argc, argv, "c:s:u:p:r:n:t")) != -1) {
		switch (opt) {
		case 'n': nidle = atoi(optarg); break;
		case 't': idle_starttls = true; break;
		case 'c': nconns = atoi(optarg); break;
		case 's': seconds = atof(optarg); break;
		case 'u': user = optarg; break;
		case 'p': pass = optarg; break;
		case 'r': rcpt = optarg; break;
		default: return 2;
		}
	}
	if (strlen(user) + strlen(pass) > 500)
		return 2;
	plain[0] = '\0';
	memcpy(plain + 1, user, strlen(user));
	plain[1 + strlen(user)] = '\0';
	memcpy(plain + 2 + strlen(user), pass, strlen(pass));
	b64(plain, 2 + strlen(user) + strlen(pass), auth_b64);
	{
		/* 1 KB: headers + body lines, then the dot. */
		char *p = message;
		int n = snprintf(p, sizeof(message), "From: <%s>\r\nTo: <%s>\r\n"
		    "Subject: tls bench\r\n\r\n", user, rcpt);

		p += n;
		while (p - message < 1024 - 66)
			p += sprintf(p, "%.62s\r\n", "The quick brown fox "
			    "jumps over the lazy dog, again and again..");
		strcpy(p, ".\r\n");
	}
	gnutls_global_init();
	gnutls_certificate_allocate_credentials(&cred);

	if (mode == MODE_IDLE)
		return idle_main();
	ws = calloc((size_t)nconns, sizeof(*ws));
	t0 = now_s();
	for (int i = 0; i < nconns; i++)
		pthread_create(&ws[i].th, NULL, worker_run, &ws[i]);
	while (now_s() - t0 < seconds)
		usleep(20000);
	stopping = true;
	dt = now_s() - t0;
	for (int i = 0; i < nconns; i++) {
		pthread_join(ws[i].th, NULL);
		done += ws[i].done;
		errors += ws[i].errors;
		resumed += ws[i].resumed;
		nlat += ws[i].nlat;
		if (err == NULL && ws[i].error[0] != '\0')
			err = ws[i].error;
	}
	lat = malloc((nlat + 1) * sizeof(double));
	for (int i = 0; i < nconns; i++)
		for (size_t j = 0; j < ws[i].nlat; j++)
			lat[k++] = ws[i].lat[j];
	qsort(lat, nlat, sizeof(double), cmp_d);
	printf("{\"mode\": \"%s\", \"done\": %lu, \"errors\": %lu, "
	    "\"first_error\": \"%s\", \"seconds\": %.2f, \"per_s\": %.1f, "
	    "\"p50_ms\": %.2f, \"p99_ms\": %.2f, \"resumed\": %lu}\n",
	    argv[1], done, errors, err ? err : "", dt, done / dt,
	    nlat ? lat[nlat / 2] : 0, nlat ? lat[(size_t)(nlat * 0.99)] : 0,
	    resumed);
	for (int i = 0; i < nconns; i++) {
		free(ws[i].lat);
		gnutls_free(ws[i].ticket.data);
	}
	free(ws);
	free(lat);
	gnutls_certificate_free_credentials(cred);
	gnutls_global_deinit();
	return 0;
}
