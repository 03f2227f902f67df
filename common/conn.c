/*
 * A connection on libevent: its lifetime (new, connect, free), the frames
 * every libevent callback runs in, event registration, the idle timer, the
 * output watermark, and the settings and peer a session asks about (one
 * callback, explicit events: OpenSMTPD ioev.c). Bytes move in conn_io.c,
 * TLS starts in conn_tls.c; no protocol knowledge anywhere.
 *
 * Lifetime: every libevent callback runs inside a frame (conn_frame_enter/
 * leave). conn_free() inside a frame only marks the conn; the frame frees it
 * on the way out, so no code here touches freed memory.
 */
#include "common/conn.h"
#include "common/conn_internal.h"
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
#include <netinet/tcp.h>

#include <event2/buffer.h>
#include <event2/event.h>

static struct conn *conn_alloc(struct event_base *base, int fd, conn_cb *cb,
    void *arg);
static void conn_destroy(struct conn *c);
static void conn_set_peer(struct conn *c, const struct sockaddr *sa,
    socklen_t salen);
static void conn_timer_add(struct conn *c, int ms);
static void conn_on_timer(evutil_socket_t fd, short what, void *arg);
static void conn_on_deadline(evutil_socket_t fd, short what, void *arg);
static void conn_deadline_add(struct conn *c, uint64_t ms);
static void conn_on_flush(evutil_socket_t fd, short what, void *arg);
static bool conn_can_write_now(struct conn *c);
static void conn_on_output(struct evbuffer *buf,
    const struct evbuffer_cb_info *info, void *arg);

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
	return conn_connect_from(base, sa, salen, NULL, 0, timeout_ms, cb,
	    arg);
}

struct conn *
conn_connect_from(struct event_base *base, const struct sockaddr *sa,
    socklen_t salen, const struct sockaddr *src, socklen_t srclen,
    int timeout_ms, conn_cb *cb, void *arg)
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
	/* A source address of the other family is a bind error (EINVAL or
	 * EAFNOSUPPORT), reported like a failed connect. */
	if (src != NULL && bind(fd, src, srclen) == -1)
		c->connect_errno = errno;
	else if (connect(fd, sa, salen) == -1 && errno != EINPROGRESS)
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
conn_set_callback(struct conn *c, conn_cb *cb, void *arg)
{
	c->cb = cb;
	c->arg = arg;
}

void
conn_free(struct conn *c)
{
	if (c == NULL || c->freed)
		return;
	if (c->in_frame > 0 || c->tls_hs_busy) {
		/* Inside our own callback: the frame frees it on leaving.
		 * A handshake step on a worker: its result frees it. */
		c->freed = true;
		event_del(c->ev_read);
		event_del(c->ev_kick);
		event_del(c->ev_write);
		event_del(c->ev_flush);
		event_del(c->ev_timer);
		if (c->ev_deadline != NULL)
			event_del(c->ev_deadline);
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
	if (c->ev_deadline != NULL)
		event_free(c->ev_deadline);
	evbuffer_free(c->in);
	evbuffer_free(c->out);
	if (c->fd != -1)
		close(c->fd);
	free(c->line);
	free(c);
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

/*
 * Leaving the outermost frame, the replies the callbacks queued go out at
 * once (one sendmsg for all of them): the write event is registered only
 * if the socket cannot take them, which saves the EPOLLOUT round trip
 * (two epoll_ctl and an epoll_wait) per reply.
 */
void
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

/* Latch the error, report CONN_EV_ERROR once; always returns false. */
bool
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
	if (c->ev_deadline != NULL)
		event_del(c->ev_deadline);
	c->read_added = c->write_added = false;
	(void)conn_dispatch(c, CONN_EV_ERROR);
	return false;
}

/* Make the registered events match the state. */
void
conn_update(struct conn *c)
{
	bool want_r = false, want_w = false;

	if (c->freed)
		return;
	if (c->failed) {
		/* conn_fail removed everything. */
	} else if (c->tls_hs_busy) {
		/* A worker runs a handshake step on the fd. */
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
void
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

/*
 * The deadline's timer: reported like the idle timeout, once. It may come
 * before the deadline, which conn_set_deadline and conn_extend_deadline
 * move later without a timer operation: then it re-arms for the rest.
 */
static void
conn_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	uint64_t now = util_now_ms();

	if (c->failed || c->freed || c->deadline_at == 0)
		return;
	if (now < c->deadline_at) {
		conn_deadline_add(c, c->deadline_at - now);
		return;
	}
	conn_frame_enter(c);
	c->deadline_at = 0;
	c->deadline_passed = true;
	if (c->connecting) {
		c->connecting = false;
		(void)conn_fail(c, "connect %s: timed out", c->peer_ip);
	} else
		(void)conn_dispatch(c, CONN_EV_TIMEOUT);
	conn_frame_leave(c);
}

/* (Re-)arm the deadline's timer for ms from now. */
static void
conn_deadline_add(struct conn *c, uint64_t ms)
{
	struct timeval tv;

	if (c->ev_deadline == NULL &&
	    (c->ev_deadline = evtimer_new(c->base, conn_on_deadline,
	    c)) == NULL)
		log_fatal("event=oom where=conn_set_deadline");
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(c->ev_deadline, &tv);
	c->deadline_timer_at = util_now_ms() + ms;
}

/* ---- settings and buffers --------------------------------------------- */

void
conn_set_deadline(struct conn *c, int ms)
{
	uint64_t at;

	if (c->freed || c->failed)
		return;
	c->deadline_passed = false;
	if (ms <= 0) {
		c->deadline_at = 0;
		if (c->ev_deadline != NULL)
			event_del(c->ev_deadline);
		return;
	}
	at = util_now_ms() + (uint64_t)ms;
	c->deadline_at = at;
	/* A timer due no later than the new deadline re-arms itself when
	 * it comes (a session that sets a deadline per command line pays
	 * no heap operation for it); an earlier deadline needs a new one. */
	if (c->ev_deadline != NULL && c->deadline_timer_at <= at &&
	    evtimer_pending(c->ev_deadline, NULL))
		return;
	conn_deadline_add(c, (uint64_t)ms);
}

void
conn_extend_deadline(struct conn *c, int ms, int max_ms)
{
	uint64_t at, cap;

	if (c->freed || c->failed || c->deadline_at == 0 || ms <= 0)
		return;
	at = c->deadline_at + (uint64_t)ms;
	cap = util_now_ms() + (uint64_t)(max_ms > 0 ? max_ms : 0);
	if (at > cap)
		at = cap;
	if (at > c->deadline_at)
		c->deadline_at = at;
}

bool
conn_deadline_passed(struct conn *c)
{
	return c->deadline_passed;
}

void
conn_set_timeout(struct conn *c, int timeout_ms)
{
	c->timeout_ms = timeout_ms;
	if (!c->connecting)
		conn_timer_rearm(c);
}

int
conn_set_nodelay(struct conn *c)
{
	int on = 1;

	return setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
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
