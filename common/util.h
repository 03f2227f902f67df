/*
 * Small shared helpers: allocation wrappers that abort on failure, time,
 * string helpers. No I/O, no protocol knowledge.
 */
#ifndef CARTEIRO_UTIL_H
#define CARTEIRO_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation failure logs and aborts (systemd restarts us): no NULL checks. */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Milliseconds of CLOCK_MONOTONIC. */
uint64_t util_now_ms(void);
/* Seconds since the epoch (wall clock). */
int64_t util_time(void);

/* Copy with truncation; always NUL-terminates when size > 0. Returns
 * strlen(src). */
size_t util_strlcpy(char *dst, const char *src, size_t size);

/* Lower-case ASCII in place; returns s. */
char *util_strlower(char *s);

/* Random 64-bit value (getrandom). */
uint64_t util_random64(void);
/* Unique ids for logs and message ids (not secrets): no system call. */
uint64_t util_unique_id64(void);
/* djb2 of a string: for small in-memory hash tables (not adversarial
 * keys' worst case: callers bound their chains or table sizes). */
unsigned util_str_hash(const char *s);

/* The value of one hex digit (either case), -1 if c is none. */
int util_hexval(int c);

/* A new session id: 16 lower-case hex digits in buf[17]. */
void util_session_id(char buf[17]);

/* Wipe memory that held a secret (not optimised away). */
void util_wipe(void *p, size_t n);

/* RFC 5322 date for now, e.g. "Thu, 26 Nov 2026 12:00:00 +0000", into buf. */
void util_rfc5322_date(char *buf, size_t size, int64_t when);

#endif
