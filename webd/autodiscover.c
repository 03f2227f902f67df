/*
 * Outlook Autodiscover, the plain-old-XML variant (POST
 * /autodiscover/autodiscover.xml, request and response schema 2006): the
 * EMailAddress is picked out of the request with a bounded scan, not an
 * XML parser (we need one element, the body is at most WEBD_MAX_BODY
 * bytes), and the reply lists the same services as autoconfig.
 */
#include <string.h>

#include <event2/buffer.h>

#include "webd/webd.h"

#define WEBD_AD_TAG "EMailAddress>"

static const char *webd_autodiscover_find(const char *, size_t, size_t *);
static bool webd_autodiscover_plausible(const char *, size_t);

static const char *const webd_autodiscover_enc[WEBD_SOCK_COUNT] = {
	[WEBD_SOCK_SSL] = "SSL",
	[WEBD_SOCK_STARTTLS] = "TLS",
};

/*
 * The text of the first <EMailAddress> or <prefix:EMailAddress> element:
 * its start, and its length in *len_r (up to the next '<'). NULL if none.
 */
static const char *
webd_autodiscover_find(const char *body, size_t len, size_t *len_r)
{
	const size_t taglen = sizeof(WEBD_AD_TAG) - 1;
	size_t i = 0, j;

	while (i < len) {
		const char *lt = memchr(body + i, '<', len - i);

		if (lt == NULL)
			return NULL;
		i = (size_t)(lt - body) + 1;
		/* An optional namespace prefix: "<a:EMailAddress>". */
		for (j = i; j < len && j - i < 32 &&
		    (body[j] == '_' || body[j] == '-' || body[j] == '.' ||
		    (body[j] >= 'a' && body[j] <= 'z') ||
		    (body[j] >= 'A' && body[j] <= 'Z') ||
		    (body[j] >= '0' && body[j] <= '9')); j++)
			;
		if (j < len && body[j] == ':')
			j++;
		else
			j = i;
		if (len - j >= taglen &&
		    memcmp(body + j, WEBD_AD_TAG, taglen) == 0) {
			const char *start = body + j + taglen;
			const char *end = memchr(start, '<',
			    len - (j + taglen));

			if (end == NULL)
				return NULL;
			*len_r = (size_t)(end - start);
			return start;
		}
	}
	return NULL;
}

/* local@domain, printable ASCII with nothing XML or HTTP would mind. */
static bool
webd_autodiscover_plausible(const char *s, size_t len)
{
	const char *at = memchr(s, '@', len);

	if (len < 3 || len > 254 || at == NULL || at == s ||
	    at == s + len - 1 || memchr(at + 1, '@', len - (size_t)(at - s) - 1))
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f || strchr("<>&\"'\\", c) != NULL)
			return false;
	}
	return true;
}

int
webd_autodiscover_parse(const char *body, size_t len, char *buf, size_t size)
{
	const char *v;
	size_t vlen;

	v = webd_autodiscover_find(body, len, &vlen);
	if (v == NULL)
		return -1;
	while (vlen > 0 && strchr(" \t\r\n", v[0]) != NULL) {
		v++;
		vlen--;
	}
	while (vlen > 0 && strchr(" \t\r\n", v[vlen - 1]) != NULL)
		vlen--;
	if (vlen >= size || !webd_autodiscover_plausible(v, vlen))
		return -1;
	memcpy(buf, v, vlen);
	buf[vlen] = '\0';
	return 0;
}

void
webd_autodiscover_render(struct evbuffer *b, const char *address,
    const struct webd_service *sv, size_t n)
{
	evbuffer_add_printf(b, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	    "<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/"
	    "autodiscover/responseschema/2006\">\n"
	    "  <Response xmlns=\"http://schemas.microsoft.com/exchange/"
	    "autodiscover/outlook/responseschema/2006a\">\n"
	    "    <Account>\n"
	    "      <AccountType>email</AccountType>\n"
	    "      <Action>settings</Action>\n");
	for (size_t i = 0; i < n; i++) {
		evbuffer_add_printf(b, "      <Protocol>\n"
		    "        <Type>%s</Type>\n        <Server>",
		    sv[i].proto == WEBD_PROTO_POP3 ? "POP3" : "SMTP");
		webd_xml_add(b, sv[i].host);
		evbuffer_add_printf(b, "</Server>\n"
		    "        <Port>%u</Port>\n        <LoginName>", sv[i].port);
		webd_xml_add(b, address);
		evbuffer_add_printf(b, "</LoginName>\n"
		    "        <DomainRequired>off</DomainRequired>\n"
		    "        <SPA>off</SPA>\n"
		    "        <SSL>on</SSL>\n"
		    "        <Encryption>%s</Encryption>\n"
		    "        <AuthRequired>on</AuthRequired>\n"
		    "      </Protocol>\n", webd_autodiscover_enc[sv[i].sock]);
	}
	evbuffer_add_printf(b, "    </Account>\n  </Response>\n"
	    "</Autodiscover>\n");
}
