"""PIPELINING and CHUNKING: a whole transaction sent in one write gets
its replies in order; BDAT chunks are read by count (binary-safe, "."
lines and CRLF.CRLF inside a chunk are just data), BDAT LAST and BDAT 0
LAST end the message; DATA after BDAT is a 503; a BDAT refused for bad
sequence still has its chunk skipped, never read as commands."""

import re
import threading
import time
import unittest

import carteiro_test as ct
from smtpd_util import Env, Raw, proc_status, sanitized_build


class Pipelining(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env()
        cls.env.start_smtpd()
        cls.port = cls.env.ports["mx"]

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def test_pipelined_transaction(self):
        c = Raw(self.port)
        c.send(b"EHLO p.test\r\nMAIL FROM:<a@p.test>\r\n"
               b"RCPT TO:<alice@example.test>\r\nRCPT TO:<nobody@other.test>\r\n"
               b"RCPT TO:<bob@example.test>\r\nDATA\r\n")
        self.assertEqual(c.reply()[0], 250)   # EHLO
        self.assertEqual(c.reply()[0], 250)   # MAIL
        self.assertEqual(c.reply()[0], 250)   # RCPT alice
        self.assertEqual(c.reply()[0], 550)   # RCPT other
        self.assertEqual(c.reply()[0], 250)   # RCPT bob
        self.assertEqual(c.reply()[0], 354)   # DATA
        c.send(b"Subject: p1\r\n\r\none\r\n.\r\nMAIL FROM:<b@p.test>\r\n"
               b"RCPT TO:<alice@example.test>\r\nDATA\r\n"
               b"Subject: p2\r\n\r\ntwo\r\n.\r\nNOOP\r\nQUIT\r\n")
        replies = [c.reply() for _ in range(6)]
        codes = [r[0] for r in replies]
        self.assertEqual(codes, [250, 250, 250, 354, 250, 250])
        self.assertTrue(replies[0][1][0].startswith("2.0.0 Ok: queued as"))
        self.assertTrue(replies[4][1][0].startswith("2.0.0 Ok: queued as"))
        self.assertEqual(c.reply()[0], 221)
        bodies = [ct.strip_added_headers(m) for m in
                  self.env.mailbox_bodies("alice@example.test")]
        self.assertIn(b"Subject: p1\r\n\r\none\r\n", bodies)
        self.assertIn(b"Subject: p2\r\n\r\ntwo\r\n", bodies)

    def test_bdat(self):
        chunk1 = b"Subject: chunked\r\n\r\n.\r\n..dots stay\r\n"
        chunk2 = b"bin \xff\xfe\x00 ok\r\n.\r\n"
        c = Raw(self.port)
        c.cmd("EHLO b.test")
        c.cmd("MAIL FROM:<a@b.test> BODY=8BITMIME")
        c.cmd("RCPT TO:<bob@example.test>")
        c.send(b"BDAT %d\r\n" % len(chunk1) + chunk1 +
               b"BDAT %d LAST\r\n" % len(chunk2) + chunk2 + b"NOOP\r\n")
        self.assertEqual(c.reply(), (250, ["2.0.0 %d octets received" %
                                           len(chunk1)]))
        code, text = c.reply()
        self.assertEqual(code, 250)
        self.assertRegex(text[0], r"^2.0.0 Ok: queued as [0-9a-f]{16}$")
        self.assertEqual(c.reply()[0], 250)   # NOOP
        # BDAT 0 LAST after one chunk.
        c.cmd("MAIL FROM:<a@b.test>")
        c.cmd("RCPT TO:<bob@example.test>")
        c.send(b"BDAT 12\r\nSubject: ")
        c.send(b"z\r\n")
        self.assertEqual(c.reply(), (250, ["2.0.0 12 octets received"]))
        self.assertEqual(c.text("DATA"),
                         "503 5.5.1 Error: DATA after BDAT not allowed")
        self.assertEqual(c.code("BDAT 0 LAST"), 250)
        # Bare LF in a chunk: refused at LAST, like DATA.
        c.cmd("MAIL FROM:<a@b.test>")
        c.cmd("RCPT TO:<bob@example.test>")
        c.send(b"BDAT 14 LAST\r\nSubject: lf\n\nx")
        self.assertEqual(c.reply()[0], 550)
        c.cmd("QUIT")
        bodies = [ct.strip_added_headers(m) for m in
                  self.env.mailbox_bodies("bob@example.test")]
        self.assertIn(chunk1 + chunk2, bodies)
        self.assertIn(b"Subject: z\r\n", bodies)

    def test_bdat_refused_chunk_is_skipped(self):
        c = Raw(self.port)
        c.cmd("EHLO b.test")
        evil = b"MAIL FROM:<x@evil.test>\r\nRCPT TO:<alice@example.test>\r\n"
        c.send(b"BDAT %d LAST\r\n" % len(evil) + evil + b"NOOP\r\n")
        self.assertEqual(c.reply()[0], 503)
        self.assertEqual(c.reply(), (250, ["2.0.0 Ok"]))   # NOOP, not MAIL
        self.assertEqual(c.code("BDAT x"), 503)
        self.assertTrue(c.at_eof())

    def test_client_not_reading(self):
        # 300,000 pipelined NOOPs from a client that reads nothing for a
        # while: smtpd stops reading instead of queueing 5 MB of replies.
        n = 300000
        c = Raw(self.port, timeout=60)
        c.cmd("EHLO slow.reader")
        rss0 = proc_status(self.env.smtpd.proc.pid, "VmRSS")
        t = threading.Thread(target=c.send, args=(b"NOOP\r\n" * n,))
        t.start()
        time.sleep(1.0)
        rss1 = proc_status(self.env.smtpd.proc.pid, "VmRSS")
        got = 0
        while got < n:
            code, _ = c.reply()
            self.assertEqual(code, 250)
            got += 1
        t.join(30)
        self.assertEqual(c.code("QUIT"), 221)
        if not sanitized_build():    # ASan's quarantine holds memory
            self.assertLess(rss1 - rss0, 4096, (rss0, rss1))


if __name__ == "__main__":
    ct.main()
