/*
 * carteiroctl: reading a password. One line from stdin, never argv;
 * asked twice without echo on a terminal (ctl_admin.h).
 */
#include "tools/ctl.h"
#include "tools/ctl_admin.h"
#include "common/util.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define CTL_PASSWORD_MAX	1024	/* bytes of one password line */

static int ctl_read_password_line(const char *prompt, char *buf,
    size_t size, size_t *len_r);

/*
 * One line from stdin, never argv (argv is visible in ps). On a terminal
 * the password is asked twice without echo. The line end (LF or CRLF) is
 * not part of the password. Caller frees with auth_wipe_free.
 */
static int
ctl_read_password_line(const char *prompt, char *buf, size_t size,
    size_t *len_r)
{
	struct termios old, noecho;
	bool tty = isatty(STDIN_FILENO) == 1, eol = false;
	size_t len = 0;
	int ret = 0;

	if (tty) {
		fputs(prompt, stderr);
		fflush(stderr);
		if (tcgetattr(STDIN_FILENO, &old) == 0) {
			noecho = old;
			noecho.c_lflag &= ~(tcflag_t)ECHO;
			tcsetattr(STDIN_FILENO, TCSAFLUSH, &noecho);
		} else
			tty = false;
	}
	/* Byte by byte: nothing after the line is consumed or buffered. */
	for (;;) {
		char c;
		ssize_t n = read(STDIN_FILENO, &c, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ctl_err("reading the password: %s", strerror(errno));
			ret = -1;
			break;
		}
		if (n == 0)
			break;
		if (c == '\n') {
			eol = true;
			break;
		}
		if (len + 1 >= size) {
			ctl_err("password too long (at most %d bytes)",
			    CTL_PASSWORD_MAX);
			ret = -1;
			break;
		}
		buf[len++] = c;
	}
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	if (ret == 0 && len == 0 && !eol) {
		ctl_err("no password on standard input (one line expected)");
		ret = -1;
	}
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	buf[len] = '\0';
	*len_r = len;
	return ret;
}

int
ctl_read_password(char **password_r)
{
	char buf[CTL_PASSWORD_MAX + 2], again[CTL_PASSWORD_MAX + 2];
	size_t len, len2;
	int ret = -1;

	*password_r = NULL;
	if (ctl_read_password_line("Password: ", buf, sizeof(buf), &len) < 0)
		goto out;
	if (len == 0) {
		ctl_err("empty password refused");
		goto out;
	}
	if (memchr(buf, '\0', len) != NULL) {
		ctl_err("password contains a NUL byte");
		goto out;
	}
	if (isatty(STDIN_FILENO) == 1) {
		if (ctl_read_password_line("Retype password: ", again,
		    sizeof(again), &len2) < 0)
			goto out;
		if (len2 != len || memcmp(buf, again, len) != 0) {
			ctl_err("passwords do not match");
			goto out;
		}
	}
	*password_r = xstrdup(buf);
	ret = 0;
out:
	util_wipe(buf, sizeof(buf));
	util_wipe(again, sizeof(again));
	return ret;
}
