/*
 * Client keys: see clientkey.h. Knows address families, nothing about the
 * tables that use the keys.
 */
#include "common/clientkey.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

static void client_key_v4(struct client_key *k, const void *a4);
static void client_key_v6(struct client_key *k, const struct in6_addr *a6);
static void client_key_text(struct client_key *k, const char *text);
static uint64_t client_key_fnv(const char *s, uint64_t h);

static void
client_key_v4(struct client_key *k, const void *a4)
{
	memset(k, 0, sizeof(*k));
	k->kind = CLIENT_KEY_V4;
	memcpy(k->addr, a4, 4);
}

static void
client_key_v6(struct client_key *k, const struct in6_addr *a6)
{
	if (IN6_IS_ADDR_V4MAPPED(a6)) {
		client_key_v4(k, a6->s6_addr + 12);
		return;
	}
	memset(k, 0, sizeof(*k));
	k->kind = CLIENT_KEY_V6;
	memcpy(k->addr, a6->s6_addr, 8);
}

/* FNV-1a, 64 bits, from a chosen offset basis. */
static uint64_t
client_key_fnv(const char *s, uint64_t h)
{
	while (*s != '\0') {
		h ^= (unsigned char)*s++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static void
client_key_text(struct client_key *k, const char *text)
{
	uint64_t h1 = client_key_fnv(text, 0xcbf29ce484222325ULL);
	uint64_t h2 = client_key_fnv(text, 0x84222325cbf29ce4ULL);

	memset(k, 0, sizeof(*k));
	k->kind = CLIENT_KEY_OTHER;
	memcpy(k->addr, &h1, 8);
	memcpy(k->addr + 8, &h2, 8);
}

void
client_key_from_sockaddr(struct client_key *k, const struct sockaddr *sa)
{
	const struct sockaddr_in *s4 = (const void *)sa;
	const struct sockaddr_in6 *s6 = (const void *)sa;

	if (sa != NULL && sa->sa_family == AF_INET)
		client_key_v4(k, &s4->sin_addr);
	else if (sa != NULL && sa->sa_family == AF_INET6)
		client_key_v6(k, &s6->sin6_addr);
	else
		client_key_text(k, "local");
}

void
client_key_from_ip(struct client_key *k, const char *ip)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (inet_pton(AF_INET, ip, &a4) == 1)
		client_key_v4(k, &a4);
	else if (inet_pton(AF_INET6, ip, &a6) == 1)
		client_key_v6(k, &a6);
	else
		client_key_text(k, ip);
}

bool
client_key_equal(const struct client_key *a, const struct client_key *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}

uint32_t
client_key_hash(const struct client_key *k)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < sizeof(*k); i++) {
		h ^= ((const uint8_t *)k)[i];
		h *= 16777619u;
	}
	return h;
}
