/*
 * TLS-RPT (RFC 8460) counting and report building: the JSON's fields and
 * structure byte for byte (section 4.4), aggregation per policy and per
 * failure detail, and the gzip stream (section 5.3) inflating back to it.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "smtpd/tlsrpt.h"
#include "t.h"

static char *
gunzip(const unsigned char *in, size_t len)
{
	z_stream z;
	static char out[8192];

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 15 + 16) != Z_OK)
		return NULL;
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)len;
	z.next_out = (Bytef *)out;
	z.avail_out = sizeof(out) - 1;
	if (inflate(&z, Z_FINISH) != Z_STREAM_END) {
		inflateEnd(&z);
		return NULL;
	}
	out[z.total_out] = '\0';
	inflateEnd(&z);
	return out;
}

int
main(void)
{
	static const char *const tlsa[] = { "3 1 1 abcd" };
	struct tlsrpt *t;
	const char **doms;
	char *json;
	unsigned char *gz;
	size_t n, gzlen;

	t_begin("tlsrpt: counts per policy, failure details per type");
	t = tlsrpt_new();
	tlsrpt_add(t, "Remote.test", "tlsa", tlsa, 1, "mx1.remote.test", NULL,
	    NULL, NULL);
	tlsrpt_add(t, "remote.test", "tlsa", tlsa, 1, "mx1.remote.test", NULL,
	    NULL, NULL);
	tlsrpt_add(t, "remote.test", "tlsa", tlsa, 1, "mx2.remote.test",
	    "validation-failure", "192.0.2.1", "198.51.100.7");
	tlsrpt_add(t, "remote.test", "tlsa", tlsa, 1, "mx2.remote.test",
	    "validation-failure", "192.0.2.1", "198.51.100.7");
	tlsrpt_add(t, "remote.test", "tlsa", tlsa, 1, "mx1.remote.test",
	    "starttls-not-supported", "192.0.2.1", NULL);
	tlsrpt_add(t, "other.test", "no-policy-found", NULL, 0,
	    "mx.other.test", NULL, NULL, NULL);
	n = tlsrpt_domains(t, &doms);
	t_assert(n == 2);
	t_assert_str(doms[0], "remote.test");
	t_assert_str(doms[1], "other.test");
	json = tlsrpt_json(t, "remote.test", "example.test",
	    "postmaster@example.test", "2026-12-02T00:00:00Z_remote.test",
	    1796169600, 1796169600 + 86399);
	t_assert_str(json,
	    "{\"organization-name\":\"example.test\","
	    "\"date-range\":{\"start-datetime\":\"2026-12-02T00:00:00Z\","
	    "\"end-datetime\":\"2026-12-02T23:59:59Z\"},"
	    "\"contact-info\":\"postmaster@example.test\","
	    "\"report-id\":\"2026-12-02T00:00:00Z_remote.test\","
	    "\"policies\":[{\"policy\":{\"policy-type\":\"tlsa\","
	    "\"policy-string\":[\"3 1 1 abcd\"],"
	    "\"policy-domain\":\"remote.test\","
	    "\"mx-host\":[\"mx1.remote.test\",\"mx2.remote.test\"]},"
	    "\"summary\":{\"total-successful-session-count\":2,"
	    "\"total-failure-session-count\":3},"
	    "\"failure-details\":["
	    "{\"result-type\":\"validation-failure\","
	    "\"failed-session-count\":2,\"sending-mta-ip\":\"192.0.2.1\","
	    "\"receiving-ip\":\"198.51.100.7\","
	    "\"receiving-mx-hostname\":\"mx2.remote.test\"},"
	    "{\"result-type\":\"starttls-not-supported\","
	    "\"failed-session-count\":1,\"sending-mta-ip\":\"192.0.2.1\","
	    "\"receiving-mx-hostname\":\"mx1.remote.test\"}]}]}");
	t_end();

	t_begin("tlsrpt: gzip inflates to the same JSON");
	gz = tlsrpt_gzip(json, strlen(json), &gzlen);
	t_assert(gz != NULL && gzlen > 18);
	t_assert(gz[0] == 0x1f && gz[1] == 0x8b);	/* RFC 1952 2.3.1 */
	t_assert_str(gunzip(gz, gzlen), json);
	free(gz);
	free(json);
	t_end();

	t_begin("tlsrpt: no-policy-found, and nothing for an unknown domain");
	json = tlsrpt_json(t, "other.test", "o", "c", "id", 0, 86399);
	t_assert(json != NULL && strstr(json, "\"policy-type\":"
	    "\"no-policy-found\",\"policy-string\":[]") != NULL);
	t_assert(json != NULL && strstr(json, "\"start-datetime\":"
	    "\"1970-01-01T00:00:00Z\"") != NULL);
	free(json);
	t_assert(tlsrpt_json(t, "nope.test", "o", "c", "id", 0, 1) == NULL);
	tlsrpt_free(t);
	t_end();

	return t_exit();
}
