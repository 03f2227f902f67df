/*
 * Connections to milters: the address in [smtpd] milters, a fresh
 * non-blocking connect, and the pool of idle connections parked after a
 * clean end of body (QUIT_NC) for the next message. The conversation on
 * them is milter.c's.
 */
#include "smtpd/milter_int.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "common/util.h"

int
milter_addr(const char *spec, struct sockaddr_storage *ss, socklen_t *len_r)
{
	struct addrinfo hints, *ai = NULL;
	char host[256];
	const char *h, *colon;
	size_t hl;

	memset(ss, 0, sizeof(*ss));
	if (strncmp(spec, "unix:", 5) == 0) {
		struct sockaddr_un *un = (struct sockaddr_un *)ss;

		if (strlen(spec + 5) >= sizeof(un->sun_path))
			return -1;
		un->sun_family = AF_UNIX;
		strcpy(un->sun_path, spec + 5);
		*len_r = sizeof(*un);
		return 0;
	}
	if (strncmp(spec, "inet:", 5) != 0 ||
	    (colon = strrchr(spec + 5, ':')) == NULL)
		return -1;
	h = spec + 5;
	hl = (size_t)(colon - h);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(host))
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	/* A name (localhost) is looked up here, on the loop: milters are
	 * local services, found in /etc/hosts. */
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0) {
		hints.ai_flags = 0;
		if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
			return -1;
	}
	if (ai == NULL)
		return -1;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len_r = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

struct milter_pool *
milter_pool_new(struct event_base *base, size_t max_idle, int idle_ms)
{
	struct milter_pool *p = xcalloc(1, sizeof(*p));

	p->base = base;
	TAILQ_INIT(&p->idle);
	p->max_idle = max_idle;
	p->idle_ms = idle_ms;
	return p;
}

void
milter_pool_free(struct milter_pool *p)
{
	struct milter_link *l;

	if (p == NULL)
		return;
	while ((l = TAILQ_FIRST(&p->idle)) != NULL)
		milter_link_free(l);
	free(p);
}

size_t
milter_pool_idle(const struct milter_pool *p)
{
	return p->nidle;
}

void
milter_link_free(struct milter_link *l)
{
	if (l->run == NULL) {
		TAILQ_REMOVE(&l->pool->idle, l, entry);
		l->pool->nidle--;
	}
	conn_free(l->c);
	free(l->spec);
	free(l);
}

struct milter_link *
milter_pool_take(struct milter_pool *p, const char *spec)
{
	struct milter_link *l;

	TAILQ_FOREACH(l, &p->idle, entry)
		if (strcmp(l->spec, spec) == 0) {
			TAILQ_REMOVE(&p->idle, l, entry);
			p->nidle--;
			return l;
		}
	return NULL;
}

int
milter_connect(struct milter_run *r)
{
	struct milter_link *l = xcalloc(1, sizeof(*l));

	l->pool = r->pool;
	l->spec = xstrdup(r->spec);
	l->run = r;
	l->c = conn_connect(r->pool->base, (struct sockaddr *)&r->ss,
	    r->sslen, r->info->connect_timeout_ms, milter_io, l);
	if (l->c == NULL) {
		free(l->spec);
		free(l);
		return -1;
	}
	r->link = l;
	r->c = l->c;
	r->state = MILTER_S_CONNECTING;
	r->await = MILTER_S_DONE;
	r->waiting = false;
	return 0;
}
