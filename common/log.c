/*
 * The log sink: formats "level=<lvl> <caller's key=value text>" and writes
 * it to stderr (foreground) or syslog. Owns nothing but its settings.
 */
#include "common/log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

static const char *const log_level_names[LOG_LVL_COUNT] = {
	"error", "warn", "info", "debug",
};
static const int log_syslog_prio[LOG_LVL_COUNT] = {
	LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG,
};

static int log_foreground = 1;
static enum log_level log_threshold = LOG_LVL_INFO;
static const char *log_ident = "carteiro";

static void log_vmsg(enum log_level, const char *, va_list)
    __attribute__((format(printf, 2, 0)));
static void log_scrub(char *);
static bool log_is_token(const char *, size_t);

void
log_init(const char *ident, int foreground, enum log_level level)
{
	log_ident = ident;
	log_foreground = foreground;
	log_threshold = level;
	if (!foreground)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_level(enum log_level level)
{
	log_threshold = level;
}

int
log_level_parse(const char *s, enum log_level *level_r)
{
	for (int i = 0; i < LOG_LVL_COUNT; i++) {
		if (strcmp(s, log_level_names[i]) == 0) {
			*level_r = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

void
log_reopen(void)
{
	if (!log_foreground) {
		closelog();
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
	}
}

int
log_enabled(enum log_level level)
{
	return level <= log_threshold;
}

/*
 * The last line of defence: a value that missed log_value must still not
 * start a second line (syslog and journald split on LF) or hide text
 * behind a CR or an escape sequence in a terminal.
 */
static void
log_scrub(char *line)
{
	for (unsigned char *p = (unsigned char *)line; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f)
			*p = '?';
	}
}

static void
log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char line[4096];
	int n;

	n = snprintf(line, sizeof(line), "level=%s ", log_level_names[level]);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	log_scrub(line);
	if (log_foreground) {
		/* One write per line so concurrent writers never interleave. */
		size_t len = strlen(line);
		if (len < sizeof(line) - 1) {
			line[len++] = '\n';
		} else {
			line[sizeof(line) - 2] = '\n';
			len = sizeof(line) - 1;
		}
		ssize_t w = write(STDERR_FILENO, line, len);
		(void)w;
	} else {
		syslog(log_syslog_prio[level], "%s", line);
	}
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level > log_threshold)
		return;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void
log_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}

const char *
log_escape(char *buf, size_t size, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (len > 200)
		len = 200;
	buf[o++] = '"';
	for (size_t i = 0; i < len && o + 6 < size; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			buf[o++] = (char)c;
		} else {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		}
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

/* A value that cannot be mistaken for more than one field. */
static bool
log_is_token(const char *s, size_t len)
{
	if (len == 0 || len > 200)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' ||
		    c == '=')
			return false;
	}
	return true;
}

const char *
log_value_n(char *buf, size_t size, const char *s, size_t len)
{
	if (s == NULL)
		return "-";
	if (!log_is_token(s, len) || len >= size)
		return log_escape(buf, size, s, len);
	memcpy(buf, s, len);
	buf[len] = '\0';
	return buf;
}

const char *
log_value(char *buf, size_t size, const char *s)
{
	return log_value_n(buf, size, s, s != NULL ? strlen(s) : 0);
}
