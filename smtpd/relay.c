/* Placeholder queue runner until the relay issue lands: does nothing, mail
 * stays queued. */
#include "smtpd/relay.h"

#include <stdlib.h>

struct relay {
	int unused;
};

struct relay *
relay_new(struct event_base *base, const struct cfg *cfg)
{
	(void)base;
	(void)cfg;
	return calloc(1, sizeof(struct relay));
}

void
relay_kick(struct relay *r)
{
	(void)r;
}

void
relay_shutdown(struct relay *r)
{
	(void)r;
}

void
relay_free(struct relay *r)
{
	free(r);
}
