/*
 * Moving a connection's bytes: the read step (plain read(2) or GnuTLS
 * records into the input), the flush step (sendmsg or GnuTLS records from
 * the output), the connect step, the read/write event callbacks that run
 * them, and the bounded line reader. Lifetime, frames, event registration
 * and timers are conn.c's; starting TLS and the handshake are conn_tls.c's.
 */
#include "common/conn_internal.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/event.h>

/* Per read event, so one fast client cannot starve the others. */
#define CONN_READ_CHUNK		16384

/* conn_read_step's plaintext read buffer (conn_wipe_line wipes it). */
static __thread char conn_rbuf[CONN_READ_CHUNK];
/* Per write event, same reason. */
#define CONN_WRITE_BUDGET	(256 * 1024)
/* Plaintext per TLS record (RFC 8446 5.1: 2^14). */
#define CONN_TLS_RECORD		16384
#define CONN_WRITE_IOV		16

/* ---- the I/O steps: each returns false when the caller must stop ------ */

bool
conn_read_step(struct conn *c)
{
	size_t total = 0;
	bool eof = false;
	ssize_t n;

	if (c->paused || c->closing || c->eof || c->failed ||
	    c->tls_state == CONN_TLS_WAIT_FLUSH ||
	    c->tls_state == CONN_TLS_HANDSHAKE)
		return true;
	if (c->tls_state == CONN_TLS_ON) {
		/*
		 * Through the per-thread buffer too, not reserved evbuffer
		 * space: a reservation that the read then leaves empty
		 * (EAGAIN, the usual end of a read) stays in the input as
		 * a 16 KB chain, which 10,000 idle TLS sessions paid for.
		 */
		c->tls_read_wants_write = false;
		while (total < CONN_READ_CHUNK) {
			n = tls_session_read(c->tls, conn_rbuf,
			    CONN_READ_CHUNK - total);
			if (n > 0) {
				if (evbuffer_add(c->in, conn_rbuf,
				    (size_t)n) != 0)
					log_fatal("event=oom where=conn_read");
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

bool
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
		return conn_handshake_start(c);
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

bool
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

void
conn_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	conn_frame_enter(c);
	if (c->failed || c->freed || c->connecting || c->tls_hs_busy) {
		/* nothing (a worker runs a handshake step on the fd) */
	} else if (c->tls_state == CONN_TLS_HANDSHAKE) {
		if (!c->closing)
			(void)conn_handshake_step(c);
	} else if (c->tls_state != CONN_TLS_WAIT_FLUSH) {
		if (!c->tls_write_wants_read || conn_flush_step(c))
			(void)conn_read_step(c);
	}
	conn_frame_leave(c);
}

void
conn_on_write(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	conn_frame_enter(c);
	if (c->failed || c->freed || c->tls_hs_busy) {
		/* nothing (a worker runs a handshake step on the fd) */
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
