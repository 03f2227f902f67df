/*
 * Listening sockets: bind the config's host:port lists (as root, before the
 * privilege drop), accept on libevent, and the process set-up both daemons
 * share (privilege drop, fd limit). Knows nothing about protocols.
 *
 * We use a plain persistent read event rather than evconnlistener: we want
 * accept4() flags, a bounded accept loop and an EMFILE back-off that
 * evconnlistener leaves to its error callback anyway.
 */
#include "common/listener.h"
#include "common/config.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <event2/event.h>

#define LISTENER_BACKLOG	1024
/* Accepts per readable event: other work gets a turn in a connect storm. */
#define LISTENER_BURST		64
/* Out of fds: stop accepting this long instead of spinning. */
#define LISTENER_BACKOFF_MS	500

struct listener {
	struct event_base *base;
	int fd;
	struct event *ev;
	struct event *ev_backoff;
	listener_cb *cb;
	void *arg;
	bool paused;		/* listener_pause */
	bool backoff;		/* EMFILE & co: timer pending */
	int in_cb;
	bool freed;		/* listener_free inside the callback */
};

static void listener_update(struct listener *l);
static void listener_on_accept(evutil_socket_t fd, short what, void *arg);
static void listener_on_backoff(evutil_socket_t fd, short what, void *arg);
static void listener_destroy(struct listener *l);

int
listener_bind(const struct cfg_hostports *hps, int **fds_r, size_t *n_r,
    char **error_r)
{
	struct addrinfo hints, *res = NULL, *ai;
	size_t n0 = *n_r;
	const char *host;
	int fd, on = 1, ret;

	*error_r = NULL;
	for (size_t i = 0; i < hps->n; i++) {
		const struct cfg_hostport *hp = &hps->v[i];
		bool v6;

		host = hp->host == NULL || *hp->host == '\0' ? "0.0.0.0" :
		    hp->host;
		v6 = strchr(host, ':') != NULL;
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE;
		if ((ret = getaddrinfo(host, hp->port, &hints, &res)) != 0) {
			*error_r = xasprintf("listen %s%s%s:%s: %s",
			    v6 ? "[" : "", host, v6 ? "]" : "", hp->port,
			    gai_strerror(ret));
			goto fail;
		}
		for (ai = res; ai != NULL; ai = ai->ai_next) {
			char name[INET6_ADDRSTRLEN + 16], ip[INET6_ADDRSTRLEN];
			const void *a;

			if (ai->ai_family == AF_INET)
				a = &((struct sockaddr_in *)ai->ai_addr)->
				    sin_addr;
			else if (ai->ai_family == AF_INET6)
				a = &((struct sockaddr_in6 *)ai->ai_addr)->
				    sin6_addr;
			else
				continue;
			inet_ntop(ai->ai_family, a, ip, sizeof(ip));
			snprintf(name, sizeof(name), "%s%s%s:%s",
			    ai->ai_family == AF_INET6 ? "[" : "", ip,
			    ai->ai_family == AF_INET6 ? "]" : "", hp->port);
			fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK |
			    SOCK_CLOEXEC, 0);
			if (fd == -1) {
				*error_r = xasprintf("socket %s: %s", name,
				    strerror(errno));
				goto fail;
			}
			if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on,
			    sizeof(on)) == -1 ||
			    (ai->ai_family == AF_INET6 && setsockopt(fd,
			    IPPROTO_IPV6, IPV6_V6ONLY, &on,
			    sizeof(on)) == -1)) {
				*error_r = xasprintf("setsockopt %s: %s",
				    name, strerror(errno));
				close(fd);
				goto fail;
			}
			if (bind(fd, ai->ai_addr, ai->ai_addrlen) == -1) {
				*error_r = xasprintf("bind %s: %s", name,
				    strerror(errno));
				close(fd);
				goto fail;
			}
			if (listen(fd, LISTENER_BACKLOG) == -1) {
				*error_r = xasprintf("listen %s: %s", name,
				    strerror(errno));
				close(fd);
				goto fail;
			}
			*fds_r = xrealloc(*fds_r, (*n_r + 1) * sizeof(int));
			(*fds_r)[(*n_r)++] = fd;
		}
		freeaddrinfo(res);
		res = NULL;
	}
	return 0;
fail:
	if (res != NULL)
		freeaddrinfo(res);
	/* Close what this call opened; earlier entries stay the caller's. */
	while (*n_r > n0)
		close((*fds_r)[--(*n_r)]);
	return -1;
}

