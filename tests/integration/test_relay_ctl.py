"""carteiroctl queue list | show ID | flush | delete ID against a running
carteiro-smtpd with a message that the remote keeps deferring."""

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
}
REPLY = "450 4.2.1 try again tomorrow"


class RelayCtl(unittest.TestCase):
    def test_queue_commands(self):
        env, dns, port = relay_setup(
            RECORDS, conf={"relay": {"retry_first": "1h", "retry_max": "1h"}})
        sink = Sink("127.0.0.2", port)
        sink.rcpt_reply = lambda a: REPLY
        sink.start()
        try:
            env.start_smtpd()
            self.assertEqual(env.ctl_ok("queue", "list"), "")
            msg = (b"From: alice@example.test\r\nTo: bob@remote.test\r\n"
                   b"Subject: queued for ctl\r\n\r\nbody\r\n")
            submit(env, ["bob@remote.test", "carol@remote.test"], msg)
            self.assertTrue(wait_for(lambda: env.query(
                "SELECT attempts FROM queue") == [(1,)]))
            qid = queue_ids(env)[0]

            out = env.ctl_ok("queue", "list").splitlines()
            self.assertEqual(len(out), 1)
            m = re.match(r"^(\d+) (\d+[smhd]) <alice@example\.test> "
                         r"bob@remote\.test,carol@remote\.test "
                         r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (.*)$", out[0])
            self.assertTrue(m, out[0])
            self.assertEqual(int(m.group(1)), qid)
            self.assertEqual(m.group(4), REPLY)

            show = env.ctl_ok("queue", "show", str(qid))
            self.assertIn("from: <alice@example.test>", show)
            self.assertIn("attempts: 1", show)
            self.assertIn("auth-user: alice@example.test", show)
            # Rescheduled after its attempt: no relay holds it.
            self.assertIn("\nclaimed-by: -\n", show)
            self.assertIn("rcpt: bob@remote.test pending " + REPLY, show)
            self.assertIn("rcpt: carol@remote.test pending " + REPLY, show)
            self.assertIn("Subject: queued for ctl", show)
            self.assertNotIn("\r", show)
            self.assertNotIn("body", show.split("Subject:")[1])

            # flush: the running daemon retries within ~1-2 s.
            t0 = time.time()
            self.assertIn("flushed 1 message", env.ctl_ok("queue", "flush"))
            self.assertTrue(wait_for(lambda: env.query(
                "SELECT attempts FROM queue") == [(2,)], timeout=5))
            self.assertLess(time.time() - t0, 2.5)

            r = env.ctl("queue", "show", "999")
            self.assertEqual(r.returncode, 1)
            self.assertIn("no queued message 999", r.stderr)
            r = env.ctl("queue", "delete", "abc")
            self.assertEqual(r.returncode, 1)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1)
            r = env.ctl("queue", "bogus")
            self.assertEqual(r.returncode, 1)

            self.assertEqual(env.ctl_ok("queue", "delete", str(qid)),
                             "deleted %d\n" % qid)
            self.assertEqual(queue_ids(env), [])
            self.assertEqual(env.ctl_ok("queue", "list"), "")
            self.assertEqual(env.ctl("queue", "delete", str(qid)).returncode,
                             1)
            # The body reference was dropped exactly once.
            self.assertEqual(env.query("SELECT min(refs) FROM bodies"), [(0,)])
            self.assertEqual(sink.messages, [])
        finally:
            sink.stop()
            env.stop()
            dns.stop()


if __name__ == "__main__":
    ct.main()
