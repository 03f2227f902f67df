/*
 * Milter protocol encoding and decoding, pure (see milter_proto.h). The
 * conversation itself is milter.c.
 */
#include "smtpd/milter_proto.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

static void milter_buf_need(struct milter_buf *b, size_t n);
static void milter_buf_put(struct milter_buf *b, const void *p, size_t n);
static void milter_buf_str(struct milter_buf *b, const char *s);
static void milter_buf_u32(struct milter_buf *b, uint32_t v);
static size_t milter_pkt_begin(struct milter_buf *b, char cmd);
static void milter_pkt_end(struct milter_buf *b, size_t at);
static const char *milter_take_str(const unsigned char **p, size_t *len);

void
milter_buf_free(struct milter_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static void
milter_buf_need(struct milter_buf *b, size_t n)
{
	if (b->len + n <= b->cap)
		return;
	while (b->cap < b->len + n)
		b->cap = b->cap ? b->cap * 2 : 256;
	b->p = xrealloc(b->p, b->cap);
}

static void
milter_buf_put(struct milter_buf *b, const void *p, size_t n)
{
	milter_buf_need(b, n);
	if (n > 0)
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void
milter_buf_str(struct milter_buf *b, const char *s)
{
	milter_buf_put(b, s, strlen(s) + 1);
}

static void
milter_buf_u32(struct milter_buf *b, uint32_t v)
{
	uint32_t n = htonl(v);

	milter_buf_put(b, &n, 4);
}

/* Reserve the length, write cmd; milter_pkt_end fills the length in. */
static size_t
milter_pkt_begin(struct milter_buf *b, char cmd)
{
	size_t at = b->len;

	milter_buf_u32(b, 0);
	milter_buf_put(b, &cmd, 1);
	return at;
}

static void
milter_pkt_end(struct milter_buf *b, size_t at)
{
	uint32_t n = htonl((uint32_t)(b->len - at - 4));

	memcpy(b->p + at, &n, 4);
}

void
milter_enc_optneg(struct milter_buf *b, uint32_t version, uint32_t actions,
    uint32_t protocol)
{
	size_t at = milter_pkt_begin(b, MILTER_CMD_OPTNEG);

	milter_buf_u32(b, version);
	milter_buf_u32(b, actions);
	milter_buf_u32(b, protocol);
	milter_pkt_end(b, at);
}

void
milter_enc_macros(struct milter_buf *b, char cmd, const char *const *names,
    const char *const *values, size_t n)
{
	size_t at = milter_pkt_begin(b, MILTER_CMD_MACRO), i;

	milter_buf_put(b, &cmd, 1);
	for (i = 0; i < n; i++) {
		if (values[i] == NULL)
			continue;
		milter_buf_str(b, names[i]);
		milter_buf_str(b, values[i]);
	}
	milter_pkt_end(b, at);
}

void
milter_enc_connect(struct milter_buf *b, const char *host, char family,
    uint16_t port, const char *addr)
{
	size_t at = milter_pkt_begin(b, MILTER_CMD_CONNECT);
	uint16_t p = htons(port);

	milter_buf_str(b, host);
	milter_buf_put(b, &family, 1);
	if (family != 'U') {
		milter_buf_put(b, &p, 2);
		milter_buf_str(b, addr);
	}
	milter_pkt_end(b, at);
}

void
milter_enc_strs(struct milter_buf *b, char cmd, const char *const *v,
    size_t n)
{
	size_t at = milter_pkt_begin(b, cmd), i;

	for (i = 0; i < n; i++)
		milter_buf_str(b, v[i]);
	milter_pkt_end(b, at);
}

void
milter_enc_header(struct milter_buf *b, const char *name, const char *value)
{
	size_t at = milter_pkt_begin(b, MILTER_CMD_HEADER);

	milter_buf_str(b, name);
	milter_buf_str(b, value);
	milter_pkt_end(b, at);
}

void
milter_enc_body(struct milter_buf *b, const void *data, size_t len)
{
	size_t at = milter_pkt_begin(b, MILTER_CMD_BODY);

	milter_buf_put(b, data, len);
	milter_pkt_end(b, at);
}

void
milter_enc_cmd(struct milter_buf *b, char cmd)
{
	milter_pkt_end(b, milter_pkt_begin(b, cmd));
}

int
milter_pkt_take(const unsigned char *in, size_t len, char *cmd_r,
    const unsigned char **data_r, size_t *datalen_r, size_t *used_r)
{
	uint32_t n;

	if (len < 4)
		return 1;
	memcpy(&n, in, 4);
	n = ntohl(n);
	if (n == 0 || n > MILTER_PKT_MAX)
		return -1;
	if (len - 4 < n)
		return 1;
	*cmd_r = (char)in[4];
	*data_r = in + 5;
	*datalen_r = n - 1;
	*used_r = 4 + (size_t)n;
	return 0;
}

/* A NUL-terminated string at *p, or NULL if there is no NUL. */
static const char *
milter_take_str(const unsigned char **p, size_t *len)
{
	const unsigned char *nul = memchr(*p, '\0', *len);
	const char *s = (const char *)*p;

	if (nul == NULL)
		return NULL;
	*len -= (size_t)(nul - *p) + 1;
	*p = nul + 1;
	return s;
}

int
milter_reply_decode(char cmd, const unsigned char *data, size_t len,
    struct milter_reply *r)
{
	uint32_t v[3];

	memset(r, 0, sizeof(*r));
	r->cmd = cmd;
	switch (cmd) {
	case MILTER_R_OPTNEG:
		/* Macro lists may follow (SETSYMLIST): ignored, we send
		 * every macro anyway. */
		if (len < 12)
			return -1;
		memcpy(v, data, 12);
		r->version = ntohl(v[0]);
		r->actions = ntohl(v[1]);
		r->protocol = ntohl(v[2]);
		return 0;
	case MILTER_R_INSHEADER:
	case MILTER_R_CHGHEADER:
		if (len < 4)
			return -1;
		memcpy(v, data, 4);
		r->index = ntohl(v[0]);
		data += 4;
		len -= 4;
		/* FALLTHROUGH */
	case MILTER_R_ADDHEADER:
		if ((r->name = milter_take_str(&data, &len)) == NULL ||
		    (r->value = milter_take_str(&data, &len)) == NULL)
			return -1;
		return r->name[0] == '\0' ? -1 : 0;
	case MILTER_R_ADDRCPT:
	case MILTER_R_DELRCPT:
	case MILTER_R_QUARANTINE:
		if ((r->value = milter_take_str(&data, &len)) == NULL)
			return -1;
		return 0;
	case MILTER_R_ADDRCPT_PAR:
	case MILTER_R_CHGFROM:
		if ((r->value = milter_take_str(&data, &len)) == NULL)
			return -1;
		if (len > 0)
			r->args = milter_take_str(&data, &len);
		return 0;
	case MILTER_R_REPLYCODE:
		if ((r->value = milter_take_str(&data, &len)) == NULL ||
		    milter_replycode_class(r->value) == 0)
			return -1;
		return 0;
	case MILTER_R_REPLBODY:
		r->body = data;
		r->bodylen = len;
		return 0;
	default:
		return 0;
	}
}

int
milter_replycode_class(const char *t)
{
	if ((t[0] != '4' && t[0] != '5') || t[1] < '0' || t[1] > '9' ||
	    t[2] < '0' || t[2] > '9')
		return 0;
	if (t[3] != '\0' && t[3] != ' ' && t[3] != '-')
		return 0;
	return t[0] - '0';
}
