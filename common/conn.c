/*
 * A connection on libevent: the fd, a read and a write event, an idle timer,
 * the input and output evbuffers, optional TLS (tls.h) and the bounded line
 * reader. One callback reports explicit events (OpenSMTPD ioev.c). It owns
 * no protocol knowledge; sessions own the conn and free it.
 *
 * Lifetime: every libevent callback runs inside a frame (conn_frame_enter/
 * leave). conn_free() inside a frame only marks the conn; the frame frees it
 * on the way out, so no code here touches freed memory.
 */
#include "common/conn.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/util.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/event.h>

/* Per read event, so one fast client cannot starve the others. */
#define CONN_READ_CHUNK		16384
/* Per write event, same reason. */
#define CONN_WRITE_BUDGET	(256 * 1024)
/* Plaintext per TLS record (RFC 8446 5.1: 2^14). */
#define CONN_TLS_RECORD		16384
#define CONN_WRITE_IOV		16

enum conn_tls_state {
	CONN_TLS_NONE,
	CONN_TLS_WAIT_FLUSH,	/* conn_starttls*: plaintext output first */
	CONN_TLS_HANDSHAKE,
	CONN_TLS_ON,
};

struct conn {
	struct event_base *base;
	int fd;
	struct event *ev_read;
	struct event *ev_kick;	/* re-runs the read side from the loop: an
				 * I/O event made active with event_active()
				 * is not registered by event_add() until it
				 * has run (libevent 2.1), so we never
				 * activate ev_read itself */
	struct event *ev_write;
	struct event *ev_flush;	/* the optimistic write for output queued
				 * outside our own callbacks (made active,
				 * never added) */
	struct event *ev_timer;	/* idle timeout, or connect timeout */
	bool read_added;
	bool write_added;
	bool flush_pending;	/* ev_flush is active */
	bool write_blocked;	/* the last flush left output behind: wait
				 * for the socket to be writable */
	struct evbuffer *in;
	struct evbuffer *out;
	conn_cb *cb;
	void *arg;

	int timeout_ms;		/* idle timeout, 0 = none */
	uint64_t progress_ms;	/* util_now_ms() of the last progress */
	int timer_ms;		/* timeout ev_timer was armed for, 0 = none */
	int connect_timeout_ms;
	size_t lowat;
	bool lowat_armed;	/* output was above lowat since last LOWAT */

	bool connecting;
	int connect_errno;	/* connect(2) failed at once */
	bool paused;
	bool closing;		/* conn_close_after_flush */
	bool close_notified;	/* closing: the final LOWAT was reported */
	bool eof;
	bool failed;		/* CONN_EV_ERROR reported */
	bool redeliver;		/* resume: report buffered input again */
	int in_frame;		/* > 0 while a libevent callback runs */
	bool freed;		/* conn_free() inside a frame */

	enum conn_tls_state tls_state;
	struct tls_session *tls;
	int tls_hs_want;	/* TLS_IO_WANT_* while handshaking */
	bool tls_read_wants_write;
	bool tls_write_wants_read;
	size_t tls_wlen;	/* GnuTLS E_AGAIN: retry with this length */
	size_t plain_left;	/* WAIT_FLUSH: plaintext bytes still to send;
				 * output queued later waits for TLS */

	char *line;		/* conn_getline scratch, line_cap bytes */
	size_t line_cap;
	bool line_skip;		/* discarding a too-long line up to LF */

	struct sockaddr_storage peer;
	socklen_t peer_len;
	char peer_ip[INET6_ADDRSTRLEN];
	bool peer_loopback;

	size_t bytes_in;	/* application bytes (after TLS) */
	size_t bytes_out;
	char error[256];
};

/* conn_read_step's plaintext read buffer (conn_wipe_line wipes it). */
static __thread char conn_rbuf[CONN_READ_CHUNK];

static struct conn *conn_alloc(struct event_base *base, int fd, conn_cb *cb,
    void *arg);
static void conn_destroy(struct conn *c);
static void conn_set_peer(struct conn *c, const struct sockaddr *sa,
    socklen_t salen);
