/*
 * Slow clients: the deadlines of one SMTP session. A command line must be
 * complete within the command timeout of the previous reply, however it
 * trickles in; DATA and BDAT bytes must keep [smtpd] min_data_rate; and a
 * session ends after [smtpd] max_session_time at the next safe point.
 * The deadlines are conn's (conn_set_deadline); session.c's input loop
 * says when a line or data is awaited, this file arms what fits.
 */
#include "smtpd/smtpd.h"

#include <event2/event.h>

#include "common/config.h"
#include "common/conn.h"
#include "common/log.h"
#include "common/util.h"

static void smtp_deadline_life_timer(evutil_socket_t fd, short what,
    void *arg);

void
smtp_deadline_start(struct smtp_session *s)
{
	struct smtp_server *srv = s->lst->srv;
	unsigned secs = srv->cfg->smtpd.max_session_time;
	struct timeval tv;

	if (secs == 0)
		return;
	tv.tv_sec = (time_t)secs;
	tv.tv_usec = 0;
	s->life_timer = evtimer_new(srv->base, smtp_deadline_life_timer, s);
	if (s->life_timer == NULL)
		log_fatal("event=oom where=smtp_deadline_start");
	evtimer_add(s->life_timer, &tv);
}

void
smtp_deadline_stop(struct smtp_session *s)
{
	if (s->life_timer != NULL)
		event_free(s->life_timer);
	s->life_timer = NULL;
}

void
smtp_deadline_line(struct smtp_session *s)
{
	if (s->deadline == SMTP_DL_LINE)
		return;
	/* RFC 5321 4.5.3.2.7 gives the server 5 minutes for the next
	 * command; counted from the reply, not pushed back by each byte
	 * (Postfix's smtpd_per_request_deadline). */
	conn_set_deadline(s->conn, s->lst->srv->timeout_cmd_ms);
	s->deadline = SMTP_DL_LINE;
}

void
smtp_deadline_line_taken(struct smtp_session *s)
{
	if (s->deadline == SMTP_DL_LINE)
		s->deadline = SMTP_DL_LINE_SPENT;
}

void
smtp_deadline_data(struct smtp_session *s)
{
	struct smtp_server *srv = s->lst->srv;

	if (s->deadline == SMTP_DL_DATA)
		return;
	s->deadline = SMTP_DL_DATA;
	s->data_bytes = 0;
	s->data_credit_ms = 0;
	/* Off: only the idle timeout, as before. */
	conn_set_deadline(s->conn, srv->cfg->smtpd.min_data_rate > 0 ?
	    srv->timeout_data_ms : 0);
}

/*
 * Postfix's smtpd_min_data_rate: each byte earns 1/rate seconds of
 * deadline, never more than the DATA timeout ahead. A client at the rate
 * or above never runs out; one below it loses the difference every second
 * and is cut off after at most T / (1 - its_rate / min_rate).
 */
void
smtp_deadline_bytes(struct smtp_session *s, size_t n)
{
	struct smtp_server *srv = s->lst->srv;
	unsigned rate = srv->cfg->smtpd.min_data_rate;
	uint64_t earned;

	if (s->deadline != SMTP_DL_DATA || rate == 0 || n == 0)
		return;
	s->data_bytes += n;
	/* Whole milliseconds of the running total: no rounding drift. */
	earned = s->data_bytes * 1000 / rate;
	if (earned > s->data_credit_ms) {
		conn_extend_deadline(s->conn,
		    (int)(earned - s->data_credit_ms), srv->timeout_data_ms);
		s->data_credit_ms = earned;
	}
}

void
smtp_deadline_clear(struct smtp_session *s)
{
	if (s->deadline == SMTP_DL_NONE)
		return;
	conn_set_deadline(s->conn, 0);
	s->deadline = SMTP_DL_NONE;
}

void
smtp_deadline_timeout(struct smtp_session *s)
{
	struct smtp_server *srv = s->lst->srv;

	smtp_session_set_cmd(s, "(timeout)", 9);
	if (conn_deadline_passed(s->conn) && s->deadline == SMTP_DL_DATA) {
		log_info("event=smtp.slow sid=%s ip=%s limit=min_data_rate "
		    "rate=%u bytes=%llu", s->sid, conn_peer_ip(s->conn),
		    srv->cfg->smtpd.min_data_rate,
		    (unsigned long long)s->data_bytes);
		/* Postfix's code for a missed deadline (4.4.2: connection
		 * dropped); the message is not kept (smtp_tx_reset). */
		smtp_reply(s, "421 4.4.2 %s Error: timeout exceeded, data "
		    "rate below %u bytes/s", smtp_session_hostname(s),
		    srv->cfg->smtpd.min_data_rate);
		smtp_session_close(s, "data_rate");
		return;
	}
	smtp_reply(s, "421 4.4.2 %s Error: timeout exceeded",
	    smtp_session_hostname(s));
	smtp_session_close(s, "timeout");
}

/* max_session_time passed. Reading a command or a message is a safe
 * point: an unanswered message is not kept. An async step (the commit
 * above all) is not: smtp_session_resume ends the session after it. */
static void
smtp_deadline_life_timer(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	(void)fd;
	(void)what;
	if (conn_is_closing(s->conn))
		return;
	s->expired = true;
	if (s->mode == SMTP_MODE_WAIT)
		return;
	(void)smtp_deadline_expired(s);
}

bool
smtp_deadline_expired(struct smtp_session *s)
{
	if (!s->expired)
		return false;
	log_info("event=smtp.slow sid=%s ip=%s limit=max_session_time "
	    "seconds=%u", s->sid, conn_peer_ip(s->conn),
	    s->lst->srv->cfg->smtpd.max_session_time);
	smtp_session_set_cmd(s, "(session time)", 14);
	smtp_reply(s, "421 4.4.2 %s Error: session time limit exceeded",
	    smtp_session_hostname(s));
	smtp_session_close(s, "max_session_time");
	return true;
}
