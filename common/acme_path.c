/* The ACME state directory beside the store (acme_path.h). */
#include "common/acme_path.h"

#include <string.h>

#include "common/util.h"

char *
acme_path(const char *store_path, const char *name)
{
	const char *slash = strrchr(store_path, '/');
	int dirlen = slash ? (int)(slash - store_path) : 1;
	const char *dir = slash ? store_path : ".";

	if (slash == store_path)
		dirlen = 0;	/* "/mail.db": the root directory */
	if (name == NULL)
		return xasprintf("%.*s/acme", dirlen, dir);
	return xasprintf("%.*s/acme/%s", dirlen, dir, name);
}

int
acme_token_ok(const char *token)
{
	size_t n = strlen(token);

	if (n == 0 || n > 128)
		return 0;
	return strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_") == n;
}
