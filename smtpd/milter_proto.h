/*
 * The milter wire protocol (version 6, as libmilter, Postfix and rspamd
 * speak it), pure: encoding the MTA's commands into a byte buffer and
 * decoding the milter's packets. No I/O, no state machine (milter.c), no
 * message rewriting (milter_apply.c).
 *
 * A packet is a 4-byte length in network order (counting the command
 * byte), one command byte, then the data.
 */
#ifndef CARTEIRO_SMTPD_MILTER_PROTO_H
#define CARTEIRO_SMTPD_MILTER_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MILTER_VERSION		6
/* Largest packet we accept from a milter (libmilter's MILTER_MAX_DATA_SIZE
 * is 64 KB by default, up to 1 MB when built larger; rspamd sends whole
 * replaced bodies in 64 KB pieces). */
#define MILTER_PKT_MAX		(1024 * 1024 + 16)
/* SMFIC_BODY chunks carry at most this many bytes (MILTER_CHUNK_SIZE). */
#define MILTER_CHUNK_MAX	65535

/* Commands, MTA to milter (SMFIC_*). */
#define MILTER_CMD_ABORT	'A'
#define MILTER_CMD_BODY		'B'
#define MILTER_CMD_CONNECT	'C'
#define MILTER_CMD_MACRO	'D'
#define MILTER_CMD_BODYEOB	'E'
#define MILTER_CMD_HELO		'H'
#define MILTER_CMD_QUIT_NC	'K'	/* quit, a new connection follows */
#define MILTER_CMD_HEADER	'L'
#define MILTER_CMD_MAIL		'M'
#define MILTER_CMD_EOH		'N'
#define MILTER_CMD_OPTNEG	'O'
#define MILTER_CMD_QUIT		'Q'
#define MILTER_CMD_RCPT		'R'
#define MILTER_CMD_DATA		'T'

/* Replies and modifications, milter to MTA (SMFIR_*). */
#define MILTER_R_ADDRCPT	'+'
#define MILTER_R_DELRCPT	'-'
#define MILTER_R_ADDRCPT_PAR	'2'
#define MILTER_R_SHUTDOWN	'4'
#define MILTER_R_ACCEPT		'a'
#define MILTER_R_REPLBODY	'b'
#define MILTER_R_CONTINUE	'c'
#define MILTER_R_DISCARD	'd'
#define MILTER_R_CHGFROM	'e'
#define MILTER_R_CONN_FAIL	'f'
#define MILTER_R_ADDHEADER	'h'
#define MILTER_R_INSHEADER	'i'
#define MILTER_R_SETSYMLIST	'l'
#define MILTER_R_CHGHEADER	'm'
#define MILTER_R_PROGRESS	'p'
#define MILTER_R_QUARANTINE	'q'
#define MILTER_R_REJECT		'r'
#define MILTER_R_SKIP		's'
#define MILTER_R_TEMPFAIL	't'
#define MILTER_R_REPLYCODE	'y'
#define MILTER_R_OPTNEG		'O'

/* Actions the MTA allows (SMFIF_*). */
#define MILTER_F_ADDHDRS	0x001
#define MILTER_F_CHGBODY	0x002
#define MILTER_F_ADDRCPT	0x004
#define MILTER_F_DELRCPT	0x008
#define MILTER_F_CHGHDRS	0x010
#define MILTER_F_QUARANTINE	0x020
#define MILTER_F_CHGFROM	0x040
#define MILTER_F_ADDRCPT_PAR	0x080
#define MILTER_F_SETSYMLIST	0x100

