/*
 * Internals shared by the files of the configuration loader: the key table
 * (config_keys.c), the value parsers (config_parse.c) and file loading,
 * setting keys and validation (config.c). Other modules use config.h only.
 */
#ifndef CARTEIRO_CONFIG_INTERNAL_H
#define CARTEIRO_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"

enum cfg_type {
	CFG_T_STRING,		/* char *, one token, "" = NULL */
	CFG_T_PATH,		/* char *, relative to the config dir, "" = NULL */
	CFG_T_HOSTPORT,		/* char *, exactly one "host:port", "" = NULL */
	CFG_T_BOOL,		/* bool */
	CFG_T_DURATION,		/* unsigned seconds */
	CFG_T_SIZE,		/* uint64_t bytes */
	CFG_T_UINT,		/* unsigned */
	CFG_T_HOSTPORTS,	/* struct cfg_hostports */
	CFG_T_STRLIST,		/* struct cfg_strlist */
	CFG_T_CIDRLIST,		/* struct cfg_strlist of cfg_parse_cidr entries */
	CFG_T_LOGLEVEL,		/* int (enum log_level) */
	CFG_T_EXPIRE,		/* unsigned seconds, cfg_parse_expire */
	CFG_T_COUNT
};

#define CFG_F_REQUIRED	0x1	/* must be set to a non-empty value */

struct cfg_key {
	const char *section;
	const char *key;
	enum cfg_type type;
	unsigned flags;
	uint64_t min, max;	/* UINT, DURATION (seconds), SIZE (bytes) */
	const char *def;	/* parsed like a value in the file */
	size_t off;		/* offsetof(struct cfg, ...) */
	const char *help;	/* one line, also the sample file's comment */
};

#define CFG_DAY (24u * 3600u)

/* The one declarative key table, in the order of SPEC.md (config_keys.c). */
extern const struct cfg_key cfg_keys[];
extern const size_t cfg_nkeys;
/* The row for [section] key, or NULL if there is none. */
const struct cfg_key *cfg_key_find(const char *section, const char *key);
/* Whether some key lives in the section named by section[0..len). */
bool cfg_section_known(const char *section, size_t len);

/* Leading decimal digits of s (at least one) into *v; *end_r after them.
 * No sign, no blanks; -1 on overflow or no digit. */
int cfg_parse_u64(const char *s, const char **end_r, uint64_t *v);
/* As cfg_parse_hostports_err; on failure *bad_r, *badlen_r is the entry at
 * fault (all of s for an empty entry). */
int cfg_hostports_parse(const char *s, struct cfg_hostports *r,
    const char **error_r, const char **bad_r, size_t *badlen_r);
/* True if every host of hp is loopback (an empty list is). */
bool cfg_hostports_loopback_only(const struct cfg_hostports *hp);
/* "3600" -> "1h": the largest unit that divides exactly, for messages. */
void cfg_fmt_duration(char *buf, size_t size, uint64_t s);

#endif
