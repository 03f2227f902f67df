/*
 * In-process fakes for the relay unit tests, on the test's own libevent
 * loop: a DNS server on 127.0.0.1/UDP answering from a table (records,
 * SERVFAIL/NXDOMAIN, or silence), and a scripted SMTP server that can bind
 * any 127.0.0.x address and records what it received. Header-only: each
 * test executable includes it once.
 */
#ifndef CARTEIRO_RELAY_FAKES_H
#define CARTEIRO_RELAY_FAKES_H

#include <arpa/inet.h>
#include <ctype.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Not every test uses every fake. */
#pragma GCC diagnostic ignored "-Wunused-function"

/* ---- DNS ---- */

enum { FAKE_A = 1, FAKE_PTR = 12, FAKE_MX = 15, FAKE_TXT = 16,
    FAKE_AAAA = 28 };
enum { FAKE_OK = 0, FAKE_SERVFAIL = 2, FAKE_NXDOMAIN = 3, FAKE_DROP = 99 };

struct fake_rr {
	const char *name;
	int type;		/* FAKE_A ...; 0 with rcode: whole name */
	const char *data;	/* "10 mx.x", "127.0.0.2", "text" */
	int rcode;		/* FAKE_OK or an error for the name */
};

struct fake_dns {
	int fd;
	struct event *ev;
	const struct fake_rr *rr;
	size_t nrr;
	unsigned port;
	unsigned queries;
	/* RFC 2308: NXDOMAIN/NODATA answers carry an SOA with this TTL and
	 * MINIMUM when either is set. */
	unsigned soa_ttl, soa_min;
	unsigned (*ttl)(const char *name);	/* NULL: 60 s for every record */
};

static size_t
fake_dns_put_name(unsigned char *p, const char *name)
{
	size_t o = 0, n;

	while (*name != '\0' && strcmp(name, ".") != 0) {
		n = strcspn(name, ".");
		p[o++] = (unsigned char)n;
		memcpy(p + o, name, n);
		o += n;
		name += n;
		if (*name == '.')
			name++;
	}
	p[o++] = 0;
	return o;
}

