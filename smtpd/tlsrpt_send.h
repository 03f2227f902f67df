/*
 * The TLS-RPT sender (RFC 8460 3, 5): every [relay] tls_report_interval
 * the counts gathered by the relay (smtpd/tlsrpt.h) become one report
 * per policy domain that publishes "v=TLSRPTv1; rua=mailto:..." at
 * _smtp._tls.DOMAIN, mailed gzipped (RFC 8460 5.3) through the queue.
 */
#ifndef CARTEIRO_TLSRPT_SEND_H
#define CARTEIRO_TLSRPT_SEND_H

struct event_base;
struct cfg;
struct dns;
struct tlsrpt;
struct tlsrpt_sender;

/* On the loop; dns is borrowed and must outlive the sender. NULL when
 * [relay] tls_report_interval is 0. */
struct tlsrpt_sender *tlsrpt_sender_new(struct event_base *base,
    const struct cfg *cfg, struct dns *dns);
/* The counts the relay's sessions add to (owned by the sender). */
struct tlsrpt *tlsrpt_sender_counts(struct tlsrpt_sender *s);
/* Drops what was not mailed yet. Accepts NULL. */
void tlsrpt_sender_free(struct tlsrpt_sender *s);

#endif
