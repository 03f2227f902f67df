/* Fuzz the MAIL/RCPT path and parameter parser (smtpd/address.c). */
#include "smtpd/smtpd.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct smtp_path p;
	const char *err;
	char *s;

	if (size < 1)
		return 0;
	s = malloc(size);
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	(void)smtp_path_parse(s, (data[0] & 1) ? SMTP_PATH_RCPT :
	    SMTP_PATH_MAIL, (data[0] & 2) != 0, &p, &err);
	smtp_path_clear(&p);
	free(s);
	return 0;
}
