/*
 * Thunderbird autoconfig (config-v1.1.xml, the "clientConfig" format of
 * Mozilla's ISPDB): one emailProvider for a local domain, with an
 * incomingServer per POP3 listener and an outgoingServer per submission
 * listener. Who gets it (host, domain lookup) is route.c's business.
 */
#include <event2/buffer.h>

#include "webd/webd.h"

static const char *const webd_autoconfig_socket[WEBD_SOCK_COUNT] = {
	[WEBD_SOCK_SSL] = "SSL",
	[WEBD_SOCK_STARTTLS] = "STARTTLS",
};

void
webd_autoconfig_render(struct evbuffer *b, const char *domain,
    const struct webd_service *sv, size_t n)
{
	evbuffer_add_printf(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<clientConfig version=\"1.1\">\n"
	    "  <emailProvider id=\"");
	webd_xml_add(b, domain);
	evbuffer_add_printf(b, "\">\n    <domain>");
	webd_xml_add(b, domain);
	evbuffer_add_printf(b, "</domain>\n    <displayName>");
	webd_xml_add(b, domain);
	evbuffer_add_printf(b, "</displayName>\n    <displayShortName>");
	webd_xml_add(b, domain);
	evbuffer_add_printf(b, "</displayShortName>\n");
	for (size_t i = 0; i < n; i++) {
		const char *tag = sv[i].proto == WEBD_PROTO_POP3 ?
		    "incomingServer" : "outgoingServer";

		evbuffer_add_printf(b, "    <%s type=\"%s\">\n"
		    "      <hostname>", tag,
		    sv[i].proto == WEBD_PROTO_POP3 ? "pop3" : "smtp");
		webd_xml_add(b, sv[i].host);
		evbuffer_add_printf(b, "</hostname>\n"
		    "      <port>%u</port>\n"
		    "      <socketType>%s</socketType>\n"
		    "      <username>%%EMAILADDRESS%%</username>\n"
		    "      <authentication>password-cleartext</authentication>\n"
		    "    </%s>\n", sv[i].port,
		    webd_autoconfig_socket[sv[i].sock], tag);
	}
	evbuffer_add_printf(b, "  </emailProvider>\n</clientConfig>\n");
}
