/*
 * DATA and BDAT: the message bytes of one transaction, decoded (dot
 * stuffing, RFC 5321 4.5.2; BDAT chunks, RFC 3030) into the spool, in
 * memory first and in a spool file once it outgrows that, with the size
 * limit and the first error latched until the end (STYLE 4). The end of
 * data goes to smtp_tx_end (tx_end.c).
 */
#include "smtpd/smtpd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "common/config.h"
#include "common/conn.h"
#include "common/log.h"
#include "common/util.h"
#include "smtpd/delivery.h"

/* Input decoded per step; the output buffer is shared (one loop thread). */
#define SMTP_TX_STEP	(64 * 1024)

static char smtp_tx_out[SMTP_TX_STEP + 2];

static bool smtp_tx_write_fd(int fd, const void *buf, size_t len);
static bool smtp_tx_spool_to_file(struct smtp_session *s);
static void smtp_tx_chunk_done(struct smtp_session *s);
static void smtp_tx_write(struct smtp_session *s, const char *buf,
    size_t len);

/* Write all of buf to fd; false (errno set) on failure. */
static bool
smtp_tx_write_fd(int fd, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return false;
		}
		p += n;
		len -= (size_t)n;
	}
	return true;
}

/*
 * Move the in-memory bytes to a disk spool: the message outgrew memory.
 * False (reply left to the caller) on failure.
 */
static bool
smtp_tx_spool_to_file(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	size_t len = tx->spool_in_mem ? (size_t)tx->size : 0;
	int fd;

	if (!tx->spool_in_mem)
		return tx->spool_fd != -1;
	fd = delivery_spool_open(s->lst->srv->spool_dir);
	if (fd == -1 || !smtp_tx_write_fd(fd, tx->spool_mem, len)) {
		int err = errno;

		if (fd != -1)
			close(fd);
		smtp_tx_spool_failed(s, err);
		return false;
	}
	tx->spool_fd = fd;
	tx->spool_in_mem = false;
	free(tx->spool_mem);
	tx->spool_mem = NULL;
	tx->spool_cap = 0;
	return true;
}

void
smtp_cmd_data(struct smtp_session *s, const char *args)
{
	struct smtp_server *srv = s->lst->srv;
	struct smtp_tx *tx = s->tx;

	smtp_data_init(&tx->parser, true);
	smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	s->mode = SMTP_MODE_DATA;
	conn_set_timeout(s->conn, srv->timeout_data_ms);
}

