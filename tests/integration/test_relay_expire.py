"""Relay queue discipline over time: a message that keeps getting 4xx
gets exactly one delay DSN (Action: delayed) once older than
delay_warning, and a bounce (Action: failed, the last remote reply) once
older than queue_lifetime, after which it leaves the queue. Time is
simulated by moving queue.created back; carteiroctl queue flush makes the
running daemon retry at once."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from fakemx import (Sink, db_exec, queue_ids, relay_setup, submit,  # noqa: E402
                    wait_for)

RECORDS = {
    "remote.test": {"MX": [(10, "mx1.remote.test")]},
    "mx1.remote.test": {"A": ["127.0.0.2"]},
}
REPLY = "451 4.2.2 mailbox full, try again later"


class RelayExpire(unittest.TestCase):
    def attempts(self):
        rows = self.env.query("SELECT attempts FROM queue")
        return rows[0][0] if rows else None

    def age_and_flush(self, seconds):
        before = self.attempts()
        db_exec(self.env, "UPDATE queue SET created = created - ?",
                (seconds,))
        self.env.ctl_ok("queue", "flush")
        self.assertTrue(wait_for(lambda: self.attempts() != before,
                                 timeout=10))

    def test_delay_then_expire(self):
        self.env, dns, port = relay_setup(
            RECORDS, conf={"relay": {"retry_first": "1h", "retry_max": "1h",
                                     "delay_warning": "1h",
                                     "queue_lifetime": "1d"}})
        env = self.env
        sink = Sink("127.0.0.2", port)
        sink.rcpt_reply = lambda a: REPLY
        sink.start()
        try:
            env.start_smtpd()
            msg = b"From: alice@example.test\r\nSubject: slow one\r\n\r\nx\r\n"
            self.assertEqual(submit(env, ["bob@remote.test"], msg), {})
            self.assertTrue(wait_for(lambda: self.attempts() == 1))
            self.assertEqual(env.mailbox_bodies("alice@example.test"), [])

            self.age_and_flush(2 * 3600)            # older than 1h
            boxes = wait_for(lambda: env.mailbox_bodies("alice@example.test"))
            self.assertEqual(len(boxes), 1)
            text = boxes[0].decode()
            self.assertIn("Subject: Delayed Mail (still being retried)", text)
            self.assertIn("Action: delayed", text)
            self.assertIn("Status: 4.2.2", text)
            self.assertIn("Diagnostic-Code: smtp; " + REPLY, text)
            self.assertIn("Will-Retry-Until: ", text)
            self.assertIn("Subject: slow one", text)
            self.assertEqual(env.query("SELECT warned FROM queue")[0][0], 1)

            self.age_and_flush(60)                  # still < 1d: no 2nd warning
            self.assertEqual(len(env.mailbox_bodies("alice@example.test")), 1)

            self.age_and_flush(2 * 86400)           # past queue_lifetime
            self.assertTrue(wait_for(lambda: not queue_ids(env)))
            boxes = env.mailbox_bodies("alice@example.test")
            self.assertEqual(len(boxes), 2)
            text = boxes[1].decode()
            self.assertIn("Subject: Undelivered Mail Returned to Sender", text)
            self.assertIn("Action: failed", text)
            self.assertIn("Diagnostic-Code: smtp; " + REPLY, text)
            self.assertIn("Final-Recipient: rfc822; bob@remote.test", text)
            self.assertEqual(len(env.log_lines(env.smtpd, "relay.expire")), 1)
            self.assertEqual(sink.messages, [])
        finally:
            sink.stop()
            env.stop()
            dns.stop()


if __name__ == "__main__":
    ct.main()
