"""Relay: when the primary MX refuses (closed port; 421 greeting) the
backup MX gets the message in the same attempt."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from fakemx import (Refuser, Sink, queue_ids, relay_setup, submit,  # noqa: E402
                    wait_for)

RECORDS = {
    # closed.test: primary 127.0.0.4 has nothing listening.
    "closed.test": {"MX": [(10, "mx1.closed.test"), (20, "mx2.closed.test")]},
    "mx1.closed.test": {"A": ["127.0.0.4"]},
    "mx2.closed.test": {"A": ["127.0.0.2"]},
    # busy.test: primary 127.0.0.5 greets with 421.
    "busy.test": {"MX": [(5, "mx1.busy.test"), (50, "mx2.busy.test")]},
    "mx1.busy.test": {"A": ["127.0.0.5"]},
    "mx2.busy.test": {"A": ["127.0.0.2"]},
}

MSG = (b"From: alice@example.test\r\nTo: x@closed.test\r\nSubject: backup\r\n"
       b"\r\nhello\r\n")


class RelayBackup(unittest.TestCase):
    def test_backup(self):
        env, dns, port = relay_setup(RECORDS)
        backup = Sink("127.0.0.2", port).start()
        refuser = Refuser("127.0.0.5", port).start()
        try:
            env.start_smtpd()
            self.assertEqual(submit(env, ["x@closed.test"], MSG), {})
            self.assertEqual(submit(env, ["y@busy.test"], MSG), {})
            got = backup.wait(2)
            self.assertEqual(sorted(m.rcpts[0] for m in got),
                             ["x@closed.test", "y@busy.test"])
            self.assertEqual(refuser.connections, 1)
            self.assertTrue(wait_for(lambda: not queue_ids(env)))
            log = env.smtpd.log()
            # Same attempt: no retry was scheduled, attempt=1 everywhere.
            self.assertNotIn("event=relay.retry", log)
            sent = [l for l in env.log_lines(env.smtpd, "relay.delivery")
                    if "status=sent" in l]
            self.assertEqual(len(sent), 2)
            self.assertTrue(all("attempt=1 " in l for l in sent))
            self.assertIn("mx=mx1.closed.test[127.0.0.4] state=connect "
                          "result=fail", log)
            self.assertIn("mx=mx1.busy.test[127.0.0.5] state=greeting "
                          "result=fail", log)
        finally:
            backup.stop()
            refuser.stop()
            env.stop()
            dns.stop()


if __name__ == "__main__":
    ct.main()
