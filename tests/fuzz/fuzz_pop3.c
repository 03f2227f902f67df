/* Fuzz the POP3 command splitter, number parser and dot-stuffer
 * (pop3d/parse.c); the stuffer's output must fit in 2 * len. */
#include "pop3d/pop3d.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct pop3_stuff st;
	char *line, *verb, *args, *out, end[8];
	const char *rest;
	uint32_t n;
	size_t piece, i;

	if (size < 1)
		return 0;
	line = malloc(size);
	memcpy(line, data + 1, size - 1);
	line[size - 1] = '\0';
	if (pop3_parse_split(line, &verb, &args) == 0 && args != NULL) {
		(void)pop3_parse_number(args, &n, &rest);
		(void)pop3_parse_number(args, &n, NULL);
	}
	free(line);

	piece = (size_t)(data[0] & 15) + 1;
	pop3_stuff_init(&st, (data[0] & 16) != 0, data[0] >> 5);
	out = malloc(2 * piece);
	for (i = 1; i < size; i += piece) {
		size_t len = size - i < piece ? size - i : piece;
		size_t w = pop3_stuff_run(&st, (const char *)data + i, len, out);
		assert(w <= 2 * len);
	}
	assert(pop3_stuff_end(&st, end) <= 5);
	free(out);
	return 0;
}
