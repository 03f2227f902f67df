/*
 * DNS message parsing (RFC 1035 4.1) for the DNS module: the records of
 * one type in the answer section as text, the section's smallest TTL,
 * and the negative-caching TTL of an SOA in the authority section
 * (RFC 2308). c-ares only carries the bytes; reading them here keeps
 * the c-ares header in dns.c alone and gives every record type's TTL.
 */
#include "mailauth/dns_int.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DNS_WIRE_HDR		12
#define DNS_WIRE_MAX_JUMPS	64
#define DNS_WIRE_T_SOA		6

static int dns_wire_name(const unsigned char *, size_t, size_t *, char *,
    size_t);
static uint32_t dns_wire_u32(const unsigned char *);

static uint32_t
dns_wire_u32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

/*
 * The (possibly compressed) name at *off as dotted text in out (at least
 * 256 bytes; the root is ""); *off moves past it. 0; 1 when it parses but
 * a label holds a byte that cannot be a host name's (a dot, a control);
 * -1 when malformed.
 */
static int
dns_wire_name(const unsigned char *msg, size_t len, size_t *off, char *out,
    size_t size)
{
	size_t p = *off, o = 0, end = 0;
	int jumps = 0, odd = 0;

	for (;;) {
		if (p >= len)
			return -1;
		unsigned l = msg[p];

		if ((l & 0xc0) == 0xc0) {
			if (p + 1 >= len || ++jumps > DNS_WIRE_MAX_JUMPS)
				return -1;
			if (end == 0)
				end = p + 2;
			p = (size_t)(l & 0x3f) << 8 | msg[p + 1];
			continue;
		}
		if ((l & 0xc0) != 0)
			return -1;
		if (l == 0) {
			if (end == 0)
				end = p + 1;
			break;
		}
		if (p + 1 + l > len || o + l + 2 > size)
			return -1;
		if (o > 0)
			out[o++] = '.';
		for (unsigned i = 0; i < l; i++) {
			unsigned char c = msg[p + 1 + i];

			if (c == '.' || c <= ' ' || c >= 0x7f)
				odd = 1;
			out[o++] = (char)c;
		}
		p += 1 + l;
	}
	out[o] = '\0';
	*off = end;
	return odd;
}

/* Skip the header and question section; the offset of the answers, or 0
 * when malformed. */
static size_t
dns_wire_skip_question(const unsigned char *msg, size_t len)
{
	char name[256];
	size_t off = DNS_WIRE_HDR;
	unsigned qd;

	if (len < DNS_WIRE_HDR)
		return 0;
	qd = (unsigned)msg[4] << 8 | msg[5];
	for (unsigned i = 0; i < qd; i++) {
		if (dns_wire_name(msg, len, &off, name, sizeof(name)) < 0 ||
		    off + 4 > len)
			return 0;
		off += 4;
	}
	return off;
}

static void
dns_wire_push(struct dns_rr **rr, size_t *n, char *text, unsigned pref)
{
	*rr = xrealloc(*rr, (*n + 1) * sizeof(**rr));
	(*rr)[*n].text = text;
	(*rr)[*n].pref = pref;
	(*n)++;
}

/* One record's data as text (NULL: skip it). -1 if malformed. */
static int
dns_wire_rdata(const unsigned char *msg, size_t len, size_t off,
    size_t rdlen, enum dns_type type, char **text_r, unsigned *pref_r)
{
	char buf[INET6_ADDRSTRLEN], name[256];
	size_t p = off, end = off + rdlen;
	int rc;

	*text_r = NULL;
	*pref_r = 0;
	switch (type) {
	case DNS_T_A:
	case DNS_T_AAAA:
		if (rdlen != (type == DNS_T_A ? 4u : 16u))
			return -1;
		inet_ntop(type == DNS_T_A ? AF_INET : AF_INET6, msg + off, buf,
		    sizeof(buf));
		*text_r = xstrdup(buf);
		return 0;
	case DNS_T_MX:
		if (rdlen < 3)
			return -1;
		*pref_r = (unsigned)msg[off] << 8 | msg[off + 1];
		p += 2;
		/* FALLTHROUGH */
	case DNS_T_PTR:
		rc = dns_wire_name(msg, len, &p, name, sizeof(name));
		if (rc < 0 || p > end)
			return -1;
		if (rc == 0)
			*text_r = xstrdup(name);
		return 0;
	case DNS_T_SRV: {
		/* RFC 2782: priority, weight, port (16 bits each), target
		 * (uncompressed, but a compressed one is read as well). */
		unsigned prio, weight, port;

		if (rdlen < 7)
			return -1;
		prio = (unsigned)msg[off] << 8 | msg[off + 1];
		weight = (unsigned)msg[off + 2] << 8 | msg[off + 3];
		port = (unsigned)msg[off + 4] << 8 | msg[off + 5];
		p += 6;
		rc = dns_wire_name(msg, len, &p, name, sizeof(name));
		if (rc < 0 || p > end)
			return -1;
		if (rc == 0)
			*text_r = xasprintf("%u %u %u %s", prio, weight, port,
			    name[0] ? name : ".");
		*pref_r = prio;
		return 0;
	}
	case DNS_T_TXT: {
		/* RFC 7208 3.3: the strings of one record are joined. */
		char *s = xmalloc(rdlen + 1);
		size_t o = 0;

		while (p < end) {
			size_t l = msg[p++];

			if (p + l > end) {
				free(s);
				return -1;
			}
			/* A NUL octet cannot be handed out in a C string:
			 * it becomes DEL (0x7f), which no TXT syntax we read
			 * (SPF, DKIM, DMARC) allows either, so the record
			 * stays malformed instead of being cut short. */
			for (size_t i = 0; i < l; i++)
				s[o++] = msg[p + i] != '\0' ? (char)msg[p + i] :
				    0x7f;
			p += l;
		}
		s[o] = '\0';
		*text_r = s;
		return 0;
	}
	case DNS_T_TLSA: {
		/* RFC 6698 2.1 / 2.2: usage, selector, matching type (one
		 * octet each), then the association data, here in hex. */
		static const char hex[] = "0123456789abcdef";
		char *s;
		int o;

		if (rdlen < 4)
			return -1;
		s = xmalloc(12 + 2 * (rdlen - 3) + 1);
		o = snprintf(s, 12, "%u %u %u ", msg[off], msg[off + 1],
		    msg[off + 2]);
		for (p = off + 3; p < end; p++) {
			s[o++] = hex[msg[p] >> 4];
			s[o++] = hex[msg[p] & 0x0f];
		}
		s[o] = '\0';
		*text_r = s;
		return 0;
	}
	default:
		return -1;
	}
}

