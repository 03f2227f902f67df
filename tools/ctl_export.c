/*
 * carteiroctl mailbox export ADDRESS --mbox FILE | --maildir DIR: every
 * message of a mailbox, in order, as RETR sends it. mbox (mboxrd): a
 * "From " line (the imported one, else the envelope sender and arrival
 * time), the message with CRLF as LF and lines matching ^>*From  quoted
 * with one more '>', then an empty line. Maildir: one file per message in
 * cur/ holding exactly the RETR bytes, and a dovecot-uidlist that keeps
 * the POP3 UIDLs (pop3_save_uidl) for a move to Dovecot.
 */
#include "tools/ctl.h"
#include "tools/ctl_admin.h"
#include "tools/ctl_import.h"
#include "common/util.h"
#include "store/import.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CTL_EXPORT_CHUNK	(64 * 1024)

/* mboxrd writer state across chunks of one message. */
struct ctl_mbox_out {
	FILE *f;
	bool bol;		/* at the start of a line */
	bool cr;		/* a CR is held back (CRLF becomes LF) */
	/* held back at the start of a line: ngt '>' then the first nfrom
	 * bytes of "From " (it may still become a line to quote) */
	uint64_t ngt;
	size_t nfrom;
};

static void ctl_mbox_char(struct ctl_mbox_out *o, char c);
static void ctl_mbox_byte(struct ctl_mbox_out *o, char c);
static void ctl_mbox_flush_pend(struct ctl_mbox_out *o);
static int ctl_export_message(struct ctl *ctl, const struct store_msg *m,
    FILE *mbox, int maildir_fd, const char *name);

static void
ctl_mbox_flush_pend(struct ctl_mbox_out *o)
{
	for (; o->ngt > 0; o->ngt--)
		fputc('>', o->f);
	fwrite("From ", 1, o->nfrom, o->f);
	o->nfrom = 0;
}

/*
 * One content byte into the mbox. A line's start is held back while it
 * can still be ">*From ": once it is, one more '>' goes first (mboxrd);
 * as soon as it cannot, it is written as it is.
 */
static void
ctl_mbox_char(struct ctl_mbox_out *o, char c)
{
	if (o->bol && c != '\n') {
		if (c == '>' && o->nfrom == 0) {
			o->ngt++;
			return;
		}
		if (c == "From "[o->nfrom]) {
			if (++o->nfrom == 5) {
				fputc('>', o->f);
				ctl_mbox_flush_pend(o);
				o->bol = false;
			}
			return;
		}
		ctl_mbox_flush_pend(o);
		o->bol = false;
	}
	ctl_mbox_flush_pend(o);
	fputc(c, o->f);
	o->bol = c == '\n';
}

/* One byte of the message as stored: CRLF becomes LF, a bare CR stays. */
static void
ctl_mbox_byte(struct ctl_mbox_out *o, char c)
{
	if (o->cr) {
		o->cr = false;
		if (c == '\n') {
			ctl_mbox_char(o, '\n');
			return;
		}
		ctl_mbox_char(o, '\r');
	}
	if (c == '\r')
		o->cr = true;
	else
		ctl_mbox_char(o, c);
}

/* One message into the mbox file or into DIR/cur/name (maildir_fd: DIR). */
static int
ctl_export_message(struct ctl *ctl, const struct store_msg *m, FILE *mbox,
    int maildir_fd, const char *name)
{
	struct ctl_mbox_out o = { .f = mbox, .bol = true };
	struct store_body *b;
	uint64_t size, off = 0;
	char *buf, *rp = NULL, *from = NULL, date[64], *path;
	ssize_t n;
	int fd = -1, ret = -1;

	if ((b = store_message_open(ctl->st, m->id, &size)) == NULL) {
		ctl_store_err(ctl, "mailbox export");
		return -1;
	}
	if (mbox != NULL) {
		if (store_message_origin(ctl->st, m->id, &rp, &from) < 0) {
			store_body_close(b);
			ctl_store_err(ctl, "mailbox export");
			return -1;
		}
		if (from == NULL) {
			time_t t = (time_t)m->arrived;
			struct tm tm;

			gmtime_r(&t, &tm);
			/* asctime's layout, as mbox "From " lines have it */
			strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y",
			    &tm);
			fprintf(mbox, "From %s %s\n", rp != NULL && *rp != '\0'
			    ? rp : "MAILER-DAEMON", date);
		} else
			fprintf(mbox, "From %s\n", from);
	} else {
		path = xasprintf("cur/%s", name);
		fd = openat(maildir_fd, path, O_WRONLY | O_CREAT | O_EXCL |
		    O_CLOEXEC, 0600);
		free(path);
		if (fd < 0) {
			ctl_err("mailbox export: cannot create cur/%s: %s",
			    name, strerror(errno));
			store_body_close(b);
			return -1;
		}
	}
	buf = xmalloc(CTL_EXPORT_CHUNK);
	while (off < size) {
		n = store_body_read(b, off, buf, CTL_EXPORT_CHUNK);
		if (n <= 0) {
			ctl_store_err(ctl, "mailbox export");
			goto out;
		}
		if (mbox != NULL) {
			for (ssize_t i = 0; i < n; i++)
				ctl_mbox_byte(&o, buf[i]);
		} else if (write(fd, buf, (size_t)n) != n) {
			ctl_err("mailbox export: writing cur/%s: %s", name,
			    strerror(errno));
			goto out;
		}
		off += (uint64_t)n;
	}
	if (mbox != NULL) {
		if (o.cr)
			ctl_mbox_char(&o, '\r');
		ctl_mbox_flush_pend(&o);
		if (!o.bol)
			fputc('\n', mbox);
		fputc('\n', mbox);	/* the empty line before the next */
	} else if (fsync(fd) < 0) {
		ctl_err("mailbox export: fsync cur/%s: %s", name,
		    strerror(errno));
		goto out;
	}
	ret = 0;
