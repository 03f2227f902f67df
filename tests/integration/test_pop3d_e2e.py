"""End to end: a message sent with smtplib to carteiro-smtpd's MX listener
is retrieved with poplib from carteiro-pop3d, byte-exact after the header
lines carteiro adds (Return-Path:, Received:)."""

import smtplib
import time
import unittest

import carteiro_test as ct
import pop3_fixtures as pf

ALICE = "alice@example.test"
# Trace and verdict fields carteiro prepends at delivery.
ADDED = (b"return-path", b"received", b"authentication-results",
         b"received-spf", b"dkim-signature", b"arc-")


def strip_added(msg):
    """msg without the header fields carteiro prepends (leading block)."""
    lines = msg.split(b"\r\n")
    i = 0
    while i < len(lines) and lines[i].split(b":", 1)[0].lower().startswith(
            ADDED):
        i += 1
        while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
            i += 1
    return b"\r\n".join(lines[i:])


class Pop3EndToEnd(unittest.TestCase):
    def test_smtp_to_pop3(self):
        env = ct.Env()
        try:
            env.start_smtpd()
            pf.start(env)
            msg = (b"From: sender@example.org\r\nTo: alice@example.test\r\n"
                   b"Subject: e2e\r\nMessage-ID: <e2e@example.org>\r\n\r\n"
                   b"hello\r\n.a line with a leading dot\r\n..two\r\n"
                   b"last line\r\n")
            with smtplib.SMTP("127.0.0.1", env.ports["mx"], timeout=30) as s:
                s.ehlo("client.example.org")
                refused = s.sendmail("sender@example.org", [ALICE], msg)
                self.assertEqual(refused, {})
            p = pf.pop3(env, "stls")
            deadline = time.time() + 10
            while p.stat()[0] == 0 and time.time() < deadline:
                p.quit()
                time.sleep(0.2)
                p = pf.pop3(env, "stls")
            self.assertEqual(p.stat()[0], 1)
            resp, lines, _ = p.retr(1)
            got = pf.unstuff(lines)
            self.assertEqual(strip_added(got), msg)
            self.assertIn(b"\r\nReceived: ", b"\r\n" + got.split(
                b"\r\n\r\n")[0])
            # and the store holds exactly what POP3 sent
            self.assertEqual(env.mailbox_bodies(ALICE), [got])
            self.assertEqual(resp, b"+OK %d octets" % len(got))
            p.dele(1)
            p.quit()
            self.assertEqual(env.mailbox_bodies(ALICE), [])
        finally:
            env.stop()


if __name__ == "__main__":
    ct.main()
