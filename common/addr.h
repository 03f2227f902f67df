/*
 * Mail address and domain syntax: validation and normalisation of
 * "local@domain" (RFC 5321 dot-atom or quoted-string local parts, UTF-8
 * allowed as RFC 6531 SMTPUTF8 permits) and of domain names (IDN U-labels
 * become A-labels via libidn2, then lower case LDH). Pure functions, no I/O,
 * no store: used by carteiroctl, smtpd and auth.c. Address literals
 * ("[192.0.2.1]") are not domains here and are refused.
 */
#ifndef CARTEIRO_ADDR_H
#define CARTEIRO_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#define ADDR_LOCAL_MAX	64	/* octets, RFC 5321 4.5.3.1.1 */
#define ADDR_DOMAIN_MAX	253	/* octets without the root dot (A-label form) */
#define ADDR_LABEL_MAX	63	/* octets per label, RFC 1035 */
#define ADDR_MAX	254	/* whole address: 256-octet path minus "<>" */

/*
 * Normalise a domain: UTF-8 IDN -> A-label (UTS #46 nontransitional, NFC),
 * lower case, every label LDH (letters, digits, hyphen; no hyphen at either
 * end), 1..63 octets per label, at most 253 octets, no trailing dot, last
 * label not all-numeric. 0 and *out_r (caller frees), or -1 and *error_r
 * (static string).
 */
int addr_normalize_domain(const char *in, char **out_r, const char **error_r);

/*
 * Normalise a full address "local@domain" (split at the last '@'): the local
 * part is checked (dot-atom or quoted-string, at most 64 octets, valid UTF-8,
 * no control characters) and kept as given; the domain goes through
 * addr_normalize_domain. 0 and *out_r (caller frees), or -1 and *error_r
 * (static string).
 */
int addr_normalize(const char *address, char **out_r, const char **error_r);
/* The same with a local part of up to local_max octets (SRS addresses,
 * smtpd/address.c). */
int addr_normalize_max(const char *address, size_t local_max, char **out_r,
    const char **error_r);

/* Check only the local part (len octets at local). 0 / -1 and *error_r. */
int addr_check_local(const char *local, size_t len, const char **error_r);
/* The same with another length limit: max octets. */
int addr_check_local_max(const char *local, size_t len, size_t max,
    const char **error_r);

/* Pointer just after the last '@' of address (borrowed), NULL if none. */
const char *addr_domain(const char *address);

/* True if s has any non-ASCII octet (an address that needs SMTPUTF8). */
bool addr_is_utf8(const char *s);

/* True if s is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF)
 * for len octets. */
bool addr_utf8_valid(const char *s, size_t len);

#endif