static void conn_frame_enter(struct conn *c);
static void conn_frame_leave(struct conn *c);
static bool conn_dispatch(struct conn *c, enum conn_event ev);
static bool conn_fail(struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void conn_update(struct conn *c);
static void conn_timer_rearm(struct conn *c);
static void conn_timer_add(struct conn *c, int ms);
static bool conn_read_step(struct conn *c);
static bool conn_flush_step(struct conn *c);
static bool conn_handshake_step(struct conn *c);
static bool conn_connect_step(struct conn *c);
static void conn_on_read(evutil_socket_t fd, short what, void *arg);
static void conn_on_write(evutil_socket_t fd, short what, void *arg);
static void conn_on_timer(evutil_socket_t fd, short what, void *arg);
static void conn_on_flush(evutil_socket_t fd, short what, void *arg);
static bool conn_can_write_now(struct conn *c);
static void conn_on_output(struct evbuffer *buf,
    const struct evbuffer_cb_info *info, void *arg);
static int conn_starttls_common(struct conn *c, struct tls_ctx *ctx,
    int is_server, const char *server_name);

static struct conn *
conn_alloc(struct event_base *base, int fd, conn_cb *cb, void *arg)
{
	struct conn *c;
	int fl;

	if ((fl = fcntl(fd, F_GETFL)) != -1 && !(fl & O_NONBLOCK))
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	c = xcalloc(1, sizeof(*c));
	c->base = base;
	c->fd = fd;
	c->cb = cb;
	c->arg = arg;
	c->in = evbuffer_new();
	c->out = evbuffer_new();
	c->ev_read = event_new(base, fd, EV_READ | EV_PERSIST, conn_on_read,
	    c);
	c->ev_write = event_new(base, fd, EV_WRITE | EV_PERSIST,
	    conn_on_write, c);
	c->ev_timer = evtimer_new(base, conn_on_timer, c);
	c->ev_kick = event_new(base, -1, 0, conn_on_read, c);
	c->ev_flush = event_new(base, -1, 0, conn_on_flush, c);
	if (c->in == NULL || c->out == NULL || c->ev_read == NULL ||
	    c->ev_kick == NULL || c->ev_flush == NULL ||
	    c->ev_write == NULL || c->ev_timer == NULL)
		log_fatal("event=oom where=conn_new");
	evbuffer_add_cb(c->out, conn_on_output, c);
	util_strlcpy(c->peer_ip, "unknown", sizeof(c->peer_ip));
	return c;
}

struct conn *
conn_new(struct event_base *base, int fd, conn_cb *cb, void *arg)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
		len = 0;
	return conn_new_peer(base, fd, len ? (struct sockaddr *)&ss : NULL,
	    len, cb, arg);
}

struct conn *
conn_new_peer(struct event_base *base, int fd, const struct sockaddr *sa,
    socklen_t salen, conn_cb *cb, void *arg)
{
	struct conn *c;

	c = conn_alloc(base, fd, cb, arg);
	if (sa != NULL)
		conn_set_peer(c, sa, salen);
	conn_update(c);
	return c;
}

struct conn *
conn_connect(struct event_base *base, const struct sockaddr *sa,
    socklen_t salen, int timeout_ms, conn_cb *cb, void *arg)
{
	struct conn *c;
	int fd;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1)
		return NULL;
	c = conn_alloc(base, fd, cb, arg);
	conn_set_peer(c, sa, salen);
	c->connecting = true;
	c->connect_timeout_ms = timeout_ms;
	if (connect(fd, sa, salen) == -1 && errno != EINPROGRESS)
		c->connect_errno = errno;
	/* Even an immediate result is reported from the loop: the caller
	 * gets exactly one CONNECTED or ERROR, never during this call. */
	conn_timer_rearm(c);
	conn_update(c);
	if (c->connect_errno != 0)
		event_active(c->ev_write, EV_WRITE, 1);
	return c;
}

void
conn_free(struct conn *c)
{
	if (c == NULL || c->freed)
		return;
	if (c->in_frame > 0) {
		/* Inside our own callback: the frame frees it on leaving. */
		c->freed = true;
		event_del(c->ev_read);
		event_del(c->ev_kick);
		event_del(c->ev_write);
		event_del(c->ev_flush);
		event_del(c->ev_timer);
		return;
	}
	conn_destroy(c);
}

