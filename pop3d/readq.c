/*
 * pop3d's store reads off the loop: pools of threads with a connection
 * each (srv->readq[kind]), as smtpd's RCPT lookups have on PostgreSQL
 * (smtpd/rcpt.c). A read on the loop stalls every other session for as
 * long as it takes. The login's listing of the maildrop (login.c) is
 * thousands of rows for a big one, on either store: a storm of polling
 * clients would keep the loop listing. The start of each RETR/TOP
 * (fetch.c) goes to a thread on PostgreSQL only, where it is a round trip
 * to the server; on SQLite it is microseconds of local reads, less than
 * the hop, and stays on the loop. A session waits for its read in
 * POP3_IN_WAIT, as it does for a password check; it has one at most.
 */
#include "pop3d/pop3d.h"

#include <stdbool.h>

#include "common/config.h"
#include "common/log.h"
#include "common/workq.h"
#include "store/store.h"

/*
 * One pool per kind of read, threads with a connection each: a RETR is
 * one short statement, a big maildrop's listing thousands of rows, and
 * a storm of polling logins must not put every RETR behind its listings.
 * Reads queued at most per pool; past that the command fails with
 * [SYS/TEMP] at once rather than waiting.
 */
static const unsigned pop3_readq_threads[POP3_READQ_NKINDS] = {
	[POP3_READQ_LOGIN] = 3,
	[POP3_READQ_FETCH] = 2,
};
#define POP3_READQ_PENDING	4096

static void *pop3_readq_thread_init(void *);
static void pop3_readq_thread_fini(void *);

void
pop3_readq_start(struct pop3_server *srv)
{
	bool server = store_locator_is_server(srv->cfg->store.locator);

	for (unsigned k = 0; k < POP3_READQ_NKINDS; k++) {
		/* SQLite: a RETR's read is microseconds, less than the
		 * hop to a thread and back; a listing is not. */
		if (!server && k != POP3_READQ_LOGIN)
			continue;
		srv->readq[k] = workq_new(srv->base, pop3_readq_threads[k],
		    POP3_READQ_PENDING, pop3_readq_thread_init,
		    pop3_readq_thread_fini, (void *)srv->cfg);
	}
}

void
pop3_readq_stop(struct pop3_server *srv)
{
	for (unsigned k = 0; k < POP3_READQ_NKINDS; k++) {
		workq_free(srv->readq[k]);
		srv->readq[k] = NULL;
	}
}

bool
pop3_readq_submit(struct pop3_session *s, enum pop3_readq_kind kind,
    void *job, workq_work_fn *work, workq_done_fn *done)
{
	s->read_token = workq_submit(s->srv->readq[kind], job, work, done);
	if (s->read_token == 0)
		return false;
	s->read_kind = kind;
	s->input = POP3_IN_WAIT;
	return true;
}

void
pop3_readq_done(struct pop3_session *s, bool reconnected)
{
	s->read_token = 0;
	s->input = POP3_IN_CMD;
	if (reconnected)
		pop3_locks_recheck(s->srv);
}

void
pop3_readq_cancel(struct pop3_session *s)
{
	if (s->read_token != 0)
		workq_cancel(s->srv->readq[s->read_kind], s->read_token);
	s->read_token = 0;
}

/* A thread's connection. NULL when it cannot be opened: every read on that
 * thread then fails with [SYS/TEMP], and the next thread may do better. */
static void *
pop3_readq_thread_init(void *arg)
{
	const struct cfg *cfg = arg;
	const char *error = NULL;
	struct store *st;

	if ((st = store_open(cfg->store.locator, &error)) == NULL)
		log_error("event=pop3.readq error=\"store: %s\"",
		    error != NULL ? error : "unknown");
	return st;
}

static void
pop3_readq_thread_fini(void *ctx)
{
	store_close(ctx);
}
