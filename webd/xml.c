/*
 * XML text escaping for the bodies webd writes. Every value that did not
 * come from a fixed string in our source goes through webd_xml_add.
 */
#include <string.h>

#include <event2/buffer.h>

#include "webd/webd.h"

void
webd_xml_add(struct evbuffer *b, const char *s)
{
	size_t run;

	while (*s != '\0') {
		run = strcspn(s, "&<>\"'");
		evbuffer_add(b, s, run);
		s += run;
		switch (*s) {
		case '&': evbuffer_add(b, "&amp;", 5); break;
		case '<': evbuffer_add(b, "&lt;", 4); break;
		case '>': evbuffer_add(b, "&gt;", 4); break;
		case '"': evbuffer_add(b, "&quot;", 6); break;
		case '\'': evbuffer_add(b, "&apos;", 6); break;
		default: return;
		}
		s++;
	}
}
