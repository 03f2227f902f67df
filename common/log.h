/*
 * Logging: one line per event, key=value pairs, to stderr in the foreground
 * and to syslog otherwise. Callers write "event=smtp.connect sid=... ip=...";
 * log.c prefixes "level=<lvl> ". Every value that is not a fixed word goes
 * through log_value() / LOG_VALUE() or log_escape() first; a control byte
 * that still reaches the sink is replaced, so one event is one line.
 * Never pass passwords, AUTH data or message bodies.
 */
#ifndef CARTEIRO_LOG_H
#define CARTEIRO_LOG_H

#include <stddef.h>

enum log_level {
	LOG_LVL_ERROR,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
	LOG_LVL_COUNT
};

/* ident: syslog ident ("carteiro-smtpd"); foreground: log to stderr. */
void log_init(const char *ident, int foreground, enum log_level level);
void log_set_level(enum log_level level);
/* Parse "error|warn|info|debug"; returns -1 if unknown. */
int log_level_parse(const char *s, enum log_level *level_r);
/* Reopen the log target (SIGHUP). */
void log_reopen(void);

void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

int log_enabled(enum log_level level);

/*
 * The one escaping path for log values. Every value that did not come from
 * a fixed word in our own source (addresses, host names, replies, errors,
 * user names, paths) goes through log_value or log_escape, so that no
 * input can add a key=value field or a line of its own.
 *
 * log_escape: printable ASCII kept, '"', '\\' and everything else as
 * \xNN, truncated to 200 input bytes, wrapped in double quotes. Writes into
 * buf (size >= 4) and returns buf. LOG_ESCAPE_MAX is a buffer size that
 * never truncates the escaping.
 */
#define LOG_ESCAPE_MAX (200 * 4 + 8)
const char *log_escape(char *buf, size_t size, const char *s, size_t len);
/*
 * A value for "key=%s": s as it is when it is a plain token (1 to 200
 * bytes of printable ASCII without space, '"', '\\' or '='), otherwise
 * log_escape's quoted form; "-" for NULL. Returns buf (or a static).
 */
const char *log_value(char *buf, size_t size, const char *s);
/* The same for len bytes (s need not be NUL-terminated). */
const char *log_value_n(char *buf, size_t size, const char *s, size_t len);
/*
 * log_value with a buffer that lives until the end of the enclosing
 * statement's block: log_info("... from=%s", LOG_VALUE(addr)).
 */
#define LOG_VALUE(s) \
	log_value((char[LOG_ESCAPE_MAX]){ 0 }, LOG_ESCAPE_MAX, (s))

#endif
