"""carteiroctl user disable / enable: a disabled user is refused at POP3
and SMTP AUTH exactly like a wrong password (no oracle), while mail for
the address keeps arriving; enable lets the same password in again."""

import poplib
import smtplib
import unittest

import carteiro_test as ct
import pop3_fixtures as pf
from smtpd_util import Env

BOB = "bob@example.test"


class UserDisable(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env()
        cls.env.start_smtpd()
        pf.start(cls.env)

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def enabled(self):
        return self.env.query("SELECT enabled FROM users WHERE address = ?",
                              (BOB,))[0][0]

    def smtp_auth(self, password=ct.PASSWORD):
        s = smtplib.SMTP("127.0.0.1", self.env.ports["submission"],
                         timeout=20)
        try:
            s.starttls(context=self.env.client_ssl_context())
            s.ehlo()
            try:
                s.login(BOB, password)
                return 235
            except smtplib.SMTPAuthenticationError as e:
                return e.smtp_code
        finally:
            s.quit()

    def pop3_err(self, password=ct.PASSWORD):
        with self.assertRaises(poplib.error_proto) as cm:
            pf.pop3(self.env, user=BOB, password=password)
        return cm.exception.args[0]

    def test_disable_enable(self):
        self.env.ctl_ok("user", "disable", BOB)
        self.assertEqual(self.enabled(), 0)
        r = self.env.ctl("user", "show", BOB)
        self.assertIn("enabled no\n", r.stdout)
        # Refused like a wrong password: same replies.
        self.assertEqual(self.smtp_auth(), 535)
        self.assertEqual(self.smtp_auth("wrong"), 535)
        self.assertEqual(self.pop3_err(), self.pop3_err("wrong"))
        # Mail keeps arriving.
        s = smtplib.SMTP("127.0.0.1", self.env.ports["mx"], timeout=20)
        s.sendmail("x@remote.test", [BOB], b"Subject: still\r\n\r\nhi\r\n")
        s.quit()
        self.assertTrue(self.env.mailbox_bodies(BOB)[-1].endswith(
            b"Subject: still\r\n\r\nhi\r\n"))

        self.env.ctl_ok("user", "enable", BOB)
        self.assertEqual(self.enabled(), 1)
        self.assertEqual(self.smtp_auth(), 235)
        p = pf.pop3(self.env, user=BOB)
        self.assertEqual(p.stat()[0], 1)
        p.quit()

    def test_unknown_user(self):
        for verb in ("disable", "enable"):
            r = self.env.ctl("user", verb, "nobody@example.test")
            self.assertEqual(r.returncode, 1)
            self.assertEqual(r.stderr,
                             "carteiroctl: no such user nobody@example.test\n")
            r = self.env.ctl("user", verb)
            self.assertEqual(r.returncode, 1)


if __name__ == "__main__":
    ct.main()
