/*
 * A tiny unit-test harness (Dovecot lib-test idea, much smaller):
 *   t_begin("name"); t_assert(expr); t_assert_str(a, b); t_end();
 * and `return t_exit();` from main. Failures print expression, file, line.
 */
#ifndef CARTEIRO_T_H
#define CARTEIRO_T_H

#include <stdio.h>
#include <string.h>

static int t_failures, t_total, t_case_failed;
static const char *t_case;

static inline void
t_begin(const char *name)
{
	t_case = name;
	t_case_failed = 0;
	t_total++;
}

#define t_assert(expr) do { \
	if (!(expr)) { \
		fprintf(stderr, "FAIL %s: %s (%s:%d)\n", t_case, #expr, \
		    __FILE__, __LINE__); \
		t_case_failed = 1; \
	} \
} while (0)

#define t_assert_str(a, b) do { \
	const char *t_a_ = (a), *t_b_ = (b); \
	if (t_a_ == NULL || t_b_ == NULL || strcmp(t_a_, t_b_) != 0) { \
		fprintf(stderr, "FAIL %s: %s == %s: \"%s\" != \"%s\" (%s:%d)\n", \
		    t_case, #a, #b, t_a_ ? t_a_ : "(null)", \
		    t_b_ ? t_b_ : "(null)", __FILE__, __LINE__); \
		t_case_failed = 1; \
	} \
} while (0)

#define t_assert_int(a, b) do { \
	long long t_a_ = (long long)(a), t_b_ = (long long)(b); \
	if (t_a_ != t_b_) { \
		fprintf(stderr, "FAIL %s: %s == %s: %lld != %lld (%s:%d)\n", \
		    t_case, #a, #b, t_a_, t_b_, __FILE__, __LINE__); \
		t_case_failed = 1; \
	} \
} while (0)

static inline void
t_end(void)
{
	if (t_case_failed)
		t_failures++;
	printf("%s %s\n", t_case_failed ? "not ok" : "ok", t_case);
}

static inline int
t_exit(void)
{
	printf("%d/%d cases passed\n", t_total - t_failures, t_total);
	return t_failures ? 1 : 0;
}

#endif
