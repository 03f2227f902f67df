/*
 * RETR and TOP: the message read from the store, dot-stuffed, and written
 * in steps as the client drains its output (session.c resumes the step on
 * LOWAT). On SQLite every read runs on the loop, in one read snapshot per
 * callback (pop3_store_snapshot). On PostgreSQL a message of at most
 * POP3_FETCH_MEM bytes (64 KB, one chunk: most mail) is read whole on a
 * readq thread (readq.c), in one statement, while the session waits. A
 * bigger one is read on the loop as before (64 KB chunks, a round trip
 * each), and so is anything after a stall (stall.c lets go of the
 * read-ahead).
 */
#include "pop3d/pop3d.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/stats.h"
#include "common/util.h"
#include "store/maildrop_lock.h"
#include "store/store.h"

/* One RETR/TOP read: copies in, results out; the session is not touched
 * off the loop. */
struct pop3_fetch_job {
	struct pop3_session *s;		/* loop side only */
	int64_t id;			/* mailbox row */
	uint64_t want;			/* read at most this many bytes */
	/* Out. */
	enum { POP3_FETCH_OK, POP3_FETCH_GONE, POP3_FETCH_ERROR } res;
	uint64_t size;			/* the whole message's */
	unsigned char *data;		/* malloc'd, len bytes */
	size_t len;
	/* The thread's connection was made again: the server restarted,
	 * and the loop's connection has lost its maildrop locks too. */
	bool reconnected;
	char error[256];
};

static void pop3_fetch_begin(struct pop3_session *, uint64_t);
static bool pop3_fetch_step(struct pop3_session *);
static bool pop3_fetch_reopen(struct pop3_session *);
static void pop3_fetch_failed(struct pop3_session *, bool, const char *);
static void pop3_fetch_work(void *, void *);
static void pop3_fetch_done(void *, bool);

void
pop3_fetch_readahead_free(struct pop3_session *s)
{
	free(s->fetch_mem);
	s->fetch_mem = NULL;
	s->fetch_mem_len = 0;
}

/* On a readq thread. */
static void
pop3_fetch_work(void *arg, void *ctx)
{
	struct pop3_fetch_job *job = arg;
	struct store *st = ctx;
	struct store_body *b;
	unsigned epoch;
	ssize_t r;

	job->res = POP3_FETCH_ERROR;
	if (st == NULL) {
		util_strlcpy(job->error, "no store connection",
		    sizeof(job->error));
		return;
	}
	epoch = store_maildrop_lock_epoch(st);
	b = store_message_open(st, job->id, &job->size);
	job->reconnected = store_maildrop_lock_epoch(st) != epoch;
	if (b == NULL) {
		if (store_error_is_gone(st))
			job->res = POP3_FETCH_GONE;
		util_strlcpy(job->error, store_error(st), sizeof(job->error));
		return;
	}
	if (job->want > job->size)
		job->want = job->size;
	job->data = xmalloc(job->want > 0 ? job->want : 1);
	while (job->len < job->want) {
		r = store_body_read(b, job->len, job->data + job->len,
		    job->want - job->len);
		if (r < 0) {
			util_strlcpy(job->error, store_error(st),
			    sizeof(job->error));
			store_body_close(b);
			return;
		}
		if (r == 0)
			break;		/* shorter than recorded */
		job->len += (size_t)r;
	}
	store_body_close(b);
	job->res = POP3_FETCH_OK;
}

/* ---- RETR, TOP ---- */

