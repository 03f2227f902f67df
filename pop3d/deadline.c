/*
 * Slow clients: the deadlines of one POP3 session. A command line must be
 * complete within the autologout time of the previous reply, however it
 * trickles in, and a session ends after [pop3d] max_session_time at the
 * next safe point. The deadlines are conn's (conn_set_deadline);
 * session.c's input loop says when a line is awaited.
 */
#include "pop3d/pop3d.h"

#include <event2/buffer.h>
#include <event2/event.h>

#include "common/config.h"
#include "common/conn.h"
#include "common/log.h"
#include "common/util.h"

static void pop3_deadline_life_timer(evutil_socket_t fd, short what,
    void *arg);

void
pop3_deadline_start(struct pop3_session *s)
{
	struct pop3_server *srv = s->srv;
	unsigned secs = srv->cfg->pop3d.max_session_time;
	struct timeval tv;

	if (secs == 0)
		return;
	tv.tv_sec = (time_t)secs;
	tv.tv_usec = 0;
	s->life_timer = evtimer_new(srv->base, pop3_deadline_life_timer, s);
	if (s->life_timer == NULL)
		log_fatal("event=oom where=pop3_deadline_start");
	evtimer_add(s->life_timer, &tv);
}

void
pop3_deadline_stop(struct pop3_session *s)
{
	if (s->life_timer != NULL)
		event_free(s->life_timer);
	s->life_timer = NULL;
}

void
pop3_deadline_line(struct pop3_session *s)
{
	if (s->line_deadline == POP3_DL_ARMED)
		return;
	/* RFC 1939 3's autologout timer, counted from the reply and not
	 * pushed back by each byte of the next line. */
	conn_set_deadline(s->conn, s->srv->timeout_ms);
	s->line_deadline = POP3_DL_ARMED;
}

void
pop3_deadline_line_taken(struct pop3_session *s)
{
	if (s->line_deadline == POP3_DL_ARMED)
		s->line_deadline = POP3_DL_SPENT;
}

void
pop3_deadline_clear(struct pop3_session *s)
{
	if (s->line_deadline == POP3_DL_NONE)
		return;
	conn_set_deadline(s->conn, 0);
	s->line_deadline = POP3_DL_NONE;
}

bool
pop3_deadline_timeout(struct pop3_session *s)
{
	if (s->expired) {
		/* A response that outlived max_session_time by the
		 * autologout time: nothing can be added to it. */
		log_info("event=pop3.slow sid=%s ip=%s limit=max_session_time "
		    "response=unfinished", s->sid, s->ip);
		pop3_session_free(s, "max_session_time");
		return true;
	}
	/* Nothing of the next line has come: that is plain inactivity
	 * (the autologout timer and the line deadline end at the same
	 * moment then, and either may fire first). */
	if (!conn_deadline_passed(s->conn) ||
	    s->line_deadline == POP3_DL_NONE ||
	    evbuffer_get_length(conn_input(s->conn)) == 0)
		return false;
	log_info("event=pop3.slow sid=%s ip=%s limit=command_line", s->sid,
	    s->ip);
	util_strlcpy(s->cmd, "-", sizeof(s->cmd));
	s->cmd_args_len = 0;
	pop3_reply(s, "-ERR Command line not completed in time.");
	pop3_session_close(s, "timeout");
	return true;
}

/* max_session_time passed. Between commands is a safe point (nothing is
 * deleted without QUIT, which runs at once); a response under way is
 * finished first, an auth check or TLS handshake too. */
static void
pop3_deadline_life_timer(evutil_socket_t fd, short what, void *arg)
{
	struct pop3_session *s = arg;

	(void)fd;
	(void)what;
	if (conn_is_closing(s->conn))
		return;
	s->expired = true;
	if (s->cont != NULL) {
		/* A reader slower than that gets no more time. */
		pop3_deadline_clear(s);
		conn_set_deadline(s->conn, s->srv->timeout_ms);
		return;
	}
	pop3_session_kick(s);
	pop3_store_snapshot_end(s->srv);
}

bool
pop3_deadline_expired(struct pop3_session *s)
{
	if (!s->expired)
		return false;
	log_info("event=pop3.slow sid=%s ip=%s limit=max_session_time "
	    "seconds=%u", s->sid, s->ip, s->srv->cfg->pop3d.max_session_time);
	util_strlcpy(s->cmd, "-", sizeof(s->cmd));
	s->cmd_args_len = 0;
	pop3_reply(s, "-ERR [SYS/TEMP] Session time limit exceeded, "
	    "reconnect.");
	pop3_session_close(s, "max_session_time");
	return true;
}
