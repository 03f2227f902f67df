/*
 * mangen: the generated parts of the manuals, so that they cannot drift
 * from the code. Built by meson, run at build time, never installed.
 *
 *   mangen conf TEMPLATE        carteiro.conf(5): TEMPLATE with its line
 *                               "@KEYS@" replaced by the key table of
 *                               common/config_keys.c (cfg_key_doc)
 *   mangen ctl TEMPLATE CTL     carteiroctl(8): TEMPLATE with its line
 *                               "@COMMANDS@" replaced by the command list
 *                               that "CTL -h" prints (the dispatch table)
 *
 * The page goes to stdout; exit 1 with a message on stderr on any error.
 */
#include "common/config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv);

static void mangen_text(FILE *out, const char *s);
static void mangen_sentence(FILE *out, const char *s);
static void mangen_duration(char *buf, size_t size, uint64_t s);
static void mangen_size(char *buf, size_t size, uint64_t b);
static int mangen_keys(FILE *out);
static int mangen_commands(FILE *out, const char *ctl);
static int mangen_template(const char *path, const char *mark,
    int (*fill)(FILE *, const char *), const char *arg);
static int mangen_fill_keys(FILE *out, const char *arg);

/* s as roff text: backslashes escaped, a leading '.' or '\'' defused,
 * '-' as a minus sign (options, paths and keys are copied literally). */
static void
mangen_text(FILE *out, const char *s)
{
	if (*s == '.' || *s == '\'')
		fputs("\\&", out);
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			fputs("\\e", out);
		else if (*s == '-')
			fputs("\\-", out);
		else
			fputc(*s, out);
	}
}

/* s as a sentence on its own line: capital first letter, final dot. */
static void
mangen_sentence(FILE *out, const char *s)
{
	char *t = strdup(s);
	size_t len;

	if (t == NULL || *t == '\0') {
		free(t);
		return;
	}
	if (t[0] >= 'a' && t[0] <= 'z')
		t[0] = (char)(t[0] - 'a' + 'A');
	mangen_text(out, t);
	len = strlen(t);
	fputs(t[len - 1] == '.' ? "\n" : ".\n", out);
	free(t);
}

/* 3600 -> "1h": the largest unit that divides exactly. */
static void
mangen_duration(char *buf, size_t size, uint64_t s)
{
	if (s != 0 && s % 86400 == 0)
		snprintf(buf, size, "%" PRIu64 "d", s / 86400);
	else if (s != 0 && s % 3600 == 0)
		snprintf(buf, size, "%" PRIu64 "h", s / 3600);
	else if (s != 0 && s % 60 == 0)
		snprintf(buf, size, "%" PRIu64 "m", s / 60);
	else
		snprintf(buf, size, "%" PRIu64 "s", s);
}

/* 26214400 -> "25M" (1024-based, as the parser reads it). */
static void
mangen_size(char *buf, size_t size, uint64_t b)
{
	if (b != 0 && b % (1ull << 30) == 0)
		snprintf(buf, size, "%" PRIu64 "G", b >> 30);
	else if (b != 0 && b % (1ull << 20) == 0)
		snprintf(buf, size, "%" PRIu64 "M", b >> 20);
	else if (b != 0 && b % 1024 == 0)
		snprintf(buf, size, "%" PRIu64 "k", b >> 10);
	else
		snprintf(buf, size, "%" PRIu64, b);
}

/*
 * One .SS per section, one .TP per key:
 *   .B max_recipients
 *   number, 1 to 100000; default 100.
 *   per message
 */
