/*
 * DKIM signing of mail submitted by local users, done once when the
 * message is accepted on submission (before it is queued), so every
 * delivery attempt sends the same signed bytes. The signing domain is the
 * RFC5322.From domain (aligned for DMARC) when it has keys in
 * carteiroctl's key directory; every key of that domain signs (ed25519 and
 * rsa both when both exist). Runs on a worker thread.
 */
#ifndef CARTEIRO_SIGNER_H
#define CARTEIRO_SIGNER_H

#include <stdint.h>

struct event_base;
struct cfg;
struct signer;

/* headers: DKIM-Signature fields to prepend (CRLF ends), "" when nothing
 * was signed; borrowed during the call. */
typedef void signer_done_cb(uint64_t token, const char *headers,
    const char *domain, void *arg);

struct signer *signer_new(struct event_base *base, const struct cfg *cfg);
void signer_free(struct signer *s);
/* spool_fd is read (pread from 0) but not closed; with spool_fd -1 the
 * message is mem (copied). Token, or 0 when the pool is full (send
 * unsigned). */
uint64_t signer_submit(struct signer *s, int spool_fd,
    const unsigned char *mem, uint64_t size, signer_done_cb *cb, void *arg);
void signer_cancel(struct signer *s, uint64_t token);

#endif
