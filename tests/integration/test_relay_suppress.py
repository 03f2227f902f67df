"""Bounce suppression (issue 16 item 5): a recipient that hard-bounced
(5.1.1 and the like) is put on the suppress list in the store; later
submissions to it get 550 5.1.1 at RCPT saying when and why, across a
restart, for [relay] suppress_days; carteiroctl suppress list|add|del."""

import os
import smtplib
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from fakemx import Sink, db_exec, queue_ids, relay_setup, submit, wait_for  # noqa: E402,E501

RECORDS = {
    "remote.test": {"MX": [(10, "mx1.remote.test")]},
    "mx1.remote.test": {"A": ["127.0.0.2"]},
}

MSG = b"From: alice@example.test\r\nSubject: hi\r\n\r\nhello\r\n"


def rcpt(env, address):
    """(code, text) of RCPT TO:<address> in an authenticated submission
    session."""
    s = smtplib.SMTP("127.0.0.1", env.ports["submission"], timeout=30)
    try:
        s.ehlo()
        s.login("alice@example.test", "secret")
        s.mail("alice@example.test")
        code, text = s.rcpt(address)
        return code, text.decode()
    finally:
        s.close()


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class RelaySuppress(unittest.TestCase):
    def setUp(self):
        self.env, self.dns, port = relay_setup(RECORDS)
        self.sink = Sink("127.0.0.2", port)
        self.sink.rcpt_reply = lambda a: (
            "550 5.1.1 <%s>: no such user here" % a if a.startswith("dead")
            else "550 5.7.1 policy says no" if a.startswith("policy")
            else None)
        self.sink.start()

    def tearDown(self):
        self.sink.stop()
        self.env.stop()
        self.dns.stop()

    def test_hard_bounce_suppresses_across_restart(self):
        env = self.env
        env.start_smtpd()
        self.assertEqual(submit(env, ["dead@remote.test",
                                      "policy@remote.test"], MSG), {})
        self.assertTrue(wait_for(lambda: not queue_ids(env) and
                                 env.query("SELECT 1 FROM suppress")))
        rows = env.query("SELECT address, reason, origin, created "
                         "FROM suppress")
        self.assertEqual([r[:3] for r in rows], [(
            "dead@remote.test",
            "550 5.1.1 <dead@remote.test>: no such user here", "bounce")])
        created = rows[0][3]
        self.assertLessEqual(abs(created - time.time()), 60)
        want = ("5.1.1 <dead@remote.test>: Recipient address suppressed "
                "since %s after a hard bounce: 550 5.1.1 "
                "<dead@remote.test>: no such user here" % iso(created))
        self.assertEqual(rcpt(env, "dead@remote.test"), (550, want))
        # A policy refusal says nothing about the address.
        self.assertEqual(rcpt(env, "policy@remote.test")[0], 250)
        # Case does not matter; a restart changes nothing.
        env.smtpd.stop()
        env.start_smtpd()
        self.assertEqual(rcpt(env, "DEAD@remote.test")[0], 550)
        self.assertEqual(rcpt(env, "dead@remote.test"), (550, want))
        self.assertEqual(len(self.sink.messages), 0)
        lines = env.log_lines(env.smtpd, "smtp.rcpt")
        self.assertIn("result=suppressed", lines[-1])

    def test_expiry_after_suppress_days(self):
        env = self.env
        env.ctl_ok("suppress", "add", "old@remote.test")
        db_exec(env, "UPDATE suppress SET created = ?",
                (int(time.time()) - 31 * 86400,))
        env.ctl_ok("suppress", "add", "new@remote.test")
        db_exec(env, "UPDATE suppress SET created = ? WHERE address = ?",
                (int(time.time()) - 29 * 86400, "new@remote.test"))
        env.start_smtpd()
        self.assertEqual(rcpt(env, "old@remote.test")[0], 250)
        self.assertEqual(rcpt(env, "new@remote.test")[0], 550)

    def test_ctl_list_add_del(self):
        env = self.env
        self.assertEqual(env.ctl_ok("suppress", "list"), "")
        # The domain is lower-cased, the local part kept; lookups
        # ignore case.
        env.ctl_ok("suppress", "add", "Gone@Remote.test", "left the company")
        env.ctl_ok("suppress", "add", "x@remote.test")
        created = env.query("SELECT created FROM suppress WHERE address = "
                            "'gone@remote.test'")[0][0]
        out = env.ctl_ok("suppress", "list")
        c2 = env.query("SELECT created FROM suppress WHERE address = "
                       "'x@remote.test'")[0][0]
        self.assertEqual(out, (
            "Gone@remote.test since=%s until=%s origin=admin "
            "reason=left the company\n"
            "x@remote.test since=%s until=%s origin=admin "
            "reason=added with carteiroctl\n") % (
            iso(created), iso(created + 30 * 86400),
            iso(c2), iso(c2 + 30 * 86400)))
        env.start_smtpd()
        self.assertEqual(rcpt(env, "gone@remote.test"), (
            550, "5.1.1 <gone@remote.test>: Recipient address suppressed "
            "since %s by the administrator: left the company"
            % iso(created)))
        self.assertEqual(env.ctl_ok("suppress", "del", "gone@remote.test"),
                         "removed gone@remote.test from the suppress list\n")
        self.assertEqual(env.ctl_ok("suppress", "add", "gone@remote.test"),
                         "suppressed gone@remote.test\n")
        env.ctl_ok("suppress", "del", "gone@remote.test")
        self.assertEqual(rcpt(env, "gone@remote.test")[0], 250)
        r = env.ctl("suppress", "del", "gone@remote.test")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (
            1, "", "carteiroctl: gone@remote.test is not on the suppress "
            "list\n"))
        r = env.ctl("suppress", "add", "not an address")
        self.assertEqual(r.returncode, 1)


if __name__ == "__main__":
    ct.main()
