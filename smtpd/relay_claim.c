/*
 * Queue claims for several relays on one database (issue 18 item 3): the
 * relay sends only the messages it claimed (store_queue_claim), on its
 * writer thread with the other store writes of a batch.
 *
 * The node id, claimed_by, is "host:pid:start" (gethostname, our pid, the
 * process start time from /proc/self/stat), unique across the nodes of
 * one database as long as their host names differ.
 *
 * How long a claim lasts: a lease of RELAY_LEASE_S, renewed every third
 * of it for every message this node still has (one UPDATE per renewal).
 * There is no per-message deadline to size a fixed lease on: a job waits
 * for its domain's concurrency and holds, and each SMTP stage has its own
 * timeout (up to 10 minutes for the final dot). So the lease only has to
 * outlast a stalled writer, not a delivery: a node that dies is covered by
 * the other nodes after at most RELAY_LEASE_S.
 *
 * A restarted node does not wait for its own dead claims to run out: at
 * start, claims by the same host whose process is gone (no such pid, or
 * one with another start time) are dropped. That keeps "kill -9, restart,
 * the message goes at once" true (test_relay_crash) and is safe, since a
 * dead process sends nothing. Claims of other hosts are left to their
 * lease: we cannot see their processes.
 */
#include "smtpd/relay_int.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "store/store.h"

/* A claim lasts this long without renewal (tests: CARTEIRO_RELAY_LEASE_S). */
#define RELAY_LEASE_S	300

static bool relay_proc_start(pid_t, unsigned long long *);
static bool relay_node_dead(const char *, const char *);

/* Field 22 of /proc/PID/stat: start time in clock ticks after boot. */
static bool
relay_proc_start(pid_t pid, unsigned long long *start_r)
{
	char path[64], buf[1024], *p;
	FILE *f;
	size_t n;
	int field;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name may hold spaces and ')': skip to the last ')'. */
	if ((p = strrchr(buf, ')')) == NULL)
		return false;
	p++;
	for (field = 3; field < 22 && p != NULL; field++)
		p = strchr(p + 1, ' ');
	if (p == NULL)
		return false;
	*start_r = strtoull(p + 1, NULL, 10);
	return true;
}

