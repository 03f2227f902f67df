/*
 * SQL text for PostgreSQL: SQLite's parameters ?N and ? become $N, the
 * SQLite BEGIN variants become PostgreSQL's, and a statement's kind is
 * read from its first keywords. A small lexer skips what is not SQL
 * code: string literals ('', E'' with backslashes), quoted identifiers,
 * dollar-quoted strings and comments.
 */
#include "store/db_pg.h"
#include "common/util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static size_t pg_sql_skip(const char *, size_t);
static bool pg_sql_is_ident(char);
static const char *pg_sql_word(const char *, const char **, size_t *);
static bool pg_sql_word_is(const char *, size_t, const char *);
static const char *pg_sql_begin_mapped(const char *);

static bool
pg_sql_is_ident(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '$' ||
	    (unsigned char)c >= 0x80;
}

/*
 * If sql[i] starts something that is not SQL code (a literal, a quoted
 * identifier, a comment), the index just past it; else i. An unterminated
 * one runs to the end of the text (the server reports the error).
 */
static size_t
pg_sql_skip(const char *sql, size_t i)
{
	size_t j, n;
	bool esc;
	char q;

	switch (sql[i]) {
	case '\'':
	case '"':
		q = sql[i];
		/* E'...': backslash escapes (standard_conforming_strings
		 * governs only plain literals). */
		esc = q == '\'' && i > 0 && (sql[i - 1] == 'E' ||
		    sql[i - 1] == 'e') && (i == 1 ||
		    !pg_sql_is_ident(sql[i - 2]));
		for (j = i + 1; sql[j] != '\0'; j++) {
			if (esc && sql[j] == '\\' && sql[j + 1] != '\0')
				j++;
			else if (sql[j] == q) {
				if (sql[j + 1] != q)
					return j + 1;
				j++;	/* '' or "" inside */
			}
		}
		return j;
	case '-':
		if (sql[i + 1] != '-')
			return i;
		for (j = i; sql[j] != '\0' && sql[j] != '\n'; j++)
			;
		return j;
	case '/':
		if (sql[i + 1] != '*')
			return i;
		for (j = i + 2; sql[j] != '\0'; j++)
			if (sql[j] == '*' && sql[j + 1] == '/')
				return j + 2;
		return j;
	case '$':
		/* $tag$ ... $tag$ (not $1, not inside an identifier). */
		if (i > 0 && pg_sql_is_ident(sql[i - 1]))
			return i;
		for (j = i + 1; sql[j] != '\0' && sql[j] != '$'; j++)
			if (!(isalnum((unsigned char)sql[j]) ||
			    sql[j] == '_') || (j == i + 1 &&
			    isdigit((unsigned char)sql[j])))
				return i;
		if (sql[j] != '$')
			return i;
		n = j + 1 - i;	/* the tag with both '$' */
		for (j = j + 1; sql[j] != '\0'; j++)
			if (strncmp(sql + j, sql + i, n) == 0)
				return j + n;
		return j;
	default:
		return i;
	}
}

char *
pg_sql_translate(const char *sql, int *nparams_r, const char **error_r)
{
	size_t len = strlen(sql), i = 0, o = 0, k;
	char *out = xmalloc(len * 6 + 1);	/* '?' -> "$32766" at most */
	const char *begin;
	long n, max = 0;
	char *end;

	while (sql[i] != '\0') {
		if ((k = pg_sql_skip(sql, i)) != i) {
			memcpy(out + o, sql + i, k - i);
			o += k - i;
			i = k;
			continue;
		}
		if (sql[i] == '?' || (sql[i] == '$' &&
		    isdigit((unsigned char)sql[i + 1]))) {
			if (isdigit((unsigned char)sql[i + 1])) {
				n = strtol(sql + i + 1, &end, 10);
				i = (size_t)(end - sql);
			} else {
				n = max + 1;
				i++;
			}
			if (n < 1 || n > PG_SQL_MAX_PARAMS) {
				free(out);
				*error_r = "parameter number out of range";
				return NULL;
			}
			if (n > max)
				max = n;
			o += (size_t)sprintf(out + o, "$%ld", n);
			continue;
		}
		out[o++] = sql[i++];
	}
	out[o] = '\0';
	*nparams_r = (int)max;
	if ((begin = pg_sql_begin_mapped(out)) != NULL) {
		free(out);
		out = xstrdup(begin);
	}
	return out;
}

