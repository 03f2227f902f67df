/* carteiroctl check: not implemented yet (its issue adds it). */
#include "tools/ctl.h"

int
ctl_cmd_check(struct ctl *ctl, int argc, char **argv)
{
	(void)ctl;
	(void)argc;
	(void)argv;
	ctl_err("check: not implemented yet");
	return 1;
}
