/*
 * Bounce suppression at RCPT (tx_suppress.h): a remote address that
 * hard-bounced within [relay] suppress_days (or that an admin listed) is
 * refused with 550 5.1.1, saying when and why, so that a sender that
 * keeps mailing a dead address stops before the queue and the remote
 * server see it again (the reputation of the sending address).
 */
#include "smtpd/tx_suppress.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "store/suppress.h"

#define SMTP_SUPPRESS_REASON_MAX	200	/* bytes of the reason quoted */

int
smtp_tx_suppressed(struct store *st, unsigned days, const char *addr,
    char *reply, size_t reply_len)
{
	struct store_suppress row;
	struct tm tm;
	time_t t;
	char date[32], reason[SMTP_SUPPRESS_REASON_MAX + 1];
	size_t i;
	int rc;

	if (days == 0)
		return 0;
	rc = store_suppress_find(st, addr, util_time() -
	    (int64_t)days * 86400, &row);
	if (rc != 0)
		return rc < 0 ? -1 : 0;
	t = (time_t)row.created;
	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &tm);
	/* The reply is one line: no control bytes from the stored text. */
	for (i = 0; row.reason[i] != '\0' && i < SMTP_SUPPRESS_REASON_MAX;
	    i++)
		reason[i] = (unsigned char)row.reason[i] < 0x20 ||
		    row.reason[i] == 0x7f ? ' ' : row.reason[i];
	reason[i] = '\0';
	snprintf(reply, reply_len, "550 5.1.1 <%s>: Recipient address "
	    "suppressed since %s "
	    "%s: %s", addr, date, strcmp(row.origin, "admin") == 0 ?
	    "by the administrator" : "after a hard bounce", reason);
	store_suppress_clear(&row);
	return 1;
}
