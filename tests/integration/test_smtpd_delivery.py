"""MX delivery: one message to two local users and an alias arrives in
every mailbox byte-exact (8-bit and dot-stuffed lines included), with
Return-Path and a Received header of RFC 5321 4.4 form; postmaster forms
always accepted; unknown user, relaying, %-hacks, source routes and address
literals refused; explicit alias beats catch-all; log events."""

import re
import smtplib
import unittest

import carteiro_test as ct
from smtpd_util import Env, Raw

BODY = (b"From: sender@remote.test\r\n"
        b"To: alice@example.test\r\n"
        b"Subject: =?utf-8?q?caf=C3=A9?=\r\n"
        b"\r\n"
        b"caf\xc3\xa9 8-bit line\r\n"
        b".leading dot\r\n"
        b"..two dots\r\n"
        b".\tdot tab\r\n"
        b"\r\n"
        b"last line\r\n")


def stuff(body):
    out = []
    for line in body.split(b"\r\n"):
        out.append(b"." + line if line.startswith(b".") else line)
    return b"\r\n".join(out)


class Delivery(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env(users=("alice@example.test", "bob@example.test",
                                "carol@example.test", "dave@example.test"))
        cls.env.ctl_ok("alias", "add", "team@example.test",
                       "carol@example.test,dave@example.test")
        cls.env.ctl_ok("alias", "add", "@example.test", "dave@example.test")
        cls.env.ctl_ok("alias", "add", "bob-alias@example.test",
                       "bob@example.test")
        cls.env.start_smtpd()
        cls.port = cls.env.ports["mx"]

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def test_1_three_recipients_byte_exact(self):
        c = Raw(self.port)
        self.assertEqual(c.code("EHLO client.remote.test"), 250)
        self.assertEqual(c.text("MAIL FROM:<sender@remote.test> BODY=8BITMIME"),
                         "250 2.1.0 Ok")
        self.assertEqual(c.text("RCPT TO:<alice@example.test>"),
                         "250 2.1.5 Ok")
        self.assertEqual(c.code("RCPT TO:<bob@example.test>"), 250)
        self.assertEqual(c.code("RCPT TO:<team@example.test>"), 250)
        self.assertEqual(c.code("DATA"), 354)
        c.send(stuff(BODY) + b".\r\n")
        code, text = c.reply()
        self.assertEqual(code, 250)
        m = re.match(r"2\.0\.0 Ok: queued as ([0-9a-f]{16})$", text[-1])
        self.assertTrue(m, text)
        msgid = m.group(1)
        self.assertEqual(c.code("QUIT"), 221)
        c.close()
        for u in ("alice", "bob", "carol", "dave"):
            msgs = self.env.mailbox_bodies(u + "@example.test")
            self.assertEqual(len(msgs), 1, u)
            self.assertEqual(ct.strip_added_headers(msgs[0]), BODY, u)
        full = self.env.mailbox_bodies("alice@example.test")[0]
        head = full[:full.index(b"From: sender")]
        self.assertTrue(head.startswith(b"Return-Path: <sender@remote.test>\r\n"
                                        b"Received: from client.remote.test "
                                        b"([127.0.0.1])\r\n"), head)
        self.assertIn(b"by mail.example.test (carteiro) with ESMTP id " +
                      msgid.encode(), head)
        # Several recipients: no "for" clause (it would leak Bcc).
        self.assertNotIn(b"for <", head)
        logs = self.env.smtpd.log()
        self.assertRegex(logs, r"event=smtp.accept sid=[0-9a-f]{16} msgid=%s "
                         r"rcpts=3 local=4 remote=0" % msgid)
        self.assertRegex(logs, r"event=smtp.data sid=\S+ msgid=%s result=ok "
                         r"bytes=%d" % (msgid, len(BODY)))

    def test_2_postmaster_forms(self):
        s = smtplib.SMTP("127.0.0.1", self.port)
        s.ehlo("x.test")
        s.mail("")
        self.assertEqual(s.rcpt("<postmaster>")[0], 250)
        self.assertEqual(s.rcpt("<Postmaster@example.test>")[0], 250)
        self.assertEqual(s.data(b"Subject: pm\r\n\r\nhi\r\n")[0], 250)
        s.quit()
        # postmaster = alice in the test config; deduplicated: one copy.
        msgs = self.env.mailbox_bodies("alice@example.test")
        self.assertTrue(msgs[-1].endswith(b"Subject: pm\r\n\r\nhi\r\n"))
        self.assertIn(b"Return-Path: <>\r\n", msgs[-1])

    def test_3_refusals(self):
        c = Raw(self.port)
        c.cmd("EHLO x.test")
        c.cmd("MAIL FROM:<s@remote.test>")
        # Unknown local user: the catch-all takes it, so use a domain
        # without one through an alias-less check below.
        self.assertEqual(c.text("RCPT TO:<x@other.test>")[:9], "550 5.7.1")
        self.assertEqual(c.text("RCPT TO:<alice%other.test@example.test>")[:9],
                         "550 5.7.1")
        self.assertEqual(c.text("RCPT TO:<other.test!alice@example.test>")[:9],
                         "550 5.7.1")
        self.assertEqual(c.text("RCPT TO:<alice@[127.0.0.1]>")[:9],
                         "550 5.7.1")
        self.assertEqual(c.text("RCPT TO:<@example.test:x@other.test>")[:9],
                         "550 5.7.1")
        # A source route to a local address: accepted, route ignored.
        self.assertEqual(c.code("RCPT TO:<@relay.test:bob@example.test>"), 250)
        c.cmd("QUIT")
        logs = self.env.smtpd.log()
        self.assertIn('result=fail cmd="RCPT TO:<x@other.test>" reply="550 '
                      '5.7.1 <x@other.test>: Relay access denied"', logs)

    def test_4_unknown_user_and_catchall(self):
        # example.test has a catch-all to dave: unknown goes there, an
        # explicit alias beats it.
        s = smtplib.SMTP("127.0.0.1", self.port)
        s.ehlo("x.test")
        s.mail("s@remote.test")
        self.assertEqual(s.rcpt("nobody@example.test")[0], 250)
        self.assertEqual(s.rcpt("bob-alias@example.test")[0], 250)
        s.data(b"Subject: catch\r\n\r\nx\r\n")
        s.quit()
        self.assertTrue(self.env.mailbox_bodies("bob@example.test")[-1]
                        .endswith(b"Subject: catch\r\n\r\nx\r\n"))
        self.assertTrue(self.env.mailbox_bodies("dave@example.test")[-1]
                        .endswith(b"Subject: catch\r\n\r\nx\r\n"))
        self.env.ctl_ok("alias", "del", "@example.test")
        c = Raw(self.port)
        c.cmd("EHLO x.test")
        c.cmd("MAIL FROM:<s@remote.test>")
        self.assertEqual(c.text("RCPT TO:<nobody@example.test>")[:9],
                         "550 5.1.1")
        c.cmd("QUIT")

    def test_5_smtputf8_and_helo(self):
        c = Raw(self.port)
        c.cmd("EHLO u.test")
        self.assertEqual(c.code("MAIL FROM:<jos\u00e9@r\u00e9mote.test> SMTPUTF8"),
                         250)
        self.assertEqual(c.code("RCPT TO:<carol@example.test>"), 250)
        c.cmd("DATA")
        c.send("Subject: ol\u00e1\r\n\r\nx\r\n.\r\n".encode())
        self.assertEqual(c.reply()[0], 250)
        self.assertEqual(c.code("HELO plain.test"), 250)
        c.cmd("MAIL FROM:<old@remote.test>")
        c.cmd("RCPT TO:<carol@example.test>")
        c.cmd("DATA")
        c.send(b"Subject: old\r\n\r\ny\r\n.\r\n")
        self.assertEqual(c.reply()[0], 250)
        c.cmd("QUIT")
        m1, m2 = self.env.mailbox_bodies("carol@example.test")[-2:]
        self.assertIn("Return-Path: <jos\u00e9@xn--rmote-bsa.test>".encode(), m1)
        self.assertIn(b"with UTF8SMTP id", m1)
        self.assertIn(b"for <carol@example.test>;", m1)
        self.assertIn(b"from plain.test ([127.0.0.1])", m2)
        self.assertIn(b"with SMTP id", m2)

    def test_6_spool_sizes_byte_exact(self):
        """Messages are spooled in memory up to 128 KB and on disk past
        it (the spill happens mid-message); both paths and the edges
        between them store the bytes exactly, DATA and BDAT alike."""
        mem_max = 128 * 1024
        sizes = [0, 1, 3072, 3073, mem_max - 1, mem_max, mem_max + 1,
                 300 * 1024]
        sent = []
        c = Raw(self.port)
        self.assertEqual(c.code("EHLO sizes.remote.test"), 250)
        for i, size in enumerate(sizes):
            line = b"%06d " % i + b"x" * 70 + b"\r\n"
            body = (line * (size // len(line) + 1))[:size]
            if size >= 2:
                body = body[:-2] + b"\r\n"
            elif size == 1:
                body = b"y"
            bdat = i % 2 == 1
            self.assertEqual(c.code("MAIL FROM:<sizes@remote.test>"), 250)
            self.assertEqual(c.code("RCPT TO:<bob@example.test>"), 250)
            if bdat:
                c.send(b"BDAT %d LAST\r\n" % len(body) + body)
            else:
                self.assertEqual(c.code("DATA"), 354)
                if body and not body.endswith(b"\r\n"):
                    # DATA always ends the content with CRLF.
                    body += b"\r\n"
                c.send(body + b".\r\n")
            self.assertEqual(c.reply()[0], 250, size)
            sent.append(body)
        c.cmd("QUIT")
        got = self.env.mailbox_bodies("bob@example.test")[-len(sizes):]
        for body, m in zip(sent, got):
            self.assertEqual(ct.strip_added_headers(m), body, len(body))


class PostmasterUnconfigured(unittest.TestCase):
    """No [server] postmaster, no alias, no catch-all: postmaster is still
    accepted (RFC 5321 4.5.1) and goes to the domain's oldest user."""

    def test_postmaster_goes_to_oldest_user(self):
        env = Env(users=("olga@example.test", "pete@example.test"),
                  conf={"server": {"postmaster": ""}})
        try:
            env.start_smtpd()
            s = smtplib.SMTP("127.0.0.1", env.ports["mx"])
            s.ehlo("x.test")
            s.mail("")
            self.assertEqual(s.rcpt("<postmaster>")[0], 250)
            self.assertEqual(s.rcpt("<POSTMASTER@example.test>")[0], 250)
            self.assertEqual(s.rcpt("<nobody@example.test>")[0], 550)
            self.assertEqual(s.data(b"Subject: pm2\r\n\r\nhi\r\n")[0], 250)
            s.quit()
            got = env.mailbox_bodies("olga@example.test")
            self.assertEqual(len(got), 1)
            self.assertTrue(got[0].endswith(b"Subject: pm2\r\n\r\nhi\r\n"))
            self.assertEqual(env.mailbox_bodies("pete@example.test"), [])
        finally:
            env.stop()


if __name__ == "__main__":
    ct.main()