static void
fake_dns_read(evutil_socket_t fd, short what, void *arg)
{
	struct fake_dns *fd_ = arg;
	unsigned char q[512], r[1500];
	struct sockaddr_storage from;
	socklen_t fl = sizeof(from);
	ssize_t n;
	char name[256];
	size_t qo = 12, no = 0, o, i, qend;
	int qtype, rcode = FAKE_NXDOMAIN, ancount = 0;
	bool drop = false;

	(void)what;
	n = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fl);
	if (n < 17)
		return;
	fd_->queries++;
	while (qo < (size_t)n && q[qo] != 0) {
		size_t l = q[qo++];

		if (no > 0)
			name[no++] = '.';
		for (i = 0; i < l && qo < (size_t)n && no < 250; i++)
			name[no++] = (char)tolower(q[qo++]);
	}
	name[no] = '\0';
	qo++;
	qtype = q[qo] << 8 | q[qo + 1];
	qend = qo + 4;
	memcpy(r, q, qend);
	o = qend;
	for (i = 0; i < fd_->nrr; i++) {
		const struct fake_rr *rr = &fd_->rr[i];
		unsigned char *rd;
		size_t rdl;

		if (strcasecmp(rr->name, name) != 0)
			continue;
		if (rr->rcode == FAKE_DROP) {
			drop = true;
			break;
		}
		if (rr->rcode != FAKE_OK) {
			rcode = rr->rcode;
			ancount = 0;
			o = qend;
			break;
		}
		rcode = FAKE_OK;
		if (rr->type != qtype)
			continue;
		r[o++] = 0xc0;
		r[o++] = 12;
		r[o++] = 0;
		r[o++] = (unsigned char)qtype;
		r[o++] = 0;
		r[o++] = 1;
		{
			unsigned ttl = fd_->ttl ? fd_->ttl(name) : 60;

			r[o] = (unsigned char)(ttl >> 24);
			r[o + 1] = (unsigned char)(ttl >> 16);
			r[o + 2] = (unsigned char)(ttl >> 8);
			r[o + 3] = (unsigned char)ttl;
		}
		o += 4;
		rd = r + o + 2;
		if (qtype == FAKE_A) {
			inet_pton(AF_INET, rr->data, rd);
			rdl = 4;
		} else if (qtype == FAKE_AAAA) {
			inet_pton(AF_INET6, rr->data, rd);
			rdl = 16;
		} else if (qtype == FAKE_MX) {
			unsigned pref = (unsigned)atoi(rr->data);
			const char *h = strchr(rr->data, ' ') + 1;

			rd[0] = (unsigned char)(pref >> 8);
			rd[1] = (unsigned char)pref;
			rdl = 2 + fake_dns_put_name(rd + 2, h);
		} else if (qtype == FAKE_PTR) {
			rdl = fake_dns_put_name(rd, rr->data);
		} else {
			size_t tl = strlen(rr->data);

			rd[0] = (unsigned char)tl;
			memcpy(rd + 1, rr->data, tl);
			rdl = 1 + tl;
		}
		r[o] = (unsigned char)(rdl >> 8);
		r[o + 1] = (unsigned char)rdl;
		o += 2 + rdl;
		ancount++;
	}
	if (drop)
		return;
	r[2] = 0x84 | (q[2] & 0x01);	/* QR, AA, RD copied */
	r[3] = 0x80 | (unsigned char)rcode;	/* RA */
	r[4] = 0;
	r[5] = 1;
	r[6] = 0;
	r[7] = (unsigned char)ancount;
	memset(r + 8, 0, 4);
	if ((fd_->soa_ttl || fd_->soa_min) && ancount == 0 &&
	    (rcode == FAKE_NXDOMAIN || rcode == FAKE_OK)) {
		static const unsigned char soa_head[] = { 0xc0, 12, 0, 6, 0, 1 };
		size_t rdo;
		unsigned v[5] = { 1, 3600, 600, 86400, fd_->soa_min };

		memcpy(r + o, soa_head, sizeof(soa_head));
		o += sizeof(soa_head);
		for (i = 0; i < 4; i++)
			r[o++] = (unsigned char)(fd_->soa_ttl >> (24 - 8 * i));
		rdo = o;
		o += 2;
		o += fake_dns_put_name(r + o, "ns.test");
		o += fake_dns_put_name(r + o, "hostmaster.test");
		for (size_t k = 0; k < 5; k++)
			for (i = 0; i < 4; i++)
				r[o++] = (unsigned char)(v[k] >> (24 - 8 * i));
		r[rdo] = (unsigned char)((o - rdo - 2) >> 8);
		r[rdo + 1] = (unsigned char)(o - rdo - 2);
		r[9] = 1;	/* NSCOUNT */
	}
	sendto(fd, r, o, 0, (struct sockaddr *)&from, fl);
}

static void
fake_dns_start(struct fake_dns *d, struct event_base *base,
    const struct fake_rr *rr, size_t nrr)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);

	memset(d, 0, sizeof(*d));
	d->rr = rr;
	d->nrr = nrr;
	d->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(d->fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
		abort();
	getsockname(d->fd, (struct sockaddr *)&sin, &sl);
	d->port = ntohs(sin.sin_port);
	d->ev = event_new(base, d->fd, EV_READ | EV_PERSIST, fake_dns_read, d);
	event_add(d->ev, NULL);
}

static void
fake_dns_stop(struct fake_dns *d)
{
	event_free(d->ev);
	close(d->fd);
}

/* ---- SMTP ---- */

/*
 * Script: greeting code (220, 421, 554; 0: silent), EHLO extensions ("\n"-separated,
 * NULL for "no EHLO": 502), MAIL code, DATA and final codes. RCPT answers
 * by local part prefix: "t4" -> 450, "p5" -> 550, else 250.
 */
