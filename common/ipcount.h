/*
 * Open sessions per client, for max_clients_per_ip in smtpd and pop3d: a
 * hash table with one counter per client key (clientkey.h: IPv4 address,
 * IPv6 /64) that has at least one session. Loop thread only.
 */
#ifndef CARTEIRO_IPCOUNT_H
#define CARTEIRO_IPCOUNT_H

struct ipcount;
struct ipcount_entry;
struct client_key;

struct ipcount *ipcount_new(void);
/* Frees entries still referenced too (their holders must be gone).
 * Accepts NULL. */
void ipcount_free(struct ipcount *t);
/* One more session from the client k (copied); the entry stays valid
 * until its last ipcount_unref. */
struct ipcount_entry *ipcount_ref(struct ipcount *t,
    const struct client_key *k);
void ipcount_unref(struct ipcount *t, struct ipcount_entry *e);
/* Sessions counted for the entry's client, this one included. */
unsigned ipcount_n(const struct ipcount_entry *e);

#endif
