/*
 * The one key of every per-client limit and penalty (sessions per address,
 * connect rate, failed-login delay): the exact IPv4 address, or the /64 of
 * an IPv6 address (a host usually owns a whole /64, so counting per address
 * would let it walk past every limit). IPv4-mapped IPv6 is IPv4. Anything
 * else (an AF_UNIX peer, text that is no address) is keyed by a hash of its
 * text. Pure functions, no state.
 */
#ifndef CARTEIRO_CLIENTKEY_H
#define CARTEIRO_CLIENTKEY_H

#include <stdbool.h>
#include <stdint.h>

struct sockaddr;

enum client_key_kind {
	CLIENT_KEY_OTHER,	/* addr: a hash of the text */
	CLIENT_KEY_V4,		/* addr[0..4): the address, rest zero */
	CLIENT_KEY_V6,		/* addr[0..8): the /64, rest zero */
};

/* Every byte is set (compare with memcmp or client_key_equal). */
struct client_key {
	uint8_t kind;		/* enum client_key_kind */
	uint8_t addr[16];
};

/* From a peer address (AF_INET, AF_INET6; anything else, or NULL, is the
 * OTHER key of "local"). */
void client_key_from_sockaddr(struct client_key *k, const struct sockaddr *sa);
/* From the text form ("192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1");
 * other text gets an OTHER key of its own. */
void client_key_from_ip(struct client_key *k, const char *ip);
bool client_key_equal(const struct client_key *a, const struct client_key *b);
/* Unkeyed hash, for tables whose size is bounded by other means. */
uint32_t client_key_hash(const struct client_key *k);

#endif
