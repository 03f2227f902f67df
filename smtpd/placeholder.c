/* placeholder: replaced by session.c */
typedef int smtpd_placeholder_t;
