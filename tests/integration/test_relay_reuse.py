"""Relay connection reuse and throttling (issue 16 item 4): queued
messages to one MX host go over fewer connections (RSET between, at most
[relay] max_messages_per_connection each); a destination that answers
421 / 4.7.x rate-limit replies is backed off (event=relay.throttle, a
"throttled" line in carteiroctl queue list) and recovers."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from fakemx import Sink, queue_ids, queue_insert, relay_setup, wait_for  # noqa: E402,E501

RECORDS = {
    "remote.test": {"MX": [(10, "mx1.remote.test")]},
    "mx1.remote.test": {"A": ["127.0.0.2"]},
}


def msg(i):
    return (b"From: alice@example.test\r\nSubject: reuse %d\r\n\r\n"
            b"body %d\r\n" % (i, i))


class RelayReuse(unittest.TestCase):
    def test_five_messages_over_three_connections(self):
        # One connection at a time to the domain, two messages each:
        # 5 messages -> 3 connections, RSET before the 2nd and 4th.
        env, dns, port = relay_setup(RECORDS, conf={"relay": {
            "max_connections_per_domain": "1",
            "max_messages_per_connection": "2"}})
        sink = Sink("127.0.0.2", port).start()
        try:
            for i in range(5):
                queue_insert(env, "alice@example.test",
                             ["r%d@remote.test" % i], msg(i))
            env.start_smtpd()
            got = sink.wait(5, timeout=20)
            self.assertEqual(sorted(m.rcpts[0] for m in got),
                             ["r%d@remote.test" % i for i in range(5)])
            self.assertTrue(wait_for(lambda: not queue_ids(env)))
            self.assertEqual(sink.connections, 3)
            self.assertEqual(sink.rsets, 2)
            self.assertEqual(sink.transactions, 5)
        finally:
            sink.stop()
            env.stop()
            dns.stop()

    def test_no_reuse_with_one_message_per_connection(self):
        env, dns, port = relay_setup(RECORDS, conf={"relay": {
            "max_connections_per_domain": "1",
            "max_messages_per_connection": "1"}})
        sink = Sink("127.0.0.2", port).start()
        try:
            for i in range(3):
                queue_insert(env, "alice@example.test",
                             ["r%d@remote.test" % i], msg(i))
            env.start_smtpd()
            self.assertEqual(len(sink.wait(3, timeout=20)), 3)
            self.assertEqual(sink.connections, 3)
            self.assertEqual(sink.rsets, 0)
        finally:
            sink.stop()
            env.stop()
            dns.stop()

    def test_throttling_mx_backs_off_and_recovers(self):
        env, dns, port = relay_setup(RECORDS, conf={"relay": {
            "max_connections_per_domain": "2"}})
        sink = Sink("127.0.0.2", port)
        reply = "421 4.7.0 Too many concurrent SMTP connections, slow down"
        sink.mail_reply = lambda n: reply if n < 3 else None
        sink.start()
        seen = []

        def throttled_line():
            out = env.ctl_ok("queue", "list")
            lines = [ln for ln in out.splitlines()
                     if ln.startswith("throttled ")]
            seen.extend(lines)
            return lines
        try:
            for i in range(3):
                queue_insert(env, "alice@example.test",
                             ["r%d@remote.test" % i], msg(i))
            env.start_smtpd()
            self.assertTrue(wait_for(throttled_line, timeout=15))
            self.assertRegex(
                seen[0], r"^throttled remote\.test concurrency=1 "
                r"held-until=\S+Z since=\S+Z reason=421 4\.7\.0 Too many "
                r"concurrent SMTP connections, slow down")
            back = env.log_lines(env.smtpd, "relay.throttle")
            self.assertIn("domain=remote.test state=backoff concurrency=1",
                          back[0])
            self.assertEqual(len(sink.wait(3, timeout=30)), 3)
            self.assertTrue(wait_for(lambda: not queue_ids(env), timeout=15))
            self.assertTrue(wait_for(lambda: any(
                "state=recovered concurrency=2" in ln for ln in
                env.log_lines(env.smtpd, "relay.throttle")), timeout=15))
            self.assertTrue(wait_for(lambda: not throttled_line(),
                                     timeout=10))
        finally:
            sink.stop()
            env.stop()
            dns.stop()


if __name__ == "__main__":
    ct.main()
