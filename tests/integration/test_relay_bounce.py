"""Relay bounces: a 5xx reply, a null MX and an NXDOMAIN domain give one
RFC 3464 DSN in the (local) sender's mailbox naming the remote reply; a
remote sender's DSN is queued with <>; a message with the null sender
never gets a DSN, so a failing DSN cannot loop."""

import email
import email.policy
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from fakemx import (Sink, queue_ids, queue_insert, relay_setup,  # noqa: E402
                    submit, wait_for)

RECORDS = {
    "remote.test": {"MX": [(10, "mx1.remote.test")]},
    "mx1.remote.test": {"A": ["127.0.0.2"]},
    "null.test": {"MX": [(0, ".")]},
    "far.test": {"MX": [(10, "mx1.remote.test")]},
}

REJECT = "550 5.1.1 <%s>: Recipient address rejected: User unknown"


def rcpt_reply(addr):
    return REJECT % addr if addr.startswith("p5") else None


def dsn_parts(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    parts = msg.get_payload()
    return msg, parts


class RelayBounce(unittest.TestCase):
    def setUp(self):
        self.env, self.dns, port = relay_setup(RECORDS)
        self.sink = Sink("127.0.0.2", port)
        self.sink.rcpt_reply = rcpt_reply
        self.sink.start()
        self.env.start_smtpd()

    def tearDown(self):
        self.sink.stop()
        self.env.stop()
        self.dns.stop()

    def test_bounce_to_local_sender(self):
        env = self.env
        msg = (b"From: alice@example.test\r\nTo: several\r\n"
               b"Subject: bounce me\r\nMessage-ID: <b1@example.test>\r\n"
               b"\r\nbody\r\n")
        self.assertEqual(submit(env, ["p5user@remote.test", "x@null.test",
                                      "y@nx.test", "ok@remote.test"], msg),
                         {})
        self.assertEqual([m.rcpts for m in self.sink.wait(1)],
                         [["ok@remote.test"]])
        boxes = wait_for(lambda: env.mailbox_bodies("alice@example.test"))
        self.assertEqual(len(boxes), 1)
        self.assertTrue(wait_for(lambda: not queue_ids(env)))
        raw = boxes[0]
        self.assertTrue(raw.startswith(b"Return-Path: <>\r\n"))
        dsn, parts = dsn_parts(raw)
        self.assertEqual(dsn["From"],
                         "Mail Delivery System <MAILER-DAEMON@mail.example.test>")
        self.assertEqual(dsn.get_content_type(), "multipart/report")
        self.assertEqual(dsn.get_param("report-type"), "delivery-status")
        self.assertEqual([p.get_content_type() for p in parts],
                         ["text/plain", "message/delivery-status",
                          "text/rfc822-headers"])
        text = raw.decode()
        self.assertIn("Diagnostic-Code: smtp; " + REJECT % "p5user@remote.test",
                      text)
        self.assertIn("Remote-MTA: dns; mx1.remote.test", text)
        self.assertIn("Status: 5.1.1", text)
        self.assertIn("Status: 5.1.10", text)           # null MX
        self.assertIn("Final-Recipient: rfc822; x@null.test", text)
        self.assertIn("Final-Recipient: rfc822; y@nx.test", text)
        self.assertIn("NXDOMAIN", text)
        self.assertEqual(text.count("Action: failed"), 3)
        self.assertNotIn("ok@remote.test", text.split("Subject: bounce me")[0])
        self.assertIn("Subject: bounce me", parts[2].as_string())
        self.assertIn("Reporting-MTA: dns; mail.example.test", text)

    def test_remote_sender_and_null_sender(self):
        env = self.env
        data = (b"From: someone@far.test\r\nSubject: from afar\r\n\r\nhi\r\n")
        # A remote sender (e.g. mail an alias forwarded): DSN is queued.
        q1 = queue_insert(env, "someone@far.test", ["p5a@remote.test"], data)
        got = self.sink.wait(1)
        self.assertEqual(len(got), 1)
        self.assertIn(got[0].mail_from, ("", "<>"))
        self.assertEqual(got[0].rcpts, ["someone@far.test"])
        self.assertIn(b"Action: failed", got[0].data)
        self.assertIn(b"Subject: from afar", got[0].data)
        # A DSN whose delivery fails permanently is dropped, not bounced.
        q2 = queue_insert(env, "p5sender@far.test", ["p5b@remote.test"], data)
        q3 = queue_insert(env, "", ["p5c@remote.test"], data, is_bounce=1)
        self.assertTrue(wait_for(lambda: not queue_ids(env)))
        time.sleep(1.5)                     # a loop would show up by now
        self.assertEqual(queue_ids(env), [])
        self.assertEqual(len(self.sink.messages), 1)
        log = env.smtpd.log()
        bounces = env.log_lines(env.smtpd, "relay.bounce")
        self.assertEqual(len(bounces), 2, bounces)       # q1 and q2 only
        self.assertIn("qid=%d " % q1, bounces[0])
        self.assertIn("qid=%d " % q2, bounces[1])
        self.assertIn("qid=%d rcpt=p5c@remote.test" % q3, log)
        self.assertEqual(env.mailbox_bodies("alice@example.test"), [])


if __name__ == "__main__":
    ct.main()