int
dns_wire_answer(const unsigned char *abuf, size_t alen, enum dns_type type,
    struct dns_rr **rr_r, size_t *n_r, uint32_t *ttl_r)
{
	struct dns_rr *rr = NULL;
	char name[256];
	size_t n = 0, off = dns_wire_skip_question(abuf, alen);
	unsigned an;
	uint32_t ttl = UINT32_MAX;
	int code = dns_type_code(type);

	*rr_r = NULL;
	*n_r = 0;
	*ttl_r = 0;
	if (off == 0)
		return -1;
	an = (unsigned)abuf[6] << 8 | abuf[7];
	for (unsigned i = 0; i < an; i++) {
		size_t rdlen;
		int rtype;
		uint32_t t;

		if (dns_wire_name(abuf, alen, &off, name, sizeof(name)) < 0 ||
		    off + 10 > alen)
			goto bad;
		rtype = abuf[off] << 8 | abuf[off + 1];
		t = dns_wire_u32(abuf + off + 4);
		rdlen = (size_t)abuf[off + 8] << 8 | abuf[off + 9];
		off += 10;
		if (off + rdlen > alen)
			goto bad;
		/* RFC 2181 8: a TTL with the top bit set counts as 0. */
		if (t > INT32_MAX)
			t = 0;
		if (t < ttl)
			ttl = t;
		if (rtype == code) {
			char *text;
			unsigned pref;

			if (dns_wire_rdata(abuf, alen, off, rdlen, type, &text,
			    &pref) < 0)
				goto bad;
			if (text != NULL) {
				dns_wire_push(&rr, &n, text, pref);
				rr[n - 1].ad = (abuf[3] & DNS_HDR_AD) != 0;
			}
		}
		off += rdlen;
	}
	*rr_r = rr;
	*n_r = n;
	*ttl_r = ttl == UINT32_MAX ? 0 : ttl;
	return 0;
bad:
	dns_rrs_free(rr, n);
	return -1;
}

uint32_t
dns_wire_negative_ttl(const unsigned char *abuf, size_t alen)
{
	char name[256];
	size_t off = abuf != NULL ? dns_wire_skip_question(abuf, alen) : 0;
	unsigned an, ns;

	if (off == 0)
		return 0;
	an = (unsigned)abuf[6] << 8 | abuf[7];
	ns = (unsigned)abuf[8] << 8 | abuf[9];
	for (unsigned i = 0; i < an + ns; i++) {
		size_t rdlen, p;
		uint32_t ttl, min;

		if (dns_wire_name(abuf, alen, &off, name, sizeof(name)) < 0 ||
		    off + 10 > alen)
			return 0;
		rdlen = (size_t)abuf[off + 8] << 8 | abuf[off + 9];
		if (off + 10 + rdlen > alen)
			return 0;
		if (i < an || (abuf[off] << 8 | abuf[off + 1]) !=
		    DNS_WIRE_T_SOA) {
			off += 10 + rdlen;
			continue;
		}
		ttl = dns_wire_u32(abuf + off + 4);
		p = off + 10;
		/* MNAME, RNAME, then SERIAL REFRESH RETRY EXPIRE MINIMUM. */
		if (dns_wire_name(abuf, alen, &p, name, sizeof(name)) < 0 ||
		    dns_wire_name(abuf, alen, &p, name, sizeof(name)) < 0 ||
		    p + 20 > off + 10 + rdlen)
			return 0;
		min = dns_wire_u32(abuf + p + 16);
		if (ttl > INT32_MAX)
			ttl = 0;
		return min < ttl ? min : ttl;
	}
	return 0;
}
