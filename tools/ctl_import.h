/*
 * carteiroctl mailbox import and export (issue 14): the sources an import
 * reads (ctl_import_src.c: mbox, Maildir, Dovecot's dovecot-uidlist),
 * Dovecot's pop3_uidl_format, and the commands (ctl_import.c,
 * ctl_export.c).
 */
#ifndef CARTEIRO_CTL_IMPORT_H
#define CARTEIRO_CTL_IMPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ctl;

/* Dovecot's default pop3_uidl_format (UID and UIDVALIDITY, hex). */
#define CTL_UIDL_FORMAT_DEFAULT "%08Xu%08Xv"

/* One message of a source, in import order. */
struct ctl_imsg {
	char *path;		/* Maildir: the file; NULL for mbox */
	char *name;		/* Maildir: base name (before ':') */
	size_t off, len;	/* mbox: the message's bytes in the map */
	char *from_line;	/* mbox: the "From " line after "From " */
	uint32_t uid;		/* dovecot-uidlist UID, 0 = none */
	char *guid;		/* dovecot-uidlist G field, or NULL */
	char *saved_uidl;	/* dovecot-uidlist P field (pop3_save_uidl) */
	char *uidl;		/* the UIDL to keep, NULL = generated */
	char *key;		/* identity when uidl is NULL */
	size_t size;		/* bytes as stored (CRLF) */
	bool known;		/* imported by an earlier run */
};

enum ctl_src_kind {
	CTL_SRC_MBOX,
	CTL_SRC_MAILDIR,
};

struct ctl_isrc {
	enum ctl_src_kind kind;
	bool dovecot;		/* a dovecot-uidlist was read */
	uint32_t uidvalidity;
	struct ctl_imsg *v;	/* owned, n entries */
	size_t n;
	const char *map;	/* mbox: the file, mmap'ed */
	size_t maplen;
};

/* Read a source: a regular file is an mbox (mboxo or mboxrd), a
 * directory with cur/ or new/ a Maildir (with its dovecot-uidlist, if
 * any). 0, or -1 after one ctl_err line. */
int ctl_isrc_open(const char *path, struct ctl_isrc *src);
void ctl_isrc_free(struct ctl_isrc *src);
/* Message i as it will be stored: CRLF line ends (a bare LF becomes
 * CRLF), mbox ">From " quoting undone (mboxrd: one '>' less on every
 * ^>+"From " line). *buf_r: caller frees. 0 / -1 after ctl_err. */
int ctl_isrc_load(const struct ctl_isrc *src, size_t i, char **buf_r,
    size_t *len_r);
/* Expand a Dovecot pop3_uidl_format for m: %u UID, %v UIDVALIDITY, %f
 * the Maildir base name, %g the GUID (else the base name), %%; a width
 * ("08") and Dovecot's modifiers X (hex, lower case), U (upper case),
 * L (lower case) before the letter. *out_r: caller
 * frees. 0, or -1 with *error_r (static). */
int ctl_uidl_expand(const char *fmt, const struct ctl_imsg *m,
    uint32_t uidvalidity, char **out_r, const char **error_r);

int ctl_mailbox_import(struct ctl *ctl, int argc, char **argv);
int ctl_mailbox_export(struct ctl *ctl, int argc, char **argv);

#endif