static void
conn_destroy(struct conn *c)
{
	tls_session_free(c->tls);
	event_free(c->ev_read);
	event_free(c->ev_kick);
	event_free(c->ev_write);
	event_free(c->ev_flush);
	event_free(c->ev_timer);
	evbuffer_free(c->in);
	evbuffer_free(c->out);
	if (c->fd != -1)
		close(c->fd);
	free(c->line);
	free(c);
}

void
conn_set_callback(struct conn *c, conn_cb *cb, void *arg)
{
	c->cb = cb;
	c->arg = arg;
}

static void
conn_set_peer(struct conn *c, const struct sockaddr *sa, socklen_t salen)
{
	if (salen > sizeof(c->peer))
		salen = sizeof(c->peer);
	memcpy(&c->peer, sa, salen);
	c->peer_len = salen;
	c->peer_loopback = false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;
		inet_ntop(AF_INET, &sin->sin_addr, c->peer_ip,
		    sizeof(c->peer_ip));
		c->peer_loopback = (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;
		const struct in6_addr *a = &sin6->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a)) {
			/* ::ffff:a.b.c.d is an IPv4 peer: log it as one. */
			inet_ntop(AF_INET, &a->s6_addr[12], c->peer_ip,
			    sizeof(c->peer_ip));
			c->peer_loopback = a->s6_addr[12] == 127;
		} else {
			inet_ntop(AF_INET6, a, c->peer_ip, sizeof(c->peer_ip));
			c->peer_loopback = IN6_IS_ADDR_LOOPBACK(a);
		}
	} else if (sa->sa_family == AF_UNIX) {
		/* socketpair / local socket: as local as it gets. */
		util_strlcpy(c->peer_ip, "local", sizeof(c->peer_ip));
		c->peer_loopback = true;
	}
}

/* ---- frames and events -------------------------------------------------- */

static void
conn_frame_enter(struct conn *c)
{
	c->in_frame++;
}

/*
 * Leaving the outermost frame, the replies the callbacks queued go out at
 * once (one sendmsg for all of them): the write event is registered only
 * if the socket cannot take them, which saves the EPOLLOUT round trip
 * (two epoll_ctl and an epoll_wait) per reply.
 */
static void
conn_frame_leave(struct conn *c)
{
	assert(c->in_frame > 0);
	if (c->in_frame == 1 && conn_can_write_now(c))
		(void)conn_flush_step(c);
	if (--c->in_frame > 0)
		return;
	if (c->freed)
		conn_destroy(c);
	else
		conn_update(c);
}

/* Report ev; false if the callback freed the conn (stop touching it). */
static bool
conn_dispatch(struct conn *c, enum conn_event ev)
{
	assert(c->in_frame > 0);
	if (c->freed)
		return false;
	c->cb(c, ev, c->arg);
	return !c->freed;
}

/* Latch the error, report CONN_EV_ERROR once; always returns false. */
static bool
conn_fail(struct conn *c, const char *fmt, ...)
{
	va_list ap;

	if (c->failed)
		return false;
	c->failed = true;
	va_start(ap, fmt);
	vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
	event_del(c->ev_read);
	event_del(c->ev_kick);
	event_del(c->ev_write);
	event_del(c->ev_flush);
	event_del(c->ev_timer);
	c->read_added = c->write_added = false;
	(void)conn_dispatch(c, CONN_EV_ERROR);
	return false;
}

/* Make the registered events match the state. */
static void
conn_update(struct conn *c)
{
	bool want_r = false, want_w = false;

	if (c->freed)
		return;
	if (c->failed) {
		/* conn_fail removed everything. */
	} else if (c->connecting) {
		want_w = true;
	} else {
		switch (c->tls_state) {
		case CONN_TLS_HANDSHAKE:
			if (c->closing) {
				/* Nothing can be sent: see conn_on_write. */
				want_w = !c->close_notified;
				break;
			}
			want_r = c->tls_hs_want == TLS_IO_WANT_READ;
			want_w = c->tls_hs_want == TLS_IO_WANT_WRITE;
			break;
		case CONN_TLS_WAIT_FLUSH:
			/* Writable fires at once when output is empty and
			 * conn_flush_step starts the handshake. */
			want_w = !c->close_notified;
			break;
		case CONN_TLS_NONE:
		case CONN_TLS_ON:
			want_r = (!c->paused && !c->closing && !c->eof) ||
			    c->tls_write_wants_read;
			want_w = evbuffer_get_length(c->out) > 0 ||
			    c->tls_read_wants_write ||
			    (c->closing && !c->close_notified);
			break;
		}
	}
	/*
	 * Output that may fit the socket: no write event yet. Inside a
	 * frame, frame_leave writes it; outside (a reply from another
	 * thread's result, a greeting), ev_flush does, later in this same
	 * loop iteration.
	 */
	if (want_w && !c->write_added && conn_can_write_now(c)) {
		want_w = false;
		if (c->in_frame == 0 && !c->flush_pending) {
			c->flush_pending = true;
			event_active(c->ev_flush, EV_WRITE, 1);
		}
	}
	if (want_r != c->read_added) {
		if (want_r)
			event_add(c->ev_read, NULL);
		else
			event_del(c->ev_read);
		c->read_added = want_r;
	}
	if (want_w != c->write_added) {
		if (want_w)
			event_add(c->ev_write, NULL);
		else
			event_del(c->ev_write);
		c->write_added = want_w;
	}
}