void
pop3_fetch_cmd(struct pop3_session *s, char *args, bool top)
{
	struct pop3_fetch_job *job;
	struct store_msg *m;
	const char *rest = NULL;
	uint32_t lines = 0;
	size_t idx;
	uint64_t size;

	if ((m = pop3_cmd_msg(s, args, top ? &rest : NULL, &idx)) == NULL)
		return;
	if (top && (rest == NULL || pop3_parse_number(rest, &lines,
	    NULL) < 0)) {
		pop3_reply(s, "-ERR Invalid number of lines.");
		return;
	}
	s->fetch_idx = idx;
	pop3_stuff_init(&s->stuff, top, lines);
	/* A bigger message stays on the loop: a read-ahead held by a
	 * client that does not read would cost memory on top of the open
	 * body that reads the rest. */
	if (s->srv->readq[POP3_READQ_FETCH] != NULL &&
	    m->size <= POP3_FETCH_MEM) {
		job = xcalloc(1, sizeof(*job));
		job->s = s;
		job->id = m->id;
		job->want = POP3_FETCH_MEM;
		if (!pop3_readq_submit(s, POP3_READQ_FETCH, job,
		    pop3_fetch_work, pop3_fetch_done)) {
			free(job);
			log_warn("event=pop3.cmd sid=%s user=%s cmd=%s "
			    "result=tempfail error=pool_full", s->sid,
			    LOG_VALUE(s->maildrop), LOG_VALUE(s->cmd));
			pop3_reply(s, "-ERR [SYS/TEMP] Couldn't read the "
			    "message, try again later.");
		}
		return;
	}
	pop3_store_snapshot(s->srv);
	s->body = store_message_open(s->srv->store, m->id, &size);
	if (s->body == NULL) {
		pop3_fetch_failed(s, store_error_is_gone(s->srv->store),
		    store_error(s->srv->store));
		return;
	}
	pop3_fetch_begin(s, size);
}

/* Runs on the loop; cancelled after pop3_readq_cancel (pop3_session_free). */
static void
pop3_fetch_done(void *arg, bool cancelled)
{
	struct pop3_fetch_job *job = arg;
	struct pop3_session *s = job->s;

	if (cancelled) {
		free(job->data);
		free(job);
		return;
	}
	pop3_readq_done(s, job->reconnected);
	if (conn_is_closing(s->conn)) {
		/* pop3_session_close came first: nothing more is sent. */
		free(job->data);
	} else if (job->res != POP3_FETCH_OK) {
		free(job->data);
		pop3_fetch_failed(s, job->res == POP3_FETCH_GONE, job->error);
	} else {
		s->fetch_mem = job->data;
		s->fetch_mem_len = job->len;
		/* Read short: the body is shorter than recorded, and the
		 * response ends there. */
		pop3_fetch_begin(s, job->len < job->want ? job->len :
		    job->size);
	}
	free(job);
	pop3_session_kick(s);	/* pipelined commands: the next RETR */
}

static void
pop3_fetch_failed(struct pop3_session *s, bool gone, const char *error)
{
	if (gone) {
		/* Another session of this user deleted it since our login
		 * (lock_session = no): a race, not a fault, and final. */
		log_info("event=pop3.cmd sid=%s user=%s cmd=%s result=gone",
		    s->sid, LOG_VALUE(s->maildrop), LOG_VALUE(s->cmd));
		pop3_reply(s, "-ERR Message was deleted by another session.");
		return;
	}
	log_error("event=pop3.cmd sid=%s user=%s cmd=%s result=err "
	    "error=\"%s\"", s->sid, LOG_VALUE(s->maildrop), LOG_VALUE(s->cmd),
	    error);
	pop3_reply(s, "-ERR [SYS/TEMP] Couldn't read the message, try "
	    "again later.");
}

/* The message is open (s->body) or its start read (s->fetch_mem), and
 * body_size bytes of it are to be sent: the status line, then the steps. */
static void
pop3_fetch_begin(struct pop3_session *s, uint64_t body_size)
{
	s->body_off = 0;
	s->body_size = body_size;
	s->fetch_stall_ms = 0;
	s->multi = true;
	stats_inc(STATS_POP3_RETR);
	if (s->stuff.top)
		pop3_reply(s, "+OK");
	else
		pop3_reply(s, "+OK %llu octets",
		    (unsigned long long)s->msgs[s->fetch_idx].size);
	pop3_session_start_cont(s, pop3_fetch_step);
}