struct fake_smtp_cfg {
	int greeting;
	const char *ext;
	int mail;
	int dot;
};

struct fake_smtp {
	struct evconnlistener *lis;
	struct fake_smtp_cfg cfg;
	unsigned port;
	unsigned conns;
	unsigned msgs;
	char from[256];
	char rcpts[1024];	/* "a,b," of the last transaction */
	char mailcmd[512];	/* last MAIL line */
	struct evbuffer *data;	/* last message, unstuffed */
	bool ehlo_seen;
};

struct fake_smtp_conn {
	struct fake_smtp *f;
	struct bufferevent *bev;
	bool in_data;
	bool quitting;
	unsigned accepted;
	struct evbuffer *cur;
};

static void
fake_smtp_conn_free(struct fake_smtp_conn *fc)
{
	bufferevent_free(fc->bev);
	evbuffer_free(fc->cur);
	free(fc);
}

static void fake_smtp_reply(struct fake_smtp_conn *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static void
fake_smtp_reply(struct fake_smtp_conn *fc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(fc->bev), fmt, ap);
	va_end(ap);
}

static void
fake_smtp_line(struct fake_smtp_conn *fc, const char *line, size_t len)
{
	struct fake_smtp *f = fc->f;

	if (fc->in_data) {
		if (strcmp(line, ".") == 0) {
			fc->in_data = false;
			evbuffer_drain(f->data, evbuffer_get_length(f->data));
			evbuffer_add_buffer(f->data, fc->cur);
			f->msgs++;
			fake_smtp_reply(fc, "%d 2.0.0 ok queued\r\n", f->cfg.dot);
			return;
		}
		if (line[0] == '.')
			line++, len--;
		evbuffer_add(fc->cur, line, len);
		evbuffer_add(fc->cur, "\r\n", 2);
		return;
	}
	if (strncasecmp(line, "EHLO", 4) == 0) {
		const char *p = f->cfg.ext;

		f->ehlo_seen = true;
		if (p == NULL) {
			fake_smtp_reply(fc, "%d 5.5.1 what\r\n", 502);
			return;
		}
		evbuffer_add_printf(bufferevent_get_output(fc->bev),
		    "250-fake.test hello\r\n");
		while (*p != '\0') {
			size_t n = strcspn(p, "\n");

			evbuffer_add_printf(bufferevent_get_output(fc->bev),
			    "250-%.*s\r\n", (int)n, p);
			p += n;
			if (*p == '\n')
				p++;
		}
		fake_smtp_reply(fc, "%d HELP\r\n", 250);
	} else if (strncasecmp(line, "HELO", 4) == 0) {
		fake_smtp_reply(fc, "%d fake.test\r\n", 250);
	} else if (strncasecmp(line, "MAIL FROM:", 10) == 0) {
		snprintf(f->mailcmd, sizeof(f->mailcmd), "%s", line);
		snprintf(f->from, sizeof(f->from), "%.*s",
		    (int)strcspn(line + 11, ">"), line + 11);
		f->rcpts[0] = '\0';
		fc->accepted = 0;
		fake_smtp_reply(fc, f->cfg.mail >= 500 ?
		    "%d 5.7.1 sender refused\r\n" : f->cfg.mail >= 400 ?
		    "%d 4.3.0 try later\r\n" : "%d 2.1.0 ok\r\n",
		    f->cfg.mail);
	} else if (strncasecmp(line, "RCPT TO:<", 9) == 0) {
		if (strncmp(line + 9, "t4", 2) == 0)
			fake_smtp_reply(fc, "%d 4.2.1 mailbox busy\r\n", 450);
		else if (strncmp(line + 9, "p5", 2) == 0)
			fake_smtp_reply(fc, "%d 5.1.1 no such user here\r\n",
			    550);
		else {
			size_t l = strlen(f->rcpts);

			snprintf(f->rcpts + l, sizeof(f->rcpts) - l, "%.*s,",
			    (int)strcspn(line + 9, ">"), line + 9);
			fc->accepted++;
			fake_smtp_reply(fc, "%d 2.1.5 ok\r\n", 250);
		}
	} else if (strcasecmp(line, "DATA") == 0) {
		if (fc->accepted == 0) {
			fake_smtp_reply(fc, "%d 5.5.1 no valid recipients\r\n",
			    554);
			return;
		}
		fc->in_data = true;
		evbuffer_drain(fc->cur, evbuffer_get_length(fc->cur));
		fake_smtp_reply(fc, "%d go ahead\r\n", 354);
	} else if (strcasecmp(line, "QUIT") == 0) {
		fake_smtp_reply(fc, "%d bye\r\n", 221);
		fc->quitting = true;
	} else if (strcasecmp(line, "STARTTLS") == 0) {
		/* We cannot do TLS: agree, then hang up (a broken peer). */
		fake_smtp_reply(fc, "%d 2.0.0 ready\r\n", 220);
		fc->quitting = true;
	} else if (strcasecmp(line, "RSET") == 0) {
		fake_smtp_reply(fc, "%d ok\r\n", 250);
	} else {
		fake_smtp_reply(fc, "%d 5.5.2 unknown\r\n", 500);
	}
}