static void
conn_timer_add(struct conn *c, int ms)
{
	struct timeval tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(c->ev_timer, &tv);
}

/*
 * Progress: the idle timeout starts again. Lazily: while a timer for the
 * same timeout is pending only the time of progress is noted, and
 * conn_on_timer re-arms for what is left. Re-adding the timer at each
 * read and write (a heap operation each) showed in the loop's profile.
 */
static void
conn_timer_rearm(struct conn *c)
{
	int ms = c->connecting ? c->connect_timeout_ms : c->timeout_ms;

	if (c->freed || c->failed)
		return;
	if (ms <= 0) {
		event_del(c->ev_timer);
		c->timer_ms = 0;
		return;
	}
	c->progress_ms = util_now_ms();
	if (c->timer_ms == ms && evtimer_pending(c->ev_timer, NULL))
		return;
	c->timer_ms = ms;
	conn_timer_add(c, ms);
}

/*
 * True when queued output can be written without waiting for the loop:
 * plain or established TLS, nothing in the way, and no write event already
 * waiting for room in the socket.
 */
static bool
conn_can_write_now(struct conn *c)
{
	if (c->freed || c->failed || c->connecting || c->write_added ||
	    c->write_blocked || c->tls_read_wants_write)
		return false;
	if (c->tls_state != CONN_TLS_NONE && c->tls_state != CONN_TLS_ON)
		return false;
	return evbuffer_get_length(c->out) > 0 ||
	    (c->closing && !c->close_notified);
}

/* Bytes appended to the output, by conn_write or directly: arm LOWAT. */
static void
conn_on_output(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct conn *c = arg;

	if (info->n_added == 0 || c->freed)
		return;
	if (evbuffer_get_length(buf) > c->lowat && !c->closing)
		c->lowat_armed = true;
	/* Inside a frame, frame_leave writes it. */
	if (!c->write_added && c->in_frame == 0)
		conn_update(c);
}

/* ---- the I/O steps: each returns false when the caller must stop ------ */

