/* Fuzz the SASL engine (common/sasl.c) over PLAIN and LOGIN: the input's
 * first byte picks the mechanism and whether the exchange starts without
 * an initial response; the rest is cut into client lines at '\n'. Every
 * step is checked against sasl.h's promises: "*" and only "*" aborts,
 * an abort or bad input ends the exchange, a challenge is given, and
 * credentials come only from input that decodes to exactly them (PLAIN:
 * authzid NUL authcid NUL password, the authzid empty or the authcid;
 * LOGIN: the user name line, then the password line). After credentials
 * or the end of an exchange the next line starts a new one. */
#include "common/sasl.h"
#include "common/addr.h"

#include <assert.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/* The base64 line decoded, as the engine must have read it; NULL if it
 * is not base64. */
static unsigned char *
decode(const char *line, size_t len, size_t *dlen)
{
	unsigned char *bin = malloc(len + 1);

	if (sodium_base642bin(bin, len + 1, line, len, NULL, dlen, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0) {
		free(bin);
		return NULL;
	}
	return bin;
}

static void
check_plain(const struct sasl *sa, const char *line, size_t len)
{
	size_t dlen, zl = strlen(sa->authzid), cl = strlen(sa->authcid),
	    pl = strlen(sa->password);
	unsigned char *bin = decode(line, len, &dlen);

	assert(bin != NULL);
	assert(dlen == zl + 1 + cl + 1 + pl);
	assert(memcmp(bin, sa->authzid, zl) == 0 && bin[zl] == '\0');
	assert(memcmp(bin + zl + 1, sa->authcid, cl) == 0 &&
	    bin[zl + 1 + cl] == '\0');
	assert(memcmp(bin + zl + cl + 2, sa->password, pl) == 0);
	assert(zl == 0 || strcasecmp(sa->authzid, sa->authcid) == 0);
	free(bin);
}

static void
check_login(const struct sasl *sa, const char *user, size_t ulen,
    const char *line, size_t len)
{
	size_t dlen;
	unsigned char *bin;

	assert(user != NULL);
	bin = decode(user, ulen, &dlen);
	assert(bin != NULL && dlen == strlen(sa->authcid) &&
	    memcmp(bin, sa->authcid, dlen) == 0);
	free(bin);
	bin = decode(line, len, &dlen);
	assert(bin != NULL && dlen == strlen(sa->password) &&
	    memcmp(bin, sa->password, dlen) == 0);
	assert(strcmp(sa->authzid, "") == 0);
	free(bin);
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static int inited;
	const struct sasl_mech *plain, *login, *m;
	const char *chal, *user = NULL;
	struct sasl sa;
	enum sasl_status st;
	char *buf, *line, *nl, *end;
	size_t len, ulen = 0;
	unsigned flags, nth = 0;

	if (!inited) {
		assert(sodium_init() >= 0);
		inited = 1;
	}
	if (size < 1)
		return 0;
	plain = sasl_mech_find("plain", 5);
	login = sasl_mech_find("LOGIN", 5);
	assert(plain != NULL && login != NULL);
	assert(sasl_mech_find("CRAM-MD5", 8) == NULL);
	flags = data[0];
	buf = malloc(size);
	memcpy(buf, data + 1, size - 1);
	buf[size - 1] = '\0';
	end = buf + size - 1;

	sasl_init(&sa, NULL, NULL);
	assert(!sasl_is_active(&sa));
	m = NULL;
	for (line = buf; line < end; line = nl + 1) {
		nl = memchr(line, '\n', (size_t)(end - line));
		if (nl == NULL)
			nl = end;
		*nl = '\0';
		len = (size_t)(nl - line);
		if (!sasl_is_active(&sa)) {
			/* A new exchange: flags bit nth picks the mechanism,
			 * the next bit whether it has an initial response. */
			m = (flags >> (nth % 8)) & 1 ? login : plain;
			sasl_begin(&sa, m);
			assert(sasl_is_active(&sa));
			user = NULL;
			if ((flags >> ((nth + 1) % 8)) & 1) {
				st = sasl_step(&sa, NULL, 0, &chal);
				assert(st == SASL_CHALLENGE && chal != NULL);
			}
			nth++;
		}
		st = sasl_step(&sa, line, len, &chal);
		assert((st == SASL_ABORT) == (len == 1 && line[0] == '*'));
		switch (st) {
		case SASL_CHALLENGE:
			assert(chal != NULL);
			assert(sasl_is_active(&sa));
			/* Only LOGIN asks again after a response. */
			assert(m == login);
			user = line;
			ulen = len;
			break;
		case SASL_CREDS:
			assert(sa.authcid != NULL && sa.password != NULL &&
			    sa.authzid != NULL);
			assert(sa.authcid[0] != '\0' &&
			    sa.password[0] != '\0');
			assert(addr_utf8_valid(sa.authcid,
			    strlen(sa.authcid)));
			if (m == plain && !(len == 1 && line[0] == '='))
				check_plain(&sa, line, len);
			else if (m == login)
				check_login(&sa, user, ulen, line, len);
			else
				assert(!"credentials from an empty response");
			sasl_reset(&sa);
			assert(!sasl_is_active(&sa));
			break;
		case SASL_ABORT:
		case SASL_BAD:
			assert(!sasl_is_active(&sa));
			assert(sa.authcid == NULL && sa.password == NULL);
			break;
		}
	}
	/* A NULL line after the first step is bad input. */
	if (sasl_is_active(&sa) && sa.step > 0) {
		st = sasl_step(&sa, NULL, 0, &chal);
		assert(st == SASL_BAD && !sasl_is_active(&sa));
	}
	sasl_clear(&sa);
	free(buf);
	return 0;
}
