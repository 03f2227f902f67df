/*
 * One milter conversation about one message, as an explicit state machine
 * on conn.h (like the relay's mta.c): connect, option negotiation, then
 * one command per state with the macros Postfix sends at that stage,
 * each answered unless the milter negotiated "no reply" or "skip this
 * step". Collects the verdict and the end-of-body modifications; applying
 * them is milter_apply.c, running milters for a transaction milter_tx.c,
 * connecting and the pool of idle connections milter_link.c.
 */
#include "smtpd/milter.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "common/conn.h"
#include "common/log.h"
#include "common/util.h"
#include "smtpd/milter_int.h"
#include "smtpd/milter_proto.h"

/* Modifications kept from one milter for one message (a header each, at
 * most: 10000 is far past any real filter). */
#define MILTER_MODS_MAX	10000
/* Output queued before the body pump waits for LOWAT (NR_BODY milters). */
#define MILTER_OUT_MAX	(256 * 1024)

static const char *const milter_state_names[MILTER_S_COUNT] = {
	"connecting", "optneg", "connect", "helo", "mail", "rcpt", "data",
	"header", "eoh", "body", "eom", "done",
};

static void milter_run_io(struct milter_run *r, enum conn_event ev);
static void milter_kick(evutil_socket_t fd, short what, void *arg);
static void milter_fail(struct milter_run *r, const char *error);
static void milter_finish(struct milter_run *r, enum milter_verdict v);
static void milter_flush(struct milter_run *r);
static void milter_macros(struct milter_run *r, char cmd);
static int milter_send_next(struct milter_run *r);
static bool milter_pump(struct milter_run *r);
static void milter_input(struct milter_run *r);
static int milter_reply(struct milter_run *r, const struct milter_reply *p);
static void milter_mod_add(struct milter_run *r, const struct milter_reply *p);


struct milter_run *
milter_run_start(struct milter_pool *pool, const char *spec, const char *sid,
    const struct milter_info *info, const struct milter_msg *msg,
    milter_done_cb *done, void *arg)
{
	struct milter_run *r;
	struct milter_link *l;

	r = xcalloc(1, sizeof(*r));
	r->pool = pool;
	r->info = info;
	r->msg = msg;
	r->done = done;
	r->arg = arg;
	r->spec = xstrdup(spec);
	snprintf(r->sid, sizeof(r->sid), "%s", sid);
	r->state = MILTER_S_CONNECTING;
	r->await = MILTER_S_DONE;
	if ((l = milter_pool_take(pool, spec)) != NULL) {
		/* Negotiated already: straight to CONNECT, from the loop
		 * (done is never called from here). */
		l->run = r;
		r->link = l;
		r->c = l->c;
		r->reused = true;
		r->protocol = l->protocol;
		r->res.actions = l->actions;
		r->state = MILTER_S_CONNECT;
		conn_set_timeout(r->c, info->command_timeout_ms);
		r->kick = evtimer_new(pool->base, milter_kick, r);
		event_active(r->kick, EV_TIMEOUT, 1);
		return r;
	}
	if (milter_addr(spec, &r->ss, &r->sslen) != 0) {
		log_warn("event=smtp.milter sid=%s milter=%s error=bad_address",
		    sid, LOG_VALUE(spec));
		milter_run_free(r);
		return NULL;
	}
	if (milter_connect(r) != 0) {
		log_warn("event=smtp.milter sid=%s milter=%s error=\"%s\"",
		    sid, LOG_VALUE(spec), strerror(errno));
		milter_run_free(r);
		return NULL;
	}
	return r;
}

static void
milter_kick(evutil_socket_t fd, short what, void *arg)
{
	struct milter_run *r = arg;

	(void)fd;
	(void)what;
	(void)milter_pump(r);
}

struct milter_result *
milter_run_result(struct milter_run *r)
{
	return &r->res;
}