static bool
conn_read_step(struct conn *c)
{
	struct evbuffer_iovec iov;
	size_t total = 0;
	bool eof = false;
	ssize_t n;

	if (c->paused || c->closing || c->eof || c->failed ||
	    c->tls_state == CONN_TLS_WAIT_FLUSH ||
	    c->tls_state == CONN_TLS_HANDSHAKE)
		return true;
	if (c->tls_state == CONN_TLS_ON) {
		c->tls_read_wants_write = false;
		while (total < CONN_READ_CHUNK) {
			ev_ssize_t room = (ev_ssize_t)(CONN_READ_CHUNK -
			    total);

			if (evbuffer_reserve_space(c->in, room, &iov, 1) != 1)
				log_fatal("event=oom where=conn_read");
			/* reserve_space may offer more than asked for. */
			if (iov.iov_len > CONN_READ_CHUNK - total)
				iov.iov_len = CONN_READ_CHUNK - total;
			n = tls_session_read(c->tls, iov.iov_base,
			    iov.iov_len);
			if (n > 0) {
				iov.iov_len = (size_t)n;
				evbuffer_commit_space(c->in, &iov, 1);
				total += (size_t)n;
				continue;
			}
			if (n == TLS_IO_WANT_WRITE)
				c->tls_read_wants_write = true;
			else if (n == TLS_IO_EOF)
				eof = true;
			else if (n == TLS_IO_ERROR)
				return conn_fail(c, "%s",
				    tls_session_error(c->tls));
			break;
		}
	} else {
		/*
		 * read(2), not evbuffer_read (it asks FIONREAD first, an
		 * ioctl per read), into a per-thread buffer rather than
		 * reserved evbuffer space: the input then holds chains the
		 * size of what arrived, so thousands of clients that each
		 * sent a few bytes of a line cost about 1 KB each, not 32.
		 */
		char *rbuf = conn_rbuf;

		for (;;) {
			n = read(c->fd, rbuf, sizeof(conn_rbuf));
			if (n > 0) {
				if (evbuffer_add(c->in, rbuf, (size_t)n) != 0)
					log_fatal("event=oom where=conn_read");
				total = (size_t)n;
			} else if (n == 0)
				eof = true;
			else if (errno == EINTR)
				continue;
			else if (errno != EAGAIN && errno != EWOULDBLOCK)
				return conn_fail(c, "read: %s",
				    strerror(errno));
			break;
		}
	}
	if (total > 0) {
		c->bytes_in += total;
		c->redeliver = false;
		conn_timer_rearm(c);
		if (!conn_dispatch(c, CONN_EV_INPUT))
			return false;
	} else if (c->redeliver) {
		c->redeliver = false;
		if (evbuffer_get_length(c->in) > 0 &&
		    !conn_dispatch(c, CONN_EV_INPUT))
			return false;
	}
	if (eof && !c->failed) {
		c->eof = true;
		if (!conn_dispatch(c, CONN_EV_EOF))
			return false;
	}
	/* Plaintext already decrypted inside GnuTLS never makes the socket
	 * readable again: come back from the loop to drain it. */
	if (c->tls_state == CONN_TLS_ON && !c->paused && !c->closing &&
	    !c->eof && !c->failed && tls_session_pending(c->tls) > 0)
		event_active(c->ev_kick, EV_READ, 1);
	return !c->failed;
}

static bool
conn_flush_step(struct conn *c)
{
	struct evbuffer_iovec iov[CONN_WRITE_IOV];
	struct msghdr msg;
	size_t written = 0, len, want, sum;
	ssize_t n;
	int niov;

	if (c->failed)
		return false;
	c->tls_write_wants_read = false;
	for (;;) {
		len = evbuffer_get_length(c->out);
		if (c->tls_state == CONN_TLS_WAIT_FLUSH)
			len = c->plain_left;
		if (len == 0 || written >= CONN_WRITE_BUDGET)
			break;
		if (c->tls_state == CONN_TLS_ON) {
			want = c->tls_wlen ? c->tls_wlen :
			    (len < CONN_TLS_RECORD ? len : CONN_TLS_RECORD);
			/* Only we drain the output, so the bytes GnuTLS
			 * took are still at its front. */
			assert(want <= len);
			n = tls_session_write(c->tls,
			    evbuffer_pullup(c->out, (ev_ssize_t)want), want);
			if (n == TLS_IO_WANT_WRITE || n == TLS_IO_WANT_READ) {
				/* GnuTLS wants the same length next time. */
				c->tls_wlen = want;
				c->tls_write_wants_read =
				    n == TLS_IO_WANT_READ;
				break;
			}
			if (n < 0)
				return conn_fail(c, "%s",
				    tls_session_error(c->tls));
			c->tls_wlen = 0;
		} else {
			niov = evbuffer_peek(c->out, (ev_ssize_t)len, NULL,
			    iov, CONN_WRITE_IOV);
			if (niov > CONN_WRITE_IOV)
				niov = CONN_WRITE_IOV;
			/* Never past len: before a handshake, what was
			 * queued after conn_starttls* waits for TLS. */
			sum = 0;
			for (int i = 0; i < niov; i++) {
				if (iov[i].iov_len > len - sum)
					iov[i].iov_len = len - sum;
				sum += iov[i].iov_len;
			}
			memset(&msg, 0, sizeof(msg));
			msg.msg_iov = (struct iovec *)iov;
			msg.msg_iovlen = (size_t)niov;
			/* MSG_NOSIGNAL: a vanished peer is an error, not a
			 * SIGPIPE for the whole daemon. */
			n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
			if (n == -1 && errno == EINTR)
				continue;
			if (n == -1 && (errno == EAGAIN ||
			    errno == EWOULDBLOCK))
				break;
			if (n == -1)
				return conn_fail(c, "write: %s",
				    strerror(errno));
			if (c->tls_state == CONN_TLS_WAIT_FLUSH)
				c->plain_left -= (size_t)n;
		}
		evbuffer_drain(c->out, (size_t)n);
		written += (size_t)n;
	}
	/* EAGAIN, or the budget spent: the write event takes over. */
	c->write_blocked = evbuffer_get_length(c->out) > 0;
	if (written > 0) {
		c->bytes_out += written;
		conn_timer_rearm(c);
	}
	if (c->tls_state == CONN_TLS_WAIT_FLUSH) {
		if (c->plain_left > 0)
			return true;
		if (c->closing) {
			if (c->close_notified)
				return true;
			c->close_notified = true;
			return conn_dispatch(c, CONN_EV_LOWAT);
		}
		/* The plaintext reply to STARTTLS is out: handshake now. */
		c->tls_state = CONN_TLS_HANDSHAKE;
		return conn_handshake_step(c);
	}
	if (c->lowat_armed && evbuffer_get_length(c->out) <= c->lowat) {
		c->lowat_armed = false;
		if (!c->closing && !conn_dispatch(c, CONN_EV_LOWAT))
			return false;
	}
	/* The LOWAT callback may have written more, or closed. */
	if (evbuffer_get_length(c->out) > 0 || c->failed)
		return !c->failed;
	if (c->closing && !c->close_notified) {
		if (c->tls_state == CONN_TLS_ON)
			tls_session_bye(c->tls);
		c->close_notified = true;
		return conn_dispatch(c, CONN_EV_LOWAT);
	}
	return true;
}

