/* carteiroctl dkim: not implemented yet (its issue adds it). */
#include "tools/ctl.h"

int
ctl_cmd_dkim(struct ctl *ctl, int argc, char **argv)
{
	(void)ctl;
	(void)argc;
	(void)argv;
	ctl_err("dkim: not implemented yet");
	return 1;
}
