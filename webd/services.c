/*
 * The mail services that autoconfig and Autodiscover announce, read from the
 * config's listeners so that what we tell a client is what listens. It
 * knows nothing of HTTP or XML.
 */
#include <stdlib.h>

#include "common/config.h"
#include "webd/webd.h"

static unsigned webd_services_port(const struct cfg_hostports *);

/* The port of the first address of hp, or 0 when the listener is off. */
static unsigned
webd_services_port(const struct cfg_hostports *hp)
{
	char *end;
	unsigned long p;

	if (hp->n == 0)
		return 0;
	p = strtoul(hp->v[0].port, &end, 10);
	if (*end != '\0' || p == 0 || p > 65535)
		return 0;
	return (unsigned)p;
}

size_t
webd_services(const struct cfg *cfg, struct webd_service out[WEBD_MAX_SERVICES])
{
	const struct {
		enum webd_proto proto;
		enum webd_socket sock;
		const struct cfg_hostports *hp;
	} rows[WEBD_MAX_SERVICES] = {
		{ WEBD_PROTO_POP3, WEBD_SOCK_SSL, &cfg->pop3d.tls_listen },
		{ WEBD_PROTO_POP3, WEBD_SOCK_STARTTLS, &cfg->pop3d.listen },
		{ WEBD_PROTO_SMTP, WEBD_SOCK_SSL,
		  &cfg->smtpd.submissions_listen },
		{ WEBD_PROTO_SMTP, WEBD_SOCK_STARTTLS,
		  &cfg->smtpd.submission_listen },
	};
	size_t n = 0;

	for (size_t i = 0; i < WEBD_MAX_SERVICES; i++) {
		unsigned port = webd_services_port(rows[i].hp);

		if (port == 0)
			continue;
		out[n].proto = rows[i].proto;
		out[n].sock = rows[i].sock;
		out[n].host = cfg->server.hostname;
		out[n].port = port;
		n++;
	}
	return n;
}
