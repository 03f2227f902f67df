/*
 * Maildrop locks for [pop3d] lock_session: pop3d's in-process list guards
 * this node, and the store's lock (an advisory lock on PostgreSQL) the
 * other nodes on the same database. A store connection made again after
 * a loss has lost its locks with the old one: they are taken again here,
 * or the session that held one is told it lost the maildrop.
 */
#include "pop3d/pop3d.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/util.h"
#include "store/maildrop_lock.h"
#include "store/store.h"

/*
 * Take again, on the store's current connection, every lock taken on one
 * it has lost since: the server freed them with it. A maildrop that
 * another node took in between is given up, and its session marked
 * (s->lock_lost) to end at its next command: it is not called from here,
 * as the caller may be that very session. A store error leaves the rest
 * for the next call.
 */
static void
pop3_locks_renew(struct pop3_server *srv)
{
	unsigned epoch = store_maildrop_lock_epoch(srv->store);
	size_t i = 0;
	int rc;

	/* Before every command of a locked session: mostly this. */
	if (srv->locks_epoch == epoch)
		return;
	while (i < srv->nlocks) {
		struct pop3_lock *l = &srv->locks[i];

		if (l->epoch == store_maildrop_lock_epoch(srv->store)) {
			i++;
			continue;
		}
		if ((rc = store_maildrop_lock(srv->store, l->maildrop)) < 0) {
			log_warn("event=pop3.lock user=%s result=fail "
			    "error=\"%s\"", l->maildrop,
			    store_error(srv->store));
			return;
		}
		if (rc == 0) {
			log_info("event=pop3.lock user=%s result=renewed",
			    l->maildrop);
			/* Read after the call: it may have reconnected. */
			l->epoch = store_maildrop_lock_epoch(srv->store);
			i++;
			continue;
		}
		log_warn("event=pop3.lock user=%s result=lost", l->maildrop);
		for (struct pop3_session *s = srv->sessions; s != NULL;
		    s = s->next) {
			if (s->locked && strcasecmp(s->maildrop,
			    l->maildrop) == 0) {
				s->locked = false;
				s->lock_lost = true;
			}
		}
		free(l->maildrop);
		srv->locks[i] = srv->locks[--srv->nlocks];
	}
	/* All current, unless a call above reconnected once more. */
	if (store_maildrop_lock_epoch(srv->store) == epoch)
		srv->locks_epoch = epoch;
}

void
pop3_locks_recheck(struct pop3_server *srv)
{
	if (srv->nlocks == 0)
		return;
	if (store_maildrop_lock_probe(srv->store) < 0) {
		log_warn("event=pop3.lock result=fail error=\"%s\"",
		    store_error(srv->store));
		return;
	}
	pop3_locks_renew(srv);
}

bool
pop3_lock_check(struct pop3_session *s, bool probe)
{
	if (probe && s->locked &&
	    store_maildrop_lock_probe(s->srv->store) < 0) {
		log_warn("event=pop3.lock user=%s result=fail error=\"%s\"",
		    s->maildrop, store_error(s->srv->store));
		util_strlcpy(s->cmd, "-", sizeof(s->cmd));
		pop3_reply(s, "-ERR [SYS/TEMP] The mailbox lock cannot be "
		    "checked now; nothing was changed.");
		pop3_session_close(s, "lock_check_failed");
		return false;
	}
	pop3_locks_renew(s->srv);
	if (!s->lock_lost)
		return true;
	/* Another session has the maildrop: nothing of this one (its DELE
	 * marks included) may be applied. */
	util_strlcpy(s->cmd, "-", sizeof(s->cmd));
	pop3_reply(s, "-ERR [IN-USE] The mailbox lock was lost and another "
	    "POP3 session has the mailbox; nothing was changed.");
	pop3_session_close(s, "lock_lost");
	return false;
}

/* The in-process list guards this node; the store's lock (an advisory
 * lock on PostgreSQL, nothing on SQLite) the other nodes on the same
 * database. */
int
pop3_lock_take(struct pop3_server *srv, const char *maildrop)
{
	int rc;

	pop3_locks_renew(srv);
	for (size_t i = 0; i < srv->nlocks; i++)
		if (strcasecmp(srv->locks[i].maildrop, maildrop) == 0)
			return -1;
	if ((rc = store_maildrop_lock(srv->store, maildrop)) != 0) {
		if (rc < 0)
			log_error("event=pop3.lock user=%s result=fail "
			    "error=\"%s\"", maildrop, store_error(srv->store));
		return rc < 0 ? -2 : -1;
	}
	if (srv->nlocks == srv->locks_cap) {
		srv->locks_cap = srv->locks_cap ? srv->locks_cap * 2 : 16;
		srv->locks = xrealloc(srv->locks,
		    srv->locks_cap * sizeof(*srv->locks));
	}
	srv->locks[srv->nlocks].maildrop = xstrdup(maildrop);
	srv->locks[srv->nlocks].epoch = store_maildrop_lock_epoch(srv->store);
	srv->nlocks++;
	return 0;
}

void
pop3_lock_release(struct pop3_server *srv, const char *maildrop)
{
	for (size_t i = 0; i < srv->nlocks; i++) {
		struct pop3_lock *l = &srv->locks[i];
		int rc = 0;

		if (strcasecmp(l->maildrop, maildrop) != 0)
			continue;
		/* Taken on a connection since lost: the server has freed it
		 * already (and may have given it to someone else). */
		if (l->epoch == store_maildrop_lock_epoch(srv->store))
			rc = store_maildrop_unlock(srv->store, maildrop);
		if (rc < 0)
			log_warn("event=pop3.unlock user=%s result=fail "
			    "error=\"%s\"", maildrop, store_error(srv->store));
		else if (rc > 0)	/* the database reconnected */
			log_warn("event=pop3.unlock user=%s result=lost",
			    maildrop);
		free(l->maildrop);
		srv->locks[i] = srv->locks[--srv->nlocks];
		return;
	}
}
