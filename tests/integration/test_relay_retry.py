"""Relay: a 4xx reply and a SERVFAIL keep the message queued; the next
attempt (retry_first = 1s) delivers it; attempts are counted; the delay
doubles from retry_first up to retry_max."""

import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from fakemx import Sink, queue_ids, relay_setup, submit, wait_for  # noqa: E402

RECORDS = {
    "remote.test": {"MX": [(10, "mx1.remote.test")]},
    "mx1.remote.test": {"A": ["127.0.0.2"]},
    "flaky.test": "SERVFAIL",
}

MSG = b"From: alice@example.test\r\nSubject: retry\r\n\r\nhello\r\n"


class RelayRetry(unittest.TestCase):
    def test_4xx_then_success(self):
        env, dns, port = relay_setup(RECORDS)
        sink = Sink("127.0.0.2", port).start()
        calls = []

        def rcpt_reply(addr):
            calls.append(addr)
            if len(calls) == 1:
                return "451 4.2.0 greylisted, come back later"
            return None

        sink.rcpt_reply = rcpt_reply
        try:
            env.start_smtpd()
            t0 = time.time()
            self.assertEqual(submit(env, ["bob@remote.test"], MSG), {})
            got = sink.wait(1, timeout=10)
            self.assertEqual(len(got), 1)
            self.assertGreaterEqual(time.time() - t0, 0.9)
            self.assertEqual(len(calls), 2)
            self.assertTrue(wait_for(lambda: not queue_ids(env)))
            lines = env.log_lines(env.smtpd, "relay.delivery")
            self.assertIn("status=deferred", lines[0])
            self.assertIn("greylisted", lines[0])
            self.assertIn("status=sent", lines[1])
            self.assertIn("attempt=2 ", lines[1])
            self.assertTrue(env.log_lines(env.smtpd, "relay.retry"))
            # Nothing bounced to the sender.
            self.assertEqual(env.mailbox_bodies("alice@example.test"), [])
        finally:
            sink.stop()
            env.stop()
            dns.stop()

    def test_servfail_retries(self):
        env, dns, port = relay_setup(RECORDS)
        sink = Sink("127.0.0.2", port).start()
        try:
            env.start_smtpd()
            self.assertEqual(submit(env, ["bob@flaky.test"], MSG), {})
            self.assertTrue(wait_for(
                lambda: env.query("SELECT attempts FROM queue")
                and env.query("SELECT attempts FROM queue")[0][0] >= 1))
            row = env.query("SELECT last_error, status FROM queue_rcpt")[0]
            self.assertIn("4.4.3", row[0])
            self.assertEqual(row[1], 0)                 # still pending
            dns.set("flaky.test", {"MX": [(10, "mx1.remote.test")]})
            got = sink.wait(1, timeout=10)
            self.assertEqual([m.rcpts for m in got], [["bob@flaky.test"]])
            self.assertTrue(wait_for(lambda: not queue_ids(env)))
            self.assertEqual(env.mailbox_bodies("alice@example.test"), [])
        finally:
            sink.stop()
            env.stop()
            dns.stop()

    def test_backoff_doubles_up_to_retry_max(self):
        env, dns, port = relay_setup(
            RECORDS, conf={"relay": {"retry_first": "10s",
                                     "retry_max": "40s"}})
        sink = Sink("127.0.0.2", port)
        sink.rcpt_reply = lambda a: "450 4.2.1 busy"
        sink.start()
        try:
            env.start_smtpd()
            self.assertEqual(submit(env, ["bob@remote.test"], MSG), {})
            delays = []
            for attempt in range(1, 6):
                self.assertTrue(wait_for(lambda: env.query(
                    "SELECT attempts FROM queue") == [(attempt,)], timeout=5))
                self.assertTrue(wait_for(lambda: len(env.log_lines(
                    env.smtpd, "relay.retry")) == attempt, timeout=5))
                lines = env.log_lines(env.smtpd, "relay.retry")
                delays.append(int(re.search(r"next_in=(\d+)s",
                                            lines[-1]).group(1)))
                env.ctl_ok("queue", "flush")     # next attempt now
            self.assertEqual(delays, [10, 20, 40, 40, 40])
        finally:
            sink.stop()
            env.stop()
            dns.stop()


if __name__ == "__main__":
    ct.main()
