/* Fuzz the Autodiscover request scan (webd/autodiscover.c) and the reply
 * written for what it finds: an address it accepts must come out of the
 * XML escaping with no markup of its own. */
#include "webd/webd.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct webd_service sv = { WEBD_PROTO_POP3, WEBD_SOCK_SSL,
	    "mail.example.test", 995 };
	struct evbuffer *b;
	char buf[256];
	char *copy;

	/* A copy of exactly size bytes: reading past it is a bug. */
	copy = malloc(size ? size : 1);
	memcpy(copy, data, size);
	if (webd_autodiscover_parse(copy, size, buf, sizeof(buf)) == 0) {
		if (strchr(buf, '@') == NULL || strpbrk(buf, "<>&\"' ") != NULL)
			abort();
		b = evbuffer_new();
		webd_autodiscover_render(b, buf, &sv, 1);
		evbuffer_free(b);
	}
	free(copy);
	return 0;
}