void
milter_run_free(struct milter_run *r)
{
	struct milter_link *l;
	size_t i;

	if (r == NULL)
		return;
	if ((l = r->link) != NULL) {
		/* A milter that skips CONNECT cannot tell a new "connection"
		 * from the old one (pymilter then loses its state): only
		 * those that see CONNECT are reused. */
		bool clean = r->eom_done && r->res.verdict != MILTER_V_FAILED &&
		    !conn_is_closing(l->c) &&
		    !(r->protocol & MILTER_P_NOCONNECT);

		if (clean && r->pool->nidle < r->pool->max_idle) {
			milter_enc_cmd(&r->out, MILTER_CMD_QUIT_NC);
			milter_flush(r);
			l->run = NULL;
			l->protocol = r->protocol;
			l->actions = r->res.actions;
			conn_set_timeout(l->c, r->pool->idle_ms);
			TAILQ_INSERT_HEAD(&r->pool->idle, l, entry);
			r->pool->nidle++;
		} else {
			if (r->state != MILTER_S_CONNECTING &&
			    !conn_is_closing(l->c) && !(r->reported &&
			    r->res.verdict == MILTER_V_FAILED)) {
				/* Best effort: the milter forgets the
				 * message and the connection. */
				if (r->state != MILTER_S_DONE)
					milter_enc_cmd(&r->out,
					    MILTER_CMD_ABORT);
				milter_enc_cmd(&r->out, MILTER_CMD_QUIT);
				milter_flush(r);
			}
			milter_link_free(l);
		}
	}
	if (r->kick != NULL)
		event_free(r->kick);
	milter_buf_free(&r->out);
	free(r->pkt);
	free(r->spec);
	free(r->res.reply);
	free(r->res.quarantine);
	for (i = 0; i < r->res.nmods; i++) {
		free(r->res.mods[i].name);
		free(r->res.mods[i].value);
	}
	free(r->res.mods);
	free(r->res.body);
	for (i = 0; i < r->res.nrcpt_rejected; i++)
		free(r->res.rcpt_rejected[i]);
	free(r->res.rcpt_rejected);
	free(r);
}

static void
milter_flush(struct milter_run *r)
{
	if (r->out.len == 0)
		return;
	conn_write(r->c, r->out.p, r->out.len);
	r->out.len = 0;
}

/* Report once; the callee may free r, so nothing touches r after this. */
static void
milter_finish(struct milter_run *r, enum milter_verdict v)
{
	if (r->reported)
		return;
	r->reported = true;
	r->res.verdict = v;
	r->waiting = false;
	if (r->c != NULL)
		conn_set_timeout(r->c, 0);
	r->done(r, r->arg);
}

static void
milter_fail(struct milter_run *r, const char *error)
{
	if (r->reused) {
		/* The pooled connection was stale (the milter restarted or
		 * timed it out): once more on a new one. */
		struct milter_link *l = r->link;

		log_info("event=smtp.milter sid=%s milter=%s state=%s "
		    "error=%s action=reconnect", r->sid, LOG_VALUE(r->spec),
		    milter_state_names[r->state], error);
		r->reused = false;
		r->link = NULL;
		r->c = NULL;
		milter_link_free(l);	/* safe inside its callback */
		r->out.len = 0;
		r->idx = 0;
		r->off = 0;
		r->lowat = false;
		if (milter_addr(r->spec, &r->ss, &r->sslen) == 0 &&
		    milter_connect(r) == 0)
			return;
		error = "connect_failed";
	}
	log_warn("event=smtp.milter sid=%s milter=%s state=%s error=%s",
	    r->sid, LOG_VALUE(r->spec), milter_state_names[r->waiting ?
	    r->await : r->state], error);
	r->res.error = error;
	milter_finish(r, MILTER_V_FAILED);
}

void
milter_io(struct conn *c, enum conn_event ev, void *arg)
{
	struct milter_link *l = arg;

	(void)c;
	if (l->run == NULL) {
		/* Idle in the pool: whatever happens (EOF, idle timeout,
		 * stray bytes), it is done. */
		if (ev != CONN_EV_LOWAT)
			milter_link_free(l);
		return;
	}
	milter_run_io(l->run, ev);
}

