/* placeholder: replaced by session.c */
typedef int pop3d_placeholder_t;
