/* carteiroctl queue: not implemented yet (its issue adds it). */
#include "tools/ctl.h"

int
ctl_cmd_queue(struct ctl *ctl, int argc, char **argv)
{
	(void)ctl;
	(void)argc;
	(void)argv;
	ctl_err("queue: not implemented yet");
	return 1;
}
