/*
 * SRS forwarding policy (forward.h): loading the secret and deciding, per
 * sender, recipient and DSN, what SRS does to it. The address format and
 * the hash are mailauth/srs.c's; the RCPT replies are tx.c's.
 */
#include "smtpd/forward.h"

#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "store/settings.h"
#include "store/store.h"

static int forward_is_ours(struct store *, const char *);

int
forward_srs_load(struct store *st, struct srs *srs, const char **error_r)
{
	char fresh[SRS_SECRET_HEX_LEN + 1], *hex = NULL;
	int rc;

	rc = store_setting_get(st, FORWARD_SETTING, &hex);
	if (rc == 1) {
		if (srs_secret_generate(fresh) != 0) {
			*error_r = "no random bytes for the SRS secret";
			return -1;
		}
		rc = store_setting_init(st, FORWARD_SETTING, fresh, &hex);
		util_wipe(fresh, sizeof(fresh));
	}
	if (rc != 0) {
		*error_r = store_error(st);
		return -1;
	}
	rc = srs_init(srs, hex);
	util_wipe(hex, strlen(hex));
	free(hex);
	if (rc != 0) {
		*error_r = "stored SRS secret is not 64 hex digits";
		return -1;
	}
	return 0;
}

/* 1 if address is in a local domain, 0 if not, -1 store error. */
static int
forward_is_ours(struct store *st, const char *address)
{
	const char *at = strrchr(address, '@');

	if (at == NULL || at[1] == '\0')
		return 0;
	return store_domain_is_local(st, at + 1);
}

int
forward_sender(struct store *st, const struct srs *srs,
    const char *mail_from, const char *domain, int64_t now, char **sender_r)
{
	int rc;

	*sender_r = NULL;
	if (mail_from[0] == '\0')
		return 0;
	if ((rc = forward_is_ours(st, mail_from)) != 0)
		return rc < 0 ? -1 : 0;
	*sender_r = srs_forward(srs, mail_from, domain, now);
	return 0;
}

int
forward_rcpt(struct store *st, const struct srs *srs, const char *address,
    int64_t now, char **orig_r, enum srs_result *res_r)
{
	int rc;

	*orig_r = NULL;
	*res_r = SRS_NOT_SRS;
	if (!srs_is_srs(address))
		return 0;
	if ((rc = forward_is_ours(st, address)) <= 0)
		return rc;
	*res_r = srs_reverse(srs, address, now, orig_r);
	return *res_r == SRS_OK ? 1 : 2;
}

int
forward_dsn_rcpt(struct store *st, const struct srs *srs,
    const char *mail_from, int64_t created, char **orig_r,
    enum srs_result *res_r)
{
	return forward_rcpt(st, srs, mail_from, created, orig_r, res_r);
}