/* Protocol steps the milter may skip or not answer (SMFIP_*). */
#define MILTER_P_NOCONNECT	0x000001
#define MILTER_P_NOHELO		0x000002
#define MILTER_P_NOMAIL		0x000004
#define MILTER_P_NORCPT		0x000008
#define MILTER_P_NOBODY		0x000010
#define MILTER_P_NOHDRS		0x000020
#define MILTER_P_NOEOH		0x000040
#define MILTER_P_NR_HDR		0x000080
#define MILTER_P_NOUNKNOWN	0x000100
#define MILTER_P_NODATA		0x000200
#define MILTER_P_SKIP		0x000400
#define MILTER_P_RCPT_REJ	0x000800
#define MILTER_P_NR_CONN	0x001000
#define MILTER_P_NR_HELO	0x002000
#define MILTER_P_NR_MAIL	0x004000
#define MILTER_P_NR_RCPT	0x008000
#define MILTER_P_NR_DATA	0x010000
#define MILTER_P_NR_UNKN	0x020000
#define MILTER_P_NR_EOH		0x040000
#define MILTER_P_NR_BODY	0x080000
#define MILTER_P_HDR_LEADSPC	0x100000

/* What we offer: every action but SETSYMLIST (we always send the whole
 * macro set), every protocol step bit but RCPT_REJ (rejected recipients
 * are never shown to milters). */
#define MILTER_OFFER_ACTIONS	0x0ff
#define MILTER_OFFER_PROTOCOL	(0x1fffff & ~MILTER_P_RCPT_REJ)

/* A growable output buffer; p is malloc'd and owned by the struct. */
struct milter_buf {
	unsigned char *p;
	size_t len;
	size_t cap;
};

void milter_buf_free(struct milter_buf *b);

/* Encoders append one packet each. Strings are NUL-terminated on the wire;
 * a string containing NUL is cut there (the protocol cannot carry it). */
void milter_enc_optneg(struct milter_buf *b, uint32_t version,
    uint32_t actions, uint32_t protocol);
/* SMFIC_MACRO for the command cmd: n name/value pairs (names without
 * braces are sent as given: "j", "{daemon_name}"). NULL values skipped. */
void milter_enc_macros(struct milter_buf *b, char cmd,
    const char *const *names, const char *const *values, size_t n);
/* family: '4', '6', 'L' (unix) or 'U' (unknown: host only). */
void milter_enc_connect(struct milter_buf *b, const char *host, char family,
    uint16_t port, const char *addr);
/* HELO, MAIL ("<addr>" plus ESMTP args), RCPT: strings. */
void milter_enc_strs(struct milter_buf *b, char cmd, const char *const *v,
    size_t n);
void milter_enc_header(struct milter_buf *b, const char *name,
    const char *value);
void milter_enc_body(struct milter_buf *b, const void *data, size_t len);
/* A command without data: DATA, EOH, BODYEOB, ABORT, QUIT. */
void milter_enc_cmd(struct milter_buf *b, char cmd);

/*
 * Take one packet from in[0..len). Returns 0 with *cmd_r, *data_r
 * (borrowed from in), *datalen_r and *used_r (bytes consumed) set; 1 when
 * more bytes are needed; -1 for a length of 0 or over MILTER_PKT_MAX.
 */
int milter_pkt_take(const unsigned char *in, size_t len, char *cmd_r,
    const unsigned char **data_r, size_t *datalen_r, size_t *used_r);

/* A decoded reply. Strings are borrowed from the packet data. */
struct milter_reply {
	char cmd;			/* MILTER_R_* */
	uint32_t version, actions, protocol;	/* OPTNEG */
	uint32_t index;			/* INSHEADER, CHGHEADER */
	const char *name;		/* header name */
	const char *value;		/* header value, rcpt, reason, text,
					 * CHGFROM address */
	const char *args;		/* ADDRCPT_PAR/CHGFROM args, or NULL */
	const unsigned char *body;	/* REPLBODY */
	size_t bodylen;
};

/*
 * Decode a packet's data for its command: 0, or -1 when the data does not
 * fit the command (missing NUL, short integer, bad REPLYCODE). Unknown
 * commands decode with only cmd set (the caller decides).
 */
int milter_reply_decode(char cmd, const unsigned char *data, size_t len,
    struct milter_reply *r);

/* A REPLYCODE text "4xx ..." / "5xx ...": its class (4 or 5), 0 if the
 * text is no valid SMTP reply (RFC 5321 4.2: three digits, then SP, '-'
 * or the end; 4 or 5 first). */
int milter_replycode_class(const char *text);

#endif
