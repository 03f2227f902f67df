/* Fuzz the relay's SMTP reply reader (smtpd/mta.c, mta_reply_line): the
 * input is the server's byte stream cut into lines at '\n' (a '\r'
 * before it dropped, as conn_getline does); the first byte picks the
 * reply buffer's size (5 bytes up to the session's 1024). After an error
 * the next line starts a new reply, as on a new connection. Checked: the
 * text stays NUL-terminated inside the buffer, a complete reply's code is
 * 200-599 and its text starts with that code and a space (or is only the
 * code), and the code in progress is that of the reply's first line. */
#include "smtpd/mta.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	char *reply, *buf, *line, *nl, *end, digits[4];
	size_t rsize, replylen = 0, len;
	int code = 0, first = 0, r;

	if (size < 1)
		return 0;
	rsize = data[0] >= 128 ? 1024 : 5 + data[0];
	reply = malloc(rsize);
	buf = malloc(size);
	memcpy(buf, data + 1, size - 1);
	end = buf + size - 1;
	for (line = buf; line < end; line = nl + 1) {
		nl = memchr(line, '\n', (size_t)(end - line));
		if (nl == NULL)
			nl = end;
		len = (size_t)(nl - line);
		if (len > 0 && line[len - 1] == '\r')
			len--;
		/* A copy of exactly the line, so ASan sees reads past it. */
		char *l = malloc(len + 1);

		memcpy(l, line, len);
		l[len] = '\0';
		r = mta_reply_line(&code, reply, rsize, &replylen, l, len);
		if (r == MTA_REPLY_MALFORMED || r == MTA_REPLY_INCONSISTENT) {
			assert(r == MTA_REPLY_MALFORMED || code != 0);
			code = first = 0;	/* a fresh session */
			free(l);
			continue;
		}
		assert(replylen < rsize && reply[replylen] == '\0');
		if (first == 0)
			first = (l[0] - '0') * 100 + (l[1] - '0') * 10 +
			    (l[2] - '0');
		memcpy(digits, reply, 3);
		digits[3] = '\0';
		assert(atoi(digits) == first);
		assert(replylen == 3 || reply[3] == ' ');
		if (r > 0) {
			assert(r == first && r >= 200 && r <= 599);
			assert(code == 0);
			first = 0;
		} else {
			assert(r == 0 && code == first);
		}
		free(l);
	}
	free(buf);
	free(reply);
	return 0;
}
