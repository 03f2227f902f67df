"""Reply codes of the command engine on the MX listener: 500 unknown,
503 bad sequence, 501 syntax/brackets, 555 unknown parameter, 214 HELP,
252 VRFY, 500 5.5.2 overlong line, 553 5.6.7 non-ASCII without SMTPUTF8,
552 5.3.4 SIZE, 452 4.5.3 max_recipients, EHLO/RSET reset a transaction,
AUTH refused on MX, junk bytes -> 421 after too many errors; failures are
logged with the command and the reply."""

import unittest

import carteiro_test as ct
from smtpd_util import Env, Raw


class Replies(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env(conf={"smtpd": {"max_recipients": "3",
                                          "max_message_size": "100000"}})
        cls.env.start_smtpd()
        cls.port = cls.env.ports["mx"]

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def test_greeting_and_sequence(self):
        c = Raw(self.port)
        self.assertEqual(c.greeting[0], 220)
        self.assertIn("mail.example.test ESMTP", c.greeting[1][0])
        self.assertEqual(c.text("MAIL FROM:<a@remote.test>"),
                         "503 5.5.1 Error: send HELO/EHLO first")
        self.assertEqual(c.text("FOO bar"),
                         "500 5.5.1 Error: command not recognized")
        self.assertEqual(c.code("HELO client.test"), 250)
        self.assertEqual(c.text("RCPT TO:<alice@example.test>"),
                         "503 5.5.1 Error: need MAIL command")
        self.assertEqual(c.text("DATA"), "503 5.5.1 Error: need RCPT command")
        self.assertEqual(c.text("MAIL FROM:a@remote.test"),
                         "501 5.5.4 Path must be enclosed in angle brackets")
        self.assertEqual(c.text("MAIL"), "501 5.5.4 Syntax: MAIL FROM:<address>")
        self.assertEqual(c.text("MAIL FROM:<a@remote.test> FOO=1"),
                         "555 5.5.4 Unsupported parameter")
        self.assertEqual(c.text("MAIL FROM:<a@remote.test> SIZE=100001"),
                         "552 5.3.4 Message size exceeds fixed limit")
        self.assertEqual(c.text("MAIL FROM:<\xe9@remote.test>")[:9], "553 5.6.7")
        c.cmd("QUIT")
        # Ten syntax errors hang up: carry on in a fresh session.
        c = Raw(self.port)
        c.cmd("EHLO x.test")
        self.assertEqual(c.code("MAIL FROM:<a@remote.test> SIZE=100"), 250)
        self.assertEqual(c.text("MAIL FROM:<a@remote.test>"),
                         "503 5.5.1 Error: nested MAIL command")
        self.assertEqual(c.text("RCPT TO:alice@example.test"),
                         "501 5.5.4 Path must be enclosed in angle brackets")
        self.assertEqual(c.text("RCPT TO:<alice@example.test> RET=FULL"),
                         "555 5.5.4 Unsupported parameter")
        self.assertEqual(c.text("RCPT TO:<\xe9@example.test>")[:9], "553 5.6.7")
        self.assertEqual(c.text("RCPT TO:<a..b@example.test>")[:9], "501 5.1.3")
        self.assertEqual(c.code("RCPT TO:<alice@example.test>"), 250)
        self.assertEqual(c.text("DATA x"), "501 5.5.4 Syntax: DATA")
        self.assertEqual(c.text("RSET"), "250 2.0.0 Ok")
        self.assertEqual(c.text("DATA"), "503 5.5.1 Error: need RCPT command")
        c.cmd("QUIT")

    def test_help_vrfy_noop(self):
        c = Raw(self.port)
        code, lines = c.cmd("HELP")
        self.assertEqual(code, 214)
        self.assertTrue(all(l.startswith("2.0.0") for l in lines))
        self.assertEqual(c.text("VRFY alice@example.test")[:9], "252 2.5.0")
        self.assertEqual(c.text("VRFY nobody@example.test")[:9], "252 2.5.0")
        self.assertEqual(c.text("NOOP"), "250 2.0.0 Ok")
        self.assertEqual(c.text("NOOP hello"), "250 2.0.0 Ok")
        self.assertEqual(c.text("EHLO"), "501 5.5.4 Syntax: EHLO hostname")
        c.cmd("EHLO x.test")
        self.assertEqual(c.text("AUTH PLAIN AGFsaWNlAHNlY3JldA=="),
                         "503 5.5.1 Error: authentication not enabled")
        self.assertEqual(c.text("QUIT"), "221 2.0.0 Bye")
        self.assertTrue(c.at_eof())

    def test_ehlo_resets_transaction_and_max_rcpt(self):
        c = Raw(self.port)
        c.cmd("EHLO x.test")
        c.cmd("MAIL FROM:<a@remote.test>")
        for i in range(3):
            self.assertEqual(c.code("RCPT TO:<alice@example.test>"), 250)
        self.assertEqual(c.text("RCPT TO:<bob@example.test>"),
                         "452 4.5.3 Error: too many recipients")
        self.assertEqual(c.code("EHLO x.test"), 250)
        self.assertEqual(c.text("RCPT TO:<alice@example.test>"),
                         "503 5.5.1 Error: need MAIL command")
        self.assertEqual(c.code("MAIL FROM:<a@remote.test>"), 250)
        c.cmd("QUIT")

    def test_long_line_and_bare_lf(self):
        c = Raw(self.port)
        c.cmd("EHLO x.test")
        self.assertEqual(c.text("NOOP " + "x" * 600),
                         "500 5.5.2 Error: line too long")
        # Exactly 512 octets including CRLF is fine.
        self.assertEqual(c.code("NOOP " + "x" * 505), 250)
        self.assertEqual(c.code("NOOP " + "x" * 506), 500)
        c.send(b"NOOP\n")
        self.assertEqual(c.reply()[0], 500)
        self.assertEqual(c.code("NOOP"), 250)
        c.cmd("QUIT")
        logs = self.env.smtpd.log()
        self.assertIn('cmd="(line too long)" reply="500 5.5.2 Error: line '
                      'too long"', logs)

    def test_junk_then_421(self):
        c = Raw(self.port)
        c.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n" * 3 +
               b"\x00\xff\xfe junk\r\n" * 20)
        codes = []
        while True:
            code, _ = c.reply()
            codes.append(code)
            if code == 421:
                break
        self.assertTrue(all(x == 500 for x in codes[:-1]), codes)
        self.assertEqual(len(codes), 11)
        self.assertTrue(c.at_eof())
        self.assertIn("reason=too_many_errors", self.env.smtpd.log())


if __name__ == "__main__":
    ct.main()
