"""Forwarding through SRS (issue #11 item 10): an alias or catch-all that
forwards to a remote address is relayed with an SRS0 envelope sender at
the alias's domain (exact shape, the hash recomputed here from the secret
in the store); that address sent back as RCPT (a bounce) is accepted and
goes on to the original sender; a tampered or expired one gets 550 5.1.1;
a DSN about a message with 64 KB of headers quotes at most 16 KB."""

import base64
import email
import email.policy
import hashlib
import hmac
import os
import smtplib
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carteiro_test as ct  # noqa: E402
from fakemx import Sink, queue_ids, relay_setup, wait_for  # noqa: E402

B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
FAR = "mail.far-away-domain.test"
# Long enough that the SRS local part passes 64 octets.
SENDER = "someone.with.a.long.name@" + FAR

RECORDS = {
    "remote.test": {"MX": [(10, "mx1.remote.test")]},
    "mx1.remote.test": {"A": ["127.0.0.2"]},
    FAR: {"MX": [(10, "mx1.remote.test")]},
}

REJECT = "550 5.1.1 <%s>: Recipient address rejected: User unknown"


def rcpt_reply(addr):
    return REJECT % addr if addr.startswith("p5") else None


def stamp(t):
    day = int(t) // 86400 % 1024
    return B32[day >> 5] + B32[day & 31]


def srs_hash(secret, tag, *fields):
    msg = b"".join(f.lower().encode() + b"\0" for f in (tag,) + fields)
    mac = hmac.new(bytes.fromhex(secret), msg, hashlib.sha256).digest()
    return base64.b32encode(mac[:5]).decode()


def srs0(secret, sender, domain, t):
    local, sdom = sender.rsplit("@", 1)
    tt = stamp(t)
    return "SRS0=%s=%s=%s=%s@%s" % (srs_hash(secret, "SRS0", tt, sdom, local),
                                    tt, sdom, local, domain)