static int
mangen_keys(FILE *out)
{
	struct cfg_key_doc d;
	const char *section = "";
	char lo[32], hi[32];
	size_t i;

	for (i = 0; cfg_key_doc(i, &d) == 0; i++) {
		if (strcmp(d.section, section) != 0) {
			section = d.section;
			fprintf(out, ".SS [%s]\n", section);
		}
		fputs(".TP\n.B ", out);
		mangen_text(out, d.key);
		fputc('\n', out);
		mangen_sentence(out, d.help);
		fputs(".br\n", out);
		mangen_text(out, d.type);
		if (d.has_range && strcmp(d.type, "duration") == 0) {
			mangen_duration(lo, sizeof(lo), d.min);
			mangen_duration(hi, sizeof(hi), d.max);
			fprintf(out, ", %s to %s", lo, hi);
		} else if (d.has_range && strcmp(d.type, "size") == 0) {
			mangen_size(lo, sizeof(lo), d.min);
			mangen_size(hi, sizeof(hi), d.max);
			fprintf(out, ", %s to %s", lo, hi);
		} else if (d.has_range)
			fprintf(out, ", %" PRIu64 " to %" PRIu64, d.min, d.max);
		if (d.required)
			fputs("; required", out);
		else if (d.def[0] == '\0')
			fputs("; default empty", out);
		else {
			fputs("; default ", out);
			fputs("\\fB", out);
			mangen_text(out, d.def);
			fputs("\\fR", out);
		}
		fputs(".\n", out);
	}
	return i > 0 ? 0 : -1;
}

/* The "commands:" lines of "CTL -h", one .TP each. */
static int
mangen_commands(FILE *out, const char *ctl)
{
	char *cmd, *line = NULL, *p, *note;
	size_t cap = 0, n = 0;
	bool in_list = false;
	FILE *fp;
	ssize_t len;
	int status;

	/* ctl is the path meson gives, with no shell characters. */
	if (asprintf(&cmd, "'%s' -h", ctl) < 0 || strchr(ctl, '\'') != NULL)
		return -1;
	fp = popen(cmd, "r");
	free(cmd);
	if (fp == NULL)
		return -1;
	while ((len = getline(&line, &cap, fp)) > 0) {
		if (line[len - 1] == '\n')
			line[--len] = '\0';
		if (strcmp(line, "commands:") == 0) {
			in_list = true;
			continue;
		}
		if (!in_list || strncmp(line, "  ", 2) != 0)
			continue;
		p = line + 2;
		/* "user add ADDRESS  (password on stdin)" */
		if ((note = strstr(p, "  (")) != NULL)
			*note = '\0';
		fputs(".TP\n.B ", out);
		mangen_text(out, p);
		fputc('\n', out);
		if (note != NULL) {
			p = note + 3;
			if (*p != '\0' && p[strlen(p) - 1] == ')')
				p[strlen(p) - 1] = '\0';
			mangen_text(out, p);
			fputc('\n', out);
		} else
			fputs("\\&\n", out);	/* an empty paragraph */
		n++;
	}
	free(line);
	status = pclose(fp);
	return status == 0 && n > 0 ? 0 : -1;
}

static int
mangen_fill_keys(FILE *out, const char *arg)
{
	return mangen_keys(out);
}

/* Copy the template, the line that is exactly mark replaced by fill. */
static int
mangen_template(const char *path, const char *mark,
    int (*fill)(FILE *, const char *), const char *arg)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	FILE *fp;
	int found = 0, ret = 0;

	if ((fp = fopen(path, "re")) == NULL) {
		perror(path);
		return -1;
	}
	while ((len = getline(&line, &cap, fp)) > 0) {
		if (strncmp(line, mark, strlen(mark)) == 0 &&
		    (line[strlen(mark)] == '\n' || line[strlen(mark)] == '\0')) {
			found++;
			if (fill(stdout, arg) < 0)
				ret = -1;
		} else
			fputs(line, stdout);
	}
	free(line);
	fclose(fp);
	if (found != 1) {
		fprintf(stderr, "mangen: %s: expected one line %s\n", path,
		    mark);
		return -1;
	}
	return ret;
}

int
main(int argc, char **argv)
{
	int r;

	if (argc == 3 && strcmp(argv[1], "conf") == 0)
		r = mangen_template(argv[2], "@KEYS@", mangen_fill_keys, NULL);
	else if (argc == 4 && strcmp(argv[1], "ctl") == 0)
		r = mangen_template(argv[2], "@COMMANDS@", mangen_commands,
		    argv[3]);
	else {
		fprintf(stderr, "usage: mangen conf TEMPLATE | "
		    "mangen ctl TEMPLATE CARTEIROCTL\n");
		return 1;
	}
	if (r < 0 || fflush(stdout) != 0) {
		fprintf(stderr, "mangen: %s: failed\n", argv[1]);
		return 1;
	}
	return 0;
}