static void
milter_run_io(struct milter_run *r, enum conn_event ev)
{
	switch (ev) {
	case CONN_EV_CONNECTED:
		/* A request/reply protocol on a kept connection: without
		 * this, Nagle and delayed ACKs cost 40 ms a message. */
		if (r->ss.ss_family != AF_UNIX)
			(void)conn_set_nodelay(r->c);
		r->state = MILTER_S_OPTNEG;
		conn_set_timeout(r->c, r->info->connect_timeout_ms);
		milter_enc_optneg(&r->out, MILTER_VERSION,
		    MILTER_OFFER_ACTIONS, MILTER_OFFER_PROTOCOL);
		r->await = MILTER_S_OPTNEG;
		r->waiting = true;
		milter_flush(r);
		break;
	case CONN_EV_INPUT:
		milter_input(r);
		break;
	case CONN_EV_LOWAT:
		if (r->lowat) {
			r->lowat = false;
			(void)milter_pump(r);
		}
		break;
	case CONN_EV_EOF:
		milter_fail(r, "closed");
		break;
	case CONN_EV_ERROR:
		milter_fail(r, r->state == MILTER_S_CONNECTING ?
		    "connect_failed" : "io_error");
		break;
	case CONN_EV_TIMEOUT:
		milter_fail(r, "timeout");
		break;
	case CONN_EV_TLS_READY:
		break;
	}
}

/* Postfix's macro sets per stage (milter_*_macros), the ones we have. */
static void
milter_macros(struct milter_run *r, char cmd)
{
	const struct milter_info *in = r->info;
	const char *n[8], *v[8];
	size_t k = 0;

#define M(name, val) do { n[k] = (name); v[k] = (val); k++; } while (0)
	switch (cmd) {
	case MILTER_CMD_CONNECT:
		M("j", in->hostname);
		M("_", NULL);
		M("{daemon_name}", in->daemon_name);
		M("{client_addr}", in->client_addr);
		M("{client_name}", in->client_name);
		break;
	case MILTER_CMD_HELO:
		M("{tls_version}", in->tls_version);
		M("{cipher}", in->cipher);
		break;
	case MILTER_CMD_MAIL:
		M("i", in->queue_id);
		M("{auth_type}", in->auth_type);
		M("{auth_authen}", in->auth_authen);
		M("{mail_addr}", in->mail_from);
		break;
	case MILTER_CMD_RCPT:
		M("i", in->queue_id);
		M("{rcpt_addr}", in->rcpts[r->idx]);
		break;
	default:
		M("i", in->queue_id);
		break;
	}
#undef M
	if (cmd == MILTER_CMD_CONNECT) {
		/* "_": Sendmail's "name [addr]" of the client. */
		char *u = xasprintf("%s [%s]", in->client_name,
		    in->client_addr);

		v[1] = u;
		milter_enc_macros(&r->out, cmd, n, v, k);
		free(u);
		return;
	}
	milter_enc_macros(&r->out, cmd, n, v, k);
}

/*
 * Queue the next command (with its macros) and advance. Returns 1 when
 * its reply is awaited (r->await says for which state), 0 when the pump
 * waits for LOWAT, -1 when the run failed and was reported (r may be
 * gone).
 */