class Srs(unittest.TestCase):
    def setUp(self):
        self.env, self.dns, port = relay_setup(
            RECORDS, domains=("example.test", "lists.test"))
        env = self.env
        env.ctl_ok("alias", "add", "fwd@example.test",
                   "bob@example.test,dest@remote.test")
        env.ctl_ok("alias", "add", "fail@example.test", "p5user@remote.test")
        env.ctl_ok("alias", "add", "@lists.test", "dest2@remote.test")
        self.sink = Sink("127.0.0.2", port)
        self.sink.rcpt_reply = rcpt_reply
        self.sink.start()
        env.start_smtpd()

    def tearDown(self):
        self.sink.stop()
        self.env.stop()
        self.dns.stop()

    def secret(self):
        """The SRS secret smtpd keeps in the store (written as it
        starts, maybe just after its ports accept connections)."""
        def read():
            try:
                return self.env.query(
                    "SELECT value FROM settings WHERE name = 'srs_secret'")
            except Exception:       # no settings table (old code)
                return []
        rows = wait_for(read)
        self.assertEqual(len(rows), 1)
        self.assertEqual(len(rows[0][0]), 64)
        return rows[0][0]

    def mx(self):
        s = smtplib.SMTP("127.0.0.1", self.env.ports["mx"], timeout=30)
        s.ehlo("client.test")
        return s

    def send(self, mail_from, rcpts, data):
        s = self.mx()
        try:
            return s.sendmail(mail_from, rcpts, data)
        finally:
            s.quit()

    def rcpt(self, addr):
        s = self.mx()
        try:
            self.assertEqual(s.mail("")[0], 250)
            return s.rcpt(addr)
        finally:
            s.quit()

    def forward_one(self, rcpt, dest):
        """Send SENDER -> rcpt over MX; the copy the sink got for dest."""
        data = (b"From: " + SENDER.encode() + b"\r\nSubject: fwd\r\n\r\n"
                b"hello\r\n")
        before = time.time()
        self.assertEqual(self.send(SENDER, [rcpt], data), {})
        got = [m for m in self.sink.wait(len(self.sink.messages) + 1)
               if m.rcpts == [dest]]
        self.assertEqual(len(got), 1, self.sink.messages)
        return got[0], before, time.time()

    def test_alias_forward_gets_srs0(self):
        env = self.env
        msg, t0, t1 = self.forward_one("fwd@example.test", "dest@remote.test")
        self.assertTrue(msg.mail_from.startswith("SRS0="), msg.mail_from)
        secret = self.secret()
        want = {srs0(secret, SENDER, "example.test", t) for t in (t0, t1)}
        self.assertIn(msg.mail_from, want)
        self.assertGreater(len(msg.mail_from.rsplit("@", 1)[0]), 64)
        self.assertIn(b"Subject: fwd", msg.data)
        # The local copy keeps the real sender.
        box = env.mailbox_bodies("bob@example.test")
        self.assertEqual(len(box), 1)
        self.assertTrue(box[0].startswith(
            b"Return-Path: <" + SENDER.encode() + b">\r\n"))
        self.assertEqual(len(env.log_lines(env.smtpd, "smtp.forward")), 1)

        # A catch-all forwards with its own domain.
        msg2, t0, t1 = self.forward_one("anyone@lists.test",
                                        "dest2@remote.test")
        self.assertIn(msg2.mail_from,
                      {srs0(secret, SENDER, "lists.test", t)
                       for t in (t0, t1)})

        # Mail from one of our own domains is not rewritten.
        s = smtplib.SMTP("127.0.0.1", env.ports["submission"], timeout=30)
        s.ehlo()
        s.login("alice@example.test", ct.PASSWORD)
        s.sendmail("alice@example.test", ["fwd@example.test"],
                   b"Subject: own\r\n\r\nx\r\n")
        s.quit()
        got = wait_for(lambda: [m for m in self.sink.messages
                                if b"Subject: own" in m.data])
        self.assertEqual([m.mail_from for m in got], ["alice@example.test"])

    def test_srs_bounce_goes_to_original_sender(self):
        msg, _, _ = self.forward_one("fwd@example.test", "dest@remote.test")
        srs = msg.mail_from
        self.assertTrue(srs.startswith("SRS0="), srs)
        n = len(self.sink.messages)
        # The bounce from the destination comes back to the SRS address,
        # here in lower case as some MTAs send it.
        bounce = (b"From: MAILER-DAEMON@remote.test\r\n"
                  b"Subject: Undelivered\r\n\r\nbounced\r\n")
        self.assertEqual(self.send("", [srs.lower()], bounce), {})
        got = self.sink.wait(n + 1)
        self.assertEqual(len(got), n + 1)
        self.assertIn(got[-1].mail_from, ("", "<>"))
        self.assertEqual(got[-1].rcpts, [SENDER.lower()])
        self.assertIn(b"Subject: Undelivered", got[-1].data)
        self.assertTrue(wait_for(lambda: not queue_ids(self.env)))

    def test_tampered_or_expired_srs_is_refused(self):
        secret = self.secret()
        good = srs0(secret, SENDER, "example.test", time.time())
        code, _ = self.rcpt(good)
        self.assertEqual(code, 250)
        h = good[5:13]
        bad = good.replace(h, ("B" if h[0] == "A" else "A") + h[1:], 1)
        self.assertEqual(self.rcpt(bad), (550, (
            "5.1.1 <%s>: Recipient address rejected: SRS address does not "
            "verify" % bad).encode()))
        old = srs0(secret, SENDER, "example.test", time.time() - 30 * 86400)
        self.assertEqual(self.rcpt(old), (550, (
            "5.1.1 <%s>: Recipient address rejected: SRS address has "
            "expired" % old).encode()))
        wrong_domain = good.replace("=" + FAR + "=", "=far.test=")
        self.assertEqual(self.rcpt(wrong_domain)[0], 550)
        self.assertEqual(self.rcpt("SRS0=xx@example.test"), (550, (
            "5.1.1 <SRS0=xx@example.test>: Recipient address rejected: SRS "
            "address does not verify").encode()))
        lines = self.env.log_lines(self.env.smtpd, "smtp.srs")
        self.assertEqual([l.split("result=")[1] for l in lines],
                         ["bad-hash", "expired", "bad-hash", "syntax"])
        self.assertEqual(self.sink.messages, [])

    def test_dsn_quotes_at_most_16k_of_headers(self):
        pad = b"".join(b"X-Pad-%02d: %s\r\n" % (i, b"a" * 900)
                       for i in range(72))
        data = (b"From: " + SENDER.encode() + b"\r\nSubject: big\r\n" + pad +
                b"X-Last: end\r\n\r\nBODY-SECRET\r\n")
        self.assertGreater(len(pad), 64 * 1024)
        self.assertEqual(self.send(SENDER, ["fail@example.test"], data), {})
        got = self.sink.wait(1)
        self.assertEqual(len(got), 1)
        dsn = got[0]
        # The failed forward's DSN goes to the sender behind the SRS
        # address, with the null sender.
        self.assertIn(dsn.mail_from, ("", "<>"))
        self.assertEqual(dsn.rcpts, [SENDER])
        msg = email.message_from_bytes(dsn.data, policy=email.policy.compat32)
        parts = msg.get_payload()
        self.assertEqual(parts[2].get_content_type(), "text/rfc822-headers")
        quoted = dsn.data.split(b"Content-Description: Undelivered Message "
                                b"Headers\r\n\r\n", 1)[1]
        quoted = quoted[:quoted.rindex(b"\r\n--")]
        self.assertLessEqual(len(quoted), 16 * 1024)
        self.assertGreater(len(quoted), 15 * 1024)
        self.assertTrue(quoted.endswith(b"a\r\n"))
        self.assertIn(b"Subject: big\r\n", quoted)
        self.assertNotIn(b"X-Last", dsn.data)
        self.assertNotIn(b"BODY-SECRET", dsn.data)
        self.assertLess(len(dsn.data), 16 * 1024 + 4096)
        self.assertTrue(wait_for(lambda: not queue_ids(self.env)))


if __name__ == "__main__":
    ct.main()
