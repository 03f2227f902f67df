"""EHLO keyword lists before and after TLS on each listener (MX,
submission with STARTTLS, submissions with implicit TLS); STARTTLS refused
once TLS is on; plaintext pipelined behind STARTTLS is discarded, never
executed after the handshake; smtp.tls log event."""

import unittest

import carteiro_test as ct
from smtpd_util import Env, Raw, plain

BASE = ["PIPELINING", "SIZE 26214400", "ENHANCEDSTATUSCODES", "8BITMIME",
        "SMTPUTF8", "DSN", "CHUNKING"]


def keywords(c):
    code, lines = c.cmd("EHLO client.test")
    assert code == 250, (code, lines)
    return lines[1:]


class Tls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env()
        cls.env.start_smtpd()
        cls.ctx = cls.env.client_ssl_context()

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def test_mx(self):
        c = Raw(self.env.ports["mx"])
        self.assertEqual(sorted(keywords(c)), sorted(BASE + ["STARTTLS"]))
        c.starttls(self.ctx)
        self.assertEqual(sorted(keywords(c)), sorted(BASE))
        self.assertEqual(c.text("STARTTLS"),
                         "503 5.5.1 Error: TLS already active")
        c.cmd("QUIT")

    def test_submission(self):
        c = Raw(self.env.ports["submission"])
        # Loopback: AUTH is offered before TLS (SPEC exception).
        self.assertEqual(sorted(keywords(c)),
                         sorted(BASE + ["STARTTLS", "AUTH PLAIN LOGIN"]))
        c.starttls(self.ctx)
        self.assertEqual(sorted(keywords(c)),
                         sorted(BASE + ["AUTH PLAIN LOGIN"]))
        c.cmd("QUIT")

    def test_submissions(self):
        c = Raw(self.env.ports["submissions"], tls_ctx=self.ctx)
        self.assertEqual(c.greeting[0], 220)
        self.assertEqual(sorted(keywords(c)),
                         sorted(BASE + ["AUTH PLAIN LOGIN"]))
        self.assertEqual(c.code("STARTTLS"), 503)
        self.assertEqual(c.code("AUTH PLAIN " +
                                plain("alice@example.test", "secret")), 235)
        c.cmd("QUIT")
        self.assertRegex(self.env.smtpd.log(),
                         r"event=smtp.tls sid=\S+ ip=127.0.0.1 version=TLS")

    def test_starttls_injection(self):
        for port in (self.env.ports["mx"], self.env.ports["submission"]):
            c = Raw(port)
            c.cmd("EHLO client.test")
            c.send(b"STARTTLS\r\nNOOP\r\n")
            code, _ = c.reply()
            self.assertEqual(code, 220)
            # Whatever arrives in plaintext now must be nothing.
            self.assertEqual(c.buf, b"")
            c.sock = self.ctx.wrap_socket(c.sock,
                                          server_hostname="mail.example.test")
            c.buf = b""
            # The first reply after the handshake answers our own RSET,
            # not the injected NOOP; and EHLO is needed again.
            self.assertEqual(c.text("MAIL FROM:<a@b.test>"),
                             "503 5.5.1 Error: send HELO/EHLO first")
            self.assertEqual(c.text("RSET"), "250 2.0.0 Ok")
            c.cmd("QUIT")

    def test_starttls_resets_auth(self):
        c = Raw(self.env.ports["submission"])
        c.cmd("EHLO client.test")
        self.assertEqual(c.code("AUTH PLAIN " +
                                plain("alice@example.test", "secret")), 235)
        c.starttls(self.ctx)
        c.cmd("EHLO client.test")
        self.assertEqual(c.text("MAIL FROM:<alice@example.test>"),
                         "530 5.7.0 Authentication required")
        c.cmd("QUIT")


if __name__ == "__main__":
    ct.main()