struct listener *
listener_new(struct event_base *base, int fd, listener_cb *cb, void *arg)
{
	struct listener *l;

	l = xcalloc(1, sizeof(*l));
	l->base = base;
	l->fd = fd;
	l->cb = cb;
	l->arg = arg;
	l->ev = event_new(base, fd, EV_READ | EV_PERSIST, listener_on_accept,
	    l);
	l->ev_backoff = evtimer_new(base, listener_on_backoff, l);
	if (l->ev == NULL || l->ev_backoff == NULL)
		log_fatal("event=oom where=listener_new");
	listener_update(l);
	return l;
}

static void
listener_destroy(struct listener *l)
{
	event_free(l->ev);
	event_free(l->ev_backoff);
	close(l->fd);
	free(l);
}

void
listener_free(struct listener *l)
{
	if (l == NULL || l->freed)
		return;
	if (l->in_cb > 0) {
		l->freed = true;
		event_del(l->ev);
		event_del(l->ev_backoff);
		return;
	}
	listener_destroy(l);
}

static void
listener_update(struct listener *l)
{
	if (l->freed)
		return;
	if (l->paused || l->backoff)
		event_del(l->ev);
	else
		event_add(l->ev, NULL);
}

void
listener_pause(struct listener *l)
{
	l->paused = true;
	listener_update(l);
}

void
listener_resume(struct listener *l)
{
	l->paused = false;
	listener_update(l);
}

static void
listener_on_backoff(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;

	l->backoff = false;
	listener_update(l);
}

static void
listener_on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct listener *l = arg;
	struct sockaddr_storage ss;
	struct timeval tv;
	socklen_t len;
	int fd, on = 1;

	l->in_cb++;
	for (int i = 0; i < LISTENER_BURST && !l->paused && !l->freed; i++) {
		len = sizeof(ss);
		fd = accept4(l->fd, (struct sockaddr *)&ss, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED ||
			    errno == EPROTO)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* The pending connection stays in the
				 * backlog; retrying now would spin. */
				log_warn("event=listener.accept error=\"%s\" "
				    "action=pause pause_ms=%d",
				    strerror(errno), LISTENER_BACKOFF_MS);
				l->backoff = true;
				tv.tv_sec = 0;
				tv.tv_usec = LISTENER_BACKOFF_MS * 1000;
				evtimer_add(l->ev_backoff, &tv);
				break;
			}
			log_error("event=listener.accept error=\"%s\"",
			    strerror(errno));
			break;
		}
		if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)
			(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on,
			    sizeof(on));
		l->cb(fd, (struct sockaddr *)&ss, len, l->arg);
	}
	if (--l->in_cb == 0 && l->freed)
		listener_destroy(l);
	else
		listener_update(l);
}

int
priv_drop(const char *user, char **error_r)
{
	struct passwd *pw;
	uid_t ruid, euid, suid;
	gid_t rgid, egid, sgid, gid;

	*error_r = NULL;
	if (user == NULL || *user == '\0' || geteuid() != 0)
		return 0;
	errno = 0;
	if ((pw = getpwnam(user)) == NULL) {
		*error_r = xasprintf("unknown user %s%s%s", user,
		    errno ? ": " : "", errno ? strerror(errno) : "");
		return -1;
	}
	gid = pw->pw_gid;
	/* The user's own supplementary groups, not only the primary one:
	 * that is how a key stays readable for SIGHUP (Debian's ssl-cert
	 * group for /etc/ssl/private, say). */
	if (initgroups(pw->pw_name, gid) == -1) {
		*error_r = xasprintf("initgroups %s: %s", user,
		    strerror(errno));
		return -1;
	}
	if (setresgid(gid, gid, gid) == -1) {
		*error_r = xasprintf("setresgid %u: %s", (unsigned)gid,
		    strerror(errno));
		return -1;
	}
	if (setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == -1) {
		*error_r = xasprintf("setresuid %u: %s",
		    (unsigned)pw->pw_uid, strerror(errno));
		return -1;
	}
	/* Trust, but verify that it stuck. */
	if (getresuid(&ruid, &euid, &suid) == -1 ||
	    getresgid(&rgid, &egid, &sgid) == -1 ||
	    ruid != pw->pw_uid || euid != pw->pw_uid || suid != pw->pw_uid ||
	    rgid != gid || egid != gid || sgid != gid ||
	    (pw->pw_uid != 0 && (setuid(0) != -1 || seteuid(0) != -1))) {
		*error_r = xasprintf("privilege drop to %s did not stick",
		    user);
		return -1;
	}
	log_info("event=priv_drop user=%s uid=%u gid=%u", user,
	    (unsigned)pw->pw_uid, (unsigned)gid);
	return 0;
}

void
proc_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return;
	if (rl.rlim_cur == rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
		/* RLIM_INFINITY is above fs.nr_open: settle for less. */
		rl.rlim_cur = 65536;
		if (rl.rlim_cur > rl.rlim_max)
			rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			log_warn("event=rlimit_nofile error=\"%s\"",
			    strerror(errno));
	}
}