static int
milter_send_next(struct milter_run *r)
{
	const struct milter_info *in = r->info;
	const struct milter_msg *m = r->msg;
	uint32_t p = r->protocol;
	const char *a[1];
	char *t;

	for (;;) {
		enum milter_state st = r->state;
		bool sent = false;
		uint32_t nr = 0;

		switch (st) {
		case MILTER_S_CONNECT:
			r->state = MILTER_S_HELO;
			if (p & MILTER_P_NOCONNECT)
				continue;
			milter_macros(r, MILTER_CMD_CONNECT);
			milter_enc_connect(&r->out, in->client_name,
			    in->family, in->client_port, in->client_addr);
			sent = true;
			nr = MILTER_P_NR_CONN;
			break;
		case MILTER_S_HELO:
			r->state = MILTER_S_MAIL;
			if ((p & MILTER_P_NOHELO) || in->helo == NULL)
				continue;
			milter_macros(r, MILTER_CMD_HELO);
			a[0] = in->helo;
			milter_enc_strs(&r->out, MILTER_CMD_HELO, a, 1);
			sent = true;
			nr = MILTER_P_NR_HELO;
			break;
		case MILTER_S_MAIL:
			r->state = MILTER_S_RCPT;
			r->idx = 0;
			if (p & MILTER_P_NOMAIL)
				continue;
			milter_macros(r, MILTER_CMD_MAIL);
			t = xasprintf("<%s>", in->mail_from);
			a[0] = t;
			milter_enc_strs(&r->out, MILTER_CMD_MAIL, a, 1);
			free(t);
			sent = true;
			nr = MILTER_P_NR_MAIL;
			break;
		case MILTER_S_RCPT:
			if (r->idx >= in->nrcpts || (p & MILTER_P_NORCPT)) {
				r->state = MILTER_S_DATA;
				continue;
			}
			milter_macros(r, MILTER_CMD_RCPT);
			t = xasprintf("<%s>", in->rcpts[r->idx]);
			a[0] = t;
			milter_enc_strs(&r->out, MILTER_CMD_RCPT, a, 1);
			free(t);
			r->idx++;
			sent = true;
			nr = MILTER_P_NR_RCPT;
			break;
		case MILTER_S_DATA:
			r->state = MILTER_S_HEADER;
			r->idx = 0;
			/* The content timeout covers headers, body, EOM. */
			conn_set_timeout(r->c, in->content_timeout_ms);
			if (p & MILTER_P_NODATA)
				continue;
			milter_macros(r, MILTER_CMD_DATA);
			milter_enc_cmd(&r->out, MILTER_CMD_DATA);
			sent = true;
			nr = MILTER_P_NR_DATA;
			break;
		case MILTER_S_HEADER:
			if (r->idx >= m->nh || (p & MILTER_P_NOHDRS)) {
				r->state = MILTER_S_EOH;
				continue;
			}
			{
				const char *v = m->h[r->idx].value;

				/* Without HDR_LEADSPC the space after the
				 * colon is ours, as with Sendmail. */
				if (!(p & MILTER_P_HDR_LEADSPC) && *v == ' ')
					v++;
				milter_enc_header(&r->out,
				    m->h[r->idx].name, v);
			}
			r->idx++;
			sent = true;
			nr = MILTER_P_NR_HDR;
			break;
		case MILTER_S_EOH:
			r->state = MILTER_S_BODY;
			r->off = 0;
			if (p & MILTER_P_NOEOH)
				continue;
			milter_macros(r, MILTER_CMD_EOH);
			milter_enc_cmd(&r->out, MILTER_CMD_EOH);
			sent = true;
			nr = MILTER_P_NR_EOH;
			break;
		case MILTER_S_BODY:
			if (r->off >= m->body_len || (p & MILTER_P_NOBODY)) {
				r->state = MILTER_S_EOM;
				continue;
			}
			if (conn_output_len(r->c) + r->out.len >
			    MILTER_OUT_MAX) {
				r->lowat = true;
				return 0;
			}
			{
				unsigned char buf[MILTER_CHUNK_MAX];
				uint64_t left = m->body_len - r->off;
				size_t n = left > sizeof(buf) ? sizeof(buf) :
				    (size_t)left;
				ssize_t got = milter_msg_body_read(m, buf, n,
				    r->off);

				if (got <= 0) {
					milter_fail(r, "spool_read");
					return -1;
				}
				milter_enc_body(&r->out, buf, (size_t)got);
				r->off += (uint64_t)got;
			}
			sent = true;
			nr = MILTER_P_NR_BODY;
			break;
		case MILTER_S_EOM:
			r->state = MILTER_S_DONE;
			milter_macros(r, MILTER_CMD_BODYEOB);
			milter_enc_cmd(&r->out, MILTER_CMD_BODYEOB);
			r->await = MILTER_S_EOM;
			return 1;
		default:
			return 0;
		}
		if (sent && !(p & nr)) {
			r->await = st;
			return 1;
		}
	}
}

