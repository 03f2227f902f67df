"""Slow DNS and the inbound checks (issue 11 item 8): one message's SPF,
DKIM and DMARC share a DNS budget ([smtpd] check_timeout); past it they are
temperror and the mail is accepted. A sender whose SPF include points at a
name that never answers (DROP) cannot hold the check pool: nine messages
from it (more than the pool has threads; the issue asks for four) while a
tenth, normal sender's end of data is answered at once."""

import os
import smtplib
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from fakedns import FakeDNS  # noqa: E402

RECORDS = {
    "hole.test": {"TXT": ["v=spf1 include:spf.blackhole.test -all"]},
    "spf.blackhole.test": "DROP",
    "fast.test": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
}
BUDGET = 3
HOLES = 9


def message(frm, subject):
    return ("From: %s\r\nTo: alice@example.test\r\nSubject: %s\r\n\r\n"
            "Hello.\r\n" % (frm, subject)).encode()


class CheckBudget(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dns = FakeDNS(RECORDS).start()
        cls.env = ct.Env(conf={
            "relay": {"resolver": "127.0.0.1:%d" % cls.dns.port},
            "smtpd": {"inbound_checks_exempt": "",
                      "check_timeout": str(BUDGET)}})
        cls.env.start_smtpd()

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()
        cls.dns.stop()

    def open(self, mail_from):
        s = smtplib.SMTP("127.0.0.1", self.env.ports["mx"], timeout=60)
        s.ehlo("client.example.net")
        self.assertEqual(s.mail(mail_from)[0], 250)
        self.assertEqual(s.rcpt("alice@example.test")[0], 250)
        return s

    def ar(self, subject):
        for m in self.env.mailbox_bodies("alice@example.test"):
            if b"Subject: " + subject.encode() + b"\r\n" in m:
                head = m.split(b"\r\n\r\n", 1)[0].decode()
                fields = head.replace("\r\n\t", " ").split("\r\n")
                ars = [f for f in fields if f.startswith(
                    "Authentication-Results: mail.example.test;")]
                self.assertEqual(len(ars), 1, head)
                return ars[0]
        self.fail("not delivered: " + subject)

    def test_black_holed_sender_does_not_block_others(self):
        results = {}
        ready = threading.Barrier(HOLES + 1)

        def hole(i):
            s = self.open("x%d@hole.test" % i)
            ready.wait()
            t0 = time.monotonic()
            code, _ = s.data(message("x%d@hole.test" % i, "hole-%d" % i))
            results[i] = (code, time.monotonic() - t0)
            s.quit()

        threads = [threading.Thread(target=hole, args=(i,))
                   for i in range(HOLES)]
        for t in threads:
            t.start()
        s = self.open("b@fast.test")
        ready.wait()
        # They are all in their checks, waiting for the black hole.
        time.sleep(0.5)
        t0 = time.monotonic()
        code, _ = s.data(message("b@fast.test", "fast"))
        took = time.monotonic() - t0
        s.quit()
        for t in threads:
            t.join(60)
        self.assertEqual(code, 250)
        self.assertLess(took, 1.0, "the normal sender waited %.2f s" % took)
        self.assertIn("spf=pass smtp.mailfrom=b@fast.test", self.ar("fast"))

        # The black-holed ones: accepted once the budget is spent, not
        # after the resolver's own timeouts, with spf=temperror.
        self.assertEqual(sorted(results), list(range(HOLES)))
        for i in range(HOLES):
            code, secs = results[i]
            self.assertEqual(code, 250)
            self.assertGreater(secs, BUDGET - 0.6, results)
            self.assertLess(secs, BUDGET + 1.5, results)
            self.assertIn("spf=temperror smtp.mailfrom=x%d@hole.test" % i,
                          self.ar("hole-%d" % i))


if __name__ == "__main__":
    unittest.main()
