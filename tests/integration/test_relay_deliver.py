"""Relay: a submitted message reaches the remote MX byte-exact, all
recipients of the domain in one transaction, over STARTTLS, recipients of
two domains in one session each; the queue is empty afterwards."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from fakemx import Sink, queue_ids, relay_setup, submit, wait_for  # noqa: E402

RECORDS = {
    "remote.test": {"MX": [(10, "mx1.remote.test")]},
    "mx1.remote.test": {"A": ["127.0.0.2"]},
    "other.test": {"A": ["127.0.0.3"]},          # no MX: implicit MX
}


class RelayDeliver(unittest.TestCase):
    def test_deliver(self):
        env, dns, port = relay_setup(RECORDS)
        tls_sink = Sink("127.0.0.2", port, tls=(env.cert, env.key)).start()
        plain_sink = Sink("127.0.0.3", port).start()
        try:
            env.start_smtpd()
            body = b"".join(b".line %d with a leading dot\r\n" % i
                            if i % 7 == 0 else b"line %d " % i + b"x" * 60 +
                            b"\r\n" for i in range(4000))
            msg = (b"From: alice@example.test\r\nTo: bob@remote.test\r\n"
                   b"Subject: relay test\r\nMessage-ID: <t1@example.test>\r\n"
                   b"\r\n" + body + b".\r\n..\r\nend\r\n")
            rcpts = ["bob@remote.test", "carol@remote.test",
                     "dave@other.test"]
            self.assertEqual(submit(env, rcpts, msg), {})
            got = tls_sink.wait(1)
            self.assertEqual(len(got), 1)
            m = got[0]
            self.assertEqual(m.mail_from, "alice@example.test")
            self.assertEqual(sorted(m.rcpts),
                             ["bob@remote.test", "carol@remote.test"])
            self.assertTrue(m.data.startswith(b"Received:"))
            self.assertEqual(ct.strip_added_headers(m.data), msg)
            self.assertTrue(m.tls, "STARTTLS was offered but not used")
            self.assertIn("SIZE=%d" % len(m.data), m.mail_options)
            other = plain_sink.wait(1)
            self.assertEqual(len(other), 1)
            self.assertEqual(other[0].rcpts, ["dave@other.test"])
            self.assertEqual(other[0].data, m.data)
            self.assertFalse(other[0].tls)
            self.assertEqual(tls_sink.transactions, 1)
            self.assertTrue(wait_for(lambda: not queue_ids(env)))
            log = env.smtpd.log()
            self.assertIn("tls=yes version=TLS", log)
            self.assertIn("mx=other.test[127.0.0.3] tls=no", log)
            sent = env.log_lines(env.smtpd, "relay.delivery")
            self.assertEqual(len([l for l in sent if "status=sent" in l]), 3)
        finally:
            tls_sink.stop()
            plain_sink.stop()
            env.stop()
            dns.stop()


if __name__ == "__main__":
    ct.main()
