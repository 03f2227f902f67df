"""Relay and SMTPUTF8 (RFC 6531): a message that needs it goes out with
MAIL ... SMTPUTF8 where the remote offers the extension, and bounces with
5.6.7 (no downgrade) where it does not."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from fakemx import (Sink, queue_ids, queue_insert, relay_setup,  # noqa: E402
                    wait_for)

RECORDS = {
    "utf8.test": {"MX": [(10, "mx.utf8.test")]},
    "mx.utf8.test": {"A": ["127.0.0.2"]},
    "ascii.test": {"MX": [(10, "mx.ascii.test")]},
    "mx.ascii.test": {"A": ["127.0.0.3"]},
}


class RelaySmtputf8(unittest.TestCase):
    def test_smtputf8(self):
        env, dns, port = relay_setup(RECORDS)
        modern = Sink("127.0.0.2", port, smtputf8=True).start()
        legacy = Sink("127.0.0.3", port).start()
        try:
            env.start_smtpd()
            data = ("From: alice@example.test\r\nTo: jos\u00e9@utf8.test\r\n"
                    "Subject: ol\u00e1\r\n\r\ncora\u00e7\u00e3o\r\n").encode()
            queue_insert(env, "alice@example.test",
                         ["jos\u00e9@utf8.test", "bob@ascii.test"], data,
                         smtputf8=1)
            got = modern.wait(1)
            self.assertEqual(len(got), 1)
            self.assertEqual(got[0].data, data)
            self.assertIn("SMTPUTF8", got[0].mail_options)
            self.assertTrue(wait_for(lambda: not queue_ids(env)))
            self.assertEqual(legacy.messages, [])
            self.assertEqual(legacy.transactions, 0)
            boxes = wait_for(lambda: env.mailbox_bodies("alice@example.test"))
            self.assertEqual(len(boxes), 1)
            text = boxes[0].decode()
            self.assertIn("Final-Recipient: rfc822; bob@ascii.test", text)
            self.assertIn("Status: 5.6.7", text)
            self.assertIn("does not support it", text)
            # RFC 6533 types for an internationalized original.
            self.assertIn("Content-Type: message/global-delivery-status", text)
            self.assertIn("Content-Type: message/global-headers", text)
            self.assertNotIn("Final-Recipient: rfc822; jos", text)
        finally:
            modern.stop()
            legacy.stop()
            env.stop()
            dns.stop()


if __name__ == "__main__":
    ct.main()