/* Is owner ("host:pid:start") a relay of this host whose process is gone? */
static bool
relay_node_dead(const char *owner, const char *host)
{
	const char *c1, *c2;
	unsigned long long start, now_start;
	long pid;
	char *end;

	if ((c2 = strrchr(owner, ':')) == NULL || c2 == owner)
		return false;
	for (c1 = c2 - 1; c1 > owner && *c1 != ':'; c1--)
		;
	if (*c1 != ':' || (size_t)(c1 - owner) != strlen(host) ||
	    strncmp(owner, host, strlen(host)) != 0)
		return false;		/* another host's: its lease decides */
	errno = 0;
	pid = strtol(c1 + 1, &end, 10);
	if (end != c2 || pid <= 0 || errno != 0)
		return false;
	start = strtoull(c2 + 1, &end, 10);
	if (*end != '\0')
		return false;
	if (relay_proc_start((pid_t)pid, &now_start))
		return now_start != start;	/* the pid was reused */
	return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

int
relay_claim_init(struct relay *r)
{
	char host[256], buf[320];
	unsigned long long start = 0;
	const char *env;
	char **owners = NULL;
	size_t n = 0, i, released, total = 0;

	r->lease_s = RELAY_LEASE_S;
	if ((env = getenv("CARTEIRO_RELAY_LEASE_S")) != NULL && atoi(env) > 0)
		r->lease_s = atoi(env);
	if (gethostname(host, sizeof(host)) != 0)
		util_strlcpy(host, "localhost", sizeof(host));
	host[sizeof(host) - 1] = '\0';
	/* No /proc: the wall clock is nearly as unique. */
	if (!relay_proc_start(getpid(), &start))
		start = (unsigned long long)util_time();
	snprintf(buf, sizeof(buf), "%s:%ld:%llu", host, (long)getpid(), start);
	r->node = xstrdup(buf);

	if (store_queue_claimers(r->wst, &owners, &n) < 0) {
		log_error("event=relay.start result=fail error=\"queue claims: "
		    "%s\"", store_error(r->wst));
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (relay_node_dead(owners[i], host)) {
			if (store_queue_release(r->wst, owners[i], -1,
			    &released) < 0) {
				log_warn("event=relay.claim_release node=%s "
				    "result=fail error=\"%s\"",
				    LOG_VALUE(owners[i]), store_error(r->wst));
			} else {
				log_info("event=relay.claim_release node=%s "
				    "reason=dead messages=%zu",
				    LOG_VALUE(owners[i]), released);
				total += released;
			}
		}
		free(owners[i]);
	}
	free(owners);
	log_info("event=relay.node node=%s lease_s=%" PRId64 " released=%zu",
	    LOG_VALUE(r->node), r->lease_s, total);
	return 0;
}

bool
relay_claim_make(struct relay *r, struct relay_claim_req *c,
    struct relay_msg *const *fin, size_t nfin)
{
	struct relay_msg *rm;
	int64_t now = util_time();
	size_t i, n = 0;

	memset(c, 0, sizeof(*c));
	if (r->nmsgs > 0 && now >= r->renew_at) {
		c->renew = true;
		r->renew_at = now + (r->lease_s / 3 > 0 ? r->lease_s / 3 : 1);
	}
	if (r->claim_due && !r->stopping) {
		r->claim_due = false;
		c->skip = xcalloc(r->nmsgs + 1, sizeof(*c->skip));
		/* The ones this batch finishes leave the flight: a finish
		 * that is rolled back leaves its message due and ours, and
		 * the claim takes it up again. */
		TAILQ_FOREACH(rm, &r->msgs, entry) {
			for (i = 0; i < nfin && fin[i] != rm; i++)
				;
			if (i == nfin)
				c->skip[n++] = rm->q.id;
		}
		c->nskip = n;
		if (n < RELAY_MAX_MSGS) {
			c->claim = true;
			c->max = RELAY_MAX_MSGS - n;
		}
	}
	return c->claim || c->renew;
}

void
relay_claim_run(struct relay *r, struct store *st, struct relay_claim_req *c)
{
	int64_t now = util_time();
	size_t n = 0;

	if (c->renew && store_queue_renew(st, r->node, now + r->lease_s,
	    &n) < 0)
		log_warn("event=relay.claim_renew result=fail error=\"%s\"",
		    store_error(st));
	if (c->claim && store_queue_claim(st, now, now + r->lease_s, r->node,
	    c->max, c->skip, c->nskip, &c->ids, &c->n) < 0)
		log_warn("event=relay.claim result=fail error=\"%s\"",
		    store_error(st));
	if (c->n > 0)
		log_debug("event=relay.claim node=%s claimed=%zu renewed=%zu",
		    LOG_VALUE(r->node), c->n, n);
}

void
relay_claim_apply(struct relay *r, struct relay_claim_req *c)
{
	for (size_t i = 0; i < c->n && !r->stopping; i++)
		if (r->nmsgs < RELAY_MAX_MSGS && !relay_is_active(r, c->ids[i]))
			relay_msg_start(r, c->ids[i]);
	/* Any left over stay claimed by us; the next claim takes them up
	 * again (our own claims count as free there). */
	relay_claim_clear(c);
}

void
relay_claim_clear(struct relay_claim_req *c)
{
	free(c->skip);
	free(c->ids);
	c->skip = c->ids = NULL;
	c->nskip = c->n = 0;
}

void
relay_claim_release_all(struct relay *r)
{
	size_t n = 0;

	if (r->node == NULL || r->wst == NULL)
		return;
	if (store_queue_release(r->wst, r->node, -1, &n) < 0)
		log_warn("event=relay.claim_release node=%s result=fail "
		    "error=\"%s\"", LOG_VALUE(r->node), store_error(r->wst));
	else if (n > 0)
		log_info("event=relay.claim_release node=%s reason=stop "
		    "messages=%zu", LOG_VALUE(r->node), n);
}
