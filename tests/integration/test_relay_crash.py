"""Relay restart safety: kill -9 of carteiro-smtpd with queued mail loses
nothing and, after a restart, delivers every recipient exactly once --
including a message that was already delivered to one of its domains
before the crash."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from fakemx import Sink, queue_ids, relay_setup, submit, wait_for  # noqa: E402

RECORDS = {
    "remote.test": {"MX": [(10, "mx1.remote.test")]},
    "mx1.remote.test": {"A": ["127.0.0.2"]},
    "later.test": {"MX": [(10, "mx1.later.test")]},
    "mx1.later.test": {"A": ["127.0.0.3"]},
}


class RelayCrash(unittest.TestCase):
    def test_kill9_restart(self):
        env, dns, port = relay_setup(
            RECORDS, conf={"relay": {"retry_first": "1h", "retry_max": "1h"}})
        now_ok = Sink("127.0.0.2", port).start()
        later = Sink("127.0.0.3", port)
        state = {"open": False}
        later.rcpt_reply = (lambda a: None if state["open"] else
                            "452 4.3.1 insufficient system storage")
        later.start()
        try:
            env.start_smtpd()
            for i in range(5):
                msg = (b"From: alice@example.test\r\nSubject: crash %d\r\n"
                       b"\r\nbody %d\r\n" % (i, i))
                self.assertEqual(submit(env, ["r%d@remote.test" % i,
                                              "l%d@later.test" % i], msg), {})
            self.assertEqual(len(now_ok.wait(5)), 5)
            # Every later.test recipient deferred once, then kill -9.
            self.assertTrue(wait_for(lambda: len(env.query(
                "SELECT 1 FROM queue_rcpt WHERE status = 0 AND "
                "last_error IS NOT NULL")) == 5))
            time.sleep(0.2)
            env.smtpd.kill9()
            self.assertEqual(len(queue_ids(env)), 5)

            state["open"] = True
            env.start_smtpd()
            env.ctl_ok("queue", "flush")   # due now, not in an hour
            got = later.wait(5, timeout=15)
            self.assertTrue(wait_for(lambda: not queue_ids(env)))
            time.sleep(1.2)            # a duplicate would arrive by now
            got = list(later.messages)
            self.assertEqual(sorted(r for m in got for r in m.rcpts),
                             ["l%d@later.test" % i for i in range(5)])
            # Nothing already delivered went out again.
            self.assertEqual(len(now_ok.messages), 5)
            self.assertEqual(sorted(r for m in now_ok.messages
                                    for r in m.rcpts),
                             ["r%d@remote.test" % i for i in range(5)])
        finally:
            now_ok.stop()
            later.stop()
            env.stop()
            dns.stop()


if __name__ == "__main__":
    ct.main()