/*
 * One step: read POP3_READ_CHUNK bytes (from fetch_mem while it lasts,
 * else from the store), stuff, write, until the output reaches
 * POP3_OUT_HIGH; resumed on LOWAT. A store error in the middle of a
 * response cannot be reported any more: hang up, so the client sees a
 * truncated response rather than a wrong message.
 */
static bool
pop3_fetch_step(struct pop3_session *s)
{
	struct pop3_server *srv = s->srv;
	size_t n;

	s->fetch_stall_ms = 0;
	while (conn_output_len(s->conn) < POP3_OUT_HIGH) {
		if (!s->stuff.done && s->body_off < s->body_size) {
			uint64_t want = s->body_size - s->body_off;
			const char *from = srv->readbuf;
			ssize_t r;

			if (want > POP3_READ_CHUNK)
				want = POP3_READ_CHUNK;
			if (s->fetch_mem != NULL &&
			    s->body_off < s->fetch_mem_len) {
				if (want > s->fetch_mem_len - s->body_off)
					want = s->fetch_mem_len - s->body_off;
				from = (const char *)s->fetch_mem + s->body_off;
				r = (ssize_t)want;
			} else {
				pop3_store_snapshot(srv);
				/* Not open yet past fetch_mem, or stall.c
				 * closed it while the client did not read:
				 * open it and read on. */
				if (s->body == NULL && !pop3_fetch_reopen(s))
					return true;
				r = store_body_read(s->body, s->body_off,
				    srv->readbuf, (size_t)want);
			}
			if (r < 0) {
				log_error("event=pop3.cmd sid=%s user=%s "
				    "cmd=%s result=err error=\"%s\"", s->sid,
				    LOG_VALUE(s->maildrop), LOG_VALUE(s->cmd),
				    store_error(srv->store));
				store_body_close(s->body);
				s->body = NULL;
				pop3_session_close(s, "store_error");
				return true;
			}
			if (r == 0) {
				/* shorter than recorded: end it here */
				s->body_size = s->body_off;
				continue;
			}
			n = pop3_stuff_run(&s->stuff, from, (size_t)r,
			    srv->scratch);
			conn_write(s->conn, srv->scratch, n);
			s->cmd_bytes += n;
			s->body_off += (uint64_t)r;
			continue;
		}
		n = pop3_stuff_end(&s->stuff, srv->scratch);
		conn_write(s->conn, srv->scratch, n);
		store_body_close(s->body);
		s->body = NULL;
		pop3_fetch_readahead_free(s);
		s->cmd_bytes += n;
		/* pop3.disconnect counts TOP as RETR: fetchmail downloads
		 * through TOP (issue #11 item 12). Bytes of the whole
		 * response, as sent. */
		s->retrieved++;
		s->retrieved_bytes += s->cmd_bytes;
		if (!s->stuff.top)
			pop3_retention_retrieved(s);
		pop3_session_cmd_done(s);
		return true;
	}
	s->fetch_stall_ms = util_now_ms();	/* see stall.c */
	return false;
}

/* Open the message (again) to read on from body_off; false: the session
 * is closing (the response cannot be finished). */
static bool
pop3_fetch_reopen(struct pop3_session *s)
{
	struct pop3_server *srv = s->srv;
	uint64_t size;

	s->body = store_message_open(srv->store, s->msgs[s->fetch_idx].id,
	    &size);
	if (s->body != NULL && size == s->body_size)
		return true;
	log_error("event=pop3.cmd sid=%s user=%s cmd=%s result=err "
	    "error=\"%s\"", s->sid, LOG_VALUE(s->maildrop), LOG_VALUE(s->cmd),
	    s->body == NULL ? store_error(srv->store) :
	    "message size changed while it was sent");
	store_body_close(s->body);
	s->body = NULL;
	pop3_session_close(s, "store_error");
	return false;
}