static bool
conn_handshake_step(struct conn *c)
{
	int r;

	r = tls_session_handshake(c->tls);
	if (r == TLS_IO_WANT_READ || r == TLS_IO_WANT_WRITE) {
		c->tls_hs_want = r;
		return true;
	}
	if (r != TLS_IO_OK)
		return conn_fail(c, "%s", tls_session_error(c->tls));
	c->tls_state = CONN_TLS_ON;
	c->tls_hs_want = 0;
	conn_timer_rearm(c);
	if (!conn_dispatch(c, CONN_EV_TLS_READY))
		return false;
	/* Application data may have arrived with the client's Finished. */
	event_active(c->ev_kick, EV_READ, 1);
	return true;
}

static bool
conn_connect_step(struct conn *c)
{
	socklen_t len = sizeof(int);
	int err = c->connect_errno;

	if (err == 0 &&
	    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err == EINPROGRESS || err == EALREADY)
		return true;
	c->connecting = false;
	if (err != 0)
		return conn_fail(c, "connect %s: %s", c->peer_ip,
		    strerror(err));
	conn_timer_rearm(c);
	return conn_dispatch(c, CONN_EV_CONNECTED);
}

static void
conn_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	conn_frame_enter(c);
	if (c->failed || c->freed || c->connecting) {
		/* nothing */
	} else if (c->tls_state == CONN_TLS_HANDSHAKE) {
		if (!c->closing)
			(void)conn_handshake_step(c);
	} else if (c->tls_state != CONN_TLS_WAIT_FLUSH) {
		if (!c->tls_write_wants_read || conn_flush_step(c))
			(void)conn_read_step(c);
	}
	conn_frame_leave(c);
}

static void
conn_on_write(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	conn_frame_enter(c);
	if (c->failed || c->freed) {
		/* nothing */
	} else if (c->connecting) {
		(void)conn_connect_step(c);
	} else if (c->tls_state == CONN_TLS_HANDSHAKE && c->closing) {
		/* Closed mid-handshake (a timeout): what was queued can
		 * never be sent, so the close completes at once. */
		if (!c->close_notified) {
			evbuffer_drain(c->out, evbuffer_get_length(c->out));
			c->close_notified = true;
			(void)conn_dispatch(c, CONN_EV_LOWAT);
		}
	} else if (c->tls_state == CONN_TLS_HANDSHAKE) {
		(void)conn_handshake_step(c);
	} else {
		if (!c->tls_read_wants_write || conn_read_step(c))
			(void)conn_flush_step(c);
	}
	conn_frame_leave(c);
}

