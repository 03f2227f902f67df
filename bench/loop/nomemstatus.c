/*
 * bench/loop/nomemstatus.c: LD_PRELOAD shim for the NOMEMSTATUS=1 variant
 * of bench/loop/run. It turns SQLite's memory statistics off before the
 * library initialises; with them on (SQLITE_DEFAULT_MEMSTATUS=1, as in
 * Debian's build) every sqlite3_malloc and sqlite3_free in the process
 * takes one global mutex, which the loop thread then shares with the
 * writer, checkpoint and relay writer threads. An experiment only: it
 * shows what sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) at startup would
 * change without touching smtpd/.
 */
#include <sqlite3.h>

__attribute__((constructor)) static void
nomemstatus_init(void)
{
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}