/* The next word of sql at p (after blanks and comments): its start and
 * length, and the text after it; NULL at the end. A word is a run of
 * identifier characters or one other character. */
static const char *
pg_sql_word(const char *p, const char **word_r, size_t *len_r)
{
	size_t i = 0, k;

	for (;;) {
		while (isspace((unsigned char)p[i]))
			i++;
		if ((p[i] == '-' || p[i] == '/') &&
		    (k = pg_sql_skip(p, i)) != i)
			i = k;
		else
			break;
	}
	if (p[i] == '\0')
		return NULL;
	*word_r = p + i;
	k = i;
	while (pg_sql_is_ident(p[k]))
		k++;
	if (k == i)
		k++;
	*len_r = k - i;
	return p + k;
}

static bool
pg_sql_word_is(const char *w, size_t len, const char *kw)
{
	return strlen(kw) == len && strncasecmp(w, kw, len) == 0;
}

/*
 * The PostgreSQL text for a statement that is exactly SQLite's BEGIN
 * DEFERRED / IMMEDIATE / EXCLUSIVE [TRANSACTION] [;], or NULL.
 */
static const char *
pg_sql_begin_mapped(const char *sql)
{
	const char *p, *w, *mapped = NULL;
	size_t len;

	if ((p = pg_sql_word(sql, &w, &len)) == NULL ||
	    !pg_sql_word_is(w, len, "BEGIN") ||
	    (p = pg_sql_word(p, &w, &len)) == NULL)
		return NULL;
	if (pg_sql_word_is(w, len, "IMMEDIATE") ||
	    pg_sql_word_is(w, len, "EXCLUSIVE"))
		mapped = "BEGIN";
	else if (pg_sql_word_is(w, len, "DEFERRED"))
		mapped = "BEGIN ISOLATION LEVEL REPEATABLE READ";
	else
		return NULL;
	if ((p = pg_sql_word(p, &w, &len)) != NULL &&
	    pg_sql_word_is(w, len, "TRANSACTION"))
		p = pg_sql_word(p, &w, &len);
	if (p != NULL && len == 1 && *w == ';')
		p = pg_sql_word(p, &w, &len);
	return p == NULL ? mapped : NULL;
}

enum pg_sql_kind
pg_sql_kind(const char *sql)
{
	enum pg_sql_kind kind;
	const char *p, *w, *w2;
	size_t len, len2, i, k;

	/* More than one statement: none of the rules applies. */
	for (i = 0; sql[i] != '\0'; i++) {
		if ((k = pg_sql_skip(sql, i)) != i) {
			i = k - 1;
			continue;
		}
		if (sql[i] == ';' && pg_sql_word(sql + i + 1, &w, &len) !=
		    NULL)
			return PG_SQL_OTHER;
	}
	if ((p = pg_sql_word(sql, &w, &len)) == NULL)
		return PG_SQL_OTHER;
	if (pg_sql_word_is(w, len, "BEGIN") || pg_sql_word_is(w, len, "START"))
		return PG_SQL_BEGIN;
	if (pg_sql_word_is(w, len, "COMMIT") || pg_sql_word_is(w, len, "END"))
		return PG_SQL_COMMIT;
	if (pg_sql_word_is(w, len, "SELECT") ||
	    pg_sql_word_is(w, len, "VALUES"))
		return PG_SQL_SELECT;
	if (!pg_sql_word_is(w, len, "ROLLBACK") &&
	    !pg_sql_word_is(w, len, "ABORT"))
		return PG_SQL_OTHER;
	/* ROLLBACK [WORK | TRANSACTION] [TO ...] / ROLLBACK PREPARED */
	kind = PG_SQL_ROLLBACK;
	while ((p = pg_sql_word(p, &w2, &len2)) != NULL) {
		if (pg_sql_word_is(w2, len2, "TO") ||
		    pg_sql_word_is(w2, len2, "PREPARED"))
			kind = PG_SQL_OTHER;
		if (!pg_sql_word_is(w2, len2, "WORK") &&
		    !pg_sql_word_is(w2, len2, "TRANSACTION"))
			break;
	}
	return kind;
}
