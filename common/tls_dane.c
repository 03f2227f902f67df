/*
 * DANE matching for the relay (RFC 7672): the peer's certificate chain
 * against TLSA records the caller looked up itself (mailauth/dns.c, with
 * the AD bit), by GnuTLS's DANE library (dane_raw_tlsa,
 * dane_verify_crt_raw). The decision what to do with the result (defer,
 * deliver) is smtpd/mta_dane.c's.
 */
#include "common/tls.h"
#include "common/tls_int.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/dane.h>
#include <gnutls/x509.h>

/* dane_raw_tlsa() reads at most this many records per query (libdane's
 * MAX_DATA_ENTRIES); more are matched in further batches. */
#define TLS_DANE_BATCH		4
/* The longest association data: a full certificate (matching type 0). */
#define TLS_DANE_DATA_MAX	16384

struct tls_dane_rec {
	unsigned usage, selector, mtype;
	unsigned char *raw;		/* usage, selector, mtype, data */
	size_t rawlen;
};

static int tls_dane_parse(const char *, struct tls_dane_rec *);
static int tls_dane_verify(const gnutls_datum_t *, unsigned,
    struct tls_dane_rec *, size_t, unsigned);

static dane_state_t tls_dane_state;	/* loop thread only */

/* "U S M HEX" into rec (raw malloc'd). 0, or -1 if it does not parse. */
static int
tls_dane_parse(const char *text, struct tls_dane_rec *rec)
{
	const char *hex;
	size_t hl, i;
	int n = 0;

	memset(rec, 0, sizeof(*rec));
	if (sscanf(text, "%u %u %u %n", &rec->usage, &rec->selector,
	    &rec->mtype, &n) != 3 || n == 0)
		return -1;
	hex = text + n;
	hl = strlen(hex);
	if (hl == 0 || hl % 2 != 0 || hl / 2 > TLS_DANE_DATA_MAX ||
	    rec->usage > 255 || rec->selector > 255 || rec->mtype > 255)
		return -1;
	rec->rawlen = 3 + hl / 2;
	rec->raw = xmalloc(rec->rawlen);
	rec->raw[0] = (unsigned char)rec->usage;
	rec->raw[1] = (unsigned char)rec->selector;
	rec->raw[2] = (unsigned char)rec->mtype;
	for (i = 0; i < hl / 2; i++) {
		int h = util_hexval(hex[2 * i]), l = util_hexval(hex[2 * i +
		    1]);

		if (h < 0 || l < 0) {
			free(rec->raw);
			rec->raw = NULL;
			return -1;
		}
		rec->raw[3 + i] = (unsigned char)(h << 4 | l);
	}
	return 0;
}

int
tls_dane_usable(const char *tlsa)
{
	struct tls_dane_rec rec;
	int ok;

	if (tls_dane_parse(tlsa, &rec) < 0)
		return 0;
	ok = (rec.usage == 2 || rec.usage == 3) && rec.selector <= 1 &&
	    rec.mtype <= 2;
	free(rec.raw);
	return ok;
}

/* One batch (at most TLS_DANE_BATCH records) against the chain with
 * vflags: 1 if a record matched. */
static int
tls_dane_verify(const gnutls_datum_t *chain, unsigned nchain,
    struct tls_dane_rec *rec, size_t n, unsigned vflags)
{
	char *data[TLS_DANE_BATCH + 1];
	int len[TLS_DANE_BATCH + 1];
	dane_query_t q = NULL;
	unsigned verify = 0;
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		data[i] = (char *)rec[i].raw;
		len[i] = (int)rec[i].rawlen;
	}
	data[n] = NULL;
	len[n] = 0;
	if (dane_raw_tlsa(tls_dane_state, &q, data, len, 1, 0) < 0) {
		if (q != NULL)
			dane_query_deinit(q);
		return 0;
	}
	rc = dane_verify_crt_raw(tls_dane_state, chain, nchain,
	    GNUTLS_CRT_X509, q, 0, vflags | DANE_VFLAG_FAIL_IF_NOT_CHECKED,
	    &verify);
	dane_query_deinit(q);
	return rc == 0 && verify == 0;
}

int
tls_session_dane_match(struct tls_session *s, const char *const *tlsa,
    size_t n, const char *host, const char **why_r)
{
	static const unsigned pass[2] = {
		DANE_VFLAG_ONLY_CHECK_EE_USAGE, DANE_VFLAG_ONLY_CHECK_CA_USAGE,
	};
	const gnutls_datum_t *chain;
	unsigned nchain = 0;
	struct tls_dane_rec *rec;
	size_t nrec = 0, i;
	int matched = 0;

	*why_r = "no usable TLSA record";
	chain = gnutls_certificate_get_peers(s->gs, &nchain);
	if (chain == NULL || nchain == 0 || gnutls_certificate_type_get(
	    s->gs) != GNUTLS_CRT_X509) {
		*why_r = "the server sent no certificate";
		return 0;
	}
	if (tls_dane_state == NULL && dane_state_init(&tls_dane_state,
	    DANE_F_IGNORE_LOCAL_RESOLVER | DANE_F_IGNORE_DNSSEC) < 0) {
		tls_dane_state = NULL;
		*why_r = "cannot initialise the DANE library";
		return 0;
	}
	rec = xcalloc(n > 0 ? n : 1, sizeof(*rec));
	for (i = 0; i < n; i++)
		if (tls_dane_usable(tlsa[i]) &&
		    tls_dane_parse(tlsa[i], &rec[nrec]) == 0)
			nrec++;
	for (int p = 0; p < 2 && !matched && nrec > 0; p++) {
		*why_r = "no TLSA record matches the certificate chain";
		for (i = 0; i < nrec && !matched; i += TLS_DANE_BATCH)
			matched = tls_dane_verify(chain, nchain, rec + i,
			    nrec - i < TLS_DANE_BATCH ? nrec - i :
			    TLS_DANE_BATCH, pass[p]);
		if (matched && p == 1) {
			/* DANE-TA: the issuer is trusted for names the
			 * leaf carries; it must carry the MX host's. */
			gnutls_x509_crt_t crt;

			matched = 0;
			if (gnutls_x509_crt_init(&crt) == 0) {
				if (gnutls_x509_crt_import(crt, &chain[0],
				    GNUTLS_X509_FMT_DER) == 0 &&
				    gnutls_x509_crt_check_hostname(crt, host))
					matched = 1;
				gnutls_x509_crt_deinit(crt);
			}
			if (!matched)
				*why_r = "the certificate matches a DANE-TA "
				    "record but does not name the MX host";
		}
	}
	for (i = 0; i < nrec; i++)
		free(rec[i].raw);
	free(rec);
	return matched;
}