/* The optimistic write for output queued outside a frame. */
static void
conn_on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	c->flush_pending = false;
	conn_frame_enter(c);
	conn_frame_leave(c);
}

static void
conn_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	uint64_t idle = util_now_ms() - c->progress_ms;

	if (!c->failed && !c->freed && c->timer_ms > 0 &&
	    idle < (uint64_t)c->timer_ms) {
		/* There was progress since the timer was armed. */
		conn_timer_add(c, c->timer_ms - (int)idle);
		return;
	}
	c->timer_ms = 0;
	conn_frame_enter(c);
	if (c->failed || c->freed) {
		/* nothing */
	} else if (c->connecting) {
		c->connecting = false;
		(void)conn_fail(c, "connect %s: timed out", c->peer_ip);
	} else {
		(void)conn_dispatch(c, CONN_EV_TIMEOUT);
	}
	conn_frame_leave(c);
}

/* ---- settings and buffers --------------------------------------------- */

void
conn_set_timeout(struct conn *c, int timeout_ms)
{
	c->timeout_ms = timeout_ms;
	if (!c->connecting)
		conn_timer_rearm(c);
}

void
conn_set_lowat(struct conn *c, size_t lowat)
{
	c->lowat = lowat;
	if (evbuffer_get_length(c->out) > lowat)
		c->lowat_armed = true;
}

void
conn_pause_read(struct conn *c)
{
	c->paused = true;
	conn_update(c);
}

void
conn_resume_read(struct conn *c)
{
	if (!c->paused)
		return;
	c->paused = false;
	if (c->failed || c->freed)
		return;
	/* Pipelined input that arrived while paused is reported again from
	 * the loop (never from inside this call). */
	if (evbuffer_get_length(c->in) > 0 || (c->tls_state == CONN_TLS_ON &&
	    tls_session_pending(c->tls) > 0)) {
		c->redeliver = true;
		event_active(c->ev_kick, EV_READ, 1);
	}
	conn_update(c);
}

struct evbuffer *
conn_input(struct conn *c)
{
	return c->in;
}

struct evbuffer *
conn_output(struct conn *c)
{
	return c->out;
}

size_t
conn_output_len(struct conn *c)
{
	return evbuffer_get_length(c->out);
}

void
conn_write(struct conn *c, const void *data, size_t len)
{
	if (c->failed || c->freed || len == 0)
		return;
	evbuffer_add(c->out, data, len);
}

void
conn_printf(struct conn *c, const char *fmt, ...)
{
	va_list ap;

	if (c->failed || c->freed)
		return;
	va_start(ap, fmt);
	evbuffer_add_vprintf(c->out, fmt, ap);
	va_end(ap);
}

void
conn_close_after_flush(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	c->lowat_armed = false;
	evbuffer_drain(c->in, evbuffer_get_length(c->in));
	/* A peer that stops reading still gets a TIMEOUT. */
	conn_timer_rearm(c);
	conn_update(c);
}

bool
conn_is_closing(struct conn *c)
{
	return c->closing;
}

/* ---- line reader -------------------------------------------------------- */

