/*
 * The MTA-STS policy file (RFC 8461 3.2): version, mode, one mx line per
 * MX name ([server] hostname, then [http] mta_sts_mx) and max_age. The
 * policy is the same for every local domain: they share the MX hosts.
 */
#include <strings.h>

#include <event2/buffer.h>

#include "common/config.h"
#include "webd/webd.h"

void
webd_mtasts_render(struct evbuffer *b, const struct cfg *cfg)
{
	const struct cfg_strlist *mx = &cfg->http.mta_sts_mx;

	/* RFC 8461 3.2: "version" first; lines end in CRLF. */
	evbuffer_add_printf(b, "version: STSv1\r\nmode: %s\r\n",
	    cfg->http.mta_sts_mode);
	evbuffer_add_printf(b, "mx: %s\r\n", cfg->server.hostname);
	for (size_t i = 0; i < mx->n; i++) {
		if (strcasecmp(mx->v[i], cfg->server.hostname) != 0)
			evbuffer_add_printf(b, "mx: %s\r\n", mx->v[i]);
	}
	evbuffer_add_printf(b, "max_age: %u\r\n", cfg->http.mta_sts_max_age);
}