out:
	free(buf);
	free(rp);
	free(from);
	if (fd >= 0)
		close(fd);
	store_body_close(b);
	return ret;
}

int
ctl_mailbox_export(struct ctl *ctl, int argc, char **argv)
{
	struct store_msg *msgs = NULL;
	const char *mbox_path = NULL, *dir = NULL;
	char *address = NULL, name[256], *s;
	size_t n = 0;
	FILE *mbox = NULL, *uidlist = NULL;
	int dfd = -1, r, ret = 1, fd;
	time_t now = time(NULL);

	if (argc != 5 || (strcmp(argv[3], "--mbox") != 0 &&
	    strcmp(argv[3], "--maildir") != 0)) {
		ctl_err("usage: carteiroctl -c CONF mailbox export ADDRESS "
		    "--mbox FILE | --maildir DIR");
		return 1;
	}
	if (strcmp(argv[3], "--mbox") == 0)
		mbox_path = argv[4];
	else
		dir = argv[4];
	if (ctl_address_arg(argv[2], &address) < 0)
		return 1;
	r = store_mailbox_list(ctl->st, address, &msgs, &n);
	if (r != 0) {
		if (r == 1)
			ctl_err("no such user %s", address);
		else
			ctl_store_err(ctl, "mailbox export");
		goto out;
	}
	if (mbox_path != NULL) {
		fd = open(mbox_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0600);
		if (fd < 0 || (mbox = fdopen(fd, "w")) == NULL) {
			ctl_err("mailbox export: cannot create %s: %s",
			    mbox_path, strerror(errno));
			goto out;
		}
	} else {
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			ctl_err("mailbox export: cannot create %s: %s", dir,
			    strerror(errno));
			goto out;
		}
		if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
		    (mkdirat(dfd, "cur", 0700) < 0 && errno != EEXIST) ||
		    (mkdirat(dfd, "new", 0700) < 0 && errno != EEXIST) ||
		    (mkdirat(dfd, "tmp", 0700) < 0 && errno != EEXIST)) {
			ctl_err("mailbox export: cannot create %s/cur, new and "
			    "tmp: %s", dir, strerror(errno));
			goto out;
		}
		fd = openat(dfd, "dovecot-uidlist", O_WRONLY | O_CREAT |
		    O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || (uidlist = fdopen(fd, "w")) == NULL) {
			ctl_err("mailbox export: %s/dovecot-uidlist: %s (export "
			    "needs an empty Maildir)", dir, strerror(errno));
			goto out;
		}
		/* Version 3, UIDVALIDITY, next UID (dovecot-uidlist). */
		fprintf(uidlist, "3 V%lld N%zu\n", (long long)now, n + 1);
	}
	for (size_t i = 0; i < n; i++) {
		if (dir != NULL) {
			/* unique, sorted by arrival; S=/W= the exact size */
			snprintf(name, sizeof(name), "%lld.M%lldP%d.carteiro,"
			    "S=%" PRIu64 ",W=%" PRIu64 ":2,",
			    (long long)msgs[i].arrived, (long long)msgs[i].id,
			    (int)getpid(), msgs[i].size, msgs[i].size);
			s = strchr(name, ':');
			fprintf(uidlist, "%zu P%s :%.*s\n", i + 1, msgs[i].uidl,
			    (int)(s - name), name);
		}
		if (ctl_export_message(ctl, &msgs[i], mbox, dfd, name) < 0)
			goto out;
	}
	if (mbox != NULL && (fflush(mbox) != 0 || fsync(fileno(mbox)) < 0)) {
		ctl_err("mailbox export: writing %s: %s", mbox_path,
		    strerror(errno));
		goto out;
	}
	if (uidlist != NULL && (fflush(uidlist) != 0 ||
	    fsync(fileno(uidlist)) < 0)) {
		ctl_err("mailbox export: writing dovecot-uidlist: %s",
		    strerror(errno));
		goto out;
	}
	printf("exported %zu messages of %s to %s\n", n, address,
	    mbox_path != NULL ? mbox_path : dir);
	ret = 0;
out:
	if (mbox != NULL) {
		fclose(mbox);
		if (ret != 0)
			(void)unlink(mbox_path);	/* no half export */
	}
	if (uidlist != NULL)
		fclose(uidlist);
	if (dfd >= 0)
		close(dfd);
	free(msgs);
	free(address);
	return ret;
}