/* Send until a reply is awaited. True when the run was reported
 * meanwhile (r may be gone). */
static bool
milter_pump(struct milter_run *r)
{
	int rc = milter_send_next(r);

	if (rc < 0)
		return true;
	r->waiting = rc > 0;
	milter_flush(r);
	return false;
}

static void
milter_input(struct milter_run *r)
{
	struct evbuffer *in = conn_input(r->c);
	const unsigned char *data;
	struct milter_reply rep;
	size_t len, dlen, used;
	uint32_t n;
	char cmd;

	for (;;) {
		len = evbuffer_get_length(in);
		if (len < 4)
			return;
		memcpy(&n, evbuffer_pullup(in, 4), 4);
		n = ntohl(n);
		if (n == 0 || n > MILTER_PKT_MAX) {
			milter_fail(r, "bad_packet");
			return;
		}
		if (len < 4 + (size_t)n)
			return;
		/* Our own copy: the reply may end the run, and the input
		 * buffer must be drained before that. */
		if (r->pkt_cap < 4 + (size_t)n) {
			r->pkt_cap = 4 + (size_t)n;
			r->pkt = xrealloc(r->pkt, r->pkt_cap);
		}
		evbuffer_remove(in, r->pkt, 4 + (size_t)n);
		if (milter_pkt_take(r->pkt, 4 + (size_t)n, &cmd, &data, &dlen,
		    &used) != 0 || milter_reply_decode(cmd, data, dlen,
		    &rep) != 0) {
			milter_fail(r, "bad_reply");
			return;
		}
		r->reused = false;	/* the link works */
		if (milter_reply(r, &rep) != 0)
			return;		/* reported: r may be gone */
	}
}

static void
milter_mod_add(struct milter_run *r, const struct milter_reply *p)
{
	struct milter_mod *m;

	r->res.mods = xrealloc(r->res.mods, (r->res.nmods + 1) *
	    sizeof(*r->res.mods));
	m = &r->res.mods[r->res.nmods++];
	m->cmd = p->cmd == MILTER_R_ADDRCPT_PAR ? MILTER_R_ADDRCPT : p->cmd;
	m->index = p->index;
	m->name = p->name != NULL ? xstrdup(p->name) : NULL;
	m->value = xstrdup(p->value != NULL ? p->value : "");
}

/* One reply packet. 0: read on; 1: the result was reported (r may be
 * freed). */