int
smtp_tx_parse_bdat(const char *args, uint64_t *size_r, bool *last_r)
{
	uint64_t n = 0;
	const char *p = args;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > (UINT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	*last_r = false;
	if (*p == ' ') {
		while (*p == ' ')
			p++;
		if (strcasecmp(p, "LAST") != 0)
			return -1;
		*last_r = true;
	} else if (*p != '\0') {
		return -1;
	}
	*size_r = n;
	return 0;
}

/* The chunk has been read in full. */
static void
smtp_tx_chunk_done(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;

	if (tx->bdat_last) {
		smtp_tx_write(s, smtp_tx_out,
		    smtp_data_finish(&tx->parser, smtp_tx_out));
		smtp_tx_end(s);
		return;
	}
	s->mode = SMTP_MODE_CMD;
	conn_set_timeout(s->conn, s->lst->srv->timeout_cmd_ms);
	if (tx->error == SMTP_TX_ERR_SIZE || tx->error == SMTP_TX_ERR_IO ||
	    tx->error == SMTP_TX_ERR_FULL) {
		/* RFC 3030 2: a failed chunk fails the transaction; later
		 * chunks get 503 and are skipped. */
		smtp_tx_end(s);
		return;
	}
	smtp_reply(s, "250 2.0.0 %llu octets received",
	    (unsigned long long)tx->size);
}

void
smtp_cmd_bdat(struct smtp_session *s, const char *args)
{
	struct smtp_server *srv = s->lst->srv;
	struct smtp_tx *tx = s->tx;
	uint64_t size;
	bool last;

	if (smtp_tx_parse_bdat(args, &size, &last) != 0) {
		/* The chunk length is unknown: its bytes would be read as
		 * commands. Hang up instead. */
		smtp_reply(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		smtp_session_close(s, "bad_bdat");
		return;
	}
	if (!tx->bdat) {
		tx->bdat = true;
		smtp_data_init(&tx->parser, false);
	}
	tx->bdat_left = size;
	tx->bdat_last = last;
	smtp_session_enter(s, SMTP_ST_BDAT);
	s->mode = SMTP_MODE_BDAT;
	conn_set_timeout(s->conn, srv->timeout_data_ms);
	if (size == 0)
		smtp_tx_chunk_done(s);
}

void
smtp_cmd_bdat_reject(struct smtp_session *s, const char *args)
{
	uint64_t size;
	bool last;

	if (smtp_tx_parse_bdat(args, &size, &last) != 0) {
		smtp_session_close(s, "bad_bdat");
		return;
	}
	/* The reply is out; the chunk must still not be read as commands. */
	s->skip_left = size;
	if (size > 0)
		s->mode = SMTP_MODE_SKIP;
}

/* Decoded message bytes: count, enforce the size, write the spool. */
static void
smtp_tx_write(struct smtp_session *s, const char *buf, size_t len)
{
	struct smtp_tx *tx = s->tx;
	bool ok;

	tx->size += len;
	if (tx->error != SMTP_TX_OK && tx->error != SMTP_TX_ERR_BARE)
		return;
	if (tx->size > s->lst->srv->cfg->smtpd.max_message_size) {
		tx->error = SMTP_TX_ERR_SIZE;
		return;
	}
	if (tx->error == SMTP_TX_ERR_BARE)
		return;	/* rejected at the end anyway: store nothing */
	if (len == 0)
		return;	/* (spool_mem may not exist yet) */
	if (tx->spool_in_mem && tx->size <= DELIVERY_SPOOL_MEM_MAX) {
		size_t have = (size_t)tx->size - len;

		if (tx->size > tx->spool_cap) {
			/* Doubling from 4 KB, never past the limit. */
			size_t cap = tx->spool_cap ? tx->spool_cap : 4096;

			while (cap < tx->size)
				cap *= 2;
			if (cap > DELIVERY_SPOOL_MEM_MAX)
				cap = DELIVERY_SPOOL_MEM_MAX;
			tx->spool_mem = xrealloc(tx->spool_mem, cap);
			tx->spool_cap = cap;
		}
		memcpy(tx->spool_mem + have, buf, len);
		return;
	}
	if (tx->spool_in_mem) {
		/* Too big to keep in memory: move what came so far to a
		 * disk spool (tx->size counts this write already). */
		tx->size -= len;
		ok = smtp_tx_spool_to_file(s);
		tx->size += len;
		if (!ok)
			return;	/* latched */
	}
	if (!smtp_tx_write_fd(tx->spool_fd, buf, len))
		smtp_tx_spool_failed(s, errno);
}

void
smtp_tx_spool_failed(struct smtp_session *s, int err)
{
	struct smtp_tx *tx = s->tx;
	bool full = err == ENOSPC || err == EDQUOT;

	log_error("event=smtp.spool sid=%s msgid=%s error=\"%s\"", s->sid,
	    tx->msgid, strerror(err));
	tx->error = full ? SMTP_TX_ERR_FULL : SMTP_TX_ERR_IO;
	/* The spool sits next to the database: the next RCPT knows. The
	 * bytes written so far go with the unlinked file (smtp_tx_free). */
	if (full)
		delivery_note_full(s->lst->srv->delivery);
}

void
smtp_tx_input(struct smtp_session *s)
{
	struct evbuffer *in = conn_input(s->conn);
	struct smtp_tx *tx = s->tx;
	struct evbuffer_iovec v;
	size_t avail, take, used, olen;

	while (s->mode == SMTP_MODE_DATA || s->mode == SMTP_MODE_BDAT) {
		if (s->mode == SMTP_MODE_BDAT && tx->bdat_left == 0) {
			smtp_tx_chunk_done(s);
			return;
		}
		if ((avail = evbuffer_get_length(in)) == 0)
			return;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			return;
		take = v.iov_len < SMTP_TX_STEP ? v.iov_len : SMTP_TX_STEP;
		if (s->mode == SMTP_MODE_BDAT && take > tx->bdat_left)
			take = (size_t)tx->bdat_left;
		used = smtp_data_feed(&tx->parser, v.iov_base, take,
		    smtp_tx_out, &olen);
		if (tx->parser.bare && tx->error == SMTP_TX_OK)
			tx->error = SMTP_TX_ERR_BARE;
		smtp_tx_write(s, smtp_tx_out, olen);
		evbuffer_drain(in, used);
		smtp_deadline_bytes(s, used);
		if (s->mode == SMTP_MODE_BDAT) {
			tx->bdat_left -= used;
		} else if (smtp_data_is_done(&tx->parser)) {
			smtp_tx_end(s);
			return;
		}
	}
}