enum conn_line
conn_getline(struct conn *c, size_t max, char **line_r, size_t *len_r,
    bool *bare_lf_r)
{
	size_t len, scan, n;
	unsigned char *p, *lf;
	bool bare;

	assert(max > 0);
	if (c->line_skip) {
		len = evbuffer_get_length(c->in);
		if (len == 0)
			return CONN_LINE_NONE;
		p = evbuffer_pullup(c->in, -1);
		lf = memchr(p, '\n', len);
		if (lf == NULL) {
			evbuffer_drain(c->in, len);
			return CONN_LINE_NONE;
		}
		evbuffer_drain(c->in, (size_t)(lf - p) + 1);
		c->line_skip = false;
	}
	len = evbuffer_get_length(c->in);
	if (len == 0)
		return CONN_LINE_NONE;
	scan = len < max ? len : max;
	p = evbuffer_pullup(c->in, (ev_ssize_t)scan);
	lf = memchr(p, '\n', scan);
	if (lf == NULL) {
		if (len < max)
			return CONN_LINE_NONE;
		/* max bytes without LF: drop them, and the rest of the line
		 * as it arrives, so the session can reply and carry on. */
		evbuffer_drain(c->in, max);
		c->line_skip = true;
		len = evbuffer_get_length(c->in);
		if (len > 0) {
			p = evbuffer_pullup(c->in, -1);
			lf = memchr(p, '\n', len);
			if (lf != NULL) {
				evbuffer_drain(c->in, (size_t)(lf - p) + 1);
				c->line_skip = false;
			} else {
				evbuffer_drain(c->in, len);
			}
		}
		return CONN_LINE_TOO_LONG;
	}
	n = (size_t)(lf - p);
	bare = n == 0 || p[n - 1] != '\r';
	if (c->line_cap < n + 1) {
		c->line_cap = n + 1 < 256 ? 256 : n + 1;
		c->line = xrealloc(c->line, c->line_cap);
	}
	memcpy(c->line, p, n);
	/* Drained chains go back to malloc as they are: leave no line (it
	 * may be a password) behind in them. */
	util_wipe(p, n + 1);
	evbuffer_drain(c->in, n + 1);
	if (!bare)
		n--;
	c->line[n] = '\0';
	*line_r = c->line;
	if (len_r != NULL)
		*len_r = n;
	if (bare_lf_r != NULL)
		*bare_lf_r = bare;
	return CONN_LINE_OK;
}

void
conn_wipe_line(struct conn *c)
{
	if (c->line != NULL)
		util_wipe(c->line, c->line_cap);
	util_wipe(conn_rbuf, sizeof(conn_rbuf));
}

/* ---- TLS ---------------------------------------------------------------- */

static int
conn_starttls_common(struct conn *c, struct tls_ctx *ctx, int is_server,
    const char *server_name)
{
	if (c->tls_state != CONN_TLS_NONE || c->failed || c->freed ||
	    c->closing || c->connecting) {
		snprintf(c->error, sizeof(c->error), "starttls: bad state");
		return -1;
	}
	c->tls = tls_session_new(ctx, c->fd, is_server, server_name);
	if (c->tls == NULL) {
		snprintf(c->error, sizeof(c->error),
		    "starttls: cannot create TLS session");
		return -1;
	}
	/* RFC 3207 6 / RFC 2595 4: anything the peer sent before the
	 * handshake is discarded, never executed after it. */
	evbuffer_drain(c->in, evbuffer_get_length(c->in));
	c->line_skip = false;
	c->redeliver = false;
	c->lowat_armed = false;
	c->plain_left = evbuffer_get_length(c->out);
	c->tls_state = CONN_TLS_WAIT_FLUSH;
	conn_timer_rearm(c);
	conn_update(c);
	return 0;
}

int
conn_starttls(struct conn *c, struct tls_ctx *ctx)
{
	return conn_starttls_common(c, ctx, 1, NULL);
}

int
conn_starttls_client(struct conn *c, struct tls_ctx *ctx,
    const char *server_name)
{
	return conn_starttls_common(c, ctx, 0, server_name);
}

bool
conn_is_tls(struct conn *c)
{
	return c->tls_state == CONN_TLS_ON;
}

bool
conn_tls_verified(struct conn *c)
{
	return c->tls_state == CONN_TLS_ON && tls_session_verified(c->tls);
}

const char *
conn_tls_version(struct conn *c)
{
	return c->tls_state == CONN_TLS_ON ? tls_session_version(c->tls) :
	    NULL;
}

const char *
conn_tls_cipher(struct conn *c)
{
	return c->tls_state == CONN_TLS_ON ? tls_session_cipher(c->tls) :
	    NULL;
}

const char *
conn_error(struct conn *c)
{
	return c->error;
}

/* ---- peer and counters ------------------------------------------------ */

const char *
conn_peer_ip(struct conn *c)
{
	return c->peer_ip;
}

bool
conn_peer_is_loopback(struct conn *c)
{
	return c->peer_loopback;
}

const struct sockaddr *
conn_peer_addr(struct conn *c, socklen_t *len_r)
{
	if (len_r != NULL)
		*len_r = c->peer_len;
	return c->peer_len > 0 ? (const struct sockaddr *)&c->peer : NULL;
}

size_t
conn_bytes_in(struct conn *c)
{
	return c->bytes_in;
}

size_t
conn_bytes_out(struct conn *c)
{
	return c->bytes_out;
}
