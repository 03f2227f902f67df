/*
 * RETR/TOP to a client that does not read: after POP3_STALL_MS without a
 * LOWAT, the session lets go of its open message (the store's chunk
 * buffer: STORE_CHUNK_SIZE, 64 KB, for a body stored in chunks; on
 * PostgreSQL fetch.c's read-ahead, POP3_FETCH_MEM) and keeps
 * only its output, at most POP3_OUT_HIGH plus one stuffed POP3_READ_CHUNK;
 * its next step opens the message again and reads on from body_off
 * (fetch.c pop3_fetch_step). A client that keeps reading is never
 * touched: opening the message again at every stop would cost a query and
 * a reread of the chunk each time (measured: 2-2.5x the CPU of a 1 MB
 * RETR). One timer for the server walks the sessions every POP3_STALL_MS
 * and, when it freed anything, gives the memory back (malloc_trim).
 */
#include "pop3d/pop3d.h"

#include <event2/event.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "common/log.h"
#include "common/util.h"
#include "store/store.h"

static void pop3_stall_cb(evutil_socket_t fd, short what, void *arg);

static void
pop3_stall_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pop3_server *srv = arg;
	uint64_t now = util_now_ms();
	unsigned n = 0;

	(void)fd;
	(void)what;
	for (struct pop3_session *s = srv->sessions; s != NULL; s = s->next) {
		if ((s->body == NULL && s->fetch_mem == NULL) ||
		    s->fetch_stall_ms == 0 ||
		    now - s->fetch_stall_ms < POP3_STALL_MS)
			continue;
		store_body_close(s->body);
		s->body = NULL;
		/* fetch.c's read-ahead on PostgreSQL: the rest comes from
		 * the store on the loop. */
		pop3_fetch_readahead_free(s);
		n++;
	}
	if (n == 0)
		return;
#ifdef __GLIBC__
	malloc_trim(0);
#endif
	log_info("event=pop3.stall released=%u", n);
}

void
pop3_stall_start(struct pop3_server *srv)
{
	struct timeval tv = { POP3_STALL_MS / 1000,
	    (POP3_STALL_MS % 1000) * 1000 };

	srv->stall_ev = event_new(srv->base, -1, EV_PERSIST, pop3_stall_cb,
	    srv);
	if (srv->stall_ev == NULL || event_add(srv->stall_ev, &tv) != 0)
		log_fatal("event=pop3.fatal reason=\"stall timer\"");
}

void
pop3_stall_stop(struct pop3_server *srv)
{
	if (srv->stall_ev != NULL)
		event_free(srv->stall_ev);
	srv->stall_ev = NULL;
}
