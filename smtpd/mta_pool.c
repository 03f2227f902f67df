/*
 * Connection reuse for the relay's SMTP client: after a transaction a
 * healthy connection is kept idle for the next message to the same peer
 * ("host[ip]", same source address and HELO name), which sends RSET and
 * goes on with MAIL. Bounded by [relay] max_messages_per_connection, an
 * age limit and an idle timeout (as Postfix's connection cache: 2 s idle,
 * 300 s in all). Also the sender's outbound identity (source address,
 * HELO). Not here: the dialogue (mta.c), the choice of peers
 * (mta_route.c).
 */
#include "smtpd/mta_internal.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/conn.h"
#include "common/log.h"
#include "common/util.h"

#define MTA_QUIT_MS	5000		/* a closing idle connection */

static void mta_idle_cb(struct conn *, enum conn_event, void *);
static void mta_idle_free(struct mta_idle *);
static bool mta_streq(const char *, const char *);

const char *
mta_helo(const struct mta_session *s)
{
	if (s->msg != NULL && s->msg->helo != NULL && s->msg->helo[0] != '\0')
		return s->msg->helo;
	return s->m->helo;
}

/* The address of family af in the message's "ip,ip" source list. */
const char *
mta_source_for(const struct mta_session *s, int af)
{
	static char buf[64];
	const char *p, *e;
	unsigned char tmp[sizeof(struct in6_addr)];
	size_t n;

	if (s->msg == NULL || s->msg->source == NULL)
		return NULL;
	for (p = s->msg->source; *p != '\0'; p = *e ? e + 1 : e) {
		p += strspn(p, " ");
		e = p + strcspn(p, ",");
		n = (size_t)(e - p);
		while (n > 0 && p[n - 1] == ' ')
			n--;
		if (n == 0 || n >= sizeof(buf))
			continue;
		memcpy(buf, p, n);
		buf[n] = '\0';
		if (inet_pton(af, buf, tmp) == 1)
			return buf;
	}
	return NULL;
}

static bool
mta_streq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcasecmp(a, b) == 0;
}

bool
mta_pool_take(struct mta_session *s)
{
	struct mta *m = s->m;
	struct mta_idle *e;
	const char *src;
	uint64_t now = util_now_ms();

	src = mta_source_for(s, s->addrs[s->addr_idx].ss_family);
	for (e = m->idle; e != NULL; e = e->next) {
		if (e->quitting || strcmp(e->label, s->label) != 0 ||
		    !mta_streq(e->source, src) ||
		    !mta_streq(e->helo, mta_helo(s)))
			continue;
		if (now - e->born_ms >= (uint64_t)m->reuse_ms)
			continue;
		if (!mta_route_sts_reuse(s, e->c, e->tls_on))
			continue;
		if (!mta_dane_conn_ok(s, e->c))
			continue;	/* kept before DANE applied */
		break;
	}
	if (e == NULL)
		return false;
	s->c = e->c;
	e->c = NULL;
	conn_set_callback(s->c, mta_conn_cb, s);
	conn_set_timeout(s->c, m->reply_timeout_ms);
	s->ext = e->ext;
	s->ext_size = e->ext_size;
	s->tls_on = e->tls_on;
	s->authed = e->authed;
	s->reused = true;
	s->conn_msgs = e->msgs;
	s->conn_born_ms = e->born_ms;
	free(s->source);
	s->source = e->source;
	e->source = NULL;
	mta_idle_free(e);
	log_debug("event=relay.reuse sid=%s msgid=%s mx=%s messages=%u",
	    s->sid, s->msg->id, LOG_VALUE(s->label), s->conn_msgs);
	mta_enter(s, MTA_S_RSET);
	conn_write(s->c, "RSET\r\n", 6);
	return true;
}

bool
mta_pool_put(struct mta_session *s)
{
	struct mta *m = s->m;
	struct mta_idle *e;

	if (s->conn_msgs + 1 >= m->max_msgs || m->nidle >= m->idle_max ||
	    util_now_ms() - s->conn_born_ms >= (uint64_t)m->reuse_ms ||
	    evbuffer_get_length(conn_input(s->c)) > 0)
		return false;
	/* A peer that throttles us gets no more from this connection. */
	if (mta_reply_is_throttle(s->reply))
		return false;
	e = xcalloc(1, sizeof(*e));
	e->m = m;
	e->c = s->c;
	s->c = NULL;
	memcpy(e->label, s->label, sizeof(e->label));
	e->source = s->source;
	s->source = NULL;
	e->helo = xstrdup(mta_helo(s));
	e->ext = s->ext;
	e->ext_size = s->ext_size;
	e->tls_on = s->tls_on;
	e->authed = s->authed;
	e->msgs = s->conn_msgs + 1;
	e->born_ms = s->conn_born_ms;
	conn_set_callback(e->c, mta_idle_cb, e);
	conn_set_deadline(e->c, 0);
	conn_set_timeout(e->c, m->idle_ms);
	e->next = m->idle;
	if (m->idle != NULL)
		m->idle->prev = e;
	m->idle = e;
	m->nidle++;
	return true;
}

/* An idle connection: its timeout says QUIT, anything else (the peer's
 * 421, EOF) ends it; a quitting one goes once QUIT is out. */
static void
mta_idle_cb(struct conn *c, enum conn_event ev, void *arg)
{
	struct mta_idle *e = arg;

	if (!e->quitting && ev == CONN_EV_TIMEOUT) {
		e->quitting = true;
		conn_write(c, "QUIT\r\n", 6);
		conn_close_after_flush(c);
		conn_set_timeout(c, MTA_QUIT_MS);
		return;
	}
	if (e->quitting && ev == CONN_EV_INPUT)
		return;
	mta_idle_free(e);
}

static void
mta_idle_free(struct mta_idle *e)
{
	struct mta *m = e->m;

	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		m->idle = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	m->nidle--;
	conn_free(e->c);
	free(e->source);
	free(e->helo);
	free(e);
}

void
mta_pool_free(struct mta *m)
{
	while (m->idle != NULL)
		mta_idle_free(m->idle);
}
