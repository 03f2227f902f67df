"""Session resumption (issue 17): carteiro-smtpd on its implicit-TLS
submission port and carteiro-pop3d on its POP3S port hand out session
tickets, and a client that offers one back resumes: session_reused is True
and no certificate is sent again. TLS 1.3 (NewSessionTicket, PSK) and TLS
1.2 (RFC 5077). A ticket is bound to the process that issued it: one from
smtpd is not accepted by pop3d (each has its own key)."""

import socket
import ssl
import unittest

import carteiro_test as ct
from smtpd_util import Env


def connect(port, ctx, session=None):
    """TLS connection on port; reads the greeting line (after which the
    TLS 1.3 ticket has been processed) and returns (sock, greeting)."""
    raw = socket.create_connection(("127.0.0.1", port), 10)
    s = ctx.wrap_socket(raw, server_hostname="mail.example.test",
                        session=session)
    greeting = b""
    while not greeting.endswith(b"\r\n"):
        chunk = s.recv(512)
        if not chunk:
            break
        greeting += chunk
    return s, greeting


def quit_(s, cmd):
    s.sendall(cmd)
    reply = b""
    while not reply.endswith(b"\r\n"):
        chunk = s.recv(512)
        if not chunk:
            break
        reply += chunk
    s.close()
    return reply


class Resume(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env()
        cls.env.start_smtpd()
        cls.env.start_pop3d()

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def ctx(self, version):
        ctx = self.env.client_ssl_context()
        ctx.minimum_version = version
        ctx.maximum_version = version
        return ctx

    def resume(self, port, version, quit_cmd, ok):
        ctx = self.ctx(version)
        s, greeting = connect(port, ctx)
        self.assertTrue(greeting.startswith(ok), greeting)
        self.assertFalse(s.session_reused)
        self.assertEqual(s.version(), {ssl.TLSVersion.TLSv1_3: "TLSv1.3",
                                       ssl.TLSVersion.TLSv1_2: "TLSv1.2"}
                         [version])
        sess = s.session
        self.assertTrue(sess.has_ticket, "no session ticket issued")
        self.assertTrue(quit_(s, quit_cmd).startswith(ok))
        for _ in range(2):
            s, greeting = connect(port, ctx, sess)
            self.assertTrue(greeting.startswith(ok), greeting)
            self.assertTrue(s.session_reused, "session not resumed")
            self.assertTrue(quit_(s, quit_cmd).startswith(ok))
        return sess, ctx

    def test_smtpd_465_tls13(self):
        self.resume(self.env.ports["submissions"], ssl.TLSVersion.TLSv1_3,
                    b"QUIT\r\n", b"2")

    def test_smtpd_465_tls12(self):
        self.resume(self.env.ports["submissions"], ssl.TLSVersion.TLSv1_2,
                    b"QUIT\r\n", b"2")

    def test_pop3d_995_tls13(self):
        self.resume(self.env.ports["pop3s"], ssl.TLSVersion.TLSv1_3,
                    b"QUIT\r\n", b"+OK")

    def test_pop3d_995_tls12(self):
        self.resume(self.env.ports["pop3s"], ssl.TLSVersion.TLSv1_2,
                    b"QUIT\r\n", b"+OK")

    def test_ticket_not_shared_between_daemons(self):
        sess, ctx = self.resume(self.env.ports["submissions"],
                                ssl.TLSVersion.TLSv1_2, b"QUIT\r\n", b"2")
        s, greeting = connect(self.env.ports["pop3s"], ctx, sess)
        self.assertTrue(greeting.startswith(b"+OK"), greeting)
        self.assertFalse(s.session_reused)
        quit_(s, b"QUIT\r\n")


if __name__ == "__main__":
    ct.main()
