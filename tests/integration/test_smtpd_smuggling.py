"""SMTP smuggling: each of the six <LF>.<LF>-style sequences is never an
end of data, so the "smuggled" second message never exists; a message with
bare CR or LF is refused with a 5xx at the real end of data and nothing is
stored (Postfix smtpd_forbid_bare_newline = reject)."""

import unittest

import carteiro_test as ct
from smtpd_util import Env, Raw

VARIANTS = [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r\n.\r",
            b"\r.\r\n"]


class Smuggling(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env()
        cls.env.start_smtpd()
        cls.port = cls.env.ports["mx"]

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def smuggle(self, seq):
        c = Raw(self.port)
        c.cmd("EHLO attacker.test")
        c.cmd("MAIL FROM:<a@attacker.test>")
        c.cmd("RCPT TO:<alice@example.test>")
        self.assertEqual(c.code("DATA"), 354)
        c.send(b"Subject: first\r\n\r\nbody" + seq +
               b"MAIL FROM:<ceo@example.test>\r\n"
               b"RCPT TO:<bob@example.test>\r\n"
               b"DATA\r\n"
               b"Subject: smuggled\r\n\r\nevil\r\n.\r\n")
        code, text = c.reply()
        # The only end of data is the final CRLF.CRLF: one reply, a 5xx
        # for the bare CR/LF, and no further replies.
        self.assertEqual(code, 550, (seq, text))
        self.assertIn("5.5.2", text[0])
        self.assertEqual(c.code("NOOP"), 250)
        c.cmd("QUIT")

    def test_variants(self):
        for seq in VARIANTS:
            with self.subTest(seq=seq):
                self.smuggle(seq)
        self.assertEqual(self.env.mailbox_bodies("alice@example.test"), [])
        for m in self.env.mailbox_bodies("bob@example.test"):
            self.assertNotIn(b"smuggled", m)
        self.assertEqual(
            len([l for l in self.env.log_lines(self.env.smtpd, "smtp.data")
                 if "result=bare_newline" in l]), len(VARIANTS))

    def test_clean_message_after(self):
        c = Raw(self.port)
        c.cmd("EHLO ok.test")
        c.cmd("MAIL FROM:<a@ok.test>")
        c.cmd("RCPT TO:<bob@example.test>")
        c.cmd("DATA")
        c.send(b"Subject: fine\r\n\r\nline\r\n.\r\n")
        self.assertEqual(c.reply()[0], 250)
        c.cmd("QUIT")
        msgs = self.env.mailbox_bodies("bob@example.test")
        self.assertEqual([ct.strip_added_headers(m) for m in msgs],
                         [b"Subject: fine\r\n\r\nline\r\n"])


if __name__ == "__main__":
    ct.main()
