/* Placeholder until carteiroctl lands. */
#include "tools/ctl.h"

#include <stdarg.h>
#include <stdio.h>

int main(void);

void
ctl_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("carteiroctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

int
main(void)
{
	return 0;
}