static void
fake_smtp_read(struct bufferevent *bev, void *arg)
{
	struct fake_smtp_conn *fc = arg;
	char *line;
	size_t len;

	while ((line = evbuffer_readln(bufferevent_get_input(bev), &len,
	    EVBUFFER_EOL_CRLF_STRICT)) != NULL) {
		fake_smtp_line(fc, line, len);
		free(line);
	}
}

static void
fake_smtp_write(struct bufferevent *bev, void *arg)
{
	struct fake_smtp_conn *fc = arg;

	if (fc->quitting)
		fake_smtp_conn_free(fc);
}

static void
fake_smtp_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		fake_smtp_conn_free(arg);
}

static void
fake_smtp_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct fake_smtp *f = arg;
	struct fake_smtp_conn *fc;

	f->conns++;
	fc = calloc(1, sizeof(*fc));
	fc->f = f;
	fc->cur = evbuffer_new();
	fc->bev = bufferevent_socket_new(evconnlistener_get_base(l), fd,
	    BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(fc->bev, fake_smtp_read, fake_smtp_write,
	    fake_smtp_event, fc);
	bufferevent_enable(fc->bev, EV_READ | EV_WRITE);
	if (f->cfg.greeting == 0)
		return;		/* never says anything */
	if (f->cfg.greeting != 220) {
		fake_smtp_reply(fc, "%d service not available\r\n",
		    f->cfg.greeting);
		fc->quitting = true;
		return;
	}
	fake_smtp_reply(fc, "%d fake.test ESMTP\r\n", 220);
}

/* Listen on ip:port (port 0: ephemeral; the chosen one is f->port). */
static void
fake_smtp_start(struct fake_smtp *f, struct event_base *base, const char *ip,
    unsigned port, const struct fake_smtp_cfg *cfg)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);

	memset(f, 0, sizeof(*f));
	f->cfg = *cfg;
	f->data = evbuffer_new();
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, ip, &sin.sin_addr);
	sin.sin_port = htons((uint16_t)port);
	f->lis = evconnlistener_new_bind(base, fake_smtp_accept, f,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
	    (struct sockaddr *)&sin, sizeof(sin));
	if (f->lis == NULL)
		abort();
	getsockname(evconnlistener_get_fd(f->lis), (struct sockaddr *)&sin,
	    &sl);
	f->port = ntohs(sin.sin_port);
}

static void
fake_smtp_stop(struct fake_smtp *f)
{
	evconnlistener_free(f->lis);
	evbuffer_free(f->data);
}

/* The last message as a NUL-terminated copy (caller frees). */
static char *
fake_smtp_data(struct fake_smtp *f)
{
	size_t n = evbuffer_get_length(f->data);
	char *s = malloc(n + 1);

	evbuffer_copyout(f->data, s, n);
	s[n] = '\0';
	return s;
}

#endif
