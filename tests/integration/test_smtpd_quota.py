"""Quotas: a message that would pass the recipient's quota gets 552 5.2.2
at the end of data (nothing stored); once the mailbox is over quota, RCPT
gets 452 4.2.2; other recipients are unaffected."""

import smtplib
import unittest

import carteiro_test as ct
from smtpd_util import Env


class Quota(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env()
        cls.env.ctl_ok("user", "quota", "alice@example.test", "3000")
        cls.env.start_smtpd()
        cls.port = cls.env.ports["mx"]

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def send(self, rcpt, size):
        s = smtplib.SMTP("127.0.0.1", self.port)
        s.ehlo("q.test")
        s.mail("a@q.test")
        code, msg = s.rcpt(rcpt)
        if code != 250:
            s.quit()
            return code, msg
        try:
            r = s.data(b"Subject: q\r\n\r\n" + b"x" * size + b"\r\n")
        except smtplib.SMTPDataError as e:
            r = (e.smtp_code, e.smtp_error)
        s.quit()
        return r

    def test_quota(self):
        self.assertEqual(self.send("alice@example.test", 1500)[0], 250)
        code, msg = self.send("alice@example.test", 2000)
        self.assertEqual(code, 552)
        self.assertTrue(msg.startswith(b"5.2.2"), msg)
        self.assertEqual(len(self.env.mailbox_bodies("alice@example.test")), 1)
        self.assertEqual(self.send("bob@example.test", 2000)[0], 250)
        # Fill it up: 1500 + headers + 1000 + headers > 3000.
        self.env.ctl_ok("user", "quota", "alice@example.test", "1000")
        code, msg = self.send("alice@example.test", 10)
        self.assertEqual(code, 452)
        self.assertTrue(msg.startswith(b"4.2.2"), msg)
        self.assertRegex(self.env.smtpd.log(),
                         r'reply="552 5.2.2 Mailbox full')


if __name__ == "__main__":
    ct.main()
