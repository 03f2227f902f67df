"""Quotas: a message that would pass the recipient's quota gets 552 5.2.2
at the end of data (nothing stored); once the mailbox is over quota, RCPT
gets 452 4.2.2; other recipients are unaffected, also when the refused
message shares the writer's transaction with theirs (group commit; on
PostgreSQL without savepoints, so the batch is redone without it)."""

import smtplib
import threading
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

    def test_quota_refused_in_a_batch(self):
        self.env.ctl_ok("user", "add", "carol@example.test",
                        input=ct.PASSWORD + "\n")
        self.env.ctl_ok("user", "quota", "carol@example.test", "3000")
        self.assertEqual(self.send("carol@example.test", 1500)[0], 250)
        before = len(self.env.mailbox_bodies("bob@example.test"))
        rounds, senders = 4, 6
        results = []
        lock = threading.Lock()

        def one(rcpt, size, barrier):
            barrier.wait()
            r = self.send(rcpt, size)
            with lock:
                results.append((rcpt, r[0]))

        for _ in range(rounds):
            barrier = threading.Barrier(senders + 1)
            threads = [threading.Thread(target=one, args=(
                "bob@example.test", 100, barrier)) for _ in range(senders)]
            threads.append(threading.Thread(target=one, args=(
                "carol@example.test", 2000, barrier)))
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        self.assertEqual(sorted(c for r, c in results if r[0] == "b"),
                         [250] * (rounds * senders))
        self.assertEqual([c for r, c in results if r[0] == "c"],
                         [552] * rounds)
        self.assertEqual(len(self.env.mailbox_bodies("bob@example.test")),
                         before + rounds * senders)
        self.assertEqual(len(self.env.mailbox_bodies("carol@example.test")),
                         1)
        # No rows of the refused messages left behind (bodies, counts).
        out = self.env.ctl_ok("verify")
        self.assertTrue(out.startswith("ok: schema "), out)


if __name__ == "__main__":
    ct.main()
