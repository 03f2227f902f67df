/* Fuzz the config loader (libinih + the key table + typed values) through
 * a temporary file. */
#include "common/config.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static char path[64];
	struct cfg *cfg = NULL;
	char *errors = NULL;
	FILE *f;

	if (path[0] == '\0') {
		int fd;
		snprintf(path, sizeof(path), "/tmp/fuzz_config.XXXXXX");
		fd = mkstemp(path);
		if (fd < 0)
			abort();
		close(fd);
		log_init("fuzz", 1, LOG_LVL_ERROR);
	}
	f = fopen(path, "wb");
	fwrite(data, 1, size, f);
	fclose(f);
	if (cfg_load(path, &cfg, &errors) == 0)
		cfg_free(cfg);
	free(errors);
	return 0;
}