static int
milter_reply(struct milter_run *r, const struct milter_reply *p)
{
	static const uint32_t need[128] = {
		[MILTER_R_ADDHEADER] = MILTER_F_ADDHDRS,
		[MILTER_R_INSHEADER] = MILTER_F_ADDHDRS,
		[MILTER_R_CHGHEADER] = MILTER_F_CHGHDRS,
		[MILTER_R_REPLBODY] = MILTER_F_CHGBODY,
		[MILTER_R_ADDRCPT] = MILTER_F_ADDRCPT,
		[MILTER_R_ADDRCPT_PAR] = MILTER_F_ADDRCPT_PAR,
		[MILTER_R_DELRCPT] = MILTER_F_DELRCPT,
		[MILTER_R_QUARANTINE] = MILTER_F_QUARANTINE,
		[MILTER_R_CHGFROM] = MILTER_F_CHGFROM,
	};
	enum milter_verdict v;
	unsigned char c = (unsigned char)p->cmd;

	if (!r->waiting) {
		milter_fail(r, "unexpected_reply");
		return 1;
	}
	if (r->await == MILTER_S_OPTNEG) {
		if (p->cmd != MILTER_R_OPTNEG || p->version < 2) {
			milter_fail(r, "optneg");
			return 1;
		}
		r->res.actions = p->actions & MILTER_OFFER_ACTIONS;
		r->protocol = p->protocol & MILTER_OFFER_PROTOCOL;
		conn_set_timeout(r->c, r->info->command_timeout_ms);
		r->state = MILTER_S_CONNECT;
		return milter_pump(r);
	}
	if (c < 128 && need[c] != 0) {
		/* Modifications come only before the EOM reply, and only
		 * those negotiated. */
		if (r->await != MILTER_S_EOM || !(r->res.actions & need[c])) {
			milter_fail(r, "modification_not_allowed");
			return 1;
		}
		if (p->cmd == MILTER_R_QUARANTINE) {
			free(r->res.quarantine);
			r->res.quarantine = xstrdup(p->value);
		} else if (p->cmd == MILTER_R_REPLBODY) {
			if (r->res.bodylen + p->bodylen >
			    r->info->max_body) {
				milter_fail(r, "body_too_large");
				return 1;
			}
			r->res.body = xrealloc(r->res.body, r->res.bodylen +
			    p->bodylen + 1);
			memcpy(r->res.body + r->res.bodylen, p->body,
			    p->bodylen);
			r->res.bodylen += p->bodylen;
			r->res.body_replaced = true;
		} else {
			if (r->res.nmods >= MILTER_MODS_MAX) {
				milter_fail(r, "too_many_modifications");
				return 1;
			}
			milter_mod_add(r, p);
		}
		return 0;
	}
	switch (p->cmd) {
	case MILTER_R_PROGRESS:
		return 0;
	case MILTER_R_CONTINUE:
		if (r->await == MILTER_S_EOM) {
			r->eom_done = true;
			milter_finish(r, MILTER_V_CONTINUE);
			return 1;
		}
		return milter_pump(r);
	case MILTER_R_SKIP:
		if (r->await != MILTER_S_BODY) {
			milter_fail(r, "bad_skip");
			return 1;
		}
		r->state = MILTER_S_EOM;
		return milter_pump(r);
	case MILTER_R_ACCEPT:
		milter_finish(r, MILTER_V_CONTINUE);
		return 1;
	case MILTER_R_DISCARD:
		milter_finish(r, MILTER_V_DISCARD);
		return 1;
	case MILTER_R_REJECT:
	case MILTER_R_TEMPFAIL:
	case MILTER_R_REPLYCODE:
		v = p->cmd == MILTER_R_REJECT ? MILTER_V_REJECT :
		    p->cmd == MILTER_R_TEMPFAIL ? MILTER_V_TEMPFAIL :
		    milter_replycode_class(p->value) == 5 ? MILTER_V_REJECT :
		    MILTER_V_TEMPFAIL;
		if (r->await == MILTER_S_RCPT) {
			/* A refused recipient, not the message. */
			r->res.rcpt_rejected = xrealloc(r->res.rcpt_rejected,
			    (r->res.nrcpt_rejected + 1) * sizeof(char *));
			r->res.rcpt_rejected[r->res.nrcpt_rejected++] =
			    xstrdup(r->info->rcpts[r->idx - 1]);
			if (p->cmd == MILTER_R_REPLYCODE) {
				free(r->res.reply);
				r->res.reply = xstrdup(p->value);
			}
			return milter_pump(r);
		}
		if (p->cmd == MILTER_R_REPLYCODE)
			r->res.reply = xstrdup(p->value);
		milter_finish(r, v);
		return 1;
	case MILTER_R_CONN_FAIL:
	case MILTER_R_SHUTDOWN:
		milter_fail(r, "shutdown");
		return 1;
	default:
		milter_fail(r, "unknown_reply");
		return 1;
	}
}
