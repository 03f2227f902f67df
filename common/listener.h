/*
 * Listening sockets for the "host:port" lists of the config, bound at start
 * (as root, before the privilege drop), then served on libevent. Also the
 * privilege drop and the process set-up shared by both daemons.
 */
#ifndef CARTEIRO_LISTENER_H
#define CARTEIRO_LISTENER_H

#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct cfg_hostports;
struct listener;

/* Bind and listen on every address of hp (IPv6 with IPV6_V6ONLY, SO_REUSEADDR,
 * non-blocking, CLOEXEC). Appends the fds to *fds_r / *n_r (caller frees
 * the array). -1 and *error_r ("bind 127.0.0.1:25: Address in use") on the
 * first failure. */
int listener_bind(const struct cfg_hostports *hp, int **fds_r, size_t *n_r,
    char **error_r);

/* Accepted socket: non-blocking, CLOEXEC, TCP_NODELAY. The callback owns fd. */
typedef void listener_cb(int fd, const struct sockaddr *sa, socklen_t salen,
    void *arg);

/* Serve a bound fd. listener_free stops accepting and closes the fd. */
struct listener *listener_new(struct event_base *base, int fd, listener_cb *cb,
    void *arg);
void listener_free(struct listener *l);
/* Stop/restart accepting temporarily (e.g. max_clients reached). */
void listener_pause(struct listener *l);
void listener_resume(struct listener *l);

/* Drop to user (setgroups + setresgid + setresuid, each checked). NULL or
 * when not root: no-op. -1 and *error_r on failure. */
int priv_drop(const char *user, char **error_r);

/* Raise RLIMIT_NOFILE to its hard limit (many idle sessions). */
void proc_raise_nofile(void);

#endif
